"""Pydantic models for a Domino Governance policy, exactly as the YAML is written.

Why these models exist: every other part of the engine (applicability, evaluation, the
approval workflow, the dashboard, the CLI) reads a policy through them, so they accept
everything real Domino policies contain and reject, with a located message, what they
cannot read. Field names are snake_case; the YAML spelling (``evidenceSet``,
``aliasForClassification``, ``volumeSizeGiB``...) is the alias, and only the YAML
spelling is accepted on input. ``model_dump(by_alias=True)`` gives the YAML shape back.

Unknown keys are kept (``extra="allow"``; see ``model_extra``) so nothing in a policy is
silently dropped; the loader reports each one as a warning with its YAML path.

Normalisations (documented because they change what a reader sees):

* an approver written as a plain string becomes ``Approver(name=...)``;
* an option written as a plain string becomes ``Option(label=s, value=s)``;
* a threshold operator written ``=>`` is read as ``>=`` (the loader warns);
* an evidence-set entry that is only ``{id: Local.x}`` (a reuse of a set defined elsewhere
  in the policy) is resolved to that definition; ``EvidenceSet.is_reference`` tells them
  apart;
* numbers where text is expected (``startDate: 20240612``, ``- 1`` as an option) become
  strings.

Evidence keys -- the stable name of one artifact, used as the key of an evidence answer
(``{evidence_key: value}``) everywhere in mpm:

* ``<set id>`` when the evidence set holds exactly one artifact, e.g. ``Local.model-purpose``;
* ``<set id>[i]`` (0-based position in ``definition``) when it holds several, e.g.
  ``Local.model-purpose[1]`` for the second artifact.

``Local.x[0]`` is accepted as a synonym of ``Local.x`` by :meth:`Policy.artifact`, and a
set reused by reference keeps its keys (the same evidence is answered once).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from mpm.governance.rules import (
    Rule,
    RuleEvaluationError,
    RuleLimitError,
    RuleSyntaxError,
    Visibility,
    compile_rule,
    compile_visibility,
)

INPUT_TYPES: tuple[str, ...] = (
    "radio",
    "textinput",
    "textarea",
    "select",
    "multiselect",
    "checkbox",
    "date",
    "numeric",
)
CHOICE_INPUT_TYPES: frozenset[str] = frozenset({"radio", "select", "multiselect", "checkbox"})
MULTI_VALUE_INPUT_TYPES: frozenset[str] = frozenset({"multiselect", "checkbox"})
OPERATORS: tuple[str, ...] = (">", "<", ">=", "<=", "==", "!=")
ARTIFACT_TYPES: tuple[str, ...] = (
    "input",
    "guidance",
    "metadata",
    "policyScriptedCheck",
    "policyMonitoringCheck",
)
GATE_ACTIONS: tuple[str, ...] = ("CreateApp", "CreateEndpoint")
EVIDENCE_ID_PREFIXES: tuple[str, ...] = ("Local.", "Global.")


def _one_of(choices: tuple[str, ...]) -> AfterValidator:
    def check(value: str) -> str:
        if value not in choices:
            raise PydanticCustomError(
                "not_one_of",
                "expected one of {choices}; got {got}",
                {"choices": ", ".join(choices), "got": repr(value)},
            )
        return value

    return AfterValidator(check)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "must not be empty")
    return value


def _scalar_to_text(value: Any) -> Any:
    """YAML reads ``20240612``, ``true`` or ``2024-06-12`` as non-strings; a policy means text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


Text = Annotated[str, BeforeValidator(_scalar_to_text)]
Name = Annotated[str, BeforeValidator(_scalar_to_text), AfterValidator(_not_blank)]
InputType = Annotated[str, _one_of(INPUT_TYPES)]


def _evidence_id(value: str) -> str:
    if not value.startswith(EVIDENCE_ID_PREFIXES) or len(value.split(".", 1)[1]) == 0:
        raise PydanticCustomError(
            "evidence_id",
            "expected an id starting with 'Local.' or 'Global.'; got {got}",
            {"got": repr(value)},
        )
    return value


EvidenceId = Annotated[str, AfterValidator(_evidence_id)]


