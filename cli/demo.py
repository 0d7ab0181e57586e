"""``mpm demo``: one command that shows a whole governed project on the embedded defaults.

It kicks off a bundled example (stub model, SQLite checkpoints, local MLflow in the
workspace) and, where the run stops for people, plays them *openly*: it generates a demo
ed25519 key per role account of ``reference/governance/Approvers.md`` in the workspace
(``demo-keys/``), writes an identity directory binding them (``demo-identity/``), and every
approval is decided by a role account that is a member of a group the approval names,
signed through exactly the same path as ``mpm approve --key``. Open questions it cannot answer are left for ``mpm answer``. At the end
it loads the registered pipeline model and predicts on held-out rows.
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


def example_path(name: str) -> Path:
    return Path(str(files("mpm.reference") / "examples" / f"{name}.yaml"))


@app.command()
@store_options
def demo(
    example: Annotated[
        str, typer.Option("--example", "-e", help=f"Bundled example: {', '.join(EXAMPLES)}.")
    ] = "breast_cancer",
    thread: Annotated[
        str | None, typer.Option("--thread", "-t", help="Thread id (default: generated).")
    ] = None,
    store: StoreOptions = GIVEN_STORE,
) -> None:
    """Run a bundled example end to end, approvals decided openly by reference role accounts."""
    from mpm.governance.decisions import make_decision
    from mpm.governance.identity import same_id
    from mpm.graph.requirements_file import RequirementsError, load_requirements
    from mpm.graph.runner import new_thread_id
    from mpm.graph.state import now_iso

    if example not in EXAMPLES:
        raise fail(f"--example {example!r}: expected one of {', '.join(EXAMPLES)}")
    try:
        req = load_requirements(example_path(example))
    except RequirementsError as exc:
        raise fail(str(exc)) from exc
    keys, identity = _demo_identity(_context(store).ws.root)
    ctx = _context(
        RunOptions(workspace=store.workspace, checkpointer=store.checkpointer, identity=identity)
    )
    runner = _runner(ctx, store.checkpointer)
    thread_id = thread or new_thread_id()
    console.print(
        f"demo identities: a key per role account in {render.escape(keys)}, bound by "
        f"{render.escape(identity / 'allowed_signers')} (demo only: real approvers sign with their own keys)"
    )
    console.print(
        f"[bold]mpm demo[/]: {render.escape(req.project_name)} — thread [bold]{thread_id}[/], workspace {ctx.ws.root}"
    )
    outcome = _guarded(
        lambda: runner.start(thread_id, {"requirements": req.model_dump(mode="json")}), thread_id
    )
    while outcome.interrupts:
        value = outcome.interrupts[0]["value"]
        if value.get("type") != "approval":
            render.outcome(console, outcome)
            console.print(
                f"the run needs answers only a person can give: `mpm answer {thread_id} -w {ctx.ws.root}`"
            )
            raise typer.Exit(0)
        approver = next(u for u in value["eligible_approvers"] if not same_id(u, req.requested_by))
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
