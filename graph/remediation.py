"""The supervisor's bounded remediation loop: when validation misses the success criterion,
send model development (and what depends on it) back for another attempt, within the
budget the requirements set.

Pure functions over the graph state; the supervisor merges what they return into its
``Command``. Every attempt is written to ``remediation_attempts`` twice: when it starts
(``status: running``, with the strategy and why it was chosen) and when its validation
has finished (scores, MLflow run ids, minutes). Both writes are part of a supervisor
step, so they are checkpointed with it: a run killed mid-attempt resumes the attempt's
pending stages (their MLflow runs are found again by key) and settles it once; it never
starts the same attempt twice nor forgets one.

What the loop never does: start while the criterion is met (a project that meets it at
once spends nothing), choose a model or a setting from the test score (the strategies
decide on cross-validation, ``tools/remediation.py``), or register anything itself --
registration stays behind fail-closed governance.
"""

from __future__ import annotations

from typing import Any

from mpm.governance.fail_closed import success_criterion
from mpm.graph import guard
from mpm.graph.events import event
from mpm.graph.state import ExecutionPlan, GraphState, PlanRevision, RemediationBudget, now_iso

DEV = "model_development"
VAL = "model_validation"
DECIDED = {"approve", "reject", "request_changes"}
_ML_TYPES = {"classification", "regression"}


def budget(requirements: dict[str, Any]) -> RemediationBudget:
    """The requirements' budget (defaults for a thread started before the field existed)."""
    return RemediationBudget.model_validate(requirements.get("remediation") or {})


def running_attempt(state: GraphState) -> dict[str, Any] | None:
    attempts = state.get("remediation_attempts") or []
    return attempts[-1] if attempts and attempts[-1].get("status") == "running" else None


def minutes_used(attempts: list[dict[str, Any]]) -> float:
    return round(sum(float(a.get("minutes") or 0.0) for a in attempts), 3)


def brief(attempt: dict[str, Any]) -> dict[str, Any]:
    """What a stage of the attempt is told (the Send payload's ``remediation``)."""
    keys = ("attempt", "strategy", "strategies", "why", "drop_columns")
    return {k: attempt.get(k) for k in keys}


def _scores(state: GraphState) -> dict[str, Any]:
    """The current model's numbers: cross-validated (selection) and test (validator)."""
    results = state.get("results") or {}
    dev = results.get(DEV) or {}
    val = results.get(VAL) or {}
    d, v = dev.get("outputs") or {}, val.get("outputs") or {}
    return {
        "best_model_name": d.get("best_model_name"),
        "cv_score": d.get("best_model_score"),
        "decision_threshold": d.get("decision_threshold"),
        "test_score": v.get("test_score"),
        "validation_passed": v.get("validation_passed"),
        "model_run_id": d.get("best_model_run_id"),
        "development_run_id": dev.get("mlflow_run_id"),
        "validation_run_id": val.get("mlflow_run_id"),
    }


def settle(state: GraphState) -> dict[str, Any]:
    """The update recording the running attempt's outcome once its validation finished
    (or its training failed); ``{}`` while it is still under way or none is running."""
    current = running_attempt(state)
    if current is None:
        return {}
    results = state.get("results") or {}
    dev, val = results.get(DEV) or {}, results.get(VAL) or {}
    if dev.get("status") == "failed":
        status = "failed"
    elif val.get("status") in guard.FINISHED:
        criterion = success_criterion(state["requirements"], results)
        status = "met" if criterion is not None and criterion.met else "unmet"
    elif val.get("status") == "failed":
        status = "failed"
    else:
        return {}
    done = {
        **current,
        "status": status,
        "after": _scores(state),
        "minutes": round(
            (float(dev.get("duration_s") or 0.0) + float(val.get("duration_s") or 0.0)) / 60, 3
        ),
        "finished_at": now_iso(),
        "error": dev.get("error") if status == "failed" else None,
    }
    attempts = [*(state.get("remediation_attempts") or [])[:-1], done]
    metric = state["requirements"]["target_metric"]
    before, after = current["before"].get("test_score"), done["after"].get("test_score")
    update: dict[str, Any] = {
        "remediation_attempts": attempts,
        "events": [
            event(
                "supervisor",
                "remediation_finished",
                f"attempt {done['attempt']} ({done['strategy']}): test {metric} "
                f"{_fmt(before)} -> {_fmt(after)}; criterion {status}",
                attempt=done["attempt"],
            )
        ],
    }
    if status == "met":
        update["remediation"] = _summary(
            state, attempts, f"criterion met after attempt {done['attempt']}"
        )
    return update


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "not measured"


