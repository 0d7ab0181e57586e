"""train_candidates / train_baseline: the selection protocol (CV mean over train+validation,
refit there), MLflow runs, idempotency, reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pandas as pd
import pytest

import mpm.tools.training as training
from mpm.tools import tracking
from mpm.tools.errors import ToolConfigError, TrainingError
from mpm.tools.training import train_baseline, train_candidates


def _children(uri: str, experiment_id: str, parent: str) -> list:
    c = tracking.client(uri)
    return c.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")


def test_chosen_model_is_the_best_candidate_by_cross_validation_mean_in_mlflow(
    credit_trained, mlflow_store, assert_json
) -> None:
    result = credit_trained["result"]
    assert_json(result)
    runs = _children(mlflow_store["uri"], mlflow_store["experiment_id"], credit_trained["run_id"])
    by_name = {r.info.run_name: r for r in runs}
    assert set(by_name) == {
        "logistic_regression_training",
        "random_forest_training",
        "gradient_boosting_training",
    }
    scores = {r.info.run_id: r.data.metrics["cv_roc_auc_mean"] for r in runs}
    best_id = max(scores, key=scores.get)
    assert result["best_model_run_id"] == best_id
    assert result["best_model_score"] == pytest.approx(scores[best_id])
    for r in runs:
        assert r.data.tags["model_quality"] == ("best" if r.info.run_id == best_id else "candidate")
        assert "cv_roc_auc_mean" in r.data.metrics and r.data.params["target_metric"] == "roc_auc"
        assert r.info.status == "FINISHED"
    c = tracking.client(mlflow_store["uri"])
    assert [a.path for a in c.list_artifacts(best_id, "model")] == ["model/model.joblib"]
    parent = c.get_run(credit_trained["run_id"]).data
    assert parent.tags["best_model_run_id"] == best_id
    assert parent.metrics["best_model_score"] == pytest.approx(result["best_model_score"])
    # the protocol, as recorded: selection on the CV mean, refit on train+validation
    assert parent.tags["mpm.selection"] == "cv_mean"
    assert parent.tags["mpm.refit_on"] == "train+validation"
    n_dev = result["n_train_rows"] + result["n_val_rows"]
    best_params = c.get_run(best_id).data.params
    assert best_params["refit_on"] == "train+validation"
    assert int(best_params["refit_rows"]) == n_dev == int(best_params["cv_rows"])
    protocol = json.loads(
        Path(
            c.download_artifacts(credit_trained["run_id"], "training/selection_protocol.json")
        ).read_text()
    )
    assert protocol["chosen"]["name"] == result["best_model_name"]
    assert protocol["refit"] == {
        "on": "train+validation",
        "rows": n_dev,
        "train_rows": result["n_train_rows"],
        "val_rows": result["n_val_rows"],
    }


def test_the_family_is_chosen_on_the_cv_mean_not_one_validation_split(credit_trained) -> None:
    result = credit_trained["result"]
    ok = [c for c in result["candidates"] if c["status"] == "ok"]
    assert result["best_model_score"] == max(c["cv_score"] for c in ok)
    for cand in ok:  # each family's setting too, and its spread is kept next to the mean
        best = max(cand["search"], key=lambda e: e["cv_mean"])
        assert cand["params"] == best["params"] and cand["cv_std"] == best["cv_std"]
        assert len(best["fold_scores"]) == training.CV_FOLDS
        assert best["cv_mean"] == pytest.approx(sum(best["fold_scores"]) / training.CV_FOLDS)


def test_saved_pipeline_is_refitted_on_train_plus_validation(credit, credit_trained) -> None:
    from sklearn.base import clone

    result = credit_trained["result"]
    model = joblib.load(result["model_path"])
    split = credit["split"]
    train, val = pd.read_parquet(split["train_path"]), pd.read_parquet(split["val_path"])
    dev = pd.concat([train, val], ignore_index=True)
    cols = result["feature_columns"]
    test = pd.read_parquet(split["test_path"])
    on_dev = clone(model).fit(dev[cols], dev["default"]).predict_proba(test[cols])
    on_train = clone(model).fit(train[cols], train["default"]).predict_proba(test[cols])
    saved = model.predict_proba(test[cols])
    assert saved == pytest.approx(on_dev, abs=1e-12)
    assert abs(saved - on_train).max() > 1e-6  # a train-only fit would differ
    assert (
        "applicant_id" not in result["feature_columns"]
        and "gender" not in result["feature_columns"]
    )
    assert Path(result["model_path"]).parent == credit["dir"] / "train"


def test_rerun_with_the_same_stage_run_reuses_candidate_runs(
    credit, tmp_path: Path, mlflow_store, stage_run
) -> None:
    kwargs = dict(
        model_type="classification",
        target_metric="f1",
        families=["logistic_regression"],
        tracking_uri=mlflow_store["uri"],
        run_id=stage_run,
    )
    split = credit["split"]
    first = train_candidates(
        split["train_path"], split["val_path"], "default", str(tmp_path), **kwargs
    )
    second = train_candidates(
        split["train_path"], split["val_path"], "default", str(tmp_path), **kwargs
    )
    runs = _children(mlflow_store["uri"], mlflow_store["experiment_id"], stage_run)
    assert len(runs) == 1
    assert first["best_model_run_id"] == second["best_model_run_id"] == runs[0].info.run_id
    assert first["best_model_score"] == second["best_model_score"]


def test_same_seed_gives_the_same_scores(credit, tmp_path: Path) -> None:
    split = credit["split"]
    kwargs = dict(
        model_type="classification", target_metric="accuracy", families=["random_forest"], seed=11
    )
    a = train_candidates(
        split["train_path"], split["val_path"], "default", str(tmp_path / "a"), **kwargs
    )
    b = train_candidates(
        split["train_path"], split["val_path"], "default", str(tmp_path / "b"), **kwargs
    )
    assert a["candidates"][0]["search"] == b["candidates"][0]["search"]
    assert a["best_model_score"] == b["best_model_score"]
    assert a["best_model_run_id"] is None  # tracking off


def test_lower_is_better_metric_picks_the_smallest_rmse(diabetes, tmp_path: Path) -> None:
    split = diabetes["split"]
    result = train_candidates(
        split["train_path"],
        split["val_path"],
        "target",
        str(tmp_path),
        model_type="regression",
        target_metric="rmse",
        seed=3,
    )
    scores = {c["name"]: c["cv_score"] for c in result["candidates"]}
    assert set(scores) == {"ridge", "random_forest", "gradient_boosting"}
    assert result["best_model_name"] == min(scores, key=scores.get)
    assert result["best_model_score"] == min(scores.values())
    assert result["lower_is_better"] is True
    assert result["decision_threshold"] is None  # regression: no threshold
    for cand in result["candidates"]:  # the search kept the lowest cross-validated error
        assert cand["cv_score"] == min(s["cv_mean"] for s in cand["search"])


def test_a_failing_family_is_recorded_and_the_others_still_compete(
    credit, tmp_path: Path, monkeypatch, mlflow_store, stage_run
) -> None:
    real = training._estimator

    def broken(family, *args, **kwargs):
        if family == "random_forest":
            raise RuntimeError("simulated out of memory")
        return real(family, *args, **kwargs)

    monkeypatch.setattr(training, "_estimator", broken)
    split = credit["split"]
    result = train_candidates(
        split["train_path"],
        split["val_path"],
        "default",
        str(tmp_path),
        model_type="classification",
        target_metric="roc_auc",
        families=["logistic_regression", "random_forest"],
        tracking_uri=mlflow_store["uri"],
        run_id=stage_run,
    )
    failed = [c for c in result["candidates"] if c["status"] == "failed"]
    assert [c["name"] for c in failed] == ["random_forest"] and "simulated out of memory" in failed[
        0
    ]["error"]
    assert result["best_model_name"] == "logistic_regression"
    statuses = {
        r.info.run_name: r.info.status
        for r in _children(mlflow_store["uri"], mlflow_store["experiment_id"], stage_run)
    }
    assert statuses == {
        "logistic_regression_training": "FINISHED",
        "random_forest_training": "FAILED",
    }


def test_every_family_failing_raises_training_error(credit, tmp_path: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("nope")

    monkeypatch.setattr(training, "_estimator", broken)
    split = credit["split"]
    with pytest.raises(TrainingError, match="no candidate model could be trained"):
        train_candidates(
            split["train_path"],
            split["val_path"],
            "default",
            str(tmp_path),
            model_type="classification",
            target_metric="f1",
        )


def test_baseline_has_the_same_shape_and_one_tracked_candidate(
    credit, tmp_path: Path, mlflow_store, stage_run
) -> None:
    split = credit["split"]
    result = train_baseline(
        split["train_path"],
        split["val_path"],
        "default",
        str(tmp_path),
        model_type="classification",
        target_metric="roc_auc",
        tracking_uri=mlflow_store["uri"],
        run_id=stage_run,
    )
    assert result["best_model_name"] == "logistic_regression_baseline"
    assert len(result["candidates"]) == 1 and Path(result["model_path"]).is_file()
    runs = _children(mlflow_store["uri"], mlflow_store["experiment_id"], stage_run)
    assert [r.info.run_name for r in runs] == ["logistic_regression_baseline_training"]


def test_baseline_falls_back_to_a_dummy_model(credit, tmp_path: Path, monkeypatch) -> None:
    real = training._estimator

    def broken(family, *args, **kwargs):
        if family == "logistic_regression":
            raise RuntimeError("solver failure")
        return real(family, *args, **kwargs)

    monkeypatch.setattr(training, "_estimator", broken)
    split = credit["split"]
    result = train_baseline(
        split["train_path"],
        split["val_path"],
        "default",
        str(tmp_path),
        model_type="classification",
        target_metric="roc_auc",
    )
    assert result["best_model_name"] == "dummy_baseline"
    assert result["best_model_score"] == pytest.approx(
        0.5
    )  # a prior-only model has no ranking skill


def test_unknown_family_and_wrong_metric_are_config_errors(credit, tmp_path: Path) -> None:
    split = credit["split"]
    args = (split["train_path"], split["val_path"], "default", str(tmp_path))
    with pytest.raises(ToolConfigError, match="unknown 'xgboost'"):
        train_candidates(
            *args, model_type="classification", target_metric="roc_auc", families=["xgboost"]
        )
    with pytest.raises(ToolConfigError, match="target_metric: expected one of"):
        train_candidates(*args, model_type="classification", target_metric="rmse")


def test_text_labels_train_as_they_are_read(credit, tmp_path: Path) -> None:
    """A churn-style target of "yes"/"no" (pandas keeps it in its string dtype, not a numpy
    one): training completes, and the positive class is the label as written."""
    import numpy as np

    split = credit["split"]
    paths = {}
    for part in ("train_path", "val_path"):
        frame = pd.read_parquet(split[part])
        frame["default"] = frame["default"].map({0: "no", 1: "yes"}).astype("string")
        paths[part] = tmp_path / f"{part}.parquet"
        frame.to_parquet(paths[part], index=False)
    assert not isinstance(pd.read_parquet(paths["train_path"])["default"].dtype, np.dtype)
    result = train_candidates(
        str(paths["train_path"]),
        str(paths["val_path"]),
        "default",
        str(tmp_path / "out"),
        model_type="classification",
        target_metric="roc_auc",
        families=["logistic_regression"],
        seed=5,
    )
    assert result["best_model_name"] == "logistic_regression"
    assert 0.5 < result["best_model_score"] <= 1.0
    assert str(result.get("positive_class")) == "yes"
