"""MLflow tracing of graph invocations: what the graph did, span by span, in the MLflow UI.

One trace per invocation of a thread (the start, and every resume after an interrupt or a
crash). Its root span ``mpm.start`` / ``mpm.resume`` holds LangGraph's own span tree,
recorded by MLflow's LangChain tracer (``MlflowLangchainTracer``): the graph, one span per
node run, and under the stage nodes one span per chat-model call and per tool call. Stage
agents run in a daemon thread started with ``contextvars.copy_context()``, so the run
config (and with it the tracer callback) follows them there.

Where the traces go, and how one thread's traces are found together:

- experiment: the project's ``ml_pipeline_{slug}`` (the parent run's); a conversational
  kickoff that has no project name yet traces into :data:`KICKOFF_EXPERIMENT`;
- tag ``mpm.thread_id`` (the tag the thread's runs carry) and MLflow session
  ``mlflow.trace.session`` = thread id, on every invocation's trace;
- the parent run ``master_pipeline_orchestration``: set as the trace's source run when
  the invocation starts after plan opened it, else linked once the invocation created it
  (``MlflowClient.link_traces_to_run``); ``search_traces(run_id=...)`` finds both.

The tracer is passed per invocation in the run config rather than switched on with
``mlflow.langchain.autolog()``: autolog patches every LangChain callback manager in the
process, so it cannot be scoped to one thread, workspace or ``--no-tracing`` run.
Tracing is on whenever tracking is (``RunContext.tracing``, env ``MPM_TRACING=0`` or
``--no-tracing`` switch it off) and never fails a run: a tracing error is logged and the
invocation runs untraced.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from mpm.graph.context import RunContext

log = logging.getLogger(__name__)

KICKOFF_EXPERIMENT = "mpm_kickoff"
"""Experiment for invocations that run before the project has a name (conversational kickoff)."""


@dataclass
class Invocation:
    """What the runner needs from a traced invocation, and what it reports back."""

    callbacks: list[Any] = field(default_factory=list)
    """Add to the run config's ``callbacks``; empty when the invocation is not traced."""
    trace_id: str | None = None
    outcome: dict[str, Any] = field(default_factory=dict)
    """Set by the runner when the invocation ends: ``status``, ``waiting_for``, ``mlflow`` ids."""

    def finish(self, status: str, values: dict[str, Any], interrupts: list[dict[str, Any]]) -> None:
        self.outcome = {
            "status": status,
            "waiting_for": [
                i["value"].get("approval_id") or i["value"].get("type")
                for i in interrupts
                if isinstance(i.get("value"), dict)
            ],
            "mlflow": values.get("mlflow") or {},
        }


def tracing_enabled(ctx: RunContext) -> bool:
    return bool(ctx.tracking and ctx.tracing)


@contextmanager
def traced_invocation(
    ctx: RunContext, thread_id: str, state: dict[str, Any], graph_input: Any
) -> Iterator[Invocation]:
    """Trace the invocation run inside the block; ``state`` is the thread's values before it."""
    invocation = Invocation()
    if not tracing_enabled(ctx):
        yield invocation
        return
    stack = ExitStack()
    try:
        span, ids = _open_trace(stack, ctx, thread_id, state, graph_input)
        from mlflow.langchain.langchain_tracer import MlflowLangchainTracer

        invocation.callbacks.append(MlflowLangchainTracer())
        invocation.trace_id = span.trace_id
    except Exception as exc:  # noqa: BLE001 - tracing is observability; the run goes on
        stack.close()
        log.warning("MLflow tracing is off for this invocation: %s", exc)
        yield Invocation()
        return
    with stack:  # an error in the invocation reaches the root span: the trace says ERROR
        yield invocation
        span.set_outputs(invocation.outcome or None)
    _after(invocation, ids)  # the root span has ended: the trace is complete


