"""Sub-agents start from a compact brief, not from the run's history, so the tokens a run
sends its model grow about linearly with the number of stages (see benchmarks/tokens.py
for the comparison with other orchestrations)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from benchmarks.tokens import procedure, project_plan, run_mpm
from mpm.graph import llm
from tests.graph import helpers


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[BaseMessage]]:
    """Every message list the stub model is sent by a stage agent (tool-calling turns)."""
    calls: list[list[BaseMessage]] = []
    generate = llm.StubChatModel._generate

    def recording(self: Any, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        calls.append(list(messages))
        return generate(self, messages, *args, **kwargs)

    monkeypatch.setattr(llm.StubChatModel, "_generate", recording)
    return calls


def test_input_tokens_grow_subquadratically_with_the_number_of_stages(tmp_path: Path) -> None:
    session_identity = helpers.signing_identity_dir()
    three = run_mpm(project_plan(3), tmp_path / "three")
    six = run_mpm(project_plan(6), tmp_path / "six")
    # the benchmark signed with its own keys and left the session's approvers theirs
    assert helpers.signing_identity_dir() == session_identity
    assert six["model_calls"] > three["model_calls"]
    # linear growth gives 2x; re-sending the history to every call tends towards 4x
    assert six["input_tokens"] / three["input_tokens"] < 2.5, (three, six)


def test_each_agent_call_holds_its_brief_and_its_own_turns_only(
    tmp_path: Path, model_calls: list[list[BaseMessage]]
) -> None:
    plan = project_plan(6)
    run_mpm(plan, tmp_path)
    by_stage: dict[str, list[list[BaseMessage]]] = {}
    for messages in model_calls:
        system, brief, *turns = messages
        assert isinstance(system, SystemMessage) and isinstance(brief, HumanMessage)
        stage = json.loads(str(brief.content))["stage"]
        by_stage.setdefault(stage, []).append(messages)
        # nothing from another stage's conversation: only this agent's calls and results
        assert all(isinstance(m, AIMessage | ToolMessage) for m in turns)
        tools = procedure(plan.stage(stage).agent.value)
        assert [c["name"] for m in turns if isinstance(m, AIMessage) for c in m.tool_calls] == (
            tools[: len(turns) // 2]
        )
    assert sorted(by_stage) == sorted(plan.stage_names)
    for spec in plan.stages:
        # one call per tool, then the answer
        assert len(by_stage[spec.name]) == len(procedure(spec.agent.value)) + 1
