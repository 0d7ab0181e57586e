"""``mpm demo``: one command that shows a whole governed project on the embedded defaults.

It kicks off a bundled example, or any requirements file (``--requirements``: the user's
own data, checked before anything is created exactly as ``mpm kickoff`` checks it), on
the stub model, SQLite checkpoints and local MLflow in the workspace, and where the run
stops for people it plays the approvers *openly*: it generates a demo ed25519 key per role
account of ``reference/governance/Approvers.md`` in the workspace (``demo-keys/``), writes
an identity directory binding them (``demo-identity/``), and every approval is decided by
a role account that is a member of a group the approval names (never the requester),
signed through exactly the same path as ``mpm approve --key``, each one announced as a
demo approver. Questions only a person can answer are never answered by the demo: they
are left for ``mpm answer`` (or, for a user's file, shown as the ``governance_answers``
block to add to it). At the end it loads the registered pipeline model and predicts on
held-out rows.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import typer

from mpm.cli import render
from mpm.cli.main import (
    _context,
    _guarded,
    _runner,
    app,
    console,
    fail,
)
from mpm.cli.options import GIVEN_STORE, RunOptions, StoreOptions, store_options

EXAMPLES = ("credit_risk", "breast_cancer", "diabetes_progression")
DEFAULT_EXAMPLE = "breast_cancer"


def example_path(name: str) -> Path:
    return Path(str(files("mpm.reference") / "examples" / f"{name}.yaml"))


@app.command()
@store_options
def demo(
    example: Annotated[
        str | None,
        typer.Option(
            "--example",
            "-e",
            help=f"Bundled example: {', '.join(EXAMPLES)} (default {DEFAULT_EXAMPLE}).",
        ),
    ] = None,
    requirements: Annotated[
        Path | None,
        typer.Option(
            "--requirements",
            "-r",
            help="Your own requirements YAML instead of a bundled example (data paths are "
            "relative to the workspace).",
        ),
    ] = None,
    thread: Annotated[
        str | None, typer.Option("--thread", "-t", help="Thread id (default: generated).")
    ] = None,
    store: StoreOptions = GIVEN_STORE,
) -> None:
    """Run a bundled example, or your own requirements file, end to end: approvals are
    decided openly by demo keys of the reference role accounts."""
    from mpm.governance.decisions import make_decision
    from mpm.graph.requirements_file import (
        RequirementsError,
        check_requirements_data,
        load_requirements,
    )
    from mpm.graph.runner import new_thread_id
    from mpm.graph.state import now_iso
    from mpm.graph.workspace import Workspace, WorkspaceError, validate_thread_id

    if example is not None and requirements is not None:
        raise fail("--example and --requirements: expected at most one of them")
    if example is not None and example not in EXAMPLES:
        raise fail(f"--example {example!r}: expected one of {', '.join(EXAMPLES)}")
    source = requirements or example_path(example or DEFAULT_EXAMPLE)
    thread_id = thread or new_thread_id()
    try:
        req = load_requirements(source)
        validate_thread_id(thread_id)
        # before anything exists: a bad data source leaves no workspace, keys or thread behind
        check_requirements_data(req, Workspace.locate(store.workspace).root, thread_id, source)
    except (RequirementsError, WorkspaceError) as exc:
        raise fail(str(exc)) from exc
    keys, identity = _demo_identity(_context(store).ws.root)
    ctx = _context(
        RunOptions(workspace=store.workspace, checkpointer=store.checkpointer, identity=identity)
    )
    runner = _runner(ctx, store.checkpointer)
    console.print(
        f"demo identities: a key per role account in {render.escape(keys)}, bound by "
        f"{render.escape(identity / 'allowed_signers')} (demo only: real approvers sign with their own keys)"
    )
    console.print(
        f"[bold]mpm demo[/]: {render.escape(req.project_name)} from {render.escape(source)} — "
        f"thread [bold]{thread_id}[/], workspace {render.escape(ctx.ws.root)}"
    )
    outcome = _guarded(
        lambda: runner.start(thread_id, {"requirements": req.model_dump(mode="json")}), thread_id
    )
    while outcome.interrupts:
        value = outcome.interrupts[0]["value"]
        if value.get("type") != "approval":
            render.outcome(console, outcome)
            _say_what_a_person_must_answer(value, source, requirements is not None)
            console.print(
                f"the run needs answers only a person can give: `mpm answer {thread_id} -w {ctx.ws.root}`"
            )
            raise typer.Exit(0)
        approver = _demo_approver(value, req.requested_by)
        if approver is None:
            render.outcome(console, outcome)
            console.print(
                f"no reference role account but the requester ({render.escape(req.requested_by)}) "
                f"may approve {render.escape(value['approval_id'])}: it waits for `mpm approve`"
            )
            raise typer.Exit(0)
        console.print(
            f"[magenta]demo approver[/] {render.escape(approver)} (member of {render.escape(', '.join(value['approver_groups']))}) "
            f"signs an approval of [bold]{render.escape(value['approval_id'])}[/] with {render.escape(keys / approver)}"
        )
        decision = make_decision(
            value,
            approver=approver,
            key=keys,
            comment="approved by a reference role account in `mpm demo`",
            submitted_at=now_iso(),
        )
        outcome = _guarded(
            lambda d=decision, a=value["approval_id"]: runner.answer(
                thread_id, "approval", d, key=a
            ),
            thread_id,
        )
    render.outcome(console, outcome)
    _predict(outcome.values)
    if outcome.status in {"failed", "partial", "failed_governance", "failed_criteria"}:
        raise typer.Exit(1)


def _demo_approver(request: dict[str, Any], requested_by: str | None) -> str | None:
    """The first eligible role account that is not the requester (separation of duties)."""
    from mpm.governance.identity import same_id

    return next((u for u in request["eligible_approvers"] if not same_id(u, requested_by)), None)


def _say_what_a_person_must_answer(value: dict[str, Any], source: Path, own_file: bool) -> None:
    """For governance questions, the requirements-file form of the answers: the demo never
    answers for a person, but the answers can go into the file for the next run."""
    questions = [q for q in value.get("questions") or [] if q.get("framework")]
    if value.get("type") != "open_questions" or not questions or not own_file:
        return
    console.print(
        f"or give the answers in {render.escape(source)} (a person's answers, not the demo's) "
        "and run the demo again:"
    )
    lines = ["governance_answers:"]
    for framework in sorted({str(q["framework"]) for q in questions}):
        lines.append(f"  {framework}:")
        for q in questions:
            if q["framework"] == framework:
                options = q.get("options") or []
                hint = f"one of: {', '.join(map(str, options))}" if options else "your answer"
                lines.append(f"    {q.get('alias') or q['key']}: <{hint}>")
    console.print(render.escape("\n".join(lines)))


def _demo_identity(root: Path) -> tuple[Path, Path]:
    """(key directory, identity directory) in the workspace: one ed25519 key per reference
    role account, made on first use (``ssh-keygen -t ed25519 -N ""``) and bound in
    allowed_signers."""
    from mpm.governance.approvers import ApproverDirectory
    from mpm.governance.signatures import allowed_signers_line, generate_key

    keys, identity = root / "demo-keys", root / "demo-identity"
    identity.mkdir(parents=True, exist_ok=True)
    signers = identity / "allowed_signers"
    bound = signers.read_text(encoding="ascii") if signers.is_file() else ""
    approvers = Path(str(files("mpm.reference") / "governance" / "Approvers.md"))
    for member in sorted(ApproverDirectory.load(approvers).known_users):
        private = keys / member
        if not private.exists():
            generate_key(private, f"{member}@mpm-demo")
        line = allowed_signers_line(member, private.with_name(member + ".pub"))
        if line not in bound:
            bound += line
    signers.write_text(bound, encoding="ascii")
    return keys, identity


def _predict(values: dict[str, Any]) -> None:
    """Load the registered model from MLflow and score a few held-out rows."""
    mlops = ((values.get("results") or {}).get("mlops") or {}).get("outputs") or {}
    data = ((values.get("results") or {}).get("data_acquisition") or {}).get("outputs") or {}
    uri = mlops.get("model_uri")
    if not uri:
        console.print("no registered model to load")
        return
    import mlflow
    import pandas as pd

    from mpm.tools.tracking import use_tracking_uri

    with use_tracking_uri((values.get("mlflow") or {}).get("tracking_uri")):
        model = mlflow.pyfunc.load_model(uri)
    rows = pd.read_parquet(data["test_path"]).head(5)
    predictions = model.predict(rows.drop(columns=[data["target_column"]]))
    console.print(
        f"[bold]{render.escape(uri)}[/] loaded from the registry; predictions on 5 held-out rows:"
    )
    console.print(
        render.escape(
            predictions.assign(actual=rows[data["target_column"]].to_numpy()).to_string(index=False)
        )
    )
