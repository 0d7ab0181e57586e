"""The commands people use between runs: approvals, decisions, answers, audit, dashboard."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mpm.cli import render
from mpm.cli.main import (
    EXIT_BAD_INPUT,
    EXIT_RUN_FAILED,
    _context,
    _finish,
    _guarded,
    _out,
    _reader,
    _runner,
    _thread_context,
    app,
    check_model_spec,
    console,
    fail,
    print_json,
)
from mpm.cli.options import (
    GIVEN_RUN,
    GIVEN_STORE,
    JsonOpt,
    RunOptions,
    StoreOptions,
    run_options,
    store_options,
)

PRECHECK = True
"""Judge a decision before resuming the graph (``Runner.answer(precheck=True)``, the
``--wait`` path; the default path, ``Runner.submit``, always judges first): the approval
node's own judgement (``graph/approval_judgement.py``) on the task's input as the
checkpoint holds it. A refusal is appended to the thread's audit trail, as the node appends
one, and the graph is neither built nor resumed; an accepted decision is received into the
thread's inbox (or, with ``--wait``, resumes the graph), and the approval node judges it
again (authoritatively) and records it."""


@app.command()
@store_options
def approvals(as_json: JsonOpt = False, store: StoreOptions = GIVEN_STORE) -> None:
    """Everything waiting for an approval, across all threads: who may approve, since when."""
    from mpm.graph import inbox

    runner = _reader(store)
    rows = _guarded(runner.pending_approvals)
    received = {t: inbox.received(runner.workspace, t) for t in {r["thread_id"] for r in rows}}

    def received_for(row: dict[str, Any]) -> dict[str, Any] | None:
        """The decision on this approval received and not yet applied, if any."""
        info = received.get(row["thread_id"])
        mine = [
            e for e in (info or {}).get("entries", []) if e["approval_id"] == row["approval_id"]
        ]
        return {**info, "entries": mine} if info and mine else None

    if as_json:
        print_json(
            {
                "version": render.JSON_VERSION,
                "approvals": [
                    render.approval_json(r) | {"received": received_for(r)} for r in rows
                ],
            }
        )
        return
    if not rows:
        console.print("no approvals are pending")
        return
    table = Table(title="Pending approvals")
    for col in ("thread", "approval", "framework", "groups", "may approve", "since"):
        table.add_column(col, overflow="fold")
    for r in rows:
        rule = r.get("group_rule", "any_of")
        needs = [q["label"] for q in r.get("evidence_questions") or []]
        groups = ", ".join(r["approver_groups"])
        if len(r["approver_groups"]) > 1:
            remaining = r.get("remaining_groups")
            groups += (
                f"\n(all of{': still ' + ', '.join(remaining) if remaining else ''})"
                if rule == "all_of"
                else "\n(any one of)"
            )
        if needs:
            groups += f"\nanswer first: {'; '.join(needs)}"
        got = received_for(r)
        label = f"{r['approval_id']}\n{r['name']}"
        if got:
            label += "\n" + inbox.received_line(r["thread_id"], got)
        table.add_row(
            render.escape(r["thread_id"]),
            render.escape(label),
            render.escape(r["framework_title"]),
            render.escape(groups),
            render.escape(", ".join(r["eligible_approvers"])),
            render.escape(r["requested_at"]),
        )
    console.print(table)


@app.command()
@run_options
def approve(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    approval: Annotated[str, typer.Argument(help="Approval id, as `mpm approvals` lists it.")],
    as_: Annotated[
        str,
        typer.Option(
            "--as", help="Your member id: the principal of your key in the identity directory."
        ),
    ],
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            help="Your signing key: a private key file, or its .pub with ssh-agent "
            "(SSH_AUTH_SOCK); env MPM_SIGNING_KEY (a directory means <dir>/<member-id>).",
        ),
    ] = None,
    comment: Annotated[
        str, typer.Option("--comment", "-c", help="Why you decided so (kept in the audit trail).")
    ] = "",
    reject: Annotated[
        bool, typer.Option("--reject", help="Reject: the owning stage goes back to its agent.")
    ] = False,
    request_changes: Annotated[
        bool, typer.Option("--request-changes", help="Ask for changes: the owning stage goes back.")
    ] = False,
    answers: Annotated[
        Path | None,
        typer.Option("--answers", help="YAML with answers to the approval's own questions."),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Resume the run here and print its outcome at its next stop (default: return "
            "once the decision is received; a background worker continues the run).",
        ),
    ] = False,
    as_json: JsonOpt = False,
    run: RunOptions = GIVEN_RUN,
) -> None:
    """Sign a decision on a pending approval (SSHSIG, `ssh-keygen -Y sign`) and resume the run."""
    from mpm.governance.decisions import make_decision
    from mpm.governance.identity import UnsafeIdError, canonical_id
    from mpm.governance.signatures import SigningError

    if not as_.strip():
        raise fail("--as: your approver id is required (a member of a group the approval names)")
    try:
        signer = canonical_id(as_, what="--as")
    except UnsafeIdError as exc:
        raise fail(str(exc)) from exc
    if reject and request_changes:
        raise fail("--reject and --request-changes: choose one")
    if (reject or request_changes) and not comment.strip():
        raise fail("--comment: a rejection or change request needs a comment for the agent")
    given_answers = _read_answers(answers) if answers else {}
    # read the thread without the graph: a refused decision then never builds it
    reader = _reader(run)
    ctx = _thread_context(run, thread, check_model=False)
    if run.model:
        check_model_spec(ctx.model)  # given now: checked now
    runner = _runner(ctx, run.checkpointer, progress=_out(as_json), open_store=False)
    request = _pending_request(reader, thread, approval)
    choice = "reject" if reject else "request_changes" if request_changes else "approve"
    verdict = {
        "approval_id": approval,
        "decision": choice,
        "approver": signer,
        "accepted": False,
        "reason": None,
    }

    def refused(reason: str) -> None:
        """The --json verdict of a decision refused before the graph judged it."""
        if as_json:
            verdict["reason"] = reason
            print_json({"version": render.JSON_VERSION, "thread_id": thread, "decision": verdict})

    try:
        decision = make_decision(
            request,
            approver=signer,
            key=key,
            decision=choice,
            comment=comment,
            answers=given_answers,
            submitted_at=_now(),
        )
    except SigningError as exc:
        refused(f"--key: {exc}")
        raise fail(f"--key: {exc}") from exc
    from mpm.graph.runner import DecisionRefused

    if not wait:
        try:
            entry = _guarded(
                lambda: runner.submit(thread, "approval", decision, key=approval), thread
            )
        except DecisionRefused as exc:  # refused before anything was received
            refused(str(exc))
            raise fail(f"decision refused: {exc}; approval {approval} is still pending") from None
        if entry is not None:  # judged in full and received: the worker applies it
            verdict.update(accepted=True, reason=None)
            what = (
                f"[green]accepted[/]: {render.escape(decision['decision'])} on "
                f"{render.escape(approval)} by {render.escape(signer)} "
                f"(signed, decision {decision['decision_id']})"
            )
            _continue_in_background(run, runner, reader, thread, entry, what, as_json, verdict)
            return
        # not judged without the graph (e.g. an unreadable step): the node judges it here
    try:
        outcome = _guarded(
            lambda: runner.answer(thread, "approval", decision, key=approval, precheck=PRECHECK),
            thread,
        )
    except DecisionRefused as exc:  # refused before the graph was resumed
        refused(str(exc))
        raise fail(f"decision refused: {exc}; approval {approval} is still pending") from None
    refusal = _refusal_for(runner, outcome, thread, decision)
    verdict.update(accepted=refusal is None, reason=refusal)
    if refusal:
        if as_json:
            print_json(render.outcome_json(outcome) | {"decision": verdict})
        else:
            render.outcome(console, outcome)
        raise fail(f"decision refused: {refusal}; approval {approval} is still pending")
    _out(as_json).print(
        f"[green]recorded[/]: {render.escape(decision['decision'])} on {render.escape(approval)} "
        f"by {render.escape(signer)} (signed, decision {decision['decision_id']})"
    )
    _finish(runner, outcome, interactive=False, as_json=as_json, extra={"decision": verdict})


def _continue_in_background(
    run: RunOptions,
    runner: Any,
    reader: Any,
    thread: str,
    entry: Any,
    what: str,
    as_json: bool,
    verdict: dict[str, Any] | None = None,
) -> None:
    """Start the worker for a received entry and say so: what was accepted, that the run
    continues in the background, the worker's pid and log, and how to follow it."""
    from mpm.cli.background import start_worker
    from mpm.graph.runner import RunOutcome

    try:
        worker = start_worker(run, runner.workspace, thread, entry.name)
    except OSError as exc:  # the entry is durable: nothing is lost, only not yet applied
        raise fail(
            f"received ({entry.path}), but the background worker could not be started: {exc}; "
            f"apply it with `mpm resume {thread}`",
            code=EXIT_RUN_FAILED,
        ) from exc
    follow = f"mpm status {thread}"
    _out(as_json).print(
        f"{what}; the run continues in the background (worker pid {worker['pid']}, log "
        f"{render.escape(worker['log'])}); follow it with `{render.escape(follow)}`",
        soft_wrap=True,
    )
    if as_json:
        # the checkpoint as read without the graph: approval tasks decided in the open step
        # wrote none of what the outcome shows (else, and only then, read it through the graph)
        view = _guarded(lambda: reader.view(thread, need_values=False))
        shown = {
            "requirements",
            "plan",
            "results",
            "governance",
            "deliverables",
            "remediation_attempts",
        }
        before = view if view is not None and not view.stale & shown else None
        if before is None:
            before = _guarded(lambda: reader.snapshot(thread))
        others = [i for i in before.interrupts if i["id"] != entry.interrupt_id]
        now = RunOutcome(thread, "running", others, before.values, tuple(before.next))
        extra: dict[str, Any] = {"continuing": {**worker, "follow": follow.split()}}
        if verdict is not None:
            extra["decision"] = verdict
        print_json(render.outcome_json(now) | extra)


