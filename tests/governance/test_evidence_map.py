"""The evidence map: policy answers found in the project state by dotted paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mpm.governance import PolicyLibrary
from mpm.governance._files import reference_dir
from mpm.governance.evaluation import evaluate_policy
from mpm.governance.evidence_map import (
    EvidenceMap,
    EvidenceMapError,
    load_evidence_map,
    lookup_path,
    resolve_evidence,
)
from mpm.governance.testing import credit_project_state


@pytest.fixture(scope="module")
def library() -> PolicyLibrary:
    return PolicyLibrary.load(reference_dir())


@pytest.fixture(scope="module")
def evidence_map() -> EvidenceMap:
    return load_evidence_map()


MLOPS_RESULT: dict[str, Any] = {
    "evidence": {
        "monitoring_plan": "Weekly PSI and ROC AUC on labelled outcomes; alerts to modeling-review.",
        "rollback_plan": True,
        "next_review_date": "2026-05-01",
        "implementation_tested": True,
        "usage_restrictions": "Retail loans only; human approval of each decision.",
        "revalidation_months": 12,
        "monitoring_configured": {"status": "configured"},
        "oversight_plan": "Underwriters can override any score; the service can be paused in minutes.",
    }
}


def test_every_map_key_names_a_question_metric_or_file_of_its_policy(
    library: PolicyLibrary, evidence_map: EvidenceMap
) -> None:
    """A typo in the map would silently leave a question unanswered forever."""
    assert set(evidence_map.frameworks) == set(library.frameworks)
    for framework in library.frameworks:
        policy = library.get(framework).policy
        keys = {p.key for p in policy.artifacts()}
        aliases = set(policy.classification_aliases())
        scripted = {p.artifact.details.name for p in policy.scripted_checks()} | {
            p.artifact.details.name for p in policy.monitoring_checks()
        }
        spec = evidence_map.frameworks[framework]
        for key in spec.answers:
            assert key in aliases | keys | scripted, (
                f"{framework}: answers.{key} is not in the policy"
            )
        for key in spec.files:
            assert key in {p.key for p in policy.file_uploads()}, f"{framework}: files.{key}"
    all_aliases = {
        a for f in library.frameworks for a in library.get(f).policy.classification_aliases()
    }
    assert set(evidence_map.common.answers) <= all_aliases


def test_credit_project_answers_come_from_requirements_and_stage_results(
    evidence_map: EvidenceMap,
) -> None:
    bundle = resolve_evidence(evidence_map, "model_risk_management", credit_project_state())
    assert bundle.answers["model-family"] == "Classification"  # requirements.model_type mapped
    assert bundle.answers["model-risk"] == "High"
    assert bundle.answers["regulatory-impact"] == "Yes"  # bool mapped to the option text
    assert bundle.answers["handles-personal-data"] == "Yes"  # any data source pii/personal
    assert bundle.answers["data-quality-passed"] == "Yes"
    assert bundle.answers["training-rows"] == 5000
    assert bundle.answers["mrm-stability-check"] == {"passed": True, "max_psi": 0.04}
    assert bundle.metrics["test_roc_auc"] == 0.81  # offered under the name it was logged as
    assert (
        bundle.files["Local.mrm-validation-evidence[0]"]
        == "runs:/validation/validation_report.html"
    )
    assert bundle.sources["regulatory-impact"] == "requirements.regulatory_impact"
    assert (
        bundle.sources["data-quality-passed"]
        == "results.data_acquisition.evidence.data_quality_passed"
    )
    assert bundle.sources["metric:test_roc_auc"] == "results.model_validation.metrics.test_roc_auc"
    assert bundle.sources["file:Local.mrm-validation-evidence[0]"] == (
        "results.model_validation.artifacts[name=validation_report].uri"
    )


def test_missing_sources_leave_questions_unanswered(evidence_map: EvidenceMap) -> None:
    state = credit_project_state()
    state["results"] = {}
    bundle = resolve_evidence(evidence_map, "model_risk_management", state)
    assert "methodology" not in bundle.answers
    assert "data-quality-passed" not in bundle.answers
    assert bundle.metrics == {}
    assert bundle.files == {}
    assert bundle.answers["business-objective"].startswith("Predict 12-month default risk")


def test_first_source_with_a_value_wins(evidence_map: EvidenceMap) -> None:
    state = credit_project_state()
    assert (
        resolve_evidence(evidence_map, "nist_rmf", state).answers["accountable-owner"]
        == "credit-risk-analytics"
    )
    state["results"]["business_analysis"]["evidence"]["business_owner"] = "retail-credit-risk"
    bundle = resolve_evidence(evidence_map, "nist_rmf", state)
    assert bundle.answers["accountable-owner"] == "retail-credit-risk"
    assert (
        bundle.sources["accountable-owner"] == "results.business_analysis.evidence.business_owner"
    )


def test_answers_fill_open_questions_but_never_overwrite_a_derived_fact(
    evidence_map: EvidenceMap,
) -> None:
    """Answering the risk-tier questions "Low" used to re-classify a high-risk project."""
    state = credit_project_state()
    state["human_answers"] = {
        "lawful-basis": "contract",
        "model-risk": "Medium",
        "nist_rmf": {"model-risk": "Low", "regulatory-impact": "No"},
    }
    nist = resolve_evidence(evidence_map, "nist_rmf", state)
    mrm = resolve_evidence(evidence_map, "model_risk_management", state)
    # the open question is filled by the answer ...
    assert nist.answers["lawful-basis"] == "contract"
    assert nist.sources["lawful-basis"] == "human_answers.lawful-basis"
    # ... the facts derived from the requirements are not
    assert nist.answers["model-risk"] == mrm.answers["model-risk"] == "High"
    assert nist.sources["model-risk"] == "requirements.risk_level"
    assert nist.disputed["model-risk"] == {
        "answer": "Low",
        "source": "human_answers.nist_rmf.model-risk",
    }
    assert mrm.disputed["model-risk"]["answer"] == "Medium"


def test_a_complete_project_answers_every_visible_question_automatically(
    library: PolicyLibrary, evidence_map: EvidenceMap
) -> None:
    state = credit_project_state()
    state["results"]["mlops"] = MLOPS_RESULT
    for framework in ("model_intake", "nist_rmf", "ethical_ai", "model_risk_management"):
        bundle = resolve_evidence(evidence_map, framework, state)
        evaluation = evaluate_policy(library.get(framework).policy, bundle, framework=framework)
        unanswered = [c.key for c in evaluation.checks if c.outcome == "missing" and c.counted]
        assert unanswered == [], f"{framework}: {unanswered}"
        assert evaluation.open_questions == [] or all(
            not q.required for q in evaluation.open_questions
        )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("requirements.data_sources.1.name", "bureau_scores"),
        ("requirements.data_sources[1].sensitivity", "personal"),
        ("requirements.data_sources[name=applications].rows", 5000),
        ("requirements.data_sources[*].sensitivity", ["pii", "personal"]),
        (
            "results.model_validation.artifacts[name=validation_report].uri",
            "runs:/validation/validation_report.html",
        ),
        ("results.model_validation.artifacts[name=nope].uri", None),
        ("results.mlops.evidence.monitoring_plan", None),
        ("requirements.data_sources[7]", None),
    ],
)
def test_paths_walk_mappings_and_lists(path: str, expected: Any) -> None:
    assert lookup_path(credit_project_state(), path) == expected


def test_constants_and_joins(tmp_path: Path) -> None:
    path = tmp_path / "evidence_map.yaml"
    path.write_text(
        "frameworks:\n"
        "  f:\n"
        "    answers:\n"
        "      owner: {value: model-risk-office}\n"
        "      attrs: {source: requirements.sensitive_attributes, join: ' / '}\n"
        "      sources: {source: 'requirements.data_sources[*].name', map: {applications: Apps}}\n",
        encoding="utf-8",
    )
    bundle = resolve_evidence(load_evidence_map(path), "f", credit_project_state())
    assert bundle.answers == {
        "owner": "model-risk-office",
        "attrs": "age_band / sex",
        "sources": ["Apps", "bureau_scores"],
    }
    assert bundle.sources["owner"] == "constant"


BAD_MAPS = [
    ("frameworks: {f: {answers: {a: 'results..x'}}}", "frameworks.f.answers.a"),
    ("frameworks: {f: {answers: {a: 'results.x[b c'}}}", "cannot read path"),
    ("frameworks: {f: {answers: {a: 'results.x[]'}}}", "bad selector"),
    ("frameworks: {f: {answers: {a: {source: x.y, value: 1}}}}", "either 'source'"),
    (
        "frameworks: {f: {answers: {a: {source: x.y, mapping: {}}}}}",
        "frameworks.f.answers.a.mapping: Extra inputs",
    ),
    ("frameworks: {f: {metric_sources: ['[0]']}}", "frameworks.f.metric_sources"),
    ("version: 3\nframeworks: {}", "version: expected 1"),
    ("frameworks: {f: {questions: {}}}", "frameworks.f.questions"),
]


@pytest.mark.parametrize(("text", "message"), BAD_MAPS)
def test_a_bad_evidence_map_is_rejected_with_its_location(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "evidence_map.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(EvidenceMapError) as error:
        load_evidence_map(path)
    assert str(error.value).startswith("evidence_map.yaml: ")
    assert message in str(error.value)


def test_unknown_framework_gets_only_common_answers_and_human_answers(
    evidence_map: EvidenceMap,
) -> None:
    state = credit_project_state()
    state["human_answers"] = {"eu_ai_act": {"risk-class": "High-risk"}}
    bundle = resolve_evidence(evidence_map, "eu_ai_act", state)
    assert bundle.answers["risk-class"] == "High-risk"
    assert set(bundle.answers) - {"risk-class"} <= set(evidence_map.common.answers)
    assert "model-family" in bundle.answers
