"""A run tracked on a real ``mlflow server`` whose backend store is PostgreSQL: the seed's
run hierarchy lands in the server's database and the artifacts go through the server's
artifact proxy into its ``--artifacts-destination``, none of it in the workspace."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mpm.tools.naming import experiment_name
from tests.graph.helpers import drive_to_completion, example, runner

pytestmark = pytest.mark.timeout(420)

STARTUP_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class MlflowServer:
    url: str
    database_url: str
    artifacts: Path
    log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _mlflow_cli() -> list[str]:
    """The ``mlflow`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("mlflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mlflow"]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (the CLI and its uvicorn), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, 20)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def mlflow_server(postgres_database: str, tmp_path: Path) -> Iterator[MlflowServer]:
    """``mlflow server`` on 127.0.0.1 and a free port, storing runs in a fresh PostgreSQL
    database (through psycopg 3, ``postgresql+psycopg://``) and artifacts under tmp_path."""
    port = _free_port()
    artifacts = tmp_path / "server-artifacts"
    log = tmp_path / "mlflow-server.log"
    backend = postgres_database.replace("postgresql://", "postgresql+psycopg://", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    # tracking only: no GenAI job runner (it would start eight more processes on 2 cores)
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *_mlflow_cli(),
                "server",
                "--backend-store-uri",
                backend,
                "--artifacts-destination",
                str(artifacts),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                # the test's client keeps connections open; do not wait for them at shutdown
                "--uvicorn-opts",
                "--timeout-graceful-shutdown 2",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: teardown stops uvicorn too
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while _get(f"{url}/health")[0] != 200:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow server not healthy after {STARTUP_TIMEOUT_S:g}s:\n{log.read_text()}"
                )
            time.sleep(0.5)
        # the first API request opens the store; make it here, under the startup deadline
        code, _ = _get(f"{url}/api/2.0/mlflow/experiments/get-by-name?experiment_name=warmup")
        assert code == 404, log.read_text()
        yield MlflowServer(url, postgres_database, artifacts, log)
    finally:
        _stop(proc)


def test_run_hierarchy_lands_on_the_mlflow_server_and_its_postgres_store(
    mlflow_server: MlflowServer, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    r = runner(workspace, tracking=True, toolset="noop")
    # a governed run: it stops for governance questions and approvals, which are given
    outcome = drive_to_completion(r, r.start("served", {"requirements": example("breast_cancer")}))
    assert outcome.status in {"completed", "partial"}
    ids = outcome.values["mlflow"]
    assert ids["tracking_uri"] == mlflow_server.url
    assert not (workspace / "mlflow.db").exists()  # nothing went to the local store
    results = outcome.values["results"]
    plan = [s["name"] for s in outcome.values["plan"]["stages"]]
    assert sorted(results) == sorted(plan)

    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url)
    experiment = client.get_experiment_by_name(experiment_name("Tumour Screening Triage"))
    assert experiment is not None and experiment.experiment_id == ids["experiment_id"]
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if r.info.run_name == "master_pipeline_orchestration"]
    assert parent.info.run_id == ids["parent_run_id"]
    assert parent.data.tags["orchestrator"] == "project_manager"
    assert parent.data.tags["mpm.thread_id"] == "served"
    assert parent.data.params["project_name"] == "Tumour Screening Triage"
    assert parent.data.params["pipeline_stages"] == str(len(plan))

    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    stages = [r for r in children if r.info.run_name.startswith("stage_")]
    assert sorted(r.info.run_name for r in stages) == sorted(f"stage_{n}" for n in results)
    for child in stages:
        name = child.data.tags["stage_name"]
        assert child.info.run_id == results[name]["mlflow_run_id"]
        assert child.data.tags["agent_type"] == results[name]["agent"]
        assert child.data.tags["mpm.thread_id"] == "served"
        assert child.info.status == "FINISHED"
        assert parent.data.tags[f"{name}_status"] == results[name]["status"]
        assert f"{name}_duration" in parent.data.metrics
    (governance,) = [r for r in children if r.info.run_name == "governance_orchestration"]
    assert (
        governance.data.tags["governance_status"] == outcome.values["governance"]["overall_status"]
    )
    assert len(runs) == 1 + len(stages) + 1  # no stray or duplicated runs
    assert parent.info.status == "FINISHED"

    # the server really stores them in PostgreSQL
    import psycopg

    with psycopg.connect(mlflow_server.database_url) as conn:
        stored = conn.execute(
            "SELECT run_uuid, name FROM runs WHERE experiment_id = %s",
            (int(experiment.experiment_id),),
        ).fetchall()
    assert sorted(stored) == sorted((r.info.run_id, r.info.run_name) for r in runs)

    # artifacts went through the server's proxy into its --artifacts-destination
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:"), parent.info.artifact_uri
    logged = {f.path for f in client.list_artifacts(parent.info.run_id)}
    assert "execution_plan.json" in logged
    on_server = [
        p
        for p in mlflow_server.artifacts.rglob("execution_plan.json")
        if parent.info.run_id in p.parts
    ]
    assert len(on_server) == 1
    assert not (workspace / "mlartifacts").exists()