def _pending_request(reader: Any, thread: str, approval: str) -> dict[str, Any]:
    """The approval's interrupt payload as the approver is shown it (what they sign)."""
    view = _guarded(lambda: reader.view(thread, need_values=False))
    snapshot = view if view is not None else _guarded(lambda: reader.snapshot(thread))
    for item in snapshot.interrupts:
        value = item["value"] if isinstance(item["value"], dict) else {}
        if value.get("type") == "approval" and value.get("approval_id") == approval:
            return value
    pending = [
        str(i["value"].get("approval_id") or i["value"].get("type"))
        for i in snapshot.interrupts
        if isinstance(i["value"], dict)
    ]
    raise fail(
        f"thread {thread} is not waiting for approval {approval}; pending: "
        f"{', '.join(pending) or 'nothing'}"
    )


@app.command()
@run_options
def answer(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="YAML mapping of question key or alias to answer."),
    ] = None,
    template: Annotated[
        Path | None,
        typer.Option("--template", help="Write the open questions as an answers file to fill in."),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Resume the run here and print its outcome at its next stop (default with "
            "--file: return once the answers are received; a background worker continues).",
        ),
    ] = False,
    as_json: JsonOpt = False,
    run: RunOptions = GIVEN_RUN,
) -> None:
    """Answer the questions a run is waiting for (kickoff or governance), then resume it."""
    reader = _reader(run)  # what the thread waits for, read without building the graph
    # as for approve: the model spec is checked only if given now (the recorded one was
    # checked when the thread recorded it), and the store was just read by the reader
    ctx = _thread_context(run, thread, check_model=False)
    if run.model:
        check_model_spec(ctx.model)
    runner = _runner(ctx, run.checkpointer, progress=_out(as_json), open_store=False)
    snapshot = _guarded(lambda: reader.snapshot(thread))
    pending = [i["value"] for i in snapshot.interrupts if isinstance(i["value"], dict)]
    kinds = [
        p.get("type") for p in pending if p.get("type") in {"open_questions", "kickoff_questions"}
    ]
    if not kinds:
        raise fail(f"thread {thread} is not waiting for answers (status {snapshot.status})")
    kind = kinds[0]
    item = next(
        i
        for i in snapshot.interrupts
        if isinstance(i["value"], dict) and i["value"]["type"] == kind
    )
    questions = item["value"]["questions"]
    if template is not None:
        _write_template(template, thread, questions)
        console.print(f"wrote {len(questions)} open questions to {render.escape(template)}")
        return
    if file is not None:
        given = {k: v for k, v in _read_answers(file).items() if v is not None}  # blank: unanswered
        known = {q.get("key") or q.get("field") for q in questions} | {
            q.get("alias") for q in questions
        }
        unknown = sorted(set(given) - known)
        if unknown:
            raise fail(
                f"{file}: {unknown[0]}: not one of the questions asked; expected one of {', '.join(sorted(k for k in known if k))}"
            )
    elif sys.stdin.isatty() and not as_json:
        given = render.ask_questions(console, questions, kind)
        wait = True  # a conversation at the terminal: its follow-up questions are asked here
    else:
        raise fail("no --file given and no terminal to ask in")
    if not wait:
        entry = _guarded(lambda: runner.submit(thread, kind, given, interrupt=item), thread)
        what = f"[green]received[/]: {len(given)} answers to the {render.escape(kind.replace('_', ' '))}"
        _continue_in_background(run, runner, reader, thread, entry, what, as_json)
        return
    outcome = _guarded(lambda: runner.answer(thread, kind, given), thread)
    _finish(runner, outcome, interactive=sys.stdin.isatty(), as_json=as_json)


