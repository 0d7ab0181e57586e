"""Fault injection for reliability tests: off unless ``MPM_FAULTS`` is set.

``MPM_FAULTS`` is a comma-separated list of ``tool:<name>:<mode>[:<times>]`` entries:
``raise`` makes the tool raise :class:`InjectedFault`, ``hang`` makes it sleep past any
timeout, ``malformed`` makes it return something that is not a dict. ``<times>`` limits
how many calls fail (default: all). ``<name>`` may be ``*``. Counts are per process."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Any

ENV_VAR = "MPM_FAULTS"
MODES = frozenset({"raise", "hang", "malformed"})
_fired: Counter[str] = Counter()
_lock = threading.Lock()


class InjectedFault(RuntimeError):
    """Raised by a tool because MPM_FAULTS asked for it."""


def _rules() -> list[tuple[str, str, str, int | None]]:
    rules = []
    for entry in filter(None, (e.strip() for e in os.environ.get(ENV_VAR, "").split(","))):
        parts = entry.split(":")
        if len(parts) not in (3, 4) or parts[0] != "tool" or parts[2] not in MODES:
            raise ValueError(
                f"{ENV_VAR} entry {entry!r}: expected tool:<name>:<raise|hang|malformed>[:<times>]"
            )
        rules.append((parts[0], parts[1], parts[2], int(parts[3]) if len(parts) == 4 else None))
    return rules


def tool_fault(name: str) -> str | None:
    """The fault mode to apply to this call of tool ``name``, if any (and count it)."""
    if not os.environ.get(ENV_VAR):
        return None
    for _kind, target, mode, times in _rules():
        if target not in {name, "*"}:
            continue
        key = f"{target}:{mode}"
        with _lock:
            if times is not None and _fired[key] >= times:
                continue
            _fired[key] += 1
        return mode
    return None


def apply_tool_fault(name: str) -> Any:
    mode = tool_fault(name)
    if mode == "raise":
        raise InjectedFault(f"injected fault in tool {name}")
    if mode == "hang":
        time.sleep(3600)
    if mode == "malformed":
        return "<<not a dict>>"
    return None
