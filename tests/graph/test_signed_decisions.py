"""Signed decisions, canonical ids, derived approval state and the audit anchors.

Every approval here is a real interrupt of the graph, resumed by another process
(``mpm approve``) or through the Python API; keys are real ed25519 keys made by
``ssh-keygen`` for the session (tests/conftest.py), and one decision is checked by the
stock ``ssh-keygen -Y verify``. Each test starts from a copy of one thread that waits for
its first approval, so nothing a test does leaks into another.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from mpm.governance import assess_project
from mpm.governance.identity import UnsafeIdError, canonical_id, same_id
from mpm.graph import audit
from mpm.graph.governance_context import governance_context
from tests.graph.helpers import approver_for, auto_answer, decision, example, key_for, mpm, runner

THREAD = "sig"


def _to_first_approval(ws: Path, thread: str, **overrides: Any) -> Any:
    r = runner(ws)
    outcome = r.start(thread, {"requirements": example("breast_cancer", **overrides)})
    while outcome.interrupts and outcome.interrupts[0]["value"]["type"] == "open_questions":
        questions = outcome.interrupts[0]["value"]["questions"]
        outcome = r.answer(thread, "open_questions", {q["key"]: auto_answer(q) for q in questions})
    assert outcome.interrupts[0]["value"]["type"] == "approval"
    return outcome


@pytest.fixture(scope="module")
def waiting(tmp_path_factory: pytest.TempPathFactory, signing_identity: Any) -> Path:
    """A workspace whose thread ``sig`` waits for its first approvals (made once)."""
    ws = tmp_path_factory.mktemp("signed") / "ws"
    ws.mkdir()
    _to_first_approval(ws, THREAD)
    return ws


@pytest.fixture
def ws(waiting: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "ws"
    shutil.copytree(waiting, copy)
    return copy


def _pending(ws: Path) -> list[dict[str, Any]]:
    return [i["value"] for i in runner(ws).snapshot(THREAD).interrupts]


def _trail(ws: Path) -> list[dict[str, Any]]:
    return audit.read_trail(ws / "runs" / THREAD / audit.TRAIL_FILE)


def _approve_cli(ws: Path, approval_id: str, who: str, *flags: str, env: Any = None) -> Any:
    return mpm(
        "approve",
        THREAD,
        approval_id,
        "--as",
        who,
        "-c",
        "ok",
        "--wait",
        "-w",
        str(ws),
        *flags,
        env=env,
    )


def _verify(ws: Path) -> Any:
    return mpm("audit", THREAD, "-w", str(ws), "--verify", env={"COLUMNS": "300"})


def _state(ws: Path) -> dict[str, Any]:
    return runner(ws).snapshot(THREAD).values


def _granted(ws: Path) -> set[str]:
    """What governance, recomputed now from the checkpoint, says is granted."""
    from mpm.graph.context import RunContext

    values = _state(ws)
    report = assess_project(values, context=governance_context(RunContext(workspace=str(ws))))
    return {k for k, v in report.approval_states.items() if v == "granted"}


# --------------------------------------------------------------------------- canonical ids


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("MR-Reviewer-1", "mr-reviewer-1"),
        (" mr-reviewer-1 \t", "mr-reviewer-1"),
        ("ｍｒ-1", "mr-1"),
    ],
)
def test_ids_are_canonical(raw: str, canonical: str) -> None:
    assert canonical_id(raw) == canonical


@pytest.mark.parametrize("raw", ["mr-reviewеr-1", "mr\x00x", "a b", "", "-x", "мр"])
def test_unsafe_ids_are_refused_in_one_line(raw: str) -> None:
    with pytest.raises(UnsafeIdError) as exc:
        canonical_id(raw)
    assert "\n" not in str(exc.value) and "ids may use only" in str(exc.value)
    assert not same_id(raw, "mr-reviewer-1")


# --------------------------------------------------------------------------- refused, nothing changes


def test_typed_as_without_a_key_is_refused_and_nothing_changes(ws: Path) -> None:
    request = _pending(ws)[0]
    before = _state(ws)
    run = _approve_cli(ws, request["approval_id"], "mr-reviewer-1", env={"MPM_SIGNING_KEY": ""})
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "no signing key" in run.stderr and "a typed --as alone proves nothing" in run.stderr
    assert _state(ws) == before and not _trail(ws)
    # an unsigned decision sent straight to the graph is refused and recorded
    unsigned = {**decision(request, "mr-reviewer-1"), "signature": None}
    after = runner(ws).answer(THREAD, "approval", unsigned, key=request["approval_id"])
    assert request["approval_id"] in {i["value"]["approval_id"] for i in after.interrupts}
    assert "unsigned decision" in _trail(ws)[-1]["reason"] and not _trail(ws)[-1]["accepted"]
    assert request["approval_id"] not in _granted(ws)


def test_wrong_key_and_outsider_are_refused_across_processes(ws: Path) -> None:
    request = _pending(ws)[0]
    who = approver_for(request, "lab-analytics")
    wrong = _approve_cli(ws, request["approval_id"], who, "--key", str(key_for("intruder-42")))
    assert wrong.returncode == 2
    assert (
        f"signature does not verify: the signing key is not a key the identity directory binds to {who}"
        in wrong.stderr
    )
    outsider = _approve_cli(ws, request["approval_id"], "intruder-42")
    assert outsider.returncode == 2 and "intruder-42 is not a member of" in outsider.stderr
    # both refusals are durable although nobody has approved yet (the node still waits)
    trail = _trail(ws)
    assert [(e["approver"], e["accepted"]) for e in trail] == [(who, False), ("intruder-42", False)]
    assert audit.verify(trail)[0]
    assert _verify(ws).returncode == 0
    assert request["approval_id"] not in _granted(ws)
    # both were refused before the graph was resumed (``mpm approve`` pre-checks with the
    # node's judgement): the checkpoint anchors them once the approval task runs again --
    # the next decision on it copies its task's entries into the checkpoint's chain
    assert _approve_cli(ws, request["approval_id"], who).returncode in (0, 1)
    chain = _state(ws)["audit"]
    assert [(e["approver"], e["accepted"]) for e in chain][:3] == [
        (who, False),
        ("intruder-42", False),
        (who, True),
    ]
    assert [e["hash"] for e in chain[:2]] == [e["hash"] for e in trail]
    assert _verify(ws).returncode == 0


def test_refusal_survives_when_nobody_ever_approves(ws: Path) -> None:
    request = _pending(ws)[0]
    run = _approve_cli(ws, request["approval_id"], "intruder-42")
    assert run.returncode == 2
    # a new process, later: the attempt is on record, from the trail and the checkpoint
    shown = mpm("audit", THREAD, "-w", str(ws), env={"COLUMNS": "300"})
    assert shown.returncode == 0 and shown.stdout.count("REFUSED") == 1
    assert "intruder-42" in shown.stdout


def test_requester_variants_cannot_approve(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    outcome = _to_first_approval(ws, "sod", requested_by="MR-Reviewer-1 ")
    assert outcome.values["requirements"]["requested_by"] == "mr-reviewer-1"
    request = next(
        i["value"]
        for i in outcome.interrupts
        if "mr-reviewer-1" in i["value"]["eligible_approvers"]
    )
    for spelling in ("mr-reviewer-1", "MR-REVIEWER-1", " mr-reviewer-1"):
        run = mpm("approve", "sod", request["approval_id"], "--as", spelling, "-w", str(ws))
        assert run.returncode == 2 and "separation of duties" in run.stderr, spelling
    cyrillic = mpm("approve", "sod", request["approval_id"], "--as", "mr-reviewеr-1", "-w", str(ws))
    assert cyrillic.returncode == 2 and "ids may use only" in cyrillic.stderr
    assert cyrillic.stderr.count("\n") == 1


def test_kickoff_refuses_lookalike_requester_and_missing_requester(
    tmp_path: Path, workspace: Path
) -> None:
    for name, overrides, expected in (
        ("cyr", {"requested_by": "mr-reviewеr-1"}, "requested_by"),
        ("none", {"requested_by": None}, "requested_by: required for a regulated or high-risk"),
    ):
        req = tmp_path / f"{name}.yaml"
        req.write_text(yaml.safe_dump(example("credit_risk", **overrides)))
        run = mpm("kickoff", "-r", str(req), "-w", str(workspace), "-t", name, "--toolset", "noop")
        assert run.returncode == 2 and expected in run.stderr, run.stderr
        assert run.stderr.count("\n") == 1


def test_unknown_policy_approver_fails_the_kickoff(tmp_path: Path, workspace: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(Path(__file__).resolve().parents[2] / "reference" / "governance", policies)
    intake = policies / "model_intake.yml"
    text = intake.read_text()
    assert "modeling-review" in text
    intake.write_text(text.replace("modeling-review", "model-governance-council", 1))
    req = tmp_path / "bc.yaml"
    req.write_text(yaml.safe_dump(example("breast_cancer")))
    run = mpm(
        "kickoff",
        "-r",
        str(req),
        "-w",
        str(workspace),
        "--policies",
        str(policies),
        "--toolset",
        "noop",
    )
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "'model-governance-council' resolves to no group or member" in run.stderr


# --------------------------------------------------------------------------- derived state


def test_forged_approvals_via_update_state_grant_nothing(ws: Path) -> None:
    request = _pending(ws)[0]
    aid = request["approval_id"]
    r = runner(ws)
    # a genuine accepted entry from the trail format, but re-pointed and re-sealed
    forged_entry = audit.seal(
        {
            "approval_id": aid,
            "approver": "mr-reviewer-1",
            "decision": "approve",
            "accepted": True,
            "decision_id": "f" * 32,
            "thread_id": THREAD,
            "payload": None,
            "signature": None,
        },
        [],
    )
    with r.graph() as g:
        g.update_state(
            r.config(THREAD),
            {
                "approvals": {
                    aid: {
                        "decision": "approve",
                        "approver": "mr-reviewer-1",
                        "decision_id": "f" * 32,
                    }
                },
                "audit": [forged_entry],
            },
            as_node="approval",
        )
    assert aid not in _granted(ws), "a map value or an unsigned entry granted an approval"
    verified = _verify(ws)
    assert verified.returncode == 1
    assert f"approval {aid}: the checkpoint records 'approve'" in verified.stdout
    assert "the checkpoint holds 1 entries (deleted)" in verified.stdout
    # the run is not wedged and still waits for a signed decision on that approval
    resumed = mpm("resume", THREAD, "-w", str(ws))
    assert resumed.returncode == 0, resumed.stderr
    assert aid in {v["approval_id"] for v in _pending(ws)}


def test_backdated_decision_keeps_the_server_time(ws: Path) -> None:
    request = _pending(ws)[0]
    who = approver_for(request, "lab-analytics")
    signed = {**decision(request, who), "submitted_at": "1999-01-01T00:00:00+00:00"}
    runner(ws).answer(THREAD, "approval", signed, key=request["approval_id"])
    entry = _trail(ws)[-1]
    assert entry["accepted"] and entry["claimed_at"] == "1999-01-01T00:00:00+00:00"
    assert entry["ts"] > "2020" and entry["ts"] != entry["claimed_at"]
    assert request["approval_id"] in _granted(ws)


def test_decision_id_reused_across_approvals_is_refused(ws: Path) -> None:
    first, second = _pending(ws)[:2]
    r = runner(ws)
    one = decision(first, approver_for(first, "lab-analytics"))
    r.answer(THREAD, "approval", one, key=first["approval_id"])
    second = next(v for v in _pending(ws) if v["approval_id"] == second["approval_id"])
    again = decision(second, approver_for(second, "lab-analytics"), decision_id=one["decision_id"])
    after = r.answer(THREAD, "approval", again, key=second["approval_id"])
    refused = _trail(ws)[-1]
    assert not refused["accepted"] and "was already used" in refused["reason"]
    assert second["approval_id"] in {i["value"]["approval_id"] for i in after.interrupts}
    assert second["approval_id"] not in _granted(ws)


def test_malformed_resume_values_never_wedge_the_thread(ws: Path) -> None:
    request = _pending(ws)[0]
    aid = request["approval_id"]
    r = runner(ws)
    good = decision(request, approver_for(request, "lab-analytics"))
    for bad in (
        {**good, "decision_id": {"x": 1}},
        {**good, "comment": 5},
        {**good, "unexpected": "key"},
        {**good, "answers": "not a mapping"},
        ["approve"],
    ):
        after = r.answer(THREAD, "approval", bad, key=aid)
        assert aid in {i["value"]["approval_id"] for i in after.interrupts}, bad
        assert not _trail(ws)[-1]["accepted"] and _trail(ws)[-1]["reason"]
    reasons = [e["reason"] for e in _trail(ws)]
    assert reasons[0].startswith("malformed decision: decision_id")
    assert any("unexpected" in x for x in reasons)
    # a valid decision afterwards still works, from another process
    run = _approve_cli(ws, aid, approver_for(request, "lab-analytics"))
    assert run.returncode in (0, 1), run.stderr
    assert _trail(ws)[-1]["accepted"] and aid in _granted(ws)


# --------------------------------------------------------------------------- verify + ssh-keygen


def test_ssh_keygen_verifies_an_exported_decision(ws: Path, tmp_path: Path) -> None:
    request = _pending(ws)[0]
    who = approver_for(request, "lab-analytics")
    assert _approve_cli(ws, request["approval_id"], who).returncode in (0, 1)
    seq = next(e["seq"] for e in _trail(ws) if e["accepted"])
    out = tmp_path / "export"
    run = mpm("audit", THREAD, "-w", str(ws), "--export-decision", str(seq), "--out", str(out))
    assert run.returncode == 0, run.stderr
    payload, sig = out / f"decision-{seq}.json", out / f"decision-{seq}.json.sig"
    command = [
        "ssh-keygen",
        "-Y",
        "verify",
        "-f",
        str(out / "allowed_signers"),
        "-I",
        who,
        "-n",
        "mpm-decision",
        "-s",
        str(sig),
    ]
    good = subprocess.run(command, input=payload.read_bytes(), capture_output=True, check=False)
    assert (
        good.returncode == 0 and b'Good "mpm-decision" signature for ' + who.encode() in good.stdout
    )
    body = json.loads(payload.read_text())
    assert body["thread_id"] == THREAD and body["approval_id"] == request["approval_id"]
    assert len(body["request_sha256"]) == 64 and body["signer"] == who
    tampered = payload.read_bytes().replace(b'"approve"', b'"reject"')
    bad = subprocess.run(command, input=tampered, capture_output=True, check=False)
    assert bad.returncode != 0


def test_verify_detects_resealed_truncated_and_deleted_trails(ws: Path) -> None:
    request = _pending(ws)[0]
    who = approver_for(request, "lab-analytics")
    assert _approve_cli(ws, request["approval_id"], who).returncode in (0, 1)
    assert _approve_cli(
        ws, _pending(ws)[0]["approval_id"], approver_for(_pending(ws)[0], "lab-analytics")
    ).returncode in (0, 1)
    assert _verify(ws).returncode == 0
    path = ws / "runs" / THREAD / audit.TRAIL_FILE
    original = path.read_text()
    entries = audit.from_jsonl(original)
    assert len(entries) >= 2

    # edit one entry and recompute the whole chain
    edited = [dict(e) for e in entries]
    edited[0]["comment"] = "never said this"
    resealed: list[dict[str, Any]] = []
    for e in edited:
        resealed.append(audit.seal(e, resealed))
    path.write_text(audit.to_jsonl(resealed))
    run = _verify(ws)
    assert run.returncode == 1
    assert "entry 0" in run.stdout and "comment differs from what was signed" in run.stdout
    assert "the workspace trail and the checkpoint differ (edited)" in run.stdout

    # remove the last entry
    path.write_text(audit.to_jsonl(entries[:-1]))
    run = _verify(ws)
    assert run.returncode == 1 and "(entries removed)" in run.stdout or "(removed)" in run.stdout

    # delete the trail
    path.unlink()
    run = _verify(ws)
    assert run.returncode == 1 and "missing or empty" in run.stdout and "(deleted)" in run.stdout

    path.write_text(original)
    assert _verify(ws).returncode == 0, "the untouched trail verifies again"


def test_decision_payload_binds_thread_approval_and_request(ws: Path) -> None:
    """A signature over one approval cannot be moved to another, nor used after the
    request it answered changed."""
    first, second = _pending(ws)[:2]
    who = approver_for(first, "lab-analytics")
    signed = decision(first, who)
    moved = {**signed, "approval_id": second["approval_id"]}
    r = runner(ws)
    r.answer(THREAD, "approval", moved, key=second["approval_id"])
    assert not _trail(ws)[-1]["accepted"]
    stale = {**decision(first, who), "request_sha256": "0" * 64}
    r.answer(THREAD, "approval", stale, key=first["approval_id"])
    assert "the request changed since it was signed" in _trail(ws)[-1]["reason"]
    again = decision(first, who, decision_id=uuid.uuid4().hex)
    r.answer(THREAD, "approval", again, key=first["approval_id"])
    assert _trail(ws)[-1]["accepted"] and first["approval_id"] in _granted(ws)


def test_a_superseded_approval_stays_withdrawn_when_the_map_is_rewritten(ws: Path) -> None:
    """Approve A, then send back the work A reviewed (changes requested on B of the same
    round): A's decision is withdrawn in the durable trail. Writing the checkpoint's
    ``approvals`` map back to A's signed approve does not make A stand again."""
    first, second = _pending(ws)[:2]
    r = runner(ws)
    approve = decision(first, approver_for(first, "lab-analytics"))
    r.answer(THREAD, "approval", approve, key=first["approval_id"])
    second = next(v for v in _pending(ws) if v["approval_id"] == second["approval_id"])
    changes = decision(second, approver_for(second, "lab-analytics"), "request_changes")
    r.answer(THREAD, "approval", changes, key=second["approval_id"])
    for rest in _pending(ws):  # the round's last decisions; then the supervisor sends back
        r.answer(
            THREAD,
            "approval",
            decision(rest, approver_for(rest, "lab-analytics")),
            key=rest["approval_id"],
        )

    withdrawals = [e for e in _trail(ws) if e.get("kind") == "withdrawal"]
    withdrawn = {e["approval_id"]: e["withdraws"] for e in withdrawals}
    assert withdrawn.get(first["approval_id"]) == approve["decision_id"], withdrawals
    assert withdrawn.get(second["approval_id"]) == changes["decision_id"]
    state = _state(ws)
    assert {e["hash"] for e in withdrawals} <= {e["hash"] for e in state["audit"]}
    assert first["approval_id"] not in _granted(ws)

    # an insider rewrites the map to A's genuine, signed approve
    restored = {**state["approvals"][first["approval_id"]], "decision": "approve"}
    with r.graph() as g:
        g.update_state(r.config(THREAD), {"approvals": {first["approval_id"]: restored}})
    assert _state(ws)["approvals"][first["approval_id"]]["decision"] == "approve"
    assert first["approval_id"] not in _granted(ws), "a withdrawn approval stood again"
    listed = mpm("audit", THREAD, "-w", str(ws), env={"COLUMNS": "300"})
    assert "withdrawn" in listed.stdout and listed.returncode == 0, listed.stderr
    verified = _verify(ws)
    assert verified.returncode == 1
    assert "a decision the trail withdrew (restored; it grants nothing)" in verified.stdout
