"""Governance: evaluate the evidence collected so far against every applicable policy.

Runs after the plan (which frameworks apply, with reasons) and after every stage and
every decision. The full report and the dashboard go to the workspace and to the nested
MLflow run ``governance_orchestration`` (as the seed does); the graph keeps a compact
view. A policy library that cannot be loaded puts governance into ``ERROR`` with the
reason: gated actions then stay blocked, nothing crashes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import Command

from mpm.graph.context import RunContext, run_context
from mpm.graph.events import event
from mpm.graph.governance_context import governance_context
from mpm.graph.governance_view import compact
from mpm.graph.state import GraphState, now_iso
from mpm.tools import tracking
from mpm.tools.killpoints import maybe_die


def evaluate(state: GraphState, ctx: RunContext) -> tuple[dict[str, Any], Any]:
    """(compact view, full report or None). Never raises: failures become ``ERROR``."""
    from mpm.governance import assess_project

    try:
        context = governance_context(ctx)
        report = assess_project(state, context=context)
    except Exception as exc:  # noqa: BLE001 - governance failure is a state, not a crash
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return {
            "overall_status": "ERROR",
            "error": f"governance could not be evaluated: {reason}",
            "frameworks": [],
            "approvals": [],
            "gates": {},
            "open_questions": [],
            "fail_closed": {
                "blocked": True,
                "status": "failed_governance",
                "reasons": [f"governance could not be evaluated: {reason}"],
                "blockers": [],
                "accepted": [],
            },
            "evaluated_at": now_iso(),
            "context": {"overall_status": "ERROR"},
        }, None
    return compact(report, context, state), report


def _digest(payload: dict[str, Any], audit: list[dict[str, Any]]) -> str:
    """What the output files are made of, minus the report's own timestamp: equal digests
    mean equal files, so an evaluation that changed nothing rewrites nothing."""
    import hashlib

    body = {k: v for k, v in payload.items() if k != "generated_at"}
    text = json.dumps([body, audit], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _write_outputs(
    ctx: RunContext,
    thread_id: str,
    view: dict[str, Any],
    report: Any,
    audit: list[dict[str, Any]],
    previous: dict[str, Any] | None = None,
) -> tuple[dict[str, Path], str, bool]:
    """Write the report, audit trail and dashboard; (files, digest, written).

    Governance runs after every step, but most steps change nothing it reports: when the
    digest equals the previous evaluation's and its files are all there, they are kept
    as they are (rendering and writing them was most of the node's time)."""
    from mpm.governance import render_dashboard

    out = ctx.ws.stage_dir(thread_id, "governance")
    results = out / "governance_orchestration_results.json"
    payload = report.model_dump(mode="json") if report is not None else view
    digest = _digest(payload, audit)
    kept = {k: Path(v) for k, v in ((previous or {}).get("files") or {}).items()}
    if (
        previous
        and previous.get("outputs_digest") == digest
        and kept
        and all(p.is_file() for p in kept.values())
    ):
        return kept, digest, False
    results.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    files = {"results": results}
    if audit:
        from mpm.graph.audit import to_jsonl

        trail = out / "audit_trail.jsonl"
        trail.write_text(to_jsonl(audit), encoding="utf-8")
        files["audit"] = trail
    if report is not None:
        dashboard = out / "governance_dashboard.html"
        dashboard.write_text(render_dashboard(report), encoding="utf-8")
        files["dashboard"] = dashboard
    return files, digest, True


def _log(
    ids: dict[str, Any],
    thread_id: str,
    view: dict[str, Any],
    files: dict[str, Path],
    step: int,
    head: dict[str, Any] | None = None,
    *,
    log_files: bool = True,
) -> str:
    c = tracking.client(ids["tracking_uri"])
    run_id = tracking.find_or_create_run(
        c,
        ids["experiment_id"],
        f"{thread_id}:governance",
        "governance_orchestration",
        parent_run_id=ids["parent_run_id"],
        tags={tracking.THREAD_TAG: thread_id, "orchestration_type": "governance_compliance"},
    )
    tracking.log_params(c, run_id, {"applicable_frameworks": ",".join(view.get("frameworks", []))})
    tracking.log_metrics(
        c,
        run_id,
        {
            f"{fw}_compliance_score": v["compliance_score"]
            for fw, v in (view.get("compliance_status") or {}).items()
        },
        step=step,
    )
    if log_files:  # unchanged files are already the run's artifacts
        for path in files.values():
            tracking.log_file(c, run_id, path)
    tracking.set_tags(c, run_id, {"governance_status": view["overall_status"]})
    if view.get("error"):
        tracking.set_tags(c, run_id, {"governance_orchestration_error": view["error"][:5000]})
    tracking.set_tags(c, ids["parent_run_id"], {"governance_status": view["overall_status"]})
    if head is not None and head["count"]:  # the audit chain head, anchored outside the trail
        from mpm.graph.audit import HEAD_TAG, head_tag

        tracking.set_tags(c, ids["parent_run_id"], {HEAD_TAG: head_tag(head)})
    return run_id


def governance(state: GraphState, runtime: Runtime[RunContext]) -> Command:
    ctx = run_context(runtime)
    thread_id = get_config()["configurable"]["thread_id"]
    view, report = evaluate(state, ctx)
    previous = state.get("governance") or {}
    files, digest, written = _write_outputs(
        ctx, thread_id, view, report, state.get("audit") or [], previous
    )
    view["files"] = {k: str(v) for k, v in files.items()}
    view["outputs_digest"] = digest
    step = int(previous.get("evaluations", 0)) + 1
    view["evaluations"] = step
    ids = state.get("mlflow") or {}
    if ctx.tracking and ids.get("parent_run_id"):
        from mpm.graph.audit import head as chain_head

        audit_head = chain_head(state.get("audit") or [])
        view["mlflow_run_id"] = _log(
            ids, thread_id, view, files, step, audit_head, log_files=written
        )
    changed = previous.get("overall_status") != view["overall_status"]
    events = [
        event(
            "governance",
            "governance_evaluated",
            view["overall_status"],
            frameworks=view["frameworks"],
        )
    ]
    if view.get("error"):
        events.append(event("governance", "governance_error", view["error"]))
    elif changed:
        events.append(
            event(
                "governance",
                "governance_status_changed",
                f"{previous.get('overall_status')} -> {view['overall_status']}",
            )
        )
    update: dict[str, Any] = {"governance": view, "events": events}
    plan = state.get("plan")
    if plan is not None and not plan.get("gates"):
        from mpm.graph.nodes.plan import approval_gates
        from mpm.graph.state import ExecutionPlan

        gates = approval_gates(ExecutionPlan.model_validate(plan), view)
        update["plan"] = {**plan, "gates": [g.model_dump(mode="json") for g in gates]}
        if ctx.tracking and ids.get("parent_run_id"):
            tracking.log_dict(
                tracking.client(ids["tracking_uri"]),
                ids["parent_run_id"],
                update["plan"],
                "execution_plan.json",
            )
        blocking = [g for g in gates if g.blocks]
        events.append(
            event(
                "governance",
                "gates_planned",
                f"{len(gates)} gates ({len(blocking)} blocking: "
                + ", ".join(f"{g.name} -> {'/'.join(g.blocks)}" for g in blocking)
                + ")",
                frameworks=[
                    f"{a['framework']}: {a['reason']}"
                    for a in view.get("applicability", [])
                    if a.get("applies")
                ],
            )
        )
    maybe_die("governance")
    return Command(goto="supervisor", update=update)
