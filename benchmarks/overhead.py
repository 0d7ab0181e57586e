"""Benchmark: what the project manager graph itself costs, against a bare LangGraph graph.

The whole governed graph runs with the stub model, the ``minimal`` toolset
(``agents/minimal.py``: the real tool names, the least real work -- the requirements'
own data split for real, one scikit-learn pipeline fitted, the target metric measured on
the test split, the model really registered in an MLflow store the benchmark sets with
``MLFLOW_TRACKING_URI``) and the run's MLflow tracking off, on the SQLite checkpointer with ``durability="sync"``: kickoff, plan,
governance, the supervisor and every sub-agent's tool loop, the open questions and the
approvals (answered in-process by authorised test approvers holding real keys),
synthesis. Governance judges measured facts, so the run can legitimately end
``completed`` (fail closed is not relaxed: a run whose metric misses the threshold is
refused registration).

Counted (``mpm``): the wall and process-CPU time of the graph invocations -- the first
``start`` and every ``answer`` that resumes it, each opening the checkpointer, loading
the thread and streaming to the next interrupt or the end -- minus the time inside the
minimal tools' real work (``tool_work``, measured inside the tools, reported on its
own) and inside the ML work synthesis runs on the registered model (its generated test
suite, the naive baseline, the bootstrap intervals of the test metrics for the model
documentation: ``synthesis_ml_work``). Not counted: what the approvers do
between invocations (reading the request, signing the decision with their ed25519 key)
and the one-off set-up (keys, imports, the policy library: a warm-up run). ``mpm_with_tool_work`` gives the figures
with both left in.

The bare graph is a chain with as many nodes as the governed run executed super-steps,
each node appending one item to a list, on the same checkpointer and durability, run in
one invocation. The figure is the ratio of the per-super-step times (medians over the
runs; the runs go in rounds, one of each graph back to back, and
``ratio_range_over_rounds`` gives the lowest and highest ratio within a round).

For reference, ``bare_langgraph_same_resumes`` is that chain interrupted as many times
as the governed run waited for people, each resume driven as the runner drives one
(open the checkpointer, read the state, stream, read it again);
``bare_langgraph_same_resumes_and_state`` is that chain also carrying the governed run's
final state from the start (every checkpoint as large as mpm's, one of its channels
rewritten per step): the floor for a graph that keeps what mpm keeps and does nothing in
its nodes.

``where_the_cpu_goes`` splits the counted CPU: each node's own code (thread CPU, the
agent loop in its stage worker, the tools' and synthesis's ML work taken out) and the
rest, ``graph_machinery`` (LangGraph's loop, checkpoint reads and writes, the runner).

Both graphs commit a checkpoint (SQLite, ``synchronous=FULL``) at every super-step, so
on a machine whose disk is shared with other work the wall figures move with the fsync
time (the bare chain's wall per run varied 0.19-0.84 s between runs minutes apart at load
3-5); the CPU ratios are the steadier figure.

    python benchmarks/overhead.py [--runs 5] [--example breast_cancer]

Prints one JSON document on stdout.
"""

from __future__ import annotations

import os

# the tools' linear algebra on the calling thread, so their CPU is measured where it runs
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import operator  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Any, TypedDict  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._machine import loop_s, machine  # noqa: E402
from tests.graph import helpers  # noqa: E402
from tests.graph.helpers import approver_for, auto_answer, decision, example, runner  # noqa: E402

TOOLSET = "minimal"


def signing_setup(root: Path) -> None:
    """A real ed25519 key per member of the reference Approvers.md, bound in an identity
    directory the runs use (as the test suite's session fixture does)."""
    identity, _ = helpers.reference_signers(root)
    os.environ["MPM_IDENTITY"] = str(identity)


