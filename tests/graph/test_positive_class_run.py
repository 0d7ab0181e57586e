"""Governed runs on the real tools: breast_cancer with ``positive_class: malignant``
reports malignant recall and serves the malignant probability; the credit example's
fairness results carry per-group numbers against the ethical AI policy's limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.graph.helpers import drive_to_completion, example, runner


def _run(workspace: Path, name: str, requirements: dict[str, Any]) -> dict[str, Any]:
    from mlflow import MlflowClient

    r = runner(workspace, toolset="real", tracking=True)
    outcome = drive_to_completion(r, r.start(name, {"requirements": requirements}))
    return {
        "values": outcome.values,
        "client": MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}"),
        "workspace": workspace,
    }


@pytest.fixture(scope="module")
def malignant(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    req = example(
        "breast_cancer",
        project_name="Malignancy Recall",
        target_metric="recall",
        success_threshold=0.8,
        positive_class="malignant",
    )
    return _run(tmp_path_factory.mktemp("malignant"), "malignant", req)


def test_breast_cancer_reports_malignant_recall(malignant: dict[str, Any]) -> None:
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.metrics import recall_score

    values = malignant["values"]
    dev = values["results"]["model_development"]["outputs"]
    assert (dev["positive_class"], dev["positive_class_name"]) == (0, "malignant")
    assert dev["positive_class_source"] == "stated"
    val = values["results"]["model_validation"]
    assert val["outputs"]["positive_class"] == 0
    assert "positive class malignant (label 0)" in val["summary"]
    # recompute malignant recall from the saved model and the test split, independently
    data = values["results"]["data_acquisition"]["outputs"]
    test = pd.read_parquet(data["test_path"])
    pipe = joblib.load(dev["model_path"])
    threshold = dev["decision_threshold"] if dev["decision_threshold"] is not None else 0.5
    cols = [str(c) for c in pipe.feature_names_in_]
    p = pipe.predict_proba(test[cols])[:, list(pipe.classes_).index(0)]
    pred = np.where(p > threshold, 0, 1)
    malignant_recall = recall_score(test["target"], pred, pos_label=0)
    assert val["metrics"]["test_recall"] == pytest.approx(malignant_recall)
    assert val["outputs"]["test_score"] == pytest.approx(malignant_recall)
    tracked = malignant["client"].get_run(val["mlflow_run_id"]).data
    assert tracked.metrics["test_recall"] == pytest.approx(malignant_recall)
    assert tracked.tags["positive_class"] == "0"


def test_the_served_probability_is_the_malignant_probability(malignant: dict[str, Any]) -> None:
    values = malignant["values"]
    assert values["results"]["mlops"]["status"] == "success"
    (config,) = Path(malignant["workspace"]).rglob("mlops/pipeline_config.json")
    assert json.loads(config.read_text())["positive_label"] == 0


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    req = example("credit_risk", project_name="Credit Fairness Numbers")
    return _run(tmp_path_factory.mktemp("credit"), "credit-fairness", req)


def test_credit_fairness_numbers_against_the_policy_limits(credit: dict[str, Any]) -> None:
    values = credit["values"]
    val = values["results"]["model_validation"]
    fairness = val["outputs"]["fairness"]
    assert fairness["positive_class"] == 1  # `default` = 1, the minority class
    for attr in ("gender", "age_band"):
        groups = fairness["attributes"][attr]["per_group"]
        assert len(groups) >= 2
        for row in groups.values():
            for rate in ("selection_rate", "true_positive_rate", "false_positive_rate", "count"):
                assert isinstance(row[rate], float)
    dpd = fairness["limits"]["demographic_parity_difference"]
    assert dpd["limit"] == 0.1 and dpd["source"].startswith("policy ethical_ai")
    assert dpd["value"] == fairness["metrics"]["demographic_parity_difference"]
    assert dpd["within_limit"] is (dpd["value"] <= 0.1)
    assert not {"gender", "age_band"} & set(
        values["results"]["model_development"]["outputs"]["feature_columns"]
    )
    tracked = credit["client"].get_run(val["mlflow_run_id"]).data.metrics
    female = fairness["attributes"]["gender"]["per_group"]["female"]
    assert tracked["fairness_gender_female_selection_rate"] == pytest.approx(
        female["selection_rate"]
    )
    assert tracked["demographic_parity_difference"] == pytest.approx(dpd["value"])


def test_the_documented_intervals_are_for_malignant(malignant: dict[str, Any]) -> None:
    # the deliverable and its MLflow copy: breast_cancer's label 0 is not mistaken for "none"
    found = list(Path(malignant["workspace"]).rglob("bootstrap_intervals.json"))
    assert found and {json.loads(p.read_text())["positive_class"] for p in found} == {"0"}
