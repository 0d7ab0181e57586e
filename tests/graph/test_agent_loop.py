"""A sub-agent is a real tool-calling loop: the model's tool calls are executed in order,
errors go back to the model as error ToolMessages, and the stage outcome is judged by
what the tools actually produced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from mpm.agents.base import AgentFailure, AgentSpec, StageContext, Toolkit, run_agent, tool
from mpm.graph.llm import STUB_USAGE, StubChatModel


class CountingToolkit(Toolkit):
    required_outputs = ("total",)

    @tool
    def load(self, n: int = 3) -> dict[str, Any]:
        """Load n numbers."""
        self.numbers = list(range(1, n + 1))
        return {"summary": f"loaded {n}"}

    @tool
    def add_up(self) -> dict[str, Any]:
        """Add the loaded numbers."""
        total = sum(self.numbers)
        self.publish(outputs={"total": total}, metrics={"total": total})
        return {"summary": f"total {total}"}


def _ctx(tmp_path: Path, **kw: Any) -> StageContext:
    return StageContext(
        stage="count",
        stage_dir=tmp_path,
        workspace_root=tmp_path,
        requirements={"project_name": "p"},
        **kw,
    )


def test_stub_follows_the_procedure_and_tools_really_run(tmp_path: Path) -> None:
    spec = AgentSpec("counter", "You count.", CountingToolkit, (("load", {"n": 4}), ("add_up", {})))
    before = STUB_USAGE.snapshot()
    outcome = run_agent(spec, _ctx(tmp_path), StubChatModel(), "count things")
    assert outcome.tool_calls == ["load", "add_up"]
    assert outcome.outputs["total"] == 10  # 1+2+3+4: the tool ran with the procedure's arguments
    assert outcome.model_calls == 3  # two tool turns and the summary
    assert "total 10" in outcome.summary
    after = STUB_USAGE.snapshot()
    assert after["calls"] - before["calls"] == 3 and after["input_tokens"] > before["input_tokens"]


def test_unknown_tool_and_failing_tool_are_reported_to_the_model(tmp_path: Path) -> None:
    seen: list[Any] = []

    class Scripted(StubChatModel):
        def _next_message(self, messages: list, tools: Any) -> AIMessage:
            seen.append([m for m in messages if isinstance(m, ToolMessage)])
            turn = sum(1 for m in messages if isinstance(m, AIMessage))
            script = [
                AIMessage(content="", tool_calls=[{"name": "teleport", "args": {}, "id": "1"}]),
                AIMessage(
                    content="", tool_calls=[{"name": "add_up", "args": {}, "id": "2"}]
                ),  # before load: fails
                AIMessage(content="giving up"),
            ]
            return script[turn]

    spec = AgentSpec("counter", "You count.", CountingToolkit, ())
    with pytest.raises(AgentFailure, match="produced no total"):
        run_agent(spec, _ctx(tmp_path), Scripted(), "count")
    errors = [m for m in seen[-1] if m.status == "error"]
    assert "unknown tool 'teleport'" in errors[0].content
    assert errors[1].name == "add_up" and "AttributeError" in errors[1].content


def test_brief_is_compact_and_holds_upstream_by_reference(tmp_path: Path) -> None:
    from mpm.agents.base import build_brief

    upstream = {
        "data": {
            "status": "success",
            "summary": "x" * 5000,
            "outputs": {"train_path": "/w/train.parquet"},
            "mlflow_run_id": "abc",
            "metrics": {"n": 1},
            "artifacts": [{"path": "/big"}] * 50,
        }
    }
    brief = build_brief(_ctx(tmp_path, upstream=upstream), "task")
    assert '"train_path": "/w/train.parquet"' in brief
    assert "artifacts" not in brief and len(brief) < 1500


# ------------------------------------------------- loops that end the way real models behave


class ScriptedChat(StubChatModel):
    """A fake chat model that plays a fixed list of replies (the last one forever) and
    reports provider-style usage; what it was sent is kept for the assertions."""

    script: list[AIMessage] = []
    sent: list[list[Any]] = []

    def _next_message(self, messages: list, tools: Any) -> AIMessage:
        self.sent.append(list(messages))
        turn = sum(1 for m in messages if isinstance(m, AIMessage))
        reply = self.script[min(turn, len(self.script) - 1)]
        return AIMessage(content=reply.content, tool_calls=reply.tool_calls)


def _call(name: str, turn: int, **args: Any) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"c{turn}"}])


SPEC = AgentSpec("counter", "You count.", CountingToolkit, (("load", {"n": 4}), ("add_up", {})))


def test_loop_finalises_when_outputs_exist_and_the_model_repeats_itself(tmp_path: Path) -> None:
    model = ScriptedChat(
        script=[_call("load", 1, n=4), _call("add_up", 2), _call("add_up", 3)], sent=[]
    )
    outcome = run_agent(SPEC, _ctx(tmp_path), model, "count")
    assert outcome.finished_by == "repeat"
    assert outcome.outputs["total"] == 10
    assert outcome.tool_calls == ["load", "add_up"]  # the repeated call was not run again
    assert outcome.model_calls == 3
    # the summary comes from the tool results, not from model prose
    assert outcome.summary.splitlines()[1:] == ["- load: loaded 4", "- add_up: total 10"]
    assert outcome.input_tokens > 0 and outcome.output_tokens > 0  # from usage_metadata


def test_the_completion_tool_is_refused_until_the_outputs_exist(tmp_path: Path) -> None:
    model = ScriptedChat(
        script=[_call("finish", 1), _call("load", 2, n=3), _call("add_up", 3), _call("finish", 4)],
        sent=[],
    )
    outcome = run_agent(SPEC, _ctx(tmp_path), model, "count")
    assert outcome.finished_by == "finish" and outcome.outputs["total"] == 6
    early = [m for m in model.sent[1] if isinstance(m, ToolMessage)]
    assert early[0].name == "finish" and early[0].status == "error"
    assert "not done yet: no total" in early[0].content
    assert outcome.model_calls == 4


def test_repeating_without_the_outputs_fails_early_with_the_reason(tmp_path: Path) -> None:
    model = ScriptedChat(script=[_call("load", 1, n=2)], sent=[])
    with pytest.raises(AgentFailure, match="no progress in 3 turns .* still has no total"):
        run_agent(SPEC, _ctx(tmp_path), model, "count")
    assert len(model.sent) == 4  # one real call, then three idle turns; not MAX_TURNS


def test_the_prompt_tells_a_real_model_how_to_finish() -> None:
    prompt = SPEC.system_prompt()
    assert '1. `load` {"n": 4}' in prompt and "call `finish`" in prompt


def test_work_and_finish_in_one_turn_finish_after_the_work(tmp_path: Path) -> None:
    batched = AIMessage(
        content="",
        tool_calls=[
            {"name": "finish", "args": {}, "id": "f"},
            {"name": "load", "args": {"n": 2}, "id": "l"},
            {"name": "add_up", "args": {}, "id": "a"},
        ],
    )
    outcome = run_agent(SPEC, _ctx(tmp_path), ScriptedChat(script=[batched], sent=[]), "count")
    assert (outcome.finished_by, outcome.outputs["total"], outcome.model_calls) == ("finish", 3, 1)
    assert outcome.tool_calls == ["load", "add_up"] and not outcome.tool_errors


def test_the_stub_binds_each_tool_with_its_own_schema_every_time(tmp_path: Path) -> None:
    """The stub keeps each tool's OpenAI schema after its first conversion; what it binds
    must still be exactly LangChain's conversion of the tool in hand: a tool of the same
    name with another description or other arguments gets its own schema, and a caller
    editing what was bound does not change what the next stage is given."""
    from langchain_core.tools import StructuredTool
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from mpm.agents.base import finish_tool

    def first(n: int = 3) -> dict[str, Any]:
        """Count to n."""
        return {}

    def second(label: str) -> dict[str, Any]:
        """Name the count."""
        return {}

    tools = [
        StructuredTool.from_function(func=first, name="count"),
        StructuredTool.from_function(func=second, name="count"),
        *CountingToolkit(_ctx(tmp_path)).tools(),
        finish_tool(),
    ]
    model = StubChatModel()
    bound = model.bind_tools(tools).kwargs["tools"]
    assert bound == [convert_to_openai_tool(t) for t in tools]
    assert bound[0] != bound[1]  # same name, different arguments and description
    bound[0]["function"]["description"] = "edited by a caller"
    again = model.bind_tools(tools).kwargs["tools"]
    assert again[0]["function"]["description"] == "Count to n."
    assert finish_tool() is finish_tool()  # one stateless completion tool for every stage


def test_the_stubs_schema_cache_stays_bounded_when_tools_are_built_afresh() -> None:
    """A tool built from a function on every call has a new argument model each time; a
    long-lived process binding such tools must not keep one schema per build forever."""
    from langchain_core.tools import StructuredTool

    from mpm.graph import llm

    def fresh(n: int = 1) -> dict[str, Any]:
        """A tool built anew."""
        return {}

    model = StubChatModel()
    for _ in range(llm.TOOL_SCHEMAS_KEPT + 40):
        model.bind_tools([StructuredTool.from_function(func=fresh, name="fresh")])
    assert len(llm._TOOL_SCHEMAS) <= llm.TOOL_SCHEMAS_KEPT