class _Clock:
    """Sums wall and process-CPU time over the timed blocks only."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self.invocations = 0

    def timed(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return call(*args, **kwargs)
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu
            self.invocations += 1


class _MLWork:
    """Wall and thread-CPU time inside the ML work synthesis does on the registered model
    (generating and running its test suite, scoring the naive baseline, the bootstrap
    confidence intervals of the test metrics: 1000 resamples, each metric recomputed by
    scikit-learn on each), summed over calls. Wrapped here, at the module functions synthesis imports when it runs them:
    it is model inference and data reading, like the tools' work, not orchestration."""

    FUNCTIONS = (
        ("mpm.tools.tests_generation", "generate_test_suite"),
        ("mpm.tools.tests_generation", "run_test_suite"),
        ("mpm.tools.baseline", "naive_baseline_score"),
        ("mpm.tools.bootstrap", "bootstrap_intervals"),
    )

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self.calls = 0

    def install(self) -> None:
        import importlib

        for module_name, name in self.FUNCTIONS:
            module = importlib.import_module(module_name)
            setattr(module, name, self._timed(getattr(module, name)))

    def _timed(self, function: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.wall += time.perf_counter() - wall
                self.cpu += time.thread_time() - cpu
                self.calls += 1

        return timed

    def snapshot(self) -> dict[str, float]:
        return {"wall_s": self.wall, "cpu_s": self.cpu, "calls": self.calls}


SYNTHESIS_ML = _MLWork()


class _NodeWork:
    """Thread-CPU seconds inside each node's own code, summed per node over a run, so the
    figure can be split into what mpm's nodes do and what the graph machinery around
    them costs (LangGraph's loop, the checkpointer, the runner).

    Wrapped at the names ``graph/builder.py`` compiles the graph from (before the first
    compile), plus the agent loop, which runs in the stage's worker thread rather than
    the node's. A node that runs alone in its super-step runs on the calling thread, and
    parallel ones on LangGraph's executor; thread time is right for both."""

    NODES = ("kickoff", "plan", "governance", "supervisor", "approval", "questions", "synthesize")

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self.cpu: dict[str, float] = {}

    def install(self) -> None:
        import mpm.graph.builder as builder
        import mpm.graph.nodes.stage as stage

        for name in self.NODES:
            setattr(builder, name, self._timed(name, getattr(builder, name)))
        builder.run_stage = self._timed("stage_node", builder.run_stage)
        stage._timed_agent_run = self._timed("agent_loop", stage._timed_agent_run)

    def _timed(self, label: str, function: Any) -> Any:
        import functools

        @functools.wraps(function)  # LangGraph reads the node's signature
        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent = time.thread_time() - cpu
                with self._lock:
                    self.cpu[label] = self.cpu.get(label, 0.0) + spent

        return timed

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self.cpu)


NODE_WORK = _NodeWork()


def drive(r: Any, thread: str, requirements: dict[str, Any], clock: _Clock) -> Any:
    """``tests.graph.helpers.drive_to_completion`` with only the graph invocations timed."""
    outcome = clock.timed(r.start, thread, {"requirements": requirements})
    requested_by = requirements.get("requested_by")
    for _ in range(60):
        if not outcome.interrupts:
            return outcome
        value = outcome.interrupts[0]["value"]
        if value["type"] == "open_questions":
            answers = {q["key"]: auto_answer(q) for q in value["questions"]}
            outcome = clock.timed(r.answer, thread, "open_questions", answers)
        elif value["type"] == "approval":
            signed = decision(value, approver_for(value, requested_by))
            outcome = clock.timed(r.answer, thread, "approval", signed, key=value["approval_id"])
        else:
            raise AssertionError(f"unexpected interrupt {value}")
    raise AssertionError("the run did not finish")


