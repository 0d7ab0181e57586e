"""Kill points for crash tests: the process SIGKILLs itself at a named point. Off by default.

``MPM_KILL_AT=<point>[:<n>]`` (several separated by commas) kills the process the ``n``-th
time (default: the first) it reaches ``<point>``; counts are per process.
``MPM_KILL_TRACE=<file>`` appends one line ``<pid> <point> <n>`` per point reached, so a
test can learn from an uninterrupted run where every point is and how often it is hit,
and then pick kill points at random among the real ones.

The points sit where a crash would hurt most: inside each kind of node, around every tool
call of a sub-agent and after every MLflow write (:data:`POINTS`). They live in ``tools/``
because ``tools/tracking.py`` calls them and ``tools/`` may import nothing from ``graph/``
or ``agents/``; the graph and the agents import them from here.

``MPM_KILL_SIGNAL=KILL|INT|TERM`` (default ``KILL``) is the signal sent: ``INT`` and
``TERM`` are what Ctrl-C and a service manager send, which mpm handles as a stop
(``graph/stopping.py``) -- the torture test delivers all three at every point.

With neither variable set, :func:`maybe_die` is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

KILL_VAR = "MPM_KILL_AT"
TRACE_VAR = "MPM_KILL_TRACE"
SIGNAL_VAR = "MPM_KILL_SIGNAL"
SIGNALS = {"KILL": signal.SIGKILL, "INT": signal.SIGINT, "TERM": signal.SIGTERM}

POINTS: dict[str, str] = {
    "kickoff": "kickoff node, requirements validated, before its update is saved",
    "plan": "plan node, after the MLflow parent run was opened",
    "supervisor": "supervisor node, on entry (it is pure: a re-run decides the same)",
    "stage.start": "sub-agent node, after its MLflow stage run was opened",
    "tool.before": "sub-agent tool call, before the tool runs",
    "tool.after": "sub-agent tool call, after the tool returned",
    "stage.end": "sub-agent node, after its MLflow stage run was closed",
    "mlflow.write": "after any MLflow write (create/update run, log, artifact, terminate)",
    "governance": "governance node, report written and logged, before its update is saved",
    "approval.ask": "approval node, about to ask (or re-ask) for a decision",
    "signature.verified": "approval node, a decision's signature checked, before it is recorded",
    "approval.refused": "approval node, a refusal durably recorded, before the node asks again",
    "approval.decided": "approval node, decision received and checked, before it is saved",
    "questions.answered": "questions node, answers received, before they are saved",
    "synthesize": "synthesize node, deliverables written and logged, before runs are closed",
}

_hits: Counter[str] = Counter()
_lock = threading.Lock()


class KillPointError(ValueError):
    """An ``MPM_KILL_AT`` entry that names no point or no count."""


def parse(spec: str) -> dict[str, int]:
    """``"tool.after:3,governance"`` -> ``{"tool.after": 3, "governance": 1}``."""
    targets: dict[str, int] = {}
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        point, _, count = entry.partition(":")
        if point not in POINTS:
            raise KillPointError(
                f"{KILL_VAR} entry {entry!r}: unknown point {point!r}; expected one of "
                + ", ".join(POINTS)
            )
        if count and not (count.isdigit() and int(count) >= 1):
            raise KillPointError(f"{KILL_VAR} entry {entry!r}: expected a count >= 1 after ':'")
        targets[point] = int(count) if count else 1
    return targets


def reset() -> None:
    """Forget the visits counted so far: a test that runs several commands' work in one
    process counts each as if it were a process of its own."""
    with _lock:
        _hits.clear()


def kill_signal() -> signal.Signals:
    """The signal ``MPM_KILL_SIGNAL`` names (SIGKILL if unset)."""
    name = os.environ.get(SIGNAL_VAR, "KILL").strip().upper().removeprefix("SIG")
    if name not in SIGNALS:
        raise KillPointError(f"{SIGNAL_VAR}={name!r}: expected one of {', '.join(SIGNALS)}")
    return SIGNALS[name]


def maybe_die(point: str) -> None:
    """Count a visit of ``point``; signal this process (``MPM_KILL_SIGNAL``, default
    SIGKILL) if ``MPM_KILL_AT`` names this visit. After SIGINT/SIGTERM the calling thread
    waits here until the stop it asked for ends the process (``graph/stopping.py``)."""
    env = os.environ
    if KILL_VAR not in env and TRACE_VAR not in env:
        return
    with _lock:
        _hits[point] += 1
        n = _hits[point]
    trace = env.get(TRACE_VAR)
    if trace:
        with open(trace, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {point} {n}\n")
    if parse(env.get(KILL_VAR, "")).get(point) == n:
        sig = kill_signal()
        os.kill(os.getpid(), sig)
        if sig != signal.SIGKILL:
            # the signal is handled in the main thread, a moment later; this thread goes no
            # further, so the stop lands exactly here whichever thread reached the point
            while True:
                time.sleep(0.05)
