"""The graph-free read path (``graph/checkpoint_reader.py``, ``runner.Reader``) shows what
``get_state`` shows, on real threads of the real graph and SQLite checkpointer: waiting for
answers, waiting for approvals, half-way through parallel approvals, cut off mid-step by a
real SIGKILL, and finished. Where it cannot be exact it says so and the graph answers.

It also pins the LangGraph conventions the reader relies on, so an upgrade that changes
them fails here rather than in a read."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import yaml

from mpm.graph.checkpoint_reader import SqliteReader
from mpm.graph.context import RunContext
from mpm.graph.runner import Reader, Runner
from tests.graph.helpers import REPO, approver_for, auto_answer, decision, mpm, runner

EXAMPLE = REPO / "reference" / "examples" / "breast_cancer.yaml"


def _reader(ws: Path) -> Reader:
    return Reader(RunContext(workspace=str(ws), model="stub", toolset="noop", tracking=False))


def _live(r: Runner, thread: str) -> Any:
    with r.graph() as g:
        return g.get_state(r.config(thread))


def assert_same(ws: Path, thread: str) -> Any:
    """The reader's view equals the graph's live state; returns the graph's snapshot."""
    r = runner(ws)
    snap = _live(r, thread)
    view = SqliteReader(ws / "checkpoints.db").latest(thread)
    assert view is not None
    assert view.values == snap.values
    assert view.interrupts == [{"id": i.id, "value": i.value} for i in snap.interrupts]
    assert view.next == snap.next
    assert view.has_tasks == bool(snap.tasks)
    assert view.created_at == snap.created_at
    assert view.checkpoint_id == snap.config["configurable"]["checkpoint_id"]
    # each waiting task is placed: its namespace is the task's, its input the task's Send
    tasks = {t.id: t for t in snap.tasks}
    for waiting in view.waiting:
        assert waiting.task_ns == f"{tasks[waiting.task_id].name}:{waiting.task_id}"
        assert waiting.node == tasks[waiting.task_id].name
    reader = _reader(ws)
    fast, full = reader.snapshot(thread), r.snapshot(thread)
    assert (fast.status, fast.values, fast.interrupts, fast.next) == (
        full.status,
        full.values,
        full.interrupts,
        full.next,
    )
    assert reader.threads() == r.threads()
    assert reader.pending_approvals() == r.pending_approvals()
    assert reader.fallbacks == [], reader.fallbacks
    return snap


def _half_way(r: Runner, thread: str) -> bool:
    """Some task of the open step already finished (e.g. one of parallel approvals)."""
    return any(t.result is not None for t in _live(r, thread).tasks)


def assert_half_way(ws: Path, thread: str) -> None:
    """Half-way through a step the live values hold the finished tasks' writes merged by
    the reducers: the reader does not guess them (the graph answers), but what is still
    waiting -- all that ``approvals`` and ``approve`` need -- it shows exactly."""
    r = runner(ws)
    snap = _live(r, thread)
    view = SqliteReader(ws / "checkpoints.db").latest(thread, need_values=False)
    assert view.interrupts == [{"id": i.id, "value": i.value} for i in snap.interrupts]
    assert view.next == snap.next
    reader = _reader(ws)
    assert reader.view(thread) is None and reader.fallbacks  # it says why...
    full = r.snapshot(thread)
    assert reader.snapshot(thread).values == full.values  # ...and the graph answers
    assert reader.pending_approvals() == r.pending_approvals()
    assert reader.threads() == r.threads()


