"""The deterministic guard that keeps the supervisor honest.

The model may *propose* which stages to run next; only stages whose dependencies are
finished and whose approval gates are open are *ready*, and only ready stages ever run.
A proposal naming anything else is rejected and logged, whatever the model said."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mpm.graph.state import ExecutionPlan

FINISHED = frozenset({"success", "failed_with_fallback"})


def finished_stages(plan: ExecutionPlan, results: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Stages whose result downstream stages may build on (a non-critical failure counts as finished)."""
    done = set()
    for stage in plan.stages:
        status = (results.get(stage.name) or {}).get("status")
        if status in FINISHED or (status == "failed" and not stage.critical):
            done.add(stage.name)
    return done


def critical_failures(plan: ExecutionPlan, results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return [
        s.name
        for s in plan.stages
        if s.critical and (results.get(s.name) or {}).get("status") == "failed"
    ]


def ready_stages(
    plan: ExecutionPlan, results: Mapping[str, Mapping[str, Any]], blocked: Iterable[str] = ()
) -> list[str]:
    """Stages, in plan order, that may start now."""
    done = finished_stages(plan, results)
    blocked = set(blocked)
    failed = set(critical_failures(plan, results))
    return [
        s.name
        for s in plan.stages
        if s.name not in done
        and s.name not in failed
        and s.name not in blocked
        and all(d in done for d in s.depends_on)
    ]


def dependents(plan: ExecutionPlan, stage: str) -> list[str]:
    """``stage`` and every stage that depends on it, directly or not, in plan order."""
    affected = {stage}
    for s in plan.stages:  # plan order is a topological order
        if any(d in affected for d in s.depends_on):
            affected.add(s.name)
    return [s.name for s in plan.stages if s.name in affected]


def ancestors(plan: ExecutionPlan, stage: str) -> set[str]:
    """Every stage ``stage`` depends on, directly or not."""
    found: set[str] = set()
    todo = list(plan.stage(stage).depends_on)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(plan.stage(name).depends_on)
    return found


def check_proposal(proposed: Iterable[str], ready: list[str]) -> tuple[list[str], list[str]]:
    """Split a proposal into the stages that may run (plan order) and the rejected names."""
    proposed = list(dict.fromkeys(proposed))
    accepted = [s for s in ready if s in proposed]
    rejected = [p for p in proposed if p not in ready]
    return accepted, rejected
