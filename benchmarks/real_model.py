"""Benchmark: the whole governed run of ``reference/examples/breast_cancer.yaml`` driven by
the pinned local model (``--model local``), approvals and open questions played openly by
the test helper (eligible approvers, valid answers), real tools and MLflow tracking.

    python benchmarks/real_model.py                 # fetch (or reuse) the model, serve, run
    python benchmarks/real_model.py --threads 1 --keep-server

It fetches and verifies the weights (reusing the cache, ``MPM_MODEL_CACHE``), attaches to
a running local server or starts one (and stops it afterwards unless ``--keep-server``),
and prints one JSON document: ``model``, per stage ``{status, model_calls, input_tokens,
output_tokens, seconds, finished_by}``, the totals (``model_calls`` and ``input_tokens``
include the supervisor's routing calls, as the provider reported them) and ``wall_s``.
Exit status 1 when a stage did not succeed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def run(workdir: Path, thread: str = "real-model") -> dict[str, Any]:
    """One governed run on the local model; returns the final snapshot's values."""
    from mpm.graph.context import RunContext
    from mpm.graph.runner import Runner
    from tests.graph.helpers import drive_to_completion, example, reference_signers

    # the approvers the helper plays sign with real keys, bound in a fresh identity
    # directory for this run (as the test suite's session fixture does)
    identity, _ = reference_signers(workdir)
    ctx = RunContext(
        workspace=str(workdir / "ws"),
        model="local",
        toolset="real",
        tracking=True,
        identity=str(identity),
    )
    runner = Runner(ctx, "sqlite")
    outcome = runner.start(thread, {"requirements": example("breast_cancer")})
    return drive_to_completion(runner, outcome, max_rounds=200).values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default 1)")
    parser.add_argument("--keep-server", action="store_true", help="leave the server running")
    parser.add_argument("--workspace", type=Path, default=None, help="default: a temp dir")
    args = parser.parse_args()

    from mpm.graph import local_model as lm
    from mpm.graph.llm import MODEL_USAGE, model_max_tokens, model_timeout_s

    t0 = time.perf_counter()
    lm.ensure_runtime()
    weights = lm.fetch(progress=lambda msg: print(msg, file=sys.stderr))
    fetch_s = time.perf_counter() - t0
    already = lm.running_server() is not None
    t1 = time.perf_counter()
    base_url = lm.ensure_server(options=lm.ServeOptions(threads=args.threads))
    serve_s = time.perf_counter() - t1
    try:
        with tempfile.TemporaryDirectory(prefix="mpm-real-model-") as tmp:
            workdir = args.workspace or Path(tmp)
            MODEL_USAGE.reset()
            started = time.perf_counter()
            values = run(workdir)
            wall = time.perf_counter() - started
            usage = MODEL_USAGE.snapshot()
    finally:
        if not already and not args.keep_server:
            lm.stop_server()
    results = values.get("results") or {}
    stages = {
        name: {
            "status": r.get("status"),
            "model_calls": r.get("model_calls", 0),
            "input_tokens": r.get("input_tokens", 0),
            "output_tokens": r.get("output_tokens", 0),
            "seconds": r.get("duration_s"),
            "tool_calls": r.get("tool_calls"),
            "error": r.get("error"),
        }
        for name, r in results.items()
    }
    report = {
        "model": lm.PINNED.label,
        "weights": {"path": str(weights), "sha256": lm.PINNED.sha256},
        "runtime": lm.RUNTIME,
        "server": {"base_url": base_url, "threads": args.threads, "attached": already},
        "limits": {"max_tokens": model_max_tokens(), "timeout_s": model_timeout_s()},
        "status": values.get("status"),
        "stages": stages,
        "model_calls": usage["calls"],
        "input_tokens": usage["input_tokens"],
        "output_tokens": usage["output_tokens"],
        "wall_s": round(wall, 1),
        "fetch_s": round(fetch_s, 1),
        "server_start_s": round(serve_s, 1),
        "registered_model": ((values.get("deliverables") or {}).get("registered_model") or {}).get(
            "model_uri"
        ),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
    }
    print(json.dumps(report, indent=2))
    return 0 if stages and all(s["status"] == "success" for s in stages.values()) else 1


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
