"""Synthesize: validate the deliverables against the requirements and write the seed's
final artifacts (``pipeline_metadata.json``, ``executive_summary.md``,
``pipeline_test_suite.json``) into the workspace and onto the parent MLflow run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime

from mpm.graph import reports
from mpm.graph.context import RunContext, run_context
from mpm.graph.deliverables import validate_deliverables
from mpm.graph.events import event
from mpm.graph.guard import FINISHED
from mpm.graph.state import (
    GATED_ACTIONS,
    ExecutionPlan,
    GraphState,
    ProjectRequirements,
    now_iso,
)
from mpm.tools import tracking
from mpm.tools.killpoints import maybe_die


def _write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2, default=str, sort_keys=True), encoding="utf-8")
    return path


def _outputs(results: dict[str, dict[str, Any]], stage: str) -> dict[str, Any]:
    return (results.get(stage) or {}).get("outputs") or {}


def synthesize(state: GraphState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = run_context(runtime)
    thread_id = get_config()["configurable"]["thread_id"]
    req = ProjectRequirements.model_validate(state["requirements"])
    plan = ExecutionPlan.model_validate(state["plan"])
    results = state.get("results") or {}
    governance = state.get("governance") or None
    out_dir = ctx.ws.stage_dir(thread_id, "deliverables")
    finished_at = now_iso()

    validation = validate_deliverables(req, plan, results, governance)
    pipeline_status = "success" if validation["passed"] else "partial_success"
    run_status = "completed" if validation["passed"] else "partial"
    refused = refused_registration(plan, results, governance)
    if refused is not None:
        pipeline_status = run_status = refused["status"]
    guarded = (governance or {}).get("fail_closed") or {}
    accepted = guarded.get("accepted") or []
    rows = reports.stage_rows(plan.stage_names, results)
    data, dev, val, mlops = (
        _outputs(results, s)
        for s in ("data_acquisition", "model_development", "model_validation", "mlops")
    )

    metadata = {
        "project": req.project_name,
        "thread_id": thread_id,
        "start_time": state.get("started_at"),
        "end_time": finished_at,
        "requirements": state["requirements"],
        "stages": rows,
        "final_status": pipeline_status,
        "validation": validation,
        "mlflow": {k: v for k, v in (state.get("mlflow") or {}).items() if k != "tracking_uri"},
        "best_model": {
            k: dev.get(k) for k in ("best_model_name", "best_model_run_id", "best_model_score")
        }
        if dev
        else None,
        "registered_model": {
            k: mlops.get(k)
            for k in ("registered_model_name", "registered_model_version", "model_uri")
        }
        if mlops
        else None,
        "governance_status": (governance or {}).get("overall_status"),
        "registration_refused": refused,
        "accepted_findings": accepted,
        "remediation_attempts": state.get("remediation_attempts") or [],
        "remediation": state.get("remediation"),
    }
    files = {"pipeline_metadata.json": _write_json(out_dir / "pipeline_metadata.json", metadata)}

    test_suite = None
    if mlops.get("model_uri") and data.get("train_path"):
        from mpm.tools.tests_generation import generate_test_suite, run_test_suite

        tracking_uri = (state.get("mlflow") or {}).get("tracking_uri")
        report_path = val.get("validation_report_path")
        validation_report = (
            json.loads(Path(report_path).read_text())
            if report_path and Path(report_path).is_file()
            else {}
        )
        test_suite = generate_test_suite(
            data["train_path"],
            mlops,
            validation_report,
            state["requirements"],
            tracking_uri=tracking_uri,
        )
        test_suite["execution"] = run_test_suite(
            test_suite, mlops["model_uri"], data["test_path"], tracking_uri=tracking_uri
        )
        files["pipeline_test_suite.json"] = _write_json(
            out_dir / "pipeline_test_suite.json", test_suite
        )

    baseline = None
    if val.get("test_score") is not None and data.get("train_path"):
        from mpm.tools.baseline import naive_baseline_score

        baseline = naive_baseline_score(
            data["train_path"],
            data["test_path"],
            data["target_column"],
            req.model_type.value,
            req.target_metric,
        )
    plot = reports.plot_stage_durations(rows, out_dir / "stage_durations.png")
    files["stage_durations.png"] = plot
    summary = reports.render_executive_summary(
        req=req,
        thread_id=thread_id,
        pipeline_status=pipeline_status,
        lower_is_better=req.target_metric in reports.LOWER_IS_BETTER,
        test_score=val.get("test_score"),
        meets=bool(val.get("meets_threshold")),
        validation=validation,
        best_model={"name": dev.get("best_model_name"), "score": dev.get("best_model_score")}
        if dev
        else None,
        candidates=dev.get("candidates") or [],
        registered=mlops.get("model_uri"),
        roi=reports.roi_estimate(req, val.get("test_score"), baseline),
        risks=_outputs(results, "business_analysis").get("risks") or [],
        governance=governance,
        refused=refused,
        accepted=accepted,
        approvals=_verified_approvals(state, governance),
        stages=rows,
        totals={
            "duration_s": sum(r["duration_s"] for r in rows),
            "cpu_s": sum(r["cpu_s"] for r in rows),
            "artifact_bytes": sum(r["artifact_bytes"] for r in rows),
        },
        plots=[{"title": "Stage durations", "file": plot.name}],
        remediation_attempts=state.get("remediation_attempts") or [],
        remediation=state.get("remediation"),
    )
    files["executive_summary.md"] = out_dir / "executive_summary.md"
    files["executive_summary.md"].write_text(summary, encoding="utf-8")

    ids = state.get("mlflow") or {}
    if ctx.tracking and ids.get("parent_run_id"):
        c = tracking.client(ids["tracking_uri"])
        parent = ids["parent_run_id"]
        for path in files.values():
            tracking.log_file(c, parent, path)
        tracking.log_metrics(
            c,
            parent,
            {
                "pipeline_stages_completed": sum(
                    1
                    for r in results.values()
                    if r.get("status") in {"success", "failed_with_fallback"}
                ),
                "pipeline_validation_passed": int(validation["passed"]),
            },
        )
        tracking.set_tags(c, parent, {"pipeline_status": pipeline_status})
        maybe_die("synthesize")
        if (governance or {}).get("mlflow_run_id"):
            tracking.finish_run(c, governance["mlflow_run_id"], "FINISHED")
        tracking.finish_run(c, parent, "FINISHED")
    deliverables = {
        "dir": str(out_dir),
        "files": {name: str(path) for name, path in files.items()},
        "pipeline_status": pipeline_status,
        "validation": validation,
        "registered_model": metadata["registered_model"],
        "test_suite_passed": (test_suite or {}).get("execution", {}).get("failed") == 0
        if test_suite
        else None,
    }
    events = []
    if refused is not None:
        events.append(
            event("synthesize", "registration_refused", "; ".join(refused["reasons"])[:2000])
        )
    events.append(
        event(
            "synthesize",
            "pipeline_finished",
            pipeline_status,
            validation_passed=validation["passed"],
        )
    )
    return {
        "deliverables": deliverables,
        "status": run_status,
        "finished_at": finished_at,
        "events": events,
    }


GUARDED_STAGES = frozenset(GATED_ACTIONS.values())
REFUSED_STATUSES = ("failed_governance", "failed_criteria")


def refused_registration(
    plan: ExecutionPlan, results: dict[str, Any], governance: dict[str, Any] | None
) -> dict[str, Any] | None:
    """``{status, reasons}`` when fail-closed governance kept a guarded stage from running.

    ``status`` is ``failed_governance`` (a FAILED framework, or governance in ERROR) or
    ``failed_criteria`` (the success criterion unmet); None when nothing was refused."""
    guarded = (governance or {}).get("fail_closed")
    # guarded stages that could have run (their dependencies finished) but did not: held
    # by governance, not by an upstream failure
    pending = [
        s.name
        for s in plan.stages
        if s.name in GUARDED_STAGES
        and (results.get(s.name) or {}).get("status") not in FINISHED
        and all((results.get(d) or {}).get("status") in FINISHED for d in s.depends_on)
    ]
    if not pending or not isinstance(guarded, dict) or not guarded.get("blocked"):
        return None
    status = guarded.get("status")
    return {
        "status": status if status in REFUSED_STATUSES else "failed_governance",
        "stages": pending,
        "reasons": list(guarded.get("reasons") or []) or ["governance did not clear registration"],
    }


def _verified_approvals(
    state: GraphState, governance: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The decisions the summary lists: only those governance derived from verified, signed
    audit entries (the ``approvals`` map is a cache anyone who can write state could edit)."""
    derived = {
        a["id"]: a["state"]
        for a in (governance or {}).get("approvals") or []
        if a.get("state") in ("granted", "rejected", "changes_requested")
    }
    return [
        {"id": k, **v}
        for k, v in (state.get("approvals") or {}).items()
        if k in derived and isinstance(v, dict)
    ]
