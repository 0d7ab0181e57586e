"""Drive a governed run through the CLI, one process per command, as people would: kickoff,
then ``mpm answer`` / ``mpm approve`` for whatever the run waits for, and ``mpm resume``
after every crash. Commands can be told to SIGKILL themselves at kill points
(``MPM_KILL_AT``, see ``tools/killpoints.py``); an uninterrupted drive can record where
every kill point is (``MPM_KILL_TRACE``) so kills are then chosen among real points.

Then read back what a finished run left: the deliverables that no crash may change and
the MLflow store (straight from its SQLite file, so the test never keeps a store open
that other processes write)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mpm.graph import audit
from mpm.graph.runner import Runner
from mpm.tools import killpoints
from tests.conftest import MPM_ENV_VARS
from tests.graph.helpers import REPO, approver_for, auto_answer, decision, key_for, runner

OUTSIDER = "intruder-42"

KILLED = -signal.SIGKILL
STOPPED = {"KILL": KILLED, "INT": 128 + signal.SIGINT, "TERM": 128 + signal.SIGTERM}
"""How a command ends when its kill point sends each ``MPM_KILL_SIGNAL``: SIGKILL kills it;
SIGINT and SIGTERM are handled as a stop, which exits with 128 + the signal number."""
BOUNDARIES = frozenset({"kickoff", "plan", "supervisor", "governance"})
"""Kill points in nodes that run alone in their super-step: a point visited after one of
them (in the same process) belongs to a later super-step than anything visited before it."""

Trace = dict[str, list[str]]
"""Phase -> the kill points its process visited, in order."""
KillPlan = dict[str, list[str]]
"""Phase -> ``MPM_KILL_AT`` values for its successive processes (the command, then the
resumes or re-issues that continue it)."""


@dataclass
class Command:
    phase: str
    """What the command is for: ``kickoff``, ``approve <id>``, ``answer <n>``; a resume
    belongs to the phase it continues."""
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    kill_at: str | None = None
    signal: str = "KILL"

    @property
    def killed(self) -> bool:
        """Ended by its kill point (killed, or stopped by the signal it sent itself)."""
        return self.returncode == STOPPED[self.signal]


@dataclass
class Drive:
    workspace: Path
    thread: str
    commands: list[Command] = field(default_factory=list)

    @property
    def kills(self) -> list[Command]:
        return [c for c in self.commands if c.killed]

    @property
    def phases(self) -> list[str]:
        return list(dict.fromkeys(c.phase for c in self.commands))


_SCRUBBED = MPM_ENV_VARS


def run_mpm(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``mpm ARGS`` in a fresh process whose environment says only what ``env`` says (never
    a tracking URI another thread of this test process set for a moment)."""
    base = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    base |= {
        "COLUMNS": "200",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
        "GIT_PYTHON_REFRESH": "quiet",
    }
    return subprocess.run(
        [sys.executable, "-m", "mpm", *args],
        capture_output=True,
        text=True,
        env=base | (env or {}),
        timeout=timeout,
        cwd=REPO,
    )


@dataclass
class Step:
    """What a person does next: as CLI arguments, and as the same call on a Runner."""

    phase: str
    args: list[str]
    call: Callable[[Runner], Any]


_IN_PROCESS = threading.Lock()
"""Steps run in this process one at a time: MLflow's fluent API has process-global state."""


def first_step(workspace: Path, thread: str, requirements: Path) -> Step:
    from mpm.graph.requirements_file import load_requirements

    args = ["kickoff", "-r", str(requirements), "-w", str(workspace), "--thread", thread]
    data = load_requirements(requirements).model_dump(mode="json")
    return Step("kickoff", args, lambda r: r.start(thread, {"requirements": data}))


