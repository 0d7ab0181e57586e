"""The model factory, and the deterministic stub model that is the default.

``get_chat_model("stub")`` returns :class:`StubChatModel`; any other spec of the form
``provider:model`` (``openai:gpt-4.1-mini``, ``anthropic:claude-sonnet-4-5``,
``ollama:llama3.1``) goes through LangChain's ``init_chat_model`` (install the matching
extra: ``pip install 'mpm[openai]'``). Nodes never build clients themselves.

What the stub is, honestly: **not a language model**. It is a deterministic stand-in
that lets the whole graph run offline and reproducibly:

* bound to tools, it follows the *standard procedure* written in the agent's system
  prompt (a numbered list of tool calls): it emits the next tool call of the list each
  turn, then a summary built from the tool results;
* asked for structured output, it answers with a rule registered for that schema
  (:func:`register_structured_rule`): the kickoff's rule-based requirements extractor,
  the supervisor's "take the ready stages in plan order" rule;
* it counts the tokens it is sent (a word/punctuation count, not a BPE tokenizer) and
  reports them as ``usage_metadata`` and in :data:`STUB_USAGE`, so benchmarks can
  compare prompting strategies.

``local`` is the pinned local model (:mod:`mpm.graph.local_model`): the factory attaches to
its loopback server, or starts it, and talks to it through the OpenAI-compatible API.
Every provider model is built with an output cap (``MPM_MODEL_MAX_TOKENS``) and a client
timeout (``MPM_MODEL_TIMEOUT_S``) that closes the HTTP connection, which makes servers
such as llama.cpp cancel the generation instead of running on behind an abandoned call.
"""

from __future__ import annotations

import contextvars
import copy
import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult, LLMResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel

from mpm.agents import faults
from mpm.agents.base import summarize_tool_results

DEFAULT_MODEL = "stub"
_TOKEN = re.compile(r"\w+|[^\w\s]")
_STEP = re.compile(r"^\s*\d+\.\s+`(?P<tool>[A-Za-z_][\w]*)`\s*(?P<args>\{.*\})?\s*(?:[-—:].*)?$")


class ModelSpecError(ValueError):
    """A ``--model`` value that names no usable model."""


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _message_text(message: BaseMessage) -> str:
    parts = [message.content if isinstance(message.content, str) else json.dumps(message.content)]
    for call in getattr(message, "tool_calls", None) or []:
        parts.append(json.dumps({"name": call["name"], "args": call["args"]}, sort_keys=True))
    return "\n".join(parts)


@dataclass
class TokenUsage:
    """Thread-safe running totals of what the stub was sent and produced."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, input_tokens: int, output_tokens: int) -> None:
        with self._lock:
            self.calls += 1
            self.input_tokens += input_tokens
            self.output_tokens += output_tokens

    def reset(self) -> None:
        with self._lock:
            self.calls = self.input_tokens = self.output_tokens = 0

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {
                "calls": self.calls,
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
            }


STUB_USAGE = TokenUsage()
"""Every stub model in the process adds to this."""

StructuredRule = Callable[[Sequence[BaseMessage]], BaseModel]
_STRUCTURED_RULES: dict[type[BaseModel], StructuredRule] = {}


def register_structured_rule(schema: type[BaseModel]) -> Callable[[StructuredRule], StructuredRule]:
    """Declare how the stub answers ``with_structured_output(schema)``."""

    def decorator(rule: StructuredRule) -> StructuredRule:
        _STRUCTURED_RULES[schema] = rule
        return rule

    return decorator


def procedure_steps(system_prompt: str) -> list[tuple[str, dict[str, Any]]]:
    """The numbered ```tool` {args}`` lines of a system prompt, in order."""
    steps: list[tuple[str, dict[str, Any]]] = []
    for line in system_prompt.splitlines():
        match = _STEP.match(line)
        if match:
            args = json.loads(match.group("args")) if match.group("args") else {}
            steps.append((match.group("tool"), args))
    return steps


_TOOL_SCHEMAS: dict[tuple[str, str, type], dict[str, Any]] = {}
"""(name, description, argument model) -> the tool in OpenAI's format. Every stage binds
its toolkit afresh (the tools are bound to the stage), but a tool's schema is made of
these three only, and deriving it through pydantic's JSON schema costs more than the
stub's own answer."""
TOOL_SCHEMAS_KEPT = 256
"""At most this many are kept (oldest dropped first): a tool built from a function on
every call gets a new argument model each time, which must not grow a long-lived
process (a server) without bound."""


