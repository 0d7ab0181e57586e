"""Ctrl-C and SIGTERM stop a run without stranding it; a timed-out stage's worker really
stops; read commands leave the disk as they found it.

The stops here are real signals sent to a real ``mpm kickoff`` process, at a moment the
test knows from the process's own output (the tool it is in), never after a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mpm.agents import faults
from mpm.graph.nodes import stage
from tests.conftest import MPM_ENV_VARS
from tests.graph.helpers import REPO, example, runner


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in MPM_ENV_VARS}
    return base | {"COLUMNS": "200", "MPM_TRACING": "0", "PYTHONUNBUFFERED": "1"} | extra


def _kickoff_until(
    workspace: Path, thread: str, requirements: Path, marker: str, env: dict[str, str]
) -> tuple[subprocess.Popen[str], list[str]]:
    """Start ``mpm kickoff`` and return once its output shows ``marker``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpm", "kickoff", "-r", str(requirements)]
        + ["-w", str(workspace), "-t", thread, "--no-tracking"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            return proc, seen
    raise AssertionError(f"kickoff ended before {marker!r}:\n{''.join(seen)}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_stage_stops_at_once_and_resume_completes_the_stage(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """A stop inside a stage's tool: the process says what it stops and ends with
    128 + signal; the stop is not recorded as a failed attempt, and ``mpm resume`` runs the
    stage again to the same result as a run never stopped."""
    requirements = tmp_path / "req.yaml"
    requirements.write_text(yaml.safe_dump(example("breast_cancer")))
    workspace = tmp_path / "ws"
    # the first train_candidates call hangs (in Python, as a slow tool would): the stop
    # arrives while the stage is certainly inside that tool
    env = _env(MPM_FAULTS="tool:train_candidates:hang:1")
    proc, seen = _kickoff_until(workspace, "s", requirements, "· train_candidates", env)
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=30)
    output = "".join(seen) + rest
    assert proc.returncode == 128 + sig, output
    name = signal.Signals(sig).name
    assert f"{name}: stopping thread s: stage model_development (tool train_candidates)" in output
    assert "Traceback" not in output

    stopped = runner(workspace).snapshot("s")
    assert stopped.status == "running"  # cut off mid-step, which resume continues
    assert "model_development" not in (stopped.values.get("results") or {})

    resumed = subprocess.run(
        [sys.executable, "-m", "mpm", "resume", "s", "-w", str(workspace)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = runner(workspace).snapshot("s")
    assert after.status == "waiting"  # the approvals, as in an uninterrupted run
    dev = after.values["results"]["model_development"]
    assert dev["status"] == "success" and dev["attempts"] == 1  # the stop was no failure


class _Stopped(BaseException):
    """The process "ended" here (raised past every handler, like an exit)."""


def test_resume_continues_a_thread_whose_tasks_all_wrote_before_the_stop(
    tmp_path: Path,
) -> None:
    """A process that ended after every task of a step had written but before the step's
    checkpoint (what a Ctrl-C used to leave): ``resume`` continues the run instead of
    answering "cut off mid-step" forever."""
    r = runner(tmp_path / "ws")
    graph_input = {"requirements": example("breast_cancer"), "settings": r.settings()}
    with r.graph() as g:
        saver = g.checkpointer
        original, calls = saver.put, [0]

        def put(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == 4:  # the step after the plan: its tasks have written
                raise _Stopped
            return original(*args, **kwargs)

        saver.put = put
        with pytest.raises(_Stopped):
            r._drive(g, "w", graph_input)
        state = g.get_state(r.config("w"))
    assert state.tasks and not state.next and not state.interrupts  # stranded, formerly
    assert r.snapshot("w").status == "running"
    outcome = r.resume("w")
    assert outcome.status == "waiting", outcome.status
    assert {"business_analysis", "data_acquisition"} <= set(outcome.values["results"])


def test_timed_out_stage_worker_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker hung in a tool past the stage timeout is stopped, not left running: once
    the attempt has raised its timeout, no thread of the stage is alive."""
    from mpm.agents.base import StageContext, StageTimeout
    from mpm.graph.context import RunContext
    from mpm.graph.state import StageSpec

    monkeypatch.setenv("MPM_FAULTS", "tool:*:hang")
    faults.reset()
    spec = StageSpec.model_validate(
        {
            "name": "business_analysis",
            "agent": "business_analyst",
            "task": "analyse",
            "timeout_s": 0.3,
        }
    )
    ctx = RunContext(workspace=str(tmp_path), model="stub", toolset="noop", tracking=False)
    stage_ctx = StageContext(
        stage="business_analysis",
        stage_dir=tmp_path / "stage",
        workspace_root=tmp_path,
        requirements=example("breast_cancer"),
    )
    events: list[dict[str, Any]] = []
    try:
        with pytest.raises(StageTimeout, match="exceeded its timeout"):
            stage._attempt(ctx, spec, stage_ctx, fallback=False, emit=events.append)
    finally:
        faults.reset()
    alive = [t.name for t in threading.enumerate() if t.name == "stage-business_analysis"]
    assert not alive, "the timed-out worker is still running"
    assert any(e.get("event") == "tool" for e in events)  # it was inside a tool
    assert stage_ctx.deadline is None  # the next attempt's context is its own


READ_COMMANDS = [
    ["status", "x"],
    ["approvals"],
    ["runs"],
    ["history", "x"],
    ["audit", "x"],
    ["dashboard", "x"],
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=[a[0] for a in READ_COMMANDS])
def test_read_commands_on_an_empty_directory_create_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    """Neither the default ``./mpm-workspace`` nor a named one, nor a checkpoint file."""
    named = tmp_path / "named"
    for extra in ([], ["-w", str(named)]):
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "mpm", *args, *extra],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=tmp_path,
            timeout=120,
        )
        assert proc.returncode in (0, 2), proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
        assert list(tmp_path.iterdir()) == [], (args, extra, list(tmp_path.iterdir()))
        assert time.monotonic() - started < 120
