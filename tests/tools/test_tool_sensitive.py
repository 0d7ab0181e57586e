"""Sensitive attributes: never model inputs unless the requirements opt in (recorded),
inputs strongly associated with one reported as possible proxies, and the fairness
numbers (per-group selection rate, TPR, FPR, count; parity and equalised-odds
differences against their limits) in the validation results and MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mpm.tools.fairness import PROXY_ASSOCIATION, compare_limits, proxy_findings
from tests.tools.conftest import SENSITIVE


def _train(credit: dict[str, Any], out: str, **kwargs: Any) -> dict[str, Any]:
    from mpm.tools.training import train_candidates

    split = credit["split"]
    return train_candidates(
        split["train_path"],
        split["val_path"],
        "default",
        str(credit["dir"] / out),
        model_type="classification",
        target_metric="roc_auc",
        families=["logistic_regression"],
        recommendations=None,  # derived in training: the path that used to keep them
        seed=7,
        sensitive_attributes=SENSITIVE,
        **kwargs,
    )


def test_sensitive_attributes_are_not_model_inputs_by_default(credit: dict[str, Any]) -> None:
    from mpm.tools.evaluation import load_model, model_input_columns

    trained = _train(credit, "train_sensitive_default")
    inputs = model_input_columns(load_model(trained["model_path"]))
    assert not set(SENSITIVE) & set(inputs)
    assert "annual_income" in inputs  # the others stay
    recorded = trained["sensitive_features"]
    assert recorded["excluded_from_features"] == SENSITIVE
    assert recorded["use_sensitive_attributes"] is False
    assert trained["protocol"]["sensitive_attributes"]["used_as_features"] == []


def test_opting_in_keeps_them_and_is_recorded(credit: dict[str, Any]) -> None:
    from mpm.tools.evaluation import load_model, model_input_columns

    trained = _train(credit, "train_sensitive_kept", use_sensitive_attributes=True)
    inputs = model_input_columns(load_model(trained["model_path"]))
    assert set(SENSITIVE) <= set(inputs)
    assert trained["sensitive_features"]["used_as_features"] == SENSITIVE
    assert "use_sensitive_attributes is true" in trained["sensitive_features"]["rule"]


def test_a_planted_proxy_column_is_reported() -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    n = 2000
    gender = rng.choice(["female", "male"], n)
    # "shopping_segment" follows gender 90% of the time; "tenure" is unrelated
    segment = np.where(rng.random(n) < 0.9, np.where(gender == "female", "a", "b"), "c")
    df = pd.DataFrame(
        {
            "gender": gender,
            "shopping_segment": segment,
            "tenure": rng.integers(0, 120, n),
            "spend": rng.gamma(2.0, 50.0, n) + 40.0 * (gender == "male"),
        }
    )
    findings, associations = proxy_findings(df, ["shopping_segment", "tenure", "spend"], ["gender"])
    flagged = {f["column"]: f for f in findings}
    assert set(flagged) == {"shopping_segment"}
    proxy = flagged["shopping_segment"]
    assert proxy["id"] == "fairness.possible_proxy.shopping_segment"
    assert proxy["severity"] == "warning"
    assert proxy["evidence"]["measure"] == "Cramer's V"
    assert proxy["evidence"]["cramers_v"] >= PROXY_ASSOCIATION
    assert proxy["evidence"]["sensitive_attribute"] == "gender"
    tenure = next(a for a in associations if a["column"] == "tenure")
    assert tenure["cramers_v"] < 0.1


def test_limits_come_from_the_policy_else_the_documented_default() -> None:
    metrics = {"demographic_parity_difference": 0.12, "equalized_odds_difference": 0.04}
    default = compare_limits(metrics)
    assert default["demographic_parity_difference"]["within_limit"] is False
    assert default["demographic_parity_difference"]["source"].startswith("mpm default")
    stated = compare_limits(
        metrics,
        {"demographic_parity_difference": {"value": 0.2, "operator": "<=", "source": "policy x"}},
    )
    assert stated["demographic_parity_difference"] == {
        "value": 0.12,
        "limit": 0.2,
        "operator": "<=",
        "source": "policy x",
        "within_limit": True,
    }
    assert stated["equalized_odds_difference"]["limit"] == 0.1


@pytest.fixture(scope="module")
def credit_fair(
    credit: dict[str, Any], mlflow_store: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    from mpm.tools import tracking
    from mpm.tools.evaluation import validate_model

    trained = _train(credit, "train_fairness")
    c = tracking.client(mlflow_store["uri"])
    run_id = tracking.find_or_create_run(c, mlflow_store["experiment_id"], "fair/run", "fair")
    report = validate_model(
        trained["model_path"],
        credit["split"]["test_path"],
        "default",
        str(tmp_path_factory.mktemp("fair")),
        model_type="classification",
        target_metric="roc_auc",
        success_threshold=0.6,
        sensitive_attributes=SENSITIVE,
        seed=7,
        decision_threshold=0.2,
        positive_class=trained["positive_class"],
        positive_class_reason=trained["positive_class_reason"],
        train_path=credit["split"]["train_path"],
        tracking_uri=mlflow_store["uri"],
        run_id=run_id,
    )
    return {"trained": trained, "report": report, "run_id": run_id}


def test_credit_fairness_numbers_per_group(
    credit: dict[str, Any], credit_fair: dict[str, Any], mlflow_store: dict[str, str]
) -> None:
    import joblib
    import numpy as np
    import pandas as pd

    from mpm.tools import tracking

    report, trained = credit_fair["report"], credit_fair["trained"]
    fairness = report["fairness"]
    assert fairness["positive_class"] == 1 == trained["positive_class"]  # default=1: minority
    assert trained["positive_class_source"] == "minority"
    gender = fairness["attributes"]["gender"]
    # recompute every group's rates from the same predictions, without fairlearn
    test = pd.read_parquet(credit["split"]["test_path"])
    pipe = joblib.load(trained["model_path"])
    p = pipe.predict_proba(test[report["input_columns"]])[:, list(pipe.classes_).index(1)]
    pred, y = (p > 0.2).astype(int), test["default"].to_numpy()
    for group in ("female", "male"):
        rows = (test["gender"] == group).to_numpy()
        shown = gender["per_group"][group]
        assert shown["count"] == rows.sum()
        assert shown["selection_rate"] == pytest.approx(pred[rows].mean())
        assert shown["true_positive_rate"] == pytest.approx(pred[rows & (y == 1)].mean())
        assert shown["false_positive_rate"] == pytest.approx(pred[rows & (y == 0)].mean())
    rates = [gender["per_group"][g]["selection_rate"] for g in ("female", "male")]
    assert gender["demographic_parity_difference"] >= abs(rates[0] - rates[1]) - 1e-12
    assert np.isfinite(gender["equalized_odds_difference"])
    limits = fairness["limits"]
    assert set(limits) == {"demographic_parity_difference", "equalized_odds_difference"}
    assert (
        limits["demographic_parity_difference"]["value"]
        == (fairness["metrics"]["demographic_parity_difference"])
    )
    assert not set(SENSITIVE) & set(report["input_columns"])
    assert fairness["sensitive_inputs"] == []
    # the credit data's `age` is a model input and determines `age_band`: a possible proxy
    assert "fairness.possible_proxy.age" in {f["id"] for f in report["findings"]}
    logged = tracking.client(mlflow_store["uri"]).get_run(credit_fair["run_id"]).data.metrics
    assert logged["fairness_gender_female_selection_rate"] == pytest.approx(rates[0])
    assert logged["fairness_gender_male_count"] == gender["per_group"]["male"]["count"]
    assert logged["demographic_parity_difference_limit"] == 0.1
    saved = Path(report["report_path"]).read_text()
    assert '"per_group"' in saved and '"limits"' in saved