def next_step(workspace: Path, thread: str, scratch: Path) -> Step | None:
    """What a person would do next for this settled thread; None once it has ended."""
    snap = runner(workspace).snapshot(thread)
    ws = ["-w", str(workspace)]
    assert snap.status != "running", "next_step is asked only about settled threads"
    if not snap.interrupts:
        return None
    value = snap.interrupts[0]["value"]
    if value["type"] == "open_questions":
        answered = sum(1 for e in snap.values["events"] if e["event"] == "questions_answered")
        answers = {q["key"]: auto_answer(q) for q in value["questions"]}
        path = scratch / f"answers-{answered}.yaml"
        path.write_text(yaml.safe_dump(answers))
        return Step(
            f"answer {answered}",
            ["answer", thread, "--wait", *ws, "--file", str(path)],
            lambda r: r.answer(thread, "open_questions", answers),
        )
    if value["type"] == "approval":
        who = approver_for(value, snap.values["requirements"].get("requested_by"))
        approval = value["approval_id"]
        trail = audit.read_trail(workspace / "runs" / thread / audit.TRAIL_FILE)
        if not any(not e["accepted"] for e in trail):
            # one outsider attempt per run (a real key, in no group): it must be refused,
            # recorded once, and killed while it is, like everything else
            key_for(OUTSIDER)
            return Step(
                f"refuse {approval}",
                ["approve", thread, approval, "--as", OUTSIDER, "-c", "let me in", *ws],
                lambda r: _outsider_attempt(r, thread, value, approval),
            )
        return Step(
            f"approve {approval}",
            ["approve", thread, approval, "--as", who, "-c", "ok", "--wait", *ws],
            lambda r: r.answer(
                thread,
                "approval",
                {**decision(value, who), "thread_id": thread},
                key=approval,
                precheck=True,  # as `mpm approve` does: in process, the same kill points
            ),
        )
    raise AssertionError(f"unexpected interrupt {value}")


def _outsider_attempt(r: Runner, thread: str, value: dict[str, Any], approval: str) -> None:
    """The outsider's decision in process, as ``mpm approve`` makes it: judged by the node's
    code before the graph is resumed, recorded, refused (the CLI exits 2 there)."""
    from mpm.graph.runner import DecisionRefused

    try:
        r.answer(thread, "approval", decision(value, OUTSIDER), key=approval, precheck=True)
    except DecisionRefused:
        return
    raise AssertionError(f"{OUTSIDER}'s decision on {approval} was not refused")


def drive(
    workspace: Path,
    thread: str,
    requirements: Path,
    *,
    kills: KillPlan | None = None,
    trace_dir: Path | None = None,
    env: dict[str, str] | None = None,
    in_process: bool = False,
    max_commands: int = 80,
    signal_name: str = "KILL",
) -> Drive:
    """Run the thread to its end, SIGKILLing the commands ``kills`` names (or sending
    them ``signal_name``: ``INT`` as Ctrl-C does, ``TERM`` as a service manager does).

    After a kill, ``mpm resume`` continues the phase (and takes the phase's next kill, if
    the thread has steps left to run); when the kill lost a decision or answers that were
    being recorded, the person issues the same command again (same phase). With
    ``in_process``, steps no kill concerns run on a Runner in this process (the same graph,
    without a process start per step); killed ones and their resumes are always processes."""
    scratch = workspace.parent / f"{workspace.name}-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    plan = {phase: list(specs) for phase, specs in (kills or {}).items()}
    result = Drive(workspace, thread)
    step: Step | None = first_step(workspace, thread, requirements)
    resuming = False
    for index in range(max_commands):
        assert step is not None
        phase = step.phase
        args = ["resume", thread, "-w", str(workspace)] if resuming else step.args
        kill_at = plan[phase][0] if plan.get(phase) else None
        if in_process and not kill_at and not resuming:
            with _IN_PROCESS, _traced(trace_dir, index, phase):
                step.call(_runner(workspace, env or {}))
            result.commands.append(Command(phase, ["(in process)", *args], 0, "", ""))
        else:
            run_env = dict(env or {})
            if kill_at:
                run_env["MPM_KILL_AT"] = kill_at
                run_env["MPM_KILL_SIGNAL"] = signal_name
            if trace_dir is not None:
                run_env["MPM_KILL_TRACE"] = str(trace_dir / f"{index:03d}.trace")
                (trace_dir / f"{index:03d}.phase").write_text(phase)
            proc = run_mpm(args, run_env)
            command = Command(
                phase, args, proc.returncode, proc.stdout, proc.stderr, kill_at, signal_name
            )
            result.commands.append(command)
            output = proc.stdout + proc.stderr
            assert "Traceback" not in output, output
            if command.killed:
                assert kill_at, f"{args} was killed without being asked to:\n{output}"
                if signal_name != "KILL":  # a stop says what it stops, naming the thread
                    assert f"SIG{signal_name}: stopping thread {thread}" in proc.stderr, output
                plan[phase].pop(0)
                # a kill ends a process, never a run: resume it. A thread that is waiting
                # for people (the kill lost what was being recorded) has nothing to run.
                resuming = runner(workspace).snapshot(thread).status == "running"
                if resuming:
                    continue
                resumed = run_mpm(["resume", thread, "-w", str(workspace)], env)
                result.commands.append(
                    Command(phase, ["resume"], resumed.returncode, resumed.stdout, resumed.stderr)
                )
                assert resumed.returncode == 0, resumed.stdout + resumed.stderr
                assert "Traceback" not in resumed.stdout + resumed.stderr
            else:
                allowed = (0, 1, 2) if phase.startswith("refuse") else (0, 1)
                assert proc.returncode in allowed, f"{args}: exit {proc.returncode}\n{output}"
                assert not kill_at, f"{args}: MPM_KILL_AT={kill_at} never fired"
        resuming = False
        step = next_step(workspace, thread, scratch)
        if step is None:
            return result
    raise AssertionError(f"thread {thread} did not finish within {max_commands} commands")


