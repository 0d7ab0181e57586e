"""The tool-calling loop every specialist sub-agent runs, and the pieces it needs.

A sub-agent is a model, a toolkit and a system prompt. It gets a compact *brief* (its
task, the requirements, upstream results by reference, its governance context), never
the whole conversation, so the tokens it costs do not grow with the length of the run.
The loop: call the model with the tools bound; run every tool call it makes and answer
with a ``ToolMessage``. It ends when the model

* answers without tool calls (a summary), or
* calls the completion tool ``finish`` once the stage's required outputs exist, or
* stops making progress — every call of a turn repeats one that already succeeded —
  once the required outputs exist (small real models do the work right, then keep
  calling the same tools instead of writing a reply).

A repeated call is not run again (tools train models, log runs): the model gets the
earlier result back with a note. In the last two cases the summary is built from the
tool results, never from model prose. Tool errors, unknown tools and malformed
arguments become error ``ToolMessage``s the model can react to; whether the stage
succeeded is decided by the toolkit (:meth:`Toolkit.finalize`), from what the tools
actually produced. Token use is taken from each reply's ``usage_metadata``.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool

from mpm.agents.faults import apply_tool_fault
from mpm.tools.killpoints import maybe_die

MAX_TURNS = 12
MAX_IDLE_TURNS = 3
"""Turns in a row without progress (only repeated calls) before a stage that still lacks
its required outputs gives up, rather than spending the rest of ``MAX_TURNS``."""
FINISH_TOOL = "finish"
REPEAT_MARK = "mpm_repeated_call"


class AgentFailure(RuntimeError):
    """The agent finished without producing what its stage must deliver."""


class PermanentStageFailure(AgentFailure):
    """The stage failed on an error that cannot change on retry (``tools.errors.PermanentError``:
    a missing file, a one-class target, an unknown dataset): retrying only repeats it."""


class StageTimeout(TimeoutError):
    """The stage ran past its timeout."""


class GateClosed(RuntimeError):
    """A tool was asked for an action that a governance gate still blocks."""

    def __init__(self, action: str, gates: list[str]) -> None:
        self.action = action
        self.gates = gates
        named = (
            "gate " + ", ".join(repr(g) for g in gates)
            if gates
            else f"the governance gate on {action!r}"
        )
        super().__init__(
            f"{action} refused: {named} is not open; grant the approvals it waits for "
            "(`mpm approvals`) and resume the run"
        )


@dataclass
class StageContext:
    """What the tools need that the model does not choose: where to write, what to log to."""

    stage: str
    stage_dir: Path
    workspace_root: Path
    requirements: dict[str, Any]
    upstream: dict[str, dict[str, Any]] = field(default_factory=dict)
    tracking_uri: str | None = None
    run_id: str | None = None
    parent_run_id: str | None = None
    experiment_id: str | None = None
    seed: int = 42
    governance: dict[str, Any] = field(default_factory=dict)
    revision_comment: str | None = None
    remediation: dict[str, Any] | None = None
    """The remediation attempt this run of the stage is (supervisor), or None."""
    deadline: float | None = None

    def ensure_open(self, action: str) -> None:
        """Refuse ``action`` (e.g. ``register_model``) while a governance gate blocks it.

        Defense in depth beside the supervisor's guard: the governance context says which
        actions policy gates guard (``gated_actions``) and which of them are open now
        (``open_actions``). A context without those keys (no governance evaluation, a tool
        called directly) blocks nothing. Raises :class:`GateClosed`."""
        gated = self.governance.get("gated_actions")
        opened = self.governance.get("open_actions")
        if gated is None or opened is None or action not in gated or action in opened:
            return
        raise GateClosed(action, list((self.governance.get("closed_gates") or {}).get(action, [])))

    def upstream_output(self, key: str) -> Any:
        """The first upstream stage output named ``key`` (stages publish small facts in ``outputs``)."""
        for result in self.upstream.values():
            outputs = result.get("outputs") or {}
            if key in outputs:
                return outputs[key]
        raise AgentFailure(
            f"stage {self.stage!r} needs {key!r} from an upstream stage; none produced it"
        )


@dataclass
class AgentOutcome:
    """What one agent run produced; the graph turns it into a ``StageResult``."""

    summary: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[str] = field(default_factory=list)
    tool_errors: list[str] = field(default_factory=list)
    permanent_errors: list[str] = field(default_factory=list)
    """The tool errors that cannot change on retry (``tools.errors.PermanentError``)."""
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    """Token use the provider reported (``usage_metadata``), summed over the agent's calls."""
    finished_by: str = ""
    """How the loop ended: ``reply`` (plain text), ``finish`` (completion tool), ``repeat``."""
    cpu_s: float = 0.0
    """CPU seconds of the agent's own thread (set by the caller that timed it)."""


