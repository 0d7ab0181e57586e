"""Evaluate one policy against the evidence of one project.

What a policy asks becomes a list of checks, each with an outcome and the reason for it:

* ``satisfied`` -- answered validly / metric meets its threshold / file attached /
  scripted or monitoring check reported a result that is not a failure;
* ``failed`` -- an answer that does not fit its input (option not offered, number out of
  range, malformed date, checkbox not a list...), a metric below its threshold or not
  reported at all (Domino: "metric not found: check fails"), a scripted check that
  reported failure;
* ``missing`` -- nobody answered yet (returned again as an :class:`OpenQuestion`);
* ``not_applicable`` -- hidden by the evidence set's ``visibilityRule`` for this
  classification, by the input's ``conditionalDisplay``, or disabled in the policy.

Checks that do not count towards the score (``counted=False``): metrics without a
threshold (shown for review, no pass/fail) and optional inputs. Guidance is not a check.
Questions inside an approval's evidence belong to that approval: the approver answers
them when deciding, so they are listed on the :class:`ApprovalRequirement`, not as checks.

``compliance_score`` = satisfied / counted applicable checks (1.0 when a policy asks for
nothing). ``status``:

* ``FAILED`` when any counted check failed (a metric threshold missed or unreported, an
  invalid answer, a failed scripted check);
* ``REQUIRES_REVIEW`` when nothing failed but a counted check is missing, the
  classification rule could not be evaluated, or an approval is still required and not
  granted (pending, rejected or sent back);
* ``PASSED`` otherwise.

An approval is *not required* when the evidence of its stage is entirely hidden by
visibility rules (the classification routed the project around it, as the published
ModelIntake example does for its security and legal questionnaires). This is mpm's
reading; Domino's documentation does not say how hidden stages and approvals interact.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field

from mpm.governance.evidence import EvidenceBundle
from mpm.governance.policy import (
    MULTI_VALUE_INPUT_TYPES,
    EvidenceSet,
    FileDetails,
    GuidanceArtifact,
    InputArtifact,
    MetadataArtifact,
    ModelMetricDetails,
    MonitoringCheckArtifact,
    PlacedArtifact,
    Policy,
    ScriptedCheckArtifact,
    Stage,
)
from mpm.governance.rules import RuleEvaluationError

__all__ = [
    "ApprovalRequirement",
    "ApprovalState",
    "CheckKind",
    "CheckResult",
    "EvaluationStatus",
    "Finding",
    "FrameworkEvaluation",
    "GateStatus",
    "OpenQuestion",
    "Outcome",
    "approval_id",
    "evaluate_policy",
    "slugify",
]


class Outcome(StrEnum):
    satisfied = "satisfied"
    failed = "failed"
    missing = "missing"
    not_applicable = "not_applicable"


class CheckKind(StrEnum):
    input = "input"
    metric = "metric"
    file = "file"
    scripted_check = "scripted_check"
    monitoring_check = "monitoring_check"


class EvaluationStatus(StrEnum):
    PASSED = "PASSED"
    FAILED = "FAILED"
    REQUIRES_REVIEW = "REQUIRES_REVIEW"


class ApprovalState(StrEnum):
    granted = "granted"
    pending = "pending"
    rejected = "rejected"
    changes_requested = "changes_requested"
    not_required = "not_required"


class CheckResult(BaseModel):
    """One thing the policy asks for, and what the evidence says about it."""

    key: str = Field(description="evidence key; metrics: '<artifact key>:<metric name>'")
    kind: CheckKind
    stage: str
    evidence_set: str
    evidence_name: str = ""
    label: str
    outcome: Outcome
    reason: str
    value: Any = None
    alias: str | None = None
    threshold: str | None = None
    counted: bool = True
    source: str | None = Field(default=None, description="where the value came from")


class OpenQuestion(BaseModel):
    """A question nobody has answered (or answered invalidly), ready to ask a person.

    ``type`` is the input type (radio, textarea, ...) or ``file`` for a file to attach.
    """

    key: str
    alias: str | None = None
    stage: str
    evidence_set: str
    label: str
    type: str
    options: list[str] = Field(default_factory=list)
    required: bool = True
    help: str | None = None
    min: float | None = None
    max: float | None = None
    problem: str | None = Field(default=None, description="why the current answer is not valid")


class Finding(BaseModel):
    """An issue a failed check (or a rejected approval) raises for the approvers."""

    id: str
    framework: str
    severity: str  # High | Medium | Low
    title: str
    description: str
    stage: str
    check_key: str | None = None
    approval: str | None = Field(default=None, description="the stage approval that reviews it")


class ApprovalRequirement(BaseModel):
    """One approval of the policy and whether it is still needed."""

    id: str
    name: str
    stage: str
    stage_index: int
    approvers: list[str]
    state: ApprovalState
    reason: str = ""
    questions: list[OpenQuestion] = Field(default_factory=list)
    gates: list[str] = Field(default_factory=list)


class GateStatus(BaseModel):
    name: str
    actions: list[str]
    approvals: list[str] = Field(description="approval ids the gate waits for")
    blocked_by: list[str] = Field(default_factory=list, description="approval ids not yet granted")
    state: str  # blocked | open


class FrameworkEvaluation(BaseModel):
    """The evaluation of one framework: the seed's per-framework result, fully explained."""

    framework: str
    title: str = ""
    status: EvaluationStatus
    compliance_score: float
    classification: str | float | None = None
    classification_inputs: dict[str, Any] = Field(default_factory=dict)
    classification_error: str | None = None
    checks: list[CheckResult] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    approvals: list[ApprovalRequirement] = Field(default_factory=list)
    required_approvers: list[str] = Field(
        default_factory=list, description="groups of the approvals still required and not granted"
    )
    open_questions: list[OpenQuestion] = Field(default_factory=list)
    gates: list[GateStatus] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    status_reason: str = ""