class PolicyNode(BaseModel):
    """Base of every policy model: YAML aliases, unknown keys kept, notes for warnings."""

    model_config = ConfigDict(
        extra="allow",
        alias_generator=to_camel,  # input only by the YAML spelling (no populate_by_name)
        coerce_numbers_to_str=True,
    )

    # Domino's UI export puts a UUID on stages, approvals and artifacts; accepted anywhere.
    policy_entity_id: Text | None = None

    # (sub-path, message) pairs the loader reports as warnings below this node's YAML path.
    _notes: list[tuple[str, str]] = PrivateAttr(default_factory=list)

    @property
    def notes(self) -> list[tuple[str, str]]:
        return list(self._notes)

    def _note(self, message: str, at: str = "") -> None:
        self._notes.append((at, message))


# --------------------------------------------------------------------------- approvers


class Approver(PolicyNode):
    """A user id or an organisation (group) name allowed to approve."""

    name: Name
    show_by_default: bool | None = None
    editable: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_plain_string(cls, data: Any) -> Any:
        if isinstance(data, str | int):
            return {"name": str(data)}
        return data


# --------------------------------------------------------------------------- inputs


class Option(PolicyNode):
    """One choice of a radio/select/multiselect/checkbox input; ``value`` is the answer."""

    label: Text
    value: Text

    @model_validator(mode="before")
    @classmethod
    def _from_plain_scalar(cls, data: Any) -> Any:
        if isinstance(data, str | int | float | bool):
            text = _scalar_to_text(data)
            return {"label": text, "value": text}
        if isinstance(data, dict):
            if "value" not in data and "label" in data:
                return {**data, "value": data["label"]}
            if "label" not in data and "value" in data:
                return {**data, "label": data["value"]}
        return data


def _text_list(value: Any) -> Any:
    if isinstance(value, list):
        return [_scalar_to_text(v) for v in value]
    return value


TextList = Annotated[list[Text], BeforeValidator(_text_list)]


class ConditionalDisplay(PolicyNode):
    """Field-level show/hide: show the input when the set ``depends_on`` has that answer."""

    depends_on: Text
    show_if_value: Text | None = None
    show_if_values: TextList | None = None
    show_if_contains: TextList | None = None

    def shows_for(self, answer: Any) -> bool:
        """Whether an input with this condition is shown, given the answer it depends on."""
        answers = [str(a) for a in answer] if isinstance(answer, list | tuple) else [answer]
        answers = [str(a) for a in answers if a is not None]
        if self.show_if_value is not None and self.show_if_value in answers:
            return True
        if self.show_if_values and any(a in self.show_if_values for a in answers):
            return True
        if self.show_if_contains:
            return any(needle in a for needle in self.show_if_contains for a in answers)
        return False