def governed_run(workspace: Path, name: str, thread: str) -> dict[str, Any]:
    from mpm.agents.minimal import TOOL_TIME
    from mpm.graph.llm import STUB_USAGE

    r = runner(workspace, toolset=TOOLSET, tracking=False)
    before, tools_before = STUB_USAGE.snapshot(), TOOL_TIME.snapshot()
    ml_before = SYNTHESIS_ML.snapshot()
    nodes_before = NODE_WORK.snapshot()
    clock = _Clock()
    outcome = drive(r, thread, example(name), clock)
    wall, cpu = clock.wall, clock.cpu
    after, tools_after = STUB_USAGE.snapshot(), TOOL_TIME.snapshot()
    ml_after = SYNTHESIS_ML.snapshot()
    nodes_after = NODE_WORK.snapshot()
    tool_wall = tools_after["wall_s"] - tools_before["wall_s"]
    tool_cpu = tools_after["cpu_s"] - tools_before["cpu_s"]
    ml_wall = ml_after["wall_s"] - ml_before["wall_s"]
    ml_cpu = ml_after["cpu_s"] - ml_before["cpu_s"]
    nodes = {k: v - nodes_before.get(k, 0.0) for k, v in nodes_after.items()}
    # the tools' real work runs inside the agent loop, the ML work inside synthesis
    nodes["agent_loop"] = nodes.get("agent_loop", 0.0) - tool_cpu
    nodes["synthesize"] = nodes.get("synthesize", 0.0) - ml_cpu
    steps = len(r.history(thread))
    with sqlite3.connect(workspace / "checkpoints.db") as conn:
        size = conn.execute(
            "SELECT length(checkpoint) + length(metadata) FROM checkpoints WHERE thread_id = ? "
            "ORDER BY checkpoint_id DESC LIMIT 1",
            (thread,),
        ).fetchone()[0]
        total = conn.execute(
            "SELECT sum(length(checkpoint) + length(metadata)) FROM checkpoints WHERE thread_id = ?",
            (thread,),
        ).fetchone()[0]
        writes = conn.execute(
            "SELECT coalesce(sum(length(value)), 0) FROM writes WHERE thread_id = ?", (thread,)
        ).fetchone()[0]
    return {
        "wall_s": wall - tool_wall - ml_wall,
        "cpu_s": cpu - tool_cpu - ml_cpu,
        "wall_with_tools_s": wall,
        "cpu_with_tools_s": cpu,
        "tool_wall_s": tool_wall,
        "tool_cpu_s": tool_cpu,
        "tool_calls": tools_after["calls"] - tools_before["calls"],
        "ml_wall_s": ml_wall,
        "ml_cpu_s": ml_cpu,
        "ml_calls": ml_after["calls"] - ml_before["calls"],
        "node_cpu_s": nodes,
        "invocations": clock.invocations,
        "super_steps": steps,
        "resumes": sum(
            1
            for e in outcome.values["events"]
            if e["event"].startswith("approval_") or e["event"] == "questions_answered"
        ),
        "last_checkpoint_bytes": size,
        "all_checkpoints_bytes": total + writes,
        "model_calls": after["calls"] - before["calls"],
        "input_tokens": after["input_tokens"] - before["input_tokens"],
        "output_tokens": after["output_tokens"] - before["output_tokens"],
        "status": outcome.status,
        "registered_model": ((outcome.values.get("deliverables") or {}).get("registered_model")),
        "final_state": dict(outcome.values),
    }


class BareState(TypedDict):
    items: Annotated[list[int], operator.add]


def bare_run(workspace: Path, nodes: int, thread: str) -> tuple[float, float]:
    from langgraph.graph import END, START, StateGraph

    from mpm.graph.checkpointing import open_checkpointer
    from mpm.graph.workspace import Workspace

    builder = StateGraph(BareState)
    for i in range(nodes):
        builder.add_node(f"n{i}", lambda _s, i=i: {"items": [i]})
        builder.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    builder.add_edge(f"n{nodes - 1}", END)
    with open_checkpointer("sqlite", Workspace.resolve(workspace)) as saver:
        graph = builder.compile(checkpointer=saver)
        started, cpu_started = time.perf_counter(), time.process_time()
        graph.invoke(
            {"items": []},
            {"configurable": {"thread_id": thread}, "recursion_limit": nodes + 10},
            durability="sync",
        )
        return time.perf_counter() - started, time.process_time() - cpu_started


def bare_run_with_resumes(
    workspace: Path,
    nodes: int,
    resumes: int,
    thread: str,
    carried: dict[str, Any] | None = None,
) -> tuple[float, float]:
    """The same chain with ``resumes`` of its nodes calling ``interrupt()``, driven as the
    runner drives a thread: every invocation opens the checkpointer, reads the thread's
    state, streams to the next interrupt and reads the state again. The floor for a run
    that waits for people ``resumes`` times.

    ``carried``: the state also holds these channels (the governed run's final state) from
    the start, and each node rewrites one of them in turn, so every checkpoint carries and
    every step writes state of the governed run's size -- the floor for a graph that keeps
    what mpm keeps, with nothing done in its nodes."""
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, interrupt

    from mpm.graph.checkpointing import open_checkpointer
    from mpm.graph.workspace import Workspace

    waits = {round((k + 1) * nodes / (resumes + 1)) for k in range(resumes)}
    kept = sorted(carried or {})

    def make(i: int) -> Any:
        def node(_s: Any) -> dict[str, Any]:
            if i in waits:
                interrupt({"node": i})
            update: dict[str, Any] = {"items": [i]}
            if kept:
                key = kept[i % len(kept)]
                update[key] = carried[key]  # type: ignore[index]
            return update

        return node

    schema: Any = BareState
    if kept:
        schema = TypedDict(  # type: ignore[misc]
            "CarriedState",
            {"items": Annotated[list[int], operator.add], **dict.fromkeys(kept, Any)},
        )
    builder = StateGraph(schema)
    for i in range(nodes):
        builder.add_node(f"n{i}", make(i))
        builder.add_edge(START if i == 0 else f"n{i - 1}", f"n{i}")
    builder.add_edge(f"n{nodes - 1}", END)
    compiled = builder.compile()
    ws = Workspace.resolve(workspace)
    config = {"configurable": {"thread_id": thread}, "recursion_limit": nodes + 10}
    started, cpu_started = time.perf_counter(), time.process_time()
    graph_input: Any = {"items": [], **(carried or {})}
    for _ in range(len(waits) + 1):
        with open_checkpointer("sqlite", ws) as saver:
            graph = compiled.copy({"checkpointer": saver})
            graph.get_state(config)
            graph.invoke(graph_input, config, durability="sync")
            done = not graph.get_state(config).next
        graph_input = Command(resume="ok")
        if done:
            break
    return time.perf_counter() - started, time.process_time() - cpu_started


