"""Accepted decisions return once received; a background worker applies them (issue 14.2).

Real processes throughout: ``mpm approve`` / ``mpm answer`` in subprocesses, the detached
worker they start, a worker SIGKILLed by a kill point and a later ``mpm resume``. The
thread's lock, held by the test, is what keeps a worker from delivering (an event, not a
sleep): it proves the approver's command returned without waiting for the run, and gives
the tamper test a moment in which the inbox entry is still undelivered.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mpm.graph import audit, inbox
from mpm.graph.runner import thread_lock
from mpm.graph.workspace import Workspace
from tests.cli.test_read_path import HEAVY, probe, waiting_for_approval
from tests.graph.helpers import approver_for, auto_answer, decision, example, mpm, runner


def last_approval(ws: Path, thread: str) -> tuple[dict[str, Any], str]:
    """A thread of the governed graph at its last pending approval (its questions answered
    and the other approvals decided in-process): (the request, an eligible approver)."""
    r = runner(ws)
    outcome = r.start(thread, {"requirements": example("breast_cancer")})
    requested_by = outcome.values["requirements"].get("requested_by")
    while True:
        value = outcome.interrupts[0]["value"]
        if value["type"] == "open_questions":
            answers = {q["key"]: auto_answer(q) for q in value["questions"]}
            outcome = r.answer(thread, "open_questions", answers)
        elif len(outcome.interrupts) > 1:
            who = approver_for(value, requested_by)
            outcome = r.answer(thread, "approval", decision(value, who), key=value["approval_id"])
        else:
            return value, approver_for(value, requested_by)


def approve(
    ws: Path, thread: str, request: dict[str, Any], who: str, *flags: str, **kw: Any
) -> Any:
    return mpm(
        "approve", thread, request["approval_id"], "--as", who, "-c", "ok", "-w", str(ws), *flags, **kw
    )  # fmt: skip


def wait_for_worker(pid: int, timeout: float = 240.0) -> None:
    """Until the worker process is gone (it is not our child: poll its pid, bounded)."""
    deadline = time.monotonic() + timeout
    while inbox._alive(pid):
        assert time.monotonic() < deadline, f"worker {pid} still running after {timeout} s"
        time.sleep(0.2)


def accepted_entries(ws: Path, thread: str, decision_id: str) -> list[dict[str, Any]]:
    trail = audit.read_trail(ws / "runs" / thread / audit.TRAIL_FILE)
    return [e for e in trail if e.get("decision_id") == decision_id and e["accepted"]]


def settled_names(ws: Path, thread: str, where: str) -> list[str]:
    return [e.name for e in inbox.settled(Workspace(ws), thread, where)]


def test_accepted_approve_returns_before_the_run_goes_on_and_the_worker_takes_it_there(
    tmp_path: Path, workspace: Path
) -> None:
    request, who = last_approval(workspace, "bg")
    aid = request["approval_id"]
    ws = Workspace(workspace)
    with thread_lock(ws, "bg"):  # no process can drive the thread until we let go
        proc, seen = probe(
            tmp_path, "approve", "bg", aid, "--as", who, "-c", "ok", "--json", "-w", str(workspace)
        )
        assert seen["code"] == 0, proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        # returned while the run could not move: it did not wait for the run
        assert out["status"] == "running" and out["decision"]["accepted"] is True
        assert aid not in {w.get("approval_id") for w in out["waiting_for"]}
        worker = out["continuing"]
        assert Path(worker["log"]).is_file() and inbox._alive(worker["pid"])
        assert out["continuing"]["follow"] == ["mpm", "status", "bg"]
        # the approver's process neither built the graph nor imported MLflow
        assert not set(HEAVY) & set(seen["modules"]), set(HEAVY) & set(seen["modules"])
        # the checkpoint still waits for it; the read commands say it is received
        assert aid in {
            i["value"]["approval_id"] for i in runner(workspace).snapshot("bg").interrupts
        }
        status = mpm("status", "bg", "-w", str(workspace))
        shown = " ".join(status.stdout.split())
        assert f"decision received (approve on {aid} by {who}), being applied by worker pid " \
            f"{worker['pid']}" in shown, shown  # fmt: skip
        listed = mpm("approvals", "--json", "-w", str(workspace))
        row = next(r for r in json.loads(listed.stdout)["approvals"] if r["approval_id"] == aid)
        assert row["received"]["worker"]["pid"] == worker["pid"]
        assert [e["approval_id"] for e in row["received"]["entries"]] == [aid]
    wait_for_worker(worker["pid"])
    after = runner(workspace).snapshot("bg")
    assert after.values["approvals"][aid]["approver"] == who
    assert after.status != "running"  # the worker took the run to its next stop
    assert aid not in {i["value"].get("approval_id") for i in after.interrupts}
    assert (
        len(accepted_entries(workspace, "bg", after.values["approvals"][aid]["decision_id"])) == 1
    )
    assert inbox.pending(ws, "bg") == [] and len(settled_names(workspace, "bg", inbox.DONE)) == 1
    assert "thread bg:" in Path(worker["log"]).read_text()  # the worker's outcome, logged
    assert (
        json.loads(mpm("status", "bg", "--json", "-w", str(workspace)).stdout)["received"] is None
    )


def _outcome(ws: Path, thread: str) -> tuple[str, dict[str, str], list[str]]:
    """What "the same result" compares: the thread's status, each stage's, the approvals."""
    snap = runner(ws).snapshot(thread)
    values = snap.values
    stages = {k: v.get("status") for k, v in (values.get("results") or {}).items()}
    return snap.status, stages, sorted(values.get("approvals") or {})


@pytest.mark.parametrize("point", ["approval.decided", "governance"])
def test_killed_worker_then_resume_finishes_alike_and_applies_the_decision_once(
    workspace: Path, point: str
) -> None:
    control_req, control_who = last_approval(workspace, "control")
    done = approve(workspace, "control", control_req, control_who, "--wait")
    assert done.returncode in (0, 1), done.stderr
    expected = _outcome(workspace, "control")

    request, who = last_approval(workspace, "killed")
    started = approve(workspace, "killed", request, who, "--json", env={"MPM_KILL_AT": point})
    assert started.returncode == 0, started.stderr
    worker = json.loads(started.stdout.splitlines()[-1])["continuing"]
    wait_for_worker(worker["pid"])
    # the worker died at the kill point (SIGKILL: no outcome line in its log)
    assert "thread killed:" not in Path(worker["log"]).read_text()
    entries = inbox.pending(Workspace(workspace), "killed")
    assert [e.key for e in entries] == [request["approval_id"]]  # not marked before applied
    status = mpm("status", "killed", "-w", str(workspace))
    assert "no worker is running: apply it with `mpm resume killed`" in " ".join(
        status.stdout.split()
    )
    resumed = mpm("resume", "killed", "-w", str(workspace))
    assert resumed.returncode in (0, 1), resumed.stderr
    assert _outcome(workspace, "killed") == expected
    assert len(accepted_entries(workspace, "killed", entries[0].decision_id or "")) == 1
    assert inbox.pending(Workspace(workspace), "killed") == []
    assert settled_names(workspace, "killed", inbox.DONE) == [entries[0].name]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda v: {**v, "decision": "reject", "comment": "changed in the inbox"},
        lambda v: {**v, "signature": v["signature"].replace("A", "B", 3)},
    ],
    ids=["changed-decision", "changed-signature"],
)
def test_a_tampered_inbox_entry_is_refused_by_the_node_and_audited(
    workspace: Path, tamper: Any
) -> None:
    request, who = last_approval(workspace, "t")
    aid = request["approval_id"]
    ws = Workspace(workspace)
    with thread_lock(ws, "t"):  # the worker waits for the lock: the entry stays undelivered
        started = approve(workspace, "t", request, who, "--json")
        assert started.returncode == 0, started.stderr
        worker = json.loads(started.stdout.splitlines()[-1])["continuing"]
        (entry,) = inbox.pending(ws, "t")
        data = json.loads(entry.path.read_text())
        data["value"] = tamper(data["value"])
        entry.path.write_text(json.dumps(data))
    wait_for_worker(worker["pid"])
    snap = runner(workspace).snapshot("t")
    assert aid in {i["value"]["approval_id"] for i in snap.interrupts}  # still pending
    assert aid not in (snap.values.get("approvals") or {})
    trail = audit.read_trail(workspace / "runs" / "t" / audit.TRAIL_FILE)
    refused = [e for e in trail if e.get("decision_id") == entry.decision_id]
    assert [e["accepted"] for e in refused] == [False]
    assert "#precheck#" not in refused[0]["slot"]  # the node's own judgement
    assert "signature" in refused[0]["reason"]
    (aside,) = inbox.settled(ws, "t", inbox.ASIDE)
    assert aside.extra["reason"].startswith("refused by the approval node: ")
    assert inbox.pending(ws, "t") == []
    # not wedged: a good decision still lands
    again = approve(workspace, "t", request, who, "--wait")
    assert again.returncode in (0, 1), again.stderr
    assert runner(workspace).snapshot("t").values["approvals"][aid]["approver"] == who


def test_entries_that_cannot_be_delivered_are_moved_aside_and_never_wedge(
    workspace: Path,
) -> None:
    request, who = last_approval(workspace, "s")
    r, ws = runner(workspace), Workspace(workspace)
    mine = decision(request, who)
    received = r.submit("s", "approval", mine, key=request["approval_id"])
    assert received is not None and inbox.pending(ws, "s")[0].name == received.name
    # someone decides the same approval directly before the worker runs
    other = decision(request, who, comment="decided first")
    r.answer("s", "approval", other, key=request["approval_id"])
    (inbox.inbox_dir(ws, "s") / "garbage.json").write_text("{not json")
    outcome = r.resume("s")
    assert outcome is not None and outcome.status != "running"
    assert inbox.pending(ws, "s") == []
    (aside,) = inbox.settled(ws, "s", inbox.ASIDE)
    assert aside.extra["reason"].startswith("the run no longer waits for approval")
    assert (inbox.inbox_dir(ws, "s") / inbox.ASIDE / "garbage.json.reason").is_file()
    decided = r.snapshot("s").values["approvals"][request["approval_id"]]
    assert decided["decision_id"] == other["decision_id"]  # the one applied, once
    assert not accepted_entries(workspace, "s", mine["decision_id"])


def test_wait_gives_the_outcome_in_the_foreground_and_starts_no_worker(workspace: Path) -> None:
    request, who = last_approval(workspace, "w")
    done = approve(workspace, "w", request, who, "--wait")
    assert done.returncode in (0, 1), done.stderr
    assert f"recorded: approve on {request['approval_id']} by {who}" in done.stdout
    assert "thread w:" in done.stdout  # the outcome line at the run's next stop
    assert runner(workspace).snapshot("w").values["approvals"][request["approval_id"]]
    assert not (workspace / "runs" / "w" / inbox.WORKER_FILE).exists()
    assert not inbox.inbox_dir(Workspace(workspace), "w").exists()


def test_answer_is_received_and_applied_by_the_worker(workspace: Path) -> None:
    r = runner(workspace)
    outcome = r.start("a", {"requirements": example("breast_cancer")})
    value = outcome.interrupts[0]["value"]
    assert value["type"] == "open_questions"
    path = workspace.parent / "answers.json"
    path.write_text(json.dumps({q["key"]: auto_answer(q) for q in value["questions"]}))
    sent = mpm("answer", "a", "--file", str(path), "--json", "-w", str(workspace))
    assert sent.returncode == 0, sent.stderr
    worker = json.loads(sent.stdout.splitlines()[-1])["continuing"]
    wait_for_worker(worker["pid"])
    after = runner(workspace).snapshot("a")
    assert after.values["human_answers"]
    assert all(i["value"]["type"] != "open_questions" for i in after.interrupts)
    assert len(settled_names(workspace, "a", inbox.DONE)) == 1
    assert os.path.getsize(worker["log"]) > 0


def test_a_worker_finding_the_thread_busy_exits_once_nothing_is_left(workspace: Path) -> None:
    from mpm.graph.runner import ThreadBusyError

    request, who = last_approval(workspace, "busy")
    r, ws = runner(workspace), Workspace(workspace)
    with thread_lock(ws, "busy"):  # another process drives the thread; the inbox is empty
        assert r.resume("busy", worker=True) is None  # nothing to wait for: it gives up
        with pytest.raises(ThreadBusyError):
            r.resume("busy")  # a person's `mpm resume` is told at once, as before
    assert r.submit("busy", "approval", decision(request, who), key=request["approval_id"])
    outcome = r.resume("busy", worker=True)  # free now, an entry waiting: it delivers
    assert outcome is not None
    assert r.snapshot("busy").values["approvals"][request["approval_id"]]["approver"] == who


def test_read_commands_show_a_received_decision_without_building_the_graph(
    tmp_path: Path, workspace: Path
) -> None:
    request = waiting_for_approval(workspace, "rd")
    r = runner(workspace)
    who = approver_for(request, r.snapshot("rd").values["requirements"].get("requested_by"))
    assert r.submit("rd", "approval", decision(request, who), key=request["approval_id"])
    # received, and no worker started (in-process): the read commands say how to apply it
    expected = (
        f"decision received (approve on {request['approval_id']} by {who}), no worker is "
        "running: apply it with `mpm resume rd`"
    )
    for command in (["status", "rd"], ["approvals"]):
        proc, seen = probe(tmp_path, *command, "-w", str(workspace))
        assert seen["code"] == 0, proc.stderr
        assert not set(HEAVY) & set(seen["modules"]), (command, set(HEAVY) & set(seen["modules"]))
        if command[0] == "status":
            assert expected in " ".join(proc.stdout.split()), proc.stdout
        else:  # a table cell folds the line: compare without the layout
            cells = "".join(c for c in proc.stdout if c.isalnum())
            assert "".join(c for c in expected if c.isalnum()) in cells, proc.stdout
    proc, seen = probe(tmp_path, "status", "rd", "--json", "-w", str(workspace))
    received = json.loads(proc.stdout.strip().splitlines()[-1])["received"]
    assert [e["approval_id"] for e in received["entries"]] == [request["approval_id"]]
    assert received["worker"] is None
