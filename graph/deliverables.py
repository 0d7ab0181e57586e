"""Validation of the deliverables against the requirements (the seed's
``validate_against_requirements``): which promises the run kept, each with its evidence."""

from __future__ import annotations

from typing import Any

from mpm.graph import guard
from mpm.graph.state import ExecutionPlan, ProjectRequirements


def validate_deliverables(
    req: ProjectRequirements,
    plan: ExecutionPlan,
    results: dict[str, dict[str, Any]],
    governance: dict[str, Any] | None,
) -> dict[str, Any]:
    checks: dict[str, dict[str, Any]] = {}
    failures = guard.critical_failures(plan, results)
    missing = [s for s in plan.stage_names if s not in results]
    checks["critical_stages_completed"] = {
        "passed": not failures and not missing,
        "detail": "all critical stages finished"
        if not failures and not missing
        else f"failed: {', '.join(failures) or '-'}; not run: {', '.join(missing) or '-'}",
    }
    validation = results.get("model_validation") or {}
    if "model_validation" in plan.stage_names:
        outputs = validation.get("outputs") or {}
        meets = bool(outputs.get("meets_threshold"))
        checks["success_threshold_met"] = {
            "passed": meets,
            "detail": f"test {req.target_metric}={outputs.get('test_score')} vs threshold {req.success_threshold}"
            if outputs
            else "no validation result",
        }
        # leakage and failed data-quality gates: named findings that fail validation even
        # when the score clears the threshold (a finding accepted through a signed risk
        # acceptance is governance's to honour, not this check's)
        blocking = outputs.get("blocking_findings") or []
        checks["validation_findings_clear"] = {
            "passed": bool(outputs) and not blocking,
            "detail": "no blocking validation findings"
            if outputs and not blocking
            else "; ".join(f"{f.get('id')}: {f.get('reason')}" for f in blocking)
            if blocking
            else "no validation result",
        }
    if "mlops" in plan.stage_names:
        outputs = (results.get("mlops") or {}).get("outputs") or {}
        checks["model_registered"] = {
            "passed": bool(outputs.get("model_uri")),
            "detail": f"{outputs.get('registered_model_name')} v{outputs.get('registered_model_version')}"
            if outputs.get("model_uri")
            else "no registered model",
        }
    if governance:
        outstanding = [
            a["id"]
            for a in governance.get("approvals") or []
            if a["state"] not in {"granted", "not_required"}
        ]
        checks["approvals_granted"] = {
            "passed": not outstanding,
            "detail": "every required approval granted"
            if not outstanding
            else f"outstanding: {', '.join(outstanding)}",
        }
        status = governance.get("overall_status", "ERROR")
        checks["governance_not_failed"] = {
            "passed": status not in {"FAILED", "ERROR"},
            "detail": f"governance status {status}",
        }
    fallbacks = [n for n, r in results.items() if r.get("status") == "failed_with_fallback"]
    return {
        "passed": all(c["passed"] for c in checks.values()),
        "checks": checks,
        "stages_with_fallback": fallbacks,
    }
