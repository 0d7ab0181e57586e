"""Helpers for graph tests: run a thread in-process, or drive the CLI in a subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from mpm.graph.context import RunContext
from mpm.graph.runner import Runner

REPO = Path(__file__).resolve().parents[2]


def runner(
    workspace: Path,
    *,
    toolset: str = "noop",
    tracking: bool = False,
    model: str = "stub",
    checkpointer: str | None = None,
    events: list[dict[str, Any]] | None = None,
) -> Runner:
    ctx = RunContext(workspace=str(workspace), model=model, toolset=toolset, tracking=tracking)
    sink = events.append if events is not None else None
    return Runner(ctx, checkpointer, on_event=sink)


def example(name: str, **overrides: Any) -> dict[str, Any]:
    data = yaml.safe_load((REPO / "reference" / "examples" / f"{name}.yaml").read_text())
    data.update(overrides)
    return data


def mpm(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mpm", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        input=input,
        cwd=REPO,
    )


def auto_answer(question: dict[str, Any]) -> Any:
    """A valid answer for an open governance question, by its input type (tests only)."""
    kind, options = question.get("type"), question.get("options") or []
    if kind in {"radio", "select"}:
        return options[0]
    if kind in {"checkbox", "multiselect"}:
        return options[:1]
    if kind == "numeric":
        return question.get("min") if question.get("min") is not None else 1
    if kind == "date":
        return "2027-01-15"
    return "answered by the test project owner"


# The session's identity directory and key directory (set by the ``signing_identity``
# fixture in tests/conftest.py): every approver a test plays signs with a real key.
_SIGNING: dict[str, Path] = {}


def use_signing_dirs(identity: Path, keys: Path) -> None:
    identity.mkdir(parents=True, exist_ok=True)
    keys.mkdir(parents=True, exist_ok=True)
    _SIGNING.update(identity=identity, keys=keys)


def reference_signers(root: Path, extra: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """(identity directory, key directory) under ``root``: a real ed25519 key for every
    role account of the reference Approvers.md (and each of ``extra``), bound in
    allowed_signers, as an organisation's identity directory would hold them. The test
    session and the benchmarks that play approvers sign with these."""
    from mpm.governance.approvers import ApproverDirectory

    identity, keys = root / "identity", root / "keys"
    use_signing_dirs(identity, keys)
    reference = ApproverDirectory.load(REPO / "reference" / "governance" / "Approvers.md")
    for member in [*sorted(reference.known_users), *extra]:
        key_for(member)
    return identity, keys


@contextlib.contextmanager
def own_signers(root: Path, extra: tuple[str, ...] = ()) -> Iterator[Path]:
    """:func:`reference_signers` under ``root`` for the block only (yields the identity
    directory): a benchmark run inside the test session signs with its own keys, and the
    session's approvers sign with the session's again afterwards (they once kept signing
    with the benchmark's, which the session's identity directory does not bind)."""
    before = dict(_SIGNING)
    try:
        yield reference_signers(root, extra)[0]
    finally:
        _SIGNING.clear()
        _SIGNING.update(before)


def key_for(member: str) -> Path:
    """The private key of ``member`` (made, and bound in allowed_signers, on first use)."""
    from mpm.governance.identity import canonical_id
    from mpm.governance.signatures import allowed_signers_line, generate_key

    member = canonical_id(member)
    path = _SIGNING["keys"] / member
    if not path.exists():
        public = generate_key(path, f"{member}@mpm-tests")
        with open(_SIGNING["identity"] / "allowed_signers", "a", encoding="ascii") as fh:
            fh.write(allowed_signers_line(member, public))
    return path


def bind_named_people(policy_dir: Path) -> list[str]:
    """Give every person a policy names directly as approver (no group of Approvers.md has
    them, e.g. ``anthony_huinker`` in the Domino examples) a key in the session's identity
    directory, as their organisation's identity directory would. Without it the policy
    fails to load: nobody could ever sign as that approver."""
    from mpm.governance.library import PolicyLibrary

    names = sorted({u.name for u in PolicyLibrary.load(policy_dir).unknown_approvers()})
    for name in names:
        key_for(name)
    return names


def signing_identity_dir() -> Path:
    return _SIGNING["identity"]


def approver_for(request: dict[str, Any], requested_by: str | None) -> str:
    """An authorised approver for an approval request: an eligible member, not the requester."""
    from mpm.governance.identity import same_id

    eligible = [u for u in request["eligible_approvers"] if not same_id(u, requested_by)]
    assert eligible, f"nobody may approve {request['approval_id']}"
    key_for(eligible[0])
    return eligible[0]


def decision(
    request: dict[str, Any],
    approver: str,
    verdict: str = "approve",
    comment: str = "ok",
    *,
    key: Path | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A decision signed by ``approver``'s key (or ``key``), through the same path as
    ``mpm approve``."""
    from mpm.governance.decisions import make_decision
    from mpm.graph.state import now_iso

    return make_decision(
        request,
        approver=approver,
        key=key or key_for(approver),
        decision=verdict,
        comment=comment,
        submitted_at=now_iso(),
        **fields,
    )


def drive_to_completion(r: Runner, outcome: Any, *, max_rounds: int = 60) -> Any:
    """Answer every open question and approve every pending approval until the run ends."""
    requested_by = (outcome.values.get("requirements") or {}).get("requested_by")
    for _ in range(max_rounds):
        if not outcome.interrupts:
            return outcome
        item = outcome.interrupts[0]
        value = item["value"]
        if value["type"] == "open_questions":
            answers = {q["key"]: auto_answer(q) for q in value["questions"]}
            outcome = r.answer(outcome.thread_id, "open_questions", answers)
        elif value["type"] == "approval":
            outcome = r.answer(
                outcome.thread_id,
                "approval",
                decision(value, approver_for(value, requested_by)),
                key=value["approval_id"],
            )
        else:
            raise AssertionError(f"unexpected interrupt {value}")
    raise AssertionError("the run did not finish")