# --------------------------------------------------------------------------- ids


@lru_cache(maxsize=4096)
def slugify(text: str) -> str:
    """``Validation sign off`` -> ``validation-sign-off``; stable ids for approvals and gates."""
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-") or "x"


def approval_id(framework: str, approval_name: str) -> str:
    """The workflow-wide id of an approval: ``{framework}:{slug of the approval name}``."""
    return f"{framework}:{slugify(approval_name)}"


# --------------------------------------------------------------------------- answers

_NO_ANSWER = object()


def _answered(value: Any) -> bool:
    if value is None or value is _NO_ANSWER:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    return not (isinstance(value, list | tuple | dict) and not value)


class _Answers:
    """Finds the answer of an artifact under any of the keys evaluation accepts."""

    def __init__(self, bundle: EvidenceBundle) -> None:
        self.bundle = bundle
        self.answers = bundle.answers
        # evidence key -> (what a person answered, where from, the fact used instead, its source)
        self.disagreements: dict[str, tuple[Any, str, Any, str]] = {}

    def is_fact(self, key: str) -> bool:
        """Whether the answer under ``key`` is something mpm derived (not a person's answer)."""
        source = self.bundle.sources.get(key)
        return source is not None and not source.startswith(_PEOPLE)

    def lookup(self, placed: PlacedArtifact, index: int) -> tuple[Any, str | None]:
        """``(answer, the bundle key it was found under)``; ``(_NO_ANSWER, None)`` if unanswered.

        A fact mpm derived wins over a person's answer under any of the keys; a person's
        answer that says something else is kept as a disagreement (a finding)."""
        artifact = placed.artifact
        alias = getattr(artifact, "alias_for_classification", None)
        candidates = [placed.key]
        if not placed.key.endswith("]"):
            candidates.append(placed.key + "[0]")
        if alias:
            candidates.append(alias)
        hits = [k for k in candidates if k in self.answers and _answered(self.answers[k])]
        facts = [k for k in hits if self.is_fact(k)]
        if facts:
            fact = facts[0]
            value = self.answers[fact]
            said = [(self.answers[k], self.source_of(k)) for k in hits if not self.is_fact(k)]
            said += [
                (d["answer"], d["source"]) for k in candidates if (d := self.bundle.disputed.get(k))
            ]
            for answer, source in said:
                if not _same_answer(answer, value):
                    self.disagreements.setdefault(
                        placed.key, (answer, str(source), value, self.source_of(fact) or "")
                    )
            return value, fact
        for key in hits:
            return self.answers[key], key
        by_set = self.answers.get(placed.evidence_set.id)
        if isinstance(by_set, Mapping):
            inner = [index, str(index), placed.key, alias, artifact.policy_entity_id]
            for key in inner:
                if key is not None and key in by_set and _answered(by_set[key]):
                    return by_set[key], placed.evidence_set.id
        return _NO_ANSWER, None

    def source_of(self, key: str | None) -> str | None:
        """Where the answer under that bundle key came from (the evidence map's record)."""
        if key is None:
            return None
        return self.bundle.sources.get(key, f"answers.{key}")


