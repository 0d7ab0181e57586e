"""Kickoff: turn a conversation (or a requirements file) into validated ``ProjectRequirements``.

Each round of clarifying questions is one ``interrupt()``; the answer resumes the same
thread, is appended to the conversation, and the node runs again (a conditional loop in
the graph, not a ``while`` around ``interrupt``). Only what is still missing or doubtful
is asked: a file source always has its target column asked (offering the file's
columns) and every binary target its positive class (offering its values; by name where
the source names them, e.g. scikit-learn's breast_cancer: malignant / benign, with the
class mpm would otherwise infer and why). Before planning,
a conversational kickoff restates the complete requirements and asks for confirmation
or corrections (one interrupt; corrections loop back through extraction). A requirements
file is already explicit and goes straight to planning.

The stub's extractor records only what the person stated: a negated statement ("no
regulatory impact", "not a high-risk use case") never becomes the positive fact,
percentages become fractions, metric synonyms ("AUC") their canonical names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.config import get_config
from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import BaseModel, Field, ValidationError, create_model

from mpm.graph.context import RunContext, run_context
from mpm.graph.events import event
from mpm.graph.llm import get_chat_model, invoke_with_timeout, register_structured_rule
from mpm.graph.state import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    ComputeTier,
    GraphState,
    ModelType,
    ProjectRequirements,
    RiskLevel,
    Sensitivity,
    now_iso,
)
from mpm.tools.killpoints import maybe_die

FILE_SUFFIXES = (".csv", ".parquet", ".pq")

MAX_ROUNDS = 5
MODEL_ATTEMPTS = 2
"""Tries of the requirements extraction before the kickoff gives up (a provider error)."""

QUESTIONS: dict[str, dict[str, Any]] = {
    "project_name": {"question": "What is the project called?", "required": True},
    "business_objective": {
        "question": "What business objective should the model serve?",
        "required": True,
    },
    "model_type": {
        "question": "What kind of model is it?",
        "options": ["classification", "regression", "llm"],
        "required": True,
    },
    "target_metric": {
        "question": "Which metric decides success?",
        "options": list(CLASSIFICATION_METRICS + REGRESSION_METRICS),
        "required": True,
    },
    "success_threshold": {
        "question": "What value of that metric counts as success?",
        "required": True,
    },
    "data_sources": {
        "question": "Which data should be used? (sklearn:<name>, synthetic:credit|churn|fraud, or a CSV/Parquet path; "
        "add the sensitivity in brackets, e.g. 'synthetic:credit (personal)')",
        "required": True,
    },
    "constraints": {
        "question": "Any constraints (deadline, budget, explainability, latency)? Answer 'none' if not.",
        "required": False,
    },
    "risk_level": {
        "question": "What is the risk level of the decisions this model supports?",
        "options": ["low", "medium", "high"],
        "required": False,
    },
}
FILE_QUESTIONS: dict[str, str] = {
    "target_column": "Which column of {file} is the target the model predicts?",
    "positive_class": "Which value of {column} is the positive class (what the model should detect)?",
}
CONFIRM = "confirm"
_YES = {"yes", "y", "ok", "okay", "confirm", "confirmed", "correct", "right", "true", "looks good"}

SYSTEM_PROMPT = """You are the project manager of a governed ML initiative. Extract the project
requirements from the conversation as JSON. Rules:
- Fill only what the person said; leave a field null or empty when it was not stated.
- A negated statement is not the fact: "no regulatory impact" is regulatory_impact false;
  "not a high-risk use case" leaves risk_level null.
- Percentages are fractions: "70%" is 0.7. Metric names: accuracy, roc_auc (AUC), f1,
  precision, recall, balanced_accuracy, r2, rmse, mae, mape.
