"""Judging signed approval decisions, and deriving approval state from judged ones.

Why here (not in the graph): the same rules decide whether a decision counts when it
arrives (the approval node) and, again, every time governance is computed from the audit
trail (:func:`derive_decisions`). Nothing a client writes into a state map can grant an
approval: only an audit entry whose signature verifies against the identity directory,
whose payload names this thread and approval, and whose signer may act for a group the
approval names and is not the requester.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mpm.governance.identity import IdentityDirectory, UnsafeIdError, canonical_id
from mpm.governance.signatures import decision_payload, verify

WITHDRAWAL = "withdrawal"
"""``kind`` of mpm's trail entry withdrawing a decision whose reviewed work was reopened
(it names the decision in ``withdraws``)."""


def withdrawn_decisions(entries: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """(approval id, decision id) of every decision a withdrawal entry withdraws."""
    return {
        (str(e.get("approval_id")), str(e.get("withdraws")))
        for e in entries
        if isinstance(e, Mapping) and e.get("kind") == WITHDRAWAL
    }


DECISIONS = ("approve", "reject", "request_changes")
SEEN_DECISIONS = "seen_decision_ids"
MAX_COMMENT = 2000
"""Resume-value key the runner adds: decision ids the thread has recorded."""


class Decision(BaseModel):
    """A resume value for an approval, as ``mpm approve`` (or any client) sends it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    decision: Literal["approve", "reject", "request_changes"]
    approver: str = Field(min_length=1, max_length=300)
    comment: str = Field(default="", max_length=MAX_COMMENT)
    answers: dict[str, Any] = Field(default_factory=dict)
    thread_id: str | None = Field(default=None, max_length=200)
    approval_id: str = Field(min_length=1, max_length=300)
    decision_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,128}$")
    submitted_at: str | None = Field(default=None, max_length=64)
    request_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    signature: str | None = Field(default=None, max_length=8000)
    seen_decision_ids: list[str] = Field(default_factory=list, max_length=100_000)


def parse_decision(value: Any) -> tuple[Decision | None, str | None]:
    """(decision, None) or (None, one-line reason naming the field)."""
    if not isinstance(value, Mapping):
        return None, (
            "a decision must be an object with decision, approver, approval_id, decision_id "
            f"and signature; got {type(value).__name__}"
        )
    try:
        json.dumps(value.get("answers", {}), allow_nan=False)
    except (TypeError, ValueError):
        return None, "answers: expected plain JSON values"
    verb = value.get("decision")
    if verb not in DECISIONS:
        shown = repr(verb)[:80]
        return None, f"decision {shown}: expected one of {', '.join(DECISIONS)}"
    try:
        return Decision.model_validate(dict(value)), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "decision"
        return None, f"malformed decision: {where}: {first['msg']}"


def judge(
    decision: Decision,
    *,
    thread_id: str,
    approval_id: str,
    approver_groups: Iterable[str],
    request_sha256: str,
    directory: Any,
    identity: IdentityDirectory,
    requested_by: str | None,
    separation_of_duties: bool,
    used_decision_ids: set[str],
) -> tuple[str | None, str | None, str | None]:
    """(problem or None, signer's canonical id or None, key fingerprint or None)."""
    groups = list(approver_groups)
    if decision.thread_id not in (None, thread_id):
        return f"decision is for thread {decision.thread_id!r}, not {thread_id!r}", None, None
    if decision.approval_id != approval_id:
        return (
            f"decision is for approval {decision.approval_id!r}, not {approval_id!r}",
            None,
            None,
        )
    try:
        signer = canonical_id(decision.approver, what="approver")
    except UnsafeIdError as exc:
        return str(exc), None, None
    if decision.decision_id in used_decision_ids:
        return (
            f"decision id {decision.decision_id} was already used (replayed decision)",
            signer,
            None,
        )
    if decision.request_sha256 not in (None, request_sha256):
        return "the request changed since it was signed (sign the current request)", signer, None
    if not decision.signature:
        return f"unsigned decision: {signer} must sign it with their key (--key)", signer, None
    payload = decision_payload(
        thread_id=thread_id,
        approval_id=approval_id,
        request_sha256=request_sha256,
        decision=decision.decision,
        comment=decision.comment,
        answers=decision.answers,
        signer=signer,
        decision_id=decision.decision_id,
    )
    fingerprint = verify(payload, decision.signature, signer, identity)
    if fingerprint is None:
        known = bool(identity.keys_of(signer))
        why = "is not a key the identity directory binds to" if known else "has no key for"
        return (
            f"signature does not verify: the signing key {why} {signer}"
            if known
            else f"signature does not verify: the identity directory {why} {signer}",
            signer,
            None,
        )
    problem = authorise(
        signer,
        groups,
        directory=directory,
        requested_by=requested_by,
        separation_of_duties=separation_of_duties,
    )
    return problem, signer, fingerprint