@app.command()
@store_options
def audit(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Re-verify every signature and compare the trail with the checkpoint and "
            "MLflow anchors; exit 1 with one line per problem.",
        ),
    ] = False,
    file: Annotated[
        Path | None, typer.Option("--file", help="Verify an exported audit trail (JSONL) instead.")
    ] = None,
    export: Annotated[
        Path | None, typer.Option("--export", help="Write the trail as JSONL to this file.")
    ] = None,
    export_decision: Annotated[
        int | None,
        typer.Option(
            "--export-decision",
            help="Write entry N's signed payload, its .sig and allowed_signers to --out, for "
            "`ssh-keygen -Y verify` by hand.",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Directory for --export-decision.")] = Path(
        "."
    ),
    identity: Annotated[
        Path | None,
        typer.Option(
            "--identity", help="Identity directory to verify against (default: the thread's)."
        ),
    ] = None,
    as_json: JsonOpt = False,
    store: StoreOptions = GIVEN_STORE,
) -> None:
    """Show the thread's audit trail of signed decisions; verify signatures, chain and anchors."""
    from mpm.governance.identity import IdentityDirectory, IdentityError
    from mpm.graph import audit as trail
    from mpm.graph.context import RunContext

    problems: list[str] = []
    values: dict[str, Any] = {}
    snapshot: Any = None
    if file is not None:
        try:
            entries = trail.from_jsonl(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise fail(f"{file}: not a readable JSONL audit trail: {exc}") from exc
        identity_dir = identity or _context(store).identity_dir()
    else:
        runner = _reader(store)  # a read command: it creates nothing
        snapshot = _guarded(lambda: runner.snapshot(thread), thread)
        values = snapshot.values
        recorded = values.get("settings") or {}
        ctx = RunContext(
            workspace=str(runner.workspace.root),
            model="stub",
            toolset="noop",
            tracking=False,
            policies=recorded.get("policies"),
            identity=str(identity) if identity else recorded.get("identity"),
        )
        try:
            entries = trail.read_trail(trail.trail_path(runner.workspace, thread))
        except ValueError as exc:
            entries, problems = [], [str(exc)]
        identity_dir = ctx.identity_dir()
    try:
        people = IdentityDirectory.load(identity_dir)
    except IdentityError as exc:
        raise fail(str(exc)) from exc
    if export is not None:
        export.write_text(trail.to_jsonl(entries), encoding="utf-8")
    if export_decision is not None:
        _export_decision(entries, export_decision, out, people)
    if verify:
        _, chain_problems = trail.verify(entries)
        problems += chain_problems + trail.verify_signatures(entries, people)
        if snapshot is not None:
            anchors = {"checkpoint audit_head": values.get("audit_head")}
            for i, item in enumerate(snapshot.interrupts):
                if isinstance(item["value"], dict) and item["value"].get("audit_head"):
                    anchors[f"checkpoint pending request {i}"] = item["value"]["audit_head"]
            anchors.update(_mlflow_heads(values))
            problems += trail.compare_copies(
                entries, checkpoint=list(values.get("audit") or []), anchors=anchors
            )
            problems += trail.forged_approvals(entries, values.get("approvals") or {})
    if as_json:
        print_json(
            {
                "version": render.JSON_VERSION,
                "thread_id": thread,
                "entries": entries,
                "verified": (not problems) if verify else None,
                "problems": problems,
            }
        )
        if verify and problems:
            raise typer.Exit(EXIT_RUN_FAILED)
        return
    _print_trail(thread, entries)
    if export is not None:
        console.print(f"exported {len(entries)} entries to {render.escape(export)}")
    if not verify:
        return
    if problems:
        for p in problems:
            console.print(f"[bold red]broken:[/] {render.escape(p)}")
        raise typer.Exit(EXIT_RUN_FAILED)
    signed = sum(1 for e in entries if e.get("signature"))
    console.print(
        f"[green]verified[/]: {len(entries)} entries ({signed} signed), hash chain intact, "
        "signatures valid" + ("" if file is not None else ", checkpoint and anchors agree")
    )


def _print_trail(thread: str, entries: list[dict[str, Any]]) -> None:
    from mpm.governance.decisions import WITHDRAWAL

    table = Table(title=f"Audit trail of {render.escape(thread)}")
    for col in (
        "#",
        "time",
        "approval",
        "approver",
        "decision",
        "accepted",
        "reason / comment",
        "key",
        "hash",
    ):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(
            render.escape(str(e.get("seq"))),
            render.escape(e.get("ts"))
            + (f"\n(claimed {render.escape(e.get('claimed_at'))})" if e.get("claimed_at") else ""),
            render.escape(e.get("approval_id")),
            render.escape(e.get("approver")),
            render.escape(e.get("decision")),
            "yes"
            if e.get("accepted")
            else "withdrawn"
            if e.get("kind") == WITHDRAWAL
            else "[red]REFUSED[/]",
            render.escape(e.get("comment") if e.get("accepted") else e.get("reason")),
            render.escape(str(e.get("key_fingerprint") or "unsigned")),
            render.escape(str(e.get("hash", ""))[:12]),
        )
    console.print(table if entries else "no decisions recorded yet")


def _export_decision(entries: list[dict[str, Any]], n: int, out: Path, people: Any) -> None:
    import shutil

    from mpm.governance.identity import NAMESPACE

    entry = next((e for e in entries if e.get("seq") == n), None)
    if entry is None or not entry.get("payload") or not entry.get("signature"):
        raise fail(f"--export-decision {n}: no signed entry {n} in this trail")
    out.mkdir(parents=True, exist_ok=True)
    payload, sig = out / f"decision-{n}.json", out / f"decision-{n}.json.sig"
    payload.write_bytes(entry["payload"].encode("utf-8"))
    sig.write_text(entry["signature"], encoding="ascii")
    signers = out / "allowed_signers"
    if people.allowed_signers is None or not people.allowed_signers.is_file():
        raise fail("--export-decision: the identity directory has no allowed_signers file")
    shutil.copyfile(people.allowed_signers, signers)
    console.print(
        f"wrote {render.escape(payload)}, {render.escape(sig)} and {render.escape(signers)}; check it with:"
    )
    console.print(
        render.escape(
            f"ssh-keygen -Y verify -f {signers} -I {entry['approver']} -n {NAMESPACE} -s {sig} < {payload}"
        ),
        soft_wrap=True,
    )


def _mlflow_heads(values: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """The chain heads tagged on the thread's MLflow parent run and registered version."""
    ids = values.get("mlflow") or {}
    if not ids.get("parent_run_id") or not ids.get("tracking_uri"):
        return {}
    from mpm.graph import audit as trail
    from mpm.tools import tracking

    heads: dict[str, dict[str, Any] | None] = {}
    c = tracking.client(ids["tracking_uri"])
    try:
        run = c.get_run(ids["parent_run_id"])
        heads["MLflow parent run"] = trail.parse_head_tag(run.data.tags.get(trail.HEAD_TAG))
        mlops = ((values.get("results") or {}).get("mlops") or {}).get("outputs") or {}
        if mlops.get("registered_model_name") and mlops.get("registered_model_version"):
            mv = c.get_model_version(
                mlops["registered_model_name"], str(mlops["registered_model_version"])
            )
            heads[f"registered model {mv.name} v{mv.version}"] = trail.parse_head_tag(
                mv.tags.get(trail.HEAD_TAG)
            )
    except Exception as exc:  # noqa: BLE001 - an unreachable anchor is itself a finding
        raise fail(f"MLflow anchors of {ids['parent_run_id']}: cannot read them: {exc}") from exc
    return heads


@app.command()
@store_options
def dashboard(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    open_: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False,
    store: StoreOptions = GIVEN_STORE,
) -> None:
    """Write the thread's current governance dashboard and print where it is."""
    runner = _reader(store)
    values = _guarded(lambda: runner.snapshot(thread)).values
    path = ((values.get("governance") or {}).get("files") or {}).get("dashboard")
    if not path or not Path(path).is_file():
        raise fail(f"thread {thread} has no governance dashboard yet", code=EXIT_BAD_INPUT)
    console.print(render.escape(path))
    if open_:
        import webbrowser

        webbrowser.open(Path(path).as_uri())


def _now() -> str:
    from mpm.graph.state import now_iso

    return now_iso()


def _write_template(path: Path, thread: str, questions: list[dict[str, Any]]) -> None:
    """A YAML answers file: each question as comments, its key with an empty value."""
    import yaml

    if path.exists():
        raise fail(f"{path}: already exists; not overwritten")
    lines = [f"# answers for thread {thread}: fill in, then `mpm answer {thread} --file {path}`"]
    for q in questions:
        key = q.get("field") or q.get("key")
        lines.append("")
        for text in str(q.get("question") or q.get("label") or "").splitlines():
            lines.append(f"# {text}")
        if q.get("options"):
            lines.append(f"# one of: {', '.join(map(str, q['options']))}")
        if q.get("problem"):
            lines.append(f"# problem: {q['problem']}")
        lines.append(yaml.safe_dump({key: None}, default_flow_style=False).strip())
    try:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise fail(f"{path}: cannot write: {exc}") from exc


def _read_answers(path: Path) -> dict[str, Any]:
    """An answers file: a YAML mapping, at most 1 MB, aliases within the node budget, no
    key given twice (the person meant one of the two answers)."""
    import yaml

    from mpm.governance._files import MAX_YAML_BYTES, yaml_budget_problem
    from mpm.graph.requirements_file import DuplicateKeyError, load_yaml_unique

    try:
        if path.is_file() and path.stat().st_size > MAX_YAML_BYTES:
            raise fail(
                f"{path}: file of {path.stat().st_size:,} bytes exceeds the limit of {MAX_YAML_BYTES:,} bytes"
            )
        text = path.read_text(encoding="utf-8")
        problem = yaml_budget_problem(text, ruamel=False)
        if problem is not None:
            raise fail(f"{path}: {problem}")
        data = load_yaml_unique(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{path}: cannot read: {exc}") from exc
    except DuplicateKeyError as exc:
        raise fail(
            f"{path}: line {exc.line}: {exc.key}: duplicate key (first at line {exc.first})"
        ) from exc
    except yaml.YAMLError as exc:
        raise fail(f"{path}: YAML syntax error: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise fail(
            f"{path}: expected a mapping of question key to answer; got {type(data).__name__}"
        )
    return {str(k): v for k, v in data.items()}


def _refusal_for(runner: Any, outcome: Any, thread: str, decision: dict[str, Any]) -> str | None:
    """Why our decision was refused, from the durable audit trail (by decision id)."""
    from mpm.graph import audit as trail

    for entry in reversed(trail.read_trail(trail.trail_path(runner.workspace, thread))):
        if entry.get("decision_id") == decision["decision_id"]:
            return None if entry.get("accepted") else str(entry.get("reason"))
    return None
