"""Fail closed: what keeps a guarded action (model registration) from happening.

Approvals alone do not make a model registrable. Governance refuses the guarded actions
while

* a framework is ``FAILED`` -- every failed counted check is a *blocker*;
* the project's success criterion is unmet: the validation's test score against
  ``success_threshold`` (an upper bound for error metrics such as RMSE), or not measured
  at all once validation has finished;
* governance could not be evaluated (``ERROR``; handled where the report is missing).

A blocker stops blocking only when a *risk acceptance* of that exact finding is granted:
an ordinary approval in the merged workflow (``kind: risk_acceptance``), decided by the
groups ``workflow.yaml`` names in ``exception_approvers``, through the same approval
node, interrupt, signature and audit path as every other approval. Its id carries the
finding id and a hash of the finding's evidence, so a later, different failure of the
same check is a new finding with a new id that the earlier acceptance does not cover.
An acceptance is offered once the project stage the finding belongs to has finished (its
evidence is final for now); before that the blocker just blocks.

Pure functions over the evaluations and the project state: no I/O, no graph imports.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from mpm.governance.evaluation import (
    CheckResult,
    EvaluationStatus,
    FrameworkEvaluation,
    Outcome,
    slugify,
)
from mpm.governance.policy import Policy

__all__ = [
    "CRITERIA_FRAMEWORK",
    "LOWER_IS_BETTER",
    "RISK_ACCEPTANCE",
    "Blocker",
    "Criterion",
    "FailClosed",
    "acceptance_id",
    "evidence_hash",
    "fail_closed",
    "find_blockers",
    "success_criterion",
]

RISK_ACCEPTANCE = "risk_acceptance"
CRITERIA_FRAMEWORK = "success_criteria"
CRITERIA_ROUND = "model_validation"
# Error metrics: the success threshold is an upper bound (the same set as graph/state.py
# and tools/metrics.py; governance imports neither, a test keeps the three equal).
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mape"})
_FINISHED = {"success", "failed_with_fallback", "failed"}


class Criterion(BaseModel):
    """The project's success criterion and what validation measured."""

    metric: str
    threshold: float
    lower_is_better: bool
    measured: bool = False
    value: float | None = None
    met: bool | None = None
    source: str | None = None

    @property
    def text(self) -> str:
        op = "<=" if self.lower_is_better else ">="
        return f"test {self.metric} {op} {self.threshold:g}"


class Blocker(BaseModel):
    """One reason the guarded actions are refused, and whether a risk acceptance covers it."""

    finding_id: str
    kind: Literal["governance_failed", "criteria_unmet", "criteria_pending", "validation_finding"]
    framework: str
    stage: str = Field(description="policy stage (or project stage for the criterion)")
    round: str = Field(description="project stage after which an acceptance may be asked")
    title: str
    description: str
    evidence_hash: str
    acceptance_id: str | None = Field(
        default=None, description="the risk-acceptance approval that may cover it"
    )
    accepted: bool = False
    accepted_by: str | None = None
    accepted_at: str | None = None


class FailClosed(BaseModel):
    """Whether the guarded actions may run, and why not."""

    blocked: bool
    status: Literal["clear", "failed_governance", "failed_criteria", "pending"] = "clear"
    reasons: list[str] = Field(default_factory=list)
    blockers: list[Blocker] = Field(default_factory=list)
    accepted: list[Blocker] = Field(default_factory=list)
    criterion: Criterion | None = None


