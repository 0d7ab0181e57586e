"""The merged approval workflow: ids, order, parallel / sequential marks, readiness, gates."""

from __future__ import annotations

import graphlib
from pathlib import Path

import pytest

from mpm.governance import PolicyLibrary
from mpm.governance._files import reference_dir
from mpm.governance.evaluation import evaluate_policy
from mpm.governance.loader import parse_policy
from mpm.governance.workflow import (
    ApprovalWorkflow,
    WorkflowConfig,
    WorkflowConfigError,
    approval_states,
    build_workflow,
    gate_states,
    gates_for_action,
    load_workflow_config,
    ready,
)

CREDIT = ["model_intake", "nist_rmf", "ethical_ai", "model_risk_management"]


@pytest.fixture(scope="module")
def library() -> PolicyLibrary:
    return PolicyLibrary.load(reference_dir())


@pytest.fixture(scope="module")
def workflow(library: PolicyLibrary) -> ApprovalWorkflow:
    """The credit project's workflow, with every approval required (no evaluations given)."""
    return build_workflow({f: library.get(f) for f in CREDIT})


def test_approval_ids_are_framework_and_slug_of_the_name(workflow: ApprovalWorkflow) -> None:
    ids = [a.id for a in workflow.approvals]
    assert "model_risk_management:independent-validation-sign-off" in ids
    assert "nist_rmf:governance-sign-off" in ids
    assert len(ids) == len(set(ids)) == 17
    gate_ids = [g.id for g in workflow.gates]
    assert "model_risk_management:gate:validated-models-only-in-the-registry" in gate_ids


def test_the_workflow_graph_is_acyclic_and_listed_in_a_valid_order(
    workflow: ApprovalWorkflow,
) -> None:
    graph = {a.id: set(a.waits_for) for a in workflow.approvals}
    list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    position = {a.id: a.position for a in workflow.approvals}
    for approval in workflow.approvals:
        assert all(position[p] < approval.position for p in approval.waits_for)
    assert [a.position for a in workflow.approvals] == list(range(17))


def test_rounds_follow_the_project_stages(workflow: ApprovalWorkflow) -> None:
    rounds = [a.round for a in workflow.approvals]
    order = workflow.rounds
    assert rounds == sorted(rounds, key=order.index)
    by_id = {a.id: a for a in workflow.approvals}
    assert by_id["model_intake:intake-approval"].round == "business_analysis"
    assert (
        by_id["model_risk_management:independent-validation-sign-off"].round == "model_validation"
    )
    assert by_id["nist_rmf:deployment-readiness-sign-off"].round == "mlops"


def test_model_governance_signs_off_last_and_sequentially_in_its_round(
    workflow: ApprovalWorkflow,
) -> None:
    by_id = {a.id: a for a in workflow.approvals}
    final = by_id["model_risk_management:model-risk-sign-off"]
    assert final.parallel is False and final.tier == "Model governance"
    same_round = [a for a in workflow.approvals if a.round == final.round and a.id != final.id]
    assert same_round and all(a.position < final.position for a in same_round)
    assert set(a.id for a in same_round) <= workflow.prerequisites(final.id)
    intake = by_id["model_intake:intake-approval"]
    assert intake.parallel is False
    assert {
        a.id for a in workflow.approvals if a.round == "business_analysis" and a.id != intake.id
    } <= (workflow.prerequisites(intake.id))


def test_review_tiers_are_parallel(workflow: ApprovalWorkflow) -> None:
    marks = {a.tier: a.parallel for a in workflow.approvals}
    assert (
        marks["Modeling"]
        and marks["Information security"]
        and marks["Legal"]
        and marks["Line of business"]
    )
    assert not marks["Model governance"]