def _openai_tool(tool: Any) -> dict[str, Any]:
    schema = getattr(tool, "args_schema", None)
    if not isinstance(tool, BaseTool) or not isinstance(schema, type):
        return convert_to_openai_tool(tool)
    key = (tool.name, tool.description, schema)
    cached = _TOOL_SCHEMAS.get(key)
    if cached is None:
        cached = convert_to_openai_tool(tool)
        while len(_TOOL_SCHEMAS) >= TOOL_SCHEMAS_KEPT:
            _TOOL_SCHEMAS.pop(next(iter(_TOOL_SCHEMAS), key), None)
        _TOOL_SCHEMAS[key] = cached
    return copy.deepcopy(cached)


class StubChatModel(BaseChatModel):
    """Deterministic offline chat model; see the module docstring for what it does."""

    usage: ClassVar[TokenUsage] = STUB_USAGE

    @property
    def _llm_type(self) -> str:
        return "mpm-stub"

    def bind_tools(
        self, tools: Sequence[Any], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[_openai_tool(t) for t in tools], **kwargs)

    def with_structured_output(
        self, schema: Any, **kwargs: Any
    ) -> Runnable[LanguageModelInput, Any]:
        # a schema built per call (e.g. a route whose stage names are an enum of the ready
        # stages) subclasses the registered one and is answered by its rule
        rule = next(
            (
                _STRUCTURED_RULES[c]
                for c in getattr(schema, "__mro__", ())
                if c in _STRUCTURED_RULES
            ),
            None,
        )
        if rule is None:
            raise NotImplementedError(
                f"the stub model has no structured-output rule for {schema!r}"
            )

        def answer(value: LanguageModelInput) -> BaseModel:
            messages = self._convert_input(value).to_messages()
            fault = faults.model_fault(schema.__name__)
            result = _faulty_structured(fault, schema) if fault else rule(messages)
            self.usage.add(
                self._input_tokens(messages, None), count_tokens(result.model_dump_json())
            )
            return result

        return RunnableLambda(answer, name=f"stub_structured_{schema.__name__}")

    # -- generation ---------------------------------------------------------------

    def _input_tokens(
        self, messages: Sequence[BaseMessage], tools: list[dict[str, Any]] | None
    ) -> int:
        total = sum(count_tokens(_message_text(m)) for m in messages)
        if tools:
            total += count_tokens(json.dumps(tools, sort_keys=True))
        return total

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        tools: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        fault = faults.model_fault(_stage_of(messages)) if faults.enabled() else None
        if fault:
            message = _faulty_reply(fault, _stage_of(messages) or "model", messages)
        else:
            message = self._next_message(messages, tools)
        in_tokens = self._input_tokens(messages, tools)
        out_tokens = count_tokens(_message_text(message))
        message.usage_metadata = {
            "input_tokens": in_tokens,
            "output_tokens": out_tokens,
            "total_tokens": in_tokens + out_tokens,
        }
        self.usage.add(in_tokens, out_tokens)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _next_message(
        self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None
    ) -> AIMessage:
        system = next((m for m in messages if isinstance(m, SystemMessage)), None)
        steps = procedure_steps(
            system.content if system and isinstance(system.content, str) else ""
        )
        done = sum(1 for m in messages if isinstance(m, AIMessage) and m.tool_calls)
        if tools and done < len(steps):
            name, args = steps[done]
            return AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": name,
                        "args": args,
                        "id": f"call_{done + 1}_{name}",
                        "type": "tool_call",
                    }
                ],
            )
        return AIMessage(content=self._summary(messages))

    @staticmethod
    def _summary(messages: Sequence[BaseMessage]) -> str:
        return summarize_tool_results(messages)


