"""build_pipeline_model / write_serving_plan: a registered model that loads and predicts."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
import pytest

from mpm.tools import tracking
from mpm.tools.errors import ToolConfigError
from mpm.tools.pipeline_model import build_pipeline_model
from mpm.tools.serving_plan import write_serving_plan


def test_registered_model_reloads_and_predicts_the_test_rows(
    credit, credit_trained, credit_registered, mlflow_store, assert_json
) -> None:
    info = credit_registered["info"]
    assert_json(info)
    assert info["model_uri"] == f"models:/credit_pipeline_test/{info['version']}"
    mlflow.set_tracking_uri(mlflow_store["uri"])
    model = mlflow.pyfunc.load_model(info["model_uri"])
    test = pd.read_parquet(credit["split"]["test_path"])
    out = model.predict(test)  # extra columns (id, target, sensitive) are ignored
    assert list(out.columns) == ["prediction", "probability"] == info["output_columns"]
    assert len(out) == len(test)
    sk = joblib.load(credit_trained["result"]["model_path"])
    expected = sk.predict_proba(test[credit_trained["result"]["feature_columns"]])[:, 1]
    assert np.allclose(out["probability"], expected)
    assert (out["prediction"] == (expected > 0.5).astype(int)).all()
    assert info["input_columns"] == credit_trained["result"]["feature_columns"]
    strict = model.predict(test, params={"decision_threshold": 0.9})
    assert (strict["prediction"] == (expected > 0.9).astype(int)).all()
    assert strict["prediction"].sum() < out["prediction"].sum()


def test_model_is_logged_with_pinned_requirements_and_an_input_example(
    credit_registered, mlflow_store
) -> None:
    mlflow.set_tracking_uri(mlflow_store["uri"])
    uri = credit_registered["info"]["model_uri"]
    requirements = Path(mlflow.pyfunc.get_model_dependencies(uri)).read_text().split()
    for dist in ("scikit-learn", "pandas", "numpy", "mlflow"):
        assert f"{dist}=={version(dist)}" in requirements
    meta = mlflow.models.get_model_info(uri)
    assert meta.saved_input_example_info is not None
    optional = {c.name for c in meta.signature.inputs.inputs if not c.required}
    assert "annual_income" in optional  # has gaps in training, so it may be missing


def test_registration_is_idempotent_for_the_same_run(
    credit, credit_trained, credit_registered, mlflow_store, tmp_path: Path
) -> None:
    again = build_pipeline_model(
        credit_trained["result"]["model_path"],
        credit["split"]["train_path"],
        credit["split"]["test_path"],
        "default",
        str(tmp_path),
        model_type="classification",
        registered_model_name="credit_pipeline_test",
        tracking_uri=mlflow_store["uri"],
        run_id=credit_registered["run_id"],
    )
    assert again["reused"] is True
    assert again["version"] == credit_registered["info"]["version"]
    c = tracking.client(mlflow_store["uri"])
    assert len(c.search_model_versions("name='credit_pipeline_test'")) == 1
    logged = c.search_logged_models(
        [mlflow_store["experiment_id"]],
        filter_string=f"source_run_id = '{credit_registered['run_id']}'",
    )
    assert len(logged) == 1
    tags = c.get_model_version("credit_pipeline_test", str(again["version"])).tags
    assert (
        tags["validation_status"] in ("passed", "below_threshold")
        and tags["target_metric"] == "roc_auc"
    )


def test_a_crash_after_logging_registers_the_already_logged_model(
    credit, credit_trained, mlflow_store, stage_run, tmp_path: Path, monkeypatch
) -> None:
    args = (
        credit_trained["result"]["model_path"],
        credit["split"]["train_path"],
        credit["split"]["test_path"],
        "default",
        str(tmp_path),
    )
    kwargs = dict(
        model_type="classification",
        registered_model_name="crash_test",
        tracking_uri=mlflow_store["uri"],
        run_id=stage_run,
    )

    def crash(*a, **k):
        raise RuntimeError("killed between log and register")

    monkeypatch.setattr(mlflow, "register_model", crash)
    with pytest.raises(RuntimeError):
        build_pipeline_model(*args, **kwargs)
    monkeypatch.undo()
    info = build_pipeline_model(*args, **kwargs)
    c = tracking.client(mlflow_store["uri"])
    assert (
        len(
            c.search_logged_models(
                [mlflow_store["experiment_id"]], filter_string=f"source_run_id = '{stage_run}'"
            )
        )
        == 1
    )
    assert info["version"] == 1 and info["reused"] is False


def test_regression_pipeline_clips_predictions_to_the_training_range(
    diabetes, mlflow_store, stage_run, tmp_path: Path
) -> None:
    from mpm.tools.training import train_candidates

    split = diabetes["split"]
    trained = train_candidates(
        split["train_path"],
        split["val_path"],
        "target",
        str(tmp_path / "t"),
        model_type="regression",
        target_metric="r2",
        families=["ridge"],
    )
    info = build_pipeline_model(
        trained["model_path"],
        split["train_path"],
        split["test_path"],
        "target",
        str(tmp_path / "r"),
        model_type="regression",
        registered_model_name="diabetes_pipeline_test",
        tracking_uri=mlflow_store["uri"],
        run_id=stage_run,
    )
    mlflow.set_tracking_uri(mlflow_store["uri"])
    model = mlflow.pyfunc.load_model(info["model_uri"])
    train = pd.read_parquet(split["train_path"])
    extreme = pd.read_parquet(split["test_path"]).head(5).drop(columns="target")
    extreme[trained["feature_columns"]] = (
        extreme[trained["feature_columns"]] * 50
    )  # far outside training
    out = model.predict(extreme)
    assert out["prediction"].between(train["target"].min(), train["target"].max()).all()
    assert (out["prediction"].isin([train["target"].min(), train["target"].max()])).any()


def test_bad_registered_model_name_and_missing_tracking_are_rejected(
    credit, credit_trained, tmp_path: Path, mlflow_store
) -> None:
    args = (
        credit_trained["result"]["model_path"],
        credit["split"]["train_path"],
        credit["split"]["test_path"],
        "default",
        str(tmp_path),
    )
    with pytest.raises(ToolConfigError, match="registered_model_name"):
        build_pipeline_model(
            *args,
            model_type="classification",
            registered_model_name="x' or '1'='1",
            tracking_uri=mlflow_store["uri"],
            run_id="r",
        )
    with pytest.raises(ToolConfigError, match="tracking_uri and run_id are required"):
        build_pipeline_model(
            *args,
            model_type="classification",
            registered_model_name="ok",
            tracking_uri="",
            run_id="r",
        )


def test_serving_plan_derives_thresholds_from_profile_validation_and_requirements(
    credit, credit_validated, credit_registered, tmp_path: Path
) -> None:
    from mpm.tools.data_quality import profile_dataset

    profile = profile_dataset(
        credit["split"]["train_path"], "default", "classification", out_dir=str(tmp_path / "p")
    )
    requirements = {
        "project_name": "Credit",
        "target_metric": "roc_auc",
        "success_threshold": 0.7,
        "sensitive_attributes": ["gender", "age_band"],
    }
    result = write_serving_plan(
        str(tmp_path),
        model_info=credit_registered["info"],
        profile=profile,
        validation=credit_validated["result"],
        requirements=requirements,
    )
    json.dumps(result, allow_nan=False)  # goes into checkpointed state
    config = json.loads(Path(result["monitoring_config_path"]).read_text())
    assert set(config["data_drift"]["features"]) == set(credit_registered["info"]["input_columns"])
    income = config["data_drift"]["features"]["annual_income"]
    assert income["reference_mean"] == profile["numeric_summary"]["annual_income"]["mean"]
    assert (
        config["performance"]["alert_threshold"] == 0.7
        and config["performance"]["alert_when"] == "roc_auc < 0.7"
    )
    dpd = credit_validated["result"]["metrics"]["demographic_parity_difference"]
    assert config["fairness"]["bounds"]["demographic_parity_difference"]["alert_above"] == round(
        max(0.1, dpd + 0.05), 4
    )
    assert config["rollback"]["triggers"]
    plan = Path(result["serving_plan_path"]).read_text()
    assert credit_registered["info"]["model_uri"] in plan and "## Rollback" in plan


def test_multiclass_pipeline_returns_every_class_probability_and_passes_its_suite(
    mlflow_store, stage_run, tmp_path: Path
) -> None:
    from mpm.tools.datasets import acquire_dataset, split_dataset
    from mpm.tools.evaluation import validate_model
    from mpm.tools.tests_generation import generate_test_suite, run_test_suite
    from mpm.tools.training import train_candidates

    raw = acquire_dataset("sklearn:iris", str(tmp_path / "d"))
    split = split_dataset(
        raw["path"], "target", str(tmp_path / "s"), seed=1, model_type="classification"
    )
    trained = train_candidates(
        split["train_path"],
        split["val_path"],
        "target",
        str(tmp_path / "t"),
        model_type="classification",
        target_metric="roc_auc",
        families=["logistic_regression"],
    )
    validation = validate_model(
        trained["model_path"],
        split["test_path"],
        "target",
        str(tmp_path / "v"),
        model_type="classification",
        target_metric="roc_auc",
        success_threshold=0.9,
    )
    info = build_pipeline_model(
        trained["model_path"],
        split["train_path"],
        split["test_path"],
        "target",
        str(tmp_path / "r"),
        model_type="classification",
        registered_model_name="iris_pipeline_test",
        tracking_uri=mlflow_store["uri"],
        run_id=stage_run,
    )
    assert info["output_columns"] == [
        "prediction",
        "probability",
        "probability_0",
        "probability_1",
        "probability_2",
    ]
    mlflow.set_tracking_uri(mlflow_store["uri"])
    out = mlflow.pyfunc.load_model(info["model_uri"]).predict(pd.read_parquet(split["test_path"]))
    per_class = out[["probability_0", "probability_1", "probability_2"]].to_numpy()
    assert np.allclose(per_class.sum(axis=1), 1.0)
    assert (out["prediction"].to_numpy() == per_class.argmax(axis=1)).all()
    suite = generate_test_suite(
        split["train_path"],
        info,
        validation,
        {"target_metric": "roc_auc", "success_threshold": 0.9},
    )
    result = run_test_suite(suite, info["model_uri"], split["test_path"])
    assert result["all_passed"], [r for r in result["results"] if not r["passed"]]


def test_serving_plan_accepts_a_stages_published_outputs(
    credit, credit_validated, credit_registered, mlflow_store, tmp_path: Path
) -> None:
    info = credit_registered["info"]
    published = {
        "model_uri": info["model_uri"],
        "registered_model_name": info["registered_model_name"],
        "registered_model_version": info["version"],
    }
    mlflow.set_tracking_uri(mlflow_store["uri"])
    result = write_serving_plan(
        str(tmp_path),
        model_info=published,
        profile={},
        validation=credit_validated["result"],
        requirements={"success_threshold": 0.7},
    )
    config = result["monitoring_config"]
    assert config["model"]["version"] == info["version"]
    assert list(config["data_drift"]["features"]) == info["input_columns"]