def test_reader_shows_what_get_state_shows_through_a_governed_run(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    r = runner(ws)
    req = yaml.safe_load(EXAMPLE.read_text())
    outcome = r.start("t", {"requirements": req})
    assert outcome.interrupts[0]["value"]["type"] == "open_questions"
    assert_same(ws, "t")
    kinds = set()
    for _ in range(40):
        if not outcome.interrupts:
            break
        value = outcome.interrupts[0]["value"]
        kinds.add(value["type"])
        if value["type"] == "open_questions":
            answers = {q["key"]: auto_answer(q) for q in value["questions"]}
            outcome = r.answer("t", "open_questions", answers)
        else:
            who = approver_for(value, req.get("requested_by"))
            outcome = r.answer("t", "approval", decision(value, who), key=value["approval_id"])
        if _half_way(r, "t"):
            kinds.add("half-way")
            assert_half_way(ws, "t")
        else:
            assert_same(ws, "t")
    assert not outcome.interrupts and outcome.status in {"completed", "partial"}  # noop tools
    assert {"open_questions", "approval", "half-way"} <= kinds
    snap = assert_same(ws, "t")
    assert not snap.next and not snap.interrupts


def test_reader_shows_a_step_cut_off_by_sigkill_as_running(tmp_path: Path) -> None:
    """A real kill mid-step (``MPM_KILL_AT``) leaves tasks without a checkpoint after them:
    both paths call the thread ``running`` with the same values and next nodes."""
    ws = tmp_path / "ws"
    killed = mpm(
        "kickoff",
        "-r",
        str(EXAMPLE),
        "-t",
        "cut",
        "-w",
        str(ws),
        "--toolset",
        "noop",
        "--no-tracking",
        env={"MPM_KILL_AT": "governance"},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    snap = assert_same(ws, "cut")
    assert snap.next == ("governance",)
    assert _reader(ws).snapshot("cut").status == "running"


def test_unknown_thread_and_missing_store(tmp_path: Path) -> None:
    import pytest

    from mpm.graph.runner import UnknownThreadError

    ws = tmp_path / "nothing"
    ws.mkdir()
    reader = _reader(ws)
    assert reader.threads() == [] and reader.pending_approvals() == []
    with pytest.raises(UnknownThreadError, match="no thread nope"):
        reader.snapshot("nope")
    assert list(ws.iterdir()) == []  # nothing created: no database, no locks, no runs


def test_the_langgraph_conventions_the_reader_relies_on() -> None:
    """Channel names, ext codes and the checkpoint version are LangGraph's; every node of
    mpm's graph is triggered by its own ``branch:to:<node>`` channel (or ``__start__``),
    which is how the reader finds the nodes a checkpoint will run next."""
    from langgraph._internal import _constants as c
    from langgraph.checkpoint.serde import jsonplus

    from mpm.graph import checkpoint_reader as cr
    from mpm.graph.builder import build_graph

    assert (cr.INTERRUPT, cr.RESUME, cr.ERROR, cr.ERROR_SOURCE_NODE, cr.TASKS) == (
        c.INTERRUPT,
        c.RESUME,
        c.ERROR,
        c.ERROR_SOURCE_NODE,
        c.TASKS,
    )
    assert (cr.NULL_TASK_ID, cr.PUSH, cr.PULL) == (c.NULL_TASK_ID, c.PUSH, c.PULL)
    assert (
        cr.EXT_CONSTRUCTOR_SINGLE_ARG,
        cr.EXT_CONSTRUCTOR_POS_ARGS,
        cr.EXT_CONSTRUCTOR_KW_ARGS,
        cr.EXT_METHOD_SINGLE_ARG,
    ) == (
        jsonplus.EXT_CONSTRUCTOR_SINGLE_ARG,
        jsonplus.EXT_CONSTRUCTOR_POS_ARGS,
        jsonplus.EXT_CONSTRUCTOR_KW_ARGS,
        jsonplus.EXT_METHOD_SINGLE_ARG,
    )
    from langgraph.pregel._algo import _xxhash_str

    assert cr._task_id("1f1edeee-1517-6307-8010-bb0d8a37253f", "a", "3", "a", c.PUSH, "0") == (
        _xxhash_str(bytes.fromhex("1f1edeee151763078010bb0d8a37253f"), "a", "3", "a", c.PUSH, "0")
    )
    graph = build_graph()
    for name, node in graph.nodes.items():
        expected = [cr.START] if name == cr.START else [f"{cr.BRANCH_TO}{name}"]
        assert list(node.triggers) == expected, (name, node.triggers)


def test_values_of_unknown_types_send_the_read_to_the_graph(tmp_path: Path) -> None:
    """A checkpoint holding a type the reader does not decode is not guessed at."""
    import ormsgpack
    import pytest

    from mpm.graph.checkpoint_reader import Unreadable, _unpack

    blob = ormsgpack.packb(
        {"x": ormsgpack.Ext(2, ormsgpack.packb(["os", "system", {"cmd": "rm"}]))}
    )
    with pytest.raises(Unreadable, match="os.system"):
        _unpack(blob)
