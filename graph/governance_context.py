"""The loaded governance context (policy library, identity directory, workflow) of a run,
loaded once per process and shared by everything in it.

Why its own module: loading the library is the single most expensive thing a short
``mpm approve`` / ``mpm answer`` process does (five policies parsed as YAML 1.2, rules
compiled), and three callers need it -- the governance node, every approval task and the
approval pre-check that runs before the graph is built (``graph/approval_judgement.py``).
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


def governance_context(ctx: RunContext) -> Any:
    """The loaded policy library and identity directory for this run (reloaded when a file
    in either changes)."""
    directory = ctx.policy_dir()
    if not directory.is_dir():
        raise FileNotFoundError(f"policy directory {directory} does not exist")
    identity = ctx.identity_dir()
    files = [*directory.iterdir(), *(identity.iterdir() if identity.is_dir() else ())]
    mtime = max((p.stat().st_mtime_ns for p in files), default=0) / 1e9
    with _lock:  # one load, however many tasks ask at once
        return _load(str(directory), str(identity), mtime)