def _summary(state: GraphState, attempts: list[dict[str, Any]], stopped: str) -> dict[str, Any]:
    return {
        "budget": budget(state["requirements"]).model_dump(),
        "attempts_used": len(attempts),
        "minutes_used": minutes_used(attempts),
        "stopped": stopped,
    }


def next_attempt(state: GraphState, plan: ExecutionPlan) -> dict[str, Any] | None:
    """The update that starts the next attempt, or one that records why none starts, or
    None when the loop has nothing to do (criterion met, not measured yet, no ML model).

    An update that starts an attempt has ``start: True`` removed by the caller; it resets
    model development and its dependents to ``revision_requested``, gives each a new
    revision (its own MLflow run), supersedes decisions that reviewed the old model,
    appends the attempt and a plan revision."""
    req = state["requirements"]
    if str(req.get("model_type")) not in _ML_TYPES or running_attempt(state) is not None:
        return None
    if DEV not in plan.stage_names or VAL not in plan.stage_names:
        return None
    results = state.get("results") or {}
    if any((results.get(s) or {}).get("status") not in guard.FINISHED for s in (DEV, VAL)):
        return None
    criterion = success_criterion(req, results)
    if criterion is None or criterion.value is None or criterion.met:
        return None
    attempts = list(state.get("remediation_attempts") or [])
    limits = budget(req)
    used_minutes = minutes_used(attempts)
    choice = None
    if limits.max_attempts == 0:
        stop = "remediation disabled (max_attempts: 0)"
    elif len(attempts) >= limits.max_attempts:
        stop = f"attempt budget spent ({len(attempts)} of {limits.max_attempts})"
    elif used_minutes >= limits.max_minutes:
        stop = f"time budget spent ({used_minutes:.1f} of {limits.max_minutes:g} minutes)"
    else:
        from mpm.tools.remediation import choose_strategy

        used = [a["strategy"] for a in attempts]
        choice = choose_strategy(
            req,
            (results.get(DEV) or {}).get("outputs") or {},
            (results.get(VAL) or {}).get("outputs") or {},
            used,
        )
        stop = "no remediation strategy left to try" if choice is None else ""
    if choice is None:
        summary = _summary(state, attempts, stop)
        if state.get("remediation") == summary:
            return None
        return {
            "remediation": summary,
            "events": [event("supervisor", "remediation_stopped", f"{criterion.text}: {stop}")],
        }
    return _start(state, plan, attempts, choice)


def _start(
    state: GraphState,
    plan: ExecutionPlan,
    attempts: list[dict[str, Any]],
    choice: dict[str, Any],
) -> dict[str, Any]:
    results = state.get("results") or {}
    revisions = state.get("revisions") or {}
    number = len(attempts) + 1
    strategies = [*(attempts[-1]["strategies"] if attempts else []), choice["strategy"]]
    drops = [
        *(attempts[-1].get("drop_columns") or [] if attempts else []),
        *(choice.get("drop_columns") or []),
    ]
    affected = guard.dependents(plan, DEV)
    reason = f"remediation attempt {number}: {choice['strategy']}: {choice['why']}"
    new_revisions = {}
    for stage in affected:
        count = int((revisions.get(stage) or {}).get("count", 0)) + 1
        new_revisions[stage] = {
            "count": count,
            "comment": reason if stage == DEV else f"re-run for remediation attempt {number}",
        }
    attempt = {
        "attempt": number,
        "strategy": choice["strategy"],
        "strategies": strategies,
        "why": choice["why"],
        "drop_columns": list(dict.fromkeys(drops)),
        "status": "running",
        "revision": new_revisions[DEV]["count"],
        "before": _scores(state),
        "started_at": now_iso(),
    }
    by_id = {a["id"]: a for a in (state.get("governance") or {}).get("approvals") or []}
    superseded = {
        k: {**d, "decision": "superseded", "superseded_by": f"remediation-{number}"}
        for k, d in (state.get("approvals") or {}).items()
        if d.get("decision") in DECIDED and by_id.get(k, {}).get("round") in affected
    }
    plan_data = dict(state["plan"])
    revision = PlanRevision(
        revision=len(plan_data.get("revisions") or []) + 1,
        reason=reason,
        stages=affected,
        remediation_attempt=number,
        at=attempt["started_at"],
    )
    plan_data["revisions"] = [*(plan_data.get("revisions") or []), revision.model_dump()]
    return {
        "start": True,
        "plan": plan_data,
        "results": {
            s: {**results[s], "status": "revision_requested"} for s in affected if s in results
        },
        "revisions": new_revisions,
        "approvals": superseded,
        "remediation_attempts": [*attempts, attempt],
        "events": [
            event(
                "supervisor",
                "remediation_started",
                reason[:2000],
                attempt=number,
                strategy=choice["strategy"],
                stages=affected,
            )
        ],
    }
