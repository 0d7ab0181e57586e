"""Entries of the run's append-only event log: every decision and state change."""

from __future__ import annotations

from typing import Any

from mpm.graph.state import now_iso


def event(node: str, name: str, detail: str = "", **extra: Any) -> dict[str, Any]:
    return {"ts": now_iso(), "node": node, "event": name, "detail": detail, **extra}
