"""What the graph keeps of a governance report, and which questions go to a person now.

The full ``GovernanceReport`` (every check, every evidence value) goes to files and
MLflow; the graph state keeps a compact view: enough to route (approval states, gates),
to brief the agents (evidence each stage is expected to record) and to show status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mpm.governance import GovernanceContext, GovernanceReport

ASK_STATUSES = {"success", "failed_with_fallback", "failed"}


def _stage_of_path(path: str) -> str | None:
    """``results.model_validation.evidence.x`` -> ``model_validation``; requirements -> None."""
    parts = path.split(".")
    return parts[1].split("[")[0] if parts[0] == "results" and len(parts) > 1 else None


def expected_evidence(context: GovernanceContext, frameworks: list[str]) -> dict[str, list[str]]:
    """Stage -> the evidence keys the applicable policies read from its ``StageResult``."""
    expected: dict[str, set[str]] = {}
    for fw in frameworks:
        fmap = context.evidence_map.for_framework(fw)
        for entry in (*fmap.answers.values(), *fmap.files.values(), *fmap.metrics.values()):
            for path in entry.source:
                parts = path.split(".")
                stage = _stage_of_path(path)
                if stage and len(parts) > 3 and parts[2] == "evidence":
                    expected.setdefault(stage, set()).add(parts[3])
    return {stage: sorted(keys) for stage, keys in sorted(expected.items())}


def metric_limits(context: GovernanceContext, frameworks: list[str]) -> dict[str, dict[str, Any]]:
    """Metric name -> the strictest threshold an applicable policy states for it
    ``{value, operator, source}``, under the canonical name and every alias: the
    validator compares its fairness figures with these (mpm.tools.fairness)."""
    limits: dict[str, dict[str, Any]] = {}
    for fw in frameworks:
        policy = context.library.get(fw).policy
        for placed in policy.metrics():
            threshold = placed.metric.threshold
            if threshold is None or threshold.operator not in ("<=", "<"):
                continue
            entry = {
                "value": float(threshold.value),
                "operator": str(threshold.operator),
                "source": f"policy {fw} ({placed.evidence_set.name})",
            }
            for name in placed.metric.names:
                known = limits.get(name)
                if known is None or entry["value"] < known["value"]:
                    limits[name] = entry
    return limits


def askable_questions(
    report: GovernanceReport, context: GovernanceContext, state: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Open questions a person should answer now: stage evidence (not an approver's own
    sign-off questions) that no stage can answer — no evidence-map source, or every
    source's stage has already run without answering it."""
    results = state.get("results") or {}
    asked: list[dict[str, Any]] = []
    for fw, questions in report.open_questions.items():
        loaded = context.library.get(fw)
        approval_keys = {p.key for p in loaded.policy.inputs() if p.approval is not None}
        fmap = context.evidence_map.for_framework(fw)
        for q in questions:
            if q.key in approval_keys or q.type == "file":
                continue
            entry = fmap.answers.get(q.alias or "") or fmap.answers.get(q.key)
            if entry is not None and entry.source:
                stages = [_stage_of_path(p) for p in entry.source]
                pending = [
                    s
                    for s in stages
                    if s and (results.get(s) or {}).get("status") not in ASK_STATUSES
                ]
                if pending:
                    continue  # a stage still to run will answer it
            asked.append({"framework": fw, **q.model_dump(mode="json")})
    return asked


def _open_evidence(
    report: GovernanceReport, framework: str, approval_id_: str
) -> list[dict[str, Any]]:
    """The approval's own evidence questions still unanswered: they must be answered (with
    the decision's ``answers`` at the latest) before the approval can be granted."""
    evaluation = report.compliance_status.get(framework)
    for requirement in evaluation.approvals if evaluation else []:
        if requirement.id == approval_id_:
            return [
                {"key": q.key, "alias": q.alias, "label": q.label}
                for q in requirement.questions
                if q.required
            ]
    return []


