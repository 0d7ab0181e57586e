"""Reading a thread's latest checkpoint without building the graph (the CLI's read path).

Why: ``mpm status``, ``approvals`` and ``runs`` only look at what the checkpoint holds, yet
the graph-based path (``Runner.snapshot``: compile the graph, ``get_state``) spends most of
its second importing ``langgraph.graph``, every node, agent and tool, and even opening the
LangGraph saver imports ``langchain_core``. This module reads the SQLite checkpoint store
with :mod:`sqlite3` and :mod:`ormsgpack` (the format LangGraph's serializer writes) and
derives what ``get_state`` would show: the state values, the interrupts still waiting for an
answer, whether tasks are left, and each waiting task's input -- in a few milliseconds.

It is *exact or nothing*. Whatever it cannot show exactly raises :class:`Unreadable`, and
the caller falls back to the graph: a value type it does not know (only the types mpm's
checkpoints hold are decoded: plain data, LangGraph's ``Interrupt`` and ``Send``), a
checkpoint format version it was not written for, a super-step in which some tasks have
already finished (their writes would have to be applied through the state's reducers in
LangGraph's task order), a write to the state from outside a task, or a store that is not
SQLite. ``tests/graph/test_checkpoint_reader.py`` compares it with ``get_state`` on real
threads (waiting, cut off mid-step, finished) and pins the LangGraph conventions it relies
on (channel names, task paths, trigger channels), so an upgrade that changes them fails
a test instead of a read.

Nothing here writes: the file is opened read-only, nothing is created when it is missing.
"""

from __future__ import annotations

import binascii
import datetime as dt
import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ormsgpack
from xxhash import xxh3_128_hexdigest

# LangGraph's names and codes (langgraph._internal._constants, checkpoint.serde.jsonplus);
# tests/graph/test_checkpoint_reader.py asserts they are still LangGraph's.
INTERRUPT = "__interrupt__"
RESUME = "__resume__"
ERROR = "__error__"
ERROR_SOURCE_NODE = "__error_source_node__"
TASKS = "__pregel_tasks"
NULL_TASK_ID = "00000000-0000-0000-0000-000000000000"
CONTROL_WRITES = frozenset({INTERRUPT, RESUME, ERROR, ERROR_SOURCE_NODE})
PUSH = "__pregel_push"
PULL = "__pregel_pull"
START = "__start__"
BRANCH_TO = "branch:to:"
EXT_CONSTRUCTOR_SINGLE_ARG = 0
EXT_CONSTRUCTOR_POS_ARGS = 1
EXT_CONSTRUCTOR_KW_ARGS = 2
EXT_METHOD_SINGLE_ARG = 3
CHECKPOINT_VERSIONS = frozenset({4})
"""Checkpoint format versions (``checkpoint["v"]``) this reader was written for."""


class Unreadable(Exception):
    """This checkpoint cannot be shown exactly without the graph; use the graph."""


@dataclass(frozen=True)
class _Interrupt:
    value: Any
    id: str


@dataclass(frozen=True)
class _Send:
    node: str
    arg: Any


def _ext(code: int, data: bytes) -> Any:
    """Decode the LangGraph objects and the few standard types mpm's checkpoints hold;
    refuse anything else (the caller then reads through the graph)."""
    parts = _unpack(data)
    if not (isinstance(parts, list) and len(parts) >= 3):
        raise Unreadable(f"a malformed msgpack ext {code}")
    module, name, args = parts[0], parts[1], parts[2]
    kind = (code, module, name)
    if kind == (EXT_CONSTRUCTOR_KW_ARGS, "langgraph.types", "Interrupt"):
        return _Interrupt(args["value"], args["id"])
    if kind == (EXT_CONSTRUCTOR_POS_ARGS, "langgraph.types", "Send"):
        return _Send(args[0], args[1])
    if kind == (EXT_CONSTRUCTOR_POS_ARGS, "datetime", "date"):
        return dt.date(*args)
    if kind == (EXT_METHOD_SINGLE_ARG, "datetime", "datetime") and parts[3:] == ["fromisoformat"]:
        return dt.datetime.fromisoformat(args)
    if kind == (EXT_CONSTRUCTOR_SINGLE_ARG, "uuid", "UUID"):
        return uuid.UUID(hex=args)
    _refused.why = Unreadable(f"a value of type {module}.{name} (msgpack ext {code})")
    raise _refused.why


