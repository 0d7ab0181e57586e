"""Kickoff: turn a conversation (or a requirements file) into validated ``ProjectRequirements``.

Each round of clarifying questions is one ``interrupt()``; the answer resumes the same
thread, is appended to the conversation, and the node runs again (a conditional loop in
the graph, not a ``while`` around ``interrupt``). Only what is still missing is asked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.config import get_config
from langgraph.graph import END
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import BaseModel, Field, ValidationError

from mpm.graph.context import RunContext, run_context
from mpm.graph.events import event
from mpm.graph.llm import get_chat_model, invoke_with_timeout, register_structured_rule
from mpm.graph.state import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    GraphState,
    ProjectRequirements,
    Sensitivity,
    now_iso,
)
from mpm.tools.killpoints import maybe_die

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

SYSTEM_PROMPT = """You are the project manager of a governed ML initiative. Extract the project
requirements from the conversation. Fill only what the person actually said; leave a
field empty when it was not stated."""


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


# --------------------------------------------------------------------- rule-based extraction

_KEYS = {
    "project_name": ("project name", "project", "name"),
    "business_objective": ("business objective", "objective", "goal", "purpose"),
    "model_type": ("model type", "type of model", "model"),
    "target_metric": ("target metric", "metric"),
    "success_threshold": ("success threshold", "threshold", "target"),
    "target_column": ("target column", "label column", "label"),
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
_METRIC_NAMES = CLASSIFICATION_METRICS + REGRESSION_METRICS + ("auc",)
_NONE = {"none", "no", "n/a", "na", "-"}


def _split(value: str) -> list[str]:
    return [
        p.strip() for p in re.split(r"[;,]", value) if p.strip() and p.strip().lower() not in _NONE
    ]


def _truthy(value: str) -> bool:
    return value.strip().lower() in {"yes", "true", "y", "1", "required", "high"}


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
                draft[field] = _truthy(value)
            elif field == "success_threshold":
                number = re.search(r"-?\d+(?:\.\d+)?", value)
                if number:
                    draft[field] = float(number.group())
            elif field == "model_type" or field in {"target_metric", "risk_level", "compute_tier"}:
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
        m = re.search(rf"\b({'|'.join(_METRIC_NAMES)})\b[^0-9\n]{{0,30}}(\d+(?:\.\d+)?)", lowered)
        if m:
            draft.setdefault("target_metric", "roc_auc" if m.group(1) == "auc" else m.group(1))
            draft.setdefault("success_threshold", float(m.group(2)))
    if not draft.get("data_sources"):
        sources = _sources(text)
        if sources:
            draft["data_sources"] = sources
    if "risk_level" not in draft:
        m = re.search(r"\b(low|medium|high)[- ]risk\b", lowered)
        if m:
            draft["risk_level"] = m.group(1)
    if "regulatory_impact" not in draft and re.search(r"\bregulat\w*", lowered):
        draft["regulatory_impact"] = True
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
    """Resume values may be ``{field: answer}`` or free text; both become one user turn."""
    if isinstance(answer, dict):
        return "\n".join(f"{k}: {v}" for k, v in answer.items() if str(v).strip())
    return str(answer)


def _extract(model_spec: str, conversation: list[dict[str, str]]) -> RequirementsDraft:
    """The model's reading of the conversation; retried once, bounded in time."""
    model = get_chat_model(model_spec).with_structured_output(RequirementsDraft)
    for attempt in range(1, MODEL_ATTEMPTS + 1):
        try:
            draft = invoke_with_timeout(
                model, _conversation_messages(conversation), what="requirements extraction"
            )
            if not isinstance(draft, RequirementsDraft):
                raise TypeError(f"expected RequirementsDraft, got {type(draft).__name__}")
            return draft
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
    missing = missing_fields(draft, asked)
    rounds = sum(1 for turn in conversation if turn.get("role") == "assistant")
    if missing and rounds < MAX_ROUNDS:
        questions = [
            {"field": f, **{k: v for k, v in QUESTIONS[f].items() if k != "required"}}
            for f in missing
        ]
        answer = interrupt({"type": "kickoff_questions", "questions": questions})
        prompt = "\n".join(q["question"] for q in questions)
        return Command(
            goto="kickoff",
            update={
                **base,
                "conversation": [
                    {"role": "assistant", "content": prompt, "fields": ",".join(missing)},
                    {"role": "user", "content": answers_to_text(answer)},
                ],
                "events": [event("kickoff", "kickoff_questions_answered", ", ".join(missing))],
            },
        )
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
        questions = [
            {
                "field": f,
                **{k: v for k, v in QUESTIONS[f].items() if k != "required"},
                "problem": detail,
            }
            for f in bad
        ]
        answer = interrupt({"type": "kickoff_questions", "questions": questions})
        return Command(
            goto="kickoff",
            update={
                **base,
                "conversation": [
                    {"role": "assistant", "content": detail, "fields": ",".join(bad)},
                    {"role": "user", "content": answers_to_text(answer)},
                ],
            },
        )
    maybe_die("kickoff")
    return Command(
        goto="plan",
        update={
            **base,
            "requirements": req.model_dump(mode="json"),
            "events": [event("kickoff", "requirements_validated", req.project_name)],
        },
    )
