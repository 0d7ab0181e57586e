"""LangGraph Server custom auth for mpm (``auth`` in ``langgraph.json``).

Who may call the server, and what a caller may ask of it, checked at the HTTP API before
anything reaches the graph (``graph/server.py`` checks again at the graph, for the day this
layer is misconfigured):

- **Authentication.** Every request carries ``Authorization: Bearer <token>``. The tokens
  live on the server only, in the file ``MPM_SERVER_TOKENS`` names, one user per line:
  ``<user-id> sha256:<hex digest of the token>`` (``#`` starts a comment). Only digests are
  stored, so the file is no secret worth stealing; the digest of the presented token is
  compared in constant time. No file, an unreadable or empty one: every request is refused
  (fail closed). Studio's built-in bypass (``x-auth-scheme: langsmith``) is off
  (``disable_studio_auth`` in ``langgraph.json``): Studio sends the bearer header too.
- **Runs carry the user.** The authenticated id is the run's ``mpm_user`` metadata and
  reaches the graph as ``langgraph_auth_user_id``; the thread records who started it.
  Who may *approve* is not decided here: an approval still needs a decision signed by an
  approver's key (the graph verifies it); a token only lets a caller talk to the server.
- **Refused:** a run ``context`` (or ``config.configurable``) naming a trust setting
  (``graph/context.py``: policies, identity, workspace, toolset, tracking) or anything but
  the client settings; run input ``settings``; a ``command`` with ``update`` or ``goto``;
  a run from an older ``checkpoint_id`` (time travel would fork the thread's history);
  ``threads.update_state`` and thread creation with ``supersteps`` (state written from
  outside the graph); assistants whose context or configurable names a trust setting.

Handlers raise ``Auth.exceptions.HTTPException`` with a one-line ``detail``: 401 when the
caller is unknown, 403 when a known caller asks for something refused.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph_sdk import Auth

from mpm.graph.context import TRUST_SETTINGS, ContextRefused, check_client_context

TOKENS_ENV = "MPM_SERVER_TOKENS"
_USER = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_LINE = re.compile(r"^(\S+)\s+sha256:([0-9a-f]{64})$")
MAX_TOKENS_FILE_BYTES = 1_000_000


class TokenFileError(ValueError):
    """The tokens file is missing, unreadable or malformed."""


def token_digest(token: str) -> str:
    """What the tokens file stores for ``token``: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Loaded:
    key: tuple[str, int, int]
    users: dict[str, str]  # hex digest -> user id


_cache: _Loaded | None = None