_refused = threading.local()
"""The reason :func:`_ext` refused a value (ormsgpack reports only "ext_hook failed")."""


def _unpack(data: bytes) -> Any:
    _refused.why = None
    try:
        return ormsgpack.unpackb(data, ext_hook=_ext, option=ormsgpack.OPT_NON_STR_KEYS)
    except Unreadable:
        raise
    except Exception as exc:  # noqa: BLE001 - ormsgpack wraps what the hook raised
        why = getattr(_refused, "why", None)
        if isinstance(why, Unreadable):
            raise why from None
        raise Unreadable(f"undecodable checkpoint data: {exc}") from exc


def _loads(kind: str | None, blob: bytes | None) -> Any:
    """The stored value (the saver's ``loads_typed``, for the types mpm writes)."""
    if kind == "null":
        return None
    if kind == "msgpack" and blob is not None:
        return _unpack(blob)
    if kind == "json" and blob is not None:
        return json.loads(blob)
    raise Unreadable(f"a stored value of serialization type {kind!r}")


@dataclass(frozen=True)
class Waiting:
    """An interrupt still waiting for an answer, and the task that raised it."""

    id: str
    value: Any
    task_id: str
    node: str
    task_ns: str
    """The task's checkpoint namespace, ``<node>:<task id>`` (what the node sees as
    ``checkpoint_ns``; the approval node's audit slots start with it)."""
    task_input: Any = None
    """The task's input: its ``Send`` argument (None for a task run by an edge)."""


@dataclass
class ThreadView:
    """A thread's latest checkpoint as ``get_state`` would show it."""

    thread_id: str
    checkpoint_id: str
    created_at: str | None
    values: dict[str, Any]
    waiting: list[Waiting]
    has_tasks: bool
    """Tasks are left in the open super-step (answered or not): the run is not over."""
    next: tuple[str, ...]
    audit_writes: list[dict[str, Any]] = field(default_factory=list)
    """Audit entries written by tasks that finished in the open super-step."""
    stale: frozenset[str] = frozenset()
    """State keys those finished tasks wrote: their live value is not ``values[key]``
    (read with ``need_values=False`` only; otherwise such a step is :class:`Unreadable`)."""

    @property
    def interrupts(self) -> list[dict[str, Any]]:
        return [{"id": w.id, "value": w.value} for w in self.waiting]

    def decision_ids(self) -> set[str]:
        """Decision ids the checkpoint records (its audit chain and this step's writes)."""
        entries = [*(self.values.get("audit") or []), *self.audit_writes]
        return {
            str(e["decision_id"]) for e in entries if isinstance(e, dict) and e.get("decision_id")
        }


def _reducer_defaults() -> dict[str, Any]:
    """The value ``get_state`` shows for a reduced state key no task has written yet: its
    channel (``BinaryOperatorAggregate``) starts from the empty value of the key's type
    (``{}``, ``[]``). Read off :class:`~mpm.graph.state.GraphState` itself."""
    import typing

    from mpm.graph.state import GraphState

    defaults: dict[str, Any] = {}
    for key, hint in typing.get_type_hints(GraphState, include_extras=True).items():
        if typing.get_origin(hint) is typing.Annotated and callable(hint.__metadata__[-1]):
            base = typing.get_origin(hint.__origin__) or hint.__origin__
            defaults[key] = base()
    return defaults


def _is_state_key(channel: str) -> bool:
    """State keys are the graph's output channels; LangGraph's own are ``__x__``/``a:b``."""
    return not channel.startswith("__") and ":" not in channel


