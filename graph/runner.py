"""Driving threads of the graph: start, resume, inspect. Used by the CLI and the tests.

A thread is driven by one process at a time: an advisory lock file per thread in the
workspace makes a second process fail fast with a clear message instead of racing the
first on the same checkpoints.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from mpm.graph import stopping
from mpm.graph.checkpointing import DURABILITY, open_checkpointer
from mpm.graph.context import RunContext
from mpm.graph.tracing import traced_invocation, tracing_enabled
from mpm.graph.workspace import Workspace, validate_thread_id

EventSink = Callable[[dict[str, Any]], None]


class ThreadBusyError(RuntimeError):
    """Another process is driving this thread right now."""


class UnknownThreadError(LookupError):
    """No checkpoint exists for the thread id."""


class NotWaitingError(LookupError):
    """The thread is not waiting for the answer or decision that was given."""


class DecisionRefused(ValueError):
    """A decision refused before the graph was resumed, by the approval node's own
    judgement (``graph/approval_judgement.py``); the refusal is in the audit trail."""


@dataclass
class RunOutcome:
    thread_id: str
    status: str
    """completed | partial | failed | waiting | running"""
    interrupts: list[dict[str, Any]] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)
    next: tuple[str, ...] = ()

    @property
    def waiting(self) -> bool:
        return bool(self.interrupts)


def new_thread_id() -> str:
    return f"mpm-{uuid.uuid4().hex[:12]}"


@contextmanager
def thread_lock(workspace: Workspace, thread_id: str, wait: float = 0.0) -> Iterator[None]:
    """Hold the thread's lock; wait up to ``wait`` seconds for another process to let go."""
    path = workspace.locks_dir / f"{validate_thread_id(thread_id)}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                raise ThreadBusyError(
                    f"thread {thread_id} is being run by another process (pid {holder}); "
                    "wait for it to finish or stop it, then try again"
                ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _used_decision_ids(snapshot: Any) -> set[str]:
    """Decision ids already recorded on the thread: in its audit trail, and in the writes of
    approvals decided in the step still open (parallel approvals decided one by one have
    not reached the trail yet, and each approval task only knows the trail as it was when
    the approvals were requested)."""
    return {str(e["decision_id"]) for e in _recorded(snapshot) if e.get("decision_id")}


def _recorded(snapshot: Any) -> list[dict[str, Any]]:
    """The audit entries the checkpoint records: its chain, and the writes of approvals
    decided in the step still open."""
    entries = list((snapshot.values or {}).get("audit") or [])
    for task in snapshot.tasks:
        if isinstance(task.result, dict):
            entries += task.result.get("audit") or []
    return [e for e in entries if isinstance(e, dict)]


def _by_the_node(entry: dict[str, Any]) -> bool:
    """A judgement the approval node made (not a pre-check refusal, which never consumed a
    resume value)."""
    from mpm.graph.approval_judgement import PRECHECK_SLOT

    return f"#{PRECHECK_SLOT}#" not in str(entry.get("slot") or "")


