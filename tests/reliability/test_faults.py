"""Injected faults (``MPM_FAULTS``): tools and the model raise, time out, hang or answer
nonsense. Every fault ends in a defined state: the stage is retried as configured, then
takes its fallback (``failed_with_fallback``) or fails; a critical failure ends the run
``partial``; a supervisor proposal that makes no sense is overruled by the guard; a
kickoff whose model keeps failing ends ``failed``. The reason is in the state (results,
events), on the MLflow runs and in ``mpm status`` -- never a traceback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from mpm.agents import faults
from mpm.cli.main import app
from mpm.tools.inert import tracked_text
from tests.graph.helpers import drive_to_completion, example, mpm, runner


@pytest.fixture(autouse=True)
def _fresh_fault_counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fault counts are per process; each test starts from zero, without tracing spans."""
    monkeypatch.setenv("MPM_TRACING", "0")
    faults.reset()
    yield
    faults.reset()


def cli(*args: str) -> Any:
    """``mpm ARGS`` in this process (the same Typer app the console script runs)."""
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stdout + result.stderr
    return result


def mlflow_client(workspace: Path) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")


def stage_events(values: dict[str, Any], stage: str) -> list[str]:
    return [e["event"] for e in values["events"] if e["node"] == stage]


# --------------------------------------------------------------------------- stage faults

FALLBACK = "failed_with_fallback"
STAGE_FAULTS = [
    # the fault hits every try of the standard procedure; the fallback procedure works
    ("tool:train_candidates:raise", "injected fault in tool train_candidates", FALLBACK),
    ("tool:train_candidates:malformed", "tool returned str, expected a JSON object", FALLBACK),
    ("tool:train_candidates:hang", "exceeded its timeout of 0.5s", FALLBACK),
    ("model:model_development:raise:3", "injected fault in the model call", FALLBACK),
    ("model:model_development:timeout:3", "the model call timed out", FALLBACK),
    ("model:model_development:hang:3", "exceeded its timeout of 0.5s", FALLBACK),
    # every model answer is broken, the fallback's too: the critical stage fails
    ("model:model_development:unknown_tool", "unknown tool 'no_such_tool'", "failed"),
    ("model:model_development:invalid_json", "invalid tool call", "failed"),
]


