"""The graph as LangGraph Server serves it: ``langgraph.json`` names ``./graph/server.py:graph``.

Compiled without a checkpointer: the server brings persistence (in memory under
``langgraph dev``, PostgreSQL in a deployment) and rejects a graph that has its own.

The served graph is the CLI's graph behind one door that a remote client cannot walk
around (``graph/auth.py`` is the other layer, at the HTTP API; this one holds even where
that one is misconfigured). :class:`ServedGraph` overrides the two entry points every
server code path goes through -- ``astream`` (runs, streams, ``astream_events``, ``ainvoke``)
and ``abulk_update_state`` / ``bulk_update_state`` (``threads.update_state``, thread
creation with ``supersteps``) -- and there:

- **settings** come from the server's environment, or from the thread's own record on a
  resume (``graph/context.py``: what is trust-relevant, what a client may choose); a run
  context that names a trust setting is refused before anything runs;
- **the thread records its settings** at its start (``settings`` in the state, as the CLI's
  runner does) and every resume reuses them: one workspace, one toolset, one policy
  library for the thread's whole life, whatever the next client sends;
- **input** is only what starts a run (``requirements``, ``conversation``) on a new thread,
  then only ``Command(resume=...)``: a ``Command`` with ``update`` or ``goto`` would write
  state or jump past a gate, and is refused;
- **state writes from outside** (``update_state``, ``supersteps``) are refused: every key of
  the state is either derived by mpm (plan, results, governance, approvals, audit,
  settings, ...) or the client's own kickoff input, which a run already takes;
- **tracing**: each invocation is traced in MLflow exactly as a CLI invocation
  (``graph/tracing.py``: thread-tagged, linked to the parent run).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from langchain_core.runnables.config import ensure_config
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from mpm.graph.builder import build_graph
from mpm.graph.context import (
    CLIENT_SETTINGS,
    ContextRefused,
    RunContext,
    server_context,
    settings_of,
)

log = logging.getLogger(__name__)

START_KEYS = frozenset({"requirements", "conversation"})
"""What a client's ``input`` may hold: it starts a thread (kickoff validates it)."""


class InputRefused(ValueError):
    """A client's run input or command that would write state or skip the graph's checks."""


class StateWriteRefused(PermissionError):
    """``update_state`` / ``supersteps`` from outside the graph."""


STATE_WRITE_REFUSED = (
    "thread state is written only by mpm's graph: update_state and supersteps are refused "
    "(approvals take a signed decision through command={'resume': ...})"
)


def check_input(graph_input: Any, started: bool, thread_id: str) -> None:
    """Refuse what a client may not send; one line naming the field."""
    if isinstance(graph_input, Command):
        if graph_input.update:
            raise InputRefused("run command 'update' is refused: it would write the thread's state")
        if graph_input.goto:
            raise InputRefused("run command 'goto' is refused: it would skip the graph's checks")
        if graph_input.graph is not None:
            raise InputRefused("run command 'graph' is refused")
        if not started:
            raise InputRefused(f"thread {thread_id} has not started: send input, not a command")
        return
    if graph_input is None:
        return
    if started:
        raise InputRefused(
            f"thread {thread_id} already started: answer its interrupts with "
            "command={'resume': {interrupt_id: value}}"
        )
    if not isinstance(graph_input, Mapping):
        raise InputRefused(f"run input: expected an object, got {type(graph_input).__name__}")
    if "settings" in graph_input:
        raise InputRefused(
            "run input 'settings' is refused: the server records the thread's settings itself"
        )
    unknown = sorted(map(str, set(graph_input) - START_KEYS))
    if unknown:
        raise InputRefused(
            f"run input: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(START_KEYS))}"
        )


def with_seen_decisions(command: Command, snapshot: Any) -> Command:
    """The resume as the CLI's runner sends it: each approval decision carries the decision
    ids the thread has recorded (``SEEN_DECISIONS``), read by the server from the thread --
    a value the client put there is replaced, never trusted."""
    from mpm.graph.nodes.approvals import SEEN_DECISIONS
    from mpm.graph.runner import _used_decision_ids

    pending = {i.id: i.value for i in snapshot.interrupts}
    approvals = {
        k for k, v in pending.items() if isinstance(v, dict) and v.get("type") == "approval"
    }
    if not approvals:
        return command
    seen = sorted(_used_decision_ids(snapshot))

    def stamped(value: Any) -> Any:
        return {**value, SEEN_DECISIONS: seen} if isinstance(value, dict) else value

    resume = command.resume
    if isinstance(resume, dict) and resume and set(resume) <= set(pending):
        resume = {k: stamped(v) if k in approvals else v for k, v in resume.items()}
    elif set(pending) == approvals and len(approvals) == 1:
        resume = stamped(resume)  # the one pending interrupt, answered without its id
    return Command(resume=resume)


def _with_callbacks(config: dict[str, Any], extra: list[Any]) -> dict[str, Any]:
    if not extra:
        return config
    present = config.get("callbacks")
    if present is None:
        return {**config, "callbacks": list(extra)}
    if isinstance(present, list):
        return {**config, "callbacks": [*present, *extra]}
    manager = present.copy()  # a CallbackManager: add ours, inherited by every child run
    for handler in extra:
        manager.add_handler(handler, inherit=True)
    return {**config, "callbacks": manager}