class InputDetails(PolicyNode):
    type: InputType
    label: Name
    options: list[Option] | None = None
    placeholder: Text | None = None
    tooltip: Text | None = None
    help_text: Text | None = None
    height: int | None = None
    start_date: Text | None = None
    format: Text | None = None
    min: float | None = None
    max: float | None = None
    required: bool | None = None
    disabled: bool | None = None
    conditional_display: ConditionalDisplay | None = None

    @model_validator(mode="after")
    def _options_where_needed(self) -> InputDetails:
        if self.type in CHOICE_INPUT_TYPES and not self.options:
            raise PydanticCustomError(
                "options_missing",
                "a {type} input needs a non-empty 'options' list",
                {"type": self.type, "at": "options"},
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise PydanticCustomError(
                "min_max",
                "min ({min}) is greater than max ({max})",
                {"min": f"{self.min:g}", "max": f"{self.max:g}", "at": "min"},
            )
        if self.options and self.type not in CHOICE_INPUT_TYPES:
            self._note(f"'options' is ignored for a {self.type} input", "options")
        return self

    @property
    def option_values(self) -> list[str]:
        return [o.value for o in self.options or []]


class _ArtifactBase(PolicyNode):
    # Set by Policy after validation: the evidence key and the id of the containing set.
    _key: str = PrivateAttr(default="")
    _evidence_set_id: str = PrivateAttr(default="")

    @property
    def key(self) -> str:
        """The evidence key (see the module docstring); empty until inside a Policy."""
        return self._key

    @property
    def evidence_set_id(self) -> str:
        return self._evidence_set_id

    @property
    def label(self) -> str:
        """A human label for tables and messages."""
        details = getattr(self, "details", None)
        for attr in ("label", "name"):
            value = getattr(details, attr, None)
            if value:
                return str(value)
        return self.artifact_type  # type: ignore[attr-defined]


class InputArtifact(_ArtifactBase):
    """A question answered by a person (or an agent on their behalf)."""

    artifact_type: Literal["input"]
    details: InputDetails
    alias_for_classification: Text | None = None
    required: bool | None = None
    disabled: bool | None = None

    @property
    def is_required(self) -> bool:
        """True unless the policy writes ``required: false`` (on the artifact or its details).

        mpm counts every unanswered input as missing evidence unless the policy says the
        question is optional; Domino's docs define ``required`` but not its default.
        """
        flag = self.required if self.required is not None else self.details.required
        return flag is not False

    @property
    def is_disabled(self) -> bool:
        return bool(self.disabled or self.details.disabled)


class GuidanceDetails(PolicyNode):
    text: Name
    type: Text | None = None


class GuidanceArtifact(_ArtifactBase):
    """Markdown shown to the reader; never answered."""

    artifact_type: Literal["guidance"]
    details: GuidanceDetails


class Threshold(PolicyNode):
    operator: Annotated[Text, _one_of(OPERATORS)]
    value: float

    @model_validator(mode="wrap")
    @classmethod
    def _read_reversed_operator(cls, data: Any, handler: Any) -> Threshold:
        written = data.get("operator") if isinstance(data, dict) else None
        if written == "=>":
            data = {**data, "operator": ">="}
        threshold: Threshold = handler(data)
        if written == "=>":
            threshold._note("operator '=>' read as '>='; write '>=' instead", "operator")
        return threshold

    def passes(self, observed: float) -> bool:
        """Whether an observed metric value meets this threshold."""
        return {
            ">": observed > self.value,
            "<": observed < self.value,
            ">=": observed >= self.value,
            "<=": observed <= self.value,
            "==": observed == self.value,
            "!=": observed != self.value,
        }[self.operator]

    def __str__(self) -> str:
        return f"{self.operator} {self.value:g}"


class Metric(PolicyNode):
    """A model metric looked up by ``name`` or any alias in the model's metadata."""

    name: Name
    label: Text | None = None
    aliases: TextList = Field(default_factory=list)
    threshold: Threshold | None = None

    @property
    def names(self) -> list[str]:
        """Every name the metric may be logged under, the canonical name first."""
        return [self.name, *(a for a in self.aliases if a != self.name)]


class ModelMetricDetails(PolicyNode):
    type: Literal["modelmetric"]
    metrics: Annotated[list[Metric], Field(min_length=1)]
    label: Text | None = None


class FileDetails(PolicyNode):
    type: Literal["file"]
    label: Name
    description: Text | None = None


class MetadataArtifact(_ArtifactBase):
    """Model metadata: metric checks (``modelmetric``) or an uploaded file (``file``)."""

    artifact_type: Literal["metadata"]
    details: Annotated[ModelMetricDetails | FileDetails, Field(discriminator="type")]


class ScriptParameter(PolicyNode):
    name: Name
    type: Text | None = None
    default: Text | None = None
    options: list[Option] | None = None


class ScriptedCheckDetails(PolicyNode):
    """A script run in a Domino environment; ``${param}`` in ``command`` come from parameters."""

    name: Text | None = None
    label: Text | None = None
    command: Text | None = None
    parameters: list[ScriptParameter] = Field(default_factory=list)
    output_types: TextList = Field(default_factory=list)
    environment: Text | None = None
    environment_id: Text | None = None
    hardware_tier: Text | None = None
    hardware_tier_id: Text | None = None
    volume_size_gib: float | None = Field(default=None, alias="volumeSizeGiB")

    @model_validator(mode="before")
    @classmethod
    def _null_lists_are_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                k: ([] if k in ("parameters", "outputTypes") and v is None else v)
                for k, v in data.items()
            }
        return data


class ScriptedCheckArtifact(_ArtifactBase):
    artifact_type: Literal["policyScriptedCheck"]
    details: ScriptedCheckDetails = Field(default_factory=ScriptedCheckDetails)

    @model_validator(mode="before")
    @classmethod
    def _null_details(cls, data: Any) -> Any:
        if isinstance(data, dict) and "details" in data and data["details"] is None:
            return {**data, "details": {}}
        return data


class MonitoringAction(PolicyNode):
    type: Name
    recipients: TextList = Field(default_factory=list)
    severity: Text | None = None
    owner: Text | None = None