_PEOPLE = ("human_answers", "approvals.", "answers.")


def _same_answer(a: Any, b: Any) -> bool:
    def norm(v: Any) -> Any:
        if isinstance(v, list | tuple | set):
            return sorted(str(norm(i)) for i in v)
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, int | float):
            return f"{float(v):g}"
        return str(v).strip().casefold()

    return norm(a) == norm(b)


def _options_text(options: list[str]) -> str:
    return ", ".join(repr(o) for o in options)


def _match_option(value: Any, artifact: InputArtifact) -> str | None:
    """The option value an answer selects (by value or label, case-insensitive), or None."""
    options = artifact.details.options or []
    if isinstance(value, bool):
        value = "Yes" if value else "No"
        if not any(o.value.casefold() in ("yes", "no") for o in options):
            value = "true" if value == "Yes" else "false"
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = f"{value:g}"
    if not isinstance(value, str):
        return None
    for option in options:
        if value == option.value or value == option.label:
            return option.value
    folded = value.strip().casefold()
    for option in options:
        if folded in (option.value.casefold(), option.label.casefold()):
            return option.value
    return None


def _parse_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def validate_answer(artifact: InputArtifact, value: Any) -> tuple[Any, str | None]:
    """``(normalised answer, None)`` when the answer fits the input, else ``(value, why not)``."""
    details = artifact.details
    kind = details.type
    offered = details.option_values
    if kind in ("radio", "select"):
        if isinstance(value, list | tuple | dict):
            return value, f"expected one option; got a {type(value).__name__}"
        chosen = _match_option(value, artifact)
        if chosen is None:
            return value, f"{value!r} is not an option (options: {_options_text(offered)})"
        return chosen, None
    if kind in MULTI_VALUE_INPUT_TYPES:
        if not isinstance(value, list | tuple):
            return value, f"expected a list of options for a {kind} input; got {value!r}"
        chosen_values = []
        for item in value:
            chosen = _match_option(item, artifact)
            if chosen is None:
                return value, f"{item!r} is not an option (options: {_options_text(offered)})"
            if chosen not in chosen_values:
                chosen_values.append(chosen)
        return chosen_values, None
    if kind in ("textinput", "textarea"):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return value, f"expected text; got {type(value).__name__} {value!r}"
        return str(value), None
    if kind == "numeric":
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None or math.isnan(number) or math.isinf(number):
            return value, f"expected a number; got {value!r}"
        if details.min is not None and number < details.min:
            return value, f"{number:g} is below the minimum {details.min:g}"
        if details.max is not None and number > details.max:
            return value, f"{number:g} is above the maximum {details.max:g}"
        return number, None
    if kind == "date":
        parsed = _parse_date(value)
        if parsed is None:
            return value, f"expected an ISO 8601 date (YYYY-MM-DD); got {value!r}"
        return parsed.isoformat(), None
    return value, None  # pragma: no cover - InputDetails only admits the types above


# --------------------------------------------------------------------------- evaluation


def _granted_states(framework: str, approvals: Any) -> dict[str, ApprovalState]:
    """Approval decisions by approval id or name -> state.

    Accepts the graph's ``approvals`` map (id -> decision record with ``decision``), a
    map id -> decision string, or an iterable of granted ids / names.
    """
    states: dict[str, ApprovalState] = {}
    if approvals is None:
        return states
    if isinstance(approvals, Mapping):
        for key, record in approvals.items():
            decision = record.get("decision") if isinstance(record, Mapping) else record
            states[str(key)] = _decision_state(decision)
    else:
        for key in approvals:
            states[str(key)] = ApprovalState.granted
    return states


