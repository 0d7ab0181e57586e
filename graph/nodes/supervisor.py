"""Supervisor: route to the next ready stage(s), to governance, or to synthesis.

Where the guard leaves exactly one valid next step the model is not consulted at all;
where there is a real choice the model proposes (structured output) and the guard
disposes. Independent ready stages fan out in parallel with ``Send``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime
from langgraph.types import Command, Send
from pydantic import BaseModel, Field

from graph import guard
from graph.context import RunContext, run_context
from graph.events import event
from graph.llm import get_chat_model, register_structured_rule
from graph.state import ExecutionPlan, GraphState

SYSTEM_PROMPT = """You are the project manager supervising an ML project. Choose which of the
ready stages to start now. Stages listed together may run in parallel. Answer with the
stage names exactly as listed."""


class RouteDecision(BaseModel):
    next_stages: list[str] = Field(description="names of ready stages to start now")
    reason: str = ""


_READY = re.compile(r"^Ready stages:\s*(?P<names>.*)$", re.MULTILINE)


@register_structured_rule(RouteDecision)
def _stub_route(messages: Sequence[BaseMessage]) -> RouteDecision:
    """Stub rule: start every ready stage, in plan order."""
    text = str(messages[-1].content)
    m = _READY.search(text)
    names = [n.strip() for n in m.group("names").split(",") if n.strip()] if m else []
    return RouteDecision(
        next_stages=names, reason="all ready stages are independent; start them together"
    )


def stage_input(state: GraphState, plan: ExecutionPlan, name: str) -> dict[str, Any]:
    """The Send payload for one stage: its spec and a compact brief, not the whole state."""
    spec = plan.stage(name)
    results = state.get("results") or {}
    revision = (state.get("revisions") or {}).get(name) or {}
    return {
        "stage": name,
        "spec": spec.model_dump(mode="json"),
        "requirements": state["requirements"],
        "upstream": {
            n: r
            for n, r in results.items()
            if n != name and r.get("status") in guard.FINISHED | {"failed"}
        },
        "governance": (state.get("governance") or {}).get("context", {}),
        "mlflow": state.get("mlflow") or {},
        "revision": revision.get("count", 0),
        "revision_comment": revision.get("comment"),
    }


def supervisor(state: GraphState, runtime: Runtime[RunContext]) -> Command:
    plan = ExecutionPlan.model_validate(state["plan"])
    results = state.get("results") or {}
    failures = guard.critical_failures(plan, results)
    if failures:
        return Command(
            goto="synthesize",
            update={"events": [event("supervisor", "critical_failure", ", ".join(failures))]},
        )
    ready = guard.ready_stages(plan, results)
    if not ready:
        return Command(
            goto="synthesize", update={"events": [event("supervisor", "all_stages_finished")]}
        )
    events = []
    if len(ready) == 1:
        chosen = ready
    else:
        chosen, rejected, reason = _ask_model(run_context(runtime).model, state, plan, ready)
        if rejected:
            events.append(
                event("supervisor", "proposal_rejected", ", ".join(rejected), ready=ready)
            )
        if not chosen:
            chosen = ready[:1]
            events.append(
                event("supervisor", "guard_override", f"no valid proposal; starting {chosen[0]}")
            )
        events.append(event("supervisor", "model_proposal", reason, accepted=chosen))
    events.append(event("supervisor", "route", ", ".join(chosen)))
    sends = [Send(plan.stage(n).agent.value, stage_input(state, plan, n)) for n in chosen]
    return Command(goto=sends, update={"events": events, "status": "running"})


def _ask_model(
    model_spec: str, state: GraphState, plan: ExecutionPlan, ready: list[str]
) -> tuple[list[str], list[str], str]:
    results = state.get("results") or {}
    done = ", ".join(f"{n} ({r.get('status')})" for n, r in results.items()) or "none"
    prompt = (
        f"Project: {state['requirements']['project_name']}\n"
        f"Finished: {done}\n"
        + "\n".join(f"- {s.name}: {s.task}" for s in plan.stages if s.name in ready)
        + f"\nReady stages: {', '.join(ready)}"
    )
    model = get_chat_model(model_spec)
    try:
        decision = model.with_structured_output(RouteDecision).invoke(
            [SystemMessage(SYSTEM_PROMPT), HumanMessage(prompt)]
        )
    except Exception as exc:  # noqa: BLE001 - a broken proposal falls back to the guard
        return [], [f"<model error: {type(exc).__name__}: {exc}>"], "model failed"
    accepted, rejected = guard.check_proposal(decision.next_stages, ready)
    return accepted, rejected, decision.reason
