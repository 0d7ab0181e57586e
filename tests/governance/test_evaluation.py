"""Evaluating a policy against evidence: outcomes, validation, metrics, score, status, approvals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mpm.governance import PolicyLibrary
from mpm.governance._files import reference_dir
from mpm.governance.evaluation import (
    EvaluationStatus,
    FrameworkEvaluation,
    Outcome,
    approval_id,
    evaluate_policy,
)
from mpm.governance.evidence import EvidenceBundle
from mpm.governance.loader import parse_policy
from mpm.governance.policy import Policy

POLICY = """
classification:
  rule: |
    tier := "Low"
    if classificationInputs["risk"].(string) == "High" {
        tier = "High"
    }
    return tier
  artifacts: [risk]
stages:
  - name: Intake
    evidenceSet:
      - id: Local.readme
        name: Read me
        definition:
          - artifactType: guidance
            details: {text: Guidance is never a check.}
      - id: Local.intake
        name: Intake
        definition:
          - artifactType: input
            aliasForClassification: risk
            details: {type: radio, label: Risk, options: ['High', 'Low']}
          - artifactType: input
            aliasForClassification: purpose
            details: {type: textarea, label: Purpose}
          - artifactType: input
            aliasForClassification: channels
            details: {type: checkbox, label: Channels, options: [API, Batch]}
          - artifactType: input
            aliasForClassification: rows
            details: {type: numeric, label: Rows, min: 1, max: 1000}
          - artifactType: input
            aliasForClassification: start
            details: {type: date, label: Start date}
          - artifactType: input
            aliasForClassification: notes
            required: false
            details: {type: textinput, label: Notes}
          - artifactType: input
            aliasForClassification: api-sla
            details:
              type: textinput
              label: API latency target
              conditionalDisplay: {dependsOn: Local.intake, showIfValue: API}
      - id: Local.high-only
        name: High-risk plan
        visibilityRule: classificationValue == "High"
        definition:
          - artifactType: input
            aliasForClassification: plan
            details: {type: textarea, label: Mitigation plan}
    approvals:
      - name: Intake Sign Off
        approvers: [modeling-review]
        evidence:
          id: Local.intake-signoff
          name: Sign-off
          definition:
            - artifactType: input
              details: {type: radio, label: Approve?, options: ['Yes', 'No']}
  - name: Validation
    evidenceSet:
      - id: Local.quality
        name: Quality
        definition:
          - artifactType: metadata
            details:
              type: modelmetric
              metrics:
                - {name: roc_auc, aliases: [auc], threshold: {operator: '>=', value: 0.75}}
                - {name: brier, label: Brier score}
          - artifactType: metadata
            details: {type: file, label: Validation report}
          - artifactType: policyScriptedCheck
            details: {name: stability, label: Stability check, command: run.py}
    approvals:
      - name: Validation Sign Off
        approvers: [model-gov-org]
      - name: Plan Review
        approvers: [legal-review]
        evidence: {id: Local.high-only}
gates:
  - name: Registry
    rules: [{action: CreateEndpoint, parameters: {hardwareTierId: any}}]
    approvals: [Validation Sign Off]
