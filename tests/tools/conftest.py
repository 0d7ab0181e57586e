"""Shared, session-scoped data and MLflow store for the tool tests.

Training and registering are the slow parts, so one small credit data set is split,
trained and validated once per session and the tests read the results; tests that
change state create their own stage run in the shared store.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

SENSITIVE = ["gender", "age_band"]


def _assert_json(value: Any) -> None:
    """Tool results go into checkpointed graph state: plain JSON, no NaN, no numpy types."""
    json.dumps(value, allow_nan=False)


@pytest.fixture
def assert_json():
    return _assert_json


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from mpm.tools import tracking

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    c = tracking.client(uri)
    experiment_id = tracking.ensure_experiment(c, "tools-tests", root / "artifacts")
    return {"uri": uri, "experiment_id": experiment_id, "root": str(root)}


@pytest.fixture
def stage_run(mlflow_store: dict[str, str]) -> str:
    """A fresh stage run (the parent the tools log under)."""
    from mpm.tools import tracking

    c = tracking.client(mlflow_store["uri"])
    return tracking.find_or_create_run(
        c, mlflow_store["experiment_id"], f"test/{uuid.uuid4()}", "stage"
    )


def _new_run(store: dict[str, str], name: str) -> str:
    from mpm.tools import tracking

    c = tracking.client(store["uri"])
    return tracking.find_or_create_run(
        c, store["experiment_id"], f"session/{name}/{uuid.uuid4()}", name
    )


@pytest.fixture(scope="session")
def credit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """600 synthetic credit rows, acquired and split."""
    from mpm.tools.datasets import acquire_dataset, split_dataset

    d = tmp_path_factory.mktemp("credit")
    acquired = acquire_dataset("synthetic:credit", str(d / "data"), rows=600, seed=7)
    split = split_dataset(
        acquired["path"], "default", str(d / "split"), seed=7, model_type="classification"
    )
    return {"dir": d, "acquired": acquired, "split": split, "target": "default"}


@pytest.fixture(scope="session")
def credit_trained(credit: dict[str, Any], mlflow_store: dict[str, str]) -> dict[str, Any]:
    """EDA recommendations + all candidate families, tracked in the shared store."""
    from mpm.tools.eda import run_eda
    from mpm.tools.training import train_candidates

    split = credit["split"]
    eda = run_eda(
        split["train_path"],
        "default",
        str(credit["dir"] / "eda"),
        model_type="classification",
        sensitive_attributes=SENSITIVE,
    )
    run_id = _new_run(mlflow_store, "training")
    result = train_candidates(
        split["train_path"],
        split["val_path"],
        "default",
        str(credit["dir"] / "train"),
        model_type="classification",
        target_metric="roc_auc",
        recommendations=eda["recommendations"],
        seed=7,
        tracking_uri=mlflow_store["uri"],
        run_id=run_id,
    )
    return {"result": result, "run_id": run_id, "eda": eda}


@pytest.fixture(scope="session")
def credit_validated(
    credit: dict[str, Any], credit_trained: dict[str, Any], mlflow_store: dict[str, str]
) -> dict[str, Any]:
    from mpm.tools.evaluation import validate_model

    run_id = _new_run(mlflow_store, "validation")
    result = validate_model(
        credit_trained["result"]["model_path"],
        credit["split"]["test_path"],
        "default",
        str(credit["dir"] / "validation"),
        model_type="classification",
        target_metric="roc_auc",
        success_threshold=0.7,
        sensitive_attributes=SENSITIVE,
        seed=7,
        tracking_uri=mlflow_store["uri"],
        run_id=run_id,
    )
    return {"result": result, "run_id": run_id}


@pytest.fixture(scope="session")
def credit_registered(
    credit: dict[str, Any],
    credit_trained: dict[str, Any],
    credit_validated: dict[str, Any],
    mlflow_store: dict[str, str],
) -> dict[str, Any]:
    from mpm.tools.pipeline_model import build_pipeline_model

    run_id = _new_run(mlflow_store, "registration")
    info = build_pipeline_model(
        credit_trained["result"]["model_path"],
        credit["split"]["train_path"],
        credit["split"]["test_path"],
        "default",
        str(credit["dir"] / "registration"),
        model_type="classification",
        registered_model_name="credit_pipeline_test",
        tracking_uri=mlflow_store["uri"],
        run_id=run_id,
        validation=credit_validated["result"],
    )
    return {"info": info, "run_id": run_id}


@pytest.fixture(scope="session")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from mpm.tools.datasets import acquire_dataset, split_dataset

    d = tmp_path_factory.mktemp("diabetes")
    acquired = acquire_dataset("sklearn:diabetes", str(d / "data"))
    split = split_dataset(
        acquired["path"], "target", str(d / "split"), seed=3, model_type="regression"
    )
    return {"dir": d, "acquired": acquired, "split": split, "target": "target"}


@pytest.fixture
def make_csv(tmp_path: Path):
    """Write a CSV inside tmp_path from a dict of columns; returns its path."""
    import pandas as pd

    def write(columns: dict[str, list[Any]], name: str = "data.csv") -> Path:
        path = tmp_path / name
        pd.DataFrame(columns).to_csv(path, index=False)
        return path

    return write
