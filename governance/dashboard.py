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

__all__ = ["dashboard_context", "render_dashboard", "write_dashboard"]

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