def evidence_hash(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of what the finding says (value, threshold, reason)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def acceptance_id(framework: str, finding_key: str, digest: str) -> str:
    """``{framework}:risk-acceptance-{slug of the finding}-{first 12 hex of its hash}``."""
    return f"{framework}:risk-acceptance-{slugify(finding_key)[:60]}-{digest[:12]}"


# --------------------------------------------------------------------------- criterion


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def success_criterion(
    requirements: Mapping[str, Any], results: Mapping[str, Any]
) -> Criterion | None:
    """The criterion and the validation's measurement; None for projects without one (LLM).

    The measurement is the validator's own ``outputs.test_score`` (else the logged
    ``metrics.test_<metric>``); whether it meets the threshold is recomputed here, never
    read from the validator's ``meets_threshold``.
    """
    if str(requirements.get("model_type", "")).casefold() not in ("classification", "regression"):
        return None
    metric = str(requirements.get("target_metric") or "").casefold()
    threshold = _number(requirements.get("success_threshold"))
    if not metric or threshold is None:
        return None
    lower = metric in LOWER_IS_BETTER
    criterion = Criterion(metric=metric, threshold=threshold, lower_is_better=lower)
    validation = results.get(CRITERIA_ROUND) or {}
    if not isinstance(validation, Mapping) or validation.get("status") not in _FINISHED:
        return criterion
    outputs = validation.get("outputs") or {}
    metrics = validation.get("metrics") or {}
    for value, source in (
        (outputs.get("test_score"), f"results.{CRITERIA_ROUND}.outputs.test_score"),
        (metrics.get(f"test_{metric}"), f"results.{CRITERIA_ROUND}.metrics.test_{metric}"),
    ):
        number = _number(value)
        if number is not None:
            met = number <= threshold if lower else number >= threshold
            return criterion.model_copy(
                update={"measured": True, "value": number, "met": met, "source": source}
            )
    return criterion.model_copy(update={"measured": True})  # finished, but nothing measured


# --------------------------------------------------------------------------- blockers


def _round_of(policy: Policy | None, framework: str, stage: str, config: Any) -> str:
    """The project stage a policy stage is aligned with (as the workflow aligns it)."""
    alignment = (config.alignment or {}).get(framework, {})
    current = config.first_round
    for policy_stage in policy.stages if policy is not None else []:
        current = alignment.get(policy_stage.name, current)
        if policy_stage.name == stage:
            return current
    return alignment.get(stage, current)


def _check_blocker(
    framework: str, check: CheckResult, evaluation: FrameworkEvaluation, round_: str
) -> Blocker:
    key = check.key
    digest = evidence_hash(
        {
            "framework": framework,
            "check": key,
            "outcome": check.outcome.value,
            "value": check.value,
            "threshold": check.threshold,
            "reason": check.reason,
        }
    )
    finding = next((f for f in evaluation.findings if f.check_key == key), None)
    return Blocker(
        finding_id=finding.id if finding else f"{framework}:{key}",
        kind="governance_failed",
        framework=framework,
        stage=check.stage,
        round=round_,
        title=finding.title if finding else f"{check.label} failed",
        description=f"{evaluation.title or framework}: {check.label}: {check.reason}",
        evidence_hash=digest,
    )


def _criterion_blocker(criterion: Criterion) -> Blocker | None:
    if criterion.met:
        return None
    if not criterion.measured:
        return Blocker(
            finding_id=f"{CRITERIA_FRAMEWORK}:{criterion.metric}",
            kind="criteria_pending",
            framework=CRITERIA_FRAMEWORK,
            stage=CRITERIA_ROUND,
            round=CRITERIA_ROUND,
            title="Success criterion not measured yet",
            description=f"success criterion {criterion.text}: validation has not measured it yet",
            evidence_hash=evidence_hash({"criterion": criterion.text, "measured": False}),
        )
    if criterion.value is None:
        description = (
            f"success criterion {criterion.text}: validation finished without a test score"
        )
        title = "Success criterion not measured"
    else:
        description = f"success criterion {criterion.text} not met: test {criterion.metric} = {criterion.value:.4g}"
        title = "Success criterion not met"
    digest = evidence_hash(
        {"criterion": criterion.text, "value": criterion.value, "source": criterion.source}
    )
    return Blocker(
        finding_id=f"{CRITERIA_FRAMEWORK}:{criterion.metric}",
        kind="criteria_unmet",
        framework=CRITERIA_FRAMEWORK,
        stage=CRITERIA_ROUND,
        round=CRITERIA_ROUND,
        title=title,
        description=description,
        evidence_hash=digest,
    )


VALIDATION_FRAMEWORK = "validation"


def _validation_blockers(results: Mapping[str, Any]) -> list[Blocker]:
    """The validator's blocking findings (a likely leak in a model input, a failed
    data-quality gate): each blocks on its own, under its stable id, until a risk
    acceptance of exactly that finding and evidence is granted."""
    validation = results.get(CRITERIA_ROUND) or {}
    if not isinstance(validation, Mapping) or validation.get("status") not in _FINISHED:
        return []
    found = []
    for f in (validation.get("outputs") or {}).get("blocking_findings") or []:
        if not isinstance(f, Mapping) or not f.get("id"):
            continue
        digest = evidence_hash(
            {"id": f.get("id"), "reason": f.get("reason"), "evidence": f.get("evidence")}
        )
        found.append(
            Blocker(
                finding_id=f"{VALIDATION_FRAMEWORK}:{f['id']}",
                kind="validation_finding",
                framework=VALIDATION_FRAMEWORK,
                stage=CRITERIA_ROUND,
                round=CRITERIA_ROUND,
                title=f"Validation finding {f['id']}",
                description=f"validation finding {f['id']}: {f.get('reason')}",
                evidence_hash=digest,
            )
        )
    return found


def find_blockers(
    evaluations: Mapping[str, FrameworkEvaluation],
    policies: Mapping[str, Policy],
    requirements: Mapping[str, Any],
    results: Mapping[str, Any],
    config: Any,
) -> tuple[list[Blocker], Criterion | None]:
    """Every blocker of the project now, each with the acceptance id that may cover it.

    An acceptance id is given only when the workflow names exception approvers and the
    project stage the finding belongs to has finished."""
    exception_groups = list(getattr(config, "exception_approvers", []) or [])
    found: list[Blocker] = []
    for framework, evaluation in evaluations.items():
        if evaluation.status != EvaluationStatus.FAILED:
            continue
        for check in evaluation.checks:
            if check.outcome == Outcome.failed and check.counted:
                round_ = _round_of(policies.get(framework), framework, check.stage, config)
                found.append(_check_blocker(framework, check, evaluation, round_))
    criterion = success_criterion(requirements, results)
    if criterion is not None:
        blocker = _criterion_blocker(criterion)
        if blocker is not None:
            found.append(blocker)
    found.extend(_validation_blockers(results))
    for blocker in found:
        stage_done = (results.get(blocker.round) or {}).get("status") in _FINISHED
        if exception_groups and stage_done and blocker.kind != "criteria_pending":
            key = blocker.finding_id.split(":", 1)[-1]
            blocker.acceptance_id = acceptance_id(blocker.framework, key, blocker.evidence_hash)
    return found, criterion


def fail_closed(
    blockers: list[Blocker],
    decisions: Mapping[str, Any],
    states: Mapping[str, str],
    criterion: Criterion | None = None,
) -> FailClosed:
    """Mark the blockers a granted acceptance covers; say whether the actions stay refused."""
    open_: list[Blocker] = []
    accepted: list[Blocker] = []
    for blocker in blockers:
        aid = blocker.acceptance_id
        if aid and states.get(aid) == "granted":
            record = decisions.get(aid) if isinstance(decisions, Mapping) else None
            record = record if isinstance(record, Mapping) else {}
            accepted.append(
                blocker.model_copy(
                    update={
                        "accepted": True,
                        "accepted_by": str(record.get("approver") or "") or None,
                        "accepted_at": str(record.get("decided_at") or "") or None,
                    }
                )
            )
        else:
            open_.append(blocker)
    if any(b.kind == "governance_failed" for b in open_):
        status = "failed_governance"
    elif any(b.kind in {"criteria_unmet", "validation_finding"} for b in open_):
        status = "failed_criteria"
    elif open_:
        status = "pending"
    else:
        status = "clear"
    reasons = [
        b.description
        + (
            f" (risk acceptance {b.acceptance_id} not granted)"
            if b.acceptance_id
            else (" (no risk acceptance possible yet)" if b.kind != "criteria_pending" else "")
        )
        for b in open_
    ]
    return FailClosed(
        blocked=bool(open_),
        status=status,  # type: ignore[arg-type]
        reasons=reasons,
        blockers=open_,
        accepted=accepted,
        criterion=criterion,
    )
