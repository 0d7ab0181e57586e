"""The organisation's identity directory: which public key belongs to which member id.

Why: an approver is a key, not a typed name. Approvers.md says which member ids belong to
which group; this directory says which OpenSSH public key speaks for each member id, so a
decision counts only when it is signed by that key.

Layout (default ``<policies>/identity/``; ``--identity DIR`` or ``MPM_IDENTITY``)::

    identity/
      allowed_signers   # exactly what `ssh-keygen -Y verify -f` reads, one key per line:
                        # mr-reviewer-1 namespaces="mpm-decision" ssh-ed25519 AAAA... comment
      members.yaml      # optional: group -> [member ids], for Approvers.md files in Domino's
                        # own format (groups without members); merged with mpm's member lists

Ids are compared in canonical form (:func:`canonical_id`): NFKC, casefold, trimmed, and
restricted to ``[a-z0-9][a-z0-9._@-]*`` so that case, trailing spaces, full-width forms or
Cyrillic look-alike letters cannot make two different spellings of one person, or one
spelling of two.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

NAMESPACE = "mpm-decision"
"""The SSHSIG namespace of an mpm decision; a signature for git or ssh login never counts."""
ALLOWED_SIGNERS = "allowed_signers"
MEMBERS_FILE = "members.yaml"
MAX_FILE_BYTES = 1_000_000

_SAFE = re.compile(r"[a-z0-9][a-z0-9._@-]{0,127}")


class IdentityError(ValueError):
    """The identity directory cannot be used as it is; the message is one line naming the file."""


class UnsafeIdError(ValueError):
    """An id outside the safe alphabet (controls, mixed scripts, look-alikes)."""


def canonical_id(raw: object, *, what: str = "id") -> str:
    """The canonical form of a member or group id, or :class:`UnsafeIdError` (one line).

    NFKC folds compatibility forms (full-width letters, ligatures) into plain ones; casefold
    and trim make ``MR-Reviewer-1 `` and ``mr-reviewer-1`` the same person. What is left must
    be plain ASCII letters, digits and ``. _ @ -``: a Cyrillic ``е`` is refused, not guessed.
    """
    if not isinstance(raw, str):
        raise UnsafeIdError(f"{what}: expected a text id; got {type(raw).__name__}")
    text = unicodedata.normalize("NFKC", raw).casefold().strip()
    if not _SAFE.fullmatch(text):
        shown = raw.encode("unicode_escape").decode("ascii")[:80]
        raise UnsafeIdError(
            f"{what} {shown!r}: ids may use only a-z, 0-9 and . _ @ - (after Unicode NFKC and "
            "case folding), starting with a letter or digit"
        )
    return text


def same_id(a: object, b: object) -> bool:
    """Whether two ids name the same member; an unsafe id matches nothing."""
    try:
        return canonical_id(a) == canonical_id(b)
    except UnsafeIdError:
        return False


@dataclass(frozen=True)
class SignerKey:
    member: str
    """Canonical member id (the allowed_signers principal)."""
    key_type: str
    base64_key: str
    line: int

    @property
    def openssh(self) -> str:
        return f"{self.key_type} {self.base64_key}"

    @property
    def fingerprint(self) -> str:
        import base64
        import hashlib

        digest = hashlib.sha256(base64.b64decode(self.base64_key)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass
class IdentityDirectory:
    """Member ids -> public keys (allowed_signers) and group -> members (members.yaml)."""

    root: Path | None = None
    keys: dict[str, list[SignerKey]] = field(default_factory=dict)
    groups: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def allowed_signers(self) -> Path | None:
        return self.root / ALLOWED_SIGNERS if self.root is not None else None

    @classmethod
    def load(cls, root: str | Path | None) -> IdentityDirectory:
        """Read a directory; a missing directory is an empty identity (nobody can sign)."""
        if root is None:
            return cls()
        root = Path(root)
        directory = cls(root=root)
        if not root.is_dir():
            return directory
        signers = root / ALLOWED_SIGNERS
        if signers.is_file():
            directory._read_signers(signers)
        members = root / MEMBERS_FILE
        if members.is_file():
            directory._read_members(members)
        return directory

    def _read_signers(self, path: Path) -> None:
        from sshsig.allowed_signers import AllowedSigner

        text = _read_text(path)
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                signer = AllowedSigner.parse(line)
            except (ValueError, NotImplementedError) as exc:
                raise IdentityError(
                    f"{path}:{number}: not an allowed_signers line: {exc}"
                ) from None
            namespaces = (signer.options or {}).get("namespaces")
            if namespaces is not None and NAMESPACE not in namespaces.split(","):
                continue  # this key may sign other things, not mpm decisions
            for principal in signer.principals.split(","):
                try:
                    member = canonical_id(principal, what=f"{path}:{number}: principal")
                except UnsafeIdError as exc:
                    raise IdentityError(str(exc)) from None
                self.keys.setdefault(member, []).append(
                    SignerKey(member, signer.key_type, signer.base64_key, number)
                )

    def _read_members(self, path: Path) -> None:
        data = _load_yaml(_read_text(path), path)
        if data is None:
            return
        if not isinstance(data, dict):
            raise IdentityError(f"{path}: expected a mapping of group -> [member ids]")
        for group, members in data.items():
            if not isinstance(members, list):
                raise IdentityError(f"{path}: {group}: expected a list of member ids")
            try:
                name = canonical_id(str(group), what=f"{path}: group")
                ids = frozenset(canonical_id(m, what=f"{path}: {group}: member") for m in members)
            except UnsafeIdError as exc:
                raise IdentityError(str(exc)) from None
            self.groups[name] = self.groups.get(name, frozenset()) | ids

    # ----- questions

    def keys_of(self, member: str) -> list[SignerKey]:
        try:
            return list(self.keys.get(canonical_id(member), []))
        except UnsafeIdError:
            return []

    @property
    def members(self) -> frozenset[str]:
        return frozenset(self.keys) | frozenset(m for g in self.groups.values() for m in g)

    def members_of(self, group: str) -> frozenset[str]:
        try:
            return self.groups.get(canonical_id(group), frozenset())
        except UnsafeIdError:
            return frozenset()


def _read_text(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise IdentityError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise IdentityError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise IdentityError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _load_yaml(text: str, path: Path) -> object:
    """YAML without aliases: a members file has no use for them, and they can explode."""
    import yaml

    class _NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
            if self.check_event(yaml.AliasEvent):
                raise IdentityError(f"{path}: YAML aliases (*name) are not allowed here")
            return super().compose_node(parent, index)

    try:
        return yaml.load(text, Loader=_NoAliases)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise IdentityError(f"{path}: YAML syntax error: {str(exc).splitlines()[0]}") from None


def unresolved_names(
    names: Iterable[str], approvers: object, identity: IdentityDirectory
) -> list[str]:
    """Approver names a policy uses that are neither a group nor a member anywhere."""
    groups = {_canon_or_raw(g) for g in getattr(approvers, "groups", {})} | set(identity.groups)
    members = {_canon_or_raw(m) for m in getattr(approvers, "known_users", ())} | identity.members
    return sorted({n for n in names if _canon_or_raw(n) not in groups | members})


def _canon_or_raw(name: str) -> str:
    try:
        return canonical_id(name)
    except UnsafeIdError:
        return name
