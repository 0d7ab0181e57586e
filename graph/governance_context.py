"""The loaded governance context (policy library, identity directory, workflow) of a run,
loaded once per process and shared by everything in it.

Why its own module: loading the library is the single most expensive thing a short
``mpm approve`` / ``mpm answer`` process does (five policies parsed as YAML 1.2, rules
compiled), and three callers need it -- the governance node, every approval task and the
approval pre-check that runs before the graph is built (``graph/approval_judgement.py``),
which first tries the signer directories alone (:func:`signer_context`).
Here (no LangGraph import) the pre-check and the nodes share one cache, and a lock makes
parallel approval tasks, resumed together, wait for one load instead of each doing its own
(an unlocked ``lru_cache`` lets every concurrent miss load the library again).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from mpm.graph.context import RunContext

_lock = threading.Lock()


@lru_cache(maxsize=8)
def _load(directory: str, identity: str, _mtime: float) -> Any:
    from mpm.governance import GovernanceContext

    return GovernanceContext.load(directory, identity)


@lru_cache(maxsize=8)
def _load_signers(directory: str, identity: str, _mtime: float) -> Any:
    from mpm.governance.signers import SignerContext

    return SignerContext.load(directory, identity)


def context_key(ctx: RunContext) -> tuple[str, str, float]:
    """(policy directory, identity directory, newest mtime of a file in either): what the
    loaded context is cached on (a changed file means a new context), and part of what the
    governance node's evaluation cache keys on."""
    directory = ctx.policy_dir()
    if not directory.is_dir():
        raise FileNotFoundError(f"policy directory {directory} does not exist")
    identity = ctx.identity_dir()
    files = [*directory.iterdir(), *(identity.iterdir() if identity.is_dir() else ())]
    mtime = max((p.stat().st_mtime_ns for p in files), default=0) / 1e9
    return str(directory), str(identity), mtime


def governance_context(ctx: RunContext, key: tuple[str, str, float] | None = None) -> Any:
    """The loaded policy library and identity directory for this run (reloaded when a file
    in either changes); ``key`` is :func:`context_key`'s, when the caller already has it."""
    key = key or context_key(ctx)
    with _lock:  # one load, however many tasks ask at once
        return _load(*key)


def signer_context(ctx: RunContext, key: tuple[str, str, float] | None = None) -> Any:
    """Only the approver and identity directories of this run (no policy parsed): what the
    approval pre-check refuses an unentitled signer with, cached like the whole context."""
    key = key or context_key(ctx)
    with _lock:
        return _load_signers(*key)
