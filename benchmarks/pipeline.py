"""Benchmark: the tool functions end to end on a synthetic data set, at several sizes.

acquire -> profile + quality checks -> split -> EDA -> train candidates -> validate ->
build (log + register) the pyfunc pipeline model -> generate + run the test suite,
tracked in a throw-away SQLite MLflow store. Each size runs in its own child process so
the peak-memory figure (``ru_maxrss``) belongs to that size alone.

    python benchmarks/pipeline.py                      # 5k and 50k rows of synthetic:credit
    python benchmarks/pipeline.py --rows 5000 --rows 20000 --schema churn --tracemalloc

Prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SENSITIVE = ["gender", "age_band"]


def run_once(rows: int, schema: str, seed: int, workdir: Path, trace: bool) -> dict[str, Any]:
    """One full pass; returns seconds per stage, peak memory and the headline numbers."""
    if trace:
        tracemalloc.start()
    stages: dict[str, float] = {}
    started = time.perf_counter()

    def timed(name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        stages[name] = round(time.perf_counter() - t0, 3)
        return out

    def setup() -> tuple[str, str, str]:
        import mlflow  # noqa: F401  (the import is part of the measured cost)
        import pandas  # noqa: F401
        import sklearn  # noqa: F401

        from mpm.tools import tracking

        uri = f"sqlite:///{workdir / 'mlflow.db'}"
        c = tracking.client(uri)
        exp = tracking.ensure_experiment(c, f"bench_{schema}_{rows}", workdir / "artifacts")
        parent = tracking.find_or_create_run(c, exp, "bench", "pipeline")
        return uri, exp, parent

    uri, exp, parent = timed("setup_imports_and_mlflow_store", setup)
    from mpm.tools import tracking
    from mpm.tools.data_quality import profile_dataset, quality_checks
    from mpm.tools.datasets import acquire_dataset, split_dataset
    from mpm.tools.eda import run_eda
    from mpm.tools.evaluation import validate_model
    from mpm.tools.pipeline_model import build_pipeline_model
    from mpm.tools.tests_generation import generate_test_suite, run_test_suite
    from mpm.tools.training import train_candidates

    c = tracking.client(uri)

    def stage_run(name: str) -> str:
        return tracking.find_or_create_run(c, exp, f"bench/{name}", name, parent_run_id=parent)

    data = workdir / "data"
    raw = timed("acquire", acquire_dataset, f"synthetic:{schema}", str(data), rows=rows, seed=seed)
    target = raw["target_column"]

    def profile_and_check():
        profile = profile_dataset(raw["path"], target, "classification", out_dir=str(data))
        return profile, quality_checks(profile, "classification")

    profile, quality = timed("profile_and_quality", profile_and_check)
    split = timed(
        "split",
        split_dataset,
        raw["path"],
        target,
        str(data),
        seed=seed,
        model_type="classification",
    )
    eda = timed(
        "eda",
        run_eda,
        split["train_path"],
        target,
        str(workdir / "eda"),
        model_type="classification",
        sensitive_attributes=SENSITIVE,
        tracking_uri=uri,
        run_id=stage_run("eda"),
    )
    trained = timed(
        "train_candidates",
        train_candidates,
        split["train_path"],
        split["val_path"],
        target,
        str(workdir / "train"),
        model_type="classification",
        target_metric="roc_auc",
        recommendations=eda["recommendations"],
        seed=seed,
        tracking_uri=uri,
        run_id=stage_run("training"),
    )
    validation = timed(
        "validate",
        validate_model,
        trained["model_path"],
        split["test_path"],
        target,
        str(workdir / "validation"),
        model_type="classification",
        target_metric="roc_auc",
        success_threshold=0.75,
        sensitive_attributes=SENSITIVE,
        seed=seed,
        tracking_uri=uri,
        run_id=stage_run("validation"),
    )
    model = timed(
        "build_pipeline_model",
        build_pipeline_model,
        trained["model_path"],
        split["train_path"],
        split["test_path"],
        target,
        str(workdir / "registration"),
        model_type="classification",
        registered_model_name=f"bench_{schema}_{rows}",
        tracking_uri=uri,
        run_id=stage_run("registration"),
        validation=validation,
    )
    requirements = {
        "target_metric": "roc_auc",
        "success_threshold": 0.75,
        "sensitive_attributes": SENSITIVE,
    }

    def suite():
        generated = generate_test_suite(split["train_path"], model, validation, requirements)
        return run_test_suite(generated, model["model_uri"], split["test_path"], tracking_uri=uri)

    suite_result = timed("test_suite", suite)
    total = round(time.perf_counter() - started, 3)
    out: dict[str, Any] = {
        "rows": rows,
        "schema": schema,
        "stages_s": stages,
        "total_s": total,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "data_quality_score": quality["data_quality_score"],
        "best_model": trained["best_model_name"],
        "val_roc_auc": round(trained["best_model_score"], 4),
        "test_roc_auc": round(validation["test_score"], 4),
        "demographic_parity_difference": round(
            validation["metrics"].get("demographic_parity_difference", float("nan")), 4
        ),
        "suite_passed": f"{suite_result['passed']}/{suite_result['total']}",
    }
    if trace:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["tracemalloc_peak_mb"] = round(peak / 2**20, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        type=int,
        action="append",
        help="data set size; repeat for several (default 5000 and 50000)",
    )
    parser.add_argument("--schema", default="credit", choices=["credit", "churn", "fraud"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also report Python-heap peak (slows the run)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = args.rows or [5000, 50000]

    if args.child:
        with tempfile.TemporaryDirectory(prefix="mpm-bench-") as tmp:
            print(
                json.dumps(run_once(sizes[0], args.schema, args.seed, Path(tmp), args.tracemalloc))
            )
        return 0

    results = []
    for rows in sizes:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            "--rows",
            str(rows),
            "--schema",
            args.schema,
            "--seed",
            str(args.seed),
        ]
        if args.tracemalloc:
            cmd.append("--tracemalloc")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    import mlflow
    import sklearn

    print(
        json.dumps(
            {
                "benchmark": "tools_pipeline",
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "scikit_learn": sklearn.__version__,
                    "mlflow": mlflow.__version__,
                },
                "results": results,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
