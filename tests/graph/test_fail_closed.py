"""Fail closed, on real tools and real interrupts: a FAILED framework (the credit example's
fairness failure) or an unmet success criterion keeps the model out of the registry,
whatever the ordinary approvals say, until a risk acceptance of that exact finding by the
workflow's exception approvers is granted through the same approval path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.graph.helpers import approver_for, auto_answer, decision, example, runner


def _drive(r: Any, outcome: Any, on_acceptance: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Answer questions, approve ordinary approvals; risk acceptances go to ``on_acceptance``
    (returns the verdict), called with the request and the thread's state at that moment."""
    requested_by = (outcome.values.get("requirements") or {}).get("requested_by")
    seen: list[dict[str, Any]] = []
    for _ in range(80):
        if not outcome.interrupts:
            return outcome, seen
        value = outcome.interrupts[0]["value"]
        if value["type"] == "open_questions":
            answers = {q["key"]: auto_answer(q) for q in value["questions"]}
            outcome = r.answer(outcome.thread_id, "open_questions", answers)
            continue
        verdict = "approve"
        if value.get("kind") == "risk_acceptance":
            seen.append(value)
            verdict = on_acceptance(value, r.snapshot(outcome.thread_id).values)
        outcome = r.answer(
            outcome.thread_id,
            "approval",
            decision(value, approver_for(value, requested_by), verdict, comment=f"{verdict} risk"),
            key=value["approval_id"],
        )
    raise AssertionError("the run did not finish")


def _registered(workspace: Path) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    return list(client.search_model_versions())


def _credit() -> dict[str, Any]:
    req = example("credit_risk")
    req["data_sources"][0]["rows"] = 1500
    return req


def test_credit_fairness_failure_is_not_registered_until_its_risk_is_accepted(
    tmp_path: Path,
) -> None:
    refused_ws, accepted_ws = tmp_path / "refused", tmp_path / "accepted"
    refused_ws.mkdir()
    accepted_ws.mkdir()
    while_waiting: dict[str, Any] = {}

    def refuse(request: dict[str, Any], values: dict[str, Any]) -> str:
        while_waiting.setdefault("values", values)
        return "reject"

    r = runner(refused_ws, toolset="real", tracking=True)
    outcome, asked = _drive(r, r.start("refused", {"requirements": _credit()}), refuse)
    fairness = [a for a in asked if a["finding"]["id"].startswith("ethical_ai:")]
    assert fairness, [a["finding"]["id"] for a in asked]
    assert all(a["approver_groups"] == ["model-risk-leadership"] for a in asked)
    assert all(a["finding"]["evidence_hash"][:12] in a["approval_id"] for a in asked)
    # while the acceptance was pending: governance FAILED, every ordinary gate could be
    # open, yet registration was not ready and the reason named the finding
    waiting = while_waiting["values"]
    assert waiting["governance"]["overall_status"] == "FAILED"
    assert "mlops" not in waiting["results"]
    assert waiting["governance"]["fail_closed"]["blocked"]
    assert any("Ethical AI" in r for r in waiting["governance"]["fail_closed"]["reasons"])

    values = outcome.values
    assert outcome.status == values["status"] == "failed_governance"
    assert "mlops" not in values["results"]
    assert _registered(refused_ws) == []
    refused = [e for e in values["events"] if e["event"] == "registration_refused"]
    assert refused and "Ethical AI" in refused[0]["detail"]
    summary = Path(values["deliverables"]["files"]["executive_summary.md"]).read_text()
    assert "Not registered: failed governance" in summary and "Ethical AI" in summary

    # the same project, the same finding, accepted by an exception approver: registered
    r = runner(accepted_ws, toolset="real", tracking=True)
    outcome, asked_again = _drive(
        r, r.start("accepted", {"requirements": _credit()}), lambda *_: "approve"
    )
    values = outcome.values
    # registered; "partial" only because the deliverables check still reports the fairness gap
    assert outcome.status in {"completed", "partial"}, values["status"]
    assert values["deliverables"]["registered_model"]["model_uri"]
    versions = _registered(accepted_ws)
    assert len(versions) == 1
    accepted = values["governance"]["fail_closed"]["accepted"]
    accepted_ids = {b["finding_id"] for b in accepted}
    assert {a["finding"]["id"] for a in fairness} <= accepted_ids
    approver = next(
        d["approver"] for k, d in values["approvals"].items() if k == fairness[0]["approval_id"]
    )
    assert approver in {"mrm-head-1", "cro-delegate-1"}
    tags = versions[0].tags
    assert fairness[0]["finding"]["id"] in tags["mpm.risk_accepted"]
    assert approver in tags["mpm.risk_accepted"]
    # registered under a risk acceptance, governance FAILED: never the champion
    assert tags["mpm.governance_status"] == values["governance"]["overall_status"] == "FAILED"
    assert tags["mpm.champion"] == "false" and "FAILED" in tags["mpm.champion_reason"]
    from mlflow import MlflowClient

    registry = MlflowClient(f"sqlite:///{accepted_ws / 'mlflow.db'}")
    assert "champion" not in registry.get_registered_model(versions[0].name).aliases
    summary = Path(values["deliverables"]["files"]["executive_summary.md"]).read_text()
    assert "Risk accepted" in summary and approver in summary
    dashboard = Path(values["governance"]["files"]["dashboard"]).read_text()
    assert "Risk accepted" in dashboard and approver in dashboard