def test_ready_walks_the_workflow_round_by_round(workflow: ApprovalWorkflow) -> None:
    first = ready(workflow, set())
    assert first == [
        "model_intake:intake-triage",
        "nist_rmf:governance-sign-off",
        "model_risk_management:business-case-sign-off",
        "model_intake:security-review",
        "model_intake:legal-review",
        "ethical_ai:ethical-purpose-review",
    ]
    granted = set(first)
    assert ready(workflow, granted) == ["nist_rmf:context-mapping-sign-off"]  # NIST keeps its order
    granted.add("nist_rmf:context-mapping-sign-off")
    assert ready(workflow, granted) == [
        "model_intake:intake-approval"
    ]  # final sign-off of the round
    granted.add("model_intake:intake-approval")
    assert ready(workflow, granted) == ["model_risk_management:development-review"]
    granted.add("model_risk_management:development-review")
    validation = ready(workflow, granted)
    assert (
        "ethical_ai:fairness-review" in validation
        and "model_risk_management:model-risk-sign-off" not in validation
    )
    seen = list(granted)
    while step := ready(workflow, granted):
        seen.extend(step)
        granted |= set(step)
    assert sorted(seen) == sorted(a.id for a in workflow.approvals)
    assert seen[-1] == "nist_rmf:deployment-readiness-sign-off"


def test_granting_out_of_order_does_not_skip_prerequisites(workflow: ApprovalWorkflow) -> None:
    # The final sign-off was (wrongly) recorded early; later approvals still wait for the rest.
    assert "model_risk_management:development-review" not in ready(
        workflow, {"model_intake:intake-approval"}
    )


def test_strict_policies_keep_their_stage_order_and_others_do_not(
    workflow: ApprovalWorkflow,
) -> None:
    by_id = {a.id: a for a in workflow.approvals}
    assert "nist_rmf:governance-sign-off" in by_id["nist_rmf:context-mapping-sign-off"].waits_for
    # ModelIntake has no enforceSequentialOrder: its two questionnaires are reviewed side by side
    both = ready(workflow, {"model_intake:intake-triage"})
    assert {"model_intake:security-review", "model_intake:legal-review"} <= set(both)


def test_approvals_the_classification_routed_around_are_not_required(
    library: PolicyLibrary,
) -> None:
    policy = library.get("model_intake")
    evaluation = evaluate_policy(
        policy.policy,
        {
            "answers": {
                "handles-personal-data": "No",
                "externally-exposed": "No",
                "regulated-use": "No",
            }
        },
        framework="model_intake",
    )
    workflow = build_workflow({"model_intake": policy}, evaluations={"model_intake": evaluation})
    required = {a.id: a.required for a in workflow.approvals}
    assert required == {
        "model_intake:intake-triage": True,
        "model_intake:security-review": False,
        "model_intake:legal-review": False,
        "model_intake:intake-approval": True,
    }
    assert ready(workflow, {"model_intake:intake-triage"}) == ["model_intake:intake-approval"]
    assert workflow.required_approvers == ["modeling-review", "model-gov-org"]
    states = approval_states(workflow, {"model_intake:intake-triage": {"decision": "approve"}})
    assert states == {
        "model_intake:intake-triage": "granted",
        "model_intake:security-review": "not_required",
        "model_intake:legal-review": "not_required",
        "model_intake:intake-approval": "ready",
    }


def test_decision_states(workflow: ApprovalWorkflow) -> None:
    states = approval_states(
        workflow,
        {
            "model_intake:intake-triage": {"decision": "reject"},
            "nist_rmf:governance-sign-off": "approve",
        },
    )
    assert states["model_intake:intake-triage"] == "rejected"
    assert states["nist_rmf:governance-sign-off"] == "granted"
    assert states["nist_rmf:context-mapping-sign-off"] == "ready"
    assert states["model_intake:intake-approval"] == "waiting"


def test_gates_wait_for_their_approvals(workflow: ApprovalWorkflow) -> None:
    register = gates_for_action(workflow, "register_model")
    assert register == gates_for_action(workflow, "RegisterModel")
    assert set(register) == {
        "model_intake:intake-approval",
        "nist_rmf:measurement-sign-off",
        "ethical_ai:fairness-review",
        "ethical_ai:ethical-ai-approval",
        "model_risk_management:independent-validation-sign-off",
        "model_risk_management:model-risk-sign-off",
    }
    states = gate_states(workflow, {"model_intake:intake-approval"})
    assert states["model_intake:gate:register-intake-approved-models-only"] == {
        "state": "open",
        "blocked_by": [],
    }
    mrm = states["model_risk_management:gate:validated-models-only-in-the-registry"]
    assert mrm["state"] == "blocked"
    assert mrm["blocked_by"] == [
        "model_risk_management:independent-validation-sign-off",
        "model_risk_management:model-risk-sign-off",
    ]
    by_id = {a.id: a for a in workflow.approvals}
    assert "model_risk_management:gate:validated-models-only-in-the-registry" in (
        by_id["model_risk_management:model-risk-sign-off"].gates
    )