def _decision_state(decision: Any) -> ApprovalState:
    text = str(getattr(decision, "value", decision) or "").casefold()
    if text in ("approve", "approved", "granted", "grant", "yes", "true"):
        return ApprovalState.granted
    if text in ("reject", "rejected"):
        return ApprovalState.rejected
    if text in ("request_changes", "changes_requested", "request-changes"):
        return ApprovalState.changes_requested
    return ApprovalState.pending


def _metric_value(metrics: Mapping[str, float], names: Iterable[str]) -> tuple[str, float] | None:
    """By name, then through the documented alias vocabulary (governance.defaults)."""
    from mpm.governance.defaults import match_metric

    return match_metric(metrics, names)


def _check_result_failed(value: Any) -> bool:
    """Whether a scripted / monitoring check result reports failure."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, Mapping):
        if "passed" in value:
            return not bool(value["passed"])
        status = str(value.get("status", value.get("jobStatus", ""))).casefold()
        return status in ("failed", "fail", "error", "failure")
    if isinstance(value, str):
        return value.strip().casefold() in ("failed", "fail", "error", "failure")
    return False


class _Evaluator:
    def __init__(
        self,
        policy: Policy,
        bundle: EvidenceBundle,
        framework: str,
        title: str,
        approvals: Any,
    ) -> None:
        self.policy = policy
        self.bundle = bundle
        self.framework = framework
        self.title = title
        self.answers = _Answers(bundle)
        self.decisions = _granted_states(framework, approvals)
        self.approver_answers: dict[str, dict[str, Any]] = {}
        if isinstance(approvals, Mapping):
            from mpm.governance.answers import approval_answers_by_id

            self.approver_answers = approval_answers_by_id(policy, framework, approvals)
        self.checks: list[CheckResult] = []
        self.questions: list[OpenQuestion] = []
        self.findings: list[Finding] = []
        self.by_key: dict[str, Any] = {}  # valid answers by evidence key
        self.classification: str | float | None = None
        self.classification_inputs: dict[str, Any] = {}
        self.classification_error: str | None = None

    # ----- classification and visibility

    def classify(self) -> None:
        answers: dict[str, Any] = {}
        for placed in self.policy.inputs():
            index = _index_in_set(placed)
            value, _ = self.answers.lookup(placed, index)
            if value is _NO_ANSWER:
                continue
            normalised, problem = validate_answer(placed.artifact, value)  # type: ignore[arg-type]
            if problem is None:
                answers[placed.key] = normalised
        self.by_key = answers
        inputs = self.policy.classification_inputs(answers)
        classification = self.policy.classification
        if classification is not None:
            used = set(classification.artifacts)
            if classification.compiled is not None:
                used |= set(classification.compiled.aliases)
            self.classification_inputs = {k: v for k, v in inputs.items() if k in used}
        try:
            self.classification = self.policy.classify(inputs)
        except RuleEvaluationError as exc:
            self.classification = None
            self.classification_error = f"classification rule failed: {exc}"

    def set_visible(self, evidence_set: EvidenceSet) -> bool:
        return evidence_set.is_visible(self.classification)

    def _hidden_reason(self, evidence_set: EvidenceSet) -> str:
        value = "unset" if self.classification is None else repr(self.classification)
        return f"hidden: visibilityRule `{evidence_set.visibility_rule}` is false for classification {value}"

    def _conditional_hidden(self, artifact: InputArtifact) -> str | None:
        condition = artifact.details.conditional_display
        if condition is None:
            return None
        target = condition.depends_on
        answers = [v for k, v in self.by_key.items() if k == target or k.startswith(target + "[")]
        if any(condition.shows_for(answer) for answer in answers):
            return None
        wanted = condition.show_if_value or condition.show_if_values or condition.show_if_contains
        got = answers[0] if len(answers) == 1 else (answers or "no answer")
        return f"hidden: conditionalDisplay shows it when {target} is {wanted!r}; got {got!r}"

    # ----- checks

    def run(self) -> FrameworkEvaluation:
        self.classify()
        for placed in self.policy.artifacts():
            if placed.approval is not None:
                continue  # approval evidence: answered by the approver (see ApprovalRequirement)
            artifact = placed.artifact
            if isinstance(artifact, GuidanceArtifact):
                continue
            visible = self.set_visible(placed.evidence_set)
            if isinstance(artifact, InputArtifact):
                self._input_check(placed, visible)
            elif isinstance(artifact, MetadataArtifact) and isinstance(
                artifact.details, ModelMetricDetails
            ):
                self._metric_checks(placed, visible)
            elif isinstance(artifact, MetadataArtifact) and isinstance(
                artifact.details, FileDetails
            ):
                self._file_check(placed, visible)
            elif isinstance(artifact, ScriptedCheckArtifact | MonitoringCheckArtifact):
                self._result_check(placed, visible)
        approvals = self._approvals()
        gates = self._gates(approvals)
        self._disagreement_findings()
        return self._result(approvals, gates)

    def _disagreement_findings(self) -> None:
        """A person's answer that contradicts a derived fact: the fact counts, a reviewer
        is told (a finding), and nothing the answer claimed is used."""
        placed_by_key = {p.key: p for p in self.policy.inputs()}
        for key, (answer, source, fact, fact_source) in self.answers.disagreements.items():
            placed = placed_by_key.get(key)
            if placed is None:
                continue
            label = placed.artifact.details.label  # type: ignore[union-attr]
            self._finding(
                placed.stage,
                f"{key}:disagreement",
                "High",
                f"Answer contradicts a derived fact: {label}",
                f"{source} answered {answer!r}, but mpm derived {fact!r} from {fact_source}; "
                "the derived value is used.",
            )

    def _base(self, placed: PlacedArtifact, kind: CheckKind, label: str) -> dict[str, Any]:
        return {
            "key": placed.key,
            "kind": kind,
            "stage": placed.stage.name,
            "evidence_set": placed.evidence_set.id,
            "evidence_name": placed.evidence_set.name or "",
            "label": label,
        }

    def _input_check(self, placed: PlacedArtifact, visible: bool) -> None:
        artifact: InputArtifact = placed.artifact  # type: ignore[assignment]
        details = artifact.details
        base = self._base(placed, CheckKind.input, details.label)
        base["alias"] = artifact.alias_for_classification
        base["counted"] = artifact.is_required
        if not visible:
            self._add(base, Outcome.not_applicable, self._hidden_reason(placed.evidence_set))
            return
        if artifact.is_disabled:
            self._add(base, Outcome.not_applicable, "disabled in the policy")
            return
        hidden = self._conditional_hidden(artifact)
        if hidden:
            self._add(base, Outcome.not_applicable, hidden)
            return
        value, found_under = self.answers.lookup(placed, _index_in_set(placed))
        source = self.answers.source_of(found_under)
        if value is _NO_ANSWER:
            why = "not answered" if artifact.is_required else "optional; not answered"
            self._add(base, Outcome.missing, why)
            self.questions.append(_question(placed))
            return
        normalised, problem = validate_answer(artifact, value)
        if problem is not None:
            self._add(
                base, Outcome.failed, f"invalid answer: {problem}", value=value, source=source
            )
            self.questions.append(_question(placed, problem=problem))
            self._finding(
                placed.stage,
                placed.key,
                "Medium",
                f"Invalid answer: {details.label}",
                f"The answer to '{details.label}' ({placed.evidence_set.name}) is not valid: {problem}.",
            )
            return
        self._add(base, Outcome.satisfied, "answered", value=normalised, source=source)

    def _metric_checks(self, placed: PlacedArtifact, visible: bool) -> None:
        details: ModelMetricDetails = placed.artifact.details  # type: ignore[assignment]
        for metric in details.metrics:
            label = metric.label or metric.name
            base = self._base(placed, CheckKind.metric, label)
            base["key"] = f"{placed.key}:{metric.name}"
            base["threshold"] = str(metric.threshold) if metric.threshold else None
            base["counted"] = metric.threshold is not None
            if not visible:
                self._add(base, Outcome.not_applicable, self._hidden_reason(placed.evidence_set))
                continue
            found = _metric_value(self.bundle.metrics, metric.names)
            names = ", ".join(metric.names)
            if found is None:
                if metric.threshold is None:
                    self._add(
                        base,
                        Outcome.missing,
                        f"not reported (looked for {names}); shown for review only",
                    )
                    continue
                self._add(base, Outcome.failed, f"metric not reported (looked for {names})")
                self._finding(
                    placed.stage,
                    base["key"],
                    "High",
                    f"Metric not reported: {metric.name}",
                    f"{label} must be {metric.threshold} but no metric named {names} was reported"
                    f" (available: {', '.join(sorted(self.bundle.metrics)) or 'none'}).",
                )
                continue
            logged_as, observed = found
            source = self.bundle.sources.get(f"metric:{logged_as}", f"metrics.{logged_as}")
            shown = f"{metric.name} = {observed:.4g}" + (
                f" (logged as {logged_as})" if logged_as != metric.name else ""
            )
            if metric.threshold is None:
                self._add(
                    base,
                    Outcome.satisfied,
                    f"{shown}; no threshold, shown for review",
                    value=observed,
                    source=source,
                )
            elif metric.threshold.passes(observed):
                self._add(
                    base,
                    Outcome.satisfied,
                    f"{shown} meets {metric.threshold}",
                    value=observed,
                    source=source,
                )
            else:
                self._add(
                    base,
                    Outcome.failed,
                    f"{shown} fails {metric.threshold}",
                    value=observed,
                    source=source,
                )
                self._finding(
                    placed.stage,
                    base["key"],
                    "High",
                    f"{label} below standard",
                    f"{shown} does not meet the threshold {metric.threshold} "
                    f"({placed.evidence_set.name}).",
                )

    def _file_check(self, placed: PlacedArtifact, visible: bool) -> None:
        details: FileDetails = placed.artifact.details  # type: ignore[assignment]
        base = self._base(placed, CheckKind.file, details.label)
        if not visible:
            self._add(base, Outcome.not_applicable, self._hidden_reason(placed.evidence_set))
            return
        for key in (placed.key, details.label):
            if key in self.bundle.files and self.bundle.files[key]:
                path = self.bundle.files[key]
                source = self.bundle.sources.get(f"file:{key}")
                self._add(base, Outcome.satisfied, "file attached", value=path, source=source)
                return
        self._add(base, Outcome.missing, "no file attached")
        self.questions.append(
            OpenQuestion(
                key=placed.key,
                stage=placed.stage.name,
                evidence_set=placed.evidence_set.id,
                label=details.label,
                type="file",
                help=details.description,
            )
        )

    def _result_check(self, placed: PlacedArtifact, visible: bool) -> None:
        artifact = placed.artifact
        kind = (
            CheckKind.scripted_check
            if isinstance(artifact, ScriptedCheckArtifact)
            else CheckKind.monitoring_check
        )
        details = artifact.details  # type: ignore[union-attr]
        label = details.label or details.name or placed.key
        base = self._base(placed, kind, label)
        if not visible:
            self._add(base, Outcome.not_applicable, self._hidden_reason(placed.evidence_set))
            return
        keys = [placed.key, details.name, details.label]
        for key in keys:
            if key and key in self.bundle.answers and _answered(self.bundle.answers[key]):
                value = self.bundle.answers[key]
                source = self.bundle.sources.get(key)
                if _check_result_failed(value):
                    self._add(
                        base,
                        Outcome.failed,
                        "the check reported a failure",
                        value=value,
                        source=source,
                    )
                    self._finding(
                        placed.stage,
                        placed.key,
                        "High",
                        f"{label} failed",
                        f"{label} reported: {value!r}.",
                    )
                else:
                    self._add(
                        base, Outcome.satisfied, "result recorded", value=value, source=source
                    )
                return
        what = (
            "no result recorded"
            if kind == CheckKind.scripted_check
            else "monitoring not configured yet"
        )
        self._add(base, Outcome.missing, what)

    def _add(self, base: dict[str, Any], outcome: Outcome, reason: str, **extra: Any) -> None:
        self.checks.append(CheckResult(**base, outcome=outcome, reason=reason, **extra))

    def _finding(
        self, stage: Stage, key: str | None, severity: str, title: str, description: str
    ) -> None:
        reviewer = stage.approvals[0].name if stage.approvals else None
        self.findings.append(
            Finding(
                id=f"{self.framework}:{key or slugify(title)}",
                framework=self.framework,
                severity=severity,
                title=title,
                description=description,
                stage=stage.name,
                check_key=key,
                approval=reviewer,
            )
        )

    # ----- approvals and gates

    def _approvals(self) -> list[ApprovalRequirement]:
        gates_by_approval: dict[str, list[str]] = {}
        for gate in self.policy.gates:
            for name in gate.approvals:
                gates_by_approval.setdefault(name, []).append(gate.name)
        result = []
        for index, stage in enumerate(self.policy.stages):
            hidden_stage = bool(stage.evidence_set) and not any(
                self.set_visible(es) for es in stage.evidence_set
            )
            for approval in stage.approvals:
                aid = approval_id(self.framework, approval.name)
                state = self.decisions.get(aid) or self.decisions.get(approval.name)
                reason = ""
                if state is None:
                    own_hidden = approval.evidence is not None and not self.set_visible(
                        approval.evidence
                    )
                    if hidden_stage or own_hidden:
                        state = ApprovalState.not_required
                        value = (
                            "unset" if self.classification is None else repr(self.classification)
                        )
                        reason = f"stage '{stage.name}' has no visible evidence for classification {value}"
                    else:
                        state = ApprovalState.pending
                questions = []
                own = _Answers(EvidenceBundle(answers=self.approver_answers.get(aid, {})))
                if approval.evidence is not None:
                    for placed in self.policy.inputs():
                        if placed.approval is approval:
                            value, _ = own.lookup(placed, _index_in_set(placed))
                            if value is _NO_ANSWER:
                                questions.append(_question(placed))
                            else:
                                _, problem = validate_answer(placed.artifact, value)  # type: ignore[arg-type]
                                if problem:
                                    questions.append(_question(placed, problem=problem))
                if state in (ApprovalState.rejected, ApprovalState.changes_requested):
                    verb = (
                        "rejected" if state == ApprovalState.rejected else "sent back for changes"
                    )
                    self._finding(
                        stage,
                        None,
                        "High",
                        f"{approval.name} {verb}",
                        f"The approval '{approval.name}' was {verb}; the stage '{stage.name}' must be reworked.",
                    )
                result.append(
                    ApprovalRequirement(
                        id=aid,
                        name=approval.name,
                        stage=stage.name,
                        stage_index=index,
                        approvers=approval.approver_names,
                        state=state,
                        reason=reason,
                        questions=questions,
                        gates=gates_by_approval.get(approval.name, []),
                    )
                )
        return result

    def _gates(self, approvals: list[ApprovalRequirement]) -> list[GateStatus]:
        by_name = {a.name: a for a in approvals}
        gates = []
        for gate in self.policy.gates:
            ids = [by_name[name].id for name in gate.approvals]
            blocked = [
                by_name[name].id
                for name in gate.approvals
                if by_name[name].state not in (ApprovalState.granted, ApprovalState.not_required)
            ]
            gates.append(
                GateStatus(
                    name=gate.name,
                    actions=[rule.action for rule in gate.rules],
                    approvals=ids,
                    blocked_by=blocked,
                    state="blocked" if blocked else "open",
                )
            )
        return gates

    # ----- result

    def _result(
        self, approvals: list[ApprovalRequirement], gates: list[GateStatus]
    ) -> FrameworkEvaluation:
        counted = [c for c in self.checks if c.counted and c.outcome != Outcome.not_applicable]
        satisfied = sum(1 for c in counted if c.outcome == Outcome.satisfied)
        score = satisfied / len(counted) if counted else 1.0
        failed = [c for c in counted if c.outcome == Outcome.failed]
        missing = [c for c in counted if c.outcome == Outcome.missing]
        open_approvals = [
            a
            for a in approvals
            if a.state not in (ApprovalState.granted, ApprovalState.not_required)
        ]
        if failed:
            status = EvaluationStatus.FAILED
            reason = f"{len(failed)} check(s) failed: " + ", ".join(c.label for c in failed[:3])
        elif missing or open_approvals or self.classification_error:
            status = EvaluationStatus.REQUIRES_REVIEW
            parts = []
            if missing:
                parts.append(f"{len(missing)} check(s) missing evidence")
            if open_approvals:
                parts.append(f"{len(open_approvals)} approval(s) not granted")
            if self.classification_error:
                parts.append(self.classification_error)
            reason = "; ".join(parts)
        else:
            status = EvaluationStatus.PASSED
            reason = "all applicable checks satisfied and all required approvals granted"
        required_approvers: list[str] = []
        for approval in open_approvals:
            for name in approval.approvers:
                if name not in required_approvers:
                    required_approvers.append(name)
        counts = {outcome.value: 0 for outcome in Outcome}
        for check in self.checks:
            counts[check.outcome.value] += 1
        counts["counted"] = len(counted)
        return FrameworkEvaluation(
            framework=self.framework,
            title=self.title,
            status=status,
            compliance_score=round(score, 4),
            classification=self.classification,
            classification_inputs=self.classification_inputs,
            classification_error=self.classification_error,
            checks=self.checks,
            findings=self.findings,
            approvals=approvals,
            required_approvers=required_approvers,
            open_questions=self.questions,
            gates=gates,
            counts=counts,
            status_reason=reason,
        )


def _index_in_set(placed: PlacedArtifact) -> int:
    for index, artifact in enumerate(placed.evidence_set.definition or []):
        if artifact is placed.artifact:
            return index
    return 0


def _question(placed: PlacedArtifact, problem: str | None = None) -> OpenQuestion:
    artifact: InputArtifact = placed.artifact  # type: ignore[assignment]
    details = artifact.details
    return OpenQuestion(
        key=placed.key,
        alias=artifact.alias_for_classification,
        stage=placed.stage.name,
        evidence_set=placed.evidence_set.id,
        label=details.label,
        type=details.type,
        options=details.option_values,
        required=artifact.is_required,
        help=details.help_text or details.tooltip or details.placeholder,
        min=details.min,
        max=details.max,
        problem=problem,
    )


def evaluate_policy(
    policy: Policy | Any,
    evidence: EvidenceBundle | Mapping[str, Any] | None = None,
    *,
    framework: str | None = None,
    title: str | None = None,
    approvals: Mapping[str, Any] | Iterable[str] | None = None,
) -> FrameworkEvaluation:
    """Evaluate ``policy`` (a :class:`Policy` or a ``LoadedPolicy``) against ``evidence``.

    ``approvals`` are the decisions so far: the graph's ``approvals`` state (approval id
    -> record with ``decision`` and optionally the approver's ``answers`` to the approval's
    questions), a map id -> decision, or the ids granted. Ids are
    ``{framework}:{slug of approval name}`` (:func:`approval_id`); plain approval names
    are accepted too. ``framework`` / ``title`` default to the LoadedPolicy's.
    """
    loaded = (
        policy
        if not isinstance(policy, Policy) and isinstance(getattr(policy, "policy", None), Policy)
        else None
    )
    if loaded is not None:
        policy = loaded.policy
        framework = framework or loaded.framework
        title = title if title is not None else loaded.title
    if not isinstance(policy, Policy):
        raise TypeError(f"expected a Policy or LoadedPolicy; got {type(policy).__name__}")
    if evidence is None:
        bundle = EvidenceBundle()
    elif isinstance(evidence, EvidenceBundle):
        bundle = evidence
    else:
        bundle = EvidenceBundle.model_validate(evidence)
    framework = framework or "policy"
    # approvers' answers fill only their own approval's questions (see _Evaluator._approvals)
    return _Evaluator(policy, bundle, framework, title or "", approvals).run()
