"""Helpers for graph tests: run a thread in-process, or drive the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from graph.context import RunContext
from graph.runner import Runner

REPO = Path(__file__).resolve().parents[2]


def runner(
    workspace: Path,
    *,
    toolset: str = "noop",
    tracking: bool = False,
    model: str = "stub",
    checkpointer: str | None = None,
    events: list[dict[str, Any]] | None = None,
) -> Runner:
    ctx = RunContext(workspace=str(workspace), model=model, toolset=toolset, tracking=tracking)
    sink = events.append if events is not None else None
    return Runner(ctx, checkpointer, on_event=sink)


def example(name: str, **overrides: Any) -> dict[str, Any]:
    data = yaml.safe_load((REPO / "reference" / "examples" / f"{name}.yaml").read_text())
    data.update(overrides)
    return data


def mpm(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "graph.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        input=input,
        cwd=REPO,
    )