def authorise(
    signer: str,
    groups: list[str],
    *,
    directory: Any,
    requested_by: str | None,
    separation_of_duties: bool,
) -> str | None:
    """Separation of duties and group membership, both on canonical ids."""
    if separation_of_duties and requested_by:
        try:
            requester = canonical_id(requested_by, what="requested_by")
        except UnsafeIdError as exc:
            return str(exc)
        if requester == signer:
            return f"{signer} requested this project and may not approve it (separation of duties)"
    if not any(directory.can_act_as(signer, name) for name in groups):
        return f"{signer} is not a member of {', '.join(groups)}"
    return None


def derive_decisions(
    entries: Iterable[Mapping[str, Any]],
    *,
    thread_id: str | None,
    approvals: Mapping[str, list[str]],
    directory: Any,
    identity: IdentityDirectory,
    requested_by: str | None,
    separation_of_duties: bool,
    revoked: Mapping[str, Any] | None = None,
    all_of: Iterable[str] = (),
) -> dict[str, dict[str, Any]]:
    """Approval id -> the decision that stands, from audit entries that verify now.

    Each entry is re-judged from its signed payload alone (its ``accepted`` flag and every
    other stored field are not trusted): the payload must name this thread and a known
    approval, the signature must verify with the signer's key, and the signer must be
    allowed to act for the approval today. The last such entry per approval wins.
    A withdrawal entry (``kind`` :data:`WITHDRAWAL`: a stage was sent back or reopened)
    withdraws the decision it names; so does a record marked ``superseded`` in ``revoked``,
    the graph's ``approvals`` map. Either can only take an approval away, never grant one:
    a withdrawal dropped from the map still stands in the trail.

    ``all_of``: approval ids that need one approve per named group, each by a different
    member; such an approval stands as approved only once the verified approvals cover
    every group (until then it is pending, unless a reject or change request stands)."""
    standing: dict[str, dict[str, Any]] = {}
    approvers_of: dict[str, list[str]] = {}  # approval id -> signers of standing approves
    seen_ids: set[str] = set()
    entries = [e for e in entries if isinstance(e, Mapping)]
    withdrawn = withdrawn_decisions(entries)
    for entry in sorted(entries, key=lambda e: _seq(e.get("seq"))):
        if entry.get("kind") == WITHDRAWAL:
            continue
        first_use = str(entry.get("decision_id")) not in seen_ids
        seen_ids.add(str(entry.get("decision_id")))
        if entry.get("accepted") is not True or not first_use:
            continue  # refused when judged (the flag can only take away), or a reused id
        decision = _standing_decision(
            entry,
            thread_id=thread_id,
            approvals=approvals,
            directory=directory,
            identity=identity,
            requested_by=requested_by,
            separation_of_duties=separation_of_duties,
        )
        if decision is not None:
            standing[decision["approval_id"]] = decision
            signers = approvers_of.setdefault(decision["approval_id"], [])
            if decision.get("decision") == "approve":
                signers.append(str(decision.get("approver")))
            else:
                signers.clear()  # a reject or change request starts the approval over
    for approval_id in set(all_of) & set(standing):
        held = standing[approval_id]
        if held.get("decision") == "approve" and not _covers_every_group(
            approvers_of.get(approval_id, []), approvals.get(approval_id) or [], directory
        ):
            del standing[approval_id]
    for approval_id, record in (revoked or {}).items():
        if isinstance(record, Mapping) and record.get("decision") == "superseded":
            withdrawn.add((str(approval_id), str(record.get("decision_id"))))
    for approval_id, held in list(standing.items()):
        if (approval_id, str(held["decision_id"])) in withdrawn:
            del standing[approval_id]
    return standing


