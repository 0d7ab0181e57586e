"""The one place that knows the workspace layout.

A workspace directory holds everything a run writes::

    <workspace>/
      checkpoints.db          LangGraph SQLite checkpointer (default)
      mlflow.db               MLflow tracking store (unless MLFLOW_TRACKING_URI is set)
      mlartifacts/            MLflow artifacts for the local store
      runs/<thread_id>/       per-thread files: one folder per stage, deliverables
      locks/<thread_id>.lock  advisory lock held by the process driving a thread
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORKSPACE = Path("mpm-workspace")
_THREAD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class WorkspaceError(ValueError):
    """A path or name that would escape the workspace, or an unusable workspace."""


def validate_thread_id(thread_id: str) -> str:
    """Thread ids become folder names: letters, digits, ``_ . -``, at most 128 chars."""
    if not _THREAD_ID.match(thread_id) or ".." in thread_id:
        raise WorkspaceError(
            f"thread id {thread_id!r}: expected 1-128 characters of letters, digits, '_', '.', '-'"
            " starting with a letter or digit"
        )
    return thread_id


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def resolve(cls, path: str | os.PathLike[str] | None = None) -> Workspace:
        """``--workspace``, else ``MPM_WORKSPACE``, else ``./mpm-workspace``; created if missing."""
        chosen = Path(path or os.environ.get("MPM_WORKSPACE") or DEFAULT_WORKSPACE)
        root = chosen.expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"workspace {root}: exists and is not a directory")
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    @classmethod
    def locate(cls, path: str | os.PathLike[str] | None = None) -> Workspace:
        """Like :meth:`resolve`, but never creates anything: read-only commands use it, so
        ``mpm status`` in the wrong directory leaves no empty workspace behind."""
        chosen = Path(path or os.environ.get("MPM_WORKSPACE") or DEFAULT_WORKSPACE)
        root = chosen.expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"workspace {root}: exists and is not a directory")
        return cls(root)

    @property
    def checkpoint_db(self) -> Path:
        return self.root / "checkpoints.db"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def artifact_root(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def locks_dir(self) -> Path:
        path = self.root / "locks"
        path.mkdir(exist_ok=True)
        return path

    def run_dir(self, thread_id: str) -> Path:
        path = self.root / "runs" / validate_thread_id(thread_id)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stage_dir(self, thread_id: str, stage: str) -> Path:
        return self.child(self.run_dir(thread_id), stage, create=True)

    def child(self, base: Path, name: str, *, create: bool = False) -> Path:
        """``base/name`` guaranteed to stay inside the workspace (no ``..``, no absolute names)."""
        candidate = (base / name).resolve()
        if not candidate.is_relative_to(self.root):
            raise WorkspaceError(f"path {name!r} would escape the workspace {self.root}")
        if create:
            candidate.mkdir(parents=True, exist_ok=True)
        return candidate

    def inside(self, path: str | os.PathLike[str], base: Path | None = None) -> Path:
        """Resolve a path given by input (relative to ``base`` or the workspace) and refuse escapes."""
        p = Path(path)
        resolved = (p if p.is_absolute() else (base or self.root) / p).resolve()
        if not resolved.is_relative_to(self.root):
            raise WorkspaceError(f"path {str(path)!r} is outside the workspace {self.root}")
        return resolved
