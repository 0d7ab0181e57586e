"""Fail closed at the governance level: a FAILED framework or an unmet success criterion
blocks the guarded actions; only a granted risk acceptance of that exact finding (id and
evidence hash) lifts the block, and a later, different failure is not covered."""

from __future__ import annotations

from typing import Any

from mpm.governance import assess_project
from mpm.governance.fail_closed import LOWER_IS_BETTER, success_criterion
from mpm.governance.testing import credit_project_state


def _assess(state: dict[str, Any]) -> Any:
    """Governance on ``state`` with its decisions signed (only signed decisions count)."""
    import os

    from mpm.governance.assessment import GovernanceContext
    from mpm.governance.testing import with_signed_approvals

    signed = with_signed_approvals(state, os.environ["MPM_SIGNING_KEY"])
    context = GovernanceContext.load(identity=os.environ["MPM_IDENTITY"])
    return assess_project(signed, context=context)


def _grant(state: dict[str, Any], approval_id: str, who: str = "mrm-head-1") -> None:
    state["approvals"][approval_id] = {
        "decision": "approve",
        "approver": who,
        "comment": "accepted for the pilot",
        "decided_at": "2026-12-01T00:00:00+00:00",
    }


def _with_eo(value: float) -> dict[str, Any]:
    state = credit_project_state()
    state["results"]["model_validation"]["metrics"]["equalized_odds_difference"] = value
    return state


def test_a_failed_framework_blocks_until_that_exact_finding_is_accepted() -> None:
    state = _with_eo(0.13)
    report = _assess(state)
    guarded = report.fail_closed
    assert report.overall_status.value == "FAILED" and guarded.blocked
    assert guarded.status == "failed_governance"
    (blocker,) = guarded.blockers
    assert blocker.framework == "ethical_ai" and "0.13" in blocker.description
    item = report.approval_workflow.approval(blocker.acceptance_id)
    assert item.kind == "risk_acceptance" and item.approvers == ["model-risk-leadership"]
    assert item.finding["evidence_hash"] == blocker.evidence_hash
    assert report.approval_states[item.id] == "ready"

    _grant(state, item.id)
    accepted = _assess(state).fail_closed
    assert not accepted.blocked and accepted.status == "clear"
    assert [b.accepted_by for b in accepted.accepted] == ["mrm-head-1"]

    # the same check failing differently later is a new finding: the old grant is no cover
    later = _with_eo(0.31)
    _grant(later, item.id)
    again = _assess(later).fail_closed
    assert again.blocked and again.blockers[0].acceptance_id != item.id
    assert again.accepted == []


def test_a_rejected_risk_acceptance_keeps_the_finding_blocking() -> None:
    state = _with_eo(0.13)
    aid = _assess(state).fail_closed.blockers[0].acceptance_id
    state["approvals"][aid] = {"decision": "reject", "approver": "mrm-head-1", "comment": "no"}
    report = _assess(state)
    assert report.fail_closed.blocked and report.approval_states[aid] == "rejected"


def test_success_criterion_is_direction_aware_and_recomputed() -> None:
    state = credit_project_state()
    state["results"]["model_validation"]["metrics"]["equalized_odds_difference"] = 0.05
    state["results"]["model_validation"]["outputs"] = {"test_score": 0.70, "meets_threshold": True}
    report = _assess(state)
    assert report.fail_closed.status == "failed_criteria", "meets_threshold is not trusted"
    assert "roc_auc >= 0.75 not met: test roc_auc = 0.7" in report.fail_closed.reasons[0]

    rmse = {"model_type": "regression", "target_metric": "rmse", "success_threshold": 50.0}
    results = {"model_validation": {"status": "success", "outputs": {"test_score": 45.0}}}
    assert success_criterion(rmse, results).met is True
    results["model_validation"]["outputs"]["test_score"] = 55.0
    assert success_criterion(rmse, results).met is False
    pending = success_criterion(rmse, {})
    assert pending is not None and not pending.measured


def test_lower_is_better_is_the_same_set_everywhere() -> None:
    from mpm.graph.state import LOWER_IS_BETTER as GRAPH
    from mpm.tools.metrics import LOWER_IS_BETTER as TOOLS

    assert set(LOWER_IS_BETTER) == set(GRAPH) == set(TOOLS)


def test_a_blocking_validation_finding_blocks_until_that_finding_is_accepted() -> None:
    """Issue 15: a likely leak (or a failed data gate) the validator names blocks the guarded
    actions under its own id, even when the score meets the threshold; a risk acceptance of
    exactly that finding lifts it, and a different finding is not covered."""
    leak = {
        "id": "leakage.target_proxy.wage",
        "reason": "'wage' nearly determines the target (single-feature skill 0.999 >= 0.98)",
        "evidence": {"single_feature_skill": 0.999},
    }
    state = credit_project_state()
    state["results"]["model_validation"]["metrics"]["equalized_odds_difference"] = 0.05
    state["results"]["model_validation"]["outputs"] = {
        "test_score": 0.9,  # meets the threshold: the finding alone blocks
        "blocking_findings": [leak],
    }
    report = _assess(state)
    guarded = report.fail_closed
    assert guarded.blocked and guarded.status == "failed_criteria"
    (blocker,) = [b for b in guarded.blockers if b.kind == "validation_finding"]
    assert blocker.finding_id == "validation:leakage.target_proxy.wage"
    assert "wage" in blocker.description
    item = report.approval_workflow.approval(blocker.acceptance_id)
    assert item.kind == "risk_acceptance" and item.finding["id"] == blocker.finding_id

    _grant(state, item.id)
    assert not _assess(state).fail_closed.blocked

    other = {**leak, "id": "leakage.post_event_date.end_day", "reason": "post-event date"}
    state["results"]["model_validation"]["outputs"]["blocking_findings"] = [leak, other]
    again = _assess(state).fail_closed
    assert again.blocked
    assert [b.finding_id for b in again.blockers] == ["validation:leakage.post_event_date.end_day"]
