"""The commands people use between runs: approvals, decisions, answers, audit, dashboard."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mpm.cli import render
from mpm.cli.main import (
    EXIT_BAD_INPUT,
    EXIT_RUN_FAILED,
    _finish,
    _guarded,
    _out,
    _reader,
    _runner,
    _thread_context,
    app,
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

PRECHECK = False
"""Put decisions to ``runner.DECISION_CHECKS`` before resuming the graph. Off: a refusal
made there would not reach the thread's audit trail (the approval node records every
refused attempt, `tests/graph/test_governed_runs.py`), and a refused decision's resume is
cheap anyway (the approval task re-asks at once; nothing else runs). On once refusals have
an audit path of their own (e.g. a signature check refusing a forged decision)."""


@app.command()
@store_options
def approvals(as_json: JsonOpt = False, store: StoreOptions = GIVEN_STORE) -> None:
    """Everything waiting for an approval, across all threads: who may approve, since when."""
    runner = _reader(store)
    rows = _guarded(runner.pending_approvals)
    if as_json:
        print_json(
            {"version": render.JSON_VERSION, "approvals": [render.approval_json(r) for r in rows]}
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
        table.add_row(
            render.escape(r["thread_id"]),
            render.escape(f"{r['approval_id']}\n{r['name']}"),
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
        str, typer.Option("--as", help="Your approver id (a member of a group the approval names).")
    ],
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
    as_json: JsonOpt = False,
    run: RunOptions = GIVEN_RUN,
) -> None:
    """Record a decision on a pending approval and resume the run."""
    if not as_.strip():
        raise fail("--as: your approver id is required (a member of a group the approval names)")
    if reject and request_changes:
        raise fail("--reject and --request-changes: choose one")
    if (reject or request_changes) and not comment.strip():
        raise fail("--comment: a rejection or change request needs a comment for the agent")
    decision = {
        "decision": "reject" if reject else "request_changes" if request_changes else "approve",
        "approver": as_.strip(),
        "comment": comment,
        "thread_id": thread,
        "approval_id": approval,
        "decision_id": uuid.uuid4().hex,
        "submitted_at": _now(),
        "answers": _read_answers(answers) if answers else {},
    }
    runner = _runner(_thread_context(run, thread), run.checkpointer, progress=_out(as_json))
    from mpm.graph.runner import DecisionRefused

    try:
        outcome = _guarded(
            lambda: runner.answer(thread, "approval", decision, key=approval, precheck=PRECHECK),
            thread,
        )
    except DecisionRefused as exc:  # refused before the graph was resumed
        if as_json:
            verdict = {
                "approval_id": approval,
                "decision": decision["decision"],
                "approver": decision["approver"],
                "accepted": False,
                "reason": str(exc),
            }
            print_json({"version": render.JSON_VERSION, "thread_id": thread, "decision": verdict})
        raise fail(f"decision refused: {exc}; approval {approval} is still pending") from None
    refusal = _refusal_for(outcome, approval, decision)
    verdict = {
        "approval_id": approval,
        "decision": decision["decision"],
        "approver": decision["approver"],
        "accepted": refusal is None,
        "reason": refusal,
    }
    if refusal:
        if as_json:
            print_json(render.outcome_json(outcome) | {"decision": verdict})
        else:
            render.outcome(console, outcome)
        raise fail(f"decision refused: {refusal}; approval {approval} is still pending")
    _out(as_json).print(
        f"[green]recorded[/]: {render.escape(decision['decision'])} on {render.escape(approval)} by {render.escape(as_)}"
    )
    _finish(runner, outcome, interactive=False, as_json=as_json, extra={"decision": verdict})


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
    as_json: JsonOpt = False,
    run: RunOptions = GIVEN_RUN,
) -> None:
    """Answer the questions a run is waiting for (kickoff or governance), then resume it."""
    runner = _runner(_thread_context(run, thread), run.checkpointer, progress=_out(as_json))
    snapshot = _guarded(lambda: runner.snapshot(thread))
    pending = [i["value"] for i in snapshot.interrupts if isinstance(i["value"], dict)]
    kinds = [
        p.get("type") for p in pending if p.get("type") in {"open_questions", "kickoff_questions"}
    ]
    if not kinds:
        raise fail(f"thread {thread} is not waiting for answers (status {snapshot.status})")
    kind = kinds[0]
    questions = next(p for p in pending if p.get("type") == kind)["questions"]
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
    else:
        raise fail("no --file given and no terminal to ask in")
    outcome = _guarded(lambda: runner.answer(thread, kind, given), thread)
    _finish(runner, outcome, interactive=sys.stdin.isatty(), as_json=as_json)


@app.command()
@store_options
def audit(
    thread: Annotated[str, typer.Argument(help="Thread id.")],
    verify: Annotated[
        bool, typer.Option("--verify", help="Check the hash chain; exit 1 if any entry was edited.")
    ] = False,
    file: Annotated[
        Path | None, typer.Option("--file", help="Verify an exported audit trail (JSONL) instead.")
    ] = None,
    export: Annotated[
        Path | None, typer.Option("--export", help="Write the trail as JSONL to this file.")
    ] = None,
    as_json: JsonOpt = False,
    store: StoreOptions = GIVEN_STORE,
) -> None:
    """Show the thread's audit trail of approval decisions; verify its hash chain."""
    from mpm.graph import audit as trail

    if file is not None:
        try:
            entries = trail.from_jsonl(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise fail(f"{file}: not a readable JSONL audit trail: {exc}") from exc
    else:
        runner = _reader(store)
        entries = _guarded(lambda: runner.snapshot(thread)).values.get("audit") or []
    if as_json:
        _audit_json(thread, entries, export, verify)
        return
    table = Table(title=f"Audit trail of {render.escape(thread)}")
    for col in (
        "#",
        "time",
        "approval",
        "approver",
        "decision",
        "accepted",
        "reason / comment",
        "hash",
    ):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(
            str(e.get("seq")),
            render.escape(e.get("ts")),
            render.escape(e.get("approval_id")),
            render.escape(e.get("approver")),
            render.escape(e.get("decision")),
            "yes" if e.get("accepted") else "[red]REFUSED[/]",
            render.escape(e.get("comment") if e.get("accepted") else e.get("reason")),
            render.escape(str(e.get("hash", ""))[:12]),
        )
    console.print(table if entries else "no decisions recorded yet")
    if export is not None:
        export.write_text(trail.to_jsonl(entries), encoding="utf-8")
        console.print(f"exported {len(entries)} entries to {render.escape(export)}")
    if verify:
        ok, problems = trail.verify(entries)
        if not ok:
            for p in problems:
                console.print(f"[bold red]broken:[/] {render.escape(p)}")
            raise typer.Exit(EXIT_RUN_FAILED)
        console.print(f"[green]verified[/]: {len(entries)} entries, hash chain intact")


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


def _audit_json(thread: str, entries: list[Any], export: Path | None, verify: bool) -> None:
    from mpm.graph import audit as trail

    if export is not None:
        export.write_text(trail.to_jsonl(entries), encoding="utf-8")
    ok, problems = trail.verify(entries) if verify else (None, [])
    print_json(
        {
            "version": render.JSON_VERSION,
            "thread_id": thread,
            "entries": entries,
            "verified": ok,
            "problems": problems,
        }
    )
    if verify and not ok:
        raise typer.Exit(EXIT_RUN_FAILED)


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


def _refusal_for(outcome: Any, approval_id: str, decision: dict[str, Any]) -> str | None:
    """Why our decision was refused, if the approval is still pending with a refusal of it."""
    for item in outcome.interrupts:
        value = item["value"] if isinstance(item["value"], dict) else {}
        if value.get("approval_id") != approval_id:
            continue
        for refusal in value.get("refusals") or []:
            if (
                refusal.get("ts") == decision["submitted_at"]
                and refusal.get("approver") == decision["approver"]
            ):
                return refusal["reason"]
    audit = outcome.values.get("audit") or []
    for entry in reversed(audit):
        if entry.get("decision_id") == decision["decision_id"] and not entry.get("accepted"):
            return entry.get("reason")
    return None
