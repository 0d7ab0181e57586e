"""The append-only, hash-chained audit trail of approval decisions.

Every decision, accepted or refused, becomes an entry; each entry carries the SHA-256
of its own canonical JSON (without the ``hash`` field) and the hash of the entry before
it. Editing, removing or reordering any entry breaks the chain from that point on.

The chain is built by the state reducer :func:`chain_entries`, so decisions that land in
the same super-step from parallel approval tasks are chained in one deterministic order
rather than forking the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "ts",
    "thread_id",
    "approval_id",
    "approver",
    "decision",
    "comment",
    "accepted",
    "reason",
    "decision_id",
    "prev_hash",
)


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: entry.get(k) for k in HASHED_FIELDS}
    canonical = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def chain_entries(
    left: list[dict[str, Any]] | None, right: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Reducer: append ``right`` to ``left``, linking each new entry to the one before.

    Entries that already carry a hash (a replayed checkpoint, an exported trail) are kept
    as they are; only new entries are sealed."""
    chain = list(left or [])
    for raw in right or []:
        if raw.get("hash") and raw.get("seq") is not None:
            chain.append(raw)
            continue
        entry = dict(raw)
        entry["seq"] = len(chain)
        entry["prev_hash"] = chain[-1]["hash"] if chain else GENESIS
        entry["hash"] = entry_hash(entry)
        chain.append(entry)
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
