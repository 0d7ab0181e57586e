"""Answers from people fill only the questions they were asked.

An approver answers the questions of *their own* approval's evidence (``Decision``,
``Validation outcome``...) and nothing else: an answer file that also says
``model-risk: Low`` must not re-classify the project. And what they answer must not
contradict what they decide: ``Decision: Not approved`` with decision ``approve`` is
refused, with one line, before it counts.

Pure functions over a :class:`Policy`; the approval node calls
:func:`check_approval_answers` from its decision check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mpm.governance.evaluation import approval_id, validate_answer
from mpm.governance.policy import InputArtifact, Policy

__all__ = ["approval_questions", "check_approval_answers", "contradiction"]

NEGATIVE = frozenset({"not approved", "declined", "rejected", "no", "not accepted", "denied"})
POSITIVE_PREFIXES = ("approved", "yes", "accepted")


def approval_questions(policy: Policy, approval_name: str) -> dict[str, Any]:
    """Every key an answer to the approval's own evidence may use -> the placed input.

    Keys: the evidence key, its ``[0]`` form for single-input sets, the alias and the label."""
    keys: dict[str, Any] = {}
    for placed in policy.inputs():
        approval = placed.approval
        if approval is None or approval.name != approval_name:
            continue
        artifact = placed.artifact
        names = [placed.key, getattr(artifact, "alias_for_classification", None)]
        if not placed.key.endswith("]"):
            names.append(placed.key + "[0]")
        label = getattr(getattr(artifact, "details", None), "label", None)
        names.append(label)
        for name in names:
            if name:
                keys.setdefault(str(name), placed)
    return keys


def contradiction(decision: str, artifact: InputArtifact, value: Any) -> str | None:
    """Why an option answer contradicts the decision (approve + a negative option, reject +
    a positive one), or None."""
    if artifact.details.type not in ("radio", "select"):
        return None
    chosen, problem = validate_answer(artifact, value)
    if problem is not None or not isinstance(chosen, str):
        return None
    folded = chosen.strip().casefold()
    if decision == "approve" and folded in NEGATIVE:
        return (
            f"the answer {chosen!r} to {artifact.details.label!r} contradicts the decision approve"
        )
    if decision == "reject" and folded.startswith(POSITIVE_PREFIXES):
        return (
            f"the answer {chosen!r} to {artifact.details.label!r} contradicts the decision reject"
        )
    return None


def check_approval_answers(
    policy: Policy | None, approval_name: str, decision: Any, answers: Any
) -> tuple[dict[str, Any], str | None]:
    """``(the answers that count, why the decision is refused or None)``.

    Only answers to the approval's own evidence questions are kept (others are dropped,
    so an approver cannot fill another question or overwrite a derived fact); an answer
    that contradicts the decision refuses the decision. Without a policy (a risk
    acceptance: it has no questions) no answer is kept."""
    if answers is None:
        return {}, None
    if not isinstance(answers, Mapping):
        return (
            {},
            f"answers: expected a mapping of question -> answer; got {type(answers).__name__}",
        )
    if policy is None:
        return {}, None
    questions = approval_questions(policy, approval_name)
    kept: dict[str, Any] = {}
    for key, value in answers.items():
        placed = questions.get(str(key))
        if placed is None:
            continue
        problem = contradiction(str(decision), placed.artifact, value)
        if problem is not None:
            return {}, problem
        kept[str(key)] = value
    return kept, None


def approval_answers_by_id(
    policy: Policy, framework: str, approvals: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Approval id -> the answers its approver gave to its own questions (others dropped)."""
    by_id: dict[str, dict[str, Any]] = {}
    for _, approval in policy.approvals():
        aid = approval_id(framework, approval.name)
        record = approvals.get(aid) or approvals.get(approval.name)
        answers = record.get("answers") if isinstance(record, Mapping) else None
        if isinstance(answers, Mapping):
            questions = approval_questions(policy, approval.name)
            by_id[aid] = {str(k): v for k, v in answers.items() if str(k) in questions}
    return by_id
