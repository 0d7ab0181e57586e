"""Every checkpointer backend keeps a run across processes: a governed thread started by
one ``mpm`` process is answered, approved, inspected and resumed by others, and a process
killed with SIGKILL mid-stage loses only that stage, which ``mpm resume`` re-runs.

Each test runs against SQLite (a file shared by the processes) and PostgreSQL (a fresh
database per test, from ``MPM_TEST_POSTGRES_DSN``; see ``scripts/start_postgres.sh``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from mpm.graph.runner import RunOutcome
from tests.graph.helpers import (
    REPO,
    approver_for,
    auto_answer,
    drive_to_completion,
    example,
    runner,
)

pytestmark = pytest.mark.timeout(300)

# Answers a person would type for each kickoff question (the graph asks only what is missing).
ANSWERS = {
    "project_name": "Biopsy Triage",
    "business_objective": "rank biopsies for review so urgent cases are seen first",
    "model_type": "classification",
    "target_metric": "accuracy",
    "success_threshold": "0.9",
    "data_sources": "sklearn:breast_cancer",
    "constraints": "none",
    "risk_level": "low",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def checkpointer(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A checkpointer URL every process of the test opens: one SQLite file, or a fresh
    PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'checkpoints' / 'threads.db'}"
    return request.getfixturevalue("postgres_database")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MPM_FAULTS"}
    # wide tables so ids are never cut; unbuffered so progress lines arrive as they happen
    env.update(COLUMNS="250", PYTHONUNBUFFERED="1", **extra)
    return env


def _cli(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """One ``mpm`` process with no terminal (stdin at EOF)."""
    return subprocess.run(
        [sys.executable, "-m", "mpm", *args],
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=REPO,
    )


def _flags(workspace: Path, checkpointer: str) -> list[str]:
    return ["-w", str(workspace), "--checkpointer", checkpointer]


def _run_flags(workspace: Path, checkpointer: str) -> list[str]:
    return [*_flags(workspace, checkpointer), "--toolset", "noop", "--no-tracking"]


def _requirements_file(tmp_path: Path) -> Path:
    path = tmp_path / "requirements.yaml"
    path.write_text(yaml.safe_dump(example("breast_cancer")), encoding="utf-8")
    return path


def _snapshot(workspace: Path, checkpointer: str, thread_id: str) -> RunOutcome:
    """The thread as a new process sees it: a new Runner, a new connection."""
    return runner(workspace, checkpointer=checkpointer).snapshot(thread_id)


def _stage_results(outcome: RunOutcome) -> dict[str, dict[str, Any]]:
    """What a stage produced, without what differs between two runs (times, run ids)."""
    keep = ("status", "agent", "summary", "tool_calls", "attempts", "error", "outputs")
    return {
        name: {k: result.get(k) for k in keep}
        for name, result in (outcome.values.get("results") or {}).items()
    }


def _events(outcome: RunOutcome) -> list[tuple[str, str]]:
    return [(e["node"], e["event"]) for e in outcome.values.get("events") or []]


def _write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _finish_in_process(workspace: Path, checkpointer: str, outcome: RunOutcome) -> RunOutcome:
    """Answer and approve whatever is still pending (each call opens a new connection)."""
    return drive_to_completion(runner(workspace, checkpointer=checkpointer), outcome)


def test_governed_run_started_by_one_process_is_decided_and_inspected_by_others(
    tmp_path: Path, workspace: Path, checkpointer: str
) -> None:
    started = _cli(
        "kickoff",
        "-r",
        str(_requirements_file(tmp_path)),
        "-t",
        "cross-a",
        *_run_flags(workspace, checkpointer),
    )
    assert started.returncode == 0, started.stdout + started.stderr
    first = _snapshot(workspace, checkpointer, "cross-a")
    assert first.status == "waiting" and "thread cross-a: waiting" in started.stdout
    (questions,) = [i["value"] for i in first.interrupts]
    assert questions["type"] == "open_questions"

    # the project owner answers from a second process ...
    answers = _write_yaml(
        tmp_path / "answers.yaml", {q["key"]: auto_answer(q) for q in questions["questions"]}
    )
    answered = _cli(
        "answer", "cross-a", "--wait", "--file", str(answers), *_flags(workspace, checkpointer)
    )
    assert answered.returncode == 0, answered.stdout + answered.stderr
    second = _snapshot(workspace, checkpointer, "cross-a")
    assert second.values["human_answers"], "the answers were not stored"
    assert second.values["events"][: len(first.values["events"])] == first.values["events"]

    # ... an approver decides from a third, once the run asks for an approval
    pending = second
    while pending.interrupts and pending.interrupts[0]["value"]["type"] == "open_questions":
        pending = _finish_in_process_one_round(workspace, checkpointer, pending)
    request = next(i["value"] for i in pending.interrupts if i["value"]["type"] == "approval")
    who = approver_for(request, pending.values["requirements"].get("requested_by"))
    approved = _cli(
        "approve",
        "--wait",
        "cross-a",
        request["approval_id"],
        "--as",
        who,
        "--comment",
        "evidence reviewed",
        *_flags(workspace, checkpointer),
    )
    assert approved.returncode in (0, 1), approved.stdout + approved.stderr
    assert f"recorded: approve on {request['approval_id']} by {who}" in approved.stdout
    decided = _snapshot(workspace, checkpointer, "cross-a")
    assert decided.values["approvals"][request["approval_id"]]["approver"] == who

    # the rest of the decisions, then everything is inspected by yet other processes
    done = _finish_in_process(workspace, checkpointer, decided)
    assert done.status in {"completed", "partial"}
    plan = [s["name"] for s in done.values["plan"]["stages"]]
    assert sorted(done.values["results"]) == sorted(plan)

    status = _cli("status", "cross-a", *_flags(workspace, checkpointer))
    assert status.returncode == 0, status.stderr
    assert "Tumour Screening Triage" in status.stdout
    assert f"thread cross-a: {done.status}" in status.stdout
    for name in plan:
        assert name in status.stdout

    history = runner(workspace, checkpointer=checkpointer).history("cross-a")
    listed = _cli("history", "cross-a", *_flags(workspace, checkpointer))
    assert listed.returncode == 0, listed.stderr
    assert [row["checkpoint_id"] for row in history if row["checkpoint_id"] in listed.stdout] == [
        row["checkpoint_id"] for row in history
    ]

    runs = _cli("runs", *_flags(workspace, checkpointer))
    assert runs.returncode == 0, runs.stderr
    (row,) = [line for line in runs.stdout.splitlines() if "cross-a" in line]
    assert "Tumour Screening Triage" in row and done.status in row

    # resuming a finished thread from another process reports it and re-runs nothing
    again = _cli("resume", "cross-a", *_run_flags(workspace, checkpointer))
    assert f"thread cross-a: {done.status}" in again.stdout, again.stdout + again.stderr
    assert _events(_snapshot(workspace, checkpointer, "cross-a")) == _events(done)
    assert len(runner(workspace, checkpointer=checkpointer).history("cross-a")) == len(history)


def _finish_in_process_one_round(
    workspace: Path, checkpointer: str, outcome: RunOutcome
) -> RunOutcome:
    value = outcome.interrupts[0]["value"]
    answers = {q["key"]: auto_answer(q) for q in value["questions"]}
    return runner(workspace, checkpointer=checkpointer).answer(
        outcome.thread_id, "open_questions", answers
    )


def test_kickoff_questions_left_open_are_answered_by_another_process(
    tmp_path: Path, workspace: Path, checkpointer: str
) -> None:
    opening = "We need a classification model on sklearn:breast_cancer.\nconstraints: none"
    # the person starts the chat and walks away from the terminal (stdin at EOF)
    _cli("kickoff", "-m", opening, "-t", "chat-b", *_run_flags(workspace, checkpointer))
    waiting = _snapshot(workspace, checkpointer, "chat-b")
    assert waiting.status == "waiting"
    (pending,) = waiting.interrupts
    assert pending["value"]["type"] == "kickoff_questions"
    fields = [q["field"] for q in pending["value"]["questions"]]
    assert "project_name" in fields and "data_sources" not in fields

    shown = _cli("status", "chat-b", *_flags(workspace, checkpointer))
    assert f"waiting for kickoff answers: {', '.join(fields)}" in shown.stdout
    assert "thread chat-b: waiting" in shown.stdout

    # later, someone else answers from another process
    answers = _write_yaml(tmp_path / "kickoff.yaml", {f: ANSWERS[f] for f in fields})
    asked = _cli(
        "answer", "chat-b", "--wait", "--file", str(answers), *_run_flags(workspace, checkpointer)
    )
    # breast_cancer's target is binary: its positive class is asked next, offered by name
    assert "waiting for kickoff answers: positive_class" in asked.stdout, (
        asked.stdout + asked.stderr
    )
    positive = _write_yaml(tmp_path / "positive.yaml", {"positive_class": "malignant"})
    restated = _cli(
        "answer", "chat-b", "--wait", "--file", str(positive), *_run_flags(workspace, checkpointer)
    )
    # the requirements are restated for confirmation before planning; yes, from a third process
    assert "waiting for kickoff answers: confirm" in restated.stdout, (
        restated.stdout + restated.stderr
    )
    confirm = _write_yaml(tmp_path / "confirm.yaml", {"confirm": "yes"})
    answered = _cli(
        "answer", "chat-b", "--wait", "--file", str(confirm), *_run_flags(workspace, checkpointer)
    )
    after = _snapshot(workspace, checkpointer, "chat-b")
    assert not [i for i in after.interrupts if i["value"].get("type") == "kickoff_questions"], (
        answered.stdout + answered.stderr
    )
    assert f"thread chat-b: {after.status}" in answered.stdout
    requirements = after.values["requirements"]
    assert requirements["project_name"] == ANSWERS["project_name"]
    assert requirements["business_objective"] == ANSWERS["business_objective"]
    assert requirements["data_sources"][0]["uri"] == "sklearn:breast_cancer"
    roles = [t["role"] for t in after.values["conversation"]]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert requirements["positive_class"] == "malignant"
    # the answered thread went on to plan and run its stages
    assert after.values["plan"]["stages"]
    assert after.values["results"]


def test_process_killed_mid_stage_resumes_to_the_same_result(
    tmp_path: Path, workspace: Path, checkpointer: str
) -> None:
    flags = _run_flags(workspace, checkpointer)
    requirements = _requirements_file(tmp_path)

    reference = runner(workspace, checkpointer=checkpointer).start(
        "uncut", {"requirements": example("breast_cancer")}
    )

    # exploratory analysis hangs in its first tool; kill the process while it does
    proc = subprocess.Popen(
        [sys.executable, "-m", "mpm", "kickoff", "-r", str(requirements), "-t", "cut"] + flags,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(MPM_FAULTS="tool:run_eda:hang"),
        cwd=REPO,
    )
    lines: list[str] = []
    blocked = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "run_eda" in line:
                blocked.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not blocked.wait(120):
            pytest.fail("the run never reached run_eda:\n" + "".join(lines))
        # run_eda is announced just before it is called, and it never returns: from here
        # on the process is inside the stage whenever the kill lands
        assert proc.poll() is None, "".join(lines)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        reader.join(10)

    cut = _snapshot(workspace, checkpointer, "cut")
    assert cut.status == "running"  # cut off mid-step, not failed
    assert "data_scientist" in cut.next
    assert "exploratory_analysis" not in cut.values["results"]
    assert {"business_analysis", "data_acquisition"} <= set(cut.values["results"])
    shown = _cli("status", "cut", *_flags(workspace, checkpointer))
    assert "thread cut: running" in shown.stdout and "mpm resume cut" in shown.stdout

    resumed = _cli("resume", "cut", *flags)
    again = _snapshot(workspace, checkpointer, "cut")
    assert again.status == reference.status, resumed.stdout + resumed.stderr
    assert f"thread cut: {again.status}" in resumed.stdout
    assert _stage_results(again) == _stage_results(reference)
    # stages finished before the kill were not run again; the cut one ran once, to the end
    assert _events(again) == _events(reference)

    # and both runs end the same once every decision is in
    reference_done = _finish_in_process(workspace, checkpointer, reference)
    done = _finish_in_process(workspace, checkpointer, again)
    assert done.status == reference_done.status
    assert done.status in {"completed", "partial"}
    assert _stage_results(done) == _stage_results(reference_done)
    assert _events(done) == _events(reference_done)


def test_workers_opening_a_fresh_postgres_database_at_once_all_succeed(
    postgres_database: str, workspace: Path
) -> None:
    code = (
        "import sys\n"
        "from graph.checkpointing import open_checkpointer\n"
        "from graph.workspace import Workspace\n"
        "with open_checkpointer(sys.argv[1], Workspace.resolve(sys.argv[2])) as saver:\n"
        "    assert saver.get_tuple({'configurable': {'thread_id': 'none'}}) is None\n"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", code, postgres_database, str(workspace)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(6)
    ]
    failures = []
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        if worker.returncode != 0:
            failures.append(err.strip().splitlines()[-1] if err.strip() else "no output")
    assert not failures, failures
    # the tables they set up together hold a run
    outcome = runner(workspace, checkpointer=postgres_database).start(
        "after-setup", {"requirements": example("breast_cancer")}
    )
    assert outcome.values["results"] and outcome.status in {"waiting", "completed", "partial"}
    assert runner(workspace, checkpointer=postgres_database).threads()[0]["thread_id"] == (
        "after-setup"
    )