class MonitoringCheckDetails(PolicyNode):
    name: Text | None = None
    label: Text | None = None
    alert_types: TextList = Field(default_factory=list)
    actions: list[MonitoringAction] = Field(default_factory=list)


class MonitoringCheckArtifact(_ArtifactBase):
    """Connects the bundle to Domino Model Monitoring alerts (drift, data quality)."""

    artifact_type: Literal["policyMonitoringCheck"]
    details: MonitoringCheckDetails = Field(default_factory=MonitoringCheckDetails)


Artifact = Annotated[
    InputArtifact
    | GuidanceArtifact
    | MetadataArtifact
    | ScriptedCheckArtifact
    | MonitoringCheckArtifact,
    Field(discriminator="artifact_type"),
]
AnyArtifact = (
    InputArtifact
    | GuidanceArtifact
    | MetadataArtifact
    | ScriptedCheckArtifact
    | MonitoringCheckArtifact
)


# --------------------------------------------------------------------------- evidence


class EvidenceSet(PolicyNode):
    """A group of artifacts answered together; also the shape of an approval's evidence.

    An entry without ``definition`` is a reference to a set defined elsewhere in the
    policy; :class:`Policy` resolves it (and rejects it if nothing defines that id).
    """

    id: EvidenceId
    name: Text | None = None
    description: Text | None = None
    definition: Annotated[list[Artifact], Field(min_length=1)] | None = None
    visibility_rule: Text | None = None

    _visibility: Visibility | None = PrivateAttr(default=None)
    _reference: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _compile_and_check(self) -> EvidenceSet:
        if self.definition is not None and not (self.name and self.name.strip()):
            raise PydanticCustomError(
                "evidence_name",
                "evidence set {id} needs a 'name'",
                {"id": repr(self.id), "at": "name"},
            )
        if self.visibility_rule is not None and self.visibility_rule.strip():
            try:
                self._visibility = compile_visibility(self.visibility_rule)
            except RuleSyntaxError as exc:
                raise PydanticCustomError(
                    "rule_syntax", "{message}", {"message": str(exc), "at": "visibilityRule"}
                ) from None
        return self

    @property
    def is_reference(self) -> bool:
        """True when this entry was written as ``{id: ...}`` and resolved to another set."""
        return self._reference

    @property
    def artifacts(self) -> list[AnyArtifact]:
        return list(self.definition or [])

    @property
    def visibility(self) -> Visibility | None:
        return self._visibility

    def is_visible(self, classification_value: Any) -> bool:
        """Whether this set is shown for a bundle with that classification value."""
        return self._visibility is None or self._visibility.evaluate(classification_value)

    def artifact_key(self, index: int) -> str:
        return self.id if len(self.definition or []) == 1 else f"{self.id}[{index}]"


class Approval(PolicyNode):
    """A named sign-off by the listed approvers (users or groups), with optional evidence.

    The policy format does not say whether one or all approvers must sign; that is the
    approval workflow's decision, not the model's.
    """

    name: Name
    approvers: Annotated[list[Approver], Field(min_length=1)]
    allow_additional_approvers: bool | None = None
    evidence: EvidenceSet | None = None

    @property
    def approver_names(self) -> list[str]:
        return [a.name for a in self.approvers]


class Stage(PolicyNode):
    name: Name
    evidence_set: list[EvidenceSet] = Field(default_factory=list)
    approvals: list[Approval] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _null_lists_are_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                k: ([] if k in ("evidenceSet", "approvals") and v is None else v)
                for k, v in data.items()
            }
        return data


# --------------------------------------------------------------------------- classification, gates


