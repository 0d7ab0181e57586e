"""Drive a governed run through the CLI, one process per command, as people would: kickoff,
then ``mpm answer`` / ``mpm approve`` for whatever the run waits for, ``mpm resume`` after a
crash. A command may be told to SIGKILL itself at a kill point (``MPM_KILL_AT``); a drive
can record where every kill point is hit (``MPM_KILL_TRACE``, one file per command).

Then read back what a finished run left: the deliverables that must not depend on crashes,
and the MLflow store (straight from its SQLite file, so a test never caches a store that
another process rewrites)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.graph.helpers import REPO, approver_for, auto_answer, runner

KILLED = -signal.SIGKILL


@dataclass
class Command:
    index: int
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    kill_at: str | None = None

    @property
    def killed(self) -> bool:
        return self.returncode == KILLED


@dataclass
class Drive:
    workspace: Path
    thread: str
    commands: list[Command] = field(default_factory=list)

    @property
    def kills(self) -> list[Command]:
        return [c for c in self.commands if c.killed]


def run_mpm(args: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "graph.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=timeout,
        cwd=REPO,
    )


def next_command(workspace: Path, thread: str, scratch: Path) -> list[str] | None:
    """What a person would run next for this thread, or None when the run has ended."""
    snap = runner(workspace).snapshot(thread)
    ws = ["-w", str(workspace)]
    if not snap.interrupts:
        return ["resume", thread, *ws] if snap.status == "running" else None
    value = snap.interrupts[0]["value"]
    if value["type"] == "open_questions":
        answers = scratch / f"answers-{thread}-{len(value['questions'])}.yaml"
        answers.write_text(yaml.safe_dump({q["key"]: auto_answer(q) for q in value["questions"]}))
        return ["answer", thread, *ws, "--file", str(answers)]
    if value["type"] == "approval":
        who = approver_for(value, snap.values["requirements"].get("requested_by"))
        return ["approve", thread, value["approval_id"], "--as", who, "-c", "reviewed", *ws]
    raise AssertionError(f"unexpected interrupt {value}")


def drive(
    workspace: Path,
    thread: str,
    requirements: Path,
    *,
    kills: dict[int, str] | None = None,
    trace_dir: Path | None = None,
    max_commands: int = 40,
) -> Drive:
    """Run the thread to its end. ``kills`` maps a command index to an ``MPM_KILL_AT`` value
    for that command; after a command is killed the next one is always ``mpm resume``."""
    scratch = workspace.parent / f"{workspace.name}-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    result = Drive(workspace, thread)
    args: list[str] | None = ["kickoff", "-r", str(requirements), "-w", str(workspace)]
    args += ["--thread", thread]
    for index in range(max_commands):
        env: dict[str, str] = {}
        kill_at = (kills or {}).get(index)
        if kill_at:
            env["MPM_KILL_AT"] = kill_at
        if trace_dir is not None:
            env["MPM_KILL_TRACE"] = str(trace_dir / f"{index}.trace")
        proc = run_mpm(args, env)
        command = Command(index, args, proc.returncode, proc.stdout, proc.stderr, kill_at)
        result.commands.append(command)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        if command.killed:
            args = ["resume", thread, "-w", str(workspace)]
            continue
        assert proc.returncode in (0, 1), f"{args}: exit {proc.returncode}\n{proc.stderr}"
        args = next_command(workspace, thread, scratch)
        if args is None:
            return result
    raise AssertionError(f"thread {thread} did not finish within {max_commands} commands")


def read_trace(trace_dir: Path) -> list[tuple[int, str, int]]:
    """Every kill point a drive passed: (command index, point, n-th visit in that process)."""
    hits = []
    for path in sorted(trace_dir.glob("*.trace"), key=lambda p: int(p.stem)):
        for line in path.read_text().splitlines():
            _pid, point, n = line.split()
            hits.append((int(path.stem), point, int(n)))
    return hits


# --------------------------------------------------------------------------- what a run left


def facts(values: dict[str, Any]) -> dict[str, Any]:
    """The deliverables of a finished run that no crash may change."""
    results = values["results"]
    dev = results["model_development"]["outputs"]
    accepted = [e for e in values.get("audit") or [] if e.get("accepted")]
    return {
        "status": values["status"],
        "statuses": {k: v["status"] for k, v in results.items()},
        "best_model": (dev["best_model_name"], round(dev["best_model_score"], 10)),
        "candidates": sorted((c["name"], round(c["val_score"], 10)) for c in dev["candidates"]),
        "test_score": round(results["model_validation"]["outputs"]["test_score"], 10),
        "registered": results["mlops"]["outputs"]["registered_model_name"],
        "pipeline_status": values["deliverables"]["pipeline_status"],
        "approvals": sorted((k, v["decision"]) for k, v in values["approvals"].items()),
        "accepted_decisions": sorted(e["approval_id"] for e in accepted),
        "stage_runs": Counter(
            e["node"] for e in values["events"] if e["event"] == "stage_finished"
        ),
        "deliverables": sorted(values["deliverables"]["files"]),
    }


def mlflow_runs(workspace: Path) -> list[tuple[str, str]]:
    """(run name, status) of every live run in the workspace's MLflow store."""
    with sqlite3.connect(workspace / "mlflow.db") as conn:
        rows = conn.execute(
            "SELECT name, status FROM runs WHERE lifecycle_stage = 'active' ORDER BY name"
        ).fetchall()
    return [(str(name), str(status)) for name, status in rows]


def model_versions(workspace: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(workspace / "mlflow.db") as conn:
        rows = conn.execute("SELECT name, version FROM model_versions ORDER BY name").fetchall()
    return [(str(n), int(v)) for n, v in rows]


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def workspace_files(workspace: Path, thread: str) -> list[str]:
    root = workspace / "runs" / thread
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