def granted_approvals(report: GovernanceReport, state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every approval governance counts as granted, with the signer and decision id of the
    accepted audit entries that granted it (several for an all-of approval); the registry
    entry names them."""
    granted = {aid for aid, s in report.approval_states.items() if s == "granted"}
    return [
        {
            "approval_id": entry["approval_id"],
            "approver": entry.get("approver"),
            "decision_id": entry.get("decision_id"),
            "at": entry.get("ts"),
        }
        for entry in state.get("audit") or []
        if entry.get("approval_id") in granted
        and entry.get("accepted")
        and entry.get("decision") == "approve"
    ]


def compact(
    report: GovernanceReport, context: GovernanceContext, state: Mapping[str, Any]
) -> dict[str, Any]:
    workflow = report.approval_workflow
    gates = {}
    for gate in workflow.gates:
        gstate = report.gate_states.get(gate.id, {})
        gates[gate.id] = {
            "name": gate.name,
            "framework": gate.framework,
            "blocks": sorted({a.blocks or a.action for a in gate.actions}),
            "approvals": gate.approvals,
            "state": gstate.get("state", "blocked"),
            "blocked_by": gstate.get("blocked_by", gate.approvals),
        }
    directory = context.library.approvers
    gated_actions = sorted({a for g in gates.values() for a in g["blocks"]})
    guarded = report.fail_closed
    # fail closed: a FAILED framework or an unmet success criterion that no granted risk
    # acceptance covers keeps every guarded action closed, whatever its gates say
    open_actions = [
        a
        for a in gated_actions
        if not guarded.blocked
        and all(g["state"] == "open" for g in gates.values() if a in g["blocks"])
    ]
    from mpm.governance.defaults import execution_mode

    requirements = state.get("requirements") or {}
    mode, mode_reason = execution_mode(
        requirements if isinstance(requirements, Mapping) else {},
        context.workflow.execution_mode,
    )
    fail_closed = guarded.model_dump(mode="json")
    return {
        "overall_status": report.overall_status.value,
        "overall_reason": report.overall_reason,
        "execution_mode": {"mode": mode, "reason": mode_reason},
        "configuration": report.configuration,
        "frameworks": report.frameworks,
        "titles": {fw: report.titles.get(fw, fw) for fw in report.frameworks},
        "applicability": [a.model_dump(mode="json") for a in report.applicability],
        "compliance_status": {
            fw: {
                "status": e.status.value,
                "compliance_score": e.compliance_score,
                "classification": e.classification,
                "failed_checks": [
                    f"{c.label}: {c.reason}" for c in e.checks if c.outcome.value == "failed"
                ],
            }
            for fw, e in report.compliance_status.items()
        },
        "approvals": [
            {
                "id": a.id,
                "framework": a.framework,
                "name": a.name,
                "stage": a.stage,
                "round": a.round,
                "approvers": a.approvers,
                "eligible": sorted(directory.eligible_users(a.approvers)),
                "open_evidence": _open_evidence(report, a.framework, a.id)
                if context.workflow.approval_evidence == "required"
                else [],
                "group_rule": context.workflow.group_rule_of(a.id, a.approvers),
                "parallel": a.parallel,
                "waits_for": a.waits_for,
                "gates": a.gates,
                "state": report.approval_states.get(a.id, "waiting"),
                "kind": a.kind,
                **({"finding": a.finding} if a.finding else {}),
            }
            for a in workflow.approvals
        ],
        "gates": gates,
        "findings": [
            {"framework": f.framework, "severity": f.severity, "title": f.title, "stage": f.stage}
            for f in report.findings
        ],
        "fail_closed": fail_closed,
        "open_questions": askable_questions(report, context, state),
        "evaluated_at": report.generated_at,
        "context": {
            "frameworks": [report.titles.get(fw, fw) for fw in report.frameworks],
            "overall_status": report.overall_status.value,
            "expected_evidence": expected_evidence(context, report.frameworks),
            "metric_limits": metric_limits(context, report.frameworks),
            "gated_actions": gated_actions,
            "open_actions": open_actions,
            "closed_gates": {
                a: [g["name"] for g in gates.values() if a in g["blocks"] and g["state"] != "open"]
                + (["fail closed: " + r for r in guarded.reasons[:3]] if guarded.blocked else [])
                for a in gated_actions
            },
            "granted_approvals": granted_approvals(report, state),
            "registration": {
                "blocked": guarded.blocked,
                "status": guarded.status,
                "reasons": guarded.reasons,
                "accepted": [
                    {
                        "finding_id": b.finding_id,
                        "evidence_hash": b.evidence_hash,
                        "acceptance_id": b.acceptance_id,
                        "accepted_by": b.accepted_by,
                    }
                    for b in guarded.accepted
                ],
            },
        },
    }
