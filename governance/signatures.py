"""Signed decisions: SSHSIG signatures, as ``ssh-keygen -Y sign/verify`` and git make them.

Why SSHSIG: approvers already have OpenSSH keys (and agents, hardware tokens); an auditor
can check any single decision with the stock ``ssh-keygen -Y verify`` and nothing of mpm.
Nothing here is home-made crypto: signing runs ``ssh-keygen -Y sign`` (with a private key
file, or with ssh-agent when the key given is a public key and ``SSH_AUTH_SOCK`` is set);
verifying uses the ``sshsig`` library (pure Python on ``cryptography``, in-process, so a
decision is checked without a process start), which reproduces ``ssh-keygen -Y verify``.

The signed message is the canonical JSON of :func:`decision_payload`: it binds the thread,
the approval, the SHA-256 of the request the approver was shown, the decision, comment,
answers, the signer's id and a nonce (the decision id), so a signature can be neither moved
to another approval nor replayed as a different decision.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from mpm.governance.identity import NAMESPACE, IdentityDirectory, canonical_id

PAYLOAD_VERSION = 1
VOLATILE_REQUEST_FIELDS = frozenset({"refusals", "audit_head", "remaining_groups", "signed"})
"""Interrupt fields that change while the same request is pending (not what was decided on)."""
MAX_SIGNATURE_CHARS = 8000


class SigningError(RuntimeError):
    """The decision could not be signed (no key, wrong key, ssh-keygen failed); one line."""


def canonical_json(value: Any) -> str:
    """One spelling of a JSON value: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def request_digest(request: dict[str, Any]) -> str:
    """SHA-256 of what the approver was shown: the approval's interrupt payload minus the
    fields that change while it is pending (the refusals so far, the audit head)."""
    shown = {k: v for k, v in request.items() if k not in VOLATILE_REQUEST_FIELDS}
    return hashlib.sha256(canonical_json(shown).encode("utf-8")).hexdigest()


def decision_payload(
    *,
    thread_id: str,
    approval_id: str,
    request_sha256: str,
    decision: str,
    comment: str,
    answers: dict[str, Any],
    signer: str,
    decision_id: str,
) -> str:
    """The exact text an approver signs (and ``ssh-keygen -Y verify`` reads from stdin)."""
    return canonical_json(
        {
            "mpm_decision": PAYLOAD_VERSION,
            "thread_id": thread_id,
            "approval_id": approval_id,
            "request_sha256": request_sha256,
            "decision": decision,
            "comment": comment,
            "answers": answers,
            "signer": canonical_id(signer, what="signer"),
            "decision_id": decision_id,
        }
    )


# --------------------------------------------------------------------------- signing


def signing_key_for(signer: str, key: str | os.PathLike[str] | None) -> Path:
    """The key file to sign with: ``key`` (or ``MPM_SIGNING_KEY``). A directory stands for
    one key per member id (``<dir>/<member-id>``, the layout ``mpm demo`` writes)."""
    chosen = key or os.environ.get("MPM_SIGNING_KEY")
    if not chosen:
        raise SigningError(
            "no signing key: pass --key PATH (a private key, or a public key held by "
            "ssh-agent) or set MPM_SIGNING_KEY; a typed --as alone proves nothing"
        )
    path = Path(chosen).expanduser()
    if path.is_dir():
        path = path / canonical_id(signer, what="--as")
    if not path.is_file():
        raise SigningError(f"signing key {path}: no such file")
    return path


def sign(payload: str, key_file: str | os.PathLike[str]) -> str:
    """Sign ``payload`` with ``ssh-keygen -Y sign`` in the mpm namespace; the armored SSHSIG.

    A public key file makes ssh-keygen ask ssh-agent (``SSH_AUTH_SOCK``) for the private
    half, so the private key never needs to be on disk."""
    key_file = Path(key_file)
    try:
        proc = subprocess.run(
            ["ssh-keygen", "-q", "-Y", "sign", "-n", NAMESPACE, "-f", str(key_file)],
            input=payload.encode("utf-8"),
            capture_output=True,
            timeout=60,
            check=False,
        )
    except FileNotFoundError:
        raise SigningError("ssh-keygen not found: install openssh-client") from None
    except subprocess.TimeoutExpired:
        raise SigningError(f"ssh-keygen -Y sign with {key_file} timed out") from None
    if proc.returncode != 0 or b"BEGIN SSH SIGNATURE" not in proc.stdout:
        why = proc.stderr.decode(errors="replace").strip().splitlines()
        raise SigningError(
            f"ssh-keygen -Y sign with {key_file} failed: {why[-1] if why else 'no signature'}"
        )
    return proc.stdout.decode("ascii")


# --------------------------------------------------------------------------- verifying


def verify(payload: str, signature: str, signer: str, identity: IdentityDirectory) -> str | None:
    """The fingerprint of the ``signer``'s key that made ``signature`` over ``payload``, or
    None: unknown signer, no key of theirs, wrong namespace, or not a valid signature."""
    keys = identity.keys_of(signer)
    if not keys or not isinstance(payload, str) or not isinstance(signature, str):
        return None  # an edited entry's fields can be anything JSON holds
    if len(signature) > MAX_SIGNATURE_CHARS:
        return None
    return _verify_cached(payload, signature, tuple(k.openssh for k in keys))


@lru_cache(maxsize=4096)
def _verify_cached(payload: str, signature: str, keys: tuple[str, ...]) -> str | None:
    import sshsig
    from sshsig.ssh_public_key import PublicKey, ssh_key_fingerprint_sha256_str

    allowed = []
    for text in keys:
        try:
            allowed.append(PublicKey.from_openssh_str(text))
        except (ValueError, NotImplementedError):
            continue
    try:
        used = sshsig.verify(payload.encode("utf-8"), signature, allowed, namespace=NAMESPACE)
    except (sshsig.InvalidSignature, NotImplementedError, ValueError):
        return None
    return ssh_key_fingerprint_sha256_str(used)


def verify_with_ssh_keygen(
    payload: str, signature: str, signer: str, allowed_signers: Path
) -> tuple[bool, str]:
    """The same check by the stock tool (what an auditor runs by hand); (ok, its output)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        sig = Path(tmp) / "decision.sig"
        sig.write_text(signature, encoding="ascii")
        proc = subprocess.run(
            [
                "ssh-keygen",
                "-Y",
                "verify",
                "-f",
                str(allowed_signers),
                "-I",
                canonical_id(signer),
                "-n",
                NAMESPACE,
                "-s",
                str(sig),
            ],
            input=payload.encode("utf-8"),
            capture_output=True,
            timeout=60,
            check=False,
        )
    out = (proc.stdout + proc.stderr).decode(errors="replace").strip()
    return proc.returncode == 0, out


# --------------------------------------------------------------------------- keys


def generate_key(path: str | os.PathLike[str], comment: str) -> Path:
    """A new ed25519 key pair without passphrase (``ssh-keygen -t ed25519 -N ""``); for demo
    role accounts and tests. Returns the public key file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise SigningError(
            f"ssh-keygen -t ed25519 -f {path} failed: {proc.stderr.decode(errors='replace').strip()}"
        )
    return path.with_name(path.name + ".pub")


def allowed_signers_line(member: str, public_key_file: str | os.PathLike[str]) -> str:
    key_type, b64, *_ = Path(public_key_file).read_text(encoding="ascii").split()
    member = canonical_id(member, what="member")
    return f'{member} namespaces="{NAMESPACE}" {key_type} {b64} {member}\n'