def test_model_below_its_success_threshold_is_not_registered(tmp_path: Path) -> None:
    req = example("breast_cancer", success_threshold=0.9999, target_metric="roc_auc")
    r = runner(tmp_path, toolset="real", tracking=True)
    outcome, asked = _drive(r, r.start("low", {"requirements": req}), lambda *_: "reject")
    criteria = [a for a in asked if a["finding"]["id"].startswith("success_criteria:")]
    assert criteria and "not met" in criteria[0]["finding"]["description"]
    assert outcome.status == "failed_criteria"
    assert "mlops" not in outcome.values["results"]
    assert _registered(tmp_path) == []
    guarded = outcome.values["governance"]["fail_closed"]
    assert guarded["status"] == "failed_criteria"
    assert any("roc_auc >= 0.9999 not met" in reason for reason in guarded["reasons"])


@pytest.mark.parametrize(
    ("metric", "threshold", "score", "refused"),
    [
        ("roc_auc", 0.9, 0.85, True),
        ("roc_auc", 0.8, 0.85, False),
        ("rmse", 40.0, 55.0, True),
        ("rmse", 60.0, 55.0, False),
    ],
)
def test_last_check_before_the_registry_is_direction_aware(
    metric: str, threshold: float, score: float, refused: bool
) -> None:
    from mpm.agents.mlops_engineer import registration_refusal

    upstream = {"model_validation": {"outputs": {"test_score": score}}}
    req = {"target_metric": metric, "success_threshold": threshold}
    open_context = {"registration": {"blocked": False, "reasons": [], "accepted": []}}
    problem = registration_refusal(open_context, req, upstream)
    assert (problem is not None) == refused, problem
    accepted = {
        "registration": {
            "blocked": False,
            "accepted": [{"finding_id": f"success_criteria:{metric}", "accepted_by": "x"}],
        }
    }
    assert registration_refusal(accepted, req, upstream) is None
    # a context that says blocked, or governance in ERROR, refuses whatever the numbers
    blocked = {"registration": {"blocked": True, "reasons": ["Ethical AI: dp failed"]}}
    assert "dp failed" in (registration_refusal(blocked, req, upstream) or "")
    assert registration_refusal({"overall_status": "ERROR"}, req, upstream)


def test_approve_with_a_not_approved_evidence_answer_is_refused_and_re_asked(
    tmp_path: Path,
) -> None:
    from mpm.governance import load_governance_context
    from mpm.governance.answers import NEGATIVE, approval_questions

    library = load_governance_context().library
    r = runner(tmp_path)
    outcome = r.start("contradiction", {"requirements": example("breast_cancer")})
    for _ in range(40):
        value = outcome.interrupts[0]["value"]
        if value["type"] == "open_questions":
            answers = {q["key"]: auto_answer(q) for q in value["questions"]}
            outcome = r.answer(outcome.thread_id, "open_questions", answers)
            continue
        policy = library.get(value["frameworks"][0]).policy
        negative = {
            key: option
            for key, placed in approval_questions(policy, value["name"]).items()
            if placed.key == key
            for option in placed.artifact.details.option_values
            if option.casefold() in NEGATIVE
        }
        if negative:
            break
        outcome = r.answer(
            outcome.thread_id,
            "approval",
            decision(value, approver_for(value, None)),
            key=value["approval_id"],
        )
    else:
        raise AssertionError("no approval with a negative evidence option was asked")
    contradicting = decision(value, approver_for(value, None), answers=negative)
    outcome = r.answer(outcome.thread_id, "approval", contradicting, key=value["approval_id"])
    again = [
        i["value"]
        for i in outcome.interrupts
        if i["value"].get("approval_id") == value["approval_id"]
    ]
    assert again, "the approval is still pending: asked again in the same task"
    assert value["approval_id"] not in (outcome.values.get("approvals") or {})
    refusal = again[0]["refusals"][-1]
    assert "contradicts the decision approve" in refusal["reason"] and "\n" not in refusal["reason"]
    # the same approver deciding consistently is accepted
    outcome = r.answer(
        outcome.thread_id,
        "approval",
        decision(value, approver_for(value, None)),
        key=value["approval_id"],
    )
    assert outcome.values["approvals"][value["approval_id"]]["decision"] == "approve"


def test_free_text_project_type_still_gets_frameworks_and_approvals(tmp_path: Path) -> None:
    """``project_type: forecasting`` used to make no framework apply: registered with zero
    approvals. Now intake and NIST apply and registration waits for their approvals."""
    r = runner(tmp_path)
    req = example("breast_cancer", project_type="forecasting")
    outcome = r.start("forecasting", {"requirements": req})
    gov = outcome.values["governance"]
    assert {"model_intake", "nist_rmf"} <= set(gov["frameworks"])
    assert [a for a in gov["approvals"] if a["kind"] == "approval"]
    assert any(g["blocks"] == ["mlops"] for g in outcome.values["plan"]["gates"])
    assert "mlops" not in outcome.values["results"]
