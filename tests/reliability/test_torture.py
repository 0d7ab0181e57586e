"""Kill anywhere, resume: nothing is lost, nothing is duplicated.

A governed project (breast cancer, real tools, stub model) is driven through the CLI as
people would drive it: ``mpm kickoff``, ``mpm answer``, ``mpm approve`` -- one process per
command. First an uninterrupted drive records where every kill point is visited
(``MPM_KILL_TRACE``). Then seeded random kills are chosen among those real visits: inside
the kickoff, the plan, the supervisor, a sub-agent's tool calls, every MLflow write,
governance evaluation, an approval being asked or decided, answers being recorded and
synthesis; the process SIGKILLs itself there (``MPM_KILL_AT``) -- or sends itself SIGINT
(Ctrl-C) or SIGTERM, which mpm handles as a stop (``graph/stopping.py``) --, ``mpm resume``
continues, and sometimes the resume is killed again. Every killed run must end exactly as the
uninterrupted one: the same stage statuses, model, scores, registered model (one version),
approvals and deliverables; the same MLflow runs, one each, none left RUNNING; intact
SQLite files.

A *trial* is one kill and the resume after it; one run chains several trials. The default
run covers every kill point once with each signal; ``MPM_TORTURE_TRIALS=30`` runs the full
set per signal (any count), ``MPM_TORTURE_SEED`` picks another seeded set.
"""

from __future__ import annotations

import math
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from mpm.graph import audit
from mpm.tools.killpoints import POINTS
from tests.graph.helpers import example, runner
from tests.reliability.conftest import seed_workspace
from tests.reliability.driver import (
    Drive,
    KillPlan,
    drive,
    facts,
    integrity,
    logged_models,
    mlflow_runs,
    model_versions,
    plan_kills,
    read_trace,
    unfinished_traces,
    workspace_files,
)

SEED = int(os.environ.get("MPM_TORTURE_SEED", "20261125"))
TRIALS = int(os.environ["MPM_TORTURE_TRIALS"]) if os.environ.get("MPM_TORTURE_TRIALS") else None
KILLS_PER_RUN = 8  # 15 points in two runs: two workers, one round
# The full set runs as people do, MLflow tracing on; the default subset turns tracing off:
# it costs seconds per process and is observability, not state (tests/graph/test_tracing.py).
ENV = {} if TRIALS else {"MPM_TRACING": "0"}
WORKERS = 2  # runs are independent (own workspace): two at a time on two cores
THREAD = "torture"


def _requirements(path: Path) -> Path:
    """The low-risk example, minus one answer the owner then gives through ``mpm answer``
    (so answers being recorded are killed too)."""
    req = example("breast_cancer")
    del req["governance_answers"]["nist_rmf"]["next-review-date"]
    path.write_text(yaml.safe_dump(req, sort_keys=False))
    return path


