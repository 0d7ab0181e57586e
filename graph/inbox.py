"""A thread's inbox: decisions and answers received, durably, before the graph applies them.

Why it exists: an accepted ``mpm approve`` / ``mpm answer`` used to resume the graph in the
approver's own process, so the approver waited for every stage up to the run's next stop
(MLflow runs, training...). Now the command judges the decision, writes it here and
returns; a background worker (``mpm resume --worker``) -- or any later ``mpm resume``, e.g.
after a crash -- delivers what is here (:meth:`~mpm.graph.runner.Runner.resume`).

Layout, under ``<workspace>/runs/<thread>/inbox/``:

* ``approval-<decision id>.json`` / ``answers-<digest of the questions asked>.json`` --
  received, not yet applied (one file per decision, written atomically and fsynced);
* ``done/<name>`` -- applied: the graph's checkpoint records the node's judgement;
* ``aside/<name>`` -- not applied, with the ``reason`` (the approval was decided or
  withdrawn meanwhile, or the approval node refused the value).

An entry is *only a resume value*: the approval node judges it again when it is delivered
(signature, approver, request hash, decision id), so editing a file here is no more than
submitting a decision, and a refused one is audited like any other. This module reads and
moves files only: it imports no LangGraph, so the read commands can show what was received.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpm.graph.workspace import validate_thread_id

INBOX = "inbox"
DONE = "done"
ASIDE = "aside"
WORKER_FILE = "worker.json"
"""In ``runs/<thread>/``: the latest background worker started for the thread (pid, log,
started_at)."""
ANSWER_KINDS = frozenset({"open_questions", "kickoff_questions"})


class InboxError(ValueError):
    """An entry cannot be received (the same answers are already waiting to be applied)."""


def inbox_dir(workspace: Any, thread_id: str) -> Path:
    """Where the thread's inbox is; nothing is created (read commands use it too)."""
    return Path(workspace.root) / "runs" / validate_thread_id(thread_id) / INBOX


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _safe_part(text: str) -> str:
    """A file-name part from a decision id: what ids are made of, nothing else."""
    kept = "".join(c for c in text if c.isalnum() or c in "-_")[:64]
    return kept or _digest(text)


@dataclass
class Entry:
    """One received decision or set of answers (the file's content, and where it is)."""

    path: Path
    kind: str
    """``approval``, ``open_questions`` or ``kickoff_questions``."""
    value: Any
    key: str | None = None
    """The approval id (approvals only)."""
    interrupt_id: str | None = None
    """The interrupt that was waiting when the entry was received."""
    asked: str | None = None
    """Digest of what that interrupt asked (answers: the questions)."""
    received_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def decision_id(self) -> str | None:
        value = self.value if isinstance(self.value, dict) else {}
        got = value.get("decision_id")
        return str(got) if got else None

    def summary(self) -> dict[str, Any]:
        """What a person is shown: no value (a decision's comment is in the audit trail
        once applied), only what was received and when."""
        return {
            "entry": self.name,
            "kind": self.kind,
            "approval_id": self.key,
            "decision": (self.value or {}).get("decision") if self.kind == "approval" else None,
            "approver": (self.value or {}).get("approver") if self.kind == "approval" else None,
            "decision_id": self.decision_id,
            "received_at": self.received_at,
        }


def entry_name(kind: str, value: Any, interrupt_id: str | None, asked: Any) -> str:
    """``approval-<decision id>.json``; answers: ``answers-<digest of the questions>.json``
    (a second set of answers to the same questions, before the first is applied, is
    refused rather than raced)."""
    if kind == "approval":
        did = value.get("decision_id") if isinstance(value, dict) else None
        return f"approval-{_safe_part(str(did)) if did else _digest(value)}.json"
    return f"answers-{_digest([interrupt_id, asked])}.json"


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write, fsync, rename into place, fsync the directory: after this returns the entry
    survives a crash whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, sort_keys=True, ensure_ascii=False, default=str))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def receive(
    workspace: Any,
    thread_id: str,
    kind: str,
    value: Any,
    *,
    key: str | None,
    interrupt_id: str | None,
    asked: Any,
    received_at: str,
) -> Entry:
    """Durably write one entry; raises :class:`InboxError` if one of that name waits."""
    name = entry_name(kind, value, interrupt_id, asked)
    path = inbox_dir(workspace, thread_id) / name
    if path.exists():
        raise InboxError(
            f"thread {thread_id}: {'this decision' if kind == 'approval' else 'answers to these questions'} "
            f"already received ({path}) and not yet applied; follow it with `mpm status {thread_id}`"
        )
    data = {
        "version": 1,
        "kind": kind,
        "key": key,
        "interrupt_id": interrupt_id,
        "asked": _digest(asked),
        "received_at": received_at,
        "value": value,
    }
    _write_atomic(path, data)
    return _entry(path, data)


