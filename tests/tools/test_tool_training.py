"""train_candidates / train_baseline: the real best, MLflow runs, idempotency, reproducibility."""

from __future__ import annotations

from pathlib import Path

import joblib
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score, root_mean_squared_error

import mpm.tools.training as training
from mpm.tools import tracking
from mpm.tools.errors import ToolConfigError, TrainingError
from mpm.tools.training import train_baseline, train_candidates


def _children(uri: str, experiment_id: str, parent: str) -> list:
    c = tracking.client(uri)
    return c.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")


def test_chosen_model_is_the_best_candidate_by_validation_roc_auc_in_mlflow(
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
    scores = {r.info.run_id: r.data.metrics["val_roc_auc"] for r in runs}
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


def test_saved_pipeline_reproduces_the_reported_validation_score(credit, credit_trained) -> None:
    result = credit_trained["result"]
    model = joblib.load(result["model_path"])
    val = pd.read_parquet(credit["split"]["val_path"])
    direct = roc_auc_score(
        val["default"], model.predict_proba(val[result["feature_columns"]])[:, 1]
    )
    assert direct == pytest.approx(result["best_model_score"], abs=1e-12)
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
    scores = {c["name"]: c["val_score"] for c in result["candidates"]}
    assert set(scores) == {"ridge", "random_forest", "gradient_boosting"}
    assert result["best_model_name"] == min(scores, key=scores.get)
    assert result["lower_is_better"] is True
    val = pd.read_parquet(split["val_path"])
    model = joblib.load(result["model_path"])
    assert root_mean_squared_error(
        val["target"], model.predict(val[result["feature_columns"]])
    ) == pytest.approx(result["best_model_score"])
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
