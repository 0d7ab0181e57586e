"""The counting stub model, scripted for other frameworks' message protocols.

:class:`ScriptedStub` is :class:`graph.llm.StubChatModel` (same token counter, same
:data:`graph.llm.STUB_USAGE` totals, same "follow the numbered procedure in your system
prompt" behaviour for a stage agent) with two additions a foreign orchestration needs:

* **a supervisor turn.** A system prompt with a ``## Delegation order`` section makes it a
  supervisor: each turn it calls the next delegation tool of that numbered list (a
  langgraph-supervisor handoff ``transfer_to_<agent>``, or a sub-agent wrapped as a tool),
  counting as done the delegations already answered by a ``ToolMessage``; when every
  stage has reported it answers with a one-line summary and the run ends. A delegation
  tool that takes a ``request`` argument gets the stage's brief: its name and task and
  the project requirements (the first user message), as a supervisor must write it.
* **its own turn only.** A stage agent inside langgraph-supervisor is sent the whole
  shared history (the supervisor's turns and every earlier agent's answer). It counts the
  tool calls it has made since control was handed to it (after the last ``transfer_to_``
  tool result or user message), so it runs its own procedure once, whatever came before.

Every message sent is still counted: the script only decides what to answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from mpm.graph.llm import StubChatModel

DELEGATION_HEADER = "## Delegation order"
HANDOFF_PREFIX = "transfer_to_"
_DELEGATION = re.compile(r"^\s*\d+\.\s+`(?P<tool>[A-Za-z_][\w]*)`\s*(?:[-—:]\s*(?P<task>.*))?$")


def delegation_steps(system_prompt: str) -> list[tuple[str, str]]:
    """``(tool, task)`` for each numbered line under the delegation header, in order."""
    _, _, section = system_prompt.partition(DELEGATION_HEADER)
    steps = []
    for line in section.splitlines():
        match = _DELEGATION.match(line)
        if match:
            steps.append((match.group("tool"), (match.group("task") or "").strip()))
    return steps


def supervisor_prompt(stages: Sequence[tuple[str, str]]) -> str:
    """The supervisor's system prompt: who it is and the delegation order ``(tool, task)``."""
    lines = [
        "You are the project manager of a governed ML project. Delegate each stage of the",
        "plan to its specialist agent, one at a time and in this order, and wait for each",
        "to report before delegating the next. When every stage has reported, reply with a",
        "short summary of the project.",
        "",
        DELEGATION_HEADER,
    ]
    lines += [f"{i}. `{tool}` — {task}" for i, (tool, task) in enumerate(stages, start=1)]
    return "\n".join(lines)


def _text(message: BaseMessage) -> str:
    return message.content if isinstance(message.content, str) else json.dumps(message.content)


class ScriptedStub(StubChatModel):
    """See the module docstring."""

    def _next_message(
        self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None
    ) -> AIMessage:
        system = next((m for m in messages if isinstance(m, SystemMessage)), None)
        prompt = _text(system) if system else ""
        if DELEGATION_HEADER in prompt:
            return self._supervise(messages, tools or [], delegation_steps(prompt))
        own = self._own_turn(messages)
        return super()._next_message(([system] if system else []) + own, tools)

    @staticmethod
    def _own_turn(messages: list[BaseMessage]) -> list[BaseMessage]:
        start = 0
        for i, m in enumerate(messages):
            if isinstance(m, HumanMessage) or (
                isinstance(m, ToolMessage) and (m.name or "").startswith(HANDOFF_PREFIX)
            ):
                start = i + 1
        return messages[start:]

    def _supervise(
        self,
        messages: list[BaseMessage],
        tools: list[dict[str, Any]],
        steps: list[tuple[str, str]],
    ) -> AIMessage:
        names = {tool for tool, _ in steps}
        done = sum(1 for m in messages if isinstance(m, ToolMessage) and m.name in names)
        if done >= len(steps):
            return AIMessage(content=f"All {len(steps)} stages have reported; the project is done.")
        tool, task = steps[done]
        schema = next(
            (t["function"] for t in tools if t.get("function", {}).get("name") == tool), None
        )
        if schema is None:
            raise LookupError(f"the supervisor was not given the tool {tool!r} it must call next")
        args: dict[str, Any] = {}
        if "request" in (schema.get("parameters") or {}).get("properties", {}):
            project = next((_text(m) for m in messages if isinstance(m, HumanMessage)), "")
            args["request"] = json.dumps(
                {"stage": tool, "task": task, "requirements": json.loads(project or "{}")},
                sort_keys=True,
            )
        return AIMessage(
            content="",
            tool_calls=[
                {"name": tool, "args": args, "id": f"call_{done + 1}_{tool}", "type": "tool_call"}
            ],
        )