def _entry(path: Path, data: dict[str, Any]) -> Entry:
    return Entry(
        path=path,
        kind=str(data.get("kind")),
        value=data.get("value"),
        key=data.get("key") if isinstance(data.get("key"), str) else None,
        interrupt_id=data.get("interrupt_id")
        if isinstance(data.get("interrupt_id"), str)
        else None,
        asked=data.get("asked") if isinstance(data.get("asked"), str) else None,
        received_at=str(data.get("received_at") or "") or None,
        extra={k: v for k, v in data.items() if k in {"reason", "settled_at"}},
    )


def pending(workspace: Any, thread_id: str) -> list[Entry]:
    """Entries received and not yet settled, oldest first. A file that is not a readable
    entry (hand-edited into garbage) is moved aside with the reason, never wedging the
    thread -- but only by a caller that may write (``settle_unreadable``)."""
    return _read_dir(inbox_dir(workspace, thread_id))[0]


def _read_dir(folder: Path) -> tuple[list[Entry], list[tuple[Path, str]]]:
    entries: list[Entry] = []
    broken: list[tuple[Path, str]] = []
    if not folder.is_dir():
        return entries, broken
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            broken.append((path, f"not a readable inbox entry: {exc}"))
            continue
        if not isinstance(data, dict) or data.get("kind") not in {"approval", *ANSWER_KINDS}:
            broken.append((path, "not an inbox entry (no known 'kind')"))
            continue
        entries.append(_entry(path, data))
    entries.sort(key=lambda e: (e.received_at or "", e.name))
    return entries, broken


def settled(workspace: Any, thread_id: str, where: str = ASIDE) -> list[Entry]:
    """Entries already settled (``done`` or ``aside``), oldest first."""
    return _read_dir(inbox_dir(workspace, thread_id) / where)[0]


def settle(entry: Entry, where: str, reason: str, at: str) -> Path:
    """Move an entry to ``done/`` or ``aside/`` with why (atomically; the pending file is
    removed only once the settled copy is durable)."""
    data = json.loads(entry.path.read_text(encoding="utf-8"))
    target = entry.path.parent / where / entry.name
    _write_atomic(target, {**data, "reason": reason, "settled_at": at})
    entry.path.unlink(missing_ok=True)
    return target


def settle_unreadable(workspace: Any, thread_id: str, at: str) -> list[tuple[Path, str]]:
    """Move files that are not readable entries aside (renamed whole: they cannot be
    parsed to add a reason, so the reason goes in a ``.reason`` file next to them)."""
    folder = inbox_dir(workspace, thread_id)
    _, broken = _read_dir(folder)
    for path, reason in broken:
        (folder / ASIDE).mkdir(parents=True, exist_ok=True)
        os.replace(path, folder / ASIDE / path.name)
        (folder / ASIDE / f"{path.name}.reason").write_text(f"{at} {reason}\n", encoding="utf-8")
    return broken


# --------------------------------------------------------------------------- planning


@dataclass
class Plan:
    """What one delivery round does with the pending entries."""

    deliver: dict[str, Entry] = field(default_factory=dict)
    """interrupt id -> the entry answering it (at most one per interrupt per round)."""
    done: list[tuple[Entry, str]] = field(default_factory=list)
    aside: list[tuple[Entry, str]] = field(default_factory=list)


