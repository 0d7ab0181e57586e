"""``--json``: one JSON object on the last line of stdout with the documented keys, and
``mpm approvals --json`` rows that go straight back into ``mpm approve``.

A real governed run (stub model, noop tools) is driven through the CLI only: kickoff,
answer, then every approval exactly as a script would, from the approvals JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from mpm.cli.main import app
from tests.graph.helpers import REPO, auto_answer, key_for, runner

OUTCOME_KEYS = {
    "version",
    "thread_id",
    "status",
    "project",
    "target_metric",
    "metric_direction",
    "success_threshold",
    "risk_level",
    "governance",
    "stages",
    "remediation_attempts",
    "waiting_for",
    "deliverables",
    "registered_model",
}
APPROVAL_KEYS = {
    "thread_id",
    "approval_id",
    "name",
    "framework",
    "approver_groups",
    "eligible_approvers",
    "requested_at",
    "command",
}


def cli(*args: str, code: int = 0) -> dict[str, Any]:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    return json.loads(last)


def test_json_round_trip_from_kickoff_to_the_last_approval(tmp_path: Path) -> None:
    ws = ["-w", str(tmp_path / "ws"), "--toolset", "noop", "--no-tracking"]
    req = REPO / "reference" / "examples" / "breast_cancer.yaml"
    started = cli("kickoff", "-r", str(req), "-t", "j", "--json", *ws)
    assert set(started) == OUTCOME_KEYS
    assert started["thread_id"] == "j" and started["status"] == "waiting"
    assert started["metric_direction"] == ">="  # accuracy: higher is better
    assert {s["name"] for s in started["stages"]} >= {"business_analysis", "model_development"}
    assert started["waiting_for"], "the noop run waits for people"

    status = cli("status", "j", "--json", "-w", str(tmp_path / "ws"))
    assert set(status) == OUTCOME_KEYS | {"received"} and status["stages"] == started["stages"]

    # open questions: the first wait of a noop run (no tool produced the evidence)
    waiting = started["waiting_for"][0]
    if waiting["type"] == "open_questions":
        assert waiting["command"] == ["mpm", "answer", "j"]
        pending = runner(tmp_path / "ws").snapshot("j").interrupts[0]["value"]
        answers = {q["key"]: auto_answer(q) for q in pending["questions"]}
        assert sorted(answers) == sorted(waiting["questions"])
        path = tmp_path / "answers.yaml"
        path.write_text(yaml.safe_dump(answers))
        answered = cli("answer", "j", "--wait", "--file", str(path), "--json", *ws)
        assert set(answered) == OUTCOME_KEYS

    requested_by = yaml.safe_load(req.read_text()).get("requested_by")
    decided = 0
    for _ in range(10):
        rows = cli("approvals", "--json", "-w", str(tmp_path / "ws"))["approvals"]
        if not rows:
            break
        row = rows[0]
        assert set(row) == APPROVAL_KEYS | {"received"}  # null: nothing received yet
        assert row["received"] is None
        assert row["command"] == ["mpm", "approve", row["thread_id"], row["approval_id"]]
        who = next(u for u in row["eligible_approvers"] if u != requested_by)
        out = cli(*row["command"][1:], "--as", who, "-c", "ok", "--wait", "--json", *ws)
        assert set(out) == OUTCOME_KEYS | {"decision"}
        assert out["decision"] == {
            "approval_id": row["approval_id"],
            "decision": "approve",
            "approver": who,
            "accepted": True,
            "reason": None,
        }
        assert row["approval_id"] not in {
            w.get("approval_id") for w in out["waiting_for"] if w["type"] == "approval"
        }
        decided += 1
    assert decided >= 2
    final = cli("status", "j", "--json", "-w", str(tmp_path / "ws"))
    assert final["status"] in {"completed", "partial", "waiting"}

    trail = cli("audit", "j", "--json", "--verify", "-w", str(tmp_path / "ws"))
    assert set(trail) == {"version", "thread_id", "entries", "verified", "problems"}
    assert trail["verified"] is True and len(trail["entries"]) >= decided

    runs = cli("runs", "--json", "-w", str(tmp_path / "ws"))
    assert [r["thread_id"] for r in runs["threads"]] == ["j"]
    assert set(runs["threads"][0]) == {
        "thread_id",
        "project",
        "status",
        "updated_at",
        "waiting_for",
    }
    history = cli("history", "j", "--json", "-w", str(tmp_path / "ws"))
    assert history["thread_id"] == "j" and history["checkpoints"]
    assert set(history["checkpoints"][0]) == {
        "step",
        "checkpoint_id",
        "created_at",
        "source",
        "next",
    }


def test_refused_decision_json_says_why_and_exits_2(tmp_path: Path) -> None:
    """A decision by someone no group names: exit 2, ``accepted: false`` with the reason,
    and the approval is still pending."""
    ws = ["-w", str(tmp_path / "ws"), "--toolset", "noop", "--no-tracking"]
    req = REPO / "reference" / "examples" / "breast_cancer.yaml"
    out = cli("kickoff", "-r", str(req), "-t", "r", "--json", *ws)
    if out["waiting_for"][0]["type"] == "open_questions":
        pending = runner(tmp_path / "ws").snapshot("r").interrupts[0]["value"]
        path = tmp_path / "answers.yaml"
        path.write_text(yaml.safe_dump({q["key"]: auto_answer(q) for q in pending["questions"]}))
        cli("answer", "r", "--wait", "--file", str(path), "--json", *ws)
    row = cli("approvals", "--json", "-w", str(tmp_path / "ws"))["approvals"][0]
    key_for("mallory")  # a real key, bound in the identity directory: but in no group
    refused = cli(*row["command"][1:], "--as", "mallory", "-c", "x", "--json", *ws, code=2)
    assert refused["decision"]["accepted"] is False
    assert refused["decision"]["reason"].startswith("mallory is not a member of")
    # the refusal is in the durable audit trail at once (judged before the graph was
    # resumed, by the approval node's own code: tests/cli/test_read_path.py)
    from mpm.graph import audit

    trail = audit.read_trail(tmp_path / "ws" / "runs" / "r" / audit.TRAIL_FILE)
    assert [(e["approver"], e["accepted"]) for e in trail] == [("mallory", False)]
    assert trail[0]["reason"] == refused["decision"]["reason"]
    still = cli("approvals", "--json", "-w", str(tmp_path / "ws"))["approvals"]
    assert row["approval_id"] in {r["approval_id"] for r in still}


def test_precheck_refuses_with_the_nodes_judgement_before_the_graph_is_resumed(
    tmp_path: Path,
) -> None:
    """``Runner.answer(precheck=True)``: a decision the approval node would refuse -- an
    outsider, a signature that does not verify -- raises ``DecisionRefused`` with the node's
    reason, is in the audit trail, and the thread does not move (not one checkpoint more);
    an accepted decision resumes the graph as before."""
    import pytest

    from mpm.graph import audit
    from mpm.graph import runner as runner_module
    from tests.graph.helpers import decision

    ws = tmp_path / "ws"
    r = runner(ws)
    req = yaml.safe_load((REPO / "reference" / "examples" / "breast_cancer.yaml").read_text())
    outcome = r.start("p", {"requirements": req})
    while outcome.interrupts[0]["value"]["type"] == "open_questions":
        questions = outcome.interrupts[0]["value"]["questions"]
        outcome = r.answer("p", "open_questions", {q["key"]: auto_answer(q) for q in questions})
    pending = outcome.interrupts[0]["value"]
    steps = len(r.history("p"))
    with pytest.raises(runner_module.DecisionRefused, match="mallory is not a member of"):
        r.answer(
            "p", "approval", decision(pending, "mallory"), key=pending["approval_id"], precheck=True
        )
    member = next(u for u in pending["eligible_approvers"] if u != req["requested_by"])
    forged = {**decision(pending, member), "comment": "not what was signed"}
    with pytest.raises(runner_module.DecisionRefused, match="signature"):
        r.answer("p", "approval", forged, key=pending["approval_id"], precheck=True)
    assert len(r.history("p")) == steps
    trail = audit.read_trail(ws / "runs" / "p" / audit.TRAIL_FILE)
    assert [(e["approver"], e["accepted"]) for e in trail] == [
        ("mallory", False),
        (member, False),
    ]
    accepted = r.answer(
        "p", "approval", decision(pending, member), key=pending["approval_id"], precheck=True
    )
    assert pending["approval_id"] in accepted.values["approvals"]
    assert audit.verify(audit.read_trail(ws / "runs" / "p" / audit.TRAIL_FILE))[0]
