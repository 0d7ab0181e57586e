"""Benchmark: what the project manager graph itself costs, against a bare LangGraph graph.

The whole governed graph runs with the stub model and no-op tools (``--toolset noop``)
and MLflow tracking off, on the SQLite checkpointer with ``durability="sync"``: kickoff,
plan, governance, the supervisor and every sub-agent's tool loop, the open questions and
the approvals (answered in-process by authorised test approvers), synthesis. The bare
graph is a chain with as many nodes as the governed run executed super-steps, each node
appending one item to a list, on the same checkpointer and durability. The figure is the
ratio of the per-super-step times.

    python benchmarks/overhead.py [--runs 5] [--example breast_cancer]

Prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import operator
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.graph.helpers import drive_to_completion, example, runner  # noqa: E402


def governed_run(workspace: Path, name: str, thread: str) -> dict[str, Any]:
    from mpm.graph.llm import STUB_USAGE

    r = runner(workspace, toolset="noop", tracking=False)
    before = STUB_USAGE.snapshot()
    started, cpu_started = time.perf_counter(), time.process_time()
    outcome = drive_to_completion(r, r.start(thread, {"requirements": example(name)}))
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    after = STUB_USAGE.snapshot()
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
        "wall_s": wall,
        "cpu_s": cpu,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--example", default="breast_cancer")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mpm-overhead-") as tmp:
        root = Path(tmp)
        governed_run(root / "warm", args.example, "warmup")  # imports, policy library cache
        runs = [governed_run(root / f"g{i}", args.example, f"g{i}") for i in range(args.runs)]
        steps = runs[0]["super_steps"]
        bare_run(root / "bare-warm", steps, "warmup")
        bare = [bare_run(root / f"b{i}", steps, f"b{i}") for i in range(args.runs)]

    wall = statistics.median(r["wall_s"] for r in runs)
    cpu = statistics.median(r["cpu_s"] for r in runs)
    bare_wall = statistics.median(b[0] for b in bare)
    bare_cpu = statistics.median(b[1] for b in bare)
    result = {
        "benchmark": "overhead",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": __import__("os").cpu_count(),
            "load_avg_1m": round(__import__("os").getloadavg()[0], 2),
        },
        "example": args.example,
        "runs": args.runs,
        "mpm": {
            "wall_s_per_run": round(wall, 4),
            "super_steps_per_run": steps,
            "ms_per_super_step": round(1000 * wall / steps, 3),
            "cpu_ms_per_super_step": round(1000 * cpu / steps, 3),
            "human_resumes_per_run": runs[0]["resumes"],
            "last_checkpoint_bytes": runs[0]["last_checkpoint_bytes"],
            "all_checkpoint_bytes_per_run": runs[0]["all_checkpoints_bytes"],
            "model_calls_per_run": runs[0]["model_calls"],
            "input_tokens_per_run": runs[0]["input_tokens"],
            "output_tokens_per_run": runs[0]["output_tokens"],
            "final_status": runs[0]["status"],
        },
        "bare_langgraph": {
            "nodes": steps,
            "wall_s_per_run": round(bare_wall, 4),
            "ms_per_super_step": round(1000 * bare_wall / steps, 3),
            "cpu_ms_per_super_step": round(1000 * bare_cpu / steps, 3),
        },
        "ratio_per_super_step": round(wall / bare_wall, 2),
        # process CPU time (all threads): what the code costs, less sensitive than wall
        # time to other work on a shared machine
        "cpu_ratio_per_super_step": round(cpu / bare_cpu, 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
