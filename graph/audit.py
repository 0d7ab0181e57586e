"""The append-only, hash-chained audit trail of approval decisions, and where it is kept.

Every decision, accepted or refused, becomes an entry the moment it is judged; each entry
carries the SHA-256 of its own canonical JSON (every field but ``hash``) and the hash of the
entry before it, so editing, removing or reordering any entry breaks the chain.

Where: the durable copy is ``<workspace>/runs/<thread>/audit_trail.jsonl``, appended with
``fsync`` under a file lock by the approval node before it does anything else. Why a file and
not only the checkpoint: a refusal inside the approval node's interrupt loop never reaches a
checkpoint write of its own (the node's update is saved only when it returns), and a crash
right after a judgement must not lose it. Each append is idempotent by its *slot* (the
approval task's id and the decision's position in that task): LangGraph replays a resumed
node from its start, and the replay finds its earlier judgements instead of adding them
again. The chain head (count + hash) is anchored outside the file: in the checkpoint (the
``audit`` copy, ``audit_head``, and the re-asked approval's interrupt payload), as an MLflow
tag on the parent run and on every registered model version; ``mpm audit --verify``
compares them all.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
TRAIL_FILE = "audit_trail.jsonl"
HEAD_TAG = "mpm.audit_head"
"""MLflow tag (parent run, registered model versions): ``<count>:<hash>``."""

_local_lock = threading.Lock()


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    canonical = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def seal(entry: dict[str, Any], chain: list[dict[str, Any]]) -> dict[str, Any]:
    sealed = {k: v for k, v in entry.items() if k not in {"seq", "prev_hash", "hash"}}
    sealed["seq"] = len(chain)
    sealed["prev_hash"] = chain[-1]["hash"] if chain else GENESIS
    sealed["hash"] = entry_hash(sealed)
    return sealed


def head(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The chain head: how many entries and the last one's hash."""
    return {"count": len(entries), "hash": entries[-1].get("hash") if entries else GENESIS}


def head_tag(entries_or_head: list[dict[str, Any]] | dict[str, Any]) -> str:
    h = head(entries_or_head) if isinstance(entries_or_head, list) else entries_or_head
    return f"{h['count']}:{h['hash']}"


