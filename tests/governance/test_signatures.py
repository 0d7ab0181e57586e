"""SSHSIG decisions and the identity directory, with real keys and the real ssh-keygen/agent."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpm.governance.approvers import ApproverDirectory
from mpm.governance.assessment import GovernanceContext
from mpm.governance.identity import IdentityDirectory, IdentityError
from mpm.governance.signatures import (
    SigningError,
    allowed_signers_line,
    decision_payload,
    generate_key,
    request_digest,
    sign,
    signing_key_for,
    verify,
    verify_with_ssh_keygen,
)

PAYLOAD = decision_payload(
    thread_id="t1",
    approval_id="fw:a",
    request_sha256=request_digest({"approval_id": "fw:a", "refusals": [1]}),
    decision="approve",
    comment="ok",
    answers={},
    signer="alice",
    decision_id="d" * 32,
)


@pytest.fixture
def people(tmp_path: Path) -> tuple[IdentityDirectory, Path, Path]:
    """alice and bob with real ed25519 keys; allowed_signers binds only alice's."""
    alice_pub = generate_key(tmp_path / "keys" / "alice", "alice")
    generate_key(tmp_path / "keys" / "bob", "bob")
    identity = tmp_path / "identity"
    identity.mkdir()
    (identity / "allowed_signers").write_text(allowed_signers_line("alice", alice_pub))
    return IdentityDirectory.load(identity), tmp_path / "keys" / "alice", tmp_path / "keys" / "bob"


def test_a_signature_verifies_in_process_and_with_ssh_keygen(people: tuple) -> None:
    identity, alice, _ = people
    signature = sign(PAYLOAD, alice)
    fingerprint = verify(PAYLOAD, signature, "alice", identity)
    assert fingerprint and fingerprint == identity.keys_of("alice")[0].fingerprint
    ok, out = verify_with_ssh_keygen(PAYLOAD, signature, "alice", identity.allowed_signers)
    assert ok and 'Good "mpm-decision" signature for alice' in out
    assert verify(PAYLOAD.replace("approve", "reject"), signature, "alice", identity) is None
    assert verify(PAYLOAD, signature, "bob", identity) is None  # bob has no bound key


def test_another_key_or_namespace_does_not_verify(people: tuple, tmp_path: Path) -> None:
    identity, alice, bob = people
    assert verify(PAYLOAD, sign(PAYLOAD, bob), "alice", identity) is None
    git_sig = subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-n", "git", "-f", str(alice)],
        input=PAYLOAD.encode(),
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert verify(PAYLOAD, git_sig, "alice", identity) is None, "a git signature is no decision"


def test_an_edited_entry_whose_payload_is_not_text_does_not_verify(people: tuple) -> None:
    """Someone editing the trail on disk can put any JSON in an entry: a payload or a
    signature that is an object or a list verifies as nothing (and raises nothing)."""
    identity, alice, _ = people
    signature = sign(PAYLOAD, alice)
    assert verify({"thread_id": "t1", "signer": "alice"}, signature, "alice", identity) is None
    assert verify(["approve"], signature, "alice", identity) is None
    assert verify(PAYLOAD, {"sig": signature}, "alice", identity) is None


def test_allowed_signers_keys_for_other_namespaces_do_not_count(tmp_path: Path) -> None:
    pub = generate_key(tmp_path / "k", "carol")
    key = pub.read_text().split()
    (tmp_path / "allowed_signers").write_text(f'carol namespaces="git" {key[0]} {key[1]}\n')
    assert IdentityDirectory.load(tmp_path).keys_of("carol") == []


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[dict[str, str]]:
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.1"], check=True)
        yield {"SSH_AUTH_SOCK": str(sock)}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_signing_through_ssh_agent_with_only_the_public_key(
    people: tuple, agent: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    identity, alice, _ = people
    monkeypatch.setenv("SSH_AUTH_SOCK", agent["SSH_AUTH_SOCK"])
    subprocess.run(["ssh-add", "-q", str(alice)], check=True, env={**os.environ, **agent})
    public_only = alice.with_name("alice.pub")
    alice.unlink()  # the private key is only in the agent now
    signature = sign(PAYLOAD, public_only)
    assert verify(PAYLOAD, signature, "alice", identity)


def test_no_key_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MPM_SIGNING_KEY", raising=False)
    with pytest.raises(SigningError, match="a typed --as alone proves nothing"):
        signing_key_for("alice", None)
    with pytest.raises(SigningError, match="no such file"):
        signing_key_for("alice", tmp_path)  # a key directory without alice's key


def test_domino_approvers_get_members_from_members_yaml(
    shared_policies: Path, tmp_path: Path
) -> None:
    identity = tmp_path / "identity"
    identity.mkdir()
    (identity / "members.yaml").write_text(
        "modeling-review: [Alice]\nlegal-review: [bob]\nanthony-huinker-team: [anthony_huinker]\n"
    )
    approvers = ApproverDirectory.load(shared_policies / "domino-examples" / "Approvers.md")
    assert not approvers.members_of("modeling-review"), "Domino's file lists groups only"
    merged = approvers.merged(IdentityDirectory.load(identity))
    assert merged.can_act_as("ALICE", "modeling-review") and not merged.can_act_as(
        "bob", "modeling-review"
    )
    # the examples name single users too (andrea_lowe ...): unknown to this directory
    with pytest.raises(ValueError, match="resolves to no group or member"):
        GovernanceContext.load(shared_policies / "domino-examples", identity)


def test_members_yaml_refuses_aliases_and_unsafe_ids(tmp_path: Path) -> None:
    (tmp_path / "members.yaml").write_text("a: &x [m1]\nb: *x\n")
    with pytest.raises(IdentityError, match="aliases"):
        IdentityDirectory.load(tmp_path)
    (tmp_path / "members.yaml").write_text("a: [mr-reviewеr-1]\n")  # Cyrillic e
    with pytest.raises(IdentityError, match="ids may use only"):
        IdentityDirectory.load(tmp_path)
