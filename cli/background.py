"""Starting the background worker that applies a received decision.

Why a detached process: the approver's command returns as soon as the decision is judged
and durably in the thread's inbox (``graph/inbox.py``); the stages up to the run's next
stop (MLflow runs, training) are not the approver's to wait for. The worker is plain
``mpm resume <thread> --worker`` with the options the approver gave now (the rest are the
thread's recorded settings, as for any resume), in its own session (a Ctrl-C at the
approver's terminal does not reach it), its output in a log file under the thread's run
directory. If it dies, nothing is lost: the entry stays in the inbox until the checkpoint
records it, and ``mpm resume`` delivers it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mpm.cli.options import RunOptions


def worker_args(run: RunOptions, workspace_root: Path, thread: str) -> list[str]:
    """The worker's command line: only the options given now (resume reuses the rest)."""
    args = [sys.executable, "-m", "mpm", "resume", thread, "--worker", "-w", str(workspace_root)]
    if run.checkpointer:
        args += ["--checkpointer", run.checkpointer]
    if run.model:
        args += ["--model", run.model]
    if run.toolset:
        args += ["--toolset", run.toolset]
    if run.tracking is not None:
        args.append("--tracking" if run.tracking else "--no-tracking")
    if run.tracing is not None:
        args.append("--tracing" if run.tracing else "--no-tracing")
    if run.policies:
        args += ["--policies", str(Path(run.policies).resolve())]
    if run.identity:
        args += ["--identity", str(Path(run.identity).resolve())]
    return args


def start_worker(run: RunOptions, workspace: Any, thread: str, entry_name: str) -> dict[str, Any]:
    """Start the detached worker; {"pid", "log"} (also recorded for ``mpm status``)."""
    from mpm.graph import inbox
    from mpm.graph.state import now_iso

    logs = inbox.inbox_dir(workspace, thread).parent / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = now_iso().replace(":", "").replace("+0000", "Z")
    log = logs / f"{stamp}-{Path(entry_name).stem}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            worker_args(run, workspace.root, thread),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, "COLUMNS": os.environ.get("COLUMNS", "160")},
        )
    inbox.record_worker(workspace, thread, proc.pid, log, now_iso())
    return {"pid": proc.pid, "log": str(log)}