def floor_figures(timings: list[tuple[float, float]], wall: float, cpu: float) -> dict[str, float]:
    """A floor chain's median (wall, CPU) per run and mpm's ratio to it (per super-step:
    the chains have as many nodes as the governed run had super-steps)."""
    floor_wall = statistics.median(t[0] for t in timings)
    floor_cpu = statistics.median(t[1] for t in timings)
    return {
        "wall_s_per_run": round(floor_wall, 4),
        "cpu_s_per_run": round(floor_cpu, 4),
        "ratio_per_super_step": round(wall / floor_wall, 2),
        "cpu_ratio_per_super_step": round(cpu / floor_cpu, 2),
    }


def paired_range(runs: list[dict[str, Any]], bare: list[tuple[float, float]]) -> dict[str, Any]:
    """mpm's ratio to the bare chain within each round (the two ran back to back), lowest
    and highest: how far the machine's noise moves the headline ratio."""
    wall = [r["wall_s"] / b[0] for r, b in zip(runs, bare, strict=True)]
    cpu = [r["cpu_s"] / b[1] for r, b in zip(runs, bare, strict=True)]
    return {
        "wall": [round(min(wall), 2), round(max(wall), 2)],
        "cpu": [round(min(cpu), 2), round(max(cpu), 2)],
    }


