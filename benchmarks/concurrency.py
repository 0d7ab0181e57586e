"""Benchmark: many worker processes driving governed runs against one PostgreSQL checkpointer.

For each worker count N (default 1, 2, 4, 8), N processes each start and complete
``--runs-per-worker`` governed runs one after another: stub model, no-op tools, MLflow
tracking off, open questions answered and approvals decided in-process by an authorised
test approver (``tests/graph/helpers.py``), every command through ``graph.runner.Runner``
exactly as the CLI drives it (a checkpointer connection per command, ``durability="sync"``).
Each worker has its own workspace directory; all share one PostgreSQL database, a fresh one
created for this benchmark and dropped afterwards (``--keep-database`` keeps it). Each
worker does one unmeasured warm-up run first (imports, policy library, compiled graph).

Reported per N: runs per second (all runs / wall time from the moment every worker is
ready), p50/p95 latency of one run (start to completion, all resumes included), checkpoint
rows and bytes per run in ``checkpoints``, ``checkpoint_blobs`` and ``checkpoint_writes``
(bytes: ``pg_column_size`` of the stored rows), and an isolation check: every thread is read
back and must carry its own thread id, project name and seed, and audit entries of its own.

    MPM_BENCH_POSTGRES_DSN="$(scripts/start_postgres.sh)" python benchmarks/concurrency.py
    python benchmarks/concurrency.py --dsn postgresql://... --workers 1,2,4,8 --runs-per-worker 3

The DSN's role needs CREATEDB. Prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DSN_ENV = "MPM_BENCH_POSTGRES_DSN"
TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


def project_of(level: int, worker: int, run: int) -> dict[str, Any]:
    """What makes a run's requirements its own: thread id, project name, seed."""
    return {
        "thread": f"bench-n{level}-w{worker}-r{run}",
        "project_name": f"Concurrency Bench N{level} W{worker} R{run}",
        "seed": 1000 * level + 100 * worker + run,
    }


# -- worker process ------------------------------------------------------------------------


