"""Helpers for graph tests: run a thread in-process, or drive the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mpm.graph.context import RunContext
from mpm.graph.runner import Runner

REPO = Path(__file__).resolve().parents[2]


def runner(
    workspace: Path,
    *,
    toolset: str = "noop",
    tracking: bool = False,
    model: str = "stub",
    checkpointer: str | None = None,
    events: list[dict[str, Any]] | None = None,
) -> Runner:
    ctx = RunContext(workspace=str(workspace), model=model, toolset=toolset, tracking=tracking)
    sink = events.append if events is not None else None
    return Runner(ctx, checkpointer, on_event=sink)


def example(name: str, **overrides: Any) -> dict[str, Any]:
    data = yaml.safe_load((REPO / "reference" / "examples" / f"{name}.yaml").read_text())
    data.update(overrides)
    return data


def mpm(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mpm", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        input=input,
        cwd=REPO,
    )


def auto_answer(question: dict[str, Any]) -> Any:
    """A valid answer for an open governance question, by its input type (tests only)."""
    kind, options = question.get("type"), question.get("options") or []
    if kind in {"radio", "select"}:
        return options[0]
    if kind in {"checkbox", "multiselect"}:
        return options[:1]
    if kind == "numeric":
        return question.get("min") if question.get("min") is not None else 1
    if kind == "date":
        return "2027-01-15"
    return "answered by the test project owner"


def approver_for(request: dict[str, Any], requested_by: str | None) -> str:
    """An authorised approver for an approval request: an eligible member, not the requester."""
    eligible = [u for u in request["eligible_approvers"] if u != requested_by]
    assert eligible, f"nobody may approve {request['approval_id']}"
    return eligible[0]


def decision(
    request: dict[str, Any], approver: str, verdict: str = "approve", comment: str = "ok"
) -> dict[str, Any]:
    import uuid

    from mpm.graph.state import now_iso

    return {
        "decision": verdict,
        "approver": approver,
        "comment": comment,
        "approval_id": request["approval_id"],
        "decision_id": uuid.uuid4().hex,
        "submitted_at": now_iso(),
    }


def drive_to_completion(r: Runner, outcome: Any, *, max_rounds: int = 60) -> Any:
    """Answer every open question and approve every pending approval until the run ends."""
    requested_by = (outcome.values.get("requirements") or {}).get("requested_by")
    for _ in range(max_rounds):
        if not outcome.interrupts:
            return outcome
        item = outcome.interrupts[0]
        value = item["value"]
        if value["type"] == "open_questions":
            answers = {q["key"]: auto_answer(q) for q in value["questions"]}
            outcome = r.answer(outcome.thread_id, "open_questions", answers)
        elif value["type"] == "approval":
            outcome = r.answer(
                outcome.thread_id,
                "approval",
                decision(value, approver_for(value, requested_by)),
                key=value["approval_id"],
            )
        else:
            raise AssertionError(f"unexpected interrupt {value}")
    raise AssertionError("the run did not finish")
