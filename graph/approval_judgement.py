"""Judging one approval decision: the code the approval node runs, and ``mpm approve`` too.

Why a module of its own (and no LangGraph import): the same judgement is made in two
places. The approval node (``graph/nodes/approvals.py``) makes it when the graph is resumed
with a decision -- that one is authoritative. ``mpm approve`` makes it *before* resuming
(:func:`precheck`): a decision the node would refuse is refused there, recorded in the
durable audit trail exactly as the node records a refusal, and the graph is never built or
resumed for it. Both call :func:`judge_value` with the node's own input (the ``Send``
payload the supervisor wrote into the checkpoint), so there is no second, weaker copy of
the rules to drift apart.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from mpm.tools.killpoints import maybe_die

PRECHECK_SLOT = "precheck"
"""Audit slots of pre-check refusals: ``<task ns>#precheck#<decision id>``. The node's own
slots are ``<task ns>#<n>#<digest>``, so the two never collide, and the node's update
(``_of_task``) still copies pre-check refusals of its task into the checkpoint's chain."""


def approval_request(payload: dict[str, Any], thread_id: str) -> dict[str, Any]:
    """What the approver is shown (and what the signed request hash covers)."""
    return {**payload["request"], "thread_id": thread_id}


def _policy_of(context: Any, item: dict[str, Any]) -> Any:
    """The policy whose approval this is (None for a risk acceptance: it has no questions)."""
    if item.get("kind", "approval") != "approval" or item["framework"] not in context.library:
        return None
    return context.library.get(item["framework"]).policy


def text(value: Any, limit: int) -> str:
    return (value if isinstance(value, str) else "" if value is None else repr(value))[:limit]


def judge_value(
    value: Any,
    item: dict[str, Any],
    thread_id: str,
    digest: str,
    payload: dict[str, Any],
    context: Any,
    chain: list[dict[str, Any]],
    remaining: list[str],
    signed: dict[str, str],
    *,
    signers_only: bool = False,
) -> dict[str, Any]:
    """The audit entry for one resume value: accepted, or refused with the reason.

    ``remaining``/``signed``: for an all_of approval, the named groups still to approve and
    who approved for the others (empty for any_of). ``signers_only``: ``context`` is a
    :class:`~mpm.governance.signers.SignerContext` and only what it can decide is judged --
    signature, membership, decision id, the approval's own evidence -- never separation of
    duties or the answers (those need the policies and the workflow). Its refusals are ones
    the whole judgement makes too; "accepted" then only means "not refused yet"."""
    from mpm.governance.decisions import judge, parse_decision
    from mpm.governance.signatures import decision_payload
    from mpm.graph.state import now_iso

    raw = value if isinstance(value, dict) else {}
    approvers = context.approvers if signers_only else context.library.approvers
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
            directory=approvers,
            identity=context.identity,
            requested_by=payload.get("requested_by"),
            separation_of_duties=not signers_only and context.workflow.separation_of_duties,
            used_decision_ids=used,
        )
        if decision.signature:
            maybe_die("signature.verified")
    if decision is not None and problem is None and decision.decision == "approve":
        problem = _unanswered_evidence(item, decision.answers)
    acting_for: str | None = None
    if decision is not None and problem is None and remaining and decision.decision == "approve":
        acting_for, problem = _all_of_group(item, signer, remaining, signed, approvers)
    answers: dict[str, Any] = {}
    if decision is not None and problem is None and not signers_only:
        from mpm.governance.answers import check_approval_answers

        # the approver's own evidence answers must not contradict the decision, and only
        # answers to this approval's own questions count (governance/answers.py)
        answers, problem = check_approval_answers(
            _policy_of(context, item), item["name"], decision.decision, decision.answers
        )
    signed_payload = None
    if decision is not None and signer is not None and decision.signature:
        signed_payload = decision_payload(
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
        "claimed_at": text(raw.get("submitted_at"), 64) or None,
        "thread_id": thread_id,
        "approval_id": item["id"],
        "approver_groups": list(item["approvers"]),
        "approver": signer or text(raw.get("approver"), 128),
        "decision": decision.decision if decision else text(raw.get("decision"), 40),
        "comment": decision.comment if decision else text(raw.get("comment"), 2000),
        "answers": answers if problem is None else {},
        "accepted": problem is None,
        "reason": problem
        or (
            f"{signer} approved for {acting_for} (all of {', '.join(item['approvers'])})"
            if acting_for
            else f"{signer} may act for {', '.join(item['approvers'])}"
        ),
        "acting_for": acting_for,
        "decision_id": decision.decision_id if decision else text(raw.get("decision_id"), 128),
        "request_sha256": digest,
        "payload": signed_payload,
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
    approvers: Any,
) -> tuple[str | None, str | None]:
    """(group this approver acts for, None) or (None, why not) for an all_of approval."""
    if signer in signed.values():
        done = ", ".join(g for g, a in signed.items() if a == signer)
        return None, (
            f"{signer} already approved for {done}; all of {', '.join(item['approvers'])} "
            "must approve, each by its own member"
        )
    group = next((g for g in remaining if approvers.can_act_as(signer, g)), None)
    if group is None:
        return (
            None,
            f"{signer} is not a member of a group still to approve ({', '.join(remaining)})",
        )
    return group, None