def plan(
    entries: list[Entry],
    interrupts: list[dict[str, Any]],
    judged: dict[str, dict[str, Any]],
    *,
    at_rest: bool,
    tried: set[str],
    accepted_in_trail: dict[str, dict[str, Any]] | None = None,
) -> Plan:
    """Sort pending entries into deliver now / applied / no longer deliverable.

    ``interrupts``: the interrupts waiting now ({id, value}); ``judged``: decision id ->
    the audit entry the checkpoint records for it (the node's judgement, in its state or in
    the open step's writes); ``at_rest``: the thread is waiting or finished (not cut off
    mid-step: then an interrupt not shown may only not be re-raised yet); ``tried``: entry
    names delivered earlier in this resume (never delivered twice by one process);
    ``accepted_in_trail``: the node's acceptances in the durable trail, by decision id --
    settled only where the checkpoint shows them counted too: delivered by this process
    (its drive ended at a saved interrupt), or named in an ``all_of`` approval's ``signed``
    (the node publishes who approved so far when it asks the next group)."""
    out = Plan()
    trail_ok = accepted_in_trail or {}
    for entry in entries:
        did = entry.decision_id if entry.kind == "approval" else None
        if did and did in judged:
            verdict = judged[did]
            if verdict.get("accepted"):
                out.done.append((entry, "applied: the approval node accepted it"))
            else:
                out.aside.append(
                    (entry, f"refused by the approval node: {verdict.get('reason') or 'no reason'}")
                )
            continue
        match = _waiting_for(entry, interrupts)
        if (
            did
            and did in trail_ok
            and (entry.name in tried or _signed_in(match, interrupts, trail_ok[did]))
        ):
            out.done.append((entry, "applied: the approval node accepted it (all of: one group)"))
            continue
        if entry.name in tried:
            if match is None and at_rest:
                (out.done if entry.kind in ANSWER_KINDS else out.aside).append(
                    (
                        entry,
                        "applied: the run no longer waits for these answers"
                        if entry.kind in ANSWER_KINDS
                        else "delivered, but the checkpoint records no judgement of it "
                        "(see `mpm audit`)",
                    )
                )
            elif match is not None and entry.kind == "approval":
                out.aside.append(
                    (
                        entry,
                        "delivered, but the approval node did not record it as decided "
                        "(refused; see `mpm audit`)",
                    )
                )
            continue  # delivered once by this process: never again
        if match is None:
            if at_rest:
                what = f"approval {entry.key}" if entry.kind == "approval" else "these answers"
                out.aside.append(
                    (entry, f"the run no longer waits for {what} (decided or withdrawn meanwhile)")
                )
            continue
        if match not in out.deliver:
            out.deliver[match] = entry
        # a second entry for the same interrupt waits for the next round
    return out


def _signed_in(
    match: str | None, interrupts: list[dict[str, Any]], accepted: dict[str, Any]
) -> bool:
    """The waiting all_of interrupt ``match`` lists ``accepted``'s approver as having signed
    for the group it acted for."""
    value = next((i["value"] for i in interrupts if str(i.get("id")) == match), None)
    signed = value.get("signed") if isinstance(value, dict) else None
    group = accepted.get("acting_for")
    return (
        isinstance(signed, dict) and bool(group) and signed.get(group) == accepted.get("approver")
    )


def _waiting_for(entry: Entry, interrupts: list[dict[str, Any]]) -> str | None:
    """The id of the interrupt waiting now that ``entry`` answers, if any."""
    for item in interrupts:
        value = item.get("value") if isinstance(item.get("value"), dict) else {}
        if value.get("type") != entry.kind:
            continue
        if entry.kind == "approval":
            if value.get("approval_id") == entry.key:
                return str(item["id"])
        elif item.get("id") == entry.interrupt_id and entry.asked == _digest(
            value.get("questions")
        ):
            return str(item["id"])
    return None


def asked_of(value: dict[str, Any]) -> Any:
    """What an interrupt asked, as an entry's ``asked`` digest covers it."""
    return value.get("questions")


# --------------------------------------------------------------------------- the worker


def record_worker(workspace: Any, thread_id: str, pid: int, log: Path, at: str) -> None:
    _write_atomic(
        inbox_dir(workspace, thread_id).parent / WORKER_FILE,
        {"pid": pid, "log": str(log), "started_at": at},
    )


def worker(workspace: Any, thread_id: str) -> dict[str, Any] | None:
    """The latest worker started for the thread, with ``alive`` (its pid still runs)."""
    path = inbox_dir(workspace, thread_id).parent / WORKER_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        pid = int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {**data, "pid": pid, "alive": _alive(pid)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not applying anything
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def received(workspace: Any, thread_id: str) -> dict[str, Any] | None:
    """What ``mpm status`` / ``mpm approvals`` show: decisions received, not yet applied,
    and the worker applying them (None when nothing is pending)."""
    entries = pending(workspace, thread_id)
    if not entries:
        return None
    return {"entries": [e.summary() for e in entries], "worker": worker(workspace, thread_id)}


def received_line(thread_id: str, info: dict[str, Any]) -> str:
    """One line for people (plain text; the caller escapes it)."""
    what = ", ".join(
        f"{e['decision']} on {e['approval_id']} by {e['approver']}"
        if e["kind"] == "approval"
        else "answers"
        for e in info["entries"]
    )
    w = info.get("worker")
    if w and w.get("alive"):
        how = f"being applied by worker pid {w['pid']} (log {w['log']})"
    else:
        how = f"no worker is running: apply it with `mpm resume {thread_id}`"
    return f"decision received ({what}), {how}"
