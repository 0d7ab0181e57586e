"""Sample project states for trying the governance engine without running a project.

Part of the product, not only of the tests: a notebook user, a benchmark or a test of
your own can start from a realistic state and change one thing. The states have the
shape of the graph state (``requirements``, ``results`` per stage, ``approvals``...) and
record the evidence keys that ``reference/governance/evidence_map.yaml`` reads.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["credit_project_state", "llm_project_state", "with_signed_approvals"]

_CREDIT: dict[str, Any] = {
    "thread_id": "sample-credit",
    "requirements": {
        "project_name": "Retail credit default model",
        "business_objective": "Predict 12-month default risk for retail loan applications to support "
        "underwriting decisions.",
        "constraints": ["explainable decisions", "no protected attributes as features"],
        "project_type": "ml_model",
        "model_type": "classification",
        "target_metric": "roc_auc",
        "success_threshold": 0.75,
        "target_column": "default_12m",
        "data_sources": [
            {"name": "applications", "uri": "synthetic:credit", "sensitivity": "pii", "rows": 5000},
            {"name": "bureau_scores", "uri": "synthetic:credit", "sensitivity": "personal"},
        ],
        "sensitive_attributes": ["age_band", "sex"],
        "risk_level": "high",
        "regulatory_impact": True,
        "ethical_ai_required": True,
        "deadline": "2025-09-30",
        "compute_tier": "small",
        "stakeholders": ["credit-risk-analytics", "retail-lending"],
        "requested_by": "ds-practitioner-1",
        "seed": 42,
    },
    "results": {
        "business_analysis": {
            "stage": "business_analysis",
            "status": "success",
            "evidence": {
                "consumption_method": "Real-time API",
                "externally_exposed": False,
                "data_categories": ["Customer records", "Transaction history"],
                "affects_individuals": True,
                "protected_characteristics": "Possibly, through proxies",
                "decision_autonomy": "Human approves each decision",
                "out_of_scope_uses": "Collections prioritisation; marketing eligibility.",
                "risk_tolerance": "At most 2% of approved loans default beyond plan in the first year.",
                "business_case_type": "A new model",
                "success_criterion": "roc_auc >= 0.75 on the hold-out set",
                "affected_groups": ["Applicants or customers"],
                "harm_severity": "Loss of access to an essential service",
                "lawful_basis": "Contract and legitimate interest; ECOA and FCRA apply.",
                "adverse_action_notices": "Yes",
                "applicable_regulations": [
                    "Fair lending (ECOA / Regulation B)",
                    "Fair Credit Reporting Act",
                ],
            },
        },
        "data_acquisition": {
            "stage": "data_acquisition",
            "status": "success",
            "metrics": {"n_rows": 5000, "missing_rate": 0.021, "data_quality_score": 0.97},
            "evidence": {
                "data_lineage": "Synthetic credit applications (seed 42) shaped like the loan origination system.",
                "data_quality_passed": True,
                "extract_date": "2025-05-02",
                "data_protection_controls": "Identifiers pseudonymised; data encrypted at rest; 24-month retention.",
                "access_control": "Single sign-on with role-based access",
                "privacy_practices": ["Data minimisation", "Pseudonymisation of identifiers"],
                "retention_months": 24,
            },
        },
        "model_development": {
            "stage": "model_development",
            "status": "success",
            "metrics": {"cv_roc_auc": 0.79},
            "evidence": {
                "methodology": "Gradient boosting compared with logistic regression and random forest; "
                "boosting won on cross-validated ROC AUC.",
                "limitations": "Not validated for small-business loans or applicants without bureau history.",
                "explanation_method": "Feature attributions (SHAP or similar)",
                "challenger_comparison": "Logistic regression challenger: ROC AUC 0.76 vs 0.81.",
                "mitigation_steps": ["Removed or transformed proxy features"],
                "mitigation_rationale": "Residual disparity is within policy after removing postcode.",
            },
        },
        "model_validation": {
            "stage": "model_validation",
            "status": "success",
            "metrics": {
                "test_roc_auc": 0.81,
                "test_accuracy": 0.78,
                "test_f1": 0.62,
                "demographic_parity_difference": 0.06,
                "equalized_odds_difference": 0.13,
            },
            "evidence": {
                "evaluation_approach": "Stratified 80/20 hold-out plus 5-fold cross-validation; "
                "majority-class baseline.",
                "conceptual_soundness": "Yes, with findings",
                "outcome_analysis": "Stable ROC AUC across income bands (0.78-0.83).",
                "stability_check": {"passed": True, "max_psi": 0.04},
                "model_card_published": True,
            },
            "artifacts": [
                {"name": "validation_report", "uri": "runs:/validation/validation_report.html"}
            ],
        },
    },
    "human_answers": {},
    "approvals": {
        "model_intake:intake-triage": {"decision": "approve", "approver": "mr-reviewer-1"},
        "nist_rmf:governance-sign-off": {"decision": "approve", "approver": "modeling-lead-1"},
        "nist_rmf:context-mapping-sign-off": {"decision": "approve", "approver": "mr-reviewer-2"},
        "model_risk_management:business-case-sign-off": {
            "decision": "approve",
            "approver": "lob-owner-1",
        },
        "model_intake:security-review": {"decision": "approve", "approver": "infosec-reviewer-1"},
        "model_intake:legal-review": {"decision": "approve", "approver": "legal-reviewer-1"},
        "ethical_ai:ethical-purpose-review": {
            "decision": "approve",
            "approver": "privacy-counsel-1",
        },
        "model_intake:intake-approval": {"decision": "approve", "approver": "mrm-officer-1"},
    },
}

_LLM: dict[str, Any] = {
    "requirements": {
        "project_name": "Support answer assistant",
        "business_objective": "Draft answers to customer support tickets for agents to review.",
        "project_type": "llm_application",
        "model_type": "llm",
        "target_metric": "exact_match",
        "success_threshold": 0.6,
        "data_sources": [{"name": "tickets", "uri": "synthetic:churn", "sensitivity": "internal"}],
        "risk_level": "medium",
    },
    "results": {
        "business_analysis": {
            "evidence": {
                "llm_provider": "vendor / general-purpose model / 2025-01",
                "llm_hosting": "Vendor cloud",
                "llm_vendor_agreement": True,
                "llm_audience": "Employees",
                "llm_prompt_data": ["Internal documents"],
            }
        },
        "model_validation": {
            "metrics": {"exact_match": 0.64, "rouge_l": 0.52},
            "evidence": {"red_team": True},
        },
    },
    "approvals": {},
}


def credit_project_state() -> dict[str, Any]:
    """A high-risk, regulated credit classifier on personal data, half-way through approvals.

    Four frameworks apply (intake, NIST RMF, ethical AI, model risk management); the
    equalized-odds difference (0.13) misses the ethical AI threshold (0.1).
    """
    return copy.deepcopy(_CREDIT)


def llm_project_state() -> dict[str, Any]:
    """An internal LLM assistant: external LLM governance applies; nothing is approved yet."""
    return copy.deepcopy(_LLM)


def with_signed_approvals(state: dict[str, Any], keys: Any) -> dict[str, Any]:
    """``state`` with its ``approvals`` map turned into signed audit entries, the only
    thing governance counts: each decision signed (``ssh-keygen -Y sign``) with the key of
    its approver in the key directory ``keys`` (``<keys>/<member-id>``). Governance must
    be loaded with an identity directory that binds those keys."""
    from mpm.governance.decisions import make_decision
    from mpm.governance.signatures import decision_payload

    state = copy.deepcopy(state)
    thread_id = state.setdefault("thread_id", "sample")
    entries = list(state.get("audit") or [])
    for approval_id, record in (state.get("approvals") or {}).items():
        request = {"type": "approval", "approval_id": approval_id, "thread_id": thread_id}
        signed = make_decision(
            request,
            approver=record["approver"],
            key=keys,
            decision=record["decision"],
            comment=record.get("comment", ""),
        )
        record["decision_id"] = signed["decision_id"]
        payload = decision_payload(
            thread_id=thread_id,
            approval_id=approval_id,
            request_sha256=signed["request_sha256"],
            decision=signed["decision"],
            comment=signed["comment"],
            answers=signed["answers"],
            signer=signed["approver"],
            decision_id=signed["decision_id"],
        )
        entries.append(
            {
                "seq": len(entries),
                "thread_id": thread_id,
                "approval_id": approval_id,
                "approver": signed["approver"],
                "decision": signed["decision"],
                "comment": signed["comment"],
                "accepted": True,
                "decision_id": signed["decision_id"],
                "payload": payload,
                "signature": signed["signature"],
            }
        )
    state["audit"] = entries
    return state
