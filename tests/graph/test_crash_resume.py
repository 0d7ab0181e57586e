"""A run SIGKILLed in the middle of a stage resumes to the same result as a run that was
never interrupted, and MLflow ends with one run per stage and nothing left RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mpm.tools.naming import experiment_name
from tests.graph.helpers import REPO, drive_to_completion, example, mpm, runner


def _kill_at(point: str, args: list[str]) -> str:
    """Run ``mpm ARGS`` until it SIGKILLs itself at the kill point ``point`` (``MPM_KILL_AT``,
    ``tools/killpoints.py``): the moment is exact, not a guess after a sleep."""
    proc = subprocess.run(
        [sys.executable, "-m", "mpm", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200", "MPM_KILL_AT": point},
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def _facts(values: dict[str, Any]) -> dict[str, Any]:
    results = values["results"]
    dev = results["model_development"]["outputs"]
    return {
        "statuses": {k: v["status"] for k, v in results.items()},
        "best_model": (dev["best_model_name"], round(dev["best_model_score"], 10)),
        "candidates": sorted((c["name"], round(c["val_score"], 10)) for c in dev["candidates"]),
        "test_score": round(results["model_validation"]["outputs"]["test_score"], 10),
        "registered": results["mlops"]["outputs"]["registered_model_name"],
        "pipeline_status": values["deliverables"]["pipeline_status"],
        "approvals": sorted(values["approvals"]),
    }


def _mlflow_runs(workspace: Path) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment_name("Tumour Screening Triage"))
    return client.search_runs([exp.experiment_id], max_results=1000)


def test_sigkill_mid_stage_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    req = tmp_path / "req.yaml"
    req.write_text(yaml.safe_dump(example("breast_cancer")))

    clean_ws = tmp_path / "clean"
    r = runner(clean_ws, toolset="real", tracking=True)
    clean = drive_to_completion(r, r.start("same", {"requirements": example("breast_cancer")}))

    crash_ws = tmp_path / "crash"
    # the process dies right after model development's first tool (training) returned:
    # its nested candidate runs exist, the stage has not finished. The visit is counted
    # from the clean run: every tool call of the stages before it comes first.
    before = ["business_analysis", "data_acquisition", "exploratory_analysis"]
    visit = sum(len(clean.values["results"][s]["tool_calls"]) for s in before) + 1
    assert clean.values["results"]["model_development"]["tool_calls"][0] == "train_candidates"
    out = _kill_at(
        f"tool.after:{visit}",
        ["kickoff", "-r", str(req), "-w", str(crash_ws), "--thread", "same"],
    )
    assert "· train_candidates" in out
    cut = runner(crash_ws).snapshot("same")
    assert cut.status == "running" and "model_development" not in cut.values.get("results", {})

    resumed = mpm("resume", "same", "-w", str(crash_ws))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    r2 = runner(crash_ws, toolset="real", tracking=True)
    final = drive_to_completion(r2, r2.snapshot("same"))
    assert _facts(final.values) == _facts(clean.values)

    runs = _mlflow_runs(crash_ws)
    names = [x.info.run_name for x in runs]
    assert names.count("master_pipeline_orchestration") == 1
    for stage in final.values["plan"]["stages"]:
        assert names.count(f"stage_{stage['name']}") == 1, (
            f"stage_{stage['name']} duplicated or missing"
        )
    assert not [x.info.run_name for x in runs if x.info.status == "RUNNING"], (
        "a run was left RUNNING"
    )
    # the candidates' nested runs were reused on resume, not duplicated
    clean_names = sorted(x.info.run_name for x in _mlflow_runs(clean_ws))
    assert sorted(names) == clean_names

    import sqlite3

    with sqlite3.connect(crash_ws / "checkpoints.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