class Classification(PolicyNode):
    """The bundle-level classification: a Go-subset rule over aliased input answers."""

    rule: Text | None = None
    artifacts: TextList = Field(default_factory=list)

    _compiled: Rule | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _null_artifacts(cls, data: Any) -> Any:
        if isinstance(data, dict) and "artifacts" in data and data["artifacts"] is None:
            return {**data, "artifacts": []}
        return data

    @model_validator(mode="after")
    def _compile(self) -> Classification:
        if self.rule is not None and self.rule.strip():
            try:
                self._compiled = compile_rule(self.rule)
            except RuleSyntaxError as exc:
                raise PydanticCustomError(
                    "rule_syntax", "{message}", {"message": str(exc), "at": "rule"}
                ) from None
            # a dry run on unanswered inputs: a rule that exceeds the evaluation limits
            # (runs for ever, doubles a string) is refused when the policy loads, not later
            try:
                self._compiled.evaluate({})
            except RuleLimitError as exc:
                raise PydanticCustomError(
                    "rule_limit", "{message}", {"message": str(exc), "at": "rule"}
                ) from None
            except RuleEvaluationError:
                pass  # may fail on empty answers; evaluation reports it with the real ones
        return self

    @property
    def compiled(self) -> Rule | None:
        """The compiled rule; None when the rule is empty (no classification computed)."""
        return self._compiled

    @property
    def kind(self) -> str:
        """``none``, ``alias`` (bare-name rule) or ``rule`` (a Go snippet)."""
        if self._compiled is None:
            return "none"
        return "alias" if self._compiled.alias is not None else "rule"


class GateRule(PolicyNode):
    action: Name
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_action(self) -> GateRule:
        if self.action not in GATE_ACTIONS:
            self._note(
                f"action {self.action!r} is not one Domino documents ({', '.join(GATE_ACTIONS)})",
                "action",
            )
        return self


class Gate(PolicyNode):
    """Blocks a Domino action (create app / endpoint) until the named approvals are granted."""

    name: Name
    rules: Annotated[list[GateRule], Field(min_length=1)]
    approvals: Annotated[list[Name], Field(min_length=1)]


# --------------------------------------------------------------------------- placements


@dataclass(frozen=True)
class PlacedEvidenceSet:
    """An evidence set where it appears: its stage, its approval (None if direct), YAML path."""

    stage: Stage
    evidence_set: EvidenceSet
    approval: Approval | None
    path: str


@dataclass(frozen=True)
class PlacedArtifact:
    key: str
    artifact: AnyArtifact
    evidence_set: EvidenceSet
    stage: Stage
    approval: Approval | None
    path: str


@dataclass(frozen=True)
class PlacedMetric:
    metric: Metric
    artifact_key: str
    evidence_set: EvidenceSet
    stage: Stage
    path: str


# --------------------------------------------------------------------------- policy


def _reference_error(path: str, message: str, **ctx: Any) -> PydanticCustomError:
    """An error raised from Policy-level checks; ``ctx['path']`` carries the YAML path."""
    return PydanticCustomError(
        "policy_reference", "{message}", {"message": message, "path": path, **ctx}
    )


