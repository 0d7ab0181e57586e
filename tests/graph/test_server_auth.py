"""``graph/auth.py`` in process: the tokens file, bearer authentication and the run checks
(the HTTP behaviour is covered against a real ``langgraph dev`` in test_langgraph_server.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langgraph_sdk import Auth

from mpm.graph import auth as server_auth
from mpm.graph.auth import TokenFileError, check_run, load_tokens, token_digest, user_for


@pytest.fixture
def tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "tokens"
    path.write_text(
        f"# who  digest\nalice {token_digest('a-token')}\n\nbob {token_digest('b-token')}  # ops\n"
    )
    monkeypatch.setenv(server_auth.TOKENS_ENV, str(path))
    return path


def _status(authorization: str | None) -> tuple[int, str]:
    with pytest.raises(Auth.exceptions.HTTPException) as caught:
        user_for(authorization)
    return caught.value.status_code, str(caught.value.detail)


def test_a_known_bearer_token_authenticates_its_user(tokens: Path) -> None:
    assert user_for("Bearer a-token") == "alice"
    assert user_for("bearer  b-token ") == "bob"
    assert "a-token" not in tokens.read_text()  # only digests are stored
    result = asyncio.run(server_auth.authenticate("Bearer b-token"))
    assert result["identity"] == "bob"


def test_unknown_missing_or_non_bearer_credentials_are_401(tokens: Path) -> None:
    assert _status(None) == (401, "missing 'Authorization: Bearer <token>' header")
    assert _status("Bearer ") == (401, "missing 'Authorization: Bearer <token>' header")
    assert _status("Basic a-token") == (401, "missing 'Authorization: Bearer <token>' header")
    assert _status("Bearer a-token2") == (401, "unknown token")


def test_no_tokens_file_refuses_everyone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(server_auth.TOKENS_ENV, raising=False)
    status, detail = _status("Bearer a-token")
    assert status == 401 and "set MPM_SERVER_TOKENS" in detail
    monkeypatch.setenv(server_auth.TOKENS_ENV, str(tmp_path / "absent"))
    status, detail = _status("Bearer a-token")
    assert status == 401 and "cannot read" in detail


def test_a_malformed_tokens_file_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "tokens"
    bad.write_text(f"alice {token_digest('x')}\nbob plaintext-token\n")
    with pytest.raises(TokenFileError, match=r"tokens:2: expected '<user-id> sha256:"):
        load_tokens(bad)
    bad.write_text(f"Mallory\u0301 {token_digest('x')}\n")  # not a safe user id
    with pytest.raises(TokenFileError, match=r"tokens:1: expected"):
        load_tokens(bad)
    bad.write_text("# nobody\n")
    with pytest.raises(TokenFileError, match="no tokens"):
        load_tokens(bad)


def test_a_changed_tokens_file_is_read_again(tokens: Path) -> None:
    assert user_for("Bearer a-token") == "alice"
    tokens.write_text(f"carol {token_digest('c-token-longer')}\n")
    assert user_for("Bearer c-token-longer") == "carol"
    assert _status("Bearer a-token") == (401, "unknown token")  # revoked


@pytest.mark.parametrize(
    ("kwargs", "detail"),
    [
        ({"context": {"policies": "/tmp/mine"}}, "run context sets policies"),
        ({"context": {"identity": "/tmp/keys"}}, "run context sets identity"),
        ({"context": {"workspace": "/tmp/ws", "toolset": "real"}}, "sets toolset, workspace"),
        ({"config": {"configurable": {"tracking": False}}}, "config.configurable sets tracking"),
        ({"context": {"colour": "red"}}, "unknown setting(s) colour"),
        ({"input": {"settings": {"toolset": "real"}}}, "run input 'settings' is refused"),
        ({"command": {"update": {"audit": []}}}, "command 'update' is refused"),
        ({"command": {"goto": ["approval"]}}, "command 'goto' is refused"),
        (
            {"config": {"configurable": {"checkpoint_id": "1f0-old"}}, "command": {"resume": 1}},
            "run from a checkpoint_id is refused",
        ),
    ],
)
def test_run_requests_a_client_may_not_make_are_403(kwargs: dict, detail: str) -> None:
    with pytest.raises(Auth.exceptions.HTTPException) as caught:
        check_run(kwargs)
    assert caught.value.status_code == 403
    assert detail in str(caught.value.detail)


def test_a_run_with_client_settings_and_a_resume_passes() -> None:
    check_run({"input": {"requirements": {}}, "context": {"model": "stub", "tracing": False}})
    check_run({"command": {"resume": {"interrupt-id": {"decision": "approve"}}}})
