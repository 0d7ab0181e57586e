"""Run-scoped settings every node reads (LangGraph ``context_schema``), and who may choose them.

The CLI (and the Python API) builds a :class:`RunContext` itself and passes it to the graph:
that caller runs in the operator's own process, so it is trusted with every setting.

A client of LangGraph Server is not. Some settings decide what governance can prove -- the
policy directory (and with it Approvers.md), the identity directory (the approvers' keys),
the workspace (where evidence, the audit copy and the MLflow store live), the toolset (real
tools or no-ops) and tracking (the MLflow parent run that anchors the audit chain head).
Those :data:`TRUST_SETTINGS` come from the server's own environment only; a client's run
``context`` that names one is refused (:class:`ContextRefused`), it is never quietly
ignored. What a client may choose is :data:`CLIENT_SETTINGS`: ``tracing`` (observability
only) and ``model``, restricted to the models the operator lists in ``MPM_SERVER_MODELS``
(a model spec can name a provider or a local file, so a free choice would let a client make
the server call out or load files it never meant to). ``graph/server.py`` applies this per
thread and records the result, like the CLI does, so every resume reuses it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mpm.graph.workspace import Workspace


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "1") not in {"0", "false", "off"}


@dataclass(frozen=True)
class RunContext:
    workspace: str = field(default_factory=lambda: os.environ.get("MPM_WORKSPACE", "mpm-workspace"))
    model: str = field(default_factory=lambda: os.environ.get("MPM_MODEL", "stub"))
    toolset: str = field(default_factory=lambda: os.environ.get("MPM_TOOLSET", "real"))
    tracking: bool = field(default_factory=lambda: _env_flag("MPM_TRACKING"))
    policies: str | None = field(default_factory=lambda: os.environ.get("MPM_POLICIES"))
    """Policy library directory; None means the packaged ``reference/governance``."""
    identity: str | None = field(default_factory=lambda: os.environ.get("MPM_IDENTITY"))
    """Identity directory (allowed_signers, members.yaml); None means ``<policies>/identity``."""
    tracing: bool = field(default_factory=lambda: _env_flag("MPM_TRACING"))
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


TRUST_SETTINGS = frozenset({"workspace", "toolset", "tracking", "policies", "identity"})
"""Settings only the server's environment (or the operator's own CLI) decides."""
CLIENT_SETTINGS = frozenset({"model", "tracing"})
"""Settings a LangGraph Server client may choose in its run ``context``."""
RECORDED_SETTINGS = tuple(f for f in RunContext.__dataclass_fields__)
"""What a server thread records at its start and reuses on every resume."""


class ContextRefused(ValueError):
    """A client's run context tried to choose a setting it may not, or an unknown one."""


def server_models() -> list[str]:
    """Models a server client may pick: ``MPM_SERVER_MODELS`` (comma-separated), else only
    the server's own ``MPM_MODEL``."""
    listed = [m.strip() for m in os.environ.get("MPM_SERVER_MODELS", "").split(",") if m.strip()]
    return listed or [RunContext().model]


def check_client_context(context: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings a client asked for, or :class:`ContextRefused` naming what it may not set."""
    if context is None:
        return {}
    if not isinstance(context, Mapping):
        raise ContextRefused(f"run context: expected an object, got {type(context).__name__}")
    keys = set(context)
    trusted = sorted(keys & TRUST_SETTINGS)
    if trusted:
        raise ContextRefused(
            f"run context sets {', '.join(trusted)}: these come from the server's environment "
            f"only (MPM_{', MPM_'.join(k.upper() for k in trusted)}); a client may set only "
            f"{', '.join(sorted(CLIENT_SETTINGS))}"
        )
    unknown = sorted(map(str, keys - CLIENT_SETTINGS))
    if unknown:
        raise ContextRefused(
            f"run context: unknown setting(s) {', '.join(unknown)}; a client may set only "
            f"{', '.join(sorted(CLIENT_SETTINGS))}"
        )
    chosen = dict(context)
    if "model" in chosen:
        allowed = server_models()
        if chosen["model"] not in allowed:
            raise ContextRefused(
                f"run context model {str(chosen['model'])[:80]!r}: this server offers "
                f"{', '.join(allowed)} (MPM_SERVER_MODELS)"
            )
    if "tracing" in chosen and not isinstance(chosen["tracing"], bool):
        raise ContextRefused("run context tracing: expected true or false")
    return chosen


def server_context(
    client: Mapping[str, Any] | None, recorded: Mapping[str, Any] | None = None
) -> RunContext:
    """The context of one server invocation: the thread's recorded settings (else the
    server's environment), then what the client may choose now -- "given now wins, else
    recorded", as in the CLI, but only for :data:`CLIENT_SETTINGS`."""
    chosen = check_client_context(client)
    base = asdict(RunContext())
    if recorded:
        base.update({k: recorded[k] for k in RECORDED_SETTINGS if k in recorded})
    base.update(chosen)
    return RunContext(**base)


def settings_of(ctx: RunContext) -> dict[str, Any]:
    """The settings a server thread records (all of them: workspace and identity included,
    so a resume after the server's environment changed still continues the same way).
    Paths are made absolute: the thread must not follow a later working directory."""
    recorded = asdict(ctx)
    for key in ("workspace", "policies", "identity"):
        if recorded[key]:
            recorded[key] = str(Path(recorded[key]).expanduser().resolve())
    return recorded


def run_context(runtime: Any) -> RunContext:
    """The invocation's context. A :class:`RunContext` object comes from mpm's own caller;
    a plain dict comes from outside (a client, or a caller that did not build one) and is
    held to the client rules."""
    ctx = getattr(runtime, "context", None)
    if isinstance(ctx, RunContext):
        return ctx
    if isinstance(ctx, Mapping):
        return server_context(ctx)
    return RunContext()
