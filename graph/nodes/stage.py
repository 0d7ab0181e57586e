"""Sub-agent nodes: run one stage's agent with its timeout, retries and fallback.

One node per agent type (``business_analyst``, ``data_wrangler``, ...); the supervisor
sends each the stage to run with a compact brief. Retries re-run the agent's standard
procedure (not after an error that cannot change on retry: ``PermanentStageFailure``);
when every attempt failed and the stage has a fallback, the fallback
procedure runs and the stage is recorded ``failed_with_fallback`` with the error; a
stage without one is recorded ``failed``. Nothing here raises into the graph.
"""

from __future__ import annotations

import contextvars
import ctypes
import dataclasses
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from langgraph.config import get_config, get_stream_writer
from langgraph.runtime import Runtime

from mpm.agents.base import (
    AgentOutcome,
    PermanentStageFailure,
    StageContext,
    StageTimeout,
    run_agent,
)
from mpm.agents.registry import agent_for
from mpm.graph import run_tracking, stopping
from mpm.graph.context import RunContext, run_context
from mpm.graph.events import event
from mpm.graph.llm import get_chat_model
from mpm.graph.state import StageResult, StageSpec, StageStatus
from mpm.tools.killpoints import maybe_die

POLL_S = 0.05
"""How often a stage waiting on its agent looks for a stop request or its deadline."""
ABANDON_GRACE_S = 2.0
"""How long a timed-out worker gets to unwind after it was told to stop."""


class StageAbandoned(BaseException):  # noqa: N818 - it is a signal to a thread, not an error
    """Raised inside a timed-out stage's worker thread to stop it.

    A ``BaseException``: the agent loop and the tools report every ``Exception`` to the
    model and carry on; this must not be caught there."""


def _attempt(
    ctx: RunContext,
    spec: StageSpec,
    stage_ctx: StageContext,
    *,
    fallback: bool,
    emit: Callable[[dict[str, Any]], None],
) -> AgentOutcome:
    """One run of the agent, bounded by the stage timeout.

    The agent runs in a worker thread so the timeout holds even in a tool that never
    returns. A worker that outlives its timeout is stopped, not left behind: its own
    context's deadline is moved to now (the loop checks it before every model and tool
    call) and :class:`StageAbandoned` is raised inside it (Python code, a tool's loop or a
    sleep in small steps, stops within one bytecode); the retry that follows gets a fresh
    context, so a late worker cannot write into it."""
    agent = agent_for(spec.agent.value, ctx.toolset)
    model = get_chat_model(ctx.model)
    mine = dataclasses.replace(stage_ctx, deadline=time.monotonic() + spec.timeout_s)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["outcome"] = _timed_agent_run(
                agent,
                mine,
                model,
                spec.task,
                fallback=fallback,
                on_tool=lambda name: emit({"stage": spec.name, "event": "tool", "tool": name}),
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting node
            box["error"] = exc

    # A daemon thread, not an executor: a tool stuck in C code past the timeout must not
    # keep the process alive at exit (executor threads are joined at interpreter shutdown).
    worker = threading.Thread(
        target=contextvars.copy_context().run,
        args=(target,),
        daemon=True,
        name=f"stage-{spec.name}",
    )
    deadline = time.monotonic() + spec.timeout_s
    worker.start()
    while worker.is_alive() and time.monotonic() < deadline:
        if stopping.requested():
            stopping.exit_now()  # Ctrl-C/SIGTERM: nothing of this attempt is saved
        worker.join(min(POLL_S, max(0.0, deadline - time.monotonic())))
    if worker.is_alive():
        stop_worker(worker, mine)
        raise StageTimeout(f"stage {spec.name!r} exceeded its timeout of {spec.timeout_s:g}s")
    if "error" in box:
        raise box["error"]
    return box["outcome"]


def stop_worker(worker: threading.Thread, stage_ctx: StageContext) -> bool:
    """Stop a timed-out stage worker; True once it has ended."""
    stage_ctx.deadline = float("-inf")  # the loop's next check raises StageTimeout
    if worker.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(worker.ident), ctypes.py_object(StageAbandoned)
        )
    worker.join(ABANDON_GRACE_S)
    return not worker.is_alive()


