"""Two processes at one thread. Two resumes at once: one drives the thread, the other is
told (exit 3, "being run by another process") and touches nothing. Two approvers deciding
the thread's two parallel approvals at the same moment: both decisions land."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from mpm.graph import audit, inbox
from mpm.graph.workspace import Workspace
from tests.graph.helpers import REPO, approver_for, auto_answer, example, runner
from tests.reliability.driver import KILLED, mlflow_runs, run_mpm
from tests.reliability.test_background_decisions import wait_for_worker


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mpm", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200", "MPM_TRACING": "0", **(env or {})},
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def test_second_resume_of_a_running_thread_is_refused_and_changes_nothing(
    tmp_path: Path, workspace: Path
) -> None:
    # a thread cut off mid-run; resuming it holds the thread for a few seconds, because
    # the (non-critical) EDA tool hangs until the stage's 6 s timeout
    req = tmp_path / "req.yaml"
    req.write_text(
        yaml.safe_dump(
            example(
                "breast_cancer",
                stage_timeout_s={"exploratory_analysis": 6},
                stage_retries={"exploratory_analysis": 0},
            )
        )
    )
    cut = run_mpm(
        ["kickoff", "-r", str(req), "-w", str(workspace), "-t", "race", "--toolset", "noop"],
        {"MPM_KILL_AT": "stage.start:1", "MPM_TRACING": "0"},
    )
    assert cut.returncode == KILLED
    assert runner(workspace).snapshot("race").status == "running"

    slow = {"MPM_FAULTS": "tool:run_eda:hang"}
    procs = [_start("resume", "race", "-w", str(workspace), env=slow) for _ in range(2)]
    results = [_finish(p) for p in procs]

    codes = sorted(code for code, _, _ in results)
    assert codes[0] in (0, 1) and codes[1] == 3, results
    loser = next(r for r in results if r[0] == 3)
    assert loser[2].count("\n") == 1 and "Traceback" not in loser[1] + loser[2]
    assert "thread race is being run by another process" in loser[2]

    values = runner(workspace).snapshot("race").values
    finished = Counter(e["node"] for e in values["events"] if e["event"] == "stage_finished")
    started = Counter(e["node"] for e in values["events"] if e["event"] == "stage_started")
    assert finished == started and set(finished.values()) == {1}, "a stage ran twice"
    assert values["results"]["exploratory_analysis"]["status"] == "failed"
    names = [name for name, _ in mlflow_runs(workspace)]
    assert len(names) == len(set(names)), "the second process created MLflow runs"


def _two_pending_approvals(workspace: Path) -> tuple[Any, list[dict[str, Any]]]:
    r = runner(workspace, tracking=True)
    req = example("breast_cancer")
    outcome = r.start("pair", {"requirements": req})
    while outcome.interrupts[0]["value"]["type"] == "open_questions":
        questions = outcome.interrupts[0]["value"]["questions"]
        outcome = r.answer("pair", "open_questions", {q["key"]: auto_answer(q) for q in questions})
    # the policies' own approvals (a no-op run, which measures nothing, also waits for a
    # risk acceptance of its unmeasured success criterion: not what this test is about)
    pending = [i["value"] for i in outcome.interrupts if i["value"].get("kind") == "approval"]
    assert len(pending) == 2 and all(p["parallel"] for p in pending), pending
    return req, pending


@pytest.mark.parametrize("mode", ["--wait", "background"])
def test_two_approvers_deciding_parallel_approvals_at_once_both_land(
    workspace: Path, mode: str
) -> None:
    """``--wait``: the second approver's process waits for the first's lock, then resumes.
    Default: both return at once; two workers race for the lock -- the first delivers what
    the inbox holds (both, if both are in), the other delivers the rest or finds nothing."""
    req, pending = _two_pending_approvals(workspace)
    flags = ["--wait"] if mode == "--wait" else ["--json"]
    procs = [
        _start(
            "approve",
            "pair",
            p["approval_id"],
            "--as",
            approver_for(p, req["requested_by"]),
            "-c",
            f"reviewed {p['approval_id']}",
            "-w",
            str(workspace),
            *flags,
        )
        for p in pending
    ]
    results = [_finish(p) for p in procs]
    assert all(code == 0 for code, _, _ in results), results
    if mode == "--wait":
        assert all("recorded" in out for _, out, _ in results)
    else:
        workers = [json.loads(out.splitlines()[-1])["continuing"]["pid"] for _, out, _ in results]
        for pid in workers:
            wait_for_worker(pid)
        assert inbox.pending(Workspace(workspace), "pair") == []
        done = inbox.settled(Workspace(workspace), "pair", inbox.DONE)
        assert sorted(e.key for e in done) == sorted(p["approval_id"] for p in pending)

    values = runner(workspace).snapshot("pair").values
    for p in pending:
        assert values["approvals"][p["approval_id"]]["decision"] == "approve"
        assert values["approvals"][p["approval_id"]]["comment"] == f"reviewed {p['approval_id']}"
    accepted = [e["approval_id"] for e in values["audit"] if e["accepted"]]
    assert sorted(accepted) == sorted(p["approval_id"] for p in pending)
    assert audit.verify(values["audit"])[0]
    # the run went on past both approvals
    waiting_for = {
        i["value"].get("approval_id") for i in runner(workspace).snapshot("pair").interrupts
    }
    assert not waiting_for & {p["approval_id"] for p in pending}
