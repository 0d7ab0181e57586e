"""validate_model: numbers checked against direct scikit-learn / fairlearn / pandas computations."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import equalized_odds_difference
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score

from mpm.tools import tracking
from mpm.tools.evaluation import calibration, validate_model


@pytest.fixture(scope="module")
def scored(credit, credit_trained):
    model = joblib.load(credit_trained["result"]["model_path"])
    test = pd.read_parquet(credit["split"]["test_path"])
    proba = model.predict_proba(test[list(model.feature_names_in_)])[:, 1]
    return test, proba, model.predict(test[list(model.feature_names_in_)])


def test_test_score_equals_a_direct_sklearn_computation(
    credit_validated, scored, assert_json
) -> None:
    result = credit_validated["result"]
    assert_json(result)
    test, proba, pred = scored
    y = test["default"]
    assert result["test_score"] == pytest.approx(roc_auc_score(y, proba), abs=1e-12)
    assert result["metrics"]["test_roc_auc"] == result["test_score"]
    assert result["metrics"]["test_accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert result["metrics"]["test_f1"] == pytest.approx(f1_score(y, pred))
    assert result["confusion_matrix"]["matrix"] == confusion_matrix(y, pred, labels=[0, 1]).tolist()
    assert result["meets_threshold"] == (result["test_score"] >= 0.7)
    assert Path(result["report_path"]).name == "validation_report.json"
    assert [Path(p).name for p in result["plots"]] == ["calibration.png"]


def test_fairness_numbers_match_a_direct_groupby_and_fairlearn(credit_validated, scored) -> None:
    fairness = credit_validated["result"]["fairness"]["attributes"]
    test, _, pred = scored
    for attr in ("gender", "age_band"):
        counts = test[attr].value_counts()
        big = counts[counts >= 20].index  # groups below 20 rows are left out of the gaps
        rows = test[attr].isin(big).to_numpy()
        rates = pd.Series(pred[rows] == 1).groupby(test[attr][rows].to_numpy()).mean()
        entry = fairness[attr]
        assert entry["demographic_parity_difference"] == pytest.approx(rates.max() - rates.min())
        for group, rate in rates.items():
            assert entry["per_group"][group]["selection_rate"] == pytest.approx(rate)
        eod = equalized_odds_difference(
            test["default"][rows], pred[rows], sensitive_features=test[attr][rows]
        )
        assert entry["equalized_odds_difference"] == pytest.approx(eod)
        assert sorted(entry["excluded_groups"]) == sorted(counts[counts < 20].index)
    worst = max(fairness[a]["demographic_parity_difference"] for a in ("gender", "age_band"))
    assert credit_validated["result"]["metrics"]["demographic_parity_difference"] == worst


def test_metrics_are_logged_to_the_run_with_the_test_prefix(credit_validated, mlflow_store) -> None:
    run = tracking.client(mlflow_store["uri"]).get_run(credit_validated["run_id"])
    flat = credit_validated["result"]["metrics"]
    for name in (
        "test_roc_auc",
        "expected_calibration_error",
        "robustness_drop",
        "demographic_parity_difference",
        "equalized_odds_difference",
    ):
        assert run.data.metrics[name] == pytest.approx(flat[name])
    assert run.data.tags["validation_status"] in ("passed", "below_threshold")


def test_calibration_bins_agree_with_sklearn_calibration_curve() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(2000)
    y = (rng.random(2000) < p**1.5).astype(int)  # a miscalibrated model
    result = calibration(y, np.column_stack([1 - p, p]), [0, 1])
    frac, mean_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    non_empty = [b for b in result["bins"] if b["count"]]
    assert np.allclose([b["fraction_positive"] for b in non_empty], frac)
    assert np.allclose([b["mean_predicted"] for b in non_empty], mean_pred)
    weights = np.array([b["count"] for b in non_empty]) / len(p)
    assert result["expected_calibration_error"] == pytest.approx(
        float(np.sum(weights * np.abs(frac - mean_pred)))
    )
    assert result["expected_calibration_error"] > 0.05


def test_zero_noise_means_zero_robustness_drop(credit, credit_trained, tmp_path: Path) -> None:
    result = validate_model(
        credit_trained["result"]["model_path"],
        credit["split"]["test_path"],
        "default",
        str(tmp_path),
        model_type="classification",
        target_metric="roc_auc",
        success_threshold=0.99,
        noise_level=0.0,
    )
    assert (
        result["robustness"]["drop"] == 0.0 and result["robustness"]["prediction_flip_rate"] == 0.0
    )
    assert result["meets_threshold"] is False  # 0.99 is out of reach
    assert result["fairness"]["attributes"] == {}


def test_missing_sensitive_attribute_is_reported_not_fatal(
    credit, credit_trained, tmp_path: Path
) -> None:
    result = validate_model(
        credit_trained["result"]["model_path"],
        credit["split"]["test_path"],
        "default",
        str(tmp_path),
        model_type="classification",
        target_metric="accuracy",
        success_threshold=0.5,
        sensitive_attributes=["gender", "religion"],
    )
    assert result["fairness"]["missing_attributes"] == ["religion"]
    assert set(result["fairness"]["attributes"]) == {"gender"}


def test_regression_threshold_is_an_upper_bound_for_rmse(diabetes, tmp_path: Path) -> None:
    from mpm.tools.training import train_candidates

    split = diabetes["split"]
    trained = train_candidates(
        split["train_path"],
        split["val_path"],
        "target",
        str(tmp_path / "t"),
        model_type="regression",
        target_metric="rmse",
        families=["ridge"],
    )
    args = (trained["model_path"], split["test_path"], "target", str(tmp_path / "v"))
    loose = validate_model(
        *args,
        model_type="regression",
        target_metric="rmse",
        success_threshold=1000.0,
        sensitive_attributes=["sex"],
    )
    tight = validate_model(
        *args, model_type="regression", target_metric="rmse", success_threshold=1.0
    )
    assert loose["meets_threshold"] is True and tight["meets_threshold"] is False
    assert loose["lower_is_better"] is True
    assert "rmse_gap" in loose["fairness"]["attributes"]["sex"]
    assert loose["robustness"]["drop"] == pytest.approx(
        loose["robustness"]["noisy_score"] - loose["test_score"]
    )
    assert Path(loose["plots"][0]).name == "predicted_vs_actual.png"
