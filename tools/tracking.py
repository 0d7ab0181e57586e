"""Idempotent MLflow helpers shared by the graph and the tools.

Everything goes through ``MlflowClient`` with explicit run ids, never the fluent
``mlflow.start_run`` stack: graph nodes run in worker threads and may be re-run after a
crash, so a run is always *found or created* by a stable key tag (``mpm.key``) and
never created twice for the same key.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mpm.tools.inert import tracked_text
from mpm.tools.killpoints import maybe_die

if TYPE_CHECKING:  # mlflow is heavy: import it only where a run is actually touched
    from mlflow import MlflowClient

KEY_TAG = "mpm.key"
THREAD_TAG = "mpm.thread_id"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"


def tracking_uri_for(workspace: Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the workspace's own SQLite store."""
    return (
        os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{Path(workspace).resolve() / 'mlflow.db'}"
    )


def client(tracking_uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def is_tracking_server(tracking_uri: str) -> bool:
    """Whether ``tracking_uri`` names an MLflow tracking server rather than a store this
    process writes itself (SQLite file, database URL, ``file:`` directory)."""
    scheme = urlsplit(tracking_uri).scheme.lower()
    return scheme in {"http", "https"} or scheme.startswith("databricks")


def ensure_experiment(c: MlflowClient, name: str, artifact_root: Path | None = None) -> str:
    """Experiment id for ``name``, creating it (with artifacts under ``artifact_root``) once.

    ``artifact_root`` applies to local stores only: a tracking server keeps artifacts where
    it was told to (``--artifacts-destination``, served through ``mlflow-artifacts:/``), and
    a path on this machine would be unreachable for every other client of the server."""
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    location = None
    if artifact_root is not None and not is_tracking_server(c.tracking_uri):
        location = (Path(artifact_root).resolve() / name).as_uri()
    try:
        return c.create_experiment(name, artifact_location=location)
    except Exception:  # another worker created it between our get and create
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def find_or_create_run(
    c: MlflowClient,
    experiment_id: str,
    key: str,
    run_name: str,
    *,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """The run tagged ``mpm.key = key`` in the experiment, or a new one. Re-opens it if closed."""
    from mlflow.entities import RunStatus

    escaped = key.replace("'", "\\'")
    found = c.search_runs(
        [experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{escaped}'", max_results=5
    )
    if found:
        run = sorted(found, key=lambda r: r.info.start_time or 0)[0]
        if run.info.status != "RUNNING":
            c.update_run(run.info.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            maybe_die("mlflow.write")
        return run.info.run_id
    all_tags = {KEY_TAG: key, RUN_NAME_TAG: run_name, **(tags or {})}
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    run = c.create_run(experiment_id, run_name=run_name, tags=all_tags)
    maybe_die("mlflow.write")
    return run.info.run_id


def finish_run(c: MlflowClient, run_id: str, status: str = "FINISHED") -> None:
    c.set_terminated(run_id, status=status)
    maybe_die("mlflow.write")


def log_dict(c: MlflowClient, run_id: str, data: Any, artifact_file: str) -> None:
    """Write ``data`` as JSON to ``artifact_file`` in the run (overwrites on re-run)."""
    c.log_text(run_id, json.dumps(data, indent=2, default=str, sort_keys=True), artifact_file)
    maybe_die("mlflow.write")


def log_metrics(c: MlflowClient, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    import time

    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    batch = [Metric(k, float(v), ts, step) for k, v in metrics.items() if v is not None]
    if batch:
        c.log_batch(run_id, metrics=batch)
        maybe_die("mlflow.write")


def log_params(c: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    """Params are immutable in MLflow: on a re-run, an identical value is fine, a new one is skipped."""
    from mlflow.entities import Param

    existing = c.get_run(run_id).data.params
    batch = [
        Param(k, tracked_text(v)[:6000])
        for k, v in params.items()
        if k not in existing and v is not None
    ]
    if batch:
        c.log_batch(run_id, params=batch)
        maybe_die("mlflow.write")


def set_tags(c: MlflowClient, run_id: str, tags: Mapping[str, Any]) -> None:
    from mlflow.entities import RunTag

    # values often come from input (names, errors, comments): inert where the UI shows them
    batch = [RunTag(k, tracked_text(v)[:8000]) for k, v in tags.items() if v is not None]
    if batch:
        c.log_batch(run_id, tags=batch)
        maybe_die("mlflow.write")


@contextmanager
def use_tracking_uri(tracking_uri: str | None) -> Iterator[None]:
    """Point MLflow's process-global (fluent) APIs at ``tracking_uri`` for a block, then put
    back what was there. ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI``
    into the environment, which would otherwise leak into later runs and child processes."""
    import mlflow
    from mlflow.tracking import _tracking_service

    if not tracking_uri:
        yield
        return
    saved_env = os.environ.get("MLFLOW_TRACKING_URI")
    saved_uri = _tracking_service.utils._tracking_uri
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        _tracking_service.utils._tracking_uri = saved_uri
        if saved_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env


@contextmanager
def active_run(tracking_uri: str, run_id: str) -> Iterator[None]:
    """Make ``run_id`` the fluent active run in *this thread* for APIs that need one
    (``mlflow.pyfunc.log_model``), without ending it afterwards."""
    import mlflow

    with use_tracking_uri(tracking_uri):
        with mlflow.start_run(
            run_id=run_id, nested=mlflow.active_run() is not None, log_system_metrics=False
        ):
            yield
        # start_run(run_id=...) ends the run on exit; put it back to RUNNING for the caller.
        client(tracking_uri).update_run(run_id, status="RUNNING")


def log_file(c: MlflowClient, run_id: str, path: Path, artifact_path: str | None = None) -> None:
    c.log_artifact(run_id, str(path), artifact_path)
    maybe_die("mlflow.write")


def log_text(c: MlflowClient, run_id: str, text: str, artifact_file: str) -> None:
    c.log_text(run_id, text, artifact_file)
    maybe_die("mlflow.write")


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="mpm-"))