def _task_id(checkpoint_id: str, *parts: str) -> str:
    """A task's id as LangGraph derives it (``pregel._algo._xxhash_str``): XXH3-128 of the
    checkpoint id's bytes and the task's coordinates, spelled as a UUID."""
    raw = binascii.unhexlify(checkpoint_id.replace("-", "")) + "".join(parts).encode()
    h = xxh3_128_hexdigest(raw)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _view(
    thread_id: str,
    checkpoint: Any,
    metadata: Any,
    writes: list[tuple[str, str, Any]],
    *,
    need_values: bool,
) -> ThreadView:
    """Derive the live state from a checkpoint and its pending writes ``(task_id, channel,
    value)``, as ``Pregel.get_state`` does for the graph mpm builds."""
    if not isinstance(checkpoint, dict) or checkpoint.get("v") not in CHECKPOINT_VERSIONS:
        raise Unreadable("a checkpoint of a format version this reader does not know")
    checkpoint_id = str(checkpoint.get("id"))
    step = str((metadata or {}).get("step", -1) + 1)
    channel_values = checkpoint.get("channel_values") or {}
    versions = checkpoint.get("channel_versions") or {}
    seen = checkpoint.get("versions_seen") or {}
    sends = list(channel_values.get(TASKS) or [])
    if not all(isinstance(s, _Send) for s in sends):
        raise Unreadable("a pending task that is not a Send")

    # the tasks of the open step, in LangGraph's order: pushed (Send) ones by index, then
    # the nodes whose trigger channel (StateGraph's `branch:to:<node>`) moved on since
    # they last ran
    tasks: dict[str, tuple[str, Any]] = {}  # task id -> (node, input)
    for idx, send in enumerate(sends):
        tasks[_task_id(checkpoint_id, send.node, step, send.node, PUSH, str(idx))] = (
            send.node,
            send.arg,
        )
    pulled = []
    for channel, version in versions.items():
        if channel == START:
            node = START
        elif channel.startswith(BRANCH_TO):
            node = channel.removeprefix(BRANCH_TO)
        else:
            continue
        if channel not in channel_values:
            continue  # not available: it cannot trigger
        last = (seen.get(node) or {}).get(channel)
        if last is None or version > last:
            pulled.append(node)
            tasks[_task_id(checkpoint_id, node, step, node, PULL, channel)] = (node, None)

    finished: set[str] = set()
    stale: set[str] = set()
    interrupts: dict[str, list[_Interrupt]] = {}
    audit_writes: list[dict[str, Any]] = []
    for task_id, channel, value in writes:
        if task_id == NULL_TASK_ID:
            if channel not in CONTROL_WRITES:
                raise Unreadable("a write to the state from outside a task")
            continue
        if task_id not in tasks:
            raise Unreadable(f"a write of a task this reader cannot place ({task_id})")
        if channel == INTERRUPT:
            items = value if isinstance(value, list | tuple) else [value]
            if not all(isinstance(i, _Interrupt) for i in items):
                raise Unreadable("an interrupt that is not an Interrupt")
            interrupts.setdefault(task_id, []).extend(items)
        elif channel not in CONTROL_WRITES:
            finished.add(task_id)
            if _is_state_key(channel):
                stale.add(channel)
            if channel == "audit" and isinstance(value, list):
                audit_writes += [e for e in value if isinstance(e, dict)]
    if finished and need_values:
        # the live values would include those tasks' writes, merged by the state's
        # reducers in LangGraph's task order: that is the graph's job
        raise Unreadable("a super-step in which some tasks already finished")
    if len({t for t in interrupts if t not in finished and tasks[t][1] is None}) > 1:
        raise Unreadable("several edge-run tasks waiting at once (their order is the graph's)")

    waiting = []
    for task_id, (node, task_input) in tasks.items():
        if task_id in finished:
            continue  # a finished task's last interrupt was answered
        for item in interrupts.get(task_id, []):
            waiting.append(
                Waiting(item.id, item.value, task_id, node, f"{node}:{task_id}", task_input)
            )
    return ThreadView(
        thread_id=thread_id,
        checkpoint_id=checkpoint_id,
        created_at=checkpoint.get("ts"),
        values=_reducer_defaults() | {k: v for k, v in channel_values.items() if _is_state_key(k)},
        waiting=waiting,
        has_tasks=bool(tasks),
        next=tuple(node for task_id, (node, _) in tasks.items() if task_id not in finished),
        audit_writes=audit_writes,
        stale=frozenset(stale),
    )