@contextmanager
def _traced(trace_dir: Path | None, index: int, phase: str) -> Iterator[None]:
    """Record the kill points an in-process step visits as if it were a process of its own."""
    if trace_dir is None:
        yield
        return
    (trace_dir / f"{index:03d}.phase").write_text(phase)
    killpoints.reset()
    os.environ[killpoints.TRACE_VAR] = str(trace_dir / f"{index:03d}.trace")
    try:
        yield
    finally:
        del os.environ[killpoints.TRACE_VAR]


def _runner(workspace: Path, env: dict[str, str]) -> Runner:
    """A Runner with the settings the CLI uses by default (``env`` may turn tracing off)."""
    from mpm.graph.context import RunContext

    tracing = env.get("MPM_TRACING", "1") not in {"0", "false", "off"}
    ctx = RunContext(
        workspace=str(workspace),
        model="stub",
        toolset="real",
        tracking=True,
        policies=None,
        tracing=tracing,
    )
    return Runner(ctx, None)


def read_trace(trace_dir: Path) -> Trace:
    """Phase -> kill points visited, in order (the first process of each phase only)."""
    trace: Trace = {}
    for path in sorted(trace_dir.glob("*.phase")):
        phase = path.read_text()
        hits = trace_dir / f"{path.stem}.trace"
        points = (
            [line.split()[1] for line in hits.read_text().splitlines()] if hits.exists() else []
        )
        trace.setdefault(phase, points)
    return trace


# --------------------------------------------------------------------------- choosing kills


def plan_kills(
    trace: Trace, rng: random.Random, count: int, wanted: list[str] | None = None
) -> KillPlan:
    """Choose ``count`` kills among the visits ``trace`` shows, the ``wanted`` points first.

    A phase can be killed several times: its first process at the n-th visit of a point
    (where the uninterrupted run passed it), each following process (the resume) at a
    visit the trace shows past the first super-step boundary at or after the previous
    kill. Those visits belong to steps that were not checkpointed when the process died,
    so the resume certainly passes them again: every planned kill fires."""
    points = sorted({p for pts in trace.values() for p in pts})
    chosen = list(wanted or [])[:count]
    for _attempt in range(500):
        targets = chosen + [rng.choice(points) for _ in range(count - len(chosen))]
        picks: dict[str, list[int]] = {}
        for point in targets:
            spots = [
                (phase, j)
                for phase, pts in trace.items()
                for j, p in enumerate(pts)
                if p == point and j not in picks.get(phase, [])
            ]
            if not spots:  # a point visited once, drawn twice: draw again
                break
            phase, j = rng.choice(spots)
            picks.setdefault(phase, []).append(j)
        else:
            plan = _chain(trace, picks)
            if plan is not None:
                return plan
    raise AssertionError(f"no kill plan reaches {chosen} in one run; use more runs")


