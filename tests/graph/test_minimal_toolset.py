"""The ``minimal`` toolset (what ``benchmarks/overhead.py`` runs): real but minimal work, so a
governed run ends ``completed`` on measured facts, with a really registered model."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpm.agents.minimal import TOOL_TIME
from tests.graph.helpers import drive_to_completion, example, runner


def test_a_governed_run_on_the_minimal_toolset_completes_with_a_registered_model(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    store = f"sqlite:///{workspace / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)  # where the minimal tool registers
    r = runner(workspace, toolset="minimal")
    before = TOOL_TIME.snapshot()
    outcome = drive_to_completion(r, r.start("minimal", {"requirements": example("breast_cancer")}))
    assert outcome.status == "completed", outcome.values.get("deliverables")

    results = outcome.values["results"]
    validation = results["model_validation"]
    score = validation["outputs"]["test_score"]
    # the criterion was measured (not answered): the logged test metric is the same number
    assert validation["metrics"]["test_accuracy"] == score and score >= 0.9
    assert outcome.values["governance"]["fail_closed"]["blocked"] is False
    checks = outcome.values["deliverables"]["validation"]["checks"]
    assert all(c["passed"] for c in checks.values()), checks

    mlops = results["mlops"]["outputs"]
    versions = MlflowClient(store).search_model_versions(f"name='{mlops['registered_model_name']}'")
    assert [int(v.version) for v in versions] == [mlops["registered_model_version"]]
    assert outcome.values["deliverables"]["test_suite_passed"] is True
    assert TOOL_TIME.snapshot()["calls"] > before["calls"]