class Policy(PolicyNode):
    """A whole policy. Cross-references are checked and id-only evidence resolved here."""

    classification: Classification | None = None
    approvers: list[Approver] = Field(default_factory=list)
    enforce_sequential_order: bool = False
    stages: Annotated[list[Stage], Field(min_length=1)]
    gates: list[Gate] = Field(default_factory=list)
    _placed_artifacts: tuple[PlacedArtifact, ...] | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _null_lists_are_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                k: ([] if k in ("approvers", "gates") and v is None else v) for k, v in data.items()
            }
        return data

    @model_validator(mode="after")
    def _cross_check(self) -> Policy:
        self._check_unique_names()
        self._resolve_evidence()
        self._check_gates()
        self._check_classification()
        self._check_conditional_display()
        return self

    # ----- validation helpers (run once, at construction)

    def _check_unique_names(self) -> None:
        seen_stages: dict[str, int] = {}
        seen_approvals: dict[str, str] = {}
        for i, stage in enumerate(self.stages):
            if stage.name in seen_stages:
                raise _reference_error(
                    f"stages[{i}].name",
                    f"duplicate stage name {stage.name!r} (first at stages[{seen_stages[stage.name]}])",
                )
            seen_stages[stage.name] = i
            for j, approval in enumerate(stage.approvals):
                path = f"stages[{i}].approvals[{j}]"
                if approval.name in seen_approvals:
                    raise _reference_error(
                        f"{path}.name",
                        f"duplicate approval name {approval.name!r} (first at {seen_approvals[approval.name]})",
                    )
                seen_approvals[approval.name] = path

    def _raw_placements(self) -> Iterator[PlacedEvidenceSet]:
        for i, stage in enumerate(self.stages):
            for j, evidence_set in enumerate(stage.evidence_set):
                yield PlacedEvidenceSet(stage, evidence_set, None, f"stages[{i}].evidenceSet[{j}]")
            for j, approval in enumerate(stage.approvals):
                if approval.evidence is not None:
                    yield PlacedEvidenceSet(
                        stage, approval.evidence, approval, f"stages[{i}].approvals[{j}].evidence"
                    )

    def _resolve_evidence(self) -> None:
        definitions: dict[str, tuple[EvidenceSet, str]] = {}
        for placed in self._raw_placements():
            es = placed.evidence_set
            if es.definition is None:
                continue
            if es.id in definitions:
                first, first_path = definitions[es.id]
                if _definition_dump(first) != _definition_dump(es):
                    raise _reference_error(
                        f"{placed.path}.id",
                        f"evidence id {es.id!r} is already defined differently at {first_path}; "
                        "give this set its own id or write only '{id: ...}' to reuse it",
                    )
            else:
                definitions[es.id] = (es, placed.path)
        for placed in self._raw_placements():
            es = placed.evidence_set
            if es.definition is None:
                if es.id not in definitions:
                    raise _reference_error(
                        f"{placed.path}.id",
                        f"{es.id!r} is an id-only reference, but no evidence set in this policy "
                        "defines it; add its 'name' and 'definition' where it first appears",
                    )
                source = definitions[es.id][0]
                es.definition = source.definition
                es.name = es.name or source.name
                es.description = es.description or source.description
                if es.visibility_rule is None:
                    es.visibility_rule = source.visibility_rule
                    es._visibility = source._visibility
                es._reference = True
            for index, artifact in enumerate(es.definition or []):
                artifact._key = es.artifact_key(index)
                artifact._evidence_set_id = es.id

    def _check_gates(self) -> None:
        names = {a.name for _, a in self.approvals()}
        for i, gate in enumerate(self.gates):
            for j, approval_name in enumerate(gate.approvals):
                if approval_name not in names:
                    known = ", ".join(sorted(names)) or "none"
                    raise _reference_error(
                        f"gates[{i}].approvals[{j}]",
                        f"gate {gate.name!r} requires approval {approval_name!r}, which no stage "
                        f"defines (approvals: {known})",
                    )

    def _check_classification(self) -> None:
        if self.classification is None:
            return
        aliases = self.classification_aliases()
        for k, alias in enumerate(self.classification.artifacts):
            if alias not in aliases:
                self.classification._note(
                    f"alias {alias!r} is not set by any input's aliasForClassification",
                    f"artifacts[{k}]",
                )
        compiled = self.classification.compiled
        if compiled is None:
            return
        for alias in sorted(compiled.aliases):
            if alias not in aliases:
                what = "names" if compiled.alias is not None else "reads"
                self.classification._note(
                    f"rule {what} alias {alias!r}, which no input sets with aliasForClassification "
                    "(it will always read as unanswered)",
                    "rule",
                )

    def _check_conditional_display(self) -> None:
        ids = {p.evidence_set.id for p in self._raw_placements()}
        for placed in self.artifacts():
            artifact = placed.artifact
            if isinstance(artifact, InputArtifact) and artifact.details.conditional_display:
                target = artifact.details.conditional_display.depends_on
                if target not in ids:
                    artifact.details.conditional_display._note(
                        f"{target!r} names no evidence set in this policy; the condition can "
                        "never be met",
                        "dependsOn",
                    )

    # ----- accessors

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage named {name!r}; stages: {[s.name for s in self.stages]}")

    def approvals(self) -> Iterator[tuple[Stage, Approval]]:
        """Every approval with its stage, in policy order."""
        for stage in self.stages:
            for approval in stage.approvals:
                yield stage, approval

    def approval(self, name: str) -> Approval:
        for _, approval in self.approvals():
            if approval.name == name:
                return approval
        raise KeyError(f"no approval named {name!r}")

    def stage_of_approval(self, name: str) -> Stage:
        for stage, approval in self.approvals():
            if approval.name == name:
                return stage
        raise KeyError(f"no approval named {name!r}")

    def gate(self, name: str) -> Gate:
        for gate in self.gates:
            if gate.name == name:
                return gate
        raise KeyError(f"no gate named {name!r}")

    def evidence_sets(self) -> Iterator[PlacedEvidenceSet]:
        """Every placement of every evidence set, approval evidence included, in policy order.

        A set reused by reference appears once per placement (with the same id).
        """
        return self._raw_placements()

    def evidence_set(self, evidence_id: str) -> EvidenceSet:
        for placed in self._raw_placements():
            if placed.evidence_set.id == evidence_id:
                return placed.evidence_set
        raise KeyError(f"no evidence set with id {evidence_id!r}")

    def artifacts(self) -> Iterator[PlacedArtifact]:
        """Every artifact once (at its first placement), approval evidence included.

        Computed once per policy and kept: a loaded policy is not changed afterwards, and
        governance walks this list many times per evaluation, on every super-step."""
        if self._placed_artifacts is None:
            self._placed_artifacts = tuple(self._placed())
        return iter(self._placed_artifacts)

    def _placed(self) -> Iterator[PlacedArtifact]:
        seen: set[str] = set()
        for placed in self._raw_placements():
            es = placed.evidence_set
            for index, artifact in enumerate(es.definition or []):
                key = es.artifact_key(index)
                if key in seen:
                    continue
                seen.add(key)
                yield PlacedArtifact(
                    key,
                    artifact,
                    es,
                    placed.stage,
                    placed.approval,
                    f"{placed.path}.definition[{index}]",
                )

    def inputs(self) -> Iterator[PlacedArtifact]:
        """Every question (``artifactType: input``) once, approval evidence included."""
        return (p for p in self.artifacts() if isinstance(p.artifact, InputArtifact))

    def artifact(self, key: str) -> AnyArtifact:
        """The artifact with that evidence key (``Local.x[0]`` also finds a single ``Local.x``)."""
        for placed in self.artifacts():
            if placed.key == key or (placed.key + "[0]") == key:
                return placed.artifact
        raise KeyError(f"no artifact with evidence key {key!r}")

    def metrics(self) -> Iterator[PlacedMetric]:
        for placed in self.artifacts():
            artifact = placed.artifact
            if isinstance(artifact, MetadataArtifact) and isinstance(
                artifact.details, ModelMetricDetails
            ):
                for m, metric in enumerate(artifact.details.metrics):
                    yield PlacedMetric(
                        metric,
                        placed.key,
                        placed.evidence_set,
                        placed.stage,
                        f"{placed.path}.details.metrics[{m}]",
                    )

    def scripted_checks(self) -> Iterator[PlacedArtifact]:
        return (p for p in self.artifacts() if isinstance(p.artifact, ScriptedCheckArtifact))

    def monitoring_checks(self) -> Iterator[PlacedArtifact]:
        return (p for p in self.artifacts() if isinstance(p.artifact, MonitoringCheckArtifact))

    def file_uploads(self) -> Iterator[PlacedArtifact]:
        return (
            p
            for p in self.artifacts()
            if isinstance(p.artifact, MetadataArtifact)
            and isinstance(p.artifact.details, FileDetails)
        )

    def classification_aliases(self) -> dict[str, PlacedArtifact]:
        """alias -> the input that carries ``aliasForClassification: alias``."""
        found: dict[str, PlacedArtifact] = {}
        for placed in self.inputs():
            alias = placed.artifact.alias_for_classification  # type: ignore[union-attr]
            if alias and alias not in found:
                found[alias] = placed
        return found

    def classification_inputs(self, answers: Mapping[str, Any]) -> dict[str, Any]:
        """Map evidence answers (by evidence key) to the rule's ``classificationInputs``."""
        inputs: dict[str, Any] = {}
        for alias, placed in self.classification_aliases().items():
            for key in (placed.key, placed.key + "[0]"):
                if key in answers:
                    inputs[alias] = answers[key]
                    break
        return inputs

    def classify(self, inputs: Mapping[str, Any]) -> str | float | None:
        """The classification value for answers given by alias; None if there is no rule.

        Raises :class:`~governance.rules.RuleEvaluationError` when the rule fails on these
        answers (e.g. ``.(string)`` of a list answer).
        """
        if self.classification is None or self.classification.compiled is None:
            return None
        return self.classification.compiled.evaluate(inputs)

    def approver_names(self) -> set[str]:
        """Every approver named anywhere (top-level defaults and every approval)."""
        names = {a.name for a in self.approvers}
        for _, approval in self.approvals():
            names.update(approval.approver_names)
        return names


def _definition_dump(evidence_set: EvidenceSet) -> Any:
    """What makes two definitions 'the same' (UI-exported UUIDs aside)."""
    return [
        a.model_dump(mode="json", exclude={"policy_entity_id"})
        for a in evidence_set.definition or []
    ]