@pytest.mark.parametrize(
    ("spec", "reason", "outcome"), STAGE_FAULTS, ids=[s for s, _, _ in STAGE_FAULTS]
)
def test_stage_fault_is_retried_as_configured_then_falls_back_and_is_recorded(
    spec: str, reason: str, outcome: str, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPM_FAULTS", spec)
    req = example(
        "breast_cancer",
        stage_retries={"model_development": 2},
        stage_timeout_s={"model_development": 0.5},
    )
    r = runner(workspace, tracking=True)
    final = drive_to_completion(r, r.start("f1", {"requirements": req}))

    result = final.values["results"]["model_development"]
    assert result["status"] == outcome
    assert result["attempts"] == 3, "one try and the two configured retries"
    assert reason in result["error"]
    assert stage_events(final.values, "model_development") == [
        "stage_started",
        "attempt_failed",
        "attempt_failed",
        "attempt_failed",
        "fallback_started",
        "stage_finished",
    ]
    assert not final.interrupts
    if outcome == FALLBACK:  # the run went on with the fallback model to the end
        assert final.status in {"completed", "partial"}
        assert final.values["results"]["mlops"]["status"] == "success"
    else:  # a critical stage failed: the run stops there, labelled partial
        assert final.status == "partial" and "mlops" not in final.values["results"]
        assert "critical_failure" in [e["event"] for e in final.values["events"]]
        assert "fallback: AgentFailure: stage 'model_development'" in result["summary"]

    client = mlflow_client(workspace)
    parent = client.get_run(final.values["mlflow"]["parent_run_id"])
    assert parent.data.tags["model_development_status"] == outcome
    assert reason in parent.data.params["model_development_error"]
    stage_run = client.get_run(result["mlflow_run_id"])
    assert stage_run.data.tags["stage_status"] == outcome
    assert reason in stage_run.data.tags["error"]
    assert stage_run.info.status == ("FINISHED" if outcome == FALLBACK else "FAILED")

    status = cli("status", "f1", "-w", str(workspace))
    assert status.exit_code == 0
    assert outcome in status.stdout and "attempt_failed" in status.stdout
    assert reason in status.stdout.replace("\n", "")


def test_garbage_from_the_model_fails_a_critical_stage_and_the_run_ends_partial(
    tmp_path: Path, workspace: Path
) -> None:
    """Real tools: the model's garbage produces none of the stage's outputs; the data stage
    is critical and has no fallback, so the run stops there, labelled partial (exit 1)."""
    req = tmp_path / "req.yaml"
    req.write_text(yaml.safe_dump(example("breast_cancer")))
    env = {"MPM_FAULTS": "model:data_acquisition:garbage", "MPM_TRACING": "0"}
    run = mpm("kickoff", "-r", str(req), "-w", str(workspace), "--thread", "g1", env=env)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert "thread g1: partial" in run.stdout

    values = runner(workspace).snapshot("g1").values
    data = values["results"]["data_acquisition"]
    assert data["status"] == "failed" and data["attempts"] == 2
    assert "produced no" in data["error"]
    assert "model_development" not in values["results"]
    assert values["deliverables"]["pipeline_status"] == "partial_success"
    assert "critical_failure" in [e["event"] for e in values["events"]]
    parent = mlflow_client(workspace).get_run(values["mlflow"]["parent_run_id"])
    assert parent.data.tags["data_acquisition_status"] == "failed"
    assert "produced no" in parent.data.params["data_acquisition_error"]
    assert parent.data.tags["pipeline_status"] == "partial_success"
    assert parent.info.status == "FINISHED"

    status = mpm("status", "g1", "-w", str(workspace))
    assert status.returncode == 0 and "Traceback" not in status.stdout + status.stderr
    assert "critical_failure" in status.stdout and "produced no" in status.stdout


# --------------------------------------------------------------------------- supervisor

ROUTE_FAULTS = [
    ("model:RouteDecision:bad_route", "no_such_stage"),
    ("model:RouteDecision:invalid_json", "<model error: OutputParserException"),
    ("model:RouteDecision:raise", "<model error: InjectedFault"),
    ("model:RouteDecision:hang", "<model error: ModelTimeout"),
]


@pytest.mark.parametrize(("spec", "reason"), ROUTE_FAULTS, ids=[s for s, _ in ROUTE_FAULTS])
def test_supervisor_proposal_that_makes_no_sense_is_overruled_by_the_guard(
    spec: str, reason: str, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPM_FAULTS", spec)
    monkeypatch.setenv("MPM_MODEL_TIMEOUT_S", "0.5")
    r = runner(workspace, tracking=True)
    final = drive_to_completion(r, r.start("s1", {"requirements": example("breast_cancer")}))

    events = final.values["events"]
    rejected = [e for e in events if e["event"] == "proposal_rejected"]
    assert rejected and reason in rejected[0]["detail"]
    assert "guard_override" in [e["event"] for e in events]
    # the guard still ran every stage exactly once, in dependency order
    finished = [e["node"] for e in events if e["event"] == "stage_finished"]
    assert sorted(finished) == sorted(s["name"] for s in final.values["plan"]["stages"])
    assert finished.index("data_acquisition") < finished.index("model_development")
    assert final.status in {"completed", "partial"} and not final.interrupts

    parent = mlflow_client(workspace).get_run(final.values["mlflow"]["parent_run_id"])
    # MLflow tags are inert (tools/inert.py): "<model error" is stored as "&lt;model error"
    assert tracked_text(reason) in parent.data.tags["supervisor_proposal_rejected"]
    status = cli("status", "s1", "-w", str(workspace))
    assert "proposal_rejected" in status.stdout and "guard_override" in status.stdout


# --------------------------------------------------------------------------- kickoff

OPENING = (
    "project: Churn Radar\nobjective: predict which subscribers cancel next month\n"
    "model type: classification\nmetric: roc_auc\nthreshold: 0.8\ndata: synthetic:churn (personal)\n"
    "constraints: none\nrisk level: medium"
)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("model:RequirementsDraft:raise", "InjectedFault: injected fault in the model call"),
        ("model:RequirementsDraft:invalid_json", "OutputParserException: injected: invalid JSON"),
    ],
)
def test_kickoff_whose_model_keeps_failing_ends_failed_with_the_reason(
    spec: str, reason: str, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPM_FAULTS", spec)
    args = ("kickoff", "-m", OPENING, "-w", str(workspace), "--thread", "k1", "--no-tracking")
    run = cli(*args)
    assert run.exit_code == 1
    assert "thread k1: failed" in run.stdout
    values = runner(workspace).snapshot("k1").values
    assert values["status"] == "failed"
    failed = [e for e in values["events"] if e["event"] == "kickoff_failed"]
    assert failed and reason in failed[0]["detail"] and "in 2 attempts" in failed[0]["detail"]
    status = cli("status", "k1", "-w", str(workspace))
    assert "kickoff_failed" in status.stdout and reason in status.stdout.replace("\n", "")


def test_kickoff_model_failing_once_is_retried_and_the_kickoff_goes_on(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPM_FAULTS", "model:RequirementsDraft:raise:1")
    run = cli("kickoff", "-m", OPENING, "-w", str(workspace), "--thread", "k2", "--no-tracking")
    assert run.exit_code in (0, 1)
    snapshot = runner(workspace).snapshot("k2")
    # the retried extraction read the opening and went on to the one thing it leaves open:
    # the positive class of the binary target (asked before the restatement is confirmed)
    (question,) = snapshot.interrupts[0]["value"]["questions"]
    assert question["field"] == "positive_class"
    assert "churned" in question["question"] and question["options"] == ["0", "1"]
    assert "kickoff_failed" not in [e["event"] for e in snapshot.values.get("events") or []]


def test_fault_switch_is_off_by_default_and_refuses_unknown_modes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "MPM_FAULTS" not in os.environ
    assert faults.tool_fault("train_candidates") is None
    assert faults.model_fault("model_development") is None
    monkeypatch.setenv("MPM_FAULTS", "model:*:explode")
    with pytest.raises(ValueError, match="model:<scope>"):
        faults.model_fault("model_development")
    monkeypatch.setenv("MPM_FAULTS", "model:data_acquisition:raise:1")
    assert faults.model_fault("model_development") is None
    assert faults.model_fault("data_acquisition") == "raise"
    assert faults.model_fault("data_acquisition") is None, "fires only the configured times"
