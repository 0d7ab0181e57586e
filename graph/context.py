"""Run-scoped settings every node reads (LangGraph ``context_schema``).

The CLI passes a :class:`RunContext` explicitly; when the graph is served by LangGraph
Server, no context is passed and :func:`run_context` builds one from the environment
(``MPM_WORKSPACE``, ``MPM_MODEL``, ``MPM_TOOLSET``, ``MPM_TRACKING``, ``MPM_POLICIES``,
``MPM_IDENTITY``, ``MPM_TRACING``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpm.graph.workspace import Workspace


@dataclass(frozen=True)
class RunContext:
    workspace: str = field(default_factory=lambda: os.environ.get("MPM_WORKSPACE", "mpm-workspace"))
    model: str = field(default_factory=lambda: os.environ.get("MPM_MODEL", "stub"))
    toolset: str = field(default_factory=lambda: os.environ.get("MPM_TOOLSET", "real"))
    tracking: bool = field(
        default_factory=lambda: os.environ.get("MPM_TRACKING", "1") not in {"0", "false", "off"}
    )
    policies: str | None = field(default_factory=lambda: os.environ.get("MPM_POLICIES"))
    """Policy library directory; None means the packaged ``reference/governance``."""
    identity: str | None = field(default_factory=lambda: os.environ.get("MPM_IDENTITY"))
    """Identity directory (allowed_signers, members.yaml); None means ``<policies>/identity``."""
    tracing: bool = field(
        default_factory=lambda: os.environ.get("MPM_TRACING", "1") not in {"0", "false", "off"}
    )
    """Trace each invocation in MLflow (``graph/tracing.py``); only while ``tracking`` is on."""

    @property
    def ws(self) -> Workspace:
        return Workspace.resolve(self.workspace)

    def policy_dir(self) -> Path:
        if self.policies:
            return Path(self.policies).expanduser().resolve()
        from importlib.resources import files

        return Path(str(files("mpm.reference") / "governance"))

    def identity_dir(self) -> Path:
        if self.identity:
            return Path(self.identity).expanduser().resolve()
        return self.policy_dir() / "identity"


def run_context(runtime: Any) -> RunContext:
    ctx = getattr(runtime, "context", None)
    if isinstance(ctx, RunContext):
        return ctx
    if isinstance(ctx, dict):
        return RunContext(**ctx)
    return RunContext()
