"""The governance dashboard: one self-contained HTML page for reviewers and sponsors.

Rendered with Jinja2 with autoescaping on for every value, because project names,
evidence answers and reasons come from people and agents: ``<script>`` in a project name
shows up as text, never as markup. The page has no external assets and no JavaScript, so
it can be attached to an MLflow run, mailed, or opened from disk years later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from mpm.governance.assessment import GovernanceReport
from mpm.governance.defaults import STAGE_OF_ACTION

__all__ = [
    "approval_rows",
    "criteria_rows",
    "dashboard_context",
    "render_dashboard",
    "run_link",
    "write_dashboard",
]

_TEMPLATE = "dashboard.html.j2"

_OUTCOME_ICON = {"satisfied": "✓", "failed": "✕", "missing": "…", "not_applicable": "–"}
_STATE_LABEL = {
    "granted": "Granted",
    "ready": "Awaiting decision",
    "waiting": "Waiting",
    "rejected": "Rejected",
    "changes_requested": "Changes requested",
    "not_required": "Not required",
}


@lru_cache(maxsize=1)
def _environment() -> Any:
    """One Jinja2 environment per process: compiling the template once keeps renders fast."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_visible_controls,
    )
    env.filters["pct"] = lambda value: f"{float(value) * 100:.0f}%"
    env.filters["humanize"] = lambda text: str(text).replace("_", " ")
    return env


_CONTROLS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)


def _visible_controls(value: Any) -> Any:
    """Autoescaping stops markup; this stops control characters: a NUL, a terminal escape
    or a bidirectional override (``\\u202e``) in a project name is shown as ``\\uNNNN``
    instead of breaking the page or making its text read differently from what it is."""
    if isinstance(value, str) and _CONTROLS.search(value):
        from markupsafe import Markup

        shown = _CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
        return Markup(shown) if isinstance(value, Markup) else shown
    return value


def _short(value: Any, limit: int = 120) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, Mapping):
        text = ", ".join(f"{k}: {v}" for k, v in value.items())
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_link(runs: Mapping[str, Any], run_id: str | None) -> str | None:
    """The MLflow UI address of ``run_id`` when the tracking store is a server; None for a
    local store (no address a browser could open; the run id is shown instead)."""
    uri = str(runs.get("tracking_uri") or "")
    experiment = runs.get("experiment_id")
    if not run_id or not experiment or not re.match(r"^https?://", uri):
        return None
    return f"{uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"


def _stage_of_source(source: str | None) -> str | None:
    """``results.model_validation.metrics.test_roc_auc`` -> ``model_validation``."""
    parts = (source or "").split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "results" else None


def success_criterion_row(criterion: Any, stage: str, run_id: str | None) -> dict[str, Any]:
    """The project's own success criterion as a criteria row (score vs threshold)."""
    return {
        "criterion": "Project success criterion",
        "framework": "requirements",
        "metric": f"test {criterion.metric}",
        "threshold": f"{'<=' if criterion.lower_is_better else '>='} {criterion.threshold:g}",
        "value": criterion.value,
        "met": criterion.met,
        "stage": stage,
        "run_id": run_id,
    }


def criteria_rows(report: GovernanceReport) -> list[dict[str, Any]]:
    """Score vs threshold for every success criterion: the project's own (requirements'
    target metric and threshold, as fail-closed recomputed it) and each policy metric that
    has a threshold; with the stage and MLflow run the value was tracked in."""
    runs = report.runs
    stages = runs.get("stages") or {}
    rows: list[dict[str, Any]] = []
    criterion = report.fail_closed.criterion
    if criterion is not None:
        stage = _stage_of_source(criterion.source) or "model_validation"
        rows.append(success_criterion_row(criterion, stage, stages.get(stage)))
    for framework in report.frameworks:
        for check in report.compliance_status[framework].checks:
            if check.kind.value != "metric" or check.threshold is None:
                continue
            if check.outcome.value == "not_applicable":  # hidden by the policy's rules
                continue
            stage = _stage_of_source(check.source)
            value = check.value if isinstance(check.value, int | float) else None
            rows.append(
                {
                    "criterion": check.label,
                    "framework": report.titles.get(framework, framework),
                    "metric": check.key.split(":")[-1],
                    "threshold": check.threshold,
                    "value": value,
                    "met": {"satisfied": True, "failed": False}.get(check.outcome.value),
                    "stage": stage,
                    "run_id": stages.get(stage) if stage else None,
                }
            )
    for row in rows:
        row["link"] = run_link(runs, row["run_id"])
    return rows


