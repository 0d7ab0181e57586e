"""What a benchmark's figures were measured on, including how fast this machine runs Python
right now.

Why: the same commit measured hours apart on "the 2-core machine" has given figures 2-3x
apart (a shared host's CPU is not the same CPU from one session to the next), so a figure
is only comparable with another next to the speed of the machine that produced it."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def loop_s() -> float:
    """Best of three: a fixed pure-Python loop (10 million additions). A benchmark takes it
    when it starts and :func:`machine` again when it ends: a shared host's speed can change
    within minutes."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return best


def _startup_s() -> float:
    """Median of five: an interpreter started and stopped (``python -c pass``)."""
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def machine(loop_at_start_s: float) -> dict[str, Any]:
    """The ``machine`` block of a benchmark's JSON (``loop_at_start_s``: :func:`loop_s`
    when the benchmark started)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python_loop_10m_s": {"at_start": round(loop_at_start_s, 3), "at_end": round(loop_s(), 3)},
        "python_startup_s": round(_startup_s(), 3),
    }