def _judged(snapshot: Any, trail: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Decision id -> the approval node's judgement of it, as far as it is settled: every
    judgement the checkpoint records (its audit chain, and the writes of approvals decided
    in the step still open), and the node's refusals in the durable trail (a refused value
    was consumed: the node asked again). An acceptance only in the trail is not settled --
    the task may not have been saved; delivering it again meets that judgement again."""
    out = {
        str(e["decision_id"]): e
        for e in trail
        if e.get("decision_id") and not e.get("accepted") and _by_the_node(e)
    }
    out.update({str(e["decision_id"]): e for e in _recorded(snapshot) if e.get("decision_id")})
    return out


class Runner:
    def __init__(
        self,
        context: RunContext,
        checkpointer: str | None = None,
        on_event: EventSink | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        self.context = context
        self.read_only = read_only
        """Inspect only: create no workspace and no checkpoint file (read commands)."""
        self.workspace = Workspace.locate(context.workspace) if read_only else context.ws
        self.checkpointer_url = checkpointer
        self.on_event = on_event or (lambda _e: None)
        self.thread_id: str | None = None
        """The thread being driven now, if any (what a Ctrl-C stops)."""
        self.running: dict[str, str] = {}
        """Stage -> its latest tool, for the stages running now."""

    @contextmanager
    def graph(self) -> Iterator[Any]:
        from mpm.graph.builder import graph_with

        with open_checkpointer(
            self.checkpointer_url, self.workspace, read_only=self.read_only
        ) as saver:
            yield graph_with(stopping.guard_saver(saver))

    def activity(self) -> str:
        """What is running now, in words: the thread and its stages' current tools."""
        if self.thread_id is None:
            return "mpm (no run is being driven)"
        stages = ", ".join(
            f"stage {name}" + (f" (tool {tool})" if tool else "")
            for name, tool in self.running.items()
        )
        return f"thread {self.thread_id}" + (f": {stages}" if stages else "")

    def _track(self, ev: dict[str, Any]) -> None:
        stage, kind = ev.get("stage"), ev.get("event")
        if not stage:
            return
        if kind == "started":
            self.running[stage] = ""
        elif kind == "tool":
            self.running[stage] = str(ev.get("tool") or "")
        elif kind == "finished":
            self.running.pop(stage, None)

    @staticmethod
    def config(thread_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id}, "recursion_limit": 200}

    # -- driving ------------------------------------------------------------------------

    def start(self, thread_id: str, graph_input: dict[str, Any]) -> RunOutcome:
        with self.graph() as g, thread_lock(self.workspace, thread_id):
            if g.get_state(self.config(thread_id)).created_at is not None:
                raise ValueError(
                    f"thread {thread_id} already exists; use `mpm resume {thread_id}` to continue it"
                )
            return self._drive(g, thread_id, {**graph_input, "settings": self.settings()})

    def settings(self) -> dict[str, Any]:
        """What a resume in another process needs to continue the thread the same way."""
        c = self.context
        return {
            "model": c.model,
            "toolset": c.toolset,
            "tracking": c.tracking,
            "policies": c.policies,
            "identity": c.identity,
            "tracing": c.tracing,
        }

    def resume(
        self, thread_id: str, resume: Any = None, *, worker: bool = False
    ) -> RunOutcome | None:
        """Continue a thread: answer pending interrupts with ``resume``, or deliver what its
        inbox holds (``graph/inbox.py``) and re-run the step that was cut off.

        ``worker`` (the background worker an accepted ``mpm approve``/``answer`` starts):
        wait for another process driving the thread instead of failing, but give up --
        returning None -- as soon as the inbox holds nothing left to deliver (that process
        delivers entries while it holds the lock, so nothing is stranded)."""
        from langgraph.types import Command

        validate_thread_id(thread_id)
        self.thread_id = thread_id
        with self._held(thread_id, worker=worker) as held:
            if not held:
                return None
            with self.graph() as g:
                self._existing(g, thread_id)
                if resume is not None:
                    return self._drive(g, thread_id, Command(resume=resume))
                return self._deliver(g, thread_id)

    @contextmanager
    def _held(self, thread_id: str, *, worker: bool) -> Iterator[bool]:
        """The thread's lock (True), or False for a worker that found the inbox empty while
        it waited for the lock."""
        from mpm.graph import inbox

        while True:
            try:
                with thread_lock(self.workspace, thread_id, wait=1.0 if worker else 0.0):
                    yield True
                    return
            except ThreadBusyError:
                if not worker:
                    raise
                if not inbox.pending(self.workspace, thread_id):
                    break
        yield False

    def _deliver(self, g: Any, thread_id: str) -> RunOutcome:
        """Deliver every inbox entry whose interrupt is waiting (one ``Command`` for all of
        them), again while entries are deliverable; settle each entry only once the
        checkpoint records the node's judgement of it (or it can no longer be delivered).
        The caller holds the thread's lock."""
        from langgraph.types import Command

        from mpm.governance.decisions import SEEN_DECISIONS
        from mpm.graph import audit, inbox
        from mpm.graph.state import now_iso

        config = self.config(thread_id)
        inbox.settle_unreadable(self.workspace, thread_id, now_iso())
        tried: set[str] = set()
        continued = False
        while True:
            snapshot = g.get_state(config)
            cut_off = not snapshot.interrupts and bool(snapshot.tasks)
            if cut_off and not continued:
                # tasks left: some may have no writes yet (``next``), or all may have written
                # and the process stopped before the step's checkpoint; either way the graph
                # applies what was saved and runs what was not
                continued = True
                self._drive(g, thread_id, None)
                continue
            entries = inbox.pending(self.workspace, thread_id)
            if not entries:
                return self._outcome(thread_id, snapshot)
            trail = audit.read_trail(audit.trail_path(self.workspace, thread_id))
            plan = inbox.plan(
                entries,
                [{"id": i.id, "value": i.value} for i in snapshot.interrupts],
                _judged(snapshot, trail),
                at_rest=not cut_off,
                tried=tried,
                accepted_in_trail={
                    str(e["decision_id"]): e
                    for e in trail
                    if e.get("accepted") and e.get("decision_id") and _by_the_node(e)
                },
            )
            for entry, why in plan.done:
                inbox.settle(entry, inbox.DONE, why, now_iso())
            for entry, why in plan.aside:
                inbox.settle(entry, inbox.ASIDE, why, now_iso())
                self.on_event({"event": "log", "message": f"inbox {entry.name}: {why}"})
            if not plan.deliver:
                return self._outcome(thread_id, snapshot)
            used = sorted(_used_decision_ids(snapshot))
            values: dict[str, Any] = {}
            for interrupt_id, entry in plan.deliver.items():
                value = entry.value
                if entry.kind == "approval" and isinstance(value, dict):
                    value = {**value, SEEN_DECISIONS: used}
                values[interrupt_id] = value
                tried.add(entry.name)
            self._drive(g, thread_id, Command(resume=values))

    def answer(
        self,
        thread_id: str,
        kind: str,
        value: Any,
        *,
        key: str | None = None,
        wait: float = 600.0,
        precheck: bool = False,
    ) -> RunOutcome:
        """Answer the pending interrupt of type ``kind`` (an approval: the one whose
        ``approval_id`` is ``key``) and continue the run.

        Waits for another process driving the thread to finish first, and looks the
        interrupt up only once it holds the lock, so two approvers deciding parallel
        approvals at the same moment both land. With ``precheck``, an approval decision is
        first judged by the approval node's own code against the task's input as the
        checkpoint holds it, without building the graph (:meth:`_precheck`): a refused one
        is recorded in the audit trail and raises :class:`DecisionRefused`; the graph is
        neither built nor resumed for it (the CLI's fast refusal)."""
        validate_thread_id(thread_id)
        self.thread_id = thread_id  # what a stop names, from the first moment
        with thread_lock(self.workspace, thread_id, wait=wait):
            if precheck and kind == "approval" and isinstance(value, dict):
                reason, _ = self._precheck(thread_id, key, value)
                if reason:
                    raise DecisionRefused(reason)
            with self.graph() as g:
                return self._answer(g, thread_id, kind, value, key)

    def submit(
        self,
        thread_id: str,
        kind: str,
        value: Any,
        *,
        key: str | None = None,
        interrupt: dict[str, Any] | None = None,
    ) -> Any:
        """Receive a decision or answers into the thread's inbox without resuming the graph
        (the background worker applies it); the :class:`~mpm.graph.inbox.Entry`, or None
        when the decision could not be judged here (the caller then resumes in the
        foreground, where the node judges it).

        An approval decision is first given the approval node's full judgement
        (:meth:`_precheck`: ``judge_value`` with the loaded governance context, on the
        task's input as the checkpoint holds it): a refusal raises :class:`DecisionRefused`
        and is audited; only an accepted one is written. The node judges it again when it
        is delivered -- that judgement is the authoritative one. Answers (``interrupt``:
        the {id, value} they answer) are validated by the questions node as ever."""
        from mpm.graph import inbox
        from mpm.graph.state import now_iso

        validate_thread_id(thread_id)
        self.thread_id = thread_id  # what a stop names, from the first moment
        if kind == "approval":
            reason, waiting = self._precheck(thread_id, key, value)
            if reason:
                raise DecisionRefused(reason)
            if waiting is None:
                return None
            interrupt = {"id": waiting.id, "value": waiting.value}
        if interrupt is None:
            raise NotWaitingError(f"thread {thread_id} is not waiting for {kind}")
        asked = interrupt["value"] if kind == "approval" else inbox.asked_of(interrupt["value"])
        if kind == "approval":
            asked = {k: v for k, v in asked.items() if k not in {"refusals", "audit_head"}}
        return inbox.receive(
            self.workspace,
            thread_id,
            kind,
            value,
            key=key,
            interrupt_id=str(interrupt["id"]),
            asked=asked,
            received_at=now_iso(),
        )

    def _answer(self, g: Any, thread_id: str, kind: str, value: Any, key: str | None) -> RunOutcome:
        from langgraph.types import Command

        snapshot = self._existing(g, thread_id)
        for item in snapshot.interrupts:
            payload = item.value if isinstance(item.value, dict) else {}
            if payload.get("type") == kind and (key is None or payload.get("approval_id") == key):
                if kind == "approval" and isinstance(value, dict):
                    from mpm.governance.decisions import SEEN_DECISIONS

                    value = {**value, SEEN_DECISIONS: sorted(_used_decision_ids(snapshot))}
                return self._drive(g, thread_id, Command(resume={item.id: value}))
        pending = [
            (i.value.get("approval_id") or i.value.get("type"))
            for i in snapshot.interrupts
            if isinstance(i.value, dict)
        ]
        what = f"{kind} {key}" if key else kind
        raise NotWaitingError(
            f"thread {thread_id} is not waiting for {what}; pending: {', '.join(map(str, pending)) or 'nothing'}"
        )

    def _precheck(
        self, thread_id: str, approval_id: str | None, value: dict[str, Any]
    ) -> tuple[str | None, Any]:
        """(refusal, judged against).

        ``refusal``: why the approval node would refuse ``value``, judged before the graph
        is built and recorded in the audit trail; None if it would not, or if the checkpoint
        cannot be read without the graph (the node then judges it alone).
        ``judged against``: the waiting interrupt, when the judgement had the full
        governance context (what :meth:`submit` needs before it may receive the decision);
        else None."""
        from mpm.graph.approval_judgement import precheck

        view = Reader(self.context, self.checkpointer_url).view(thread_id, need_values=False)
        if view is None:
            view = self._view_through_saver(thread_id)
        waiting = next(
            (
                w
                for w in (view.waiting if view is not None else [])
                if isinstance(w.value, dict)
                and w.value.get("type") == "approval"
                and w.value.get("approval_id") == approval_id
                and isinstance(w.task_input, dict)
                and isinstance(w.task_input.get("approval"), dict)
            ),
            None,
        )
        if waiting is None:
            return None, None  # not waiting for it: the graph path says so
        from mpm.graph.governance_context import context_key, governance_context, signer_context

        try:
            key = context_key(self.context)
            signers = signer_context(self.context, key)
        except Exception:  # noqa: BLE001 - the node reports an unreadable directory itself
            return None, None
        judged_against: Any = None

        def context() -> Any:
            nonlocal judged_against
            try:
                full = governance_context(self.context, key)  # the nodes reuse this load
            except Exception:  # noqa: BLE001 - the node reports an unloadable library itself
                return None
            judged_against = waiting
            return full

        reason = precheck(
            workspace=self.workspace,
            thread_id=thread_id,
            task_ns=waiting.task_ns,
            payload=waiting.task_input,
            asked=waiting.value,
            value=value,
            signers=signers,
            context=context,
            used_decision_ids=view.decision_ids(),
        )
        return reason, judged_against

    def _view_through_saver(self, thread_id: str) -> Any:
        """The reader's view of the latest checkpoint, read through the LangGraph saver
        (a store the graph-free reader does not open, e.g. PostgreSQL); None if unreadable."""
        from mpm.graph.checkpoint_reader import Unreadable, view_of_tuple

        with open_checkpointer(self.checkpointer_url, self.workspace) as saver:
            saved = saver.get_tuple(self.config(thread_id))
        if saved is None:
            return None
        try:
            return view_of_tuple(thread_id, saved)
        except Unreadable:
            return None

    def _existing(self, g: Any, thread_id: str) -> Any:
        snapshot = g.get_state(self.config(validate_thread_id(thread_id)))
        if snapshot.created_at is None:
            raise UnknownThreadError(f"no thread {thread_id} in this workspace's checkpoints")
        return snapshot

    def _drive(self, g: Any, thread_id: str, graph_input: Any) -> RunOutcome:
        """Stream the graph until it ends or waits; the caller holds the thread's lock."""
        if self.read_only:
            raise RuntimeError("a read-only runner inspects threads; it does not drive them")
        config = self.config(thread_id)
        self.thread_id, self.running = thread_id, {}
        before = g.get_state(config).values if tracing_enabled(self.context) else {}
        with traced_invocation(self.context, thread_id, before or {}, graph_input) as trace:
            run_config = {**config, "callbacks": trace.callbacks} if trace.callbacks else config
            for mode, chunk in g.stream(
                graph_input,
                run_config,
                context=self.context,
                stream_mode=["updates", "custom"],
                durability=DURABILITY,
            ):
                if mode == "custom":
                    self._track(chunk)
                    self.on_event(chunk)
                elif mode == "updates":
                    for node, update in chunk.items():
                        if node == "__interrupt__" or not isinstance(update, dict):
                            continue
                        for ev in update.get("events", []):
                            self.on_event({"event": "log", **ev})
            outcome = self._outcome(thread_id, g.get_state(config))
            trace.finish(outcome.status, outcome.values, outcome.interrupts)
        return outcome

    # -- inspecting -----------------------------------------------------------------------

    def snapshot(self, thread_id: str) -> RunOutcome:
        with self.graph() as g:
            return self._outcome(thread_id, self._existing(g, thread_id))

    def history(self, thread_id: str) -> list[dict[str, Any]]:
        with self.graph() as g:
            rows = []
            for snap in g.get_state_history(self.config(thread_id)):
                rows.append(
                    {
                        "step": snap.metadata.get("step") if snap.metadata else None,
                        "checkpoint_id": snap.config["configurable"]["checkpoint_id"],
                        "created_at": snap.created_at,
                        "source": snap.metadata.get("source") if snap.metadata else None,
                        "next": list(snap.next),
                    }
                )
            if not rows:
                raise UnknownThreadError(f"no thread {thread_id} in this workspace's checkpoints")
            return rows

    def threads(self) -> list[dict[str, Any]]:
        """Every thread in the checkpointer with its latest status."""
        with self.graph() as g:
            saver = g.checkpointer
            seen: dict[str, None] = {}
            for cp in saver.list(None):
                seen.setdefault(cp.config["configurable"]["thread_id"], None)
            rows = []
            for thread_id in seen:
                snap = g.get_state(self.config(thread_id))
                rows.append(thread_row(self._outcome(thread_id, snap), snap.created_at))
            return sorted(rows, key=lambda r: r["updated_at"] or "", reverse=True)

    def pending_approvals(self) -> list[dict[str, Any]]:
        """Every approval interrupt pending in any thread, oldest request first."""
        rows = []
        for thread in self.threads():
            for item in self.snapshot(thread["thread_id"]).interrupts:
                value = item["value"]
                if isinstance(value, dict) and value.get("type") == "approval":
                    rows.append({"thread_id": thread["thread_id"], **value})
        return sorted(rows, key=lambda r: r.get("requested_at") or "")

    @staticmethod
    def _outcome(thread_id: str, snapshot: Any) -> RunOutcome:
        return outcome_of(
            thread_id,
            snapshot.values,
            [{"id": i.id, "value": i.value} for i in snapshot.interrupts],
            has_tasks=bool(snapshot.next or snapshot.tasks),
            next_nodes=snapshot.next,
        )


