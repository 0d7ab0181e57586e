"""mpm's Domino Governance policy engine: a plain library (no LangGraph) you can use anywhere.

Part A -- reading policies: :func:`load_policy` / :class:`PolicyLibrary` turn Domino policy
YAML and Approvers.md into validated models (:mod:`governance.policy`), with rules
compiled by :mod:`governance.rules`. The evidence-key convention is documented in
:mod:`governance.policy`.
"""

from mpm.governance.approvers import ApproverDirectory, ApproverGroup, ApproversFileError
from mpm.governance.library import PolicyLibrary, PolicyLibraryError, UnknownApprover
from mpm.governance.loader import LoadedPolicy, PolicyError, PolicyIssue, load_policy, parse_policy
from mpm.governance.policy import (
    Approval,
    Approver,
    Classification,
    EvidenceSet,
    Gate,
    InputArtifact,
    Metric,
    Policy,
    Stage,
    Threshold,
)
from mpm.governance.rules import (
    Rule,
    RuleEvaluationError,
    RuleSyntaxError,
    Visibility,
    compile_rule,
    compile_visibility,
)

__all__ = [
    "Approval",
    "Approver",
    "ApproverDirectory",
    "ApproverGroup",
    "ApproversFileError",
    "Classification",
    "EvidenceSet",
    "Gate",
    "InputArtifact",
    "LoadedPolicy",
    "Metric",
    "Policy",
    "PolicyError",
    "PolicyIssue",
    "PolicyLibrary",
    "PolicyLibraryError",
    "Rule",
    "RuleEvaluationError",
    "RuleSyntaxError",
    "Stage",
    "Threshold",
    "UnknownApprover",
    "Visibility",
    "compile_rule",
    "compile_visibility",
    "load_policy",
    "parse_policy",
]

# --- part B exports (evaluation, applicability, workflow, dashboard) go below this line ---

# Part B -- applying policies to a project: which frameworks apply
# (:mod:`governance.applicability`), where the answers come from (:mod:`governance.evidence_map`),
# how a policy is evaluated (:mod:`governance.evaluation`), the merged approval workflow
# (:mod:`governance.workflow`), everything at once (:mod:`governance.assessment`) and the HTML
# dashboard (:mod:`governance.dashboard`).
from mpm.governance.applicability import (  # noqa: E402
    Applicability,
    ApplicabilityRules,
    ApplicabilityRulesError,
    applicable_frameworks,
    determine_applicability,
    load_applicability_rules,
)
from mpm.governance.assessment import (  # noqa: E402
    GovernanceContext,
    GovernanceReport,
    assess_project,
    load_governance_context,
)
from mpm.governance.dashboard import render_dashboard, write_dashboard  # noqa: E402
from mpm.governance.evaluation import (  # noqa: E402
    ApprovalRequirement,
    CheckResult,
    EvaluationStatus,
    Finding,
    FrameworkEvaluation,
    OpenQuestion,
    Outcome,
    approval_id,
    evaluate_policy,
)
from mpm.governance.evidence import EvidenceBundle  # noqa: E402
from mpm.governance.evidence_map import (  # noqa: E402
    EvidenceMap,
    EvidenceMapError,
    load_evidence_map,
    resolve_evidence,
)
from mpm.governance.workflow import (  # noqa: E402
    ApprovalWorkflow,
    WorkflowApproval,
    WorkflowConfig,
    WorkflowConfigError,
    approval_states,
    build_workflow,
    gate_states,
    gates_for_action,
    load_workflow_config,
    ready,
)

__all__ += [
    "Applicability",
    "ApplicabilityRules",
    "ApplicabilityRulesError",
    "ApprovalRequirement",
    "ApprovalWorkflow",
    "CheckResult",
    "EvaluationStatus",
    "EvidenceBundle",
    "EvidenceMap",
    "EvidenceMapError",
    "Finding",
    "FrameworkEvaluation",
    "GovernanceContext",
    "GovernanceReport",
    "OpenQuestion",
    "Outcome",
    "WorkflowApproval",
    "WorkflowConfig",
    "WorkflowConfigError",
    "applicable_frameworks",
    "approval_id",
    "approval_states",
    "assess_project",
    "build_workflow",
    "determine_applicability",
    "evaluate_policy",
    "gate_states",
    "gates_for_action",
    "load_applicability_rules",
    "load_evidence_map",
    "load_governance_context",
    "load_workflow_config",
    "ready",
    "render_dashboard",
    "resolve_evidence",
    "write_dashboard",
]
