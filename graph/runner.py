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
    """A decision refused before the graph was resumed (:data:`DECISION_CHECKS`)."""


DecisionCheck = Callable[[dict[str, Any], dict[str, Any]], "str | None"]
"""``check(decision, pending)`` -> why ``decision`` is refused, or None. ``pending`` is the
approval interrupt's payload as the thread holds it (``approval_id``, ``approver_groups``,
``eligible_approvers``...)."""


def _eligible(decision: dict[str, Any], pending: dict[str, Any]) -> str | None:
    """The approver must be one of the role accounts mpm listed for this approval when it
    asked for it; the approval node checks again, against the directory, when it runs."""
    approver = str(decision.get("approver") or "").strip()
    eligible = pending.get("eligible_approvers")
    if isinstance(eligible, list) and approver not in eligible:
        groups = ", ".join(map(str, pending.get("approver_groups") or [])) or "its groups"
        return f"{approver} is not a member of {groups}"
    return None


DECISION_CHECKS: list[DecisionCheck] = [_eligible]
"""Checks a decision must pass before the graph is resumed with it. They only *refuse*:
a decision they let through is still checked by the approval node (authoritative, audited).
Cheap refusals are the point -- a refused ``mpm approve`` answers without running the
graph. Another check (e.g. a signature verification) is added by appending to this list."""


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
    entries = list((snapshot.values or {}).get("audit") or [])
    for task in snapshot.tasks:
        if isinstance(task.result, dict):
            entries += task.result.get("audit") or []
    return {str(e["decision_id"]) for e in entries if isinstance(e, dict) and e.get("decision_id")}


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

    def resume(self, thread_id: str, resume: Any = None) -> RunOutcome:
        """Continue a thread: answer pending interrupts with ``resume`` or re-run the step that was cut off."""
        from langgraph.types import Command

        with self.graph() as g, thread_lock(self.workspace, thread_id):
            snapshot = self._existing(g, thread_id)
            if resume is not None:
                return self._drive(g, thread_id, Command(resume=resume))
            if snapshot.interrupts or not snapshot.tasks:
                return self._outcome(thread_id, snapshot)
            # tasks left: some may have no writes yet (``next``), or all may have written
            # and the process stopped before the step's checkpoint; either way the graph
            # applies what was saved and runs what was not
            return self._drive(g, thread_id, None)

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
        approvals at the same moment both land. With ``precheck``, a decision that one of
        :data:`DECISION_CHECKS` refuses raises :class:`DecisionRefused` before the graph
        runs (the CLI's fast refusal; the approval node would refuse it too)."""
        from langgraph.types import Command

        with self.graph() as g, thread_lock(self.workspace, thread_id, wait=wait):
            snapshot = self._existing(g, thread_id)
            for item in snapshot.interrupts:
                payload = item.value if isinstance(item.value, dict) else {}
                if payload.get("type") == kind and (
                    key is None or payload.get("approval_id") == key
                ):
                    if kind == "approval" and isinstance(value, dict):
                        from mpm.graph.nodes.approvals import SEEN_DECISIONS

                        if precheck:
                            for check in DECISION_CHECKS:
                                reason = check(value, payload)
                                if reason:
                                    raise DecisionRefused(reason)
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
                outcome = self._outcome(thread_id, snap)
                values = snap.values or {}
                rows.append(
                    {
                        "thread_id": thread_id,
                        "project": (values.get("requirements") or {}).get(
                            "project_name", "(kickoff)"
                        ),
                        "status": outcome.status,
                        "updated_at": snap.created_at,
                        "waiting_for": [
                            i["value"].get("type")
                            for i in outcome.interrupts
                            if isinstance(i["value"], dict)
                        ],
                    }
                )
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
        values = dict(snapshot.values or {})
        interrupts = [{"id": i.id, "value": i.value} for i in snapshot.interrupts]
        if interrupts:
            status = "waiting"
        elif snapshot.next or snapshot.tasks:
            status = "running"  # cut off mid-run: resume continues it
        else:
            status = values.get("status") or "running"
        return RunOutcome(thread_id, status, interrupts, values, tuple(snapshot.next))