class ServedGraph(CompiledStateGraph):
    """The compiled graph with the server's entry points guarded (see the module docstring).

    ``Pregel.copy`` rebuilds ``self.__class__``, so the copies the server makes per run
    (with its checkpointer and store) stay guarded."""

    async def astream(  # type: ignore[override]
        self,
        input: Any,
        config: Any = None,
        *,
        context: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        config = ensure_config(config)
        thread_id = str(config.get("configurable", {}).get("thread_id") or "")
        snapshot = await self.aget_state(config) if self.checkpointer and thread_id else None
        started = snapshot is not None and snapshot.created_at is not None
        values = dict(snapshot.values or {}) if started else {}
        check_input(input, started, thread_id)
        if values.get("thread_id") not in (None, thread_id):
            raise InputRefused(
                f"thread {thread_id} holds the state of thread {values['thread_id']} "
                "(copied): its decisions belong to that thread; start a new one"
            )
        if isinstance(context, RunContext):  # an in-process caller built it: trusted
            ctx = context
        else:
            ctx = server_context(context, values.get("settings") if started else None)
        if started and isinstance(input, Command):
            input = with_seen_decisions(input, snapshot)
        if not started and isinstance(input, Mapping):
            user = config.get("configurable", {}).get("langgraph_auth_user_id")
            input = {**input, "settings": {**settings_of(ctx), "started_by": user}}
        async for chunk in self._traced(ctx, thread_id, values, input, config, kwargs):
            yield chunk

    async def _traced(
        self,
        ctx: RunContext,
        thread_id: str,
        before: dict[str, Any],
        graph_input: Any,
        config: dict[str, Any],
        kwargs: dict[str, Any],
    ) -> AsyncIterator[Any]:
        """Stream the run inside an MLflow trace, as the CLI's runner does.

        Two things differ from the runner's plain ``with traced_invocation(...)``. The
        server awaits each chunk in a fresh task (a copy of the context), so the run is
        pumped by one task of its own whose context (``trace_ctx``) holds the trace's
        active span for the whole run: the tracer parents node spans under it. And
        opening and closing a trace writes to the MLflow store (files, SQLite): that runs
        in a worker thread, inside the same context, never on the server's event loop."""
        from mpm.graph.runner import Runner
        from mpm.graph.tracing import traced_invocation

        loop = asyncio.get_running_loop()
        trace_ctx = contextvars.copy_context()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        parent = super()
        traced = traced_invocation(ctx, thread_id, before, graph_input)

        def close(exc: BaseException | None) -> None:
            try:
                if exc is None:
                    traced.__exit__(None, None, None)
                else:  # the root span records the error, then __exit__ re-raises it
                    traced.__exit__(type(exc), exc, exc.__traceback__)
            except BaseException as err:  # noqa: BLE001 - tracing never fails a run
                if err is not exc:
                    log.warning("MLflow trace of thread %s not closed: %s", thread_id, err)

        # the trace context is entered by one thing at a time: this worker thread, then
        # the pump task, then a worker thread again once the task is done
        trace = await loop.run_in_executor(None, trace_ctx.run, traced.__enter__)

        async def pump() -> None:
            try:
                run_config = _with_callbacks(config, trace.callbacks)
                async for chunk in parent.astream(graph_input, run_config, context=ctx, **kwargs):
                    await queue.put(("chunk", chunk))
                if trace.callbacks and self.checkpointer:
                    outcome = Runner._outcome(thread_id, await self.aget_state(config))
                    trace.finish(outcome.status, outcome.values, outcome.interrupts)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                await queue.put(("error", exc))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
            await queue.put(("done", None))

        task = asyncio.create_task(pump(), name=f"mpm-run-{thread_id}", context=trace_ctx)
        error: BaseException | None = None
        ended = False
        try:
            while True:
                kind, item = await queue.get()
                if kind == "chunk":
                    yield item
                    continue
                error, ended = item, True
                break
        finally:
            if not ended:  # the consumer went away (cancelled run, closed stream)
                task.cancel()
                task.add_done_callback(
                    lambda _t: loop.run_in_executor(
                        None, trace_ctx.run, close, asyncio.CancelledError()
                    )
                )
        await task  # it has handed over its last item; let it finish
        await loop.run_in_executor(None, trace_ctx.run, close, error)
        if error is not None:
            raise error

    def bulk_update_state(self, config: Any, supersteps: Any) -> Any:  # type: ignore[override]
        raise StateWriteRefused(STATE_WRITE_REFUSED)

    async def abulk_update_state(self, config: Any, supersteps: Any) -> Any:  # type: ignore[override]
        raise StateWriteRefused(STATE_WRITE_REFUSED)

    def get_context_jsonschema(self) -> dict[str, Any] | None:  # type: ignore[override]
        """Only what a client may set (Studio's form): the rest is the server's."""
        schema = super().get_context_jsonschema()
        if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
            schema = {
                **schema,
                "properties": {
                    k: v for k, v in schema["properties"].items() if k in CLIENT_SETTINGS
                },
            }
            schema.pop("required", None)
        return schema

    def get_input_jsonschema(self, config: Any = None) -> dict[str, Any]:
        """The input form without ``settings``: the server records those itself."""
        schema = super().get_input_jsonschema(config)
        props = schema.get("properties")
        if isinstance(props, dict):
            schema = {**schema, "properties": {k: v for k, v in props.items() if k in START_KEYS}}
        return schema


def served(compiled: Any) -> ServedGraph:
    """``compiled`` as a :class:`ServedGraph` (same nodes, channels and settings)."""
    attrs = {k: v for k, v in compiled.__dict__.items() if k != "__orig_class__"}
    return ServedGraph(**attrs)


__all__ = ["ContextRefused", "InputRefused", "ServedGraph", "StateWriteRefused", "graph"]

graph = served(build_graph())