def chain_entries(
    left: list[dict[str, Any]] | None, right: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Reducer for the checkpoint's copy of the trail.

    Entries sealed by the durable trail (they carry ``hash`` and ``seq``) are merged by
    hash and kept in ``seq`` order, so parallel approval tasks landing in one super-step
    neither fork nor reorder the chain; unsealed entries are sealed onto the end."""
    chain = list(left or [])
    known = {e.get("hash") for e in chain}
    fresh: list[dict[str, Any]] = []
    for raw in right or []:
        if raw.get("hash") and raw.get("seq") is not None:
            if raw["hash"] not in known:
                known.add(raw["hash"])
                chain.append(raw)
        else:
            fresh.append(raw)
    chain.sort(key=lambda e: e["seq"] if isinstance(e.get("seq"), int) else 1 << 62)
    for raw in fresh:
        chain.append(seal(raw, chain))
    return chain


def verify(entries: Iterable[dict[str, Any]]) -> tuple[bool, list[str]]:
    """Check the whole chain; the problems name the entry where each break is."""
    problems: list[str] = []
    prev = GENESIS
    for i, entry in enumerate(entries):
        where = (
            f"entry {i} ({entry.get('approval_id')}, {entry.get('approver')}, {entry.get('ts')})"
        )
        if entry.get("seq") != i:
            problems.append(
                f"{where}: sequence number {entry.get('seq')!r}, expected {i} (entry removed or reordered)"
            )
        if entry.get("prev_hash") != prev:
            problems.append(f"{where}: does not link to the entry before it")
        if entry_hash(entry) != entry.get("hash"):
            problems.append(f"{where}: content does not match its hash (edited)")
        prev = entry.get("hash", "")
    return not problems, problems


def to_jsonl(entries: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in entries)


def from_jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------- durable trail


def trail_path(workspace: Any, thread_id: str) -> Path:
    return workspace.run_dir(thread_id) / TRAIL_FILE


def read_trail(path: Path) -> list[dict[str, Any]]:
    """The durable trail; a torn last line (a crash mid-write) is ignored, never guessed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    entries = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                break  # torn last line: not recorded
            raise ValueError(f"{path}: line {i + 1} is not JSON (the trail was edited)") from None
    return entries


def append(path: Path, entry: dict[str, Any], *, slot: str) -> tuple[dict[str, Any], bool]:
    """Seal ``entry`` onto the durable trail and fsync it; (sealed entry, newly written).

    Idempotent by ``slot``: if an entry with that slot is already there (the node was
    replayed after a resume or a crash), that entry is returned and nothing is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    with _local_lock, open(path, "a+", encoding="utf-8") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            fh.seek(0)
            chain = read_trail(path)
            for existing in chain:
                if existing.get("slot") == slot:
                    return existing, False
            sealed = seal({**entry, "slot": slot}, chain)
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):
                # a line torn by a crash mid-write was never recorded: its judgement is
                # written again by the replay, so drop the fragment rather than keep garbage
                fh.truncate(data.rfind(b"\n") + 1)
            fh.write(json.dumps(sealed, sort_keys=True, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    if created:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return sealed, True


# --------------------------------------------------------------------------- verifying all copies


def record_withdrawals(
    workspace: Any, thread_id: str, superseded: dict[str, Any], *, now: str
) -> list[dict[str, Any]]:
    """Append mpm's withdrawal of each superseded decision to the durable trail; the sealed
    entries (for the checkpoint's copy).

    A stage sent back (or reopened by a remediation attempt) withdraws the decisions that
    reviewed its old work. That withdrawal used to live only in the checkpoint's
    ``approvals`` map, so whoever could write the checkpoint could drop it and let a
    genuinely signed but superseded approval stand again. In the hash-chained, anchored
    trail it is as durable as the decision it withdraws; it names the decision by
    ``withdraws`` (never ``decision_id``, which is the signer's). Idempotent per decision:
    a replayed supervisor step writes nothing new."""
    from mpm.governance.decisions import WITHDRAWAL

    path = trail_path(workspace, thread_id)
    sealed = []
    for approval_id, record in sorted(superseded.items()):
        if not isinstance(record, dict) or record.get("decision") != "superseded":
            continue
        withdrawn = str(record.get("decision_id") or "")
        if not withdrawn:
            continue
        by = str(record.get("superseded_by") or "a later revision")
        entry = {
            "kind": WITHDRAWAL,
            "ts": now,
            "thread_id": thread_id,
            "approval_id": approval_id,
            "withdraws": withdrawn,
            "superseded_by": by,
            "approver": None,
            "decision": "withdrawn",
            "accepted": False,
            "reason": f"withdrawn by mpm: {by} reopened the work this decision reviewed",
        }
        done, _ = append(path, entry, slot=f"{WITHDRAWAL}#{approval_id}#{withdrawn}")
        sealed.append(done)
    return sealed


def verify_signatures(entries: list[dict[str, Any]], identity: Any) -> list[str]:
    """Re-verify every signed entry offline; an accepted entry must carry a valid one."""
    import json as _json

    from mpm.governance.signatures import verify as verify_signature

    problems = []
    for i, entry in enumerate(entries):
        where = f"entry {i} ({entry.get('approval_id')}, {entry.get('approver')})"
        payload, signature = entry.get("payload"), entry.get("signature")
        if not entry.get("accepted"):
            continue  # a refusal is evidence of an attempt; a bad signature is why it failed
        if not payload or not signature:
            problems.append(f"{where}: accepted but carries no signed payload")
            continue
        fingerprint = verify_signature(payload, signature, str(entry.get("approver")), identity)
        if fingerprint is None:
            problems.append(
                f"{where}: signature does not verify against the identity directory's key for "
                f"{entry.get('approver')}"
            )
            continue
        if entry.get("key_fingerprint") not in (None, fingerprint):
            problems.append(f"{where}: recorded key fingerprint is not the signing key's")
        try:
            body = _json.loads(payload)
        except ValueError:
            problems.append(f"{where}: signed payload is not JSON")
            continue
        for field in ("thread_id", "approval_id", "decision", "decision_id", "comment"):
            if body.get(field) != entry.get(field):
                problems.append(f"{where}: {field} differs from what was signed")
        if body.get("signer") != entry.get("approver"):
            problems.append(f"{where}: approver differs from the signer")
    return problems


def compare_copies(
    trail: list[dict[str, Any]],
    *,
    checkpoint: list[dict[str, Any]],
    anchors: dict[str, dict[str, Any] | None],
) -> list[str]:
    """The durable trail against the checkpoint's copy and every anchored chain head."""
    problems = []
    if checkpoint and not trail:
        problems.append(
            f"workspace trail: missing or empty, but the checkpoint holds {len(checkpoint)} entries (deleted)"
        )
    by_seq = {e.get("seq"): e for e in trail}
    for entry in checkpoint:
        mine = by_seq.get(entry.get("seq"))
        if mine is None:
            problems.append(
                f"entry {entry.get('seq')} ({entry.get('approval_id')}): in the checkpoint but not in the workspace trail (removed)"
            )
        elif mine.get("hash") != entry.get("hash"):
            problems.append(
                f"entry {entry.get('seq')} ({entry.get('approval_id')}): the workspace trail and the checkpoint differ (edited)"
            )
    for name, anchor in anchors.items():
        if not anchor:
            continue
        count, want = int(anchor.get("count") or 0), anchor.get("hash")
        if count > len(trail):
            problems.append(
                f"{name}: anchors {count} entries, the workspace trail has {len(trail)} (entries removed)"
            )
        elif count and trail[count - 1].get("hash") != want:
            problems.append(
                f"{name}: anchored head of entry {count - 1} does not match the trail (re-sealed or edited)"
            )
    return problems


def forged_approvals(trail: list[dict[str, Any]], approvals: dict[str, Any]) -> list[str]:
    """Decisions in the checkpoint's ``approvals`` map that no signed, accepted entry backs,
    or that the trail withdrew (a superseded decision written back into the map)."""
    from mpm.governance.decisions import withdrawn_decisions

    backed = {
        (e.get("approval_id"), e.get("decision_id"))
        for e in trail
        if e.get("accepted") and e.get("signature")
    }
    withdrawn = withdrawn_decisions(trail)
    problems = []
    for approval_id, record in (approvals or {}).items():
        if not isinstance(record, dict) or record.get("decision") == "superseded":
            continue
        if (str(approval_id), str(record.get("decision_id"))) in withdrawn:
            problems.append(
                f"approval {approval_id}: the checkpoint records {record.get('decision')!r} by "
                f"{record.get('approver')!r}, a decision the trail withdrew (restored; it grants nothing)"
            )
        elif (approval_id, record.get("decision_id")) not in backed:
            problems.append(
                f"approval {approval_id}: the checkpoint records {record.get('decision')!r} by "
                f"{record.get('approver')!r} with no signed entry in the trail (forged; it grants nothing)"
            )
    return problems


def parse_head_tag(text: str | None) -> dict[str, Any] | None:
    if not text or ":" not in text:
        return None
    count, _, digest = text.partition(":")
    return {"count": int(count), "hash": digest} if count.isdigit() else None
