"""Governance for a whole project in one call: applicability, evidence, evaluation, workflow.

This is what the graph's governance node needs (and what a notebook user wants): given the
project state -- requirements, stage results, human answers, approval decisions -- decide
which frameworks apply, collect their evidence from the state, evaluate each policy, merge
the approvals into one workflow and say where every gate stands. The result has the shape
of the seed orchestrator's ``governance_results`` (``frameworks``, ``compliance_status``,
``approval_workflow``, ``overall_status``) with every decision explained.

Overall status: ``FAILED`` if any framework failed, else ``REQUIRES_REVIEW`` if any
framework requires review, else ``PASSED`` (also when no framework applies).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mpm.governance._files import reference_dir
from mpm.governance.applicability import (
    Applicability,
    ApplicabilityRules,
    determine_applicability,
)
from mpm.governance.config import ConfigNote, load_directory
from mpm.governance.decisions import derive_decisions
from mpm.governance.evaluation import (
    EvaluationStatus,
    Finding,
    FrameworkEvaluation,
    OpenQuestion,
    approval_id,
    evaluate_policy,
)
from mpm.governance.evidence import EvidenceBundle
from mpm.governance.evidence_map import EvidenceMap, resolve_evidence
from mpm.governance.fail_closed import FailClosed, fail_closed, find_blockers
from mpm.governance.identity import IdentityDirectory, unresolved_names
from mpm.governance.library import PolicyLibrary
from mpm.governance.workflow import (
    ApprovalWorkflow,
    WorkflowConfig,
    add_risk_acceptances,
    approval_states,
    build_workflow,
    gate_states,
)

__all__ = [
    "ApproverGroupView",
    "GovernanceContext",
    "GovernanceReport",
    "assess_project",
    "load_governance_context",
]


@dataclass(frozen=True)
class GovernanceContext:
    """Everything read from a governance directory: policies, approvers, identities, configs."""

    library: PolicyLibrary
    rules: ApplicabilityRules
    evidence_map: EvidenceMap
    workflow: WorkflowConfig
    notes: tuple[ConfigNote, ...] = ()
    identity: IdentityDirectory = field(default_factory=IdentityDirectory)

    @classmethod
    def load(
        cls, directory: str | Path | None = None, identity: str | Path | None = None
    ) -> GovernanceContext:
        """Load a governance directory (default: the reference one) and its identity
        directory (default ``<directory>/identity``); errors name the file.

        The same path as ``mpm policies validate`` (:func:`governance.config.load_directory`):
        optional configuration files that are absent take their documented defaults. A name
        a policy uses as approver that is neither a group (Approvers.md or the identity
        directory's members.yaml) nor a member id anywhere fails the load: nobody could ever
        be verified as that approver, so the approval could never be granted."""
        folder = Path(directory) if directory is not None else reference_dir()
        loaded = load_directory(folder)
        library = loaded.library
        people = IdentityDirectory.load(Path(identity) if identity else folder / "identity")
        library.approvers = library.approvers.merged(people)
        unknown = unresolved_names(
            {u.name for u in library.unknown_approvers()}, library.approvers, people
        )
        if unknown:
            first = next(u for u in library.unknown_approvers() if u.name == unknown[0])
            raise ValueError(
                f"{first.policy}: approver {first.name!r} resolves to no group or member "
                "(Approvers.md, identity members.yaml or allowed_signers)"
            )
        return cls(
            library=library,
            rules=loaded.rules,
            evidence_map=loaded.evidence_map,
            workflow=loaded.workflow,
            notes=tuple(loaded.notes),
            identity=people,
        )


@lru_cache(maxsize=8)
def _cached_context(directory: str) -> GovernanceContext:
    return GovernanceContext.load(directory)


def load_governance_context(directory: str | Path | None = None) -> GovernanceContext:
    """:meth:`GovernanceContext.load`, cached per directory for repeated graph steps."""
    folder = Path(directory) if directory is not None else reference_dir()
    return _cached_context(str(folder.resolve()))


class ApproverGroupView(BaseModel):
    name: str
    section: str
    members: list[str]


class GovernanceReport(BaseModel):
    """The governance picture of one project at one moment; JSON-serialisable."""

    project_name: str = ""
    generated_at: str
    overall_status: EvaluationStatus
    overall_reason: str = ""
    frameworks: list[str] = Field(description="applicable framework ids, in rule order")
    titles: dict[str, str] = Field(
        default_factory=dict, description="framework id -> title (whole library)"
    )
    applicability: list[Applicability]
    compliance_status: dict[str, FrameworkEvaluation]
    approval_workflow: ApprovalWorkflow
    approval_states: dict[str, str]
    gate_states: dict[str, dict[str, Any]]
    findings: list[Finding] = Field(default_factory=list)
    open_questions: dict[str, list[OpenQuestion]] = Field(default_factory=dict)
    evidence: dict[str, EvidenceBundle] = Field(default_factory=dict)
    approver_groups: list[ApproverGroupView] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    configuration: list[dict[str, Any]] = Field(
        default_factory=list,
        description="how each aspect was decided: configured in a file or by default, and why",
    )
    fail_closed: FailClosed = Field(
        default_factory=lambda: FailClosed(blocked=False),
        description="whether the guarded actions (registration) are refused, and why",
    )
    decisions: list[dict[str, Any]] = Field(
        default_factory=list,
        description="the standing decisions, from verified signed audit entries only: approval "
        "id, decision, approver, comment, decided_at, decision_id, key_fingerprint",
    )
    runs: dict[str, Any] = Field(
        default_factory=dict,
        description="MLflow ids the report links to: tracking_uri, experiment_id, parent_run_id "
        "and stage -> run id (from the project state; empty without tracking)",
    )


def _requirements(project_state: Mapping[str, Any]) -> Mapping[str, Any]:
    requirements = project_state.get("requirements")
    if isinstance(requirements, BaseModel):
        return requirements.model_dump(mode="json")
    if not isinstance(requirements, Mapping):
        raise ValueError("project_state.requirements: expected the project requirements mapping")
    return requirements


def _verified_decisions(
    project_state: Mapping[str, Any],
    context: GovernanceContext,
    frameworks: list[str],
    requirements: Mapping[str, Any],
    extra: Mapping[str, list[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Approval id -> standing decision, from the signed audit entries alone (``extra``:
    more approval ids and their groups, e.g. risk acceptances)."""
    groups = {
        approval_id(f, a.name): list(a.approver_names)
        for f in frameworks
        for _, a in context.library.get(f).policy.approvals()
    }
    groups = dict(extra) if extra is not None else groups
    return derive_decisions(
        project_state.get("audit") or [],
        thread_id=project_state.get("thread_id"),
        approvals=groups,
        directory=context.library.approvers,
        identity=context.identity,
        requested_by=requirements.get("requested_by"),
        separation_of_duties=context.workflow.separation_of_duties,
        revoked=project_state.get("approvals") or {},
        all_of={a for a, g in groups.items() if context.workflow.group_rule_of(a, g) == "all_of"},
    )


def assess_project(
    project_state: Mapping[str, Any],
    *,
    context: GovernanceContext | None = None,
    now: dt.datetime | None = None,
) -> GovernanceReport:
    """Evaluate every applicable framework for ``project_state`` and merge the approvals.

    ``project_state`` is the graph state or any mapping with ``requirements`` (required),
    ``results``, ``human_answers``, ``thread_id`` and ``audit`` (the signed decision trail).
    Which approvals stand is derived from ``audit`` entries whose signatures verify now
    (:func:`~mpm.governance.decisions.derive_decisions`); an ``approvals`` map grants
    nothing (it can only mark a decision superseded).
    """
    context = context if context is not None else load_governance_context()
    requirements = _requirements(project_state)
    applicability = determine_applicability(requirements, context.rules)
    warnings: list[str] = []
    frameworks: list[str] = []
    for decision in applicability:
        if not decision.applies:
            continue
        if decision.framework not in context.library:
            warnings.append(
                f"framework {decision.framework!r} applies but the policy library has no policy for it"
            )
            continue
        frameworks.append(decision.framework)

    decisions = _verified_decisions(project_state, context, frameworks, requirements)
    evaluations: dict[str, FrameworkEvaluation] = {}
    evidence: dict[str, EvidenceBundle] = {}
    titles = {loaded.framework: loaded.title for loaded in context.library}
    for framework in frameworks:
        loaded = context.library.get(framework)
        bundle = resolve_evidence(context.evidence_map, framework, project_state)
        evidence[framework] = bundle
        evaluations[framework] = evaluate_policy(
            loaded.policy, bundle, framework=framework, title=loaded.title, approvals=decisions
        )

    workflow = build_workflow(
        {f: context.library.get(f) for f in frameworks},
        evaluations=evaluations,
        config=context.workflow,
    )
    results = project_state.get("results") or {}
    blockers, criterion = find_blockers(
        evaluations,
        {f: context.library.get(f).policy for f in frameworks},
        requirements,
        results if isinstance(results, Mapping) else {},
        context.workflow,
    )
    workflow = add_risk_acceptances(workflow, blockers, context.workflow)
    acceptances = {
        b.acceptance_id: list(context.workflow.exception_approvers)
        for b in blockers
        if b.acceptance_id
    }
    if acceptances:  # signed risk acceptances count like signed approvals, nothing else
        decisions = {
            **decisions,
            **_verified_decisions(project_state, context, frameworks, requirements, acceptances),
        }
    states = approval_states(workflow, decisions)
    guarded = fail_closed(blockers, decisions, states, criterion)
    granted = {aid for aid, state in states.items() if state == "granted"}
    statuses = [e.status for e in evaluations.values()]
    if EvaluationStatus.FAILED in statuses:
        overall = EvaluationStatus.FAILED
        failed = [f for f, e in evaluations.items() if e.status == EvaluationStatus.FAILED]
        reason = "failed: " + ", ".join(titles[f] for f in failed)
    elif EvaluationStatus.REQUIRES_REVIEW in statuses:
        overall = EvaluationStatus.REQUIRES_REVIEW
        waiting = [
            f for f, e in evaluations.items() if e.status == EvaluationStatus.REQUIRES_REVIEW
        ]
        reason = "requires review: " + ", ".join(titles[f] for f in waiting)
    else:
        overall = EvaluationStatus.PASSED
        reason = (
            "every applicable framework passed" if frameworks else "no governance framework applies"
        )

    if guarded.blocked:
        reason += "; guarded actions refused: " + "; ".join(guarded.reasons[:3])
    directory = context.library.approvers
    groups = [
        ApproverGroupView(name=g.name, section=g.section, members=list(g.members))
        for g in directory.groups.values()
    ]
    return GovernanceReport(
        project_name=str(requirements.get("project_name", "")),
        generated_at=(now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        overall_status=overall,
        overall_reason=reason,
        frameworks=frameworks,
        titles=titles,
        applicability=applicability,
        compliance_status=evaluations,
        approval_workflow=workflow,
        approval_states=states,
        gate_states=gate_states(workflow, granted),
        findings=[f for e in evaluations.values() for f in e.findings],
        open_questions={f: e.open_questions for f, e in evaluations.items() if e.open_questions},
        evidence=evidence,
        approver_groups=groups,
        warnings=warnings,
        configuration=[
            {
                "topic": n.topic,
                "configured": n.configured,
                "framework": n.framework,
                "text": n.text,
            }
            for n in context.notes
        ],
        fail_closed=guarded,
        decisions=[dict(d) for _, d in sorted(decisions.items())],
        runs=_mlflow_runs(project_state),
    )


def _mlflow_runs(project_state: Mapping[str, Any]) -> dict[str, Any]:
    """The MLflow ids a reader of the report can follow: where each stage's numbers were
    tracked (credentials in a tracking URI are dropped)."""
    ids = project_state.get("mlflow")
    if not isinstance(ids, Mapping):
        return {}
    runs: dict[str, Any] = {
        k: str(ids[k]) for k in ("experiment_id", "parent_run_id") if ids.get(k)
    }
    uri = ids.get("tracking_uri")
    if isinstance(uri, str) and uri:
        runs["tracking_uri"] = re.sub(r"//[^/@]*@", "//", uri)
    results = project_state.get("results") or {}
    stages = {
        name: str(r["mlflow_run_id"])
        for name, r in (results.items() if isinstance(results, Mapping) else ())
        if isinstance(r, Mapping) and r.get("mlflow_run_id")
    }
    if stages:
        runs["stages"] = stages
    return runs
