"""The one checkpointer factory: a URL in, a LangGraph saver out.

``sqlite`` (default) -> ``<workspace>/checkpoints.db``; ``sqlite:///path.db`` -> that file;
``memory`` -> in-process only (tests); ``postgresql://...`` -> langgraph-checkpoint-postgres
(``pip install 'mpm[postgres]'``), tables set up on first use.

Runs are driven with ``durability="sync"`` (see :data:`DURABILITY`): each super-step's
checkpoint is committed before the next step starts, so a SIGKILL loses at most the
step that was running, which is then re-run on resume.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from mpm.graph.workspace import Workspace

DURABILITY = "sync"
ENV_VAR = "MPM_CHECKPOINTER"


class CheckpointerError(ValueError):
    """A checkpointer URL that names nothing we can open."""


def describe(url: str | None, workspace: Workspace) -> str:
    url = url or os.environ.get(ENV_VAR) or "sqlite"
    if url == "sqlite":
        return f"sqlite:///{workspace.checkpoint_db}"
    if url.startswith(("postgresql://", "postgres://")):
        return url.split("@")[-1] if "@" in url else url  # never print credentials
    return url


def open_sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


_PG_SETUP_LOCK = 0x6D706D7365747570
"""Advisory lock key ("mpmsetup" as a 64-bit int): it names the lock, it holds nothing."""


def setup_postgres(saver: Any, timeout_s: float = 120.0) -> None:
    """``saver.setup()`` with one worker at a time, so many can open a fresh database at once.

    ``PostgresSaver.setup()`` reads the migration version, then creates tables and inserts
    the version rows; two workers opening a fresh database at the same moment both see
    "no tables" and the second fails on a duplicate key. A session advisory lock makes them
    take turns. It is *polled* (``pg_try_advisory_lock``), never waited on: a migration
    runs ``CREATE INDEX CONCURRENTLY``, which waits for every open transaction, including
    a blocked ``pg_advisory_lock`` call, and the two would deadlock."""
    deadline = time.monotonic() + timeout_s
    with saver.conn.cursor() as cur:
        while not cur.execute(
            "SELECT pg_try_advisory_lock(%s) AS locked", (_PG_SETUP_LOCK,)
        ).fetchone()["locked"]:
            if time.monotonic() > deadline:
                raise CheckpointerError(
                    f"another process has been setting up the checkpoint tables for over "
                    f"{timeout_s:g}s; check the database for a stuck session and try again"
                )
            time.sleep(0.05)
        try:
            saver.setup()
        finally:
            cur.execute("SELECT pg_advisory_unlock(%s)", (_PG_SETUP_LOCK,))


def sqlite_path(url: str | None, workspace: Workspace) -> Path | None:
    """The SQLite file ``url`` names (``sqlite``: the workspace's), or None for another
    kind of store. Shared by the saver factory below and the graph-free checkpoint reader
    (``graph/checkpoint_reader.py``), so both open the same file."""
    url = (url or os.environ.get(ENV_VAR) or "sqlite").strip()
    if url == "sqlite":
        return workspace.checkpoint_db
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///"))  # sqlite:///rel.db or sqlite:////abs.db
    if url.startswith("sqlite:"):
        raise CheckpointerError(f"--checkpointer {url!r}: expected 'sqlite' or sqlite:///<path>")
    return None


@contextmanager
def open_checkpointer(
    url: str | None, workspace: Workspace, *, read_only: bool = False
) -> Iterator[BaseCheckpointSaver]:
    """Yield a ready saver for ``url`` (``--checkpointer``, ``MPM_CHECKPOINTER``, or sqlite).

    ``read_only``: a SQLite file that does not exist is not created; an empty in-memory
    saver stands for it (no threads), so read commands leave the disk as they found it."""
    url = (url or os.environ.get(ENV_VAR) or "sqlite").strip()
    if url == "memory":
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
        return
    if url == "sqlite" or url.startswith("sqlite:"):
        from langgraph.checkpoint.sqlite import SqliteSaver

        path = sqlite_path(url, workspace)
        assert path is not None
        if read_only and not path.is_file():
            from langgraph.checkpoint.memory import InMemorySaver

            yield InMemorySaver()
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = open_sqlite(path)
        try:
            saver = SqliteSaver(conn)
            saver.setup()
            yield saver
        finally:
            conn.close()
        return
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from langgraph.checkpoint.postgres import PostgresSaver
        except ImportError as exc:
            raise CheckpointerError(
                "--checkpointer postgresql://...: install the extra: pip install 'mpm[postgres]'"
            ) from exc
        with PostgresSaver.from_conn_string(url) as saver:
            setup_postgres(saver)
            yield saver
        return
    raise CheckpointerError(
        f"--checkpointer {url!r}: expected 'sqlite', 'sqlite:///<path>', 'memory' or 'postgresql://...'"
    )