def where_the_cpu_goes(runs: list[dict[str, Any]], cpu: float) -> dict[str, Any]:
    """The counted CPU per run split by node (median over runs; tools' and synthesis's ML
    work already taken out), and the rest: LangGraph's loop, checkpoint reads and writes,
    the runner -- the graph machinery, to set against the bare chains' whole figure."""
    labels = sorted({k for r in runs for k in r["node_cpu_s"]})
    per_node = {
        k: round(1000 * statistics.median(r["node_cpu_s"].get(k, 0.0) for r in runs), 1)
        for k in labels
    }
    nodes_ms = sum(per_node.values())
    return {
        "unit": "ms of CPU per run",
        "nodes": dict(sorted(per_node.items(), key=lambda kv: -kv[1])),
        "nodes_total": round(nodes_ms, 1),
        "graph_machinery": round(1000 * cpu - nodes_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--example", default="breast_cancer")
    args = parser.parse_args()
    speed_at_start = loop_s()

    with tempfile.TemporaryDirectory(prefix="mpm-overhead-") as tmp:
        root = Path(tmp)
        signing_setup(root / "signing")
        SYNTHESIS_ML.install()
        NODE_WORK.install()
        # one MLflow store for every run's registration (the only MLflow use: tracking is
        # off), so its tables are created once, in the warm-up
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'registry.db'}"
        warm = governed_run(root / "warm", args.example, "warmup")  # imports, policy cache
        steps, waits, carried = warm["super_steps"], warm["invocations"] - 1, warm["final_state"]
        bare_run(root / "bare-warm", steps, "warmup")
        bare_run_with_resumes(root / "bare-resume-warm", steps, waits, "warmup")
        bare_run_with_resumes(root / "bare-state-warm", steps, waits, "warmup", carried)
        # one round = one run of each graph, back to back, so a change in the machine's load
        # during the benchmark moves mpm's figures and the floors' together
        runs: list[dict[str, Any]] = []
        bare: list[tuple[float, float]] = []
        resumed: list[tuple[float, float]] = []
        same_state: list[tuple[float, float]] = []
        for i in range(args.runs):
            runs.append(governed_run(root / f"g{i}", args.example, f"g{i}"))
            bare.append(bare_run(root / f"b{i}", steps, f"b{i}"))
            resumed.append(bare_run_with_resumes(root / f"r{i}", steps, waits, f"r{i}"))
            same_state.append(bare_run_with_resumes(root / f"s{i}", steps, waits, f"s{i}", carried))
            print(f"round {i + 1}/{args.runs} done", file=sys.stderr, flush=True)
        if any(r["super_steps"] != steps or r["invocations"] != waits + 1 for r in runs):
            raise SystemExit("overhead: the governed runs did not all take the same path")

    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    wall, cpu = median("wall_s"), median("cpu_s")
    bare_wall = statistics.median(b[0] for b in bare)
    bare_cpu = statistics.median(b[1] for b in bare)
    first = runs[0]
    result = {
        "benchmark": "overhead",
        "machine": machine(speed_at_start),
        "example": args.example,
        "toolset": TOOLSET,
        "runs": args.runs,
        "counted": "wall and process-CPU time of the graph invocations (start and every "
        "resume), minus the time inside the minimal tools' real work and synthesis's ML "
        "work on the registered model (both reported below)",
        "not_counted": "the approvers' reading and signing between invocations; one-off "
        "set-up (keys, imports, policy library: a warm-up run)",
        "mpm": {
            "wall_s_per_run": round(wall, 4),
            "super_steps_per_run": steps,
            "invocations_per_run": first["invocations"],
            "ms_per_super_step": round(1000 * wall / steps, 3),
            "cpu_ms_per_super_step": round(1000 * cpu / steps, 3),
            "human_resumes_per_run": first["resumes"],
            "last_checkpoint_bytes": first["last_checkpoint_bytes"],
            "all_checkpoint_bytes_per_run": first["all_checkpoints_bytes"],
            "model_calls_per_run": first["model_calls"],
            "input_tokens_per_run": first["input_tokens"],
            "output_tokens_per_run": first["output_tokens"],
            "final_status": first["status"],
            "final_status_every_run": sorted({r["status"] for r in runs}),
            "registered_model": first["registered_model"],
        },
        "tool_work": {
            "calls_per_run": first["tool_calls"],
            "wall_s_per_run": round(median("tool_wall_s"), 4),
            "cpu_s_per_run": round(median("tool_cpu_s"), 4),
        },
        "synthesis_ml_work": {
            "what": "generate + run the registered model's test suite, naive baseline score, "
            "bootstrap intervals of the test metrics",
            "calls_per_run": first["ml_calls"],
            "wall_s_per_run": round(median("ml_wall_s"), 4),
            "cpu_s_per_run": round(median("ml_cpu_s"), 4),
        },
        "mpm_with_tool_work": {
            "wall_s_per_run": round(median("wall_with_tools_s"), 4),
            "ms_per_super_step": round(1000 * median("wall_with_tools_s") / steps, 3),
            "cpu_ms_per_super_step": round(1000 * median("cpu_with_tools_s") / steps, 3),
            "ratio_per_super_step": round(median("wall_with_tools_s") / bare_wall, 2),
            "cpu_ratio_per_super_step": round(median("cpu_with_tools_s") / bare_cpu, 2),
        },
        "where_the_cpu_goes": where_the_cpu_goes(runs, cpu),
        "bare_langgraph": {
            "nodes": steps,
            "wall_s_per_run": round(bare_wall, 4),
            "ms_per_super_step": round(1000 * bare_wall / steps, 3),
            "cpu_ms_per_super_step": round(1000 * bare_cpu / steps, 3),
        },
        "bare_langgraph_same_resumes": {
            "nodes": steps,
            "interrupts": waits,
            **floor_figures(resumed, wall, cpu),
        },
        "bare_langgraph_same_resumes_and_state": {
            "nodes": steps,
            "interrupts": waits,
            "channels": 1 + len(carried),
            "carries": "the governed run's final state, from the start",
            **floor_figures(same_state, wall, cpu),
        },
        "ratio_per_super_step": round(wall / bare_wall, 2),
        # process CPU time (all threads): what the code costs, less sensitive than wall
        # time to other work on a shared machine
        "cpu_ratio_per_super_step": round(cpu / bare_cpu, 2),
        "ratio_range_over_rounds": paired_range(runs, bare),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