def _stage_of(messages: Sequence[BaseMessage]) -> str | None:
    """The stage a sub-agent works on, from its JSON brief (what ``MPM_FAULTS`` targets)."""
    for m in messages:
        if isinstance(m, HumanMessage) and isinstance(m.content, str):
            try:
                brief = json.loads(m.content)
            except ValueError:
                return None
            return brief.get("stage") if isinstance(brief, dict) else None
    return None


def _faulty_reply(mode: str, stage: str, messages: Sequence[BaseMessage]) -> AIMessage:
    """What a misbehaving model answers a sub-agent (``MPM_FAULTS`` model modes)."""
    faults.raise_model_fault(mode, f"stage {stage}")
    turn = sum(1 for m in messages if isinstance(m, AIMessage))
    if mode == "invalid_json":
        system = next((m for m in messages if isinstance(m, SystemMessage)), None)
        steps = procedure_steps(str(system.content) if system else "")
        return AIMessage(
            content="",
            invalid_tool_calls=[
                {
                    "name": steps[0][0] if steps else "tool",
                    "args": '{"columns": [1, 2',
                    "id": f"call_{turn}_invalid",
                    "error": "injected: the arguments are not valid JSON",
                    "type": "invalid_tool_call",
                }
            ],
        )
    if mode == "unknown_tool":
        return AIMessage(
            content="",
            tool_calls=[
                {
                    "name": "no_such_tool",
                    "args": {},
                    "id": f"call_{turn}_unknown",
                    "type": "tool_call",
                }
            ],
        )
    return AIMessage(content="%%<<garbage>> ]}{ \ufffd not an answer")  # garbage, bad_route


def _faulty_structured(mode: str, schema: type[BaseModel]) -> BaseModel:
    """What a misbehaving model answers a structured-output request."""
    from langchain_core.exceptions import OutputParserException

    faults.raise_model_fault(mode, f"structured output {schema.__name__}")
    if mode == "bad_route" and "next_stages" in schema.model_fields:
        # constructed, not validated: a provider that ignores the schema's enum answers so
        return schema.model_construct(
            next_stages=["no_such_stage"], reason="injected: a stage that does not exist"
        )
    raise OutputParserException(
        f'injected: invalid JSON for {schema.__name__}: \'{{"next_stages": ["busin\''
    )


TIMEOUT_ENV = "MPM_MODEL_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 300.0
TIMEOUT_GRACE_S = 2.0
MAX_TOKENS_ENV = "MPM_MODEL_MAX_TOKENS"
DEFAULT_MAX_TOKENS = 768


class ModelTimeout(TimeoutError):
    """The model did not answer in time."""


