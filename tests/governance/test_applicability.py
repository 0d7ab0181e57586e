"""Which frameworks apply: one test per rule of applicability.yaml, reasons, and bad rule files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mpm.governance import PolicyLibrary
from mpm.governance._files import reference_dir
from mpm.governance.applicability import (
    ApplicabilityRules,
    ApplicabilityRulesError,
    applicable_frameworks,
    determine_applicability,
    load_applicability_rules,
)
from mpm.graph.state import ProjectRequirements


def requirements(**overrides: Any) -> dict[str, Any]:
    """A low-risk internal regression model: only intake and NIST RMF apply."""
    base: dict[str, Any] = {
        "project_name": "Demand forecast",
        "business_objective": "Forecast weekly demand",
        "project_type": "ml_model",
        "model_type": "regression",
        "target_metric": "rmse",
        "success_threshold": 10.0,
        "data_sources": [{"name": "sales", "uri": "synthetic:churn", "sensitivity": "internal"}],
        "risk_level": "low",
        "regulatory_impact": False,
        "ethical_ai_required": False,
    }
    base.update(overrides)
    return base


def decisions(reqs: dict[str, Any]) -> dict[str, Any]:
    return {a.framework: a for a in determine_applicability(reqs)}


def test_low_risk_internal_model_needs_only_intake_and_nist() -> None:
    assert applicable_frameworks(requirements()) == ["model_intake", "nist_rmf"]


@pytest.mark.parametrize("project_type", ["ml_model", "forecasting", "dashboard", "x"])
def test_free_text_project_type_never_decides_which_frameworks_apply(project_type: str) -> None:
    """``project_type: forecasting`` used to make no framework apply: a classification model
    registered with zero approvals. Applicability keys on controlled fields only."""
    found = decisions(requirements(project_type=project_type, model_type="classification"))
    assert found["model_intake"].applies and found["nist_rmf"].applies
    assert all("project_type" not in a.reason for a in found.values())
    high = decisions(
        requirements(project_type=project_type, risk_level="high", regulatory_impact=True)
    )
    assert high["model_risk_management"].applies


def test_a_rule_on_a_free_text_field_is_refused_when_a_governance_directory_loads(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "applicability.yaml"
    rules.write_text(
        "always: [model_intake]\nframeworks:\n  model_intake:\n"
        "    when: {field: project_type, contains: model}\n",
        encoding="utf-8",
    )
    with pytest.raises(ApplicabilityRulesError) as caught:
        load_applicability_rules(rules, controlled=True)
    message = str(caught.value)
    assert "\n" not in message and "frameworks.model_intake.when.field" in message
    assert "'project_type' is not a controlled field" in message
    nested = tmp_path / "nested.yaml"
    nested.write_text(
        "always: [x]\nframeworks:\n  x:\n    when: {any_item: {field: data_sources, "
        "where: {field: description, contains: people}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ApplicabilityRulesError, match="'description' is not a controlled field"):
        load_applicability_rules(nested, controlled=True)


def test_controlled_rules_must_name_a_framework_every_project_gets(tmp_path: Path) -> None:
    rules = tmp_path / "applicability.yaml"
    rules.write_text(
        "frameworks:\n  model_intake:\n    when: {field: risk_level, equals: high}\n",
        encoding="utf-8",
    )
    with pytest.raises(ApplicabilityRulesError, match="always: expected at least one"):
        load_applicability_rules(rules, controlled=True)
    rules.write_text(
        "always: [model_intake]\nframeworks:\n  model_intake:\n"
        "    when: {field: risk_level, equals: high}\n",
        encoding="utf-8",
    )
    low = determine_applicability(requirements(), load_applicability_rules(rules, controlled=True))
    assert low[0].applies and low[0].reason.startswith("every model project gets it")


def test_ethical_ai_applies_when_asked_for() -> None:
    found = decisions(requirements(ethical_ai_required=True))["ethical_ai"]
    assert found.applies
    assert found.reason == "ethical_ai_required is true"


@pytest.mark.parametrize("sensitivity", ["personal", "pii", "protected", "sensitive", "PII"])
def test_ethical_ai_applies_when_any_source_holds_data_about_people(sensitivity: str) -> None:
    sources = [
        {"name": "sales", "uri": "synthetic:churn", "sensitivity": "internal"},
        {"name": "customers", "uri": "synthetic:churn", "sensitivity": sensitivity},
    ]
    found = decisions(requirements(data_sources=sources))["ethical_ai"]
    assert found.applies
    assert found.reason.startswith(f"data_sources[1].sensitivity {sensitivity!r} is one of")


@pytest.mark.parametrize("sensitivity", ["internal", "public"])
def test_ethical_ai_does_not_apply_to_impersonal_data(sensitivity: str) -> None:
    sources = [{"name": "sensors", "uri": "synthetic:churn", "sensitivity": sensitivity}]
    found = decisions(requirements(data_sources=sources))["ethical_ai"]
    assert not found.applies
    assert "ethical_ai_required is false, not true" in found.reason
    assert f"data_sources[0].sensitivity {sensitivity!r} is not one of" in found.reason


def test_model_risk_management_applies_to_high_risk() -> None:
    found = decisions(requirements(risk_level="high"))["model_risk_management"]
    assert (found.applies, found.reason) == (True, "risk_level is 'high'")


def test_model_risk_management_applies_to_regulatory_impact() -> None:
    found = decisions(requirements(risk_level="medium", regulatory_impact=True))[
        "model_risk_management"
    ]
    assert (found.applies, found.reason) == (True, "regulatory_impact is true")


def test_model_risk_management_does_not_apply_to_medium_unregulated_models() -> None:
    found = decisions(requirements(risk_level="medium"))["model_risk_management"]
    assert not found.applies
    assert (
        found.reason == "risk_level is 'medium', not 'high'; regulatory_impact is false, not true"
    )


def test_external_llm_governance_applies_to_llm_models() -> None:
    found = decisions(requirements(model_type="llm", target_metric="exact_match"))
    assert found["external_llm_governance"].applies
    assert found["external_llm_governance"].reason == "model_type 'llm' contains 'llm'"
    assert not decisions(requirements())["external_llm_governance"].applies


def test_high_risk_credit_model_on_personal_data_gets_four_frameworks() -> None:
    reqs = requirements(
        model_type="classification",
        target_metric="roc_auc",
        success_threshold=0.75,
        risk_level="high",
        regulatory_impact=True,
        data_sources=[{"name": "applications", "uri": "synthetic:credit", "sensitivity": "pii"}],
    )
    assert applicable_frameworks(reqs) == [
        "model_intake",
        "nist_rmf",
        "ethical_ai",
        "model_risk_management",
    ]


def test_a_validated_requirements_model_is_accepted() -> None:
    model = ProjectRequirements.model_validate(
        requirements(risk_level="high", requested_by="ds-lead")
    )
    assert "model_risk_management" in applicable_frameworks(model)


def test_a_missing_field_is_reported_not_guessed() -> None:
    reqs = requirements()
    del reqs["regulatory_impact"]
    found = decisions(reqs)["model_risk_management"]
    assert not found.applies
    assert "regulatory_impact is not set" in found.reason


def test_reference_rules_name_only_frameworks_of_the_reference_library() -> None:
    library = PolicyLibrary.load(reference_dir())
    rules = load_applicability_rules(known_frameworks=library.frameworks)
    assert set(rules.frameworks) == set(library.frameworks)


def test_combinators_not_all_of_and_exists() -> None:
    rules = ApplicabilityRules.from_mapping(
        {
            "frameworks": {
                "strict_review": {
                    "when": {
                        "all_of": [
                            {"not": {"field": "risk_level", "equals": "low"}},
                            {"field": "deadline", "exists": True},
                            {"field": "stakeholders", "contains": "Legal"},
                            {"field": "compute_tier", "in": ["gpu", "large"]},
                        ]
                    }
                }
            }
        }
    )
    yes = requirements(
        risk_level="high", deadline="2025-01-01", stakeholders=["legal"], compute_tier="gpu"
    )
    (decision,) = determine_applicability(yes, rules)
    assert decision.applies
    assert decision.reason == (
        "risk_level is 'high', not 'low' and deadline is set and stakeholders ['legal'] contains 'Legal' "
        "and compute_tier 'gpu' is one of [gpu, large]"
    )
    (decision,) = determine_applicability(
        requirements(risk_level="high", stakeholders=["legal"]), rules
    )
    assert not decision.applies
    assert decision.reason == "deadline is not set"


BAD_RULES = [
    (
        "frameworks: {x: {when: {field: risk_level, equal: high}}}",
        "frameworks.x.when.equal: expected one of equals",
    ),
    (
        "frameworks: {x: {when: {field: risk_level, in: high}}}",
        "frameworks.x.when.in: expected a non-empty list",
    ),
    (
        "frameworks: {x: {when: {field: risk_level, equals: high, in: [high]}}}",
        "frameworks.x.when: expected exactly one of equals",
    ),
    (
        "frameworks: {x: {when: {field: flag, is: 'yes'}}}",
        "frameworks.x.when.is: expected true or false",
    ),
    (
        "frameworks: {x: {when: {any_of: []}}}",
        "frameworks.x.when.any_of: expected a non-empty list",
    ),
    (
        "frameworks: {x: {when: {any_of: [{field: a, is: true}, {any_item: {field: data_sources}}]}}}",
        "frameworks.x.when.any_of[1].any_item: expected a mapping with 'field' and 'where'",
    ),
    (
        "frameworks: {x: {when: {any_item: {field: s, where: {field: t, contains: [a]}}}}}",
        "frameworks.x.when.any_item.where.contains: expected a single value",
    ),
    (
        "frameworks: {x: {when: {field: '', equals: 1}}}",
        "frameworks.x.when.field: expected a dotted field path",
    ),
    ("frameworks: {x: {description: no rule}}", "frameworks.x: expected a mapping with 'when'"),
    (
        "frameworks: {Bad-Id: {when: {field: a, is: true}}}",
        "frameworks.Bad-Id: expected a framework id",
    ),
    (
        "frameworks: {x: {when: {field: a, is: true}, because: y}}",
        "frameworks.x.because: unknown key",
    ),
    ("version: 2\nframeworks: {x: {when: {field: a, is: true}}}", "version: expected 1"),
    ("frameworks: []", "frameworks: expected a non-empty mapping"),
    ("frameworks: {x: {when: [a]}}", "frameworks.x.when: expected a condition mapping"),
    ("frameworks: {x: {when: {field: a, is: true}}", "not valid YAML (line"),
]


@pytest.mark.parametrize(("text", "message"), BAD_RULES)
def test_a_bad_rule_file_is_rejected_with_its_location(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "applicability.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ApplicabilityRulesError) as error:
        load_applicability_rules(path)
    assert str(error.value).startswith("applicability.yaml: ")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_rule_for_a_framework_the_library_lacks_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "applicability.yaml"
    path.write_text("frameworks: {eu_ai_act: {when: {field: a, is: true}}}", encoding="utf-8")
    with pytest.raises(
        ApplicabilityRulesError,
        match=r"frameworks.eu_ai_act: unknown framework; the policy library defines model_intake",
    ):
        load_applicability_rules(path, known_frameworks=["model_intake", "nist_rmf"])


def test_a_missing_rule_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ApplicabilityRulesError, match="file not found"):
        load_applicability_rules(tmp_path / "nope.yaml")
