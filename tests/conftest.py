"""Shared fixtures: every test gets its own workspace and a clean environment."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_POLICIES = REPO.parent / "shared" / "policies"
EXAMPLES = REPO / "reference" / "examples"


# Settings a developer's shell may carry that would change what a test runs.
MPM_ENV_VARS = (
    "MLFLOW_TRACKING_URI",
    "MPM_WORKSPACE",
    "MPM_CHECKPOINTER",
    "MPM_MODEL",
    "MPM_TOOLSET",
    "MPM_TRACKING",
    "MPM_POLICIES",
    "MPM_FAULTS",
    "MPM_TRACING",
    "MPM_KILL_AT",
    "MPM_KILL_TRACE",
    "MPM_MODEL_TIMEOUT_S",
    "MPM_MODEL_MAX_TOKENS",
)


@pytest.fixture(scope="session", autouse=True)
def signing_identity(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(identity directory, key directory) for the whole session: a real ed25519 key per
    reference role account (more are made on demand by ``tests.graph.helpers.key_for``).

    Also set in the environment for the whole session, so module-scoped fixtures (set up
    before any function-scoped one) run with it too; ``_clean_env`` re-asserts it."""
    import os

    from tests.graph import helpers

    identity, keys = helpers.reference_signers(tmp_path_factory.mktemp("signing"))
    os.environ["MPM_IDENTITY"], os.environ["MPM_SIGNING_KEY"] = str(identity), str(keys)
    return identity, keys


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, signing_identity: tuple[Path, Path]) -> None:
    for var in MPM_ENV_VARS:
        # set, then deleted: the undo then removes whatever the test itself set (e.g.
        # ``mlflow.set_tracking_uri`` writes MLFLOW_TRACKING_URI), where a bare delete of
        # an unset variable records nothing and lets it leak into the next module's
        # fixtures
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    if "mlflow" in sys.modules:  # its process-global (fluent) tracking URI: unset, as
        from mlflow.tracking import _tracking_service  # in a fresh process

        monkeypatch.setattr(_tracking_service.utils, "_tracking_uri", None)
    # approvers sign: every run's identity directory is the session's, and a key directory
    # (one key per member id) signs for whoever `--as` names
    identity, keys = signing_identity
    monkeypatch.setenv("MPM_IDENTITY", str(identity))
    monkeypatch.setenv("MPM_SIGNING_KEY", str(keys))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    monkeypatch.setenv("GIT_PYTHON_REFRESH", "quiet")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@pytest.fixture
def shared_policies() -> Path:
    if not SHARED_POLICIES.is_dir():
        pytest.fail(f"the public policies are expected at {SHARED_POLICIES}")
    return SHARED_POLICIES


# --------------------------------------------------------------------------- PostgreSQL
# A real PostgreSQL server for the checkpointer and MLflow-server tests. CI starts one with
# scripts/start_postgres.sh and exports its DSN as MPM_TEST_POSTGRES_DSN; on a developer
# machine without it these tests are skipped, in CI (env CI set) they fail instead.

POSTGRES_DSN_VAR = "MPM_TEST_POSTGRES_DSN"


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of a PostgreSQL role that may create databases (``MPM_TEST_POSTGRES_DSN``)."""
    import os

    dsn = os.environ.get(POSTGRES_DSN_VAR, "").strip()
    if not dsn.startswith(("postgresql://", "postgres://")):
        if dsn:
            pytest.fail(
                f"{POSTGRES_DSN_VAR}={dsn!r}: expected a postgresql://user:password@host:port/db URL"
            )
        message = (
            f"{POSTGRES_DSN_VAR} is not set: start a server with "
            f'`export {POSTGRES_DSN_VAR}="$(scripts/start_postgres.sh)"`'
        )
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide PostgreSQL: {message}")
        pytest.skip(message)
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(f"{POSTGRES_DSN_VAR}: cannot connect to PostgreSQL: {exc}".strip())
    return dsn


@pytest.fixture
def postgres_database(postgres_dsn: str) -> Iterator[str]:
    """A fresh, empty database for one test (dropped afterwards): a URL to it."""
    import uuid
    from urllib.parse import urlsplit

    import psycopg

    name = f"mpm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlsplit(postgres_dsn)._replace(path=f"/{name}").geturl()
    try:
        yield url
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