def model_timeout_s() -> float:
    """How long a node waits for one model answer (``MPM_MODEL_TIMEOUT_S``, default 300)."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def model_max_tokens() -> int:
    """The output cap of every provider model call (``MPM_MODEL_MAX_TOKENS``, default 768)."""
    raw = os.environ.get(MAX_TOKENS_ENV, "")
    try:
        value = int(raw) if raw else DEFAULT_MAX_TOKENS
    except ValueError:
        return DEFAULT_MAX_TOKENS
    return value if value > 0 else DEFAULT_MAX_TOKENS


def invoke_with_timeout(
    runnable: Runnable[Any, Any], value: Any, *, what: str, timeout_s: float | None = None
) -> Any:
    """``runnable.invoke(value)``, but give up after ``timeout_s``: a model that never
    answers must not hold a node (and the thread's lock) forever. The call runs in a daemon
    thread with the caller's context (run config, callbacks), like a stage's agent does."""
    limit = model_timeout_s() if timeout_s is None else timeout_s
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["answer"] = runnable.invoke(value)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            box["error"] = exc

    worker = threading.Thread(
        target=contextvars.copy_context().run, args=(target,), daemon=True, name=f"model-{what}"
    )
    worker.start()
    # provider clients carry the same timeout and close their connection when it expires
    # (the server then cancels the generation); the grace lets that error arrive first
    worker.join(limit + min(TIMEOUT_GRACE_S, limit))
    if worker.is_alive():
        raise ModelTimeout(f"{what}: the model did not answer within {limit:g}s")
    if "error" in box:
        raise box["error"]
    return box["answer"]


_FACTORIES: dict[str, Callable[[], BaseChatModel]] = {"stub": StubChatModel}


def register_model(name: str, factory: Callable[[], BaseChatModel]) -> None:
    """Make ``--model name`` resolve to ``factory()``: for scripted models in tests and
    benchmarks (a name without ``:``, so it can never shadow a provider spec)."""
    if ":" in name:
        raise ModelSpecError(f"model name {name!r}: registered names may not contain ':'")
    _FACTORIES[name] = factory


class _UsageRecorder(BaseCallbackHandler):
    """Adds the provider's reported ``usage_metadata`` of every call to :data:`MODEL_USAGE`."""

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        for generations in response.generations:
            for generation in generations:
                usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
                if usage:
                    MODEL_USAGE.add(
                        int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
                    )


MODEL_USAGE = TokenUsage()
"""Every provider model call in the process adds the usage its provider reported here."""
_USAGE_RECORDER = _UsageRecorder()

LOCAL = "local"
"""``--model local``: the pinned local model on its loopback server."""


def _provider_limits(provider: str) -> dict[str, Any]:
    """Output cap, timeout (that closes the connection) and no silent retries, per provider."""
    tokens, timeout = model_max_tokens(), model_timeout_s()
    if provider == "ollama":
        return {"num_predict": tokens, "client_kwargs": {"timeout": timeout}}
    if provider in {"openai", "anthropic"}:
        return {"max_tokens": tokens, "timeout": timeout, "max_retries": 0}
    return {"max_tokens": tokens}


def _local_model() -> BaseChatModel:
    from mpm.graph import local_model

    try:
        base_url = local_model.ensure_server()
        from langchain_openai import ChatOpenAI
    except local_model.LocalModelError as exc:
        raise ModelSpecError(str(exc)) from exc
    except ImportError as exc:  # pragma: no cover - depends on optional extras
        raise ModelSpecError(
            "--model local: needs the OpenAI client, pip install 'mpm[local]'"
        ) from exc
    return ChatOpenAI(
        model=local_model.ALIAS,
        base_url=base_url,
        api_key="local",  # the loopback server checks none; the client insists on one
        temperature=0,
        callbacks=[_USAGE_RECORDER],
        **_provider_limits("openai"),
    )


def get_chat_model(spec: str | None = None) -> BaseChatModel:
    """The one model factory: ``stub`` (default), a registered name, ``local``, or
    ``provider:model`` (``openai:<alias>`` honours ``OPENAI_BASE_URL``, so any
    OpenAI-compatible server — llama.cpp, vLLM, Ollama's ``/v1`` — works)."""
    spec = (spec or DEFAULT_MODEL).strip()
    if spec in _FACTORIES:
        return _FACTORIES[spec]()
    if spec == LOCAL:
        return _local_model()
    if ":" not in spec:
        raise ModelSpecError(
            f"--model {spec!r}: expected 'stub', 'local' or 'provider:model' (e.g. openai:gpt-4.1-mini)"
        )
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:  # pragma: no cover - depends on optional extras
        raise ModelSpecError(
            f"--model {spec!r}: provider models need the optional extras, e.g. pip install 'mpm[openai]'"
        ) from exc
    provider = spec.split(":", 1)[0].strip().lower()
    try:
        return init_chat_model(
            spec, temperature=0, callbacks=[_USAGE_RECORDER], **_provider_limits(provider)
        )
    except Exception as exc:  # noqa: BLE001 - any provider's refusal is a bad --model
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelSpecError(f"--model {spec!r}: {first}") from exc
