"""The whole pipeline on real tools, end to end: the numbers the deliverables report are
the numbers MLflow tracked and that a direct computation gives."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mpm.tools.naming import registered_model_name
from tests.graph.helpers import drive_to_completion, example, runner


@pytest.fixture(scope="module")
def credit_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workspace = tmp_path_factory.mktemp("pipeline")
    req = example("credit_risk")
    req["data_sources"][0]["rows"] = 1500
    r = runner(workspace, toolset="real", tracking=True)
    outcome = drive_to_completion(r, r.start("e2e", {"requirements": req}))
    from mlflow import MlflowClient

    return {
        "values": outcome.values,
        "workspace": workspace,
        "client": MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}"),
    }


def _outputs(values: dict[str, Any], stage: str) -> dict[str, Any]:
    return values["results"][stage]["outputs"]


def test_every_stage_succeeded_and_the_model_was_registered(credit_run: dict[str, Any]) -> None:
    values = credit_run["values"]
    assert {k: v["status"] for k, v in values["results"].items()} == {
        s["name"]: "success" for s in values["plan"]["stages"]
    }
    assert _outputs(values, "mlops")["registered_model_name"] == registered_model_name(
        "Credit Default Risk"
    )


def test_chosen_model_is_the_best_candidate_tracked_in_mlflow(credit_run: dict[str, Any]) -> None:
    values, client = credit_run["values"], credit_run["client"]
    dev_run = values["results"]["model_development"]["mlflow_run_id"]
    exp = client.get_run(dev_run).info.experiment_id
    children = client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{dev_run}'")
    scores = {}
    for run in children:
        # selection is on the cross-validation mean over train+validation (issue 15)
        metric = run.data.metrics.get("cv_roc_auc_mean")
        if metric is not None:
            scores[run.info.run_id] = metric
    assert len(scores) >= 3, "one nested run per candidate family"
    best_id = max(scores, key=scores.get)
    dev = _outputs(values, "model_development")
    assert dev["best_model_run_id"] == best_id
    assert dev["best_model_score"] == pytest.approx(scores[best_id])
    parent = client.get_run(values["mlflow"]["parent_run_id"])
    assert parent.data.tags["best_model_run_id"] == best_id
    assert parent.data.metrics["best_model_score"] == pytest.approx(scores[best_id])


def test_reported_test_score_and_fairness_equal_a_direct_computation(
    credit_run: dict[str, Any],
) -> None:
    import joblib
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
    from sklearn.metrics import roc_auc_score

    values = credit_run["values"]
    data = _outputs(values, "data_acquisition")
    model = joblib.load(_outputs(values, "model_development")["model_path"])
    test = pd.read_parquet(data["test_path"])
    y = test[data["target_column"]]
    proba = model.predict_proba(test.drop(columns=[data["target_column"]]))[:, 1]
    validation = values["results"]["model_validation"]
    assert validation["outputs"]["test_score"] == pytest.approx(roc_auc_score(y, proba))
    # labels at the decision threshold model development tuned on its validation folds
    threshold = _outputs(values, "model_development")["decision_threshold"]
    pred = (proba > (0.5 if threshold is None else threshold)).astype(int)
    assert validation["outputs"]["decision_threshold"] == threshold
    report = json.loads(Path(validation["outputs"]["validation_report_path"]).read_text())
    gender = report["fairness"]["attributes"]["gender"]
    # groups too small to measure (fewer than 20 test rows) are reported, not compared
    kept = ~test["gender"].astype(str).isin(gender["excluded_groups"])
    assert kept.sum() > 0.9 * len(test)
    assert gender["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y[kept], pred[kept], sensitive_features=test["gender"][kept])
    )
    assert gender["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y[kept], pred[kept], sensitive_features=test["gender"][kept])
    )


def test_registered_model_reloads_from_the_registry_and_predicts(
    credit_run: dict[str, Any],
) -> None:
    import mlflow

    from mpm.tools.tracking import use_tracking_uri

    values = credit_run["values"]
    data = _outputs(values, "data_acquisition")
    test = pd.read_parquet(data["test_path"])
    with use_tracking_uri(values["mlflow"]["tracking_uri"]):
        model = mlflow.pyfunc.load_model(
            f"models:/{registered_model_name('Credit Default Risk')}/1"
        )
    out = model.predict(test.drop(columns=[data["target_column"]]))
    assert len(out) == len(test)
    assert set(out["prediction"].unique()) <= {0, 1}
    assert out["probability"].between(0, 1).all()
    # the served labels use the tuned decision threshold, as validated
    threshold = _outputs(values, "model_development")["decision_threshold"] or 0.5
    assert (out["prediction"] == (out["probability"] > threshold).astype(int)).all()


def test_summary_and_metadata_carry_the_tracked_numbers(credit_run: dict[str, Any]) -> None:
    values, client = credit_run["values"], credit_run["client"]
    files = values["deliverables"]["files"]
    summary = Path(files["executive_summary.md"]).read_text()
    validation_run = client.get_run(values["results"]["model_validation"]["mlflow_run_id"])
    tracked = validation_run.data.metrics["test_roc_auc"]
    row = re.search(
        r"\| roc_auc on the held-out test set \| >= 0\.75 \| ([0-9.]+) \| (yes|no) \|", summary
    )
    assert row, summary[:2000]
    assert float(row.group(1)) == pytest.approx(tracked, abs=5e-5)
    for heading in (
        "## Business objective",
        "## ROI estimate",
        "ROI not estimated: no business assumptions given",  # the example states none
        "## Risks and mitigations",
        "## Governance",
        "## Resource use",
    ):
        assert heading in summary
    metadata = json.loads(Path(files["pipeline_metadata.json"]).read_text())
    for stage in metadata["stages"]:
        assert stage["mlflow_run_id"] == values["results"][stage["name"]]["mlflow_run_id"]
    parent = client.get_run(values["mlflow"]["parent_run_id"])
    assert parent.data.metrics["pipeline_validation_passed"] == float(
        metadata["validation"]["passed"]
    )
    assert parent.data.metrics["pipeline_stages_completed"] == len(metadata["stages"])
    assert parent.data.tags["pipeline_status"] == metadata["final_status"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {
        "pipeline_metadata.json",
        "executive_summary.md",
        "pipeline_test_suite.json",
        "execution_plan.json",
    } <= artifacts
    suite = json.loads(Path(files["pipeline_test_suite.json"]).read_text())
    execution = suite["execution"]
    assert (
        execution["total"] > 10 and execution["passed"] + execution["failed"] == execution["total"]
    )
    # the generated suite really ran against the registered model: schema, ranges and
    # prediction properties hold; what fails is fairness, which governance flags too
    failing = {r["kind"] for r in execution["results"] if not r["passed"]}
    assert failing <= {"fairness_bound"}, failing
    if failing:
        assert values["governance"]["overall_status"] == "FAILED"


def test_bad_data_fails_its_stage_clearly_and_the_run_degrades(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    (workspace / "data").mkdir(parents=True)
    # passes the kickoff check (the target exists, two classes, enough rows) but one class
    # has a single row: no stratified split can put it in train, validation and test
    pd.DataFrame(
        {"a": [1, 2, 3] * 20, "b": [0.1, 0.2, 0.3] * 20, "defaulted": [0] * 59 + [1]}
    ).to_csv(workspace / "data" / "loans.csv", index=False)
    req = example("breast_cancer", target_column="defaulted", positive_class="1")
    req["data_sources"] = [{"name": "loans", "uri": "data/loans.csv", "sensitivity": "internal"}]
    r = runner(workspace, toolset="real", tracking=True)
    outcome = drive_to_completion(r, r.start("bad", {"requirements": req}))
    data = outcome.values["results"]["data_acquisition"]
    assert data["status"] == "failed"
    assert "defaulted" in data["error"] and "class" in data["error"], data["error"]
    assert outcome.status == "partial"
    assert "model_development" not in outcome.values["results"]
    parent = credit_client(workspace).get_run(outcome.values["mlflow"]["parent_run_id"])
    assert parent.data.tags["data_acquisition_status"] == "failed"
    assert parent.data.tags["pipeline_status"] == "partial_success"


def credit_client(workspace: Path) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
