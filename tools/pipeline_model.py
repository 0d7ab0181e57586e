"""Packaging the trained pipeline for serving: ``build_pipeline_model``.

The fitted scikit-learn pipeline is wrapped in the pyfunc model of ``pyfunc_model.py``
(logged as a model from code, so it loads without this package), given a signature, an
input example and pinned pip requirements, logged to the stage's MLflow run and
registered. Re-running after a crash reuses what the first attempt created: a version
already registered from this run, or a model already logged to it.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from collections.abc import Mapping
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any

from mpm.tools import tracking
from mpm.tools.datasets import check_target, read_table
from mpm.tools.errors import ToolConfigError
from mpm.tools.evaluation import load_model, model_input_columns
from mpm.tools.killpoints import maybe_die
from mpm.tools.metrics import check_model_type, positive_label
from mpm.tools.serving_plan import write_serving_plan

LOGGED_MODEL_NAME = "pipeline_model"
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_PINNED = ("scikit-learn", "pandas", "numpy", "mlflow")
_MODEL_ID = re.compile(r"m-[0-9a-f]{32}")

__all__ = ["build_pipeline_model", "model_metadata", "pip_requirements", "write_serving_plan"]


def pip_requirements() -> list[str]:
    """Exact versions of what the pyfunc model needs, from this environment."""
    return [f"{dist}=={_dist_version(dist)}" for dist in _PINNED]


def build_pipeline_model(
    model_path: str,
    train_path: str,
    test_path: str,
    target_column: str,
    out_dir: str,
    *,
    model_type: str,
    registered_model_name: str,
    tracking_uri: str,
    run_id: str,
    decision_threshold: float = 0.5,
    validation: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    positive_class: Any = None,
) -> dict[str, Any]:
    """Log the pyfunc pipeline model to run ``run_id`` and register it as
    ``registered_model_name`` (idempotent per run).

    ``positive_class``: a binary classifier's positive label as training chose it (the
    served ``probability`` is for it and the threshold applies to it; None: the larger
    label). ``validation`` (the result of ``validate_model``), when given, is recorded as tags on
    the model version, as are ``tags`` (e.g. the audit chain head the approvals left).
    Returns ``{model_uri ("models:/<name>/<version>"),
    registered_model_name, version, run_id, logged_model_uri, model_id, input_columns,
    output_columns, model_type, decision_threshold, pip_requirements, reused}``.
    """
    import pandas as pd

    model_type = check_model_type(model_type)
    if not tracking_uri or not run_id:
        raise ToolConfigError(
            "build_pipeline_model: tracking_uri and run_id are required (the model is logged and registered in MLflow)"
        )
    if not _NAME_OK.match(registered_model_name or ""):
        raise ToolConfigError(
            f"registered_model_name: expected letters, digits, '_', '.', '-' (max 100, starting with a letter or digit); got {registered_model_name!r}"
        )
    if model_type == "classification" and not 0.0 < float(decision_threshold) < 1.0:
        raise ToolConfigError(
            f"decision_threshold: expected a probability between 0 and 1; got {decision_threshold!r}"
        )

    c = tracking.client(tracking_uri)
    base = {
        "registered_model_name": registered_model_name,
        "run_id": run_id,
        "model_type": model_type,
        "target_column": target_column,
        "decision_threshold": float(decision_threshold),
        "pip_requirements": pip_requirements(),
    }
    existing = _version_from_run(c, registered_model_name, run_id)
    if existing is not None:
        return {**base, **_describe(c, existing), "reused": True}

    pipeline = load_model(model_path)
    inputs = model_input_columns(pipeline)
    train = read_table(Path(train_path))
    test = read_table(Path(test_path))
    check_target(train, target_column, model_type, f"train split {Path(train_path).name}")
    config: dict[str, Any] = {
        "model_type": model_type,
        "input_columns": inputs,
        "optional_columns": [c for c in inputs if train[c].isna().any()],
        "target_column": target_column,
    }
    if model_type == "classification":
        classes = [c_.item() if hasattr(c_, "item") else c_ for c_ in pipeline.classes_]
        config.update(
            classes=classes,
            positive_label=positive_label(classes, positive_class) if len(classes) == 2 else None,
            decision_threshold=float(decision_threshold),
            label_dtype=str(pd.Series(pipeline.classes_).dtype),
        )
    else:
        y = train[target_column].dropna().astype(float)
        config.update(clip=[float(y.min()), float(y.max())], round_decimals=6)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pipeline_file = out / "sklearn_pipeline.joblib"
    if Path(model_path).resolve() != pipeline_file.resolve():
        shutil.copyfile(model_path, pipeline_file)
    config_file = out / "pipeline_config.json"
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True))

    model_id = _logged_model_in_run(c, run_id)
    if model_id is None:
        model_id = _log(
            tracking_uri, run_id, pipeline, config, inputs, train, test, pipeline_file, config_file
        )
        maybe_die("mlflow.write")
    import mlflow

    version_tags = {**(tags or {})}
    tags = {**version_tags, "mpm.model_type": model_type, "mpm.source_run_id": run_id}
    if validation:
        tags.update(
            {
                "validation_status": "passed"
                if validation.get("meets_threshold")
                else "below_threshold",
                "target_metric": str(validation.get("target_metric")),
                "test_score": str(validation.get("test_score")),
            }
        )
    with tracking.use_tracking_uri(tracking_uri):
        mv = mlflow.register_model(f"models:/{model_id}", registered_model_name, tags=tags)
    maybe_die("mlflow.write")
    return {**base, **_describe(c, mv), "reused": False}


# --------------------------------------------------------------------------- helpers


def _log(
    tracking_uri: str,
    run_id: str,
    pipeline: Any,
    config: dict[str, Any],
    inputs: list[str],
    train: Any,
    test: Any,
    pipeline_file: Path,
    config_file: Path,
) -> str:
    import mlflow
    from mlflow.models import infer_signature

    from mpm.tools.pyfunc_model import PipelineModel

    complete = train[inputs].dropna()
    example = (complete if len(complete) >= 5 else train[inputs]).head(5).reset_index(drop=True)
    # Run the real post-processing to get the output schema, without MLflow in between.
    wrapper = PipelineModel()
    wrapper.pipeline, wrapper.config = pipeline, config
    sample = test[inputs].head(200).reset_index(drop=True)
    with warnings.catch_warnings():
        # Integer columns stay integers: MLflow will not cast int64 input to a double schema.
        warnings.filterwarnings("ignore", message=".*integer column.*", category=UserWarning)
        # The whole training split, so columns that can be missing are marked optional.
        # A binary classifier's threshold can be overridden per request (params).
        params = (
            {"decision_threshold": float(config["decision_threshold"])}
            if config.get("positive_label") is not None
            else None
        )
        signature = infer_signature(train[inputs], wrapper.predict(None, sample), params=params)
    code = Path(__file__).with_name("pyfunc_model.py")
    with tracking.active_run(tracking_uri, run_id):
        info = mlflow.pyfunc.log_model(
            name=LOGGED_MODEL_NAME,
            python_model=str(code),
            artifacts={"sklearn_pipeline": str(pipeline_file), "pipeline_config": str(config_file)},
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements(),
            metadata={
                "mpm": {k: config[k] for k in ("model_type", "target_column", "input_columns")}
            },
        )
    return info.model_id


def _version_from_run(c: Any, name: str, run_id: str) -> Any | None:
    found = [
        v
        for v in c.search_model_versions(f"name='{name}' and run_id='{run_id}'")
        if v.status == "READY"
    ]
    return max(found, key=lambda v: int(v.version)) if found else None


def _logged_model_in_run(c: Any, run_id: str) -> str | None:
    run = c.get_run(run_id)
    models = c.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{LOGGED_MODEL_NAME}'",
    )
    ready = [
        m for m in models if str(getattr(m.status, "name", m.status)).upper().endswith("READY")
    ]
    return sorted(ready, key=lambda m: m.creation_timestamp)[0].model_id if ready else None


def model_metadata(model_uri: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """What a logged pipeline model says about itself: ``{model_type, target_column,
    input_columns, output_columns}`` (from its signature and the metadata this module
    logs), for callers that only kept the model URI."""
    import mlflow

    with tracking.use_tracking_uri(tracking_uri):
        meta = mlflow.models.get_model_info(model_uri)
    out: dict[str, Any] = dict((meta.metadata or {}).get("mpm", {}))
    if meta.signature is not None:
        out["input_columns"] = meta.signature.inputs.input_names()
        out["output_columns"] = meta.signature.outputs.input_names()
    return out


def _describe(c: Any, mv: Any) -> dict[str, Any]:
    """Facts about a registered version, read back from MLflow (also on reuse)."""
    found = _MODEL_ID.search(str(mv.source or ""))
    model_id = getattr(mv, "model_id", None) or (found.group(0) if found else None)
    info: dict[str, Any] = {
        "version": int(mv.version),
        "model_uri": f"models:/{mv.name}/{mv.version}",
        "model_id": model_id,
        "logged_model_uri": f"models:/{model_id}" if model_id else mv.source,
        "input_columns": [],
        "output_columns": [],
    }
    try:
        meta = model_metadata(info["model_uri"], c.tracking_uri)
        info["input_columns"] = meta.get("input_columns", [])
        info["output_columns"] = meta.get("output_columns", [])
    except Exception:  # the description is a convenience; the registration itself stands
        pass
    return info
