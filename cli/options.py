"""The options every run command shares, declared once.

``kickoff``, ``resume``, ``approve`` and ``answer`` all take the same run settings (model,
toolset, tracking, tracing, policies) and the same store options (workspace,
checkpointer). Declaring them on each command meant four copies to keep in step, and a
command that forgot one silently could not be given it. Here they are declared once; the
decorators add them to a command's signature (typer reads ``__signature__``) and hand the
command one frozen object instead of seven parameters.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class StoreOptions:
    """Where a thread lives: the workspace directory and the checkpoint store."""

    workspace: Path | None = None
    checkpointer: str | None = None


@dataclass(frozen=True)
class RunOptions(StoreOptions):
    """Store options plus the run settings. ``None`` means "not given": kickoff then uses
    the defaults, and resume/approve/answer reuse the settings the thread recorded (so a run
    never silently switches model or tools)."""

    model: str | None = None
    toolset: str | None = None
    tracking: bool | None = None
    policies: Path | None = None
    tracing: bool | None = None
    identity: Path | None = None


# Placeholders for the parameter the decorators fill in (a signature needs a default there).
GIVEN_STORE = StoreOptions()
GIVEN_RUN = RunOptions()

_STORE_PARAMS: dict[str, Any] = {
    "workspace": Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace directory (env MPM_WORKSPACE; default ./mpm-workspace).",
        ),
    ],
    "checkpointer": Annotated[
        str | None,
        typer.Option(
            "--checkpointer",
            help="sqlite (default), sqlite:///path.db, memory, or postgresql://... (env MPM_CHECKPOINTER).",
        ),
    ],
}
_SETTING_PARAMS: dict[str, Any] = {
    "model": Annotated[
        str | None,
        typer.Option(
            "--model",
            help="'stub' (deterministic, offline; default), 'local' (the pinned local model, see `mpm model`) or provider:model (env MPM_MODEL).",
            envvar="MPM_MODEL",
        ),
    ],
    "toolset": Annotated[
        str | None,
        typer.Option(
            "--toolset", help="real (default) or noop (benchmarks).", envvar="MPM_TOOLSET"
        ),
    ],
    "tracking": Annotated[
        bool | None, typer.Option("--tracking/--no-tracking", help="Log to MLflow (default on).")
    ],
    "policies": Annotated[
        Path | None,
        typer.Option(
            "--policies",
            help="Governance policy directory (env MPM_POLICIES; default: the packaged reference library).",
        ),
    ],
    "tracing": Annotated[
        bool | None,
        typer.Option(
            "--tracing/--no-tracing",
            help="Trace nodes, model and tool calls in MLflow (env MPM_TRACING; default on with tracking).",
        ),
    ],
    "identity": Annotated[
        Path | None,
        typer.Option(
            "--identity",
            help="Identity directory: allowed_signers (+ members.yaml) binding member ids to keys "
            "(env MPM_IDENTITY; default: <policies>/identity).",
        ),
    ],
}
assert set(_STORE_PARAMS) == {f.name for f in fields(StoreOptions)}
assert set(_STORE_PARAMS) | set(_SETTING_PARAMS) == {f.name for f in fields(RunOptions)}


JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print JSON (one object on the last line of stdout; progress goes to stderr). Keys: README, Machine-readable output.",
    ),
]
"""``--json``: declared once like the options above; each command that prints a result
takes it."""


def _with_options(
    func: Callable[..., Any], kind: type[StoreOptions], params: dict[str, Any], into: str
) -> Callable[..., Any]:
    signature = inspect.signature(func, eval_str=True)
    if into not in signature.parameters:
        raise TypeError(f"{func.__name__} must take a parameter {into!r} ({kind.__name__})")
    kept = [p for name, p in signature.parameters.items() if name != into]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
        for name, hint in params.items()
    ]
    kept = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        else p
        for p in kept
    ]

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        options = kind(**{name: kwargs.pop(name) for name in params})
        return func(**kwargs, **{into: options})

    wrapper.__signature__ = signature.replace(parameters=kept + added)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in kept + added}
    del wrapper.__wrapped__  # typer must see the new signature, not the wrapped one's
    return wrapper


def store_options(func: F) -> F:
    """Give a read command ``--workspace`` and ``--checkpointer`` as ``store: StoreOptions``."""
    return _with_options(func, StoreOptions, _STORE_PARAMS, "store")  # type: ignore[return-value]


def run_options(func: F) -> F:
    """Give a run command the store options and the run settings as ``run: RunOptions``."""
    return _with_options(func, RunOptions, _STORE_PARAMS | _SETTING_PARAMS, "run")  # type: ignore[return-value]