def outcome_of(
    thread_id: str,
    values: dict[str, Any] | None,
    interrupts: list[dict[str, Any]],
    *,
    has_tasks: bool,
    next_nodes: tuple[str, ...] = (),
) -> RunOutcome:
    """A thread's status from its latest checkpoint: the one rule for the graph path and
    the graph-free reader (:class:`Reader`)."""
    values = dict(values or {})
    if interrupts:
        status = "waiting"
    elif has_tasks:
        status = "running"  # cut off mid-run: resume continues it
    else:
        status = values.get("status") or "running"
    return RunOutcome(thread_id, status, interrupts, values, tuple(next_nodes))


class Reader:
    """What the read commands (``status``, ``approvals``, ``runs``, ``audit``...) and the
    settings look-up of ``resume``/``approve``/``answer`` need, without building the graph.

    The SQLite checkpoint store is read directly (``graph/checkpoint_reader.py``); whatever
    that reader cannot show exactly -- another kind of store, a step in which some tasks
    already finished, a value type it does not decode -- is read through the graph (a
    read-only :class:`Runner`), so every answer is the one ``get_state`` gives. Nothing is
    created: no workspace, no database file."""

    def __init__(self, context: RunContext, checkpointer: str | None = None) -> None:
        from mpm.graph.checkpoint_reader import reader_for

        self.context = context
        self.workspace = Workspace.locate(context.workspace)
        self.checkpointer_url = checkpointer
        self.fast = reader_for(checkpointer, self.workspace)
        self._graph_runner: Runner | None = None
        self.fallbacks: list[str] = []
        """Why the graph was used instead (one line per read; empty on the fast path)."""

    def use_runner(self, runner: Runner) -> None:
        """Read through this (read-only) runner whenever the graph is needed."""
        self._graph_runner = runner

    def settings(self, thread_id: str) -> dict[str, Any]:
        """The settings the thread was started with (written once, by kickoff: the raw
        checkpoint value is the live one even while a step is half done)."""
        view = self.view(thread_id, need_values=False)
        values = view.values if view is not None else self.snapshot(thread_id).values
        return dict(values.get("settings") or {})

    def graph_runner(self) -> Runner:
        if self._graph_runner is None:
            self._graph_runner = Runner(self.context, self.checkpointer_url, read_only=True)
        return self._graph_runner

    def view(self, thread_id: str, *, need_values: bool = True) -> Any:
        """The thread's latest checkpoint as the graph-free reader sees it, or None when
        it cannot show it exactly (the caller then asks :meth:`graph_runner`). Raises
        :class:`UnknownThreadError` for a thread with no checkpoint."""
        from mpm.graph.checkpoint_reader import Unreadable

        validate_thread_id(thread_id)
        if self.fast is None:
            self.fallbacks.append(f"{thread_id}: not a SQLite store")
            return None
        try:
            view = self.fast.latest(thread_id, need_values=need_values)
        except Unreadable as exc:
            self.fallbacks.append(f"{thread_id}: {exc}")
            return None
        if view is None:
            raise UnknownThreadError(f"no thread {thread_id} in this workspace's checkpoints")
        return view

    def snapshot(self, thread_id: str) -> RunOutcome:
        view = self.view(thread_id)
        if view is None:
            return self.graph_runner().snapshot(thread_id)
        return outcome_of(
            thread_id, view.values, view.interrupts, has_tasks=view.has_tasks, next_nodes=view.next
        )

    def _thread_ids(self) -> list[str] | None:
        from mpm.graph.checkpoint_reader import Unreadable

        if self.fast is None:
            return None
        try:
            return self.fast.thread_ids()
        except Unreadable as exc:
            self.fallbacks.append(str(exc))
            return None

    def threads(self) -> list[dict[str, Any]]:
        """Every thread with its latest status (rows as :meth:`Runner.threads` makes them)."""
        ids = self._thread_ids()
        if ids is None:
            return self.graph_runner().threads()
        rows = []
        for thread_id in ids:
            view = self.view(thread_id, need_values=False)
            if view is not None and view.stale & {"requirements", "status"}:
                self.fallbacks.append(f"{thread_id}: a task of the open step wrote {view.stale}")
                view = None  # what the row shows was changed by a task of the open step
            if view is None:
                outcome = self.graph_runner().snapshot(thread_id)
                with self.graph_runner().graph() as g:
                    updated = g.get_state(Runner.config(thread_id)).created_at
            else:  # a row needs the interrupts, the project name and the status only
                outcome = outcome_of(
                    thread_id, view.values, view.interrupts, has_tasks=view.has_tasks
                )
                updated = view.created_at
            rows.append(thread_row(outcome, updated))
        return sorted(rows, key=lambda r: r["updated_at"] or "", reverse=True)

    def pending_approvals(self) -> list[dict[str, Any]]:
        """Every approval interrupt pending in any thread, oldest request first."""
        ids = self._thread_ids()
        if ids is None:
            return self.graph_runner().pending_approvals()
        rows = []
        for thread_id in ids:
            view = self.view(thread_id, need_values=False)  # interrupts only: always exact
            interrupts = (
                view.interrupts
                if view is not None
                else self.graph_runner().snapshot(thread_id).interrupts
            )
            for item in interrupts:
                value = item["value"]
                if isinstance(value, dict) and value.get("type") == "approval":
                    rows.append({"thread_id": thread_id, **value})
        return sorted(rows, key=lambda r: r.get("requested_at") or "")

    def history(self, thread_id: str) -> list[dict[str, Any]]:
        return self.graph_runner().history(thread_id)


def thread_row(outcome: RunOutcome, updated_at: str | None) -> dict[str, Any]:
    """One row of ``mpm runs``."""
    return {
        "thread_id": outcome.thread_id,
        "project": (outcome.values.get("requirements") or {}).get("project_name", "(kickoff)"),
        "status": outcome.status,
        "updated_at": updated_at,
        "waiting_for": [
            i["value"].get("type") for i in outcome.interrupts if isinstance(i["value"], dict)
        ],
    }
