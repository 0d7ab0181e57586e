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