- Later corrections ("field: value") replace earlier values.
Example: "AUC of at least 80% on data.csv, risk is medium, no regulatory impact" gives
{"target_metric": "roc_auc", "success_threshold": 0.8, "risk_level": "medium",
"regulatory_impact": false, "data_sources": [{"name": "data", "uri": "data.csv"}]}."""


class DataSourceDraft(BaseModel):
    name: str
    uri: str
    sensitivity: Sensitivity = Sensitivity.internal
    rows: int | None = None


class RequirementsDraft(BaseModel):
    """What is known so far; every field optional."""

    project_name: str | None = None
    business_objective: str | None = None
    model_type: str | None = None
    target_metric: str | None = None
    success_threshold: float | None = None
    target_column: str | None = None
    positive_class: str | None = None
    data_sources: list[DataSourceDraft] = Field(default_factory=list)
    sensitive_attributes: list[str] = Field(default_factory=list)
    constraints: list[str] = Field(default_factory=list)
    stakeholders: list[str] = Field(default_factory=list)
    risk_level: str | None = None
    regulatory_impact: bool | None = None
    ethical_ai_required: bool | None = None
    deadline: str | None = None
    compute_tier: str | None = None
    requested_by: str | None = None
    stated_fields: list[str] = Field(
        default_factory=list, description="fields the person addressed, even with 'none'"
    )


def _choice(values: Sequence[str]) -> Any:
    return Literal[tuple(values)]  # type: ignore[valid-type]


ConstrainedDraft: type[RequirementsDraft] = create_model(
    "RequirementsDraft",
    __base__=RequirementsDraft,
    __doc__="What a model may answer: the closed fields are enums of their valid values, so "
    "a grammar-constrained decoder cannot write anything else.",
    model_type=(_choice([m.value for m in ModelType]) | None, None),
    target_metric=(_choice(CLASSIFICATION_METRICS + REGRESSION_METRICS) | None, None),
    risk_level=(_choice([r.value for r in RiskLevel]) | None, None),
    compute_tier=(_choice([c.value for c in ComputeTier]) | None, None),
)
"""The schema sent to the model (a subclass, so the stub answers it with the same rules)."""


# --------------------------------------------------------------------- rule-based extraction

_KEYS = {
    "project_name": ("project name", "project", "name"),
    "business_objective": ("business objective", "objective", "goal", "purpose"),
    "model_type": ("model type", "type of model", "model"),
    "target_metric": ("target metric", "metric"),
    "success_threshold": ("success threshold", "threshold", "target"),
    "target_column": ("target column", "label column", "label"),
    "positive_class": ("positive class", "positive label", "positive value"),
    "data_sources": ("data sources", "data source", "data", "dataset"),
    "sensitive_attributes": ("sensitive attributes", "protected attributes", "fairness attributes"),
    "constraints": ("constraints", "constraint"),
    "stakeholders": ("stakeholders",),
    "risk_level": ("risk level", "risk"),
    "regulatory_impact": ("regulatory impact", "regulated", "regulatory"),
    "ethical_ai_required": ("ethical ai", "ethics review"),
    "deadline": ("deadline", "due"),
    "compute_tier": ("compute tier", "compute"),
    "requested_by": ("requested by", "requester", "owner"),
}
_ALIASES = {alias: field for field, aliases in _KEYS.items() for alias in aliases}
_LINE = re.compile(r"^\s*[-*]?\s*(?P<key>[A-Za-z _]+?)\s*[:=]\s*(?P<value>.+?)\s*$")
_URI = re.compile(
    r"\b(?P<uri>(?:sklearn|synthetic):[A-Za-z0-9_]+|[\w./-]+\.(?:csv|parquet))\b(?:\s*\((?P<sens>[a-z]+)\))?"
)
_METRIC_SYNONYMS = {
    "roc auc": "roc_auc",
    "roc-auc": "roc_auc",
    "auroc": "roc_auc",
    "auc": "roc_auc",
    "area under the curve": "roc_auc",
    "area under the roc curve": "roc_auc",
    "f1 score": "f1",
    "f1-score": "f1",
    "f-score": "f1",
    "f score": "f1",
    "balanced accuracy": "balanced_accuracy",
    "r squared": "r2",
    "r-squared": "r2",
    "r²": "r2",
    "root mean squared error": "rmse",
    "root mean square error": "rmse",
    "mean absolute error": "mae",
    "mean absolute percentage error": "mape",
    "sensitivity": "recall",
}
_METRIC_WORDS = sorted(
    [*_METRIC_SYNONYMS, *CLASSIFICATION_METRICS, *REGRESSION_METRICS], key=len, reverse=True
)
_METRIC_RE = "|".join(re.escape(w) for w in _METRIC_WORDS)
_NUMBER = re.compile(r"(?P<num>-?\d+(?:\.\d+)?)\s*(?P<pct>%|percent\b)?")
_NONE = {"none", "no", "n/a", "na", "-"}
_NEGATION = re.compile(
    r"\b(?:not|no|none|never|without|neither|nor|non)\b|n't\b|\bnon-|\bun(?=regulat)"
)
_CLAUSE_END = re.compile(r"[.;,!?\n]|\bbut\b|\band\b")
BOUNDED_METRICS = (*CLASSIFICATION_METRICS, "r2")
"""Metrics whose values lie in [0, 1]: a threshold above 1 is a percentage or a slip."""


def canonical_metric(value: str) -> str:
    """``AUC`` -> ``roc_auc``, ``F1 score`` -> ``f1``; unknown names are returned lowered."""
    lowered = " ".join(value.strip().lower().replace("_", " ").split())
    if lowered in _METRIC_SYNONYMS:
        return _METRIC_SYNONYMS[lowered]
    snake = lowered.replace(" ", "_")
    if snake in CLASSIFICATION_METRICS + REGRESSION_METRICS:
        return snake
    first = lowered.split()[0] if lowered else lowered
    return _METRIC_SYNONYMS.get(first, first)


def parse_number(value: str) -> float | None:
    """The first number in ``value``; ``70%`` and ``70 percent`` are 0.70."""
    m = _NUMBER.search(value)
    if not m:
        return None
    number = float(m.group("num"))
    return number / 100 if m.group("pct") else number


def negated(text: str, start: int) -> bool:
    """Whether the words just before ``start``, in the same clause, negate what follows
    ("no regulatory impact", "this is not a high-risk use case", "isn't regulated")."""
    head = text[max(0, start - 60) : start]
    ends = list(_CLAUSE_END.finditer(head))
    clause = head[ends[-1].end() :] if ends else head
    return bool(_NEGATION.search(clause))


def _split(value: str) -> list[str]:
    return [
        p.strip() for p in re.split(r"[;,]", value) if p.strip() and p.strip().lower() not in _NONE
    ]


def _truthy(value: str) -> bool | None:
    """``yes``/``true``/``required`` -> True, ``no``/``false``/``not ...`` -> False, else None."""
    lowered = value.strip().lower()
    if lowered in {"yes", "true", "y", "1", "required", "high"}:
        return True
    if lowered in {"no", "false", "n", "0", "none", "not required"} or _NEGATION.match(lowered):
        return False
    return None


def _sources(text: str) -> list[DataSourceDraft]:
    found = []
    for m in _URI.finditer(text):
        uri = m.group("uri")
        sens = m.group("sens") or ""
        if not sens:
            lowered = text.lower()
            sens = next(
                (
                    s.value
                    for s in Sensitivity
                    if re.search(rf"\b{s.value}\b", lowered) and s.value != "internal"
                ),
                "internal",
            )
        name = uri.split(":", 1)[-1].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        found.append(
            DataSourceDraft(
                name=name,
                uri=uri,
                sensitivity=Sensitivity(sens)
                if sens in Sensitivity.__members__
                else Sensitivity.internal,
            )
        )
    return found


def extract_requirements(messages: Sequence[BaseMessage]) -> RequirementsDraft:
    """Rule-based extractor: ``key: value`` lines first, then keywords in free text.

    This is the stub model's structured-output rule for :class:`RequirementsDraft`; a real
    model does the same job from the same conversation."""
    draft: dict[str, Any] = {}
    free_text: list[str] = []
    for message in messages:
        if not isinstance(message, HumanMessage):
            continue
        for line in str(message.content).splitlines():
            m = _LINE.match(line)
            field = _ALIASES.get(m.group("key").strip().lower().replace("_", " ")) if m else None
            if not field:
                free_text.append(line)
                continue
            value = m.group("value").strip()
            draft.setdefault("stated_fields", []).append(field)
            if field in {"constraints", "stakeholders", "sensitive_attributes"}:
                draft[field] = _split(value)
            elif field == "data_sources":
                draft[field] = _sources(value) or draft.get(field, [])
            elif field in {"regulatory_impact", "ethical_ai_required"}:
                flag = _truthy(value)
                if flag is None:
                    draft.pop(field, None)
                    draft["stated_fields"].remove(field)  # unclear: asked again
                else:
                    draft[field] = flag
            elif field == "success_threshold":
                number = parse_number(value)
                if number is not None:
                    draft[field] = number
            elif field == "target_metric":
                draft[field] = canonical_metric(value)
            elif field in {"model_type", "risk_level", "compute_tier"}:
                if _NEGATION.match(value.lower()):  # "risk: not high" says what it is not
                    draft.pop(field, None)
                    draft["stated_fields"].remove(field)
                else:
                    draft[field] = value.lower().split()[0]
            else:
                draft[field] = value
    text = "\n".join(free_text)
    lowered = text.lower()
    if "model_type" not in draft:
        if re.search(r"\b(classif\w*|predict whether|churn|fraud|default)\b", lowered):
            draft["model_type"] = "classification"
        elif re.search(
            r"\b(regression|forecast\w*|estimate the amount|predict the value)\b", lowered
        ):
            draft["model_type"] = "regression"
        elif re.search(r"\b(llm|chatbot|language model|summari[sz]\w*)\b", lowered):
            draft["model_type"] = "llm"
    if "target_metric" not in draft or "success_threshold" not in draft:
        m = re.search(
            rf"(?<![\w-])({_METRIC_RE})(?![\w-])[^0-9\n]{{0,30}}?(-?\d+(?:\.\d+)?\s*(?:%|percent\b)?)",
            lowered,
        )
        if m:
            draft.setdefault("target_metric", canonical_metric(m.group(1)))
            number = parse_number(m.group(2))
            if number is not None:
                draft.setdefault("success_threshold", number)
        elif "target_metric" not in draft:
            named = re.search(rf"(?<![\w-])({_METRIC_RE})(?![\w-])", lowered)
            if named and not negated(lowered, named.start()):
                draft["target_metric"] = canonical_metric(named.group(1))
    if not draft.get("data_sources"):
        sources = _sources(text)
        if sources:
            draft["data_sources"] = sources
    if "risk_level" not in draft:
        for m in re.finditer(
            r"\b(?P<a>low|medium|high)[- ]risk\b|\brisk(?: level)?\s*(?:is|=|:|of)?\s*(?:a\s+|an\s+)?(?P<b>low|medium|high)\b",
            lowered,
        ):
            if not negated(lowered, m.start()):
                draft["risk_level"] = m.group("a") or m.group("b")
                break
    if "regulatory_impact" not in draft:
        for m in re.finditer(r"\b(?:un|non-?)?regulat\w*", lowered):
            draft["regulatory_impact"] = not (
                negated(lowered, m.start()) or m.group().startswith(("un", "non"))
            )
            break
    if "target_column" not in draft:
        m = re.search(
            r"\b(?:target|label) column\s*(?:is|=|:|called|named)?\s*[`'\"]?(?P<col>[A-Za-z_][\w.-]*)",
            text,
            re.IGNORECASE,
        )
        if m and m.group("col").lower() not in {"is", "the", "a"}:
            draft["target_column"] = m.group("col")
    return RequirementsDraft(**draft)


register_structured_rule(RequirementsDraft)(extract_requirements)


# --------------------------------------------------------------------- the node


def missing_fields(draft: RequirementsDraft, asked: set[str]) -> list[str]:
    missing = []
    for field, q in QUESTIONS.items():
        value = getattr(draft, field)
        empty = value is None or value == [] or value == ""
        if empty and (q["required"] or (field not in asked and field not in draft.stated_fields)):
            missing.append(field)
    return missing


def draft_to_requirements(draft: RequirementsDraft) -> ProjectRequirements:
    data = {
        k: v
        for k, v in draft.model_dump(mode="json", exclude={"stated_fields"}).items()
        if v not in (None, [], "")
    }
    return ProjectRequirements.model_validate(data)


def _conversation_messages(conversation: list[dict[str, str]]) -> list[BaseMessage]:
    from langchain_core.messages import AIMessage

    out: list[BaseMessage] = [SystemMessage(SYSTEM_PROMPT)]
    for turn in conversation:
        out.append(
            HumanMessage(turn["content"]) if turn["role"] == "user" else AIMessage(turn["content"])
        )
    return out


def answers_to_text(answer: Any) -> str:
    """Resume values may be ``{field: answer}`` or free text; both become one user turn.
    A confirmation's corrections (``{"confirm": "metric: f1"}``) are the person's own lines."""
    if isinstance(answer, dict):
        lines = []
        for k, v in answer.items():
            if v is None or not str(v).strip():
                continue
            lines.append(str(v) if k == CONFIRM else f"{k}: {v}")
        return "\n".join(lines)
    return str(answer)


def is_yes(answer: Any) -> bool:
    """A confirmation: ``yes`` (or ``true`` from YAML), alone, as text or ``{"confirm": ...}``."""
    if isinstance(answer, dict):
        others = [k for k, v in answer.items() if k != CONFIRM and v not in (None, "")]
        if others:
            return False
        answer = answer.get(CONFIRM)
    if answer is True:
        return True
    return isinstance(answer, str) and answer.strip().lower().rstrip(".!") in _YES


def restate(req: ProjectRequirements) -> str:
    """The complete requirements, one ``field: value`` line each, as the person will confirm them."""
    data = req.model_dump(mode="json")
    lines = []
    for field in (
        "project_name",
        "business_objective",
        "model_type",
        "target_metric",
        "success_threshold",
        "data_sources",
        "target_column",
        "positive_class",
        "sensitive_attributes",
        "constraints",
        "stakeholders",
        "risk_level",
        "regulatory_impact",
        "ethical_ai_required",
        "deadline",
        "requested_by",
    ):
        value = data.get(field)
        if field == "data_sources":
            value = ", ".join(f"{d['uri']} ({d['sensitivity']})" for d in value or [])
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "none"
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        # one line per field, whatever the values hold: a value cannot fake another line
        shown = "not set" if value is None else " ".join(str(value).split())
        lines.append(f"{field}: {shown}")
    return "\n".join(lines)


def _file_sources(draft: RequirementsDraft) -> list[DataSourceDraft]:
    return [
        d
        for d in draft.data_sources
        if d.uri.lower().removeprefix("file://").endswith(FILE_SUFFIXES)
    ]


def file_doubts(draft: RequirementsDraft, workspace_root: str) -> list[dict[str, Any]]:
    """Questions about the file sources: always the target column (offering the file's
    columns), then for a binary classification target its positive class (offering its
    two values). A file that cannot be read is a problem with ``data_sources``."""
    from mpm.tools.datasets import read_table, resolve_inside
    from mpm.tools.errors import DataError

    out: list[dict[str, Any]] = []
    for source in _file_sources(draft)[:1]:  # the training table is the first file
        try:
            df = read_table(resolve_inside(source.uri.removeprefix("file://"), workspace_root))
        except DataError as exc:
            out.append(
                {
                    "field": "data_sources",
                    "question": QUESTIONS["data_sources"]["question"],
                    "problem": str(exc).splitlines()[0],
                }
            )
            return out
        columns = [str(c) for c in df.columns]
        name = source.uri.rsplit("/", 1)[-1]
        target = draft.target_column
        if target not in columns:
            question: dict[str, Any] = {
                "field": "target_column",
                "question": FILE_QUESTIONS["target_column"].format(file=name),
                "options": columns[:100],
                "strict": True,
            }
            if target:
                question["problem"] = f"target_column: {target!r} is not a column of {name}"
            out.append(question)
            return out
        if draft.model_type != "classification":
            return out
        values = sorted({str(v) for v in df[target].dropna().unique()[:3]})
        if len(values) == 2 and draft.positive_class not in values:
            from mpm.tools.positive_class import resolve_positive_class

            guess = resolve_positive_class(
                values,
                counts=df[target].dropna().astype(str).value_counts().to_dict(),
                objective=draft.business_objective,
            )
            question = {
                "field": "positive_class",
                "question": FILE_QUESTIONS["positive_class"].format(column=target)
                + f" Without an answer mpm would choose {guess['name']!r}: {guess['reason']}.",
                "options": values,
                "strict": True,
            }
            if draft.positive_class:
                question["problem"] = (
                    f"positive_class: {draft.positive_class!r} is not a value of {target}"
                )
            out.append(question)
    return out


def source_doubts(draft: RequirementsDraft) -> list[dict[str, Any]]:
    """The positive class of a built-in source's binary target (scikit-learn and synthetic
    sources know their labels before any data is acquired), offered by name, with the
    class mpm would otherwise infer and why."""
    from mpm.tools.positive_class import resolve_positive_class, source_classes

    if draft.model_type != "classification" or not draft.data_sources:
        return []
    source = draft.data_sources[0]
    known = source_classes(source.uri, rows=source.rows)
    labels = known.get("labels") or []
    if len(labels) != 2:
        return []
    names = known.get("names") or {}
    options = [names.get(str(v), str(v)) for v in labels]
    accepted = {o.lower() for o in options} | {str(v).lower() for v in labels}
    stated = (draft.positive_class or "").strip().lower()
    if stated and stated in accepted:
        return []
    column = draft.target_column or known["target"]
    guess = resolve_positive_class(
        labels, counts=known.get("counts"), objective=draft.business_objective, names=names
    )
    question = {
        "field": "positive_class",
        "question": FILE_QUESTIONS["positive_class"].format(column=column)
        + (f" ({known['meaning']})" if known.get("meaning") else "")
        + f" Without an answer mpm would choose {guess['name']!r}: {guess['reason']}.",
        "options": options,
        "strict": True,
    }
    if stated:
        question["problem"] = f"positive_class: {draft.positive_class!r} is not a class of {column}"
    return [question]


def threshold_doubts(draft: RequirementsDraft) -> list[dict[str, Any]]:
    """A threshold above 1 for a metric in [0, 1] is unclear (70 meant 0.70?): ask."""
    metric = canonical_metric(draft.target_metric or "")
    value = draft.success_threshold
    if metric in BOUNDED_METRICS and value is not None and not -1 <= value <= 1:
        return [
            {
                "field": "success_threshold",
                "question": QUESTIONS["success_threshold"]["question"],
                "problem": f"success_threshold: {value:g} is outside 0..1 for {metric}; "
                f"write it as a fraction (e.g. {min(value / 100, 1):.2f}) or a percentage",
            }
        ]
    return []


def ground(draft: RequirementsDraft, messages: Sequence[BaseMessage]) -> RequirementsDraft:
    """A model's reading, kept only where the conversation says it (small models invent
    data files and flip negations). A data source must be named in what the person wrote;
    risk level and the regulatory / ethics flags follow the negation-aware rules when those
    find a statement, and are dropped when the person said nothing about them. For the
    stub's own rule-based reading this changes nothing."""
    said = "\n".join(str(m.content) for m in messages if isinstance(m, HumanMessage)).lower()
    rules = extract_requirements(messages)
    data = draft.model_dump()
    data["data_sources"] = [
        d.model_dump() for d in draft.data_sources if d.uri.strip().lower() in said
    ] or [d.model_dump() for d in rules.data_sources]
    mentions = {
        "risk_level": "risk",
        "regulatory_impact": "regulat",
        "ethical_ai_required": "ethic",
    }
    for field, word in mentions.items():
        ruled = getattr(rules, field)
        if ruled is not None:
            data[field] = ruled
        elif word not in said:
            data[field] = None
    # names and dates are copied, not paraphrased: one the person never wrote is invented
    for field in ("target_column", "positive_class", "deadline", "requested_by", "compute_tier"):
        if data.get(field) is not None and str(data[field]).strip().lower() not in said:
            data[field] = None
    for field in ("sensitive_attributes", "stakeholders"):
        data[field] = [v for v in data.get(field) or [] if str(v).strip().lower() in said]
    return RequirementsDraft.model_validate(data)