def _boundary(points: list[str], j: int) -> int:
    """Position of the first super-step boundary at or after ``j`` (the end if none)."""
    return next((b for b in range(j, len(points)) if points[b] in BOUNDARIES), len(points))


def _chain(trace: Trace, picks: dict[str, list[int]]) -> KillPlan | None:
    """``MPM_KILL_AT`` values for the picked positions, or None if a resume could miss one."""
    plan: KillPlan = {}
    for phase, positions in picks.items():
        pts = trace[phase]
        after = -1  # visits up to here may not be passed again by the next process
        for j in sorted(positions):
            if j <= after:
                return None
            point = pts[j]
            visits = sum(1 for p in pts[after + 1 : j + 1] if p == point)
            plan.setdefault(phase, []).append(f"{point}:{visits}")
            after = _boundary(pts, j)
    return plan


# --------------------------------------------------------------------------- what a run left


def facts(values: dict[str, Any]) -> dict[str, Any]:
    """The deliverables of a finished run that no crash may change."""
    results = values["results"]
    dev = results["model_development"]["outputs"]
    accepted = [e for e in values.get("audit") or [] if e.get("accepted")]
    return {
        "status": values["status"],
        "statuses": {k: v["status"] for k, v in results.items()},
        "attempts": {k: v["attempts"] for k, v in results.items()},
        "best_model": (dev["best_model_name"], round(dev["best_model_score"], 10)),
        "candidates": sorted((c["name"], round(c["val_score"], 10)) for c in dev["candidates"]),
        "test_score": round(results["model_validation"]["outputs"]["test_score"], 10),
        "registered": results["mlops"]["outputs"]["registered_model_name"],
        "registered_version": results["mlops"]["outputs"].get("registered_model_version"),
        "pipeline_status": values["deliverables"]["pipeline_status"],
        "approvals": sorted((k, v["decision"]) for k, v in values["approvals"].items()),
        "accepted_decisions": sorted(e["approval_id"] for e in accepted),
        "answers": values.get("human_answers"),
        "stage_runs": Counter(
            e["node"] for e in values["events"] if e["event"] == "stage_finished"
        ),
        "deliverables": sorted(values["deliverables"]["files"]),
    }


def mlflow_runs(workspace: Path) -> list[tuple[str, str]]:
    """(run name, status) of every live run in the workspace's MLflow store."""
    with sqlite3.connect(workspace / "mlflow.db") as conn:
        rows = conn.execute(
            "SELECT name, status FROM runs WHERE lifecycle_stage = 'active' ORDER BY name, status"
        ).fetchall()
    return [(str(name), str(status)) for name, status in rows]


def model_versions(workspace: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(workspace / "mlflow.db") as conn:
        rows = conn.execute("SELECT name, version FROM model_versions ORDER BY name").fetchall()
    return [(str(n), int(v)) for n, v in rows]


def logged_models(workspace: Path) -> list[tuple[str, int]]:
    """(name, status) of every logged model: a model logged twice would show here."""
    with sqlite3.connect(workspace / "mlflow.db") as conn:
        rows = conn.execute("SELECT name, status FROM logged_models ORDER BY name").fetchall()
    return [(str(n), int(s)) for n, s in rows]


def unfinished_traces(workspace: Path) -> int:
    """MLflow traces never completed (a process killed mid-invocation must leave none)."""
    with sqlite3.connect(workspace / "mlflow.db") as conn:
        row = conn.execute("SELECT COUNT(*) FROM trace_info WHERE status = 'IN_PROGRESS'")
        return int(row.fetchone()[0])


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def workspace_files(workspace: Path, thread: str) -> list[str]:
    root = workspace / "runs" / thread
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
