"""Human-in-the-loop nodes: approval decisions and answers to open governance questions.

Each pending approval is its own task (the supervisor fans them out with ``Send``), so
approvals that may run in parallel are pending at the same time and each is resumed on
its own: ``Command(resume={interrupt_id: decision})``. A decision counts only if it is a
well-formed :class:`~mpm.governance.decisions.Decision`, signed (SSHSIG) by the key the
identity directory binds to its approver, over this thread, this approval and the request
shown; the approver may act for a group the approval names and is not the requester
(separation of duties, canonical ids); its decision id is new. Every judgement, accepted or
refused, is appended to the durable audit trail (``graph/audit.py``) the moment it is made;
a refused decision leaves the approval pending in the same task: the node asks again.
"""

from __future__ import annotations

from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from mpm.governance.decisions import SEEN_DECISIONS
from mpm.governance.signatures import request_digest
from mpm.graph import audit
from mpm.graph.approval_judgement import approval_request, judge_value
from mpm.graph.context import RunContext, run_context
from mpm.graph.events import event
from mpm.graph.governance_context import governance_context
from mpm.graph.state import now_iso
from mpm.tools.killpoints import maybe_die

__all__ = ["SEEN_DECISIONS", "approval", "approval_request", "questions"]


def _of_task(entries: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    return [e for e in entries if str(e.get("slot", "")).startswith(f"{task}#")]


def _value_digest(value: Any) -> str:
    import hashlib

    from mpm.governance.signatures import canonical_json

    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:16]


def approval(payload: dict[str, Any], runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = run_context(runtime)
    configurable = get_config()["configurable"]
    thread_id = configurable["thread_id"]
    task = str(configurable.get("checkpoint_ns") or "approval")
    item = payload["approval"]
    context = governance_context(ctx)
    request = approval_request(payload, thread_id)
    digest = request_digest(request)
    trail = audit.trail_path(ctx.ws, thread_id)
    entries: list[dict[str, Any]] = []
    refusals: list[dict[str, Any]] = []
    asked = 0
    # all_of: one accepted approval per named group, each by a different member
    all_of = item.get("group_rule") == "all_of"
    remaining = list(dict.fromkeys(item["approvers"])) if all_of else []
    signed: dict[str, str] = {}  # group -> the member who approved for it
    while True:  # each refusal re-asks in the same task, so the approval stays pending
        maybe_die("approval.ask")
        chain = audit.read_trail(trail)
        extra = {"remaining_groups": remaining, "signed": dict(signed)} if all_of else {}
        value = interrupt(
            {**request, "refusals": refusals, "audit_head": audit.head(chain), **extra}
        )
        # the slot: this task, this position, this value. A replay (resume or crash) meets
        # its own judgement again; a different value in the same position is a new one
        slot = f"{task}#{asked}#{_value_digest(value)}"
        asked += 1
        recorded = audit.read_trail(trail)
        entry = next((e for e in recorded if e.get("slot") == slot), None)
        if entry is None:
            # a process that died after this task's decision was accepted, before the task
            # was saved, already decided it: that signed decision stands, not a second one
            taken = {e.get("hash") for e in entries}
            entry = next(
                (
                    e
                    for e in _of_task(recorded, task)
                    if e.get("accepted") and e.get("hash") not in taken
                ),
                None,
            )
        if entry is None:  # not judged before (a replay finds its own judgement instead)
            entry = judge_value(
                value, item, thread_id, digest, payload, context, chain, remaining, signed
            )
            entry, _ = audit.append(trail, entry, slot=slot)
        entries.append(entry)
        if entry["accepted"] and entry.get("acting_for") in remaining:
            signed[entry["acting_for"]] = entry["approver"]
            remaining = [g for g in remaining if g != entry["acting_for"]]
            if remaining:
                continue  # the next named group is asked in the same task
        if entry["accepted"]:
            break
        maybe_die("approval.refused")
        refusals.append(
            {
                "approver": entry["approver"],
                "reason": entry["reason"],
                "ts": entry["ts"],
                "decision_id": entry["decision_id"],
            }
        )
    record = {
        "decision": entry["decision"],
        "approver": entry["approver"],
        "comment": entry["comment"],
        "decided_at": entry["ts"],
        "round": item["round"],
        "answers": entry["answers"],
        "decision_id": entry["decision_id"],
    }
    if signed:
        record["signed"] = signed  # all_of: group -> the member who approved for it
    events = [
        event("approvals", "approval_refused", e["reason"], approval=item["id"])
        for e in entries
        if not e["accepted"]
    ]
    events.append(
        event(
            "approvals",
            f"approval_{entry['decision']}",
            f"{item['id']} by {entry['approver']}",
            approval=item["id"],
        )
    )
    recorded = audit.read_trail(trail)
    update: dict[str, Any] = {
        # a cache for people and the supervisor; governance derives approval state from
        # the signed entries in ``audit`` and never trusts this map
        "approvals": {item["id"]: record},
        # every judgement this task made, also those of a process killed before saving it,
        # so the checkpoint's copy of the chain has no gaps
        "audit": _of_task(recorded, task) or entries,
        "audit_head": audit.head(recorded),
        "events": events,
    }
    maybe_die("approval.decided")
    if record["answers"]:
        update["human_answers"] = {item["framework"]: record["answers"]}
    return update


def questions(state: dict[str, Any], runtime: Runtime[RunContext]) -> dict[str, Any]:
    """One interrupt listing every open question; valid answers become evidence."""
    from mpm.governance.evaluation import validate_answer

    ctx = run_context(runtime)
    pending = (state.get("governance") or {}).get("open_questions") or []
    asked = set(state.get("asked_questions") or [])
    todo = [q for q in pending if q["key"] not in asked or q.get("problem")]
    answers = interrupt({"type": "open_questions", "questions": todo, "requested_at": now_iso()})
    answers = answers if isinstance(answers, dict) else {}
    maybe_die("questions.answered")
    library = governance_context(ctx).library
    accepted: dict[str, dict[str, Any]] = {}
    problems = []
    invalid: set[str] = set()
    for q in todo:
        given = answers.get(q["key"], answers.get(q.get("alias") or ""))
        if given is None or given == "":
            continue
        artifact = library.get(q["framework"]).policy.artifact(q["key"])
        value, problem = validate_answer(artifact, given)
        if problem:
            problems.append(f"{q['key']}: {problem}")
            invalid.add(q["key"])
            continue
        plain = value.isoformat() if hasattr(value, "isoformat") else value  # dates -> JSON
        accepted.setdefault(q["framework"], {})[q.get("alias") or q["key"]] = plain
    events = [
        event(
            "questions",
            "questions_answered",
            f"{sum(len(v) for v in accepted.values())} answers accepted",
        )
    ]
    events += [event("questions", "answer_invalid", p) for p in problems]
    return {
        "human_answers": accepted,
        # invalid answers are asked again; unanswered ones are not (the person chose to skip)
        "asked_questions": sorted(asked | {q["key"] for q in todo} - invalid),
        "events": events,
    }