def _extract(model_spec: str, conversation: list[dict[str, str]]) -> RequirementsDraft:
    """The model's reading of the conversation; retried once, bounded in time."""
    model = get_chat_model(model_spec).with_structured_output(ConstrainedDraft)
    for attempt in range(1, MODEL_ATTEMPTS + 1):
        try:
            draft = invoke_with_timeout(
                model, _conversation_messages(conversation), what="requirements extraction"
            )
            if not isinstance(draft, RequirementsDraft):
                raise TypeError(f"expected RequirementsDraft, got {type(draft).__name__}")
            return ground(draft, _conversation_messages(conversation))
        except Exception:
            if attempt == MODEL_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def kickoff(state: GraphState, runtime: Runtime[RunContext]) -> Command:
    ctx = run_context(runtime)
    thread_id = get_config()["configurable"]["thread_id"]
    base = {
        "thread_id": thread_id,
        "started_at": state.get("started_at") or now_iso(),
        "status": "running",
    }
    if state.get("requirements"):
        try:
            req = ProjectRequirements.model_validate(state["requirements"])
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            return Command(
                goto=END,
                update={
                    **base,
                    "status": "failed",
                    "events": [event("kickoff", "requirements_invalid", f"{loc}: {first['msg']}")],
                },
            )
        problem = data_problem(req, ctx, thread_id)
        if problem is not None:  # checked before planning: nothing is tracked for it
            return Command(
                goto=END,
                update={
                    **base,
                    "status": "failed",
                    "events": [event("kickoff", "data_invalid", problem)],
                },
            )
        maybe_die("kickoff")
        return Command(
            goto="plan",
            update={
                **base,
                "requirements": req.model_dump(mode="json"),
                "human_answers": req.governance_answers,
                "events": [event("kickoff", "requirements_validated", req.project_name)],
            },
        )

    conversation = state.get("conversation") or []
    if conversation and conversation[-1].get("fields") == CONFIRM:
        return _await_confirmation(base, conversation[-1])  # restated; the person answers
    try:
        draft = _extract(ctx.model, conversation)
    except Exception as exc:  # noqa: BLE001 - a model that keeps failing ends the run, labelled
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
        return Command(
            goto=END,
            update={
                **base,
                "status": "failed",
                "events": [
                    event(
                        "kickoff",
                        "kickoff_failed",
                        f"the model could not extract the requirements in {MODEL_ATTEMPTS} "
                        f"attempts: {reason}",
                    )
                ],
            },
        )
    asked = {
        f
        for turn in conversation
        if turn.get("role") == "assistant"
        for f in turn.get("fields", "").split(",")
        if f
    }
    rounds = sum(
        1
        for turn in conversation
        if turn.get("role") == "assistant" and turn.get("fields") != CONFIRM
    )
    questions = [
        {"field": f, **{k: v for k, v in QUESTIONS[f].items() if k != "required"}}
        for f in missing_fields(draft, asked)
    ]
    doubts: list[dict[str, Any]] = []
    if not questions:
        doubts = (
            threshold_doubts(draft) or file_doubts(draft, str(ctx.ws.root)) or source_doubts(draft)
        )
        questions = doubts
    if questions and rounds < MAX_ROUNDS:
        return _ask(base, questions)
    try:
        req = draft_to_requirements(draft)
    except ValidationError as exc:
        if rounds >= MAX_ROUNDS:
            return Command(
                goto=END,
                update={
                    **base,
                    "status": "failed",
                    "events": [event("kickoff", "requirements_invalid", str(exc).splitlines()[0])],
                },
            )
        named = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        named |= {f for e in exc.errors() if not e["loc"] for f in QUESTIONS if f in e["msg"]}
        bad = sorted(named & set(QUESTIONS)) or ["project_name"]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _ask(
            base,
            [
                {
                    "field": f,
                    **{k: v for k, v in QUESTIONS[f].items() if k != "required"},
                    "problem": detail,
                }
                for f in bad
            ],
            prompt=detail,
        )
    problem = None if doubts else data_problem(req, ctx, thread_id)
    if problem is not None:
        field = problem.split(":", 1)[0].split(".", 1)[0]
        field = field if field in QUESTIONS or field in FILE_QUESTIONS else "data_sources"
        doubts = [
            {
                "field": field,
                "question": QUESTIONS[field]["question"]
                if field in QUESTIONS
                else FILE_QUESTIONS[field].format(
                    file=req.data_sources[0].uri, column=req.target_column
                ),
                "problem": problem,
            }
        ]
        if rounds < MAX_ROUNDS:
            return _ask(base, doubts, prompt=problem)
    if doubts:  # out of rounds and still unsure: planning on a guess would fail later
        return Command(
            goto=END,
            update={
                **base,
                "status": "failed",
                "events": [
                    event(
                        "kickoff",
                        "requirements_invalid",
                        "; ".join(q.get("problem") or q["question"] for q in doubts),
                    )
                ],
            },
        )
    return _propose(base, req, conversation)


