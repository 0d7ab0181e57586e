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

from mpm.governance.answers import check_approval_answers
from mpm.governance.decisions import SEEN_DECISIONS, judge, parse_decision
from mpm.governance.signatures import request_digest
from mpm.graph import audit
from mpm.graph.context import RunContext, run_context
from mpm.graph.events import event
from mpm.graph.nodes.governance import governance_context
from mpm.graph.state import now_iso
from mpm.tools.killpoints import maybe_die

__all__ = ["SEEN_DECISIONS", "approval", "approval_request", "questions"]


def approval_request(payload: dict[str, Any], thread_id: str) -> dict[str, Any]:
    """What the approver is shown (and what the signed request hash covers)."""
    return {**payload["request"], "thread_id": thread_id}


def _policy_of(context: Any, item: dict[str, Any]) -> Any:
    """The policy whose approval this is (None for a risk acceptance: it has no questions)."""
    if item.get("kind", "approval") != "approval" or item["framework"] not in context.library:
        return None
    return context.library.get(item["framework"]).policy


def _of_task(entries: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    return [e for e in entries if str(e.get("slot", "")).startswith(f"{task}#")]


def _value_digest(value: Any) -> str:
    import hashlib

    from mpm.governance.signatures import canonical_json

    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:16]


def _text(value: Any, limit: int) -> str:
    return (value if isinstance(value, str) else "" if value is None else repr(value))[:limit]


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
            entry = _judge(
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


def _judge(
    value: Any,
    item: dict[str, Any],
    thread_id: str,
    digest: str,
    payload: dict[str, Any],
    context: Any,
    chain: list[dict[str, Any]],
    remaining: list[str],
    signed: dict[str, str],
) -> dict[str, Any]:
    """The audit entry for one resume value: accepted, or refused with the reason.

    ``remaining``/``signed``: for an all_of approval, the named groups still to approve and
    who approved for the others (empty for any_of)."""
    raw = value if isinstance(value, dict) else {}
    decision, problem = parse_decision(value)
    signer = fingerprint = None
    if decision is not None:
        seen = {str(i) for i in decision.seen_decision_ids}
        used = {str(e.get("decision_id")) for e in chain if e.get("decision_id")}
        used |= {str(i) for i in payload.get("used_decision_ids") or []} | seen
        problem, signer, fingerprint = judge(
            decision,
            thread_id=thread_id,
            approval_id=item["id"],
            approver_groups=item["approvers"],
            request_sha256=digest,
            directory=context.library.approvers,
            identity=context.identity,
            requested_by=payload.get("requested_by"),
            separation_of_duties=context.workflow.separation_of_duties,
            used_decision_ids=used,
        )
        if decision.signature:
            maybe_die("signature.verified")
    if decision is not None and problem is None and decision.decision == "approve":
        problem = _unanswered_evidence(item, decision.answers)
    acting_for: str | None = None
    if decision is not None and problem is None and remaining and decision.decision == "approve":
        acting_for, problem = _all_of_group(item, signer, remaining, signed, context)
    answers: dict[str, Any] = {}
    if decision is not None and problem is None:
        # the approver's own evidence answers must not contradict the decision, and only
        # answers to this approval's own questions count (governance/answers.py)
        answers, problem = check_approval_answers(
            _policy_of(context, item), item["name"], decision.decision, decision.answers
        )
    from mpm.governance.signatures import decision_payload

    signed = None
    if decision is not None and signer is not None and decision.signature:
        signed = decision_payload(
            thread_id=thread_id,
            approval_id=item["id"],
            request_sha256=digest,
            decision=decision.decision,
            comment=decision.comment,
            answers=decision.answers,
            signer=signer,
            decision_id=decision.decision_id,
        )
    return {
        "ts": now_iso(),  # the server's clock; the client's claim is kept apart
        "claimed_at": _text(raw.get("submitted_at"), 64) or None,
        "thread_id": thread_id,
        "approval_id": item["id"],
        "approver_groups": list(item["approvers"]),
        "approver": signer or _text(raw.get("approver"), 128),
        "decision": decision.decision if decision else _text(raw.get("decision"), 40),
        "comment": decision.comment if decision else _text(raw.get("comment"), 2000),
        "answers": answers if problem is None else {},
        "accepted": problem is None,
        "reason": problem
        or (
            f"{signer} approved for {acting_for} (all of {', '.join(item['approvers'])})"
            if acting_for
            else f"{signer} may act for {', '.join(item['approvers'])}"
        ),
        "acting_for": acting_for,
        "decision_id": decision.decision_id if decision else _text(raw.get("decision_id"), 128),
        "request_sha256": digest,
        "payload": signed,
        "signature": decision.signature if decision else None,
        "key_fingerprint": fingerprint,
    }


def _unanswered_evidence(item: dict[str, Any], answers: Any) -> str | None:
    """The approval's own evidence must be answered before it can be granted."""
    given = answers if isinstance(answers, dict) else {}
    missing = [
        q["label"]
        for q in item.get("open_evidence") or []
        if not any(given.get(k) not in (None, "", []) for k in (q["key"], q.get("alias")) if k)
    ]
    if not missing:
        return None
    return "the approval's own evidence is unanswered (answer it with --answers): " + "; ".join(
        missing
    )


def _all_of_group(
    item: dict[str, Any],
    signer: str | None,
    remaining: list[str],
    signed: dict[str, str],
    context: Any,
) -> tuple[str | None, str | None]:
    """(group this approver acts for, None) or (None, why not) for an all_of approval."""
    if signer in signed.values():
        done = ", ".join(g for g, a in signed.items() if a == signer)
        return None, (
            f"{signer} already approved for {done}; all of {', '.join(item['approvers'])} "
            "must approve, each by its own member"
        )
    group = next((g for g in remaining if context.library.approvers.can_act_as(signer, g)), None)
    if group is None:
        return (
            None,
            f"{signer} is not a member of a group still to approve ({', '.join(remaining)})",
        )
    return group, None


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
