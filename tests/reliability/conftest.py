"""Fixtures for the reliability tests.

A new MLflow SQLite store costs seconds to create (MLflow runs its schema migrations on
first use). The reliability tests make dozens of workspaces, so each starts from a copy of
one empty store created once per session at the current schema -- the same file MLflow
would have created in the workspace itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def seed_workspace(path: Path, template: Path) -> Path:
    """Create the workspace directory with an empty, migrated MLflow store in it."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path / "mlflow.db")
    return path


@pytest.fixture
def workspace(tmp_path: Path, mlflow_template: Path) -> Path:
    return seed_workspace(tmp_path / "ws", mlflow_template)