def approval_rows(report: GovernanceReport) -> list[dict[str, Any]]:
    """Every standing decision with who, when, comment and signature ids, from the
    report's ``decisions`` (derived from verified signed audit entries, never the
    approvals map); named by the approval it decides."""
    names = {a.id: a.name for a in report.approval_workflow.approvals}
    return [
        {
            "approval_id": d.get("approval_id"),
            "approval": names.get(str(d.get("approval_id")), d.get("approval_id")),
            "decision": d.get("decision"),
            "approver": d.get("approver"),
            "decided_at": d.get("decided_at"),
            "comment": d.get("comment") or "",
            "decision_id": d.get("decision_id"),
            "key_fingerprint": d.get("key_fingerprint"),
        }
        for d in report.decisions
    ]


def dashboard_context(report: GovernanceReport) -> dict[str, Any]:
    """The values the template shows, computed once so the template stays declarative."""
    workflow = report.approval_workflow
    states = report.approval_states
    by_id = {a.id: a for a in workflow.approvals}
    rounds = []
    for round_name in workflow.rounds:
        items = [a for a in workflow.approvals if a.round == round_name]
        if items:
            rounds.append({"name": round_name, "approvals": items})
    frameworks = []
    for framework in report.frameworks:
        evaluation = report.compliance_status[framework]
        checks = [
            {
                "icon": _OUTCOME_ICON[c.outcome.value],
                "outcome": c.outcome.value,
                "label": c.label,
                "stage": c.stage,
                "reason": c.reason,
                "value": _short(c.value),
                "counted": c.counted,
                "kind": c.kind.value,
            }
            for c in evaluation.checks
        ]
        granted = sum(1 for a in evaluation.approvals if a.state.value == "granted")
        needed = sum(1 for a in evaluation.approvals if a.state.value != "not_required")
        frameworks.append(
            {
                "id": framework,
                "title": report.titles.get(framework, framework),
                "evaluation": evaluation,
                "checks": checks,
                "approvals_granted": granted,
                "approvals_needed": needed,
            }
        )
    gates = []
    for gate in workflow.gates:
        state = report.gate_states.get(gate.id, {"state": "blocked", "blocked_by": gate.approvals})
        gates.append(
            {
                "gate": gate,
                "state": state["state"],
                "approvals": [
                    {
                        "name": by_id[a].name,
                        "state": states.get(a, "waiting"),
                        "approvers": by_id[a].approvers,
                    }
                    for a in gate.approvals
                ],
                # the action and the plan stage it holds: "deploy_endpoint (deployment stage)"
                "blocks": sorted({_held_step(a.blocks or a.action) for a in gate.actions}),
            }
        )
    sections: dict[str, list[Any]] = {}
    for group in report.approver_groups:
        sections.setdefault(group.section or "Other", []).append(group)
    required = set(workflow.required_approvers)
    severity_order = {"High": 0, "Medium": 1, "Low": 2}
    findings = sorted(
        report.findings, key=lambda f: (severity_order.get(f.severity, 3), f.framework)
    )
    counts = {
        "frameworks": len(report.frameworks),
        "considered": len(report.applicability),
        "average": (
            sum(report.compliance_status[f].compliance_score for f in report.frameworks)
            / len(report.frameworks)
            if report.frameworks
            else 1.0
        ),
        "findings_high": sum(1 for f in report.findings if f.severity == "High"),
        "findings": len(report.findings),
        "granted": sum(1 for s in states.values() if s == "granted"),
        "required": sum(1 for s in states.values() if s != "not_required"),
        "ready": sum(1 for s in states.values() if s == "ready"),
        "gates_open": sum(1 for g in gates if g["state"] == "open"),
        "gates": len(gates),
        "questions": sum(len(q) for q in report.open_questions.values()),
    }
    return {
        "report": report,
        "counts": counts,
        "frameworks": frameworks,
        "rounds": rounds,
        "states": states,
        "state_label": _STATE_LABEL,
        "gates": gates,
        "findings": findings,
        "sections": sections,
        "required_groups": required,
        "approval_stages": workflow.approval_stages,
        "titles": report.titles,
        "fail_closed": report.fail_closed,
        "criteria": criteria_rows(report),
        "decisions": approval_rows(report),
        "runs": report.runs,
        "parent_link": run_link(report.runs, report.runs.get("parent_run_id")),
    }


def render_dashboard(report: GovernanceReport) -> str:
    """The dashboard HTML for ``report`` (a complete, self-contained document)."""
    return _environment().get_template(_TEMPLATE).render(**dashboard_context(report))


def write_dashboard(report: GovernanceReport, path: str | Path) -> Path:
    """Render the dashboard to ``path`` (parents created); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_dashboard(report), encoding="utf-8")
    return target


def _held_step(action: str) -> str:
    stage = STAGE_OF_ACTION.get(action)
    return f"{action} ({stage} stage)" if stage else action
