"""Fault injection for reliability tests: off unless ``MPM_FAULTS`` is set.

``MPM_FAULTS`` is a comma-separated list of ``<kind>:<target>:<mode>[:<times>]`` entries.
``<times>`` limits how many calls fail (default: all); counts are per process.

``tool:<tool name | *>:<mode>`` -- a sub-agent's tool call:

- ``raise``: the tool raises :class:`InjectedFault`;
- ``hang``: the tool sleeps past any timeout;
- ``malformed``: the tool returns something that is not a JSON object.

``model:<stage name | structured-output schema name | *>:<mode>`` -- a call of the stub
model (``graph/llm.py``), by the sub-agent of that stage, or for that structured output
(``RouteDecision``: the supervisor, ``RequirementsDraft``: the conversational kickoff):

- ``raise``: the call raises :class:`InjectedFault` (a provider error);
- ``timeout``: the call raises :class:`InjectedTimeout` (a provider's request timeout);
- ``hang``: the call sleeps past any timeout;
- ``garbage``: the reply is garbage text with no tool call (structured output: unparseable);
- ``invalid_json``: a tool call whose arguments are not JSON (structured output: invalid JSON);
- ``unknown_tool``: a call of a tool the agent does not have (structured output: unparseable);
- ``bad_route``: structured output naming a stage that does not exist (a sub-agent: garbage).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

ENV_VAR = "MPM_FAULTS"
MODES = frozenset({"raise", "hang", "malformed"})
MODEL_MODES = frozenset(
    {"raise", "timeout", "hang", "garbage", "invalid_json", "unknown_tool", "bad_route"}
)
_MODES_BY_KIND = {"tool": MODES, "model": MODEL_MODES}
HANG_S = 3600.0
_fired: Counter[str] = Counter()
_lock = threading.Lock()


class InjectedFault(RuntimeError):
    """Raised by a tool or the model because MPM_FAULTS asked for it."""


class InjectedTimeout(TimeoutError):
    """A model call that 'timed out' because MPM_FAULTS asked for it."""


def _rules() -> list[tuple[str, str, str, int | None]]:
    rules = []
    for entry in filter(None, (e.strip() for e in os.environ.get(ENV_VAR, "").split(","))):
        parts = entry.split(":")
        modes = _MODES_BY_KIND.get(parts[0], frozenset())
        if (
            len(parts) not in (3, 4)
            or parts[2] not in modes
            or (len(parts) == 4 and not parts[3].isdigit())
        ):
            raise ValueError(
                f"{ENV_VAR} entry {entry!r}: expected tool:<name>:<{'|'.join(sorted(MODES))}>"
                f"[:<times>] or model:<scope>:<{'|'.join(sorted(MODEL_MODES))}>[:<times>]"
            )
        rules.append((parts[0], parts[1], parts[2], int(parts[3]) if len(parts) == 4 else None))
    return rules


def _fault(kind: str, names: Iterable[str]) -> str | None:
    """The fault mode for this call (and count it), if a rule of ``kind`` names it."""
    if not os.environ.get(ENV_VAR):
        return None
    wanted = {*names, "*"}
    for rule_kind, target, mode, times in _rules():
        if rule_kind != kind or target not in wanted:
            continue
        key = f"{kind}:{target}:{mode}"
        with _lock:
            if times is not None and _fired[key] >= times:
                continue
            _fired[key] += 1
        return mode
    return None


def reset() -> None:
    """Forget how often each fault fired (tests that inject faults in one process)."""
    with _lock:
        _fired.clear()


def enabled() -> bool:
    return bool(os.environ.get(ENV_VAR))


def tool_fault(name: str) -> str | None:
    """The fault mode to apply to this call of tool ``name``, if any (and count it)."""
    return _fault("tool", [name])


def model_fault(*scopes: str | None) -> str | None:
    """The fault mode to apply to this model call, if any (and count it). ``scopes``: the
    stage the calling agent works on, or the structured-output schema's name."""
    return _fault("model", [s for s in scopes if s])


def apply_tool_fault(name: str) -> Any:
    mode = tool_fault(name)
    if mode == "raise":
        raise InjectedFault(f"injected fault in tool {name}")
    if mode == "hang":
        hang()
    if mode == "malformed":
        return "<<not a dict>>"
    return None


def hang() -> None:
    """Sleep past any timeout, in small steps: a stage that stops its timed-out worker
    (``graph/nodes/stage.py``) reaches it between two of them, as it would a real tool's
    Python loop (one long ``time.sleep`` cannot be interrupted in a thread)."""
    end = time.monotonic() + HANG_S
    while time.monotonic() < end:
        time.sleep(0.02)


def raise_model_fault(mode: str, where: str) -> None:
    """Act out the modes that make a model call fail (the rest change its reply)."""
    if mode == "raise":
        raise InjectedFault(f"injected fault in the model call ({where})")
    if mode == "timeout":
        raise InjectedTimeout(f"injected: the model call timed out ({where})")
    if mode == "hang":
        hang()