def _left(workspace: Path) -> dict[str, Any]:
    """Everything a finished run left that a crash could have duplicated or lost."""
    values = runner(workspace).snapshot(THREAD).values
    return {
        "facts": facts(values),
        "mlflow_runs": mlflow_runs(workspace),
        "model_versions": model_versions(workspace),
        "logged_models": logged_models(workspace),
        "unfinished_traces": unfinished_traces(workspace),
        "files": workspace_files(workspace, THREAD),
        "audit_intact": audit.verify(values["audit"])[0],
        "checkpoints_db": integrity(workspace / "checkpoints.db"),
        "mlflow_db": integrity(workspace / "mlflow.db"),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("torture")
    requirements = _requirements(base / "requirements.yaml")
    trace_dir = base / "trace"
    trace_dir.mkdir()
    clean_ws = seed_workspace(base / "clean", mlflow_template)
    clean = drive(clean_ws, THREAD, requirements, trace_dir=trace_dir, env=ENV, in_process=True)
    assert not clean.kills
    return {
        "requirements": requirements,
        "trace": read_trace(trace_dir),
        "left": _left(base / "clean"),
        "phases": clean.phases,
    }


def _plans(trace: dict[str, list[str]]) -> list[KillPlan]:
    """Seeded kill plans: every point once by default, ``MPM_TORTURE_TRIALS`` kills if set."""
    visited = sorted({p for points in trace.values() for p in points})
    total = TRIALS or len(visited)
    runs = math.ceil(total / KILLS_PER_RUN)
    uncovered = visited[:]
    random.Random(SEED).shuffle(uncovered)
    plans = []
    for i in range(runs):
        count = total // runs + (1 if i < total % runs else 0)
        plan = plan_kills(trace, random.Random(f"{SEED}:{i}"), count, uncovered)
        chosen = {spec.split(":")[0] for specs in plan.values() for spec in specs}
        uncovered = [p for p in uncovered if p not in chosen]
        plans.append(plan)
    assert not uncovered, f"kill points no plan reached: {uncovered}"
    return plans


def test_kill_points_are_visited_in_every_kind_of_node(reference: dict[str, Any]) -> None:
    trace = reference["trace"]
    assert reference["phases"][0] == "kickoff"
    assert any(p.startswith("answer") for p in reference["phases"])
    assert sum(p.startswith("approve") for p in reference["phases"]) >= 3
    visited = {p for points in trace.values() for p in points}
    assert visited == set(POINTS), f"never visited: {set(POINTS) - visited}"
    # the approval being asked and decided happen in the approvers' processes
    assert any("approval.decided" in trace[p] for p in trace if p.startswith("approve"))


@pytest.mark.timeout(1800)  # two drives of ~15 processes each; a shared machine is slow
@pytest.mark.parametrize("signal_name", ["KILL", "INT", "TERM"])
def test_runs_killed_anywhere_end_exactly_like_the_uninterrupted_run(
    reference: dict[str, Any], tmp_path: Path, mlflow_template: Path, signal_name: str
) -> None:
    """SIGKILL, SIGINT or SIGTERM at every kill point, then resume: the same result."""
    plans = _plans(reference["trace"])

    def trial_run(i_plan: tuple[int, KillPlan]) -> tuple[KillPlan, Drive]:
        i, plan = i_plan
        workspace = seed_workspace(tmp_path / f"run{i}", mlflow_template)
        return plan, drive(
            workspace,
            THREAD,
            reference["requirements"],
            kills=plan,
            env=ENV,
            in_process=True,
            signal_name=signal_name,
        )

    with ThreadPoolExecutor(WORKERS) as pool:
        done = list(pool.map(trial_run, enumerate(plans)))

    killed_points: set[str] = set()
    trials = 0
    for plan, result in done:
        planned = [spec for specs in plan.values() for spec in specs]
        fired = [c.kill_at for c in result.kills]
        assert sorted(fired) == sorted(planned), (plan, fired)
        trials += len(fired)
        killed_points |= {spec.split(":")[0] for spec in fired}
        resumes = [c for c in result.commands if c.args[0] == "resume"]
        assert len(resumes) >= len(fired)
        assert all(c.returncode in (0, 1) for c in resumes if not c.killed)
        assert all("Traceback" not in c.stdout + c.stderr for c in result.commands)
        left = _left(result.workspace)
        assert left == reference["left"], f"kills {plan} changed the outcome"
    assert trials == (TRIALS or len(POINTS))
    if trials >= len(POINTS):
        assert killed_points == set(POINTS)


def test_reference_run_left_one_run_per_stage_and_nothing_running(
    reference: dict[str, Any],
) -> None:
    """What the killed runs are compared with is itself right: the seed's MLflow hierarchy,
    one run each, all closed; one registered version; intact stores."""
    left = reference["left"]
    names = [name for name, _ in left["mlflow_runs"]]
    assert names.count("master_pipeline_orchestration") == 1
    assert names.count("governance_orchestration") == 1
    for stage in left["facts"]["statuses"]:
        assert names.count(f"stage_{stage}") == 1
    assert not [n for n, status in left["mlflow_runs"] if status == "RUNNING"]
    assert left["model_versions"] == [(left["facts"]["registered"], 1)]
    assert len(left["logged_models"]) == 1 and left["unfinished_traces"] == 0
    assert left["checkpoints_db"] == "ok" and left["mlflow_db"] == "ok"
    assert left["facts"]["status"] == "completed" and left["audit_intact"]