def test_seed_shape_required_approvers_stages_and_gates(workflow: ApprovalWorkflow) -> None:
    assert workflow.required_approvers[0] == "modeling-review"
    assert workflow.required_approvers[-1] == "model-gov-org"
    stages = {s.approver: s for s in workflow.approval_stages}
    assert stages["model-gov-org"].can_approve_parallel is False
    assert all(s.can_approve_parallel for name, s in stages.items() if name != "model-gov-org")
    assert stages["modeling-review"].required_frameworks == CREDIT
    assert stages["legal-leadership"].required_frameworks == ["ethical_ai"]
    gate = next(
        g
        for g in workflow.governance_gates
        if g.framework == "nist_rmf" and "deploy_endpoint" in g.blocks
    )
    assert gate.approvers == ["modeling-review", "it-review"] and gate.required is True


STRICT_INVERTED = """
enforceSequentialOrder: true
stages:
  - name: First
    approvals:
      - {name: Governance first, approvers: [model-gov-org]}
  - name: Second
    approvals:
      - {name: Modeling second, approvers: [modeling-review]}
"""


def test_a_strict_policy_that_inverts_the_tiers_cannot_create_a_cycle(
    library: PolicyLibrary,
) -> None:
    strict = parse_policy(STRICT_INVERTED, source="strict.yml").policy
    workflow = build_workflow({"strict": strict, "model_intake": library.get("model_intake")})
    by_id = {a.id: a for a in workflow.approvals}
    second = by_id["strict:modeling-second"]
    assert "strict:governance-first" in workflow.prerequisites(second.id)
    assert second.tier == "Model governance"  # moved up behind the stage it must follow
    graph = {a.id: set(a.waits_for) for a in workflow.approvals}
    list(graphlib.TopologicalSorter(graph).static_order())


def test_unknown_approvers_go_to_the_default_tier(library: PolicyLibrary) -> None:
    person = parse_policy(
        "stages:\n  - name: S\n    approvals:\n      - {name: Person, approvers: [andrea_lowe]}\n",
        source="p.yml",
    ).policy
    workflow = build_workflow({"p": person})
    assert workflow.approvals[0].tier == "Model governance"
    assert workflow.approvals[0].round == "business_analysis"


BAD_CONFIGS = [
    (
        "rounds: [a]\norder: [{tier: T, groups: [g]}]\nalignment: {f: {S: b}}",
        "alignment.f.S: 'b' is not one of the rounds",
    ),
    (
        "rounds: [a]\norder: [{tier: T, groups: [g]}, {tier: U, groups: [g]}]",
        "group 'g' is in tier 'T' and 'U'",
    ),
    ("rounds: [a]\norder: []", "order: List should have at least 1 item"),
    (
        "rounds: [a]\norder: [{tier: T, groups: [g], paralel: true}]",
        "order.0.paralel: Extra inputs are not permitted",
    ),
    (
        "rounds: [a]\norder: [{tier: T, groups: [g]}]\ndefault_tier: X",
        "default_tier: 'X' is not a tier",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS)
def test_a_bad_workflow_config_is_rejected_with_its_location(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(WorkflowConfigError) as error:
        load_workflow_config(path)
    assert str(error.value).startswith("workflow.yaml: ")
    assert message in str(error.value)


def test_reference_workflow_config_orders_modeling_before_security_legal_and_governance() -> None:
    config: WorkflowConfig = load_workflow_config()
    tiers = [t.tier for t in config.order]
    assert tiers.index("Modeling") < tiers.index("Information security") < tiers.index("Legal")
    assert tiers[-1] == "Model governance" and config.order[-1].parallel is False
    assert config.actions["RegisterModel"] == "register_model"