def data_problem(req: ProjectRequirements, ctx: RunContext, thread_id: str) -> str | None:
    """What is wrong with the requirements' data (``tools/data_check.py``), or None: checked
    at kickoff, before a plan, a parent run or a stage exists for it. The no-op toolset
    (benchmarks of the graph itself) reads no data, so there is nothing to check."""
    from mpm.tools.data_check import check_data_sources
    from mpm.tools.errors import DataError

    if ctx.toolset == "noop":
        return None
    try:
        check_data_sources(req.model_dump(mode="json"), str(ctx.ws.root), thread_id)
    except DataError as exc:
        return str(exc)
    return None


def _ask(
    base: dict[str, Any], questions: list[dict[str, Any]], prompt: str | None = None
) -> Command:
    """One round of questions: the interrupt, then loop back with the answers."""
    fields = [q["field"] for q in questions]
    answer = interrupt({"type": "kickoff_questions", "questions": questions})
    return Command(
        goto="kickoff",
        update={
            **base,
            "conversation": [
                {
                    "role": "assistant",
                    "content": prompt or "\n".join(q["question"] for q in questions),
                    "fields": ",".join(fields),
                },
                {"role": "user", "content": answers_to_text(answer)},
            ],
            "events": [event("kickoff", "kickoff_questions_answered", ", ".join(fields))],
        },
    )


