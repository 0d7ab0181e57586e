"""Degenerate and chance-level models fail validation with a blocking finding that says
why: a constant predictor, an AUC whose bootstrap interval contains 0.5, and fairness
figures that are zero only because one class is never predicted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mpm.tools.degenerate import auc_interval


def _frame(n: int, seed: int, signal: float) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    return pd.DataFrame(
        {
            "x1": rng.normal(0, 1, n) + signal * y,
            "x2": rng.normal(0, 1, n),
            "gender": rng.choice(["female", "male"], n),
            "y": y,
        }
    )


def _save(pipe: Any, path: Path) -> str:
    import joblib

    joblib.dump(pipe, path)
    return str(path)


def _validate(model: str, test: Path, out: Path, **kwargs: Any) -> dict[str, Any]:
    from mpm.tools.evaluation import validate_model

    return validate_model(
        model,
        str(test),
        "y",
        str(out),
        model_type="classification",
        target_metric="accuracy",
        success_threshold=0.6,
        seed=5,
        **kwargs,
    )


def test_a_constant_predictor_fails_validation_with_the_degenerate_finding(
    tmp_path: Path,
) -> None:
    from sklearn.dummy import DummyClassifier
    from sklearn.pipeline import Pipeline

    train, test = _frame(400, 1, 2.0), _frame(200, 2, 2.0)
    test.to_parquet(tmp_path / "test.parquet")
    pipe = Pipeline([("model", DummyClassifier(strategy="prior"))]).fit(
        train[["x1", "x2"]], train["y"]
    )
    report = _validate(
        _save(pipe, tmp_path / "m.joblib"),
        tmp_path / "test.parquet",
        tmp_path / "v",
        sensitive_attributes=["gender"],
    )
    # 70% "no" on the test split clears an accuracy target of 0.6 ...
    assert report["meets_threshold"] is True
    # ... and still fails validation, saying why
    ids = {f["id"] for f in report["blocking_findings"]}
    assert {"model.single_class_predictions", "model.constant_scores"} <= ids
    assert "fairness.trivial_parity" in ids  # parity 0 because nobody is selected
    assert report["validation_passed"] is False
    single = next(
        f for f in report["blocking_findings"] if f["id"].endswith("single_class_predictions")
    )
    assert f"predicts class 0 for all {len(test)} test rows" in single["reason"]
    assert report["fairness"]["metrics"]["demographic_parity_difference"] == 0.0
    assert "model.single_class_predictions" in report["verdict"]


def test_chance_level_auc_is_a_finding_with_its_bootstrap_interval(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    train, test = _frame(400, 3, 0.0), _frame(300, 4, 0.0)  # no signal at all
    test.to_parquet(tmp_path / "test.parquet")
    pipe = Pipeline([("model", LogisticRegression())]).fit(train[["x1", "x2"]], train["y"])
    report = _validate(
        _save(pipe, tmp_path / "m.joblib"),
        tmp_path / "test.parquet",
        tmp_path / "v",
        decision_threshold=0.3,  # so that both classes are predicted
    )
    chance = next(f for f in report["blocking_findings"] if f["id"] == "model.chance_level_auc")
    ev = chance["evidence"]
    assert ev["lower"] <= 0.5 <= ev["upper"] or ev["upper"] < 0.5
    assert ev["auc"] == pytest.approx(report["test_metrics"]["roc_auc"])
    assert (
        "stratified percentile bootstrap" in chance["reason"]
        and "1000 resamples" in chance["reason"]
    )
    assert report["validation_passed"] is False
    assert report["metrics"]["test_roc_auc_ci_lower"] == ev["lower"]


def test_a_learnable_model_has_no_degenerate_finding(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    train, test = _frame(400, 5, 2.0), _frame(300, 6, 2.0)
    test.to_parquet(tmp_path / "test.parquet")
    pipe = Pipeline([("model", LogisticRegression())]).fit(train[["x1", "x2"]], train["y"])
    report = _validate(
        _save(pipe, tmp_path / "m.joblib"), tmp_path / "test.parquet", tmp_path / "v"
    )
    assert not [f for f in report["findings"] if f["id"].startswith("model.")]
    assert report["degeneracy"]["auc_interval"]["lower"] > 0.5
    assert report["validation_passed"] is True


def test_the_bootstrap_auc_matches_scikit_learn_and_is_reproducible() -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    truth = rng.random(500) < 0.2
    score = rng.random(500) + 0.5 * truth
    score[:50] = 0.5  # ties are averaged as scikit-learn does
    ci = auc_interval(truth, score, seed=1)
    assert ci["auc"] == pytest.approx(roc_auc_score(truth, score))
    assert ci["lower"] < ci["auc"] < ci["upper"]
    assert auc_interval(truth, score, seed=1) == ci
