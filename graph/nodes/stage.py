"""Sub-agent nodes: run one stage's agent with its timeout, retries and fallback.

One node per agent type (``business_analyst``, ``data_wrangler``, ...); the supervisor
sends each the stage to run with a compact brief. Retries re-run the agent's standard
procedure; when every attempt failed and the stage has a fallback, the fallback
procedure runs and the stage is recorded ``failed_with_fallback`` with the error; a
stage without one is recorded ``failed``. Nothing here raises into the graph.
"""

from __future__ import annotations

import contextvars
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from langgraph.config import get_config, get_stream_writer
from langgraph.runtime import Runtime

from mpm.agents.base import AgentOutcome, StageContext, StageTimeout, run_agent
from mpm.agents.registry import agent_for
from mpm.graph import run_tracking
from mpm.graph.context import RunContext, run_context
from mpm.graph.events import event
from mpm.graph.llm import get_chat_model
from mpm.graph.state import StageResult, StageSpec, StageStatus
from mpm.tools.killpoints import maybe_die


def _attempt(
    ctx: RunContext,
    spec: StageSpec,
    stage_ctx: StageContext,
    *,
    fallback: bool,
    emit: Callable[[dict[str, Any]], None],
) -> AgentOutcome:
    """One run of the agent, bounded by the stage timeout (the loop also checks a deadline)."""
    agent = agent_for(spec.agent.value, ctx.toolset)
    model = get_chat_model(ctx.model)
    stage_ctx.deadline = time.monotonic() + spec.timeout_s
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["outcome"] = _timed_agent_run(
                agent,
                stage_ctx,
                model,
                spec.task,
                fallback=fallback,
                on_tool=lambda name: emit({"stage": spec.name, "event": "tool", "tool": name}),
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting node
            box["error"] = exc

    # A daemon thread, not an executor: a tool that hangs past the timeout must not keep
    # the process alive at exit (executor threads are joined at interpreter shutdown).
    worker = threading.Thread(
        target=contextvars.copy_context().run,
        args=(target,),
        daemon=True,
        name=f"stage-{spec.name}",
    )
    worker.start()
    worker.join(spec.timeout_s)
    if worker.is_alive():
        raise StageTimeout(f"stage {spec.name!r} exceeded its timeout of {spec.timeout_s:g}s")
    if "error" in box:
        raise box["error"]
    return box["outcome"]


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