def worker_main(
    level: int,
    worker: int,
    runs: int,
    dsn: str,
    workspace: str,
    example_name: str,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    """Warm up, wait for the start signal, then run ``runs`` governed runs back to back."""
    try:
        from mpm.graph.builder import graph_with
        from tests.graph.helpers import drive_to_completion, example, runner

        graph_with(None)
        r = runner(Path(workspace), toolset="noop", tracking=False, checkpointer=dsn)
        # one run before the clock starts, as a long-lived worker would have done: imports,
        # policy library, compiled graph; the measured runs are the steady state
        warmup = example(example_name, project_name=f"Warm-up N{level} W{worker}")
        drive_to_completion(r, r.start(f"warmup-n{level}-w{worker}", {"requirements": warmup}))
        ready.put(worker)
        go.wait()
        for run in range(runs):
            own = project_of(level, worker, run)
            requirements = example(example_name, project_name=own["project_name"], seed=own["seed"])
            started = time.perf_counter()
            outcome = drive_to_completion(r, r.start(own["thread"], {"requirements": requirements}))
            results.put(
                {
                    "worker": worker,
                    "thread": own["thread"],
                    "latency_s": time.perf_counter() - started,
                    "status": outcome.status,
                }
            )
    except BaseException:  # noqa: BLE001 - reported to the parent, which fails the benchmark
        ready.put(worker)
        results.put({"worker": worker, "error": traceback.format_exc()})


# -- parent --------------------------------------------------------------------------------


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q% of values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def run_level(
    level: int, runs: int, dsn: str, root: Path, example_name: str, timeout: float
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(
            target=worker_main,
            args=(level, w, runs, dsn, str(root / f"n{level}-w{w}"), example_name)
            + (ready, go, results),
            daemon=True,
        )
        for w in range(level)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=timeout)
    started = time.perf_counter()
    go.set()
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(rows) < level * runs:
            row = results.get(timeout=max(1.0, deadline - time.monotonic()))
            if "error" in row:
                raise RuntimeError(f"worker {row['worker']} failed:\n{row['error']}")
            rows.append(row)
    finally:
        wall = time.perf_counter() - started
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    latencies = [r["latency_s"] for r in rows]
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return {
        "workers": level,
        "runs": len(rows),
        "wall_s": round(wall, 3),
        "runs_per_s": round(len(rows) / wall, 3),
        "latency_s": {
            "p50": round(percentile(latencies, 50), 3),
            "p95": round(percentile(latencies, 95), 3),
            "max": round(max(latencies), 3),
        },
        "statuses": statuses,
        "threads": sorted(r["thread"] for r in rows),
    }


def checkpoint_usage(conn: Any, threads: list[str]) -> dict[str, Any]:
    """Rows and stored bytes per run in each checkpoint table, for these threads."""
    rows, size = {}, {}
    for table in TABLES:
        count, stored = conn.execute(
            f"SELECT count(*), coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t "
            "WHERE thread_id = ANY(%s)",
            (threads,),
        ).fetchone()
        rows[table] = round(count / len(threads), 1)
        size[table] = round(stored / len(threads))
    rows["total"] = round(sum(rows[t] for t in TABLES), 1)
    size["total"] = sum(size[t] for t in TABLES)
    return {"checkpoint_rows_per_run": rows, "checkpoint_bytes_per_run": size}


def isolation_problems(dsn: str, level: int, runs: int, example_name: str) -> list[str]:
    """Read every thread of the level back; anything that belongs to another thread is a leak."""
    from mpm.graph.context import RunContext
    from mpm.graph.runner import Runner
    from tests.graph.helpers import example

    problems = []
    expected_other = {
        k: v for k, v in example(example_name).items() if k not in {"project_name", "seed"}
    }
    with tempfile.TemporaryDirectory() as tmp:
        reader = Runner(RunContext(workspace=tmp, tracking=False), dsn)
        for worker in range(level):
            for run in range(runs):
                own = project_of(level, worker, run)
                values = reader.snapshot(own["thread"]).values
                req = values.get("requirements") or {}
                where = own["thread"]
                if values.get("thread_id") != own["thread"]:
                    problems.append(f"{where}: thread_id {values.get('thread_id')!r}")
                if req.get("project_name") != own["project_name"]:
                    problems.append(f"{where}: project_name {req.get('project_name')!r}")
                if req.get("seed") != own["seed"]:
                    problems.append(f"{where}: seed {req.get('seed')!r}")
                if req.get("requested_by") != expected_other["requested_by"]:
                    problems.append(f"{where}: requested_by {req.get('requested_by')!r}")
                foreign = {e.get("thread_id") for e in values.get("audit") or []} - {where}
                if foreign:
                    problems.append(f"{where}: audit entries of {sorted(foreign)}")
                if not values.get("audit"):
                    problems.append(f"{where}: no approval decisions recorded")
                planned = {s["name"] for s in (values.get("plan") or {}).get("stages", [])}
                if not planned or set(values.get("results") or {}) != planned:
                    problems.append(f"{where}: results do not match its plan")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default=os.environ.get(DSN_ENV), help=f"env {DSN_ENV}")
    parser.add_argument("--workers", default="1,2,4,8", help="comma-separated worker counts")
    parser.add_argument("--runs-per-worker", type=int, default=3)
    parser.add_argument("--example", default="breast_cancer")
    parser.add_argument("--timeout", type=float, default=900.0, help="per worker count, seconds")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    if not args.dsn or not args.dsn.startswith(("postgresql://", "postgres://")):
        parser.error(
            f"--dsn or {DSN_ENV}: a postgresql:// DSN of a role with CREATEDB is required, "
            f'e.g. {DSN_ENV}="$(scripts/start_postgres.sh)"'
        )
    levels = [int(n) for n in args.workers.split(",") if n.strip()]

    import psycopg

    database = f"mpm_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    dsn = with_database(args.dsn, database)
    report: dict[str, Any] = {
        "benchmark": "concurrency",
        "example": args.example,
        "checkpointer": "postgresql " + dsn.split("@")[-1],
        "runs_per_worker": args.runs_per_worker,
        "model": "stub",
        "toolset": "noop",
        "tracking": False,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "levels": [],
    }
    try:
        from mpm.graph.checkpointing import open_checkpointer
        from mpm.graph.workspace import Workspace

        with tempfile.TemporaryDirectory(prefix="mpm-bench-") as tmp:
            root = Path(tmp)
            with open_checkpointer(dsn, Workspace.resolve(root / "setup")):
                pass  # tables created once, before any worker races for them
            for level in levels:
                result = run_level(
                    level, args.runs_per_worker, dsn, root, args.example, args.timeout
                )
                threads = result.pop("threads")
                with psycopg.connect(dsn) as conn:
                    result.update(checkpoint_usage(conn, threads))
                problems = isolation_problems(dsn, level, args.runs_per_worker, args.example)
                result["isolation"] = {"threads_checked": len(threads), "problems": problems}
                report["levels"].append(result)
                print(
                    f"N={level}: {result['runs_per_s']} runs/s, p50 {result['latency_s']['p50']}s",
                    file=sys.stderr,
                )
    finally:
        if not args.keep_database:
            with psycopg.connect(args.dsn, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    report["isolation_ok"] = all(not lv["isolation"]["problems"] for lv in report["levels"])
    print(json.dumps(report, indent=2))
    if not report["isolation_ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