"""

GOOD = {
    "risk": "Low",
    "purpose": "Score churn",
    "channels": ["Batch"],
    "rows": 500,
    "start": "2025-03-01",
    "stability": {"passed": True},
}


@pytest.fixture(scope="module")
def policy() -> Policy:
    return parse_policy(POLICY, source="inline.yml").policy


def run(policy: Policy, answers: dict[str, Any] | None = None, **kw: Any) -> FrameworkEvaluation:
    bundle = {
        "answers": answers if answers is not None else dict(GOOD),
        "metrics": kw.pop("metrics", {"AUC": 0.8}),
        "files": kw.pop("files", {"Validation report": "runs:/r/report.html"}),
    }
    return evaluate_policy(policy, bundle, framework="demo", **kw)


def check(evaluation: FrameworkEvaluation, label: str) -> Any:
    (found,) = [c for c in evaluation.checks if c.label == label]
    return found


def test_complete_evidence_with_granted_approvals_passes(policy: Policy) -> None:
    granted = [approval_id("demo", "Intake Sign Off"), approval_id("demo", "Validation Sign Off")]
    evaluation = run(policy, approvals=granted)
    assert evaluation.status == EvaluationStatus.PASSED
    assert evaluation.compliance_score == 1.0
    assert evaluation.required_approvers == []
    assert evaluation.findings == []
    assert evaluation.gates[0].state == "open"
    # "Plan Review" sits in a stage whose only evidence is hidden for a Low classification
    plan = next(a for a in evaluation.approvals if a.name == "Plan Review")
    assert plan.state == "not_required"


def test_guidance_is_not_a_check_and_outcomes_are_counted(policy: Policy) -> None:
    evaluation = run(policy)
    assert not any(c.label.startswith("Guidance") for c in evaluation.checks)
    assert evaluation.counts == {
        "satisfied": 8,  # 5 answers, roc_auc, file, scripted check
        "failed": 0,
        "missing": 2,  # optional notes, brier (review only): neither counts
        "not_applicable": 2,  # api-sla (conditionalDisplay), plan (visibilityRule)
        "counted": 8,
    }


def test_pending_approvals_require_review_even_with_complete_evidence(policy: Policy) -> None:
    evaluation = run(policy)
    assert evaluation.status == EvaluationStatus.REQUIRES_REVIEW
    assert evaluation.compliance_score == 1.0
    assert evaluation.required_approvers == ["modeling-review", "model-gov-org"]
    assert "2 approval(s) not granted" in evaluation.status_reason
    assert evaluation.gates[0].state == "blocked"
    assert evaluation.gates[0].blocked_by == ["demo:validation-sign-off"]


def test_unanswered_questions_are_missing_and_returned_as_open_questions(policy: Policy) -> None:
    answers = dict(GOOD)
    del answers["purpose"], answers["channels"]
    evaluation = run(policy, answers)
    assert check(evaluation, "Purpose").outcome == Outcome.missing
    assert evaluation.status == EvaluationStatus.REQUIRES_REVIEW
    assert evaluation.compliance_score == pytest.approx(6 / 8, abs=1e-4)
    questions = {q.key: q for q in evaluation.open_questions}
    assert set(questions) == {"Local.intake[1]", "Local.intake[2]", "Local.intake[5]"}
    channels = questions["Local.intake[2]"]
    assert (channels.stage, channels.label, channels.type, channels.options, channels.required) == (
        "Intake",
        "Channels",
        "checkbox",
        ["API", "Batch"],
        True,
    )
    assert channels.alias == "channels"
    assert questions["Local.intake[5]"].required is False  # optional notes: asked, not counted


def test_hidden_by_visibility_rule_is_not_applicable_with_the_reason(policy: Policy) -> None:
    plan = check(run(policy), "Mitigation plan")
    assert plan.outcome == Outcome.not_applicable
    assert plan.reason == (
        "hidden: visibilityRule `classificationValue == \"High\"` is false for classification 'Low'"
    )
    shown = check(run(policy, {**GOOD, "risk": "High"}), "Mitigation plan")
    assert shown.outcome == Outcome.missing


def test_high_classification_makes_the_hidden_stage_approval_required(policy: Policy) -> None:
    evaluation = run(policy, {**GOOD, "risk": "High", "plan": "Cap exposure"})
    assert evaluation.classification == "High"
    assert evaluation.classification_inputs == {"risk": "High"}
    plan = next(a for a in evaluation.approvals if a.name == "Plan Review")
    assert plan.state == "pending"
    assert "legal-review" in evaluation.required_approvers


def test_hidden_by_conditional_display_until_its_answer_is_given(policy: Policy) -> None:
    hidden = check(run(policy), "API latency target")
    assert hidden.outcome == Outcome.not_applicable
    assert hidden.reason.startswith(
        "hidden: conditionalDisplay shows it when Local.intake is 'API'"
    )
    shown = check(run(policy, {**GOOD, "channels": ["API", "Batch"]}), "API latency target")
    assert shown.outcome == Outcome.missing


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("risk", "Critical", "'Critical' is not an option (options: 'High', 'Low')"),
        ("risk", ["High"], "expected one option; got a list"),
        ("rows", 0, "0 is below the minimum 1"),
        ("rows", 5000, "5000 is above the maximum 1000"),
        ("rows", "many", "expected a number; got 'many'"),
        ("start", "2025-02-30", "expected an ISO 8601 date (YYYY-MM-DD); got '2025-02-30'"),
        ("start", "next week", "expected an ISO 8601 date (YYYY-MM-DD); got 'next week'"),
        ("channels", "API", "expected a list of options for a checkbox input; got 'API'"),
        ("channels", ["API", "Email"], "'Email' is not an option (options: 'API', 'Batch')"),
        ("purpose", {"text": "x"}, "expected text; got dict {'text': 'x'}"),
    ],
)
def test_invalid_answers_fail_with_the_reason_and_are_asked_again(
    policy: Policy, key: str, value: Any, problem: str
) -> None:
    evaluation = run(policy, {**GOOD, key: value})
    (failed,) = [c for c in evaluation.checks if c.outcome == Outcome.failed]
    assert failed.alias == key
    assert failed.reason == f"invalid answer: {problem}"
    assert evaluation.status == EvaluationStatus.FAILED
    (finding,) = evaluation.findings
    assert (finding.severity, finding.stage, finding.check_key) == ("Medium", "Intake", failed.key)
    assert finding.approval == "Intake Sign Off"
    assert [q.problem for q in evaluation.open_questions if q.key == failed.key] == [problem]


def test_valid_answers_are_normalised(policy: Policy) -> None:
    evaluation = run(
        policy, {**GOOD, "risk": "high", "rows": "12", "start": "2025-03-01T10:00:00Z"}
    )
    assert check(evaluation, "Risk").value == "High"
    assert check(evaluation, "Rows").value == 12.0
    assert check(evaluation, "Start date").value == "2025-03-01"
    assert evaluation.classification == "High"


def test_answers_are_found_by_evidence_key_alias_or_evidence_set(policy: Policy) -> None:
    by_key = run(policy, {"Local.intake[1]": "A", "Local.intake[0]": "Low"})
    by_alias = run(policy, {"purpose": "A", "risk": "Low"})
    by_set = run(policy, {"Local.intake": {"1": "A", "risk": "Low"}})
    for evaluation in (by_key, by_alias, by_set):
        assert check(evaluation, "Purpose").outcome == Outcome.satisfied
        assert check(evaluation, "Risk").value == "Low"


def test_yes_no_booleans_answer_yes_no_radios() -> None:
    loaded = parse_policy(
        "stages:\n  - name: S\n    evidenceSet:\n      - id: Local.q\n        name: Q\n        definition:\n"
        "          - artifactType: input\n            details: {type: radio, label: Ok?, options: ['Yes', 'No']}\n"
    )
    evaluation = evaluate_policy(loaded.policy, {"answers": {"Local.q": True}})
    assert evaluation.checks[0].value == "Yes"


def test_metrics_match_aliases_case_insensitively_and_thresholds_decide(policy: Policy) -> None:
    passing = check(run(policy, metrics={"AUC": 0.8}), "roc_auc")
    assert (passing.outcome, passing.reason) == (
        Outcome.satisfied,
        "roc_auc = 0.8 (logged as AUC) meets >= 0.75",
    )
    evaluation = run(policy, metrics={"Roc_Auc": 0.7})
    failing = check(evaluation, "roc_auc")
    assert (failing.outcome, failing.reason) == (
        Outcome.failed,
        "roc_auc = 0.7 (logged as Roc_Auc) fails >= 0.75",
    )
    assert evaluation.status == EvaluationStatus.FAILED
    (finding,) = evaluation.findings
    assert (finding.severity, finding.title, finding.stage) == (
        "High",
        "roc_auc below standard",
        "Validation",
    )
    assert finding.approval == "Validation Sign Off"


def test_a_missing_metric_fails_but_a_review_only_metric_never_does(policy: Policy) -> None:
    evaluation = run(policy, metrics={})
    missing = check(evaluation, "roc_auc")
    assert (missing.outcome, missing.reason) == (
        Outcome.failed,
        "metric not reported (looked for roc_auc, auc)",
    )
    brier = check(evaluation, "Brier score")
    assert brier.outcome == Outcome.missing and brier.counted is False
    assert evaluation.findings[0].title == "Metric not reported: roc_auc"
    review_only = run(policy, metrics={"auc": 0.9, "brier": 0.4})
    assert check(review_only, "Brier score").reason == "brier = 0.4; no threshold, shown for review"
    assert not any(c.outcome == Outcome.failed for c in review_only.checks)


def test_files_and_scripted_checks(policy: Policy) -> None:
    evaluation = run(policy, {**GOOD, "stability": {"status": "failed"}}, files={})
    assert check(evaluation, "Validation report").outcome == Outcome.missing
    assert [q.type for q in evaluation.open_questions] == ["textinput", "file"]
    scripted = check(evaluation, "Stability check")
    assert scripted.outcome == Outcome.failed
    assert evaluation.status == EvaluationStatus.FAILED


def test_rejected_approval_raises_a_finding_and_needs_review(policy: Policy) -> None:
    decisions = {
        "demo:intake-sign-off": {"decision": "reject", "approver": "mr-reviewer-1"},
        "demo:validation-sign-off": {"decision": "approve"},
    }
    evaluation = run(policy, approvals=decisions)
    states = {a.name: a.state.value for a in evaluation.approvals}
    assert states == {
        "Intake Sign Off": "rejected",
        "Validation Sign Off": "granted",
        "Plan Review": "not_required",
    }
    assert evaluation.status == EvaluationStatus.REQUIRES_REVIEW
    assert evaluation.findings[0].title == "Intake Sign Off rejected"
    assert evaluation.gates[0].state == "open"


def test_approval_questions_belong_to_the_approval_not_to_the_checks(policy: Policy) -> None:
    evaluation = run(policy)
    assert not any(c.evidence_set == "Local.intake-signoff" for c in evaluation.checks)
    intake = next(a for a in evaluation.approvals if a.name == "Intake Sign Off")
    assert [q.label for q in intake.questions] == ["Approve?"]
    assert intake.stage == "Intake" and intake.approvers == ["modeling-review"]
    validation = next(a for a in evaluation.approvals if a.name == "Validation Sign Off")
    assert validation.gates == ["Registry"]


def test_result_is_json_and_has_the_seed_shape(policy: Policy) -> None:
    data = run(policy).model_dump(mode="json")
    text = json.dumps(data)
    assert {"compliance_score", "status", "checks", "required_approvers"} <= set(data)
    assert json.loads(text)["status"] == "REQUIRES_REVIEW"
    assert FrameworkEvaluation.model_validate(data) == run(policy)


def test_evidence_bundle_may_be_given_as_a_plain_mapping(policy: Policy) -> None:
    bundle = EvidenceBundle(
        answers=dict(GOOD), metrics={"auc": 0.9}, files={"Validation report": "x"}
    )
    assert (
        evaluate_policy(policy, bundle).compliance_score
        == evaluate_policy(policy, bundle.model_dump()).compliance_score
    )


def test_a_rule_that_cannot_run_is_reported_not_raised() -> None:
    loaded = parse_policy(
        'classification:\n  rule: |\n    return string(classificationInputs["x"].(string)[3])\n'
        "stages:\n  - name: S\n    evidenceSet:\n      - id: Local.q\n        name: Q\n        definition:\n"
        "          - artifactType: input\n            aliasForClassification: x\n"
        "            details: {type: textinput, label: X}\n"
    )
    evaluation = evaluate_policy(loaded.policy, {"answers": {"x": "ab"}})
    assert evaluation.classification is None
    assert (
        evaluation.classification_error
        and "classification rule failed" in evaluation.classification_error
    )
    assert evaluation.status == EvaluationStatus.REQUIRES_REVIEW


def test_reference_model_risk_policy_for_a_strong_tier_three_regressor() -> None:
    library = PolicyLibrary.load(reference_dir())
    policy = library.get("model_risk_management").policy
    evaluation = evaluate_policy(
        policy,
        {
            "answers": {
                "model-risk": "Low",
                "regulatory-impact": "No",
                "model-family": "Regression",
            },
            "metrics": {"test_r2": 0.71, "test_rmse": 3.2},
        },
        framework="model_risk_management",
    )
    assert evaluation.classification == "Tier 3 regressor"
    outcomes = {c.key: c.outcome.value for c in evaluation.checks}
    assert outcomes["Local.mrm-regressor-performance:r2"] == "satisfied"
    assert outcomes["Local.mrm-classifier-performance:roc_auc"] == "not_applicable"
    assert outcomes["Local.mrm-challenger"] == "not_applicable"
    states = {a.name: a.state.value for a in evaluation.approvals}
    assert (
        states["Regulatory Compliance Review"] == "not_required"
    )  # tier 3: no compliance evidence
    assert states["Model Risk Sign Off"] == "pending"


def test_public_domino_policies_evaluate_without_errors(shared_policies: Path) -> None:
    """Real policies the engine has never seen: evaluation must not trip over their quirks."""
    files = sorted((shared_policies / "domino-examples").glob("*.yml")) + sorted(
        shared_policies.glob("*.yaml")
    )
    assert len(files) == 7
    for file in files:
        loaded = __import__("governance").load_policy(file)
        evaluation = evaluate_policy(loaded.policy, {}, framework=loaded.framework)
        assert evaluation.status in (EvaluationStatus.REQUIRES_REVIEW, EvaluationStatus.FAILED), (
            file.name
        )
        assert evaluation.checks, file.name
        json.dumps(evaluation.model_dump(mode="json"))


def test_approver_answers_recorded_with_a_decision_answer_the_approval_questions(
    policy: Policy,
) -> None:
    decisions = {
        "demo:intake-sign-off": {"decision": "approve", "answers": {"Local.intake-signoff": "Yes"}}
    }
    intake = next(
        a for a in run(policy, approvals=decisions).approvals if a.name == "Intake Sign Off"
    )
    assert intake.state == "granted" and intake.questions == []


def test_a_loaded_policy_brings_its_framework_and_title() -> None:
    library = PolicyLibrary.load(reference_dir())
    evaluation = evaluate_policy(library.get("nist_rmf"), {})
    assert (evaluation.framework, evaluation.title) == (
        "nist_rmf",
        "NIST AI Risk Management Framework",
    )
    assert evaluation.approvals[0].id == "nist_rmf:governance-sign-off"
