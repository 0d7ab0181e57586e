"""One approval workflow for all the frameworks that apply to a project.

Each policy lists its own approvals stage by stage; a project governed by four policies
would otherwise ask the same reviewers four times in no particular order. The workflow
merges them into one dependency graph, configured by ``reference/governance/workflow.yaml``:

1. **Rounds** follow the project: every policy stage is aligned with the project stage
   after which its approvals are asked for. An approval waits for every approval of the
   earlier rounds.
2. **Organisational order** inside a round: tiers of approver groups (modeling, line of
   business, IT, security, legal, model governance). A ``parallel`` tier's approvals may
   be pending together with those of the other parallel tiers; a sequential tier waits
   for every earlier tier of the round and decides its approvals one at a time (the final
   model governance sign-off comes last). An approval naming several groups sits in the
   earliest tier among them: any of those groups may decide it.
3. **Policy order**: a policy with ``enforceSequentialOrder: true`` also keeps its stages
   strictly in order.

Every edge goes forward in the order (round, tier, framework, stage, approval), so the
graph can never have a cycle; where a strict policy puts an early-tier approval after a
late-tier one, the later approval is moved up to the earlier one's round and tier.

Approval ids are ``{framework}:{slug of the approval name}``
(:func:`governance.evaluation.approval_id`); gate ids ``{framework}:gate:{slug}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mpm.governance._files import read_yaml_mapping, reference_dir
from mpm.governance.evaluation import (
    ApprovalState,
    FrameworkEvaluation,
    approval_id,
    slugify,
)
from mpm.governance.policy import Policy

__all__ = [
    "ApprovalStage",
    "ApprovalWorkflow",
    "GovernanceGate",
    "Tier",
    "WorkflowApproval",
    "WorkflowConfig",
    "WorkflowConfigError",
    "WorkflowGate",
    "add_risk_acceptances",
    "approval_states",
    "build_workflow",
    "default_workflow_path",
    "gate_states",
    "gates_for_action",
    "load_workflow_config",
    "ready",
]


class WorkflowConfigError(ValueError):
    """workflow.yaml does not follow the format; the message says where."""


# --------------------------------------------------------------------------- configuration


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier: str = Field(min_length=1)
    groups: list[str] = Field(min_length=1)
    parallel: bool = True


class WorkflowConfig(BaseModel):
    """The organisational order of approvals (``workflow.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    rounds: list[str] = Field(min_length=1)
    default_round: str | None = None
    order: list[Tier] = Field(min_length=1)
    default_tier: str | None = None
    alignment: dict[str, dict[str, str]] = Field(default_factory=dict)
    actions: dict[str, str] = Field(default_factory=dict)
    separation_of_duties: bool = Field(
        default=True, description="the person who requested the project may not approve its gates"
    )
    exception_approvers: list[str] = Field(
        default_factory=list,
        description="groups that may accept the risk of a finding that blocks a guarded "
        "action (governance FAILED, success criteria unmet); empty: nobody can",
    )

    @model_validator(mode="after")
    def _consistent(self) -> WorkflowConfig:
        if self.version != 1:
            raise ValueError(f"version: expected 1; got {self.version}")
        if len(set(self.rounds)) != len(self.rounds):
            raise ValueError("rounds: each project stage may appear once")
        if self.default_round is not None and self.default_round not in self.rounds:
            raise ValueError(
                f"default_round: {self.default_round!r} is not one of the rounds {self.rounds}"
            )
        names = [t.tier for t in self.order]
        if len(set(names)) != len(names):
            raise ValueError("order: tier names must be unique")
        if self.default_tier is not None and self.default_tier not in names:
            raise ValueError(
                f"default_tier: {self.default_tier!r} is not a tier ({', '.join(names)})"
            )
        if len(set(self.exception_approvers)) != len(self.exception_approvers):
            raise ValueError("exception_approvers: each group may appear once")
        seen: dict[str, str] = {}
        for tier in self.order:
            for group in tier.groups:
                if group in seen:
                    raise ValueError(
                        f"order: group {group!r} is in tier {seen[group]!r} and {tier.tier!r}"
                    )
                seen[group] = tier.tier
        for framework, stages in self.alignment.items():
            for stage, round_ in stages.items():
                if round_ not in self.rounds:
                    raise ValueError(
                        f"alignment.{framework}.{stage}: {round_!r} is not one of the rounds {self.rounds}"
                    )
        return self

    @property
    def first_round(self) -> str:
        return self.default_round or self.rounds[0]

    def tier_index(self, approvers: Iterable[str]) -> int:
        """The earliest tier that holds any of these approvers (else the default tier)."""
        indexes = [
            i for i, tier in enumerate(self.order) for name in approvers if name in tier.groups
        ]
        if indexes:
            return min(indexes)
        names = [t.tier for t in self.order]
        return names.index(self.default_tier) if self.default_tier else len(self.order) - 1


def default_workflow_path() -> Path:
    return reference_dir() / "workflow.yaml"


def load_workflow_config(path: str | Path | None = None) -> WorkflowConfig:
    """Read and validate ``workflow.yaml`` (default: the reference one)."""
    file = Path(path) if path is not None else default_workflow_path()
    data = read_yaml_mapping(file, WorkflowConfigError)
    try:
        return WorkflowConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise WorkflowConfigError(f"{file.name}: {loc + ': ' if loc else ''}{message}") from None


# --------------------------------------------------------------------------- result models


class WorkflowApproval(BaseModel):
    """One approval in the merged workflow."""

    id: str
    framework: str
    name: str
    stage: str = Field(description="the policy stage the approval belongs to")
    stage_index: int
    approvers: list[str]
    round: str = Field(description="project stage after which it is asked for")
    tier: str
    parallel: bool = Field(description="may be pending together with other approvals of its round")
    waits_for: list[str] = Field(default_factory=list, description="direct prerequisites (ids)")
    required: bool = True
    reason: str = Field(default="", description="why it is not required, when it is not")
    gates: list[str] = Field(default_factory=list, description="ids of the gates that wait for it")
    position: int = Field(default=0, description="place in a valid decision order")
    kind: str = Field(
        default="approval", description="approval, or risk_acceptance (accepts one finding)"
    )
    finding: dict[str, Any] | None = Field(
        default=None, description="risk acceptance: the finding it accepts (id, evidence hash)"
    )


class GateAction(BaseModel):
    action: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    blocks: str | None = Field(
        default=None, description="the mpm action it blocks, e.g. register_model"
    )


class WorkflowGate(BaseModel):
    id: str
    framework: str
    name: str
    actions: list[GateAction]
    approvals: list[str]
    approvers: list[str]


class ApprovalStage(BaseModel):
    """The seed's per-approver row."""

    approver: str
    required_frameworks: list[str]
    can_approve_parallel: bool


class GovernanceGate(BaseModel):
    """The seed's gate row."""

    gate: str
    framework: str
    approvers: list[str]
    approvals: list[str]
    blocks: list[str]
    required: bool


class ApprovalWorkflow(BaseModel):
    frameworks: list[str]
    rounds: list[str]
    tiers: list[str]
    approvals: list[WorkflowApproval]
    gates: list[WorkflowGate]
    required_approvers: list[str]
    approval_stages: list[ApprovalStage]
    governance_gates: list[GovernanceGate]

    def approval(self, approval_id_: str) -> WorkflowApproval:
        for approval in self.approvals:
            if approval.id == approval_id_:
                return approval
        raise KeyError(f"no approval {approval_id_!r} in the workflow")

    def prerequisites(self, approval_id_: str) -> set[str]:
        """Every approval that must be decided before this one (transitively)."""
        by_id = {a.id: a for a in self.approvals}
        seen: set[str] = set()
        stack = list(by_id[approval_id_].waits_for)
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(by_id[current].waits_for)
        return seen


# --------------------------------------------------------------------------- building


@dataclass
class _Node:
    framework: str
    framework_order: int
    stage: str
    stage_index: int
    approval_index: int
    name: str
    approvers: list[str]
    round_index: int
    tier_index: int
    strict: bool
    required: bool = True
    reason: str = ""

    @property
    def id(self) -> str:
        return approval_id(self.framework, self.name)

    @property
    def key(self) -> tuple[int, int, int, int, int]:
        return (
            self.round_index,
            self.tier_index,
            self.framework_order,
            self.stage_index,
            self.approval_index,
        )


def _policy_of(value: Any) -> Policy:
    return value.policy if hasattr(value, "policy") and isinstance(value.policy, Policy) else value


def _nodes(
    policies: Mapping[str, Any],
    config: WorkflowConfig,
    evaluations: Mapping[str, FrameworkEvaluation],
) -> list[_Node]:
    nodes: list[_Node] = []
    for order, (framework, value) in enumerate(policies.items()):
        policy = _policy_of(value)
        alignment = config.alignment.get(framework, {})
        evaluation = evaluations.get(framework)
        states = {a.id: a for a in evaluation.approvals} if evaluation else {}
        round_name = config.first_round
        previous: tuple[int, int] | None = None
        for stage_index, stage in enumerate(policy.stages):
            round_name = alignment.get(stage.name, round_name)
            stage_floor = previous
            for approval_index, approval in enumerate(stage.approvals):
                node = _Node(
                    framework=framework,
                    framework_order=order,
                    stage=stage.name,
                    stage_index=stage_index,
                    approval_index=approval_index,
                    name=approval.name,
                    approvers=approval.approver_names,
                    round_index=config.rounds.index(round_name),
                    tier_index=config.tier_index(approval.approver_names),
                    strict=policy.enforce_sequential_order,
                )
                if (
                    node.strict
                    and stage_floor is not None
                    and (node.round_index, node.tier_index) < stage_floor
                ):
                    node.round_index, node.tier_index = stage_floor
                state = states.get(node.id)
                if state is not None and state.state == ApprovalState.not_required:
                    node.required, node.reason = False, state.reason
                nodes.append(node)
                if node.strict:
                    mark = (node.round_index, node.tier_index)
                    previous = mark if previous is None or mark > previous else previous
    return sorted(nodes, key=lambda n: n.key)


def _edges(nodes: list[_Node], config: WorkflowConfig) -> dict[str, list[str]]:
    waits: dict[str, list[str]] = {n.id: [] for n in nodes}

    def add(node: _Node, prerequisite: _Node) -> None:
        if prerequisite.id != node.id and prerequisite.id not in waits[node.id]:
            waits[node.id].append(prerequisite.id)

    # Policy order (strict policies): the nearest earlier stage with approvals.
    by_framework: dict[str, list[_Node]] = {}
    for node in nodes:
        by_framework.setdefault(node.framework, []).append(node)
    for group in by_framework.values():
        for node in group:
            if not node.strict:
                continue
            earlier = [n for n in group if n.stage_index < node.stage_index]
            if earlier:
                last_stage = max(n.stage_index for n in earlier)
                for prerequisite in earlier:
                    if prerequisite.stage_index == last_stage:
                        add(node, prerequisite)

    # Organisational order inside each round.
    rounds = sorted({n.round_index for n in nodes})
    for round_index in rounds:
        in_round = [n for n in nodes if n.round_index == round_index]
        for tier_index, tier in enumerate(config.order):
            members = [n for n in in_round if n.tier_index == tier_index]
            if tier.parallel or not members:
                continue
            earlier = [n for n in in_round if n.tier_index < tier_index]
            for prerequisite in _sinks(earlier, waits):
                add(members[0], prerequisite)
            for before, after in zip(members, members[1:], strict=False):
                add(after, before)

    # Rounds: the first approvals of a round wait for the end of the previous round.
    for previous, current in zip(rounds, rounds[1:], strict=False):
        ends = _sinks([n for n in nodes if n.round_index == previous], waits)
        in_round = [n for n in nodes if n.round_index == current]
        ids_in_round = {n.id for n in in_round}
        for node in in_round:
            if not any(p in ids_in_round for p in waits[node.id]):
                for prerequisite in ends:
                    add(node, prerequisite)
    return waits


def _sinks(group: list[_Node], waits: Mapping[str, list[str]]) -> list[_Node]:
    """The approvals of ``group`` that no other approval of the group waits for."""
    needed = {p for n in group for p in waits[n.id]}
    return [n for n in group if n.id not in needed]


def build_workflow(
    policies: Mapping[str, Any],
    *,
    evaluations: Mapping[str, FrameworkEvaluation] | None = None,
    config: WorkflowConfig | None = None,
) -> ApprovalWorkflow:
    """Merge the approvals of ``policies`` (framework id -> Policy or LoadedPolicy).

    The mapping's order is the framework order used to break ties. ``evaluations`` (from
    :func:`governance.evaluation.evaluate_policy`) mark approvals that the classification
    made unnecessary; without them every approval is required.
    """
    config = config if config is not None else load_workflow_config()
    nodes = _nodes(policies, config, evaluations or {})
    waits = _edges(nodes, config)

    gates: list[WorkflowGate] = []
    gates_of: dict[str, list[str]] = {}
    for framework, value in policies.items():
        policy = _policy_of(value)
        approvers_of = {a.name: a.approver_names for _, a in policy.approvals()}
        for gate in policy.gates:
            gate_id = f"{framework}:gate:{slugify(gate.name)}"
            ids = [approval_id(framework, name) for name in gate.approvals]
            groups = list(dict.fromkeys(g for name in gate.approvals for g in approvers_of[name]))
            gates.append(
                WorkflowGate(
                    id=gate_id,
                    framework=framework,
                    name=gate.name,
                    actions=[
                        GateAction(
                            action=r.action,
                            parameters=dict(r.parameters),
                            blocks=config.actions.get(r.action),
                        )
                        for r in gate.rules
                    ],
                    approvals=ids,
                    approvers=groups,
                )
            )
            for aid in ids:
                gates_of.setdefault(aid, []).append(gate_id)

    position_of = {n.id: i for i, n in enumerate(nodes)}
    for node in nodes:
        if any(position_of[p] >= position_of[node.id] for p in waits[node.id]):
            raise RuntimeError(
                f"workflow order violated at {node.id}; this is a bug in governance.workflow"
            )
    approvals = [
        WorkflowApproval(
            id=n.id,
            framework=n.framework,
            name=n.name,
            stage=n.stage,
            stage_index=n.stage_index,
            approvers=n.approvers,
            round=config.rounds[n.round_index],
            tier=config.order[n.tier_index].tier,
            parallel=config.order[n.tier_index].parallel,
            waits_for=waits[n.id],
            required=n.required,
            reason=n.reason,
            gates=gates_of.get(n.id, []),
            position=position,
        )
        for position, n in enumerate(nodes)
    ]
    required = [a for a in approvals if a.required]
    group_order = [g for tier in config.order for g in tier.groups]
    named = list(dict.fromkeys(g for a in required for g in a.approvers))
    required_approvers = sorted(
        named,
        key=lambda g: (
            group_order.index(g) if g in group_order else len(group_order),
            named.index(g),
        ),
    )
    frameworks = list(policies)
    approval_stages = [
        ApprovalStage(
            approver=group,
            required_frameworks=[
                f
                for f in frameworks
                if any(group in a.approvers for a in required if a.framework == f)
            ],
            can_approve_parallel=config.order[config.tier_index([group])].parallel,
        )
        for group in required_approvers
    ]
    required_ids = {a.id for a in required}
    governance_gates = [
        GovernanceGate(
            gate=g.name,
            framework=g.framework,
            approvers=g.approvers,
            approvals=g.approvals,
            blocks=[a.blocks or a.action for a in g.actions],
            required=any(aid in required_ids for aid in g.approvals),
        )
        for g in gates
    ]
    return ApprovalWorkflow(
        frameworks=frameworks,
        rounds=list(config.rounds),
        tiers=[t.tier for t in config.order],
        approvals=approvals,
        gates=gates,
        required_approvers=required_approvers,
        approval_stages=approval_stages,
        governance_gates=governance_gates,
    )


def add_risk_acceptances(
    workflow: ApprovalWorkflow, blockers: Iterable[Any], config: WorkflowConfig
) -> ApprovalWorkflow:
    """The workflow with one ``risk_acceptance`` approval per blocker that may be accepted.

    Each names its finding (id, evidence hash, description) and is decided by the
    ``exception_approvers`` groups, in the round of the finding's project stage; it waits
    for nothing, so it is asked as soon as that stage has finished.
    """
    groups = list(config.exception_approvers)
    tier = config.order[config.tier_index(groups)] if groups else None
    extra: list[WorkflowApproval] = []
    known = {a.id for a in workflow.approvals}
    for blocker in blockers:
        aid = getattr(blocker, "acceptance_id", None)
        if not aid or aid in known or tier is None:
            continue
        known.add(aid)
        extra.append(
            WorkflowApproval(
                id=aid,
                framework=blocker.framework,
                name=f"Risk acceptance: {blocker.title}",
                stage=blocker.stage,
                stage_index=-1,
                approvers=groups,
                round=blocker.round if blocker.round in config.rounds else config.rounds[-1],
                tier=tier.tier,
                parallel=True,
                kind="risk_acceptance",
                finding={
                    "id": blocker.finding_id,
                    "evidence_hash": blocker.evidence_hash,
                    "kind": blocker.kind,
                    "title": blocker.title,
                    "description": blocker.description,
                },
                position=len(workflow.approvals) + len(extra),
            )
        )
    if not extra:
        return workflow
    required = list(workflow.required_approvers)
    required += [g for g in groups if g not in required]
    return workflow.model_copy(
        update={"approvals": [*workflow.approvals, *extra], "required_approvers": required}
    )


# --------------------------------------------------------------------------- state


def _satisfied(workflow: ApprovalWorkflow, granted: Iterable[str]) -> set[str]:
    return set(granted) | {a.id for a in workflow.approvals if not a.required}


def ready(workflow: ApprovalWorkflow, granted: Iterable[str]) -> list[str]:
    """The approvals that can be pending now: required, not granted, all prerequisites granted.

    Approvals that are not required count as granted. The list is in workflow order.
    """
    done = _satisfied(workflow, granted)
    return [
        a.id
        for a in workflow.approvals
        if a.required and a.id not in done and workflow.prerequisites(a.id) <= done
    ]


def approval_states(
    workflow: ApprovalWorkflow, decisions: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Each approval's state: granted, rejected, changes_requested, ready, waiting or not_required.

    ``decisions`` is the graph's ``approvals`` map (id -> record with ``decision``) or id ->
    decision text.
    """
    decided: dict[str, str] = {}
    for key, record in (decisions or {}).items():
        decision = record.get("decision") if isinstance(record, Mapping) else record
        text = str(getattr(decision, "value", decision) or "").casefold()
        if text in ("approve", "approved", "granted"):
            decided[key] = "granted"
        elif text in ("reject", "rejected"):
            decided[key] = "rejected"
        elif text in ("request_changes", "changes_requested"):
            decided[key] = "changes_requested"
    granted = {k for k, v in decided.items() if v == "granted"}
    now = set(ready(workflow, granted))
    states: dict[str, str] = {}
    for approval in workflow.approvals:
        if not approval.required:
            states[approval.id] = "not_required"
        elif approval.id in decided:
            states[approval.id] = decided[approval.id]
        else:
            states[approval.id] = "ready" if approval.id in now else "waiting"
    return states


def gate_states(workflow: ApprovalWorkflow, granted: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Gate id -> ``{"state": "open" | "blocked", "blocked_by": [approval ids]}``."""
    done = _satisfied(workflow, granted)
    result = {}
    for gate in workflow.gates:
        blocked_by = [aid for aid in gate.approvals if aid not in done]
        result[gate.id] = {"state": "blocked" if blocked_by else "open", "blocked_by": blocked_by}
    return result


def gates_for_action(workflow: ApprovalWorkflow, action: str) -> list[str]:
    """Every approval id that must be granted before ``action`` (policy or mpm name) may run."""
    ids: list[str] = []
    for gate in workflow.gates:
        if any(action in (a.action, a.blocks) for a in gate.actions):
            ids.extend(aid for aid in gate.approvals if aid not in ids)
    return ids