# --------------------------------------------------------------------------- before resuming


def loop_state(item: dict[str, Any], asked: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """(groups still to approve, group -> member who approved) as the node's loop holds them
    at the interrupt ``asked`` (it publishes both for an all_of approval; any_of: empty)."""
    if item.get("group_rule") != "all_of":
        return [], {}
    remaining = asked.get("remaining_groups")
    signed = asked.get("signed")
    return (
        list(remaining) if isinstance(remaining, list) else list(dict.fromkeys(item["approvers"])),
        dict(signed) if isinstance(signed, dict) else {},
    )


def precheck(
    *,
    workspace: Any,
    thread_id: str,
    task_ns: str,
    payload: dict[str, Any],
    asked: dict[str, Any],
    value: Any,
    signers: Any,
    context: Callable[[], Any],
    used_decision_ids: set[str],
) -> str | None:
    """Judge ``value`` before the graph is resumed with it; why it is refused, or None.

    ``payload`` is the approval task's input (its ``Send`` argument, read from the
    checkpoint), ``task_ns`` the task's checkpoint namespace, ``asked`` the interrupt it is
    waiting at: exactly what the node judges with. It is judged first with ``signers`` (a
    :class:`~mpm.governance.signers.SignerContext`: a decision nobody entitled signed is
    refused without loading a policy), then, if that does not refuse it, with the whole
    governance context ``context()`` returns (None if it cannot be loaded: the node then
    reports that itself). A refusal is appended to the durable audit trail (idempotent by
    its slot) before this returns, as the node appends its own; an accepted decision is
    *not* recorded here: the node judges it again when it runs and records that judgement."""
    from mpm.governance.decisions import SEEN_DECISIONS
    from mpm.governance.signatures import request_digest
    from mpm.graph import audit

    item = payload["approval"]
    digest = request_digest(approval_request(payload, thread_id))
    trail = audit.trail_path(workspace, thread_id)
    chain = audit.read_trail(trail)
    if isinstance(value, dict):
        seen = value.get(SEEN_DECISIONS) or []
        value = {**value, SEEN_DECISIONS: sorted({*map(str, seen), *used_decision_ids})}
    remaining, signed = loop_state(item, asked)
    judged = (thread_id, digest, payload)
    entry = None
    if signers is not None:
        entry = judge_value(
            value, item, *judged, signers, chain, remaining, signed, signers_only=True
        )
    if entry is None or entry["accepted"]:
        full = context()
        if full is None:
            return None
        entry = judge_value(value, item, *judged, full, chain, remaining, signed)
    if entry["accepted"]:
        return None
    ident = text(entry.get("decision_id"), 128) or _digest(value)
    entry, _ = audit.append(trail, entry, slot=f"{task_ns}#{PRECHECK_SLOT}#{ident}")
    maybe_die("approval.refused")
    return str(entry["reason"])


def _digest(value: Any) -> str:
    from mpm.governance.signatures import canonical_json

    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:16]
