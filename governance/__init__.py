"""mpm's Domino Governance policy engine: a plain library (no LangGraph) you can use anywhere.

Part A -- reading policies: :func:`load_policy` / :class:`PolicyLibrary` turn Domino policy
YAML and Approvers.md into validated models (:mod:`governance.policy`), with rules
compiled by :mod:`governance.rules`. The evidence-key convention is documented in
:mod:`governance.policy`.

Part B -- applying policies to a project: which frameworks apply
(:mod:`governance.applicability`), where the answers come from (:mod:`governance.evidence_map`),
how a policy is evaluated (:mod:`governance.evaluation`), the merged approval workflow
(:mod:`governance.workflow`), everything at once (:mod:`governance.assessment`) and the HTML
dashboard (:mod:`governance.dashboard`).

The names below are imported on first use (PEP 562): ``from mpm.governance import X`` works
as ever, but a command that needs only the approvers directory or the signature check
(a refused ``mpm approve``) no longer pays for importing the rule compiler, the evaluator
and the dashboard.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ApproverDirectory": "approvers",
    "ApproverGroup": "approvers",
    "ApproversFileError": "approvers",
    "PolicyLibrary": "library",
    "PolicyLibraryError": "library",
    "UnknownApprover": "library",
    "LoadedPolicy": "loader",
    "PolicyError": "loader",
    "PolicyIssue": "loader",
    "load_policy": "loader",
    "parse_policy": "loader",
    "Approval": "policy",
    "Approver": "policy",
    "Classification": "policy",
    "EvidenceSet": "policy",
    "Gate": "policy",
    "InputArtifact": "policy",
    "Metric": "policy",
    "Policy": "policy",
    "Stage": "policy",
    "Threshold": "policy",
    "Rule": "rules",
    "RuleEvaluationError": "rules",
    "RuleSyntaxError": "rules",
    "Visibility": "rules",
    "compile_rule": "rules",
    "compile_visibility": "rules",
    "Applicability": "applicability",
    "ApplicabilityRules": "applicability",
    "ApplicabilityRulesError": "applicability",
    "applicable_frameworks": "applicability",
    "determine_applicability": "applicability",
    "load_applicability_rules": "applicability",
    "GovernanceContext": "assessment",
    "GovernanceReport": "assessment",
    "assess_project": "assessment",
    "load_governance_context": "assessment",
    "render_dashboard": "dashboard",
    "write_dashboard": "dashboard",
    "ApprovalRequirement": "evaluation",
    "CheckResult": "evaluation",
    "EvaluationStatus": "evaluation",
    "Finding": "evaluation",
    "FrameworkEvaluation": "evaluation",
    "OpenQuestion": "evaluation",
    "Outcome": "evaluation",
    "approval_id": "evaluation",
    "evaluate_policy": "evaluation",
    "EvidenceBundle": "evidence",
    "EvidenceMap": "evidence_map",
    "EvidenceMapError": "evidence_map",
    "load_evidence_map": "evidence_map",
    "resolve_evidence": "evidence_map",
    "ApprovalWorkflow": "workflow",
    "WorkflowApproval": "workflow",
    "WorkflowConfig": "workflow",
    "WorkflowConfigError": "workflow",
    "approval_states": "workflow",
    "build_workflow": "workflow",
    "gate_states": "workflow",
    "gates_for_action": "workflow",
    "load_workflow_config": "workflow",
    "ready": "workflow",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mpm.governance' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mpm.governance.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