def _covers_every_group(signers: list[str], groups: list[str], directory: Any) -> bool:
    """Whether distinct signers can be assigned one to each group (bipartite matching)."""
    match: dict[str, str] = {}  # group -> signer

    def assign(signer: str, tried: set[str]) -> bool:
        for group in groups:
            if group in tried or not directory.can_act_as(signer, group):
                continue
            tried.add(group)
            if group not in match or assign(match[group], tried):
                match[group] = signer
                return True
        return False

    for signer in dict.fromkeys(signers):
        assign(signer, set())
    return set(match) >= set(groups)


def _seq(value: Any) -> int:
    return value if isinstance(value, int) else 1 << 62


def _standing_decision(
    entry: Mapping[str, Any],
    *,
    thread_id: str | None,
    approvals: Mapping[str, list[str]],
    directory: Any,
    identity: IdentityDirectory,
    requested_by: str | None,
    separation_of_duties: bool,
) -> dict[str, Any] | None:
    payload, signature = entry.get("payload"), entry.get("signature")
    if not isinstance(payload, str) or not isinstance(signature, str):
        return None
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("mpm_decision") != 1:
        return None
    approval_id, signer = body.get("approval_id"), body.get("signer")
    if thread_id is None or body.get("thread_id") != thread_id or approval_id not in approvals:
        return None
    if body.get("decision") not in DECISIONS or not isinstance(signer, str):
        return None
    try:
        rebuilt = decision_payload(
            thread_id=thread_id,
            approval_id=approval_id,
            request_sha256=str(body.get("request_sha256")),
            decision=body["decision"],
            comment=str(body.get("comment", "")),
            answers=body.get("answers") if isinstance(body.get("answers"), dict) else {},
            signer=signer,
            decision_id=str(body.get("decision_id")),
        )
    except UnsafeIdError:
        return None
    fingerprint = verify(payload, signature, signer, identity) if rebuilt == payload else None
    if fingerprint is None:
        return None
    if authorise(
        signer,
        list(approvals[approval_id]),
        directory=directory,
        requested_by=requested_by,
        separation_of_duties=separation_of_duties,
    ):
        return None
    return {
        "approval_id": approval_id,
        "decision": body["decision"],
        "approver": signer,
        "comment": body["comment"],
        # signed values, for the questions the judgement kept (governance/answers.py)
        "answers": {k: v for k, v in body["answers"].items() if k in (entry.get("answers") or {})},
        "decision_id": body["decision_id"],
        "decided_at": entry.get("ts"),
        "key_fingerprint": fingerprint,  # of the key the signature verified with, now
    }


def make_decision(
    request: Mapping[str, Any],
    *,
    approver: str,
    key: Any,
    decision: str = "approve",
    comment: str = "",
    answers: Mapping[str, Any] | None = None,
    decision_id: str | None = None,
    submitted_at: str | None = None,
) -> dict[str, Any]:
    """A signed resume value for the approval ``request`` (its interrupt payload).

    The one signing path: ``mpm approve``, ``mpm demo`` and the test helpers all use it.
    ``key`` is a key file (private, or public with ssh-agent), a directory of keys named
    by member id, or None for ``MPM_SIGNING_KEY``."""
    import uuid

    from mpm.governance.signatures import request_digest, sign, signing_key_for

    signer = canonical_id(approver, what="--as")
    comment = comment[:MAX_COMMENT]  # what is signed is what the trail keeps
    digest = request_digest(dict(request))
    decision_id = decision_id or uuid.uuid4().hex
    payload = decision_payload(
        thread_id=str(request.get("thread_id")),
        approval_id=str(request.get("approval_id")),
        request_sha256=digest,
        decision=decision,
        comment=comment,
        answers=dict(answers or {}),
        signer=signer,
        decision_id=decision_id,
    )
    return {
        "decision": decision,
        "approver": signer,
        "comment": comment,
        "answers": dict(answers or {}),
        "thread_id": request.get("thread_id"),
        "approval_id": request.get("approval_id"),
        "decision_id": decision_id,
        "submitted_at": submitted_at,
        "request_sha256": digest,
        "signature": sign(payload, signing_key_for(signer, key)),
    }
