"""The governance evidence each agent records, from its tools run on real data.

One module-scoped chain runs every toolkit's tools directly (no graph, no model) on
scikit-learn's breast cancer data: business analysis, data acquisition, training,
validation and registration in a temporary MLflow SQLite store. The tests then check
that every evidence key the evidence map reads is present, true to what the tools
returned, and a valid answer for the reference policy questions it feeds; and that
questions needing a person's judgement are left unanswered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mpm.agents import evidence
from mpm.agents.base import GateClosed, StageContext, Toolkit
from mpm.agents.business_analyst import BusinessAnalystToolkit
from mpm.agents.data_wrangler import DataWranglerToolkit
from mpm.agents.mlops_engineer import MLOpsToolkit
from mpm.agents.model_developer import ModelDeveloperToolkit
from mpm.agents.model_validator import ModelValidatorToolkit
from mpm.governance import PolicyLibrary
from mpm.governance._files import reference_dir
from mpm.governance.evaluation import validate_answer
from mpm.governance.evidence_map import load_evidence_map, resolve_evidence
from mpm.tools.naming import registered_model_name

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "reference" / "examples"
FRAMEWORKS = ("model_intake", "nist_rmf", "ethical_ai", "model_risk_management")
# Facts that need a person: no agent may record them.
JUDGEMENT_KEYS = {
    "business_analysis": {
        "consumption_method",
        "externally_exposed",
        "affects_individuals",
        "protected_characteristics",
        "decision_autonomy",
        "out_of_scope_uses",
        "risk_tolerance",
        "business_case_type",
        "affected_groups",
        "harm_severity",
        "lawful_basis",
        "adverse_action_notices",
        "applicable_regulations",
        "llm_vendor_agreement",
    },
    "data_acquisition": {
        "data_protection_controls",
        "access_control",
        "privacy_practices",
        "retention_months",
    },
    "model_development": {"mitigation_steps", "mitigation_rationale"},
    "model_validation": {"conceptual_soundness", "model_card_published", "red_team"},
    "mlops": {
        "next_review_date",
        "usage_restrictions",
        "revalidation_months",
        "oversight_plan",
        "preview_users",
    },
}
GROUP_ATTRIBUTE = "mean radius"  # a real column, cut into quartiles by the fairness tool


def _requirements() -> dict[str, Any]:
    req = yaml.safe_load((EXAMPLES / "breast_cancer.yaml").read_text())
    req.pop("governance_answers", None)
    return {**req, "sensitive_attributes": [GROUP_ATTRIBUTE], "seed": 42}


def _run(toolkit_cls: type[Toolkit], ctx: StageContext, *tools: str) -> Toolkit:
    kit = toolkit_cls(ctx)
    for name in tools:
        getattr(kit, name)()
    kit.finalize()
    return kit


def _result(stage: str, kit: Toolkit) -> dict[str, Any]:
    out = kit.outcome
    return {
        "stage": stage,
        "status": "success",
        "outputs": out.outputs,
        "metrics": out.metrics,
        "evidence": out.evidence,
        "artifacts": out.artifacts,
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from mpm.tools import tracking

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    c = tracking.client(uri)
    experiment_id = tracking.ensure_experiment(c, "agent-evidence", root / "artifacts")
    return {"uri": uri, "experiment_id": experiment_id, "client": c}


def _stage_run(store: dict[str, Any], stage: str) -> str:
    from mpm.tools import tracking

    return tracking.find_or_create_run(
        store["client"], store["experiment_id"], f"evidence-test/{stage}", stage
    )


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, store: dict[str, Any]) -> dict[str, Any]:
    """Every stage's toolkit run in order, each reading the previous stages' outputs."""
    root = tmp_path_factory.mktemp("ws")
    req = _requirements()
    results: dict[str, dict[str, Any]] = {}
    kits: dict[str, Toolkit] = {}

    def ctx(stage: str, *, tracked: bool = False, **extra: Any) -> StageContext:
        stage_dir = root / stage
        stage_dir.mkdir()
        return StageContext(
            stage=stage,
            stage_dir=stage_dir,
            workspace_root=root,
            requirements=req,
            upstream=dict(results),
            tracking_uri=store["uri"] if tracked else None,
            run_id=_stage_run(store, stage) if tracked else None,
            experiment_id=store["experiment_id"] if tracked else None,
            seed=42,
            **extra,
        )

    steps: list[tuple[str, type[Toolkit], tuple[str, ...], dict[str, Any]]] = [
        ("business_analysis", BusinessAnalystToolkit, ("analyse_requirements", "assess_risks"), {}),
        (
            "data_acquisition",
            DataWranglerToolkit,
            ("acquire_data", "profile_data", "check_quality", "split_data"),
            {},
        ),
        ("model_development", ModelDeveloperToolkit, (), {}),
        ("model_validation", ModelValidatorToolkit, ("validate_model",), {"tracked": True}),
        (
            "mlops",
            MLOpsToolkit,
            ("register_pipeline_model", "test_registered_model", "write_serving_plan"),
            {
                "tracked": True,
                "governance": {
                    "gated_actions": ["deploy_endpoint", "register_model"],
                    "open_actions": ["register_model"],
                },
            },
        ),
    ]
    for stage, cls, tools, extra in steps:
        if stage == "model_development":
            kit = cls(ctx(stage))
            kit.train_candidates(families=["logistic_regression", "random_forest"])
            kit.explain_model()
            kit.finalize()
        else:
            kit = _run(cls, ctx(stage, **extra), *tools)
        kits[stage] = kit
        results[stage] = _result(stage, kit)
    return {"requirements": req, "results": results, "kits": kits, "root": root}


@pytest.fixture(scope="module")
def library() -> PolicyLibrary:
    return PolicyLibrary.load(reference_dir())


def _evidence(chain: dict[str, Any], stage: str) -> dict[str, Any]:
    return chain["results"][stage]["evidence"]


# --------------------------------------------------------------------------- per stage


def test_business_analyst_records_owner_criterion_and_data_categories_only(chain) -> None:
    ev = _evidence(chain, "business_analysis")
    assert ev["business_owner"] == "lab-analytics"  # requested_by, a role account
    assert ev["success_criterion"] == "accuracy >= 0.9 on the held-out test set"
    assert ev["data_categories"] == ["Public or open data"]  # sklearn:breast_cancer
    assert not JUDGEMENT_KEYS["business_analysis"] & set(ev)


def test_data_categories_stay_open_for_a_file_of_unknown_origin() -> None:
    assert evidence.data_categories([{"uri": "synthetic:credit"}]) == ["Synthetic data"]
    assert evidence.data_categories([{"uri": "data/loans.csv", "sensitivity": "personal"}]) is None
    assert (
        evidence.data_categories(
            [{"uri": "synthetic:churn"}, {"uri": "data/x.csv", "sensitivity": "internal"}]
        )
        is None
    )


def test_data_wrangler_records_lineage_with_the_extract_fingerprint_and_split(chain) -> None:
    ev = _evidence(chain, "data_acquisition")
    out = chain["results"]["data_acquisition"]["outputs"]
    assert ev["data_quality_passed"] is True
    assert ev["extract_date"] == dt.date.today().isoformat()
    digest = hashlib.sha256(Path(out["raw_path"]).read_bytes()).hexdigest()
    lineage = ev["data_lineage"]
    assert "sklearn:breast_cancer" in lineage and "569 rows" in lineage
    assert digest in lineage
    split = out["split_info"]
    assert (
        f"train {split['train_rows']}" in lineage and f"test {split['test_rows']} rows" in lineage
    )
    assert split["train_rows"] + split["val_rows"] + split["test_rows"] == 569
    assert not JUDGEMENT_KEYS["data_acquisition"] & set(ev)


def test_model_developer_records_methodology_challengers_limitations_and_explanation(
    chain,
) -> None:
    ev = _evidence(chain, "model_development")
    out = chain["results"]["model_development"]["outputs"]
    assert "3-fold stratified cross-validation" in ev["methodology"]
    assert f"Champion: {out['best_model_name']}" in ev["methodology"]
    by_name = {c["name"]: c for c in out["candidates"]}
    assert set(by_name) == {"logistic_regression", "random_forest"}
    for name, cand in by_name.items():
        assert f"{name} validation accuracy {cand['val_score']:.4f}" in ev["challenger_comparison"]
    assert "569 rows" in ev["limitations"] and "small" in ev["limitations"]
    assert ev["explanation_method"] == "Permutation importance"
    importance = json.loads(Path(out["feature_importance_path"]).read_text())
    # 30 measurements less the one named a sensitive attribute: never a model input
    assert GROUP_ATTRIBUTE not in out["feature_columns"]
    assert len(importance["importances"]) == len(out["feature_columns"]) == 29
    means = [i["mean"] for i in importance["importances"]]
    assert means == sorted(means, reverse=True) and means[0] > 0
    assert not JUDGEMENT_KEYS["model_development"] & set(ev)


def test_a_single_candidate_has_no_challenger_comparison() -> None:
    result = {
        "target_metric": "accuracy",
        "best_model_name": "logistic_regression_baseline",
        "candidates": [{"name": "logistic_regression_baseline", "status": "ok", "val_score": 0.9}],
    }
    assert evidence.challenger_comparison(result) is None


def test_model_validator_records_evaluation_outcomes_and_group_errors(chain) -> None:
    ev = _evidence(chain, "model_validation")
    out = chain["results"]["model_validation"]["outputs"]
    report = json.loads(Path(out["validation_report_path"]).read_text())
    split = chain["results"]["data_acquisition"]["outputs"]["split_info"]
    assert f"held-out test split of {split['test_rows']} rows" in ev["evaluation_approach"]
    assert f"Test accuracy {report['test_score']:.4f}" in ev["outcome_analysis"]
    assert ("met" if report["meets_threshold"] else "NOT met") in ev["outcome_analysis"]
    groups = report["fairness"]["attributes"][GROUP_ATTRIBUTE]["per_group"]
    assert ev["group_error_comparison"].startswith(f"{GROUP_ATTRIBUTE}: ")
    assert all(g in ev["group_error_comparison"] for g in groups) and len(groups) == 4
    stability = ev["stability_check"]
    assert stability["passed"] is (report["robustness"]["relative_drop"] <= 0.05)
    assert stability["relative_drop"] == pytest.approx(report["robustness"]["relative_drop"])
    assert not JUDGEMENT_KEYS["model_validation"] & set(ev)


def test_stability_check_fails_when_noise_costs_more_than_five_percent() -> None:
    failed = evidence.stability_check(
        {"relative_drop": 0.2, "noise_level": 0.1, "clean_score": 0.9, "noisy_score": 0.72},
        "accuracy",
    )
    assert failed is not None and failed["passed"] is False and failed["status"] == "failed"
    assert evidence.stability_check({}, "accuracy") is None


def test_validation_report_artifact_is_named_for_the_map_and_points_into_mlflow(
    chain, store
) -> None:
    result = chain["results"]["model_validation"]
    named = [a for a in result["artifacts"] if a["name"] == "validation_report"]
    assert len(named) == 1
    run_id = named[0]["mlflow_run_id"]
    assert named[0]["uri"] == f"runs:/{run_id}/validation/validation_report.json"
    logged = {f.path for f in store["client"].list_artifacts(run_id, "validation")}
    assert "validation/validation_report.json" in logged
    assert Path(named[0]["path"]).is_file()


def test_mlops_records_a_tested_implementation_and_configured_monitoring(chain) -> None:
    ev = _evidence(chain, "mlops")
    out = chain["results"]["mlops"]["outputs"]
    check = out["implementation_check"]
    assert ev["implementation_tested"] is True and check["passed"] is True
    assert check["n_rows"] == 50 and check["n_mismatches"] == 0
    assert ev["rollback_plan"] is True
    assert out["registered_model_name"] in ev["monitoring_plan"]
    assert "accuracy < 0.9" in ev["monitoring_plan"]
    config = json.loads(Path(out["monitoring_config_path"]).read_text())
    monitored = ev["monitoring_configured"]
    assert monitored["status"] == "configured"
    assert monitored["features_monitored"] == len(config["data_drift"]["features"]) == 30
    assert not JUDGEMENT_KEYS["mlops"] & set(ev)


def test_implementation_check_fails_for_a_model_that_does_not_reproduce(chain, store) -> None:
    """A registered model compared with a different pipeline, and a URI that does not
    load, both fail the check instead of raising."""
    import joblib
    import pandas as pd
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import make_pipeline

    from mpm.tools.serving_check import check_registered_model

    data = chain["results"]["data_acquisition"]["outputs"]
    dev = chain["results"]["model_development"]["outputs"]
    train = pd.read_parquet(data["train_path"])
    other = make_pipeline(DummyClassifier(strategy="uniform", random_state=0))
    other.fit(train[dev["feature_columns"]], train[data["target_column"]])
    other_path = chain["root"] / "other_model.joblib"
    joblib.dump(other, other_path)
    uri = chain["results"]["mlops"]["outputs"]["model_uri"]
    differs = check_registered_model(
        uri,
        str(other_path),
        data["test_path"],
        model_type="classification",
        tracking_uri=store["uri"],
    )
    assert differs["passed"] is False and differs["n_mismatches"] > 0
    missing = check_registered_model(
        "models:/no_such_model/1",
        dev["model_path"],
        data["test_path"],
        model_type="classification",
        tracking_uri=store["uri"],
    )
    assert missing["passed"] is False and "loading or predicting failed" in missing["detail"]


# --------------------------------------------------------------------------- the gate


def test_registration_is_refused_while_the_registration_gate_is_closed(
    chain, store, tmp_path: Path
) -> None:
    gate = {
        "name": "Validated models only in the registry",
        "blocks": ["register_model"],
        "state": "blocked",
    }
    ctx = StageContext(
        stage="mlops",
        stage_dir=tmp_path,
        workspace_root=tmp_path,
        requirements={**chain["requirements"], "project_name": "Gate Closed Project"},
        upstream=chain["results"],
        tracking_uri=store["uri"],
        run_id=_stage_run(store, "mlops-gate-closed"),
        governance={
            "gated_actions": ["register_model"],
            "open_actions": [],
            "closed_gates": {"register_model": [gate["name"]]},
        },
    )
    kit = MLOpsToolkit(ctx)
    with pytest.raises(GateClosed, match="Validated models only in the registry"):
        kit.register_pipeline_model()
    found = store["client"].search_registered_models(
        f"name = '{registered_model_name('Gate Closed Project')}'"
    )
    assert list(found) == [] and "model_uri" not in kit.outcome.outputs


def test_gate_check_blocks_nothing_without_the_governance_keys(tmp_path: Path) -> None:
    def ctx(governance: dict[str, Any]) -> StageContext:
        return StageContext("mlops", tmp_path, tmp_path, {}, governance=governance)

    ctx({}).ensure_open("register_model")
    ctx({"gated_actions": ["register_model"]}).ensure_open("register_model")
    ctx({"gated_actions": ["deploy_endpoint"], "open_actions": []}).ensure_open("register_model")
    with pytest.raises(GateClosed, match="the governance gate on 'register_model'"):
        ctx({"gated_actions": ["register_model"], "open_actions": []}).ensure_open("register_model")


# --------------------------------------------------------------------------- against the policies


def test_every_recorded_answer_is_valid_for_the_policy_question_it_feeds(chain, library) -> None:
    state = {"requirements": chain["requirements"], "results": chain["results"]}
    emap = load_evidence_map()
    validated: set[str] = set()
    results_checked: set[str] = set()
    for framework in FRAMEWORKS:
        bundle = resolve_evidence(emap, framework, state)
        policy = library.get(framework).policy
        for placed in policy.inputs():
            alias = placed.artifact.alias_for_classification
            source = bundle.sources.get(alias or "", "")
            if not (source.startswith("results.") and ".evidence." in source):
                continue
            value, problem = validate_answer(placed.artifact, bundle.answers[alias])
            assert problem is None, f"{framework}:{alias} from {source}: {problem}"
            validated.add(alias)
        for key in ("mrm-stability-check", "mrm-drift-monitor"):
            if framework == "model_risk_management":
                result = bundle.answers[key]
                assert isinstance(result, dict) and result.get("status") in {"passed", "configured"}
                results_checked.add(key)
        if framework in {"nist_rmf", "model_risk_management"}:
            files = {k: v for k, v in bundle.files.items() if "validation_report" in v}
            assert files, f"{framework}: the validation report is not attached"
    assert validated >= {
        "business-owner",
        "accountable-owner",
        "success-criterion",
        "data-categories",
        "data-lineage",
        "data-quality-passed",
        "data-quality-checked",
        "data-extract-date",
        "methodology",
        "limitations",
        "challenger-comparison",
        "explanation-method",
        "explainability-method",
        "evaluation-approach",
        "outcome-analysis",
        "group-error-comparison",
        "monitoring-plan",
        "rollback-plan",
        "implementation-tested",
    }
    assert results_checked == {"mrm-stability-check", "mrm-drift-monitor"}


# --------------------------------------------------------------------------- the examples


@pytest.mark.parametrize("example", ["credit_risk", "breast_cancer"])
def test_example_governance_answers_are_valid_options_of_the_questions_they_name(
    example: str, library: PolicyLibrary
) -> None:
    answers = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())["governance_answers"]
    assert answers
    for framework, given in answers.items():
        inputs = {
            p.artifact.alias_for_classification: p.artifact
            for p in library.get(framework).policy.inputs()
            if p.artifact.alias_for_classification
        }
        for alias, value in given.items():
            assert alias in inputs, f"{example}: {framework} has no question {alias!r}"
            _, problem = validate_answer(inputs[alias], value)
            assert problem is None, f"{example}: {framework}:{alias}: {problem}"


def test_one_example_keeps_the_open_questions_path() -> None:
    data = yaml.safe_load((EXAMPLES / "diabetes_progression.yaml").read_text())
    assert "governance_answers" not in data
