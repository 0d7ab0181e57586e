"""Benchmark: how long a person waits for ``mpm`` between runs.

Wall time of whole processes (interpreter start included), the way a person or a script
runs them, on the default SQLite checkpointer with MLflow tracking on: ``mpm --help``,
``status``, ``approvals``, ``runs``, an accepted ``approve``, a refused ``approve`` (an
account no group names) and ``answer``. The threads are set up first (kickoff with the
stub model and no-op tools, so the decisions measure mpm, not ML work); each decision is
made on its own thread, ``--repeat`` times; the median is reported.

An accepted ``approve`` and ``answer`` are measured as people run them (the default: the
command returns once the decision is judged and received; a background worker continues
the run). So that nobody can say the work vanished, ``*_worker_s`` is the time from the
command's start until its worker reached the run's next stop (the worker exited), waited
for before the next measurement so workers never overlap a timed command.

    python benchmarks/cli_latency.py [--repeat 3]

Targets (issue 14, 2 cores): --help < 0.3 s; read commands < 0.5 s; accepted decision
< 1.5 s; refused decision < 0.5 s. Prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._machine import loop_s, machine  # noqa: E402
from tests.conftest import MPM_ENV_VARS  # noqa: E402
from tests.graph.helpers import auto_answer, runner  # noqa: E402

EXAMPLE = ROOT / "reference" / "examples" / "breast_cancer.yaml"
TARGETS = {
    "help": 0.3,
    "status": 0.5,
    "approvals": 0.5,
    "runs": 0.5,
    "approve_accepted": 1.5,
    "approve_refused": 0.5,
    "answer": 1.5,
}
WORKER = ("approve_accepted_worker", "answer_worker")
"""Not targets: how long the background worker took to the run's next stop."""


SIGNING: dict[str, str] = {}
"""MPM_IDENTITY and MPM_SIGNING_KEY of the benchmark's own identity (:func:`identities`)."""


BYTECODE: dict[str, str] = {}
"""PYTHONPYCACHEPREFIX: the commands' compiled modules, cached in the benchmark's temporary
directory (:func:`main`)."""


def _env() -> dict[str, str]:
    """The commands run as on a person's machine: none of the shell's MPM settings, and
    Python's bytecode cache on even where the shell turns it off (PYTHONDONTWRITEBYTECODE
    recompiles every module of mpm in every command: about 0.1 s of each on 2 cores). The
    cache lives in the temporary directory, so the work tree is left as it was; the
    set-up's kickoffs fill it, as any earlier mpm command does on a person's machine."""
    dropped = (*MPM_ENV_VARS, "MPM_SIGNING_KEY", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return env | {"COLUMNS": "200", "MPM_TOOLSET": "noop"} | SIGNING | BYTECODE


def identities(root: Path) -> None:
    """Real ed25519 keys for every reference role account and for ``mallory`` (bound in
    the identity directory, member of no group: her decisions are refused), as the test
    suite makes them; decisions are signed with ``ssh-keygen -Y sign`` as people sign."""
    from tests.graph import helpers

    identity, keys = helpers.reference_signers(root, extra=("mallory",))
    SIGNING.update(MPM_IDENTITY=str(identity), MPM_SIGNING_KEY=str(keys))
    os.environ.update(SIGNING)  # the in-process reads below judge with the same identity


def timed(args: list[str], ok: tuple[int, ...] = (0,)) -> float:
    return run(args, ok)[0]


def run(args: list[str], ok: tuple[int, ...] = (0,)) -> tuple[float, str, float]:
    """(wall time, stdout, start time) of one ``mpm`` process."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mpm", *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=600,
    )
    wall = time.perf_counter() - started
    if proc.returncode not in ok:
        raise SystemExit(f"mpm {' '.join(args)}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    return wall, proc.stdout, started


def decided(args: list[str]) -> tuple[float, float]:
    """(wall time of the command, time until its background worker reached the next stop)."""
    wall, out, started = run([*args, "--json"])
    pid = json.loads(out.strip().splitlines()[-1])["continuing"]["pid"]
    deadline = time.monotonic() + 900
    while _alive(pid):
        if time.monotonic() > deadline:
            raise SystemExit(f"worker {pid} of mpm {' '.join(args)} still running after 900 s")
        time.sleep(0.05)
    return wall, time.perf_counter() - started


def _alive(pid: int) -> bool:
    from mpm.graph.inbox import _alive as alive

    return alive(pid)


def setup(ws: Path, thread: str) -> None:
    """A thread waiting for its open governance questions (the no-op tools produce no
    evidence, so governance asks the owner)."""
    timed(["kickoff", "-r", str(EXAMPLE), "-w", str(ws), "-t", thread])


def answers_file(ws: Path, thread: str, scratch: Path) -> Path:
    pending = runner(ws).snapshot(thread).interrupts[0]["value"]
    assert pending["type"] == "open_questions", pending["type"]
    path = scratch / f"{thread}-answers.yaml"
    path.write_text(yaml.safe_dump({q["key"]: auto_answer(q) for q in pending["questions"]}))
    return path


def approval(ws: Path, thread: str) -> tuple[str, str]:
    """(approval id, an eligible approver who is not the requester) of a pending approval."""
    snap = runner(ws).snapshot(thread)
    requested_by = snap.values["requirements"].get("requested_by")
    value = next(i["value"] for i in snap.interrupts if i["value"].get("type") == "approval")
    who = next(u for u in value["eligible_approvers"] if u != requested_by)
    return value["approval_id"], who


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    speed_at_start = loop_s()
    samples: dict[str, list[float]] = {k: [] for k in (*TARGETS, *WORKER)}
    with tempfile.TemporaryDirectory() as tmp:
        ws, scratch = Path(tmp) / "ws", Path(tmp)
        BYTECODE["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
        identities(scratch)
        threads = [f"lat{i}" for i in range(args.repeat)]
        for thread in threads:
            setup(ws, thread)
        w = ["-w", str(ws)]
        for thread in threads:
            samples["help"].append(timed(["--help"]))
            samples["status"].append(timed(["status", thread, *w]))
            samples["approvals"].append(timed(["approvals", *w]))
            samples["runs"].append(timed(["runs", *w]))
            path = answers_file(ws, thread, scratch)
            wall, worker = decided(["answer", thread, "--file", str(path), *w])
            samples["answer"].append(wall)
            samples["answer_worker"].append(worker)
            approval_id, who = approval(ws, thread)
            samples["approve_refused"].append(
                timed(["approve", thread, approval_id, "--as", "mallory", "-c", "x", *w], (2,))
            )
            wall, worker = decided(["approve", thread, approval_id, "--as", who, "-c", "ok", *w])
            samples["approve_accepted"].append(wall)
            samples["approve_accepted_worker"].append(worker)
    result: dict[str, Any] = {
        "benchmark": "cli_latency",
        "machine": machine(speed_at_start),
        "settings": "SQLite checkpointer, MLflow tracking on (workspace SQLite store), stub model, "
        "no-op tools, decisions signed with ssh-keygen (ed25519); accepted decisions in "
        "the default mode (received, then applied by a background worker); Python's "
        "bytecode cache on, filled by the set-up",
        "repeat": args.repeat,
        "median_s": {k: round(statistics.median(v), 3) for k, v in samples.items()},
        "samples_s": {k: [round(x, 3) for x in v] for k, v in samples.items()},
        "targets_s": TARGETS,
    }
    result["meets_targets"] = {k: result["median_s"][k] < t for k, t in TARGETS.items()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