class SqliteReader:
    """The checkpoint tables of one SQLite file, read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection | None]:
        if not self.path.is_file():
            yield None  # no store yet: no threads (and nothing is created)
            return
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        except sqlite3.Error as exc:
            raise Unreadable(f"cannot open {self.path} read-only: {exc}") from exc
        with closing(conn):
            yield conn

    def thread_ids(self) -> list[str]:
        """Every thread, most recently checkpointed first (as the saver lists them)."""
        with self._connect() as conn:
            if conn is None:
                return []
            try:
                rows = conn.execute(
                    "SELECT thread_id, MAX(checkpoint_id) AS latest FROM checkpoints "
                    "WHERE checkpoint_ns = '' GROUP BY thread_id ORDER BY latest DESC"
                ).fetchall()
            except sqlite3.Error as exc:
                raise Unreadable(f"{self.path}: {exc}") from exc
        return [r[0] for r in rows]

    def latest(self, thread_id: str, *, need_values: bool = True) -> ThreadView | None:
        """The thread's latest checkpoint; None if the thread has none."""
        with self._connect() as conn:
            if conn is None:
                return None
            try:
                row = conn.execute(
                    "SELECT checkpoint_id, type, checkpoint, metadata FROM checkpoints "
                    "WHERE thread_id = ? AND checkpoint_ns = '' "
                    "ORDER BY checkpoint_id DESC LIMIT 1",
                    (thread_id,),
                ).fetchone()
                if row is None:
                    return None
                rows = conn.execute(
                    "SELECT task_id, idx, channel, type, value FROM writes "
                    "WHERE thread_id = ? AND checkpoint_ns = '' AND checkpoint_id = ?",
                    (thread_id, row[0]),
                ).fetchall()
            except sqlite3.Error as exc:  # a locked or foreign file...
                raise Unreadable(f"{self.path}: {exc}") from exc
        rows.sort(key=lambda r: (r[0], r[1]))  # the saver's order within a task
        writes = [(t, ch, _loads(kind, blob)) for t, _, ch, kind, blob in rows]
        checkpoint = _loads(row[1], row[2])
        if isinstance(checkpoint, dict) and checkpoint.get("id") != row[0]:
            raise Unreadable("a checkpoint whose id is not its row's")
        metadata = json.loads(row[3]) if row[3] is not None else {}
        return _view(thread_id, checkpoint, metadata, writes, need_values=need_values)


def reader_for(url: str | None, workspace: Any) -> SqliteReader | None:
    """The graph-free reader for ``--checkpointer url``; None for a store it cannot read
    (PostgreSQL, memory): the caller uses the graph."""
    from mpm.graph.checkpointing import sqlite_path

    path = sqlite_path(url, workspace)
    return SqliteReader(path) if path is not None else None


def view_of_tuple(thread_id: str, saved: Any, *, need_values: bool = False) -> ThreadView:
    """The same view, of a ``CheckpointTuple`` a LangGraph saver read (any kind of store):
    its ``Send`` and ``Interrupt`` objects become the reader's own."""
    from langgraph.types import Interrupt, Send

    def plain(value: Any) -> Any:
        if isinstance(value, Send):
            return _Send(value.node, value.arg)
        if isinstance(value, Interrupt):
            return _Interrupt(value.value, value.id)
        if isinstance(value, list | tuple) and any(isinstance(v, Send | Interrupt) for v in value):
            return [plain(v) for v in value]
        return value

    checkpoint = dict(saved.checkpoint)
    checkpoint["channel_values"] = {k: plain(v) for k, v in checkpoint["channel_values"].items()}
    writes = [(t, ch, plain(v)) for t, ch, v in saved.pending_writes or []]
    return _view(thread_id, checkpoint, saved.metadata, writes, need_values=need_values)