def _propose(
    base: dict[str, Any], req: ProjectRequirements, conversation: list[dict[str, str]]
) -> Command:
    """Record the restated requirements as the project manager's turn (with the exact
    requirements it shows), then loop: the next run asks for the confirmation. Recording
    first means the confirmation never re-extracts, so ``yes`` plans exactly what was shown."""
    question = (
        "Here is what I understood:\n"
        + restate(req)
        + "\nIs this right? Answer 'yes', or give corrections as 'field: value' lines."
    )
    problem = ""
    last = conversation[-2:] if len(conversation) >= 2 else []
    if last and last[0].get("fields") == CONFIRM:
        answered = str(last[1].get("content", ""))
        if not answered.strip():
            problem = "nothing to correct was given: answer 'yes' or 'field: value' lines"
        elif _is_plain_no(answered):
            problem = "not confirmed: say what to correct as 'field: value' lines"
    turn = {
        "role": "assistant",
        "content": question,
        "fields": CONFIRM,
        "requirements": req.model_dump_json(),
        "problem": problem,
    }
    return Command(goto="kickoff", update={**base, "conversation": [turn]})


def _await_confirmation(base: dict[str, Any], turn: dict[str, str]) -> Command:
    """One interrupt for ``yes`` or corrections; corrections loop back to extraction."""
    req = ProjectRequirements.model_validate_json(turn["requirements"])
    question: dict[str, Any] = {
        "field": CONFIRM,
        "question": turn["content"],
        "options": ["yes"],
        "requirements": req.model_dump(mode="json"),
    }
    if turn.get("problem"):
        question["problem"] = turn["problem"]
    answer = interrupt({"type": "kickoff_questions", "questions": [question], "confirmation": True})
    if is_yes(answer):
        maybe_die("kickoff")
        return Command(
            goto="plan",
            update={
                **base,
                "requirements": req.model_dump(mode="json"),
                "conversation": [{"role": "user", "content": "yes"}],
                "events": [
                    event("kickoff", "requirements_confirmed", req.project_name),
                    event("kickoff", "requirements_validated", req.project_name),
                ],
            },
        )
    return Command(
        goto="kickoff",
        update={
            **base,
            "conversation": [{"role": "user", "content": answers_to_text(answer)}],
            "events": [event("kickoff", "requirements_corrected", req.project_name)],
        },
    )


def _is_plain_no(text: str) -> bool:
    return text.strip().lower().rstrip(".!") in {"no", "n", "false", "wrong", "not right"}
