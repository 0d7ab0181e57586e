"""Answers from people fill only the questions they were asked and never overrule a fact
mpm derived; a disagreement becomes a finding. An approver's evidence answer that
contradicts their decision refuses the decision."""

from __future__ import annotations

from typing import Any

from mpm.governance import assess_project, load_governance_context
from mpm.governance.answers import check_approval_answers
from mpm.governance.testing import credit_project_state


def _mrm(report: Any) -> Any:
    return report.compliance_status["model_risk_management"]


def _compliance_review(report: Any) -> str:
    return next(a.state.value for a in _mrm(report).approvals if a.stage == "Regulatory Compliance")


def test_requester_answers_cannot_lower_the_risk_tier() -> None:
    honest = assess_project(credit_project_state())
    assert str(_mrm(honest).classification).startswith("Tier 1")
    assert _compliance_review(honest) != "not_required"

    state = credit_project_state()
    state["human_answers"] = {
        "model_risk_management": {"model-risk": "Low", "regulatory-impact": "No"},
        "model-risk": "Low",
    }
    report = assess_project(state)
    assert _mrm(report).classification == _mrm(honest).classification
    assert _compliance_review(report) != "not_required"
    disagreements = [f for f in report.findings if "contradicts a derived fact" in f.title]
    assert disagreements, [f.title for f in report.findings]
    text = " ".join(f.description for f in disagreements)
    assert "'Low'" in text and "'High'" in text and "requirements.risk_level" in text


def test_an_approvers_answers_fill_only_their_own_approvals_questions() -> None:
    state = credit_project_state()
    honest = assess_project(state)
    state = credit_project_state()
    # an approver's answer file that also tries to re-classify the project
    aid = next(iter(state["approvals"]))
    state["approvals"][aid] = {
        **state["approvals"][aid],
        "answers": {"model-risk": "Low", "regulatory-impact": "No", "lawful-basis": "none"},
    }
    report = assess_project(state)
    assert _mrm(report).classification == _mrm(honest).classification
    assert _compliance_review(report) == _compliance_review(honest)
    lawful = [
        c for e in report.compliance_status.values() for c in e.checks if c.alias == "lawful-basis"
    ]
    assert all(c.value != "none" for c in lawful)


def test_an_evidence_answer_that_contradicts_the_decision_is_refused() -> None:
    policy = load_governance_context().library.get("ethical_ai").policy
    key = next(
        p.key
        for p in policy.inputs()
        if p.approval is not None and p.approval.name == "Ethical AI Approval"
    )
    kept, problem = check_approval_answers(
        policy, "Ethical AI Approval", "approve", {key: "Not approved"}
    )
    assert kept == {} and problem is not None and "\n" not in problem
    assert "'Not approved'" in problem and "contradicts the decision approve" in problem
    kept, problem = check_approval_answers(
        policy, "Ethical AI Approval", "reject", {"Decision": "Approved"}
    )
    assert problem and "contradicts the decision reject" in problem
    kept, problem = check_approval_answers(
        policy, "Ethical AI Approval", "approve", {key: "Approved", "model-risk": "Low"}
    )
    assert problem is None and kept == {key: "Approved"}, "other questions are dropped"
