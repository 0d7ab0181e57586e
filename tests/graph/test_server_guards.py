"""The served graph's own guards (``graph/server.py``, ``graph/context.py``), in process.

The same object LangGraph Server serves, on an in-memory saver: what a client may not set
is refused before anything is saved, the thread's settings are recorded at its start and
reused on every resume even after the server's environment changed, and no state is
written from outside the graph. ``test_langgraph_server.py`` drives the same through a
real ``langgraph dev`` and the SDK; these are the fast, exhaustive cases.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command, StateUpdate

from mpm.graph.context import TRUST_SETTINGS, ContextRefused, RunContext, server_context
from mpm.graph.server import InputRefused, StateWriteRefused, graph
from tests.graph.helpers import auto_answer, example


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MPM_POLICIES", "MPM_IDENTITY", "MPM_SERVER_MODELS", "MPM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MPM_WORKSPACE", str(tmp_path / "ws-a"))
    monkeypatch.setenv("MPM_TOOLSET", "noop")
    monkeypatch.setenv("MPM_TRACKING", "0")
    return tmp_path


def _served() -> Any:
    return graph.copy({"checkpointer": InMemorySaver()})


def _cfg(thread_id: str = "t-1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def _run(g: Any, graph_input: Any, context: Any = None, thread_id: str = "t-1") -> Any:
    async def go() -> Any:
        async for _ in g.astream(graph_input, _cfg(thread_id), context=context):
            pass
        return await g.aget_state(_cfg(thread_id))

    return asyncio.run(go())


def _state(g: Any, thread_id: str = "t-1") -> Any:
    return asyncio.run(g.aget_state(_cfg(thread_id)))


def _start(g: Any, context: Any = None) -> Any:
    return _run(g, {"requirements": example("breast_cancer")}, context)


@pytest.mark.parametrize("key", sorted(TRUST_SETTINGS))
def test_a_run_context_naming_a_trust_setting_is_refused_and_nothing_is_saved(
    env: Path, key: str
) -> None:
    g = _served()
    value = False if key == "tracking" else str(env / "elsewhere")
    with pytest.raises(ContextRefused, match=rf"run context sets {key}: .*server's environment"):
        _start(g, {key: value})
    assert _state(g).created_at is None  # no checkpoint at all
    assert not (env / "elsewhere").exists() and not (env / "ws-a").exists()


def test_unknown_context_keys_and_models_the_server_does_not_offer_are_refused(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ContextRefused, match="unknown setting.*colour"):
        server_context({"colour": "red"})
    with pytest.raises(ContextRefused, match=r"model 'openai:gpt-4o': this server offers stub"):
        server_context({"model": "openai:gpt-4o"})
    with pytest.raises(ContextRefused, match="tracing: expected true or false"):
        server_context({"tracing": "yes"})
    monkeypatch.setenv("MPM_SERVER_MODELS", "stub, ollama:qwen2.5")
    assert server_context({"model": "ollama:qwen2.5", "tracing": False}).model == "ollama:qwen2.5"


def test_settings_recorded_at_start_are_reused_on_resume_after_the_environment_changed(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = _served()
    state = _start(g, {"tracing": False})
    recorded = state.values["settings"]
    assert recorded["workspace"] == str(env / "ws-a")
    assert recorded["toolset"] == "noop" and recorded["tracing"] is False
    (item,) = state.interrupts
    assert item.value["type"] == "open_questions"

    # the operator restarts the server elsewhere, with real tools; the thread goes on as it began
    monkeypatch.setenv("MPM_WORKSPACE", str(env / "ws-b"))
    monkeypatch.setenv("MPM_TOOLSET", "real")
    answers = {q["key"]: auto_answer(q) for q in item.value["questions"]}
    state = _run(g, Command(resume={item.id: answers}))
    assert state.values["settings"] == recorded
    results = state.values["results"]
    assert results, "the stages ran on the resume"
    # no-op tools report {tool: True}; a real tool would have written data and artifacts
    assert all(set(r["outputs"].values()) == {True} for r in results.values())
    assert all(not r["artifacts"] for r in results.values())
    assert (env / "ws-a" / "runs" / "t-1" / "governance").is_dir()
    assert not (env / "ws-b").exists()


def test_input_settings_a_second_start_and_commands_that_write_or_jump_are_refused(
    env: Path,
) -> None:
    g = _served()
    with pytest.raises(InputRefused, match="run input 'settings' is refused"):
        _run(g, {"requirements": example("breast_cancer"), "settings": {"toolset": "real"}})
    with pytest.raises(InputRefused, match="unknown key.*approvals"):
        _run(g, {"requirements": example("breast_cancer"), "approvals": {"a": {}}})
    assert _state(g).created_at is None
    before = _start(g)
    for command, reason in (
        (Command(update={"approvals": {"x": {"decision": "approve"}}}), "'update' is refused"),
        (Command(goto="synthesize"), "'goto' is refused"),
    ):
        with pytest.raises(InputRefused, match=reason):
            _run(g, command)
    with pytest.raises(InputRefused, match="already started"):
        _start(g)
    after = _state(g)
    assert after.config == before.config  # no new checkpoint
    assert after.values == before.values


def test_update_state_and_supersteps_are_refused_and_change_nothing(env: Path) -> None:
    g = _served()
    before = _start(g)
    forged = {"approvals": {"a": {"decision": "approve"}}, "audit": [{"decision": "approve"}]}
    with pytest.raises(StateWriteRefused, match="written only by mpm's graph"):
        asyncio.run(g.aupdate_state(_cfg(), forged, as_node="approval"))
    with pytest.raises(StateWriteRefused):
        g.update_state(_cfg(), {"conversation": [{"role": "user", "content": "hi"}]})
    with pytest.raises(StateWriteRefused):
        asyncio.run(g.abulk_update_state(_cfg(), [[StateUpdate(forged, "approval")]]))
    after = _state(g)
    assert after.config == before.config and after.values == before.values


def test_a_thread_holding_another_threads_state_is_refused(env: Path) -> None:
    g = _served()
    state = _start(g)
    # what threads.copy produces: the same checkpoint under a new thread id
    saver = g.checkpointer
    tup = saver.get_tuple(state.config)
    saver.put(
        {"configurable": {"thread_id": "t-copy", "checkpoint_ns": ""}},
        tup.checkpoint,
        tup.metadata,
        tup.checkpoint["channel_versions"],
    )
    assert _state(g, "t-copy").values["thread_id"] == "t-1"
    with pytest.raises(InputRefused, match="holds the state of thread t-1"):
        _run(g, None, thread_id="t-copy")


def test_an_in_process_caller_keeps_passing_its_own_context(env: Path) -> None:
    g = _served()
    ctx = RunContext(workspace=str(env / "own"), toolset="noop", tracking=False)
    state = _start(g, ctx)
    assert state.values["settings"]["workspace"] == str(env / "own")


def test_schemas_list_the_input_fields_and_only_the_client_settings() -> None:
    inputs = graph.get_input_jsonschema()
    assert set(inputs["properties"]) == {"requirements", "conversation"}
    outputs = graph.get_output_jsonschema()
    assert {"requirements", "approvals", "audit", "governance"} <= set(outputs["properties"])
    context = graph.get_context_jsonschema()
    assert set(context["properties"]) == {"model", "tracing"}


def test_an_approval_resume_carries_the_decision_ids_the_server_read_not_the_clients(
    env: Path,
) -> None:
    from mpm.graph.nodes.approvals import SEEN_DECISIONS
    from mpm.graph.server import with_seen_decisions

    g = _served()
    state = _start(g)
    (item,) = state.interrupts
    answers = {q["key"]: auto_answer(q) for q in item.value["questions"]}
    # the questions interrupt is no approval: its answer goes through untouched
    untouched = with_seen_decisions(Command(resume={item.id: answers}), state)
    assert untouched.resume == {item.id: answers}
    state = _run(g, Command(resume={item.id: answers}))
    approvals = [i for i in state.interrupts if i.value["type"] == "approval"]
    assert approvals
    first = approvals[0]
    claimed = {"decision": "approve", SEEN_DECISIONS: ["client-claims-this"]}
    stamped = with_seen_decisions(Command(resume={first.id: claimed}), state)
    assert stamped.resume[first.id]["decision"] == "approve"
    assert stamped.resume[first.id][SEEN_DECISIONS] == []  # the thread has recorded none
