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
    LOWER_IS_BETTER,
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

    roi = reports.roi_estimate(req, *_accuracies(req, results))
    from mpm.graph import model_doc

    tables = model_doc.governance_tables(governance, state["requirements"], results)
    plot = reports.plot_stage_durations(rows, out_dir / "stage_durations.png")
    files["stage_durations.png"] = plot
    summary = reports.render_executive_summary(
        req=req,
        thread_id=thread_id,
        pipeline_status=pipeline_status,
        lower_is_better=req.target_metric in LOWER_IS_BETTER,
        test_score=val.get("test_score"),
        meets=bool(val.get("meets_threshold")),
        validation=validation,
        best_model={"name": dev.get("best_model_name"), "score": dev.get("best_model_score")}
        if dev
        else None,
        candidates=dev.get("candidates") or [],
        registered=mlops.get("model_uri"),
        deployment=results.get("deployment"),
        roi=roi,
        fairness=val.get("fairness") or {},
        fairness_limits=model_doc.fairness_limits(tables[0]),
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

    doc = _model_documentation(
        state, req, thread_id, tables, out_dir, ctx, pipeline_status, metadata
    )
    files.update(doc["files"])

    ids = state.get("mlflow") or {}
    if ctx.tracking and ids.get("parent_run_id"):
        c = tracking.client(ids["tracking_uri"])
        parent = ids["parent_run_id"]
        for path in files.values():
            tracking.log_file(c, parent, path)
        _log_traced_numbers(c, parent, req, results, rows, roi, doc, governance)
        _attach_to_registered_version(c, ids["tracking_uri"], mlops, doc["files"])
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
        if mlops.get("registered_model_name"):
            _settle_champion(ids["tracking_uri"], parent, req, mlops, val, governance, accepted)
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


def _accuracies(req: ProjectRequirements, results: dict[str, Any]) -> tuple[Any, Any]:
    """(model test accuracy as validation tracked it, naive baseline test accuracy), only
    when business assumptions ask for an ROI (the baseline costs a fit)."""
    if req.business_assumptions is None or req.model_type.value != "classification":
        return None, None
    data = _outputs(results, "data_acquisition")
    accuracy = ((results.get("model_validation") or {}).get("metrics") or {}).get("test_accuracy")
    if accuracy is None or not data.get("train_path") or not data.get("test_path"):
        return None, None
    from mpm.tools.baseline import naive_baseline_score

    baseline = naive_baseline_score(
        data["train_path"], data["test_path"], data["target_column"], "classification", "accuracy"
    )
    return float(accuracy), float(baseline)


def _model_documentation(
    state: GraphState,
    req: ProjectRequirements,
    thread_id: str,
    tables: tuple[Any, list[dict[str, Any]], list[dict[str, Any]]],
    out_dir: Path,
    ctx: RunContext,
    pipeline_status: str,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """Write model_documentation.md/.html (plus the requirements file the re-run command
    names and the bootstrap intervals); returns the files and what to log."""
    import yaml

    from mpm.graph import model_doc

    results = state.get("results") or {}
    report, criteria, decisions = tables
    bootstrap, why = model_doc.test_intervals(req, results, criteria)
    files: dict[str, Path] = {}
    if bootstrap is not None:
        files["bootstrap_intervals.json"] = _write_json(
            out_dir / "bootstrap_intervals.json", bootstrap
        )
    requirements_file = out_dir / "requirements.yaml"
    requirements_file.write_text(
        yaml.safe_dump(state["requirements"], sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    files["requirements.yaml"] = requirements_file
    env = model_doc.environment()
    fingerprints = model_doc.data_fingerprints(results)
    context = model_doc.documentation_context(
        state=state,
        req=req,
        thread_id=thread_id,
        governance_report=report,
        criteria=criteria,
        decisions=decisions,
        bootstrap=bootstrap,
        env=env,
        fingerprints=fingerprints,
        rerun_command=model_doc.rerun_command(
            state.get("settings") or {}, ctx.ws.root, requirements_file
        ),
        registered=metadata.get("registered_model"),
        pipeline_status=pipeline_status,
        generated_at=now_iso(),
    )
    context["bootstrap_unknown"] = why
    for name, text in (
        ("model_documentation.md", model_doc.render_markdown(context)),
        ("model_documentation.html", model_doc.render_html(context)),
    ):
        files[name] = out_dir / name
        files[name].write_text(text, encoding="utf-8")
    return {
        "files": files,
        "bootstrap": bootstrap,
        "env": env,
        "fingerprints": fingerprints,
        "decisions": decisions,
        "criteria": criteria,
    }


def _log_traced_numbers(
    c: Any,
    parent: str,
    req: ProjectRequirements,
    results: dict[str, Any],
    rows: list[dict[str, Any]],
    roi: dict[str, Any],
    doc: dict[str, Any],
    governance: dict[str, Any] | None,
) -> None:
    """Track what the deliverables compute themselves, so every figure they show is in
    MLflow: resource use and ROI on the parent run, bootstrap intervals on the validation
    run, environment and data fingerprints as parent-run params."""
    from mpm.graph import model_doc

    metrics: dict[str, float] = {}
    for r in rows:
        if r["status"] != "not run":
            metrics[f"{r['name']}_cpu_s"] = r["cpu_s"]
            metrics[f"{r['name']}_artifact_bytes"] = float(r["artifact_bytes"])
    metrics["pipeline_duration_s"] = sum(r["duration_s"] for r in rows)
    metrics["pipeline_cpu_s"] = sum(r["cpu_s"] for r in rows)
    metrics["pipeline_artifact_bytes"] = float(sum(r["artifact_bytes"] for r in rows))
    metrics.update(reports.roi_metrics(roi))
    val = _outputs(results, "model_validation")
    if isinstance(val.get("test_score"), int | float) and not val.get("meets_threshold"):
        # the summary's "gap to the target" is a figure the run tracks too
        metrics["success_criterion_gap"] = abs(float(val["test_score"]) - req.success_threshold)
    tracking.log_metrics(c, parent, metrics)
    params = {f"env.{k}": v for k, v in doc["env"].items()}
    params.update({f"data_sha256.{k}": v for k, v in doc["fingerprints"].items()})
    tracking.log_params(c, parent, params)
    scores = [
        float(v["compliance_score"])
        for v in ((governance or {}).get("compliance_status") or {}).values()
        if isinstance(v, dict) and isinstance(v.get("compliance_score"), int | float)
    ]
    if scores and (governance or {}).get("mlflow_run_id"):  # the dashboard's headline figure
        tracking.log_metrics(
            c, governance["mlflow_run_id"], {"average_compliance_score": sum(scores) / len(scores)}
        )
    bootstrap = doc.get("bootstrap")
    validation_run = (results.get("model_validation") or {}).get("mlflow_run_id")
    if bootstrap and validation_run:
        tracking.log_metrics(c, validation_run, model_doc.interval_metrics(bootstrap))
        tracking.log_params(
            c,
            validation_run,
            {
                "bootstrap_method": bootstrap["method"],
                "bootstrap_n_resamples": bootstrap["n_resamples"],
                "bootstrap_confidence": bootstrap["confidence"],
                "bootstrap_seed": bootstrap["seed"],
            },
        )


def _attach_to_registered_version(
    c: Any, tracking_uri: str, mlops: dict[str, Any], files: dict[str, Path]
) -> None:
    """The model documentation also goes to the registered version's source run, and the
    version gets a tag pointing at it (a registry reader finds it from the version)."""
    name, version = mlops.get("registered_model_name"), mlops.get("registered_model_version")
    if not name or version is None:
        return
    source_run = c.get_model_version(name, str(version)).run_id
    if not source_run:
        return
    for key in ("model_documentation.md", "model_documentation.html"):
        if key in files:
            tracking.log_file(c, source_run, files[key], "model_documentation")
    c.set_model_version_tag(
        name,
        str(version),
        "mpm.model_documentation",
        f"runs:/{source_run}/model_documentation/model_documentation.md",
    )


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


def _settle_champion(
    tracking_uri: str,
    parent: str,
    req: ProjectRequirements,
    mlops: dict[str, Any],
    validation: dict[str, Any],
    governance: dict[str, Any] | None,
    accepted: list[Any],
) -> None:
    """The registered version is the ``champion`` only if the run's final governance
    passed (tools/registry_entry.py); registration happened before the last stages."""
    from mpm.tools.registry_entry import measured_criterion, settle_champion

    _score, met = measured_criterion(req.model_dump(mode="json"), validation)
    settle_champion(
        tracking_uri,
        mlops["registered_model_name"],
        mlops["registered_model_version"],
        governance_status=str((governance or {}).get("overall_status") or "unknown"),
        criteria_met=met,
        accepted_risks=[str(a.get("finding_id")) for a in accepted if isinstance(a, dict)],
        target_metric=req.target_metric,
        parent_run_id=parent,
    )


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
