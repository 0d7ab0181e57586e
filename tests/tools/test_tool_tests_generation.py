"""generate_test_suite / run_test_suite against the registered pyfunc model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mpm.tools.tests_generation import SUITE_KINDS, generate_test_suite, run_test_suite

REQUIREMENTS = {
    "project_name": "Credit",
    "target_metric": "roc_auc",
    "success_threshold": 0.6,
    "sensitive_attributes": ["gender"],
}


@pytest.fixture(scope="module")
def suite(credit, credit_validated, credit_registered, tmp_path_factory):
    return generate_test_suite(
        credit["split"]["train_path"],
        credit_registered["info"],
        credit_validated["result"],
        REQUIREMENTS,
        fairness_bound=0.5,
        out_dir=str(tmp_path_factory.mktemp("suite")),
    )


def test_suite_covers_schema_ranges_predictions_performance_and_fairness(
    suite, credit_registered, assert_json
) -> None:
    assert_json(suite)
    kinds = {t["kind"] for t in suite["tests"]}
    assert kinds == set(SUITE_KINDS) - {"prediction_in_range"}  # that one is for regression
    by_id = {t["id"]: t for t in suite["tests"]}
    assert by_id["schema.columns"]["expected"] == credit_registered["info"]["input_columns"]
    assert by_id["performance.floor"]["threshold"] == 0.6
    assert by_id["prediction.labels"]["classes"] == [0, 1]
    assert json.loads(Path(suite["path"]).read_text())["tests"] == suite["tests"]


def test_value_ranges_come_from_the_training_data(suite, credit) -> None:
    train = pd.read_parquet(credit["split"]["train_path"])
    rng = {t["column"]: t for t in suite["tests"] if t["kind"] == "value_range"}
    assert rng["annual_income"]["min"] == train["annual_income"].min()
    assert rng["annual_income"]["max"] == train["annual_income"].max()
    domain = {t["column"]: t for t in suite["tests"] if t["kind"] == "categorical_domain"}
    assert domain["region"]["allowed"] == sorted(train["region"].unique())


def test_suite_passes_against_the_registered_model_on_the_test_rows(
    suite, credit, credit_registered, mlflow_store, assert_json
) -> None:
    result = run_test_suite(
        suite,
        credit_registered["info"]["model_uri"],
        credit["split"]["test_path"],
        tracking_uri=mlflow_store["uri"],
    )
    assert_json(result)
    failures = [r for r in result["results"] if not r["passed"]]
    assert failures == []
    assert result["passed"] == result["total"] == len(suite["tests"])
    assert result["metrics"] == {"tests_passed": float(result["total"]), "tests_failed": 0.0}


def test_suite_catches_broken_scoring_data(
    suite, credit, credit_registered, mlflow_store, tmp_path: Path
) -> None:
    test = pd.read_parquet(credit["split"]["test_path"])
    test["annual_income"] = test["annual_income"] * 100  # a unit error upstream
    test.loc[: len(test) // 2, "region"] = "atlantis"  # an unseen category
    broken = tmp_path / "broken.parquet"
    test.to_parquet(broken)
    result = run_test_suite(
        suite, credit_registered["info"]["model_uri"], str(broken), tracking_uri=mlflow_store["uri"]
    )
    failed = {r["id"] for r in result["results"] if not r["passed"]}
    assert {"range.annual_income", "domain.region"} <= failed
    assert "schema.columns" not in failed and "prediction.no_nan" not in failed
    assert result["failed"] == len(failed) and result["all_passed"] is False


def test_tightened_performance_and_fairness_bounds_fail(
    suite, credit, credit_validated, credit_registered, mlflow_store
) -> None:
    tightened = []
    for t in suite["tests"]:
        if t["kind"] == "fairness_bound":
            t = {**t, "bound": 0.0}
        elif t["kind"] == "performance_floor":
            t = {**t, "threshold": 0.999}
        tightened.append(t)
    result = run_test_suite(
        {**suite, "tests": tightened},
        credit_registered["info"]["model_uri"],
        credit["split"]["test_path"],
        tracking_uri=mlflow_store["uri"],
    )
    failed = {r["id"]: r["detail"] for r in result["results"] if not r["passed"]}
    assert set(failed) == {
        "performance.floor",
        "fairness.gender.demographic_parity_difference",
        "fairness.gender.equalized_odds_difference",
    }
    dpd = credit_validated["result"]["fairness"]["attributes"]["gender"][
        "demographic_parity_difference"
    ]
    assert f"= {dpd:.4f}" in failed["fairness.gender.demographic_parity_difference"]


def test_suite_can_be_generated_from_just_the_model_uri(
    suite, credit, credit_validated, credit_registered, mlflow_store
) -> None:
    info = credit_registered["info"]
    slim = {"model_uri": info["model_uri"], "registered_model_name": info["registered_model_name"]}
    requirements = {**REQUIREMENTS, "target_column": None}  # the data source named the target
    again = generate_test_suite(
        credit["split"]["train_path"],
        slim,
        credit_validated["result"],
        requirements,
        fairness_bound=0.5,
        tracking_uri=mlflow_store["uri"],
    )
    assert again["target_column"] == "default" and again["model_type"] == "classification"
    assert [t["id"] for t in again["tests"]] == [t["id"] for t in suite["tests"]]