def _open_trace(
    stack: ExitStack, ctx: RunContext, thread_id: str, state: dict[str, Any], graph_input: Any
) -> tuple[Any, dict[str, Any]]:
    import mlflow
    from mlflow.entities import SpanType
    from mlflow.entities.trace_location import MlflowExperimentLocation

    from mpm.tools import tracking

    ids = dict(state.get("mlflow") or {})
    uri = ids.get("tracking_uri") or tracking.tracking_uri_for(ctx.ws.root)
    ids["tracking_uri"] = uri
    experiment_id = ids.get("experiment_id") or _experiment_for(
        tracking.client(uri), ctx, state, graph_input
    )
    # written synchronously unless the user asks otherwise: the trace is in the store when
    # the invocation returns (a CLI command exits without waiting for a background queue)
    stack.enter_context(_env_default("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false"))
    # the exporter sends traces to the process's tracking URI: point it at this thread's
    # store for the invocation (nested use_tracking_uri calls by tools see the same URI).
    stack.enter_context(tracking.use_tracking_uri(uri))
    stack.enter_context(
        mlflow.tracing.context(session_id=thread_id, tags={tracking.THREAD_TAG: thread_id})
    )
    kind = "start" if isinstance(graph_input, dict) else "resume"
    _close_abandoned(ctx, thread_id, uri)
    span = stack.enter_context(
        mlflow.start_span(
            f"mpm.{kind}",
            span_type=SpanType.AGENT,
            trace_destination=MlflowExperimentLocation(experiment_id=experiment_id),
            run_id=ids.get("parent_run_id"),
        )
    )
    span.set_inputs({"thread_id": thread_id, "invocation": kind})
    marker = _open_marker(ctx, thread_id)
    marker.write_text(span.trace_id, encoding="utf-8")
    stack.callback(marker.unlink, missing_ok=True)
    return span, ids


ABANDONED_TAG = "mpm.abandoned"


def _open_marker(ctx: RunContext, thread_id: str) -> Any:
    """Holds the id of the thread's trace while an invocation writes it."""
    return ctx.ws.run_dir(thread_id) / "open_trace_id"


def _close_abandoned(ctx: RunContext, thread_id: str, uri: str) -> None:
    """A process killed in the middle of an invocation never ends its trace, and MLflow
    would show it IN_PROGRESS for ever. The thread's next invocation -- it holds the
    thread's lock, so no other process is tracing the thread -- closes that trace as ERROR
    and says why (tag ``mpm.abandoned``)."""
    marker = _open_marker(ctx, thread_id)
    if not marker.is_file():
        return
    trace_id = marker.read_text(encoding="utf-8").strip()
    try:
        from mlflow.entities import TraceState
        from mlflow.tracing.client import TracingClient

        from mpm.tools import tracking

        client = TracingClient(uri)
        info = client.get_trace_info(trace_id)
        if info.state == TraceState.IN_PROGRESS:
            info.state = TraceState.ERROR
            info.tags[tracking.THREAD_TAG] = thread_id
            info.tags[ABANDONED_TAG] = (
                "the process running this invocation ended before it finished "
                "(killed or crashed); a later invocation continued the thread"
            )
            client.start_trace(info)
    except Exception as exc:  # noqa: BLE001 - e.g. killed before its first span was stored
        log.debug("abandoned trace %s of thread %s not closed: %s", trace_id, thread_id, exc)
    marker.unlink(missing_ok=True)


@contextmanager
def _env_default(name: str, value: str) -> Iterator[None]:
    """``name=value`` for the block unless the environment already sets it."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _experiment_for(c: Any, ctx: RunContext, state: dict[str, Any], graph_input: Any) -> str:
    """The project's experiment (plan opens the parent run in it), created now if needed."""
    from pydantic import ValidationError

    from mpm.graph.run_tracking import experiment_name
    from mpm.graph.state import ProjectRequirements
    from mpm.tools import tracking

    given = graph_input.get("requirements") if isinstance(graph_input, dict) else None
    name = KICKOFF_EXPERIMENT
    if given or state.get("requirements"):
        try:
            req = ProjectRequirements.model_validate(given or state["requirements"])
            name = experiment_name(req.slug)
        except ValidationError:
            pass  # kickoff reports it; its trace goes with the other kickoffs
    return tracking.ensure_experiment(c, name, ctx.ws.artifact_root)


def _after(invocation: Invocation, before: dict[str, Any]) -> None:
    """Write the trace out, and link it to the parent run the invocation opened."""
    try:
        import mlflow

        from mpm.tools import tracking

        parent = (invocation.outcome.get("mlflow") or {}).get("parent_run_id")
        if invocation.trace_id and parent and parent != before.get("parent_run_id"):
            mlflow.flush_trace_async_logging()  # only waits when export is asynchronous
            tracking.client(before["tracking_uri"]).link_traces_to_run(
                [invocation.trace_id], parent
            )
    except Exception as exc:  # noqa: BLE001
        log.warning("MLflow trace %s was not linked to its run: %s", invocation.trace_id, exc)