def _timed_agent_run(*args: Any, **kwargs: Any) -> AgentOutcome:
    started = time.thread_time()
    outcome = run_agent(*args, **kwargs)
    outcome.cpu_s = time.thread_time() - started
    return outcome


def run_stage(payload: dict[str, Any], runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = run_context(runtime)
    spec = StageSpec.model_validate(payload["spec"])
    thread_id = get_config()["configurable"]["thread_id"]
    emit = get_stream_writer()
    ws = ctx.ws
    ids = payload.get("mlflow") or {}
    run_id = None
    if ctx.tracking and ids:
        run_id = run_tracking.open_stage_run(
            ids, thread_id, spec.name, spec.agent.value, payload.get("revision", 0)
        )
        maybe_die("stage.start")
    stage_ctx = StageContext(
        stage=spec.name,
        stage_dir=ws.stage_dir(thread_id, spec.name),
        workspace_root=ws.root,
        requirements=payload["requirements"],
        upstream=payload.get("upstream") or {},
        tracking_uri=ids.get("tracking_uri") if ctx.tracking else None,
        run_id=run_id,
        parent_run_id=ids.get("parent_run_id"),
        experiment_id=ids.get("experiment_id"),
        seed=int(payload["requirements"].get("seed", 42)),
        governance=payload.get("governance") or {},
        revision_comment=payload.get("revision_comment"),
        remediation=payload.get("remediation"),
    )
    emit({"stage": spec.name, "event": "started", "agent": spec.agent.value})
    events = [
        event(spec.name, "stage_started", spec.agent.value, revision=payload.get("revision", 0))
    ]
    started = time.monotonic()
    errors: list[str] = []
    outcome: AgentOutcome | None = None
    status = StageStatus.success
    attempts = 0
    for attempts in range(1, spec.max_retries + 2):  # noqa: B007 - attempts is reported
        try:
            outcome = _attempt(ctx, spec, stage_ctx, fallback=False, emit=emit)
            break
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, none escapes
            errors.append(_describe(exc))
            events.append(event(spec.name, "attempt_failed", errors[-1], attempt=attempts))
            if isinstance(exc, PermanentStageFailure):  # the same input fails the same way
                events.append(event(spec.name, "not_retried", "the error cannot change on retry"))
                break
            emit({"stage": spec.name, "event": "retry", "error": errors[-1]})
    if outcome is None and spec.fallback:
        events.append(event(spec.name, "fallback_started", spec.fallback))
        emit({"stage": spec.name, "event": "fallback", "fallback": spec.fallback})
        try:
            outcome = _attempt(ctx, spec, stage_ctx, fallback=True, emit=emit)
            status = StageStatus.failed_with_fallback
        except Exception as exc:  # noqa: BLE001
            errors.append(f"fallback: {_describe(exc)}")
    if outcome is None:
        status = StageStatus.failed
        outcome = AgentOutcome(summary=f"stage failed: {errors[-1] if errors else 'unknown error'}")
    result = StageResult(
        stage=spec.name,
        agent=spec.agent,
        status=status,
        summary=outcome.summary,
        metrics=outcome.metrics,
        evidence=outcome.evidence,
        outputs=outcome.outputs,
        artifacts=outcome.artifacts,
        mlflow_run_id=run_id,
        duration_s=round(time.monotonic() - started, 3),
        cpu_s=round(outcome.cpu_s, 3),
        attempts=attempts,
        error=errors[0] if errors else None,
        tool_calls=outcome.tool_calls,
        model_calls=outcome.model_calls,
        input_tokens=outcome.input_tokens,
        output_tokens=outcome.output_tokens,
    ).model_dump(mode="json")
    if run_id:
        run_tracking.close_stage_run(ids, spec.name, run_id, result)
        maybe_die("stage.end")
    events.append(event(spec.name, "stage_finished", status.value, duration_s=result["duration_s"]))
    emit(
        {
            "stage": spec.name,
            "event": "finished",
            "status": status.value,
            "duration_s": result["duration_s"],
            "summary": outcome.summary,
        }
    )
    return {"results": {spec.name: result}, "events": events}


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if isinstance(exc, AssertionError | KeyError | TypeError | AttributeError):
        # programming errors: keep where it happened, it is what a maintainer needs
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        if frame:
            first += f" (at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"
    return first[:1000]
