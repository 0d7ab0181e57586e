"""Shared fixtures: every test gets its own workspace and a clean environment."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_POLICIES = REPO.parent / "shared" / "policies"
EXAMPLES = REPO / "reference" / "examples"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "MLFLOW_TRACKING_URI",
        "MPM_WORKSPACE",
        "MPM_CHECKPOINTER",
        "MPM_MODEL",
        "MPM_TOOLSET",
        "MPM_TRACKING",
        "MPM_POLICIES",
        "MPM_FAULTS",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    monkeypatch.setenv("GIT_PYTHON_REFRESH", "quiet")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def shared_policies() -> Path:
    if not SHARED_POLICIES.is_dir():
        pytest.fail(f"the public policies are expected at {SHARED_POLICIES}")
    return SHARED_POLICIES
