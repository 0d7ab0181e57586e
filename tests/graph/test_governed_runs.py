"""Governed runs that really stop for people and are resumed by them, across processes,
on the SQLite checkpointer: approvals by different approvers (parallel ones out of
order), a rejection that sends a stage back, gates that hold registration, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from mpm.graph import audit
from tests.graph.helpers import approver_for, auto_answer, example, key_for, mpm, runner

CLI_RUN = ("--toolset", "noop", "--no-tracking")


def _snapshot(workspace: Path, thread: str) -> Any:
    return runner(workspace).snapshot(thread)


def _kickoff(tmp_path: Path, workspace: Path, thread: str, name: str, **overrides: Any) -> Any:
    req = tmp_path / f"{name}.yaml"
    req.write_text(yaml.safe_dump(example(name, **overrides)))
    result = mpm("kickoff", "-r", str(req), "-w", str(workspace), "--thread", thread, *CLI_RUN)
    assert result.returncode == 0, result.stdout + result.stderr
    return _snapshot(workspace, thread)


def _answer_questions(tmp_path: Path, workspace: Path, thread: str, value: dict[str, Any]) -> None:
    answers = tmp_path / f"answers-{thread}.yaml"
    answers.write_text(yaml.safe_dump({q["key"]: auto_answer(q) for q in value["questions"]}))
    result = mpm("answer", thread, "--wait", "-w", str(workspace), "--file", str(answers))
    assert result.returncode == 0, result.stdout + result.stderr


def _until_approval(tmp_path: Path, workspace: Path, thread: str) -> Any:
    """Answer open questions until the run waits for an approval; return that snapshot."""
    for _ in range(5):
        snap = _snapshot(workspace, thread)
        value = snap.interrupts[0]["value"]
        if value["type"] == "approval":
            return snap
        _answer_questions(tmp_path, workspace, thread, value)
    raise AssertionError("the run kept asking questions")


def _approve(
    workspace: Path,
    thread: str,
    approval_id: str,
    who: str,
    *flags: str,
    comment: str = "looks right",
) -> Any:
    return mpm(
        "approve",
        "--wait",
        thread,
        approval_id,
        "--as",
        who,
        "--comment",
        comment,
        "-w",
        str(workspace),
        *flags,
    )


def _drive(
    tmp_path: Path, workspace: Path, thread: str, *, reject_first: str | None = None
) -> dict[str, Any]:
    """Answer and decide everything the run asks for, one process per decision."""
    seen_pending: list[list[str]] = []
    approvers: set[str] = set()
    rejected = False
    for _ in range(80):
        snap = _snapshot(workspace, thread)
        if not snap.interrupts:
            return {"snapshot": snap, "pending_rounds": seen_pending, "approvers": approvers}
        values = [i["value"] for i in snap.interrupts]
        if values[0]["type"] == "open_questions":
            _answer_questions(tmp_path, workspace, thread, values[0])
            continue
        pending = [v["approval_id"] for v in values]
        seen_pending.append(pending)
        # parallel approvals in any order: take the last one first
        request = values[-1]
        who = approver_for(request, snap.values["requirements"].get("requested_by"))
        if reject_first and not rejected and request["approval_id"] == reject_first:
            result = _approve(
                workspace,
                thread,
                request["approval_id"],
                who,
                "--request-changes",
                comment="add the calibration evidence and re-run",
            )
            rejected = True
        else:
            result = _approve(workspace, thread, request["approval_id"], who)
        assert result.returncode in (0, 1), result.stdout + result.stderr
        approvers.add(who)
    raise AssertionError("the governed run did not finish")


def test_high_risk_credit_run_completes_through_approvals_rejection_and_gates(
    tmp_path: Path, workspace: Path
) -> None:
    first = _kickoff(tmp_path, workspace, "credit", "credit_risk")
    gov = first.values["governance"]
    assert set(gov["frameworks"]) >= {
        "model_intake",
        "nist_rmf",
        "ethical_ai",
        "model_risk_management",
    }
    reasons = {a["framework"]: a["reason"] for a in gov["applicability"] if a["applies"]}
    assert "personal" in reasons["ethical_ai"] and "high" in reasons["model_risk_management"]
    action_gates = [g for g in first.values["plan"]["gates"] if g["blocks"] and g["action"]]
    # registration gates hold mlops; serving/app gates hold the deployment stage after it
    blocking = [g for g in action_gates if "register_model" in g["action"]]
    assert blocking and all(g["blocks"] == ["mlops"] for g in blocking)
    serving = [g for g in action_gates if g not in blocking]
    assert serving and all(g["blocks"] == ["deployment"] for g in serving)
    # high risk: step_by_step, so each round's sign-offs also hold the later stages
    assert gov["execution_mode"]["mode"] == "step_by_step"
    holds = {
        g["after_stage"]: g["blocks"] for g in first.values["plan"]["gates"] if not g["action"]
    }
    assert holds["model_validation"] == ["mlops", "deployment"]
    assert first.status == "waiting" and "mlops" not in first.values["results"]

    # the validation-round approval that the registration gate waits for gets sent back once
    gate_approvals = {a for g in blocking for a in g["approvals"]}
    target = next(
        a["id"]
        for a in gov["approvals"]
        if a["round"] == "model_validation" and a["id"] in gate_approvals
    )
    outcome = _drive(tmp_path, workspace, "credit", reject_first=target)
    final = outcome["snapshot"]
    values = final.values
    assert values["status"] == "completed" or values["deliverables"]["pipeline_status"] in {
        "success",
        "partial_success",
    }
    assert any(len(p) > 1 for p in outcome["pending_rounds"]), (
        "parallel approvals were pending together"
    )
    assert len(outcome["approvers"]) >= 3, "decisions came from different approvers"

    events = values["events"]
    names = [e["event"] for e in events]
    assert "stage_sent_back" in names
    sent_back = next(e for e in events if e["event"] == "stage_sent_back")
    assert sent_back["detail"].startswith("model_validation")
    assert values["revisions"]["model_validation"]["count"] == 1
    assert "calibration evidence" in values["revisions"]["model_validation"]["comment"]
    # the stage really ran again, after the request for changes
    starts = [
        i
        for i, e in enumerate(events)
        if e["event"] == "stage_started" and e["node"] == "model_validation"
    ]
    assert len(starts) == 2 and starts[1] > names.index("stage_sent_back")

    # every gate honoured: registration started only after its gates' approvals were granted
    mlops_start = next(
        i for i, e in enumerate(events) if e["event"] == "stage_started" and e["node"] == "mlops"
    )
    granted_at = {
        e["approval"]: i for i, e in enumerate(events) if e["event"] == "approval_approve"
    }
    for approval_id in gate_approvals:
        assert granted_at[approval_id] < mlops_start, (
            f"{approval_id} was granted after registration started"
        )
    assert all(g["state"] == "open" for g in values["governance"]["gates"].values())
    assert all(a["state"] in {"granted", "not_required"} for a in values["governance"]["approvals"])

    ok, problems = audit.verify(values["audit"])
    assert ok, problems
    verified = mpm("audit", "credit", "-w", str(workspace), "--verify")
    assert verified.returncode == 0 and "hash chain intact" in verified.stdout


def test_low_risk_project_needs_fewer_approvals(tmp_path: Path, workspace: Path) -> None:
    low = _kickoff(tmp_path, workspace, "low", "breast_cancer")
    high = _kickoff(tmp_path, workspace, "high", "credit_risk")

    def required(snap: Any) -> list[dict[str, Any]]:
        return [a for a in snap.values["governance"]["approvals"] if a["state"] != "not_required"]

    assert len(low.values["governance"]["frameworks"]) < len(
        high.values["governance"]["frameworks"]
    )
    assert 0 < len(required(low)) < len(required(high))
    final = _drive(tmp_path, workspace, "low")["snapshot"]
    assert final.values["results"]["mlops"]["status"] == "success"


def test_outsider_is_refused_and_nothing_changes(tmp_path: Path, workspace: Path) -> None:
    _kickoff(tmp_path, workspace, "out", "breast_cancer")
    before = _until_approval(tmp_path, workspace, "out")
    request = before.interrupts[0]["value"]
    key_for("intruder-42")  # a real key the identity directory binds, but in no group
    result = _approve(workspace, "out", request["approval_id"], "intruder-42")
    assert result.returncode == 2
    assert "decision refused" in result.stderr and "intruder-42 is not a member of" in result.stderr
    after = _snapshot(workspace, "out")
    assert [i["value"]["approval_id"] for i in after.interrupts] == [
        i["value"]["approval_id"] for i in before.interrupts
    ]
    for key in ("results", "approvals", "governance", "plan", "human_answers"):
        assert after.values.get(key) == before.values.get(key), key
    # refused before the graph was resumed (the approval node's own judgement, in
    # ``mpm approve``): it is in the durable audit trail at once, and once the approval is
    # decided, in the checkpoint's copy of the chain too
    durable = audit.read_trail(workspace / "runs" / "out" / audit.TRAIL_FILE)
    assert [(e["approver"], e["accepted"]) for e in durable] == [("intruder-42", False)]
    who = approver_for(request, before.values["requirements"]["requested_by"])
    assert _approve(workspace, "out", request["approval_id"], who).returncode in (0, 1)
    trail = _snapshot(workspace, "out").values["audit"]
    assert [(e["approver"], e["accepted"]) for e in trail[:2]] == [
        ("intruder-42", False),
        (who, True),
    ]


def test_requester_cannot_approve_their_own_project(tmp_path: Path, workspace: Path) -> None:
    _kickoff(tmp_path, workspace, "sod", "breast_cancer")
    request = _until_approval(tmp_path, workspace, "sod").interrupts[0]["value"]
    member = request["eligible_approvers"][0]
    # the same person requests a second project and tries to approve it
    _kickoff(tmp_path, workspace, "sod2", "breast_cancer", requested_by=member)
    pending = _until_approval(tmp_path, workspace, "sod2").interrupts
    request2 = next(
        i["value"] for i in pending if i["value"]["approval_id"] == request["approval_id"]
    )
    result = _approve(workspace, "sod2", request2["approval_id"], member)
    assert result.returncode == 2 and "separation of duties" in result.stderr


def test_hand_edited_audit_entry_is_detected(tmp_path: Path, workspace: Path) -> None:
    _kickoff(tmp_path, workspace, "aud", "breast_cancer")
    _drive(tmp_path, workspace, "aud")
    exported = tmp_path / "trail.jsonl"
    assert (
        mpm("audit", "aud", "-w", str(workspace), "--export", str(exported), "--verify").returncode
        == 0
    )
    entries = audit.from_jsonl(exported.read_text())
    assert len(entries) >= 2
    entries[1]["approver"] = "someone-else"
    exported.write_text(audit.to_jsonl(entries))
    result = mpm("audit", "aud", "--file", str(exported), "--verify")
    assert result.returncode == 1
    assert "entry 1" in result.stdout and "edited" in result.stdout
    # the MLflow/workspace copy written by governance verifies
    copy = workspace / "runs" / "aud" / "governance" / "audit_trail.jsonl"
    assert audit.verify(audit.from_jsonl(copy.read_text()))[0]


def test_audit_chain_detects_removal_and_reordering() -> None:
    chain = audit.chain_entries(
        [],
        [
            {"approval_id": f"a{i}", "approver": "x", "decision": "approve", "ts": str(i)}
            for i in range(3)
        ],
    )
    assert audit.verify(chain)[0]
    assert not audit.verify([chain[0], chain[2]])[0]
    assert not audit.verify([chain[1], chain[0], chain[2]])[0]
    # chaining two parallel decisions in one reducer call links them in order
    assert chain[1]["prev_hash"] == chain[0]["hash"] and chain[2]["prev_hash"] == chain[1]["hash"]


def test_gated_registration_does_not_run_before_its_approval(
    tmp_path: Path, workspace: Path
) -> None:
    snap = _kickoff(tmp_path, workspace, "gate", "breast_cancer")
    gates = [g for g in snap.values["plan"]["gates"] if g["blocks"]]
    assert gates, "the reference policies gate model registration"
    for _ in range(40):
        snap = _snapshot(workspace, "gate")
        if not snap.interrupts:
            break
        value = snap.interrupts[0]["value"]
        if value["type"] == "open_questions":
            _answer_questions(tmp_path, workspace, "gate", value)
            continue
        still_blocked = [
            g
            for g in snap.values["governance"]["gates"].values()
            if "register_model" in g["blocks"] and g["state"] != "open"
        ]
        if still_blocked:
            assert "mlops" not in snap.values["results"], (
                "registration ran while its gate was closed"
            )
        who = approver_for(value, snap.values["requirements"]["requested_by"])
        _approve(workspace, "gate", value["approval_id"], who)
    assert snap.values["results"]["mlops"]["status"] == "success"
    status = mpm("status", "gate", "-w", str(workspace))
    # no-op tools meet no success threshold, so the run ends "partial": but it did end
    assert (
        status.returncode == 0
        and "waiting" not in status.stdout
        and "thread gate: partial" in status.stdout
    )


def test_status_shows_what_is_pending_and_for_whom(tmp_path: Path, workspace: Path) -> None:
    snap = _kickoff(tmp_path, workspace, "st", "breast_cancer")
    assert snap.interrupts[0]["value"]["type"] == "open_questions"
    status = mpm("status", "st", "-w", str(workspace))
    assert "governance questions" in status.stdout
    request = _until_approval(tmp_path, workspace, "st").interrupts[0]["value"]
    status = mpm("status", "st", "-w", str(workspace))
    assert request["approval_id"] in status.stdout
    assert request["approver_groups"][0] in status.stdout
    listing = mpm("approvals", "-w", str(workspace))
    assert (
        request["approval_id"] in listing.stdout
        and request["eligible_approvers"][0] in listing.stdout
    )
    assert json.dumps(request)  # the payload is JSON
