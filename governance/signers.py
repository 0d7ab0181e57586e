"""Who may sign for which approver group, read without the policies.

Why its own module: refusing a decision from someone who may not sign it (not a member of
the approval's group, a key the identity directory does not bind to them, a reused decision
id) needs only ``Approvers.md`` and the identity directory. Loading the policies -- YAML,
pydantic validation, rule compilation -- was most of a refused ``mpm approve``. The approval
pre-check (``graph/approval_judgement.py``) judges with this first; whatever it does not
refuse is judged again with the whole governance context, as the approval node judges it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mpm.governance.approvers import APPROVERS_FILE, ApproverDirectory
from mpm.governance.identity import IdentityDirectory

__all__ = ["SignerContext"]


@dataclass(frozen=True)
class SignerContext:
    """The approver directory (merged with the identity directory's memberships, as
    :class:`~mpm.governance.assessment.GovernanceContext` merges it) and the identities."""

    approvers: ApproverDirectory
    identity: IdentityDirectory

    @classmethod
    def load(cls, directory: str | Path, identity: str | Path | None = None) -> SignerContext:
        """Raises what :meth:`ApproverDirectory.load` raises for a broken ``Approvers.md``."""
        folder = Path(directory)
        people = IdentityDirectory.load(Path(identity) if identity else folder / "identity")
        path = folder / APPROVERS_FILE
        approvers = ApproverDirectory.load(path) if path.is_file() else ApproverDirectory()
        return cls(approvers=approvers.merged(people), identity=people)