def tool(func: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Mark a toolkit method as a tool the model may call (its docstring is the description)."""
    func.__mpm_tool__ = True  # type: ignore[attr-defined]
    return func


_TOOL_TEMPLATES: dict[Callable[..., Any], StructuredTool] = {}
"""Tool method -> its tool, built once: deriving the argument schema from the signature
(a pydantic model per tool) cost more than the rest of a no-op stage; each stage's
toolkit gets a copy bound to itself."""


class Toolkit:
    """The tools of one agent, bound to a :class:`StageContext`, collecting what they produce."""

    #: outputs the stage must have produced to count as a success
    required_outputs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx
        self.outcome = AgentOutcome()

    def tools(self) -> list[BaseTool]:
        found = []
        for name, member in inspect.getmembers(type(self), predicate=inspect.isfunction):
            if getattr(member, "__mpm_tool__", False):
                bound = getattr(self, name)
                template = _TOOL_TEMPLATES.get(member)
                if template is None:
                    template = StructuredTool.from_function(
                        func=bound, name=name, description=inspect.getdoc(member) or name
                    )
                    _TOOL_TEMPLATES[member] = template
                found.append(template.model_copy(update={"func": bound}))
        return found

    # -- helpers for tools ------------------------------------------------------------

    def publish(
        self,
        *,
        outputs: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> None:
        self.outcome.outputs.update(outputs or {})
        self.outcome.metrics.update(
            {k: float(v) for k, v in (metrics or {}).items() if v is not None}
        )
        self.outcome.evidence.update(evidence or {})

    def record_file(
        self,
        path: str | Path,
        *,
        artifact_path: str | None = None,
        name: str | None = None,
        already_logged: bool = False,
    ) -> None:
        """Note a file the stage produced and log it to the stage's MLflow run.

        ``name`` is what governance looks the artifact up by (the evidence map reads
        ``artifacts[name=...]``); it defaults to the file name. ``already_logged``: a tool
        logged the file to the run itself, so only the reference is recorded."""
        path = Path(path)
        in_run = f"{artifact_path}/{path.name}" if artifact_path else path.name
        tracked = bool(self.ctx.tracking_uri and self.ctx.run_id)
        self.outcome.artifacts.append(
            {
                "name": name or path.name,
                "path": str(path),
                "mlflow_run_id": self.ctx.run_id,
                "artifact_path": in_run,
                "uri": f"runs:/{self.ctx.run_id}/{in_run}" if tracked else None,
            }
        )
        if tracked and not already_logged:
            from mpm.tools import tracking

            tracking.log_file(
                tracking.client(self.ctx.tracking_uri), self.ctx.run_id, path, artifact_path
            )

    def missing_outputs(self) -> list[str]:
        return [k for k in self.required_outputs if k not in self.outcome.outputs]

    def finalize(self) -> AgentOutcome:
        missing = self.missing_outputs()
        if missing:
            detail = (
                "; ".join(self.outcome.tool_errors)
                or "the agent did not call the tools that produce them"
            )
            failure = PermanentStageFailure if self.outcome.permanent_errors else AgentFailure
            raise failure(f"stage {self.ctx.stage!r} produced no {', '.join(missing)}: {detail}")
        return self.outcome


@dataclass(frozen=True)
class AgentSpec:
    """A specialist: persona, toolkit and the procedures the stub model follows."""

    name: str
    persona: str
    toolkit: type[Toolkit]
    procedure: tuple[tuple[str, dict[str, Any]], ...]
    fallback_procedure: tuple[tuple[str, dict[str, Any]], ...] = ()

    def system_prompt(self, *, fallback: bool = False) -> str:
        steps = self.fallback_procedure if fallback else self.procedure
        title = "Fallback procedure" if fallback else "Standard procedure"
        lines = [
            self.persona.strip(),
            "",
            "You receive a JSON brief: your task, the project requirements, the results of the",
            "stages before you (by reference) and the governance context. Use your tools to do",
            "the work; never invent numbers a tool did not return.",
            "",
            f"## {title}",
        ]
        for i, (tool_name, args) in enumerate(steps, start=1):
            lines.append(f"{i}. `{tool_name}` {json.dumps(args, sort_keys=True)}")
        lines += [
            "",
            "Call one tool per turn, in this order, with these arguments. Do not call a tool",
            f"again once it succeeded. When every step is done, call `{FINISH_TOOL}` (or reply",
            "with a short summary of what you did and found).",
        ]
        return "\n".join(lines)


_NOT_FOR_THE_MODEL = frozenset({"governance_answers", "stage_timeout_s", "stage_retries", "seed"})


def _brief_requirements(req: dict[str, Any]) -> dict[str, Any]:
    """The requirements as the model reads them: what was set, without the run settings and
    the owner's governance answers (tools read those from the context, not from the model;
    every token here is paid again on each stage's first turn)."""
    return {k: v for k, v in req.items() if k not in _NOT_FOR_THE_MODEL and v not in (None, [], {})}


def build_brief(ctx: StageContext, task: str) -> str:
    """The compact JSON brief a sub-agent starts from."""
    upstream = {
        name: {
            "status": r.get("status"),
            "summary": (r.get("summary") or "")[:600],
            "outputs": r.get("outputs") or {},
            "mlflow_run_id": r.get("mlflow_run_id"),
        }
        for name, r in ctx.upstream.items()
    }
    brief: dict[str, Any] = {
        "stage": ctx.stage,
        "task": task,
        "requirements": _brief_requirements(ctx.requirements),
        "upstream": upstream,
    }
    if ctx.governance:
        brief["governance"] = ctx.governance
    if ctx.revision_comment:
        brief["reviewer_comment"] = ctx.revision_comment
    return json.dumps(brief, sort_keys=True, default=str)


def _finish(summary: str = "") -> dict[str, Any]:
    """Call this once every step of the procedure is done. Example: {"summary": "trained and evaluated the model"}."""
    return {"summary": summary}


@lru_cache(maxsize=1)
def finish_tool() -> BaseTool:
    """The completion tool: the model says the stage is done (the loop checks it is).

    Built once: it holds no state, and deriving its argument schema from the signature (a
    pydantic model) cost about a millisecond per stage."""
    return StructuredTool.from_function(func=_finish, name=FINISH_TOOL)


def summarize_tool_results(messages: Sequence[BaseMessage]) -> str:
    """A stage summary from what the tools returned (their ``summary`` fields), in order."""
    lines: list[str] = []
    for m in messages:
        if not isinstance(m, ToolMessage) or m.name == FINISH_TOOL:
            continue
        if m.additional_kwargs.get(REPEAT_MARK):  # the earlier result is already listed
            continue
        text = m.content if isinstance(m.content, str) else json.dumps(m.content)
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if m.status == "error":
            lines.append(f"- {m.name}: FAILED ({text[:200]})")
        elif isinstance(data, dict) and isinstance(data.get("summary"), str):
            lines.append(f"- {m.name}: {data['summary']}")
        else:
            lines.append(f"- {m.name}: done")
    if not lines:
        return "No tools were needed."
    return "Completed the standard procedure:\n" + "\n".join(lines)


def _call_key(call: dict[str, Any]) -> str:
    return json.dumps([call.get("name"), call.get("args") or {}], sort_keys=True, default=str)


def _add_usage(outcome: AgentOutcome, reply: AIMessage) -> None:
    usage = reply.usage_metadata or {}
    outcome.input_tokens += int(usage.get("input_tokens") or 0)
    outcome.output_tokens += int(usage.get("output_tokens") or 0)


def run_agent(
    spec: AgentSpec,
    ctx: StageContext,
    model: BaseChatModel,
    task: str,
    *,
    fallback: bool = False,
    on_tool: Callable[[str], None] | None = None,
) -> AgentOutcome:
    """Run the agent's tool-calling loop to completion and return what it produced."""
    toolkit = spec.toolkit(ctx)
    tools = [*toolkit.tools(), finish_tool()]
    by_name = {t.name: t for t in tools}
    bound = model.bind_tools(tools)
    messages: list[BaseMessage] = [
        SystemMessage(spec.system_prompt(fallback=fallback)),
        HumanMessage(build_brief(ctx, task)),
    ]
    outcome = toolkit.outcome
    succeeded: dict[str, ToolMessage] = {}
    idle = 0
    for _turn in range(MAX_TURNS):
        _check_deadline(ctx)
        reply = bound.invoke(messages)
        outcome.model_calls += 1
        if not isinstance(reply, AIMessage):
            raise AgentFailure(
                f"stage {ctx.stage!r}: the model returned {type(reply).__name__}, not a message"
            )
        _add_usage(outcome, reply)
        messages.append(reply)
        if reply.invalid_tool_calls and not reply.tool_calls:
            # arguments that are not JSON: say so, so the model can call the tool again
            for bad in reply.invalid_tool_calls:
                error = f"{bad.get('name')}: invalid tool call: {bad.get('error') or 'arguments are not valid JSON'}"
                outcome.tool_errors.append(error)
                messages.append(
                    ToolMessage(
                        content=error,
                        tool_call_id=bad.get("id") or str(bad.get("name")),
                        name=str(bad.get("name")),
                        status="error",
                    )
                )
            continue
        if not reply.tool_calls:
            text = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
            outcome.summary = text.strip() or summarize_tool_results(messages)
            outcome.finished_by = "reply"
            return toolkit.finalize()
        progressed = False
        finish_called = False
        # a `finish` in the same turn as work is judged after that work (models batch calls)
        ordered = sorted(reply.tool_calls, key=lambda c: c.get("name") == FINISH_TOOL)
        for call in ordered:
            _check_deadline(ctx)
            call_id = call.get("id") or call.get("name", "")
            if call.get("name") == FINISH_TOOL:
                finish_called = True
                missing = toolkit.missing_outputs()
                content = (
                    json.dumps({"summary": "done"})
                    if not missing
                    else f"not done yet: no {', '.join(missing)}; call the procedure's tools first"
                )
                messages.append(
                    ToolMessage(
                        content=content,
                        tool_call_id=call_id,
                        name=FINISH_TOOL,
                        status="success" if not missing else "error",
                    )
                )
                continue
            key = _call_key(call)
            if key in succeeded:
                earlier = succeeded[key]
                messages.append(
                    ToolMessage(
                        content=f"already done with these arguments (not run again); result: {earlier.content}",
                        tool_call_id=call_id,
                        name=earlier.name,
                        additional_kwargs={REPEAT_MARK: True},
                    )
                )
                continue
            progressed = True
            result = _run_tool_call(call, by_name, outcome, on_tool)
            messages.append(result)
            if result.status != "error":
                succeeded[key] = result
        done = not toolkit.missing_outputs()
        if done and (finish_called or not progressed):
            outcome.summary = summarize_tool_results(messages)
            outcome.finished_by = "finish" if finish_called else "repeat"
            return toolkit.finalize()
        idle = 0 if progressed else idle + 1
        if idle >= MAX_IDLE_TURNS:
            raise AgentFailure(
                f"stage {ctx.stage!r}: the model made no progress in {idle} turns "
                f"(only repeated calls) and the stage still has no {', '.join(toolkit.missing_outputs())}"
            )
    last = f"; last tool error: {outcome.tool_errors[-1]}" if outcome.tool_errors else ""
    raise AgentFailure(
        f"stage {ctx.stage!r}: the agent did not finish within {MAX_TURNS} model turns{last}"
    )


def _run_tool_call(
    call: dict[str, Any],
    by_name: dict[str, BaseTool],
    outcome: AgentOutcome,
    on_tool: Callable[[str], None] | None,
) -> ToolMessage:
    name = call.get("name", "")
    call_id = call.get("id") or name
    selected = by_name.get(name)
    if selected is None:
        error = f"unknown tool {name!r}; available: {', '.join(sorted(by_name))}"
        outcome.tool_errors.append(error)
        return ToolMessage(content=error, tool_call_id=call_id, name=name, status="error")
    if on_tool:
        on_tool(name)
    outcome.tool_calls.append(name)
    try:
        maybe_die("tool.before")
        injected = apply_tool_fault(name)
        result = injected if injected is not None else selected.invoke(call.get("args") or {})
        maybe_die("tool.after")
        if not isinstance(result, dict):
            raise TypeError(f"tool returned {type(result).__name__}, expected a JSON object")
    except Exception as exc:  # noqa: BLE001 - every tool failure is reported to the model
        from mpm.tools.errors import PermanentError

        error = f"{name}: {type(exc).__name__}: {exc}".splitlines()[0]
        outcome.tool_errors.append(error)
        if isinstance(exc, PermanentError):
            outcome.permanent_errors.append(error)
        return ToolMessage(content=error, tool_call_id=call_id, name=name, status="error")
    return ToolMessage(content=json.dumps(result, default=str), tool_call_id=call_id, name=name)


def _check_deadline(ctx: StageContext) -> None:
    if ctx.deadline is not None and time.monotonic() > ctx.deadline:
        raise StageTimeout(f"stage {ctx.stage!r} exceeded its timeout")