def load_tokens(path: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Digest -> user id from the tokens file (re-read when it changes)."""
    global _cache
    where = path or os.environ.get(TOKENS_ENV)
    if not where:
        raise TokenFileError(f"no tokens configured: set {TOKENS_ENV} to the server's tokens file")
    file = Path(where)
    try:
        st = file.stat()
        key = (str(file), st.st_mtime_ns, st.st_size)
        if _cache is not None and _cache.key == key:
            return _cache.users
        if st.st_size > MAX_TOKENS_FILE_BYTES:
            raise TokenFileError(f"{file}: larger than {MAX_TOKENS_FILE_BYTES} bytes")
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenFileError(f"{TOKENS_ENV} {file}: cannot read: {exc.strerror}") from exc
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        if not match or not _USER.match(match.group(1)):
            raise TokenFileError(
                f"{file}:{number}: expected '<user-id> sha256:<64 hex digits>' "
                "with a user id of a-z 0-9 . _ -"
            )
        users[match.group(2)] = match.group(1)
    if not users:
        raise TokenFileError(f"{file}: no tokens (every request would be refused)")
    _cache = _Loaded(key, users)
    return users


def user_for(authorization: str | None) -> str:
    """The user a bearer header authenticates, or :class:`Auth.exceptions.HTTPException` 401."""
    try:
        users = load_tokens()
    except TokenFileError as exc:
        raise Auth.exceptions.HTTPException(status_code=401, detail=str(exc)) from None
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Auth.exceptions.HTTPException(
            status_code=401, detail="missing 'Authorization: Bearer <token>' header"
        )
    presented = token_digest(token.strip()).removeprefix("sha256:")
    found = None
    for digest, user in users.items():  # every digest compared: no early exit on a match
        if hmac.compare_digest(digest, presented):
            found = user
    if found is None:
        raise Auth.exceptions.HTTPException(status_code=401, detail="unknown token")
    return found


def refuse(detail: str) -> Auth.exceptions.HTTPException:
    return Auth.exceptions.HTTPException(status_code=403, detail=" ".join(detail.splitlines()))


def _check_context_and_config(context: Any, config: Any, what: str) -> None:
    try:
        check_client_context(context or None)
    except ContextRefused as exc:
        raise refuse(f"{what}: {exc}") from None
    configurable = (config or {}).get("configurable") if isinstance(config, Mapping) else None
    named = sorted(set(configurable or {}) & TRUST_SETTINGS)
    if named:
        raise refuse(
            f"{what}: config.configurable sets {', '.join(named)}: "
            "these come from the server's environment only"
        )


def check_run(kwargs: Mapping[str, Any]) -> None:
    """Refuse a run whose context, input or command is not a client's to send."""
    _check_context_and_config(kwargs.get("context"), kwargs.get("config"), "run")
    graph_input = kwargs.get("input")
    if isinstance(graph_input, Mapping) and "settings" in graph_input:
        raise refuse(
            "run input 'settings' is refused: the server records the thread's settings itself"
        )
    configurable = (kwargs.get("config") or {}).get("configurable")
    if isinstance(configurable, Mapping) and (
        configurable.get("checkpoint_id") or configurable.get("checkpoint_map")
    ):
        raise refuse(
            "run from a checkpoint_id is refused: a thread runs on from its latest checkpoint "
            "only (an older one would fork its history)"
        )
    command = kwargs.get("command")
    if isinstance(command, Mapping):
        if command.get("update"):
            raise refuse("run command 'update' is refused: it would write the thread's state")
        if command.get("goto"):
            raise refuse("run command 'goto' is refused: it would skip the graph's checks")


auth = Auth()


@auth.on
async def authenticated_callers_may(ctx: Auth.types.AuthContext, value: Any) -> None:
    """Every other request of an authenticated caller is allowed: approvers must read the
    threads others started; what they may *decide* is the graph's (signed decisions)."""


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    return {"identity": user_for(authorization), "permissions": []}


@auth.on.threads.create_run
async def on_run(
    ctx: Auth.types.AuthContext, value: Auth.types.on.threads.create_run.value
) -> None:
    check_run(value.get("kwargs") or {})
    metadata = value.get("metadata")
    if isinstance(metadata, dict):
        metadata["mpm_user"] = ctx.user.identity


@auth.on.threads.create
async def on_thread_create(
    ctx: Auth.types.AuthContext, value: Auth.types.on.threads.create.value
) -> None:
    metadata = value.get("metadata")
    if isinstance(metadata, dict):
        metadata["mpm_created_by"] = ctx.user.identity


@auth.on.threads.update
async def on_thread_update(
    ctx: Auth.types.AuthContext, value: Auth.types.on.threads.update.value
) -> None:
    # a metadata patch carries ``metadata``, a run cancel ``action``; a state write
    # (update_state, supersteps) carries the thread id alone
    if "metadata" not in value and "action" not in value:
        from mpm.graph.server import STATE_WRITE_REFUSED

        raise refuse(STATE_WRITE_REFUSED)


@auth.on.assistants.create
async def on_assistant_create(
    ctx: Auth.types.AuthContext, value: Auth.types.on.assistants.create.value
) -> None:
    _check_context_and_config(value.get("context"), value.get("config"), "assistant")


@auth.on.assistants.update
async def on_assistant_update(
    ctx: Auth.types.AuthContext, value: Auth.types.on.assistants.update.value
) -> None:
    _check_context_and_config(value.get("context"), value.get("config"), "assistant")


@auth.on.crons.create
async def on_cron_create(ctx: Auth.types.AuthContext, value: Any) -> None:
    raise refuse("crons are not served: a scheduled run would start without a caller")


@auth.on.crons.update
async def on_cron_update(ctx: Auth.types.AuthContext, value: Any) -> None:
    raise refuse("crons are not served: a scheduled run would start without a caller")
