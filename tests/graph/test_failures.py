"""Stage failures: retries, then the fallback (failed_with_fallback, error recorded in state
and MLflow); a critical failure ends in a partial, labelled result and a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.graph.helpers import drive_to_completion, example, mpm, runner


def test_failing_stage_retries_then_takes_its_fallback(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPM_FAULTS", "tool:train_candidates:raise")
    r = runner(workspace, tracking=True)
    outcome = drive_to_completion(r, r.start("fb1", {"requirements": example("breast_cancer")}))
    result = outcome.values["results"]["model_development"]
    assert result["status"] == "failed_with_fallback"
    assert result["attempts"] == 2  # one try plus max_retries=1
    assert result["tool_calls"] == ["train_baseline"]
    assert "injected fault in tool train_candidates" in result["error"]
    events = [e["event"] for e in outcome.values["events"] if e["node"] == "model_development"]
    assert events == [
        "stage_started",
        "attempt_failed",
        "attempt_failed",
        "fallback_started",
        "stage_finished",
    ]
    # downstream stages still ran on the fallback model
    assert outcome.values["results"]["model_validation"]["status"] == "success"

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    parent = client.get_run(outcome.values["mlflow"]["parent_run_id"])
    assert parent.data.tags["model_development_status"] == "failed_with_fallback"
    assert "injected fault" in parent.data.params["model_development_error"]
    stage_run = client.get_run(result["mlflow_run_id"])
    assert stage_run.data.tags["stage_status"] == "failed_with_fallback"


def test_stage_timeout_counts_as_a_failure(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPM_FAULTS", "tool:run_eda:hang")
    req = example(
        "breast_cancer",
        stage_timeout_s={"exploratory_analysis": 0.5},
        stage_retries={"exploratory_analysis": 0},
    )
    r = runner(workspace)
    outcome = drive_to_completion(r, r.start("to1", {"requirements": req}))
    eda = outcome.values["results"]["exploratory_analysis"]
    assert eda["status"] == "failed" and "exceeded its timeout of 0.5s" in eda["error"]
    # EDA is not critical: the pipeline went on without it
    assert outcome.values["results"]["model_development"]["status"] == "success"


def test_critical_failure_is_partial_with_nonzero_exit(tmp_path: Path, workspace: Path) -> None:
    req_file = tmp_path / "req.yaml"
    req_file.write_text(yaml.safe_dump(example("breast_cancer")))
    env = {"MPM_FAULTS": "tool:acquire_data:raise"}
    result = mpm(
        "kickoff",
        "-r",
        str(req_file),
        "-w",
        str(workspace),
        "--thread",
        "crit1",
        "--toolset",
        "noop",
        "--no-tracking",
        env=env,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "partial" in result.stdout
    status = mpm("status", "crit1", "-w", str(workspace))
    assert status.returncode == 0
    assert "critical_failure" in status.stdout and "data_acquisition" in status.stdout
    metadata = workspace / "runs" / "crit1" / "deliverables" / "pipeline_metadata.json"
    import json

    data = json.loads(metadata.read_text())
    assert data["final_status"] == "partial_success"
    assert {s["name"]: s["status"] for s in data["stages"]}["data_acquisition"] == "failed"
    assert {s["name"]: s["status"] for s in data["stages"]}["mlops"] == "not run"
