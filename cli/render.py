"""How runs look in the terminal: progress lines, status tables, questions."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape as _escape
from rich.table import Table

from mpm.graph.safe_text import visible_controls

STATUS_STYLE = {
    "success": "green",
    "completed": "bold green",
    "failed_with_fallback": "yellow",
    "partial": "bold yellow",
    "waiting": "bold cyan",
    "running": "cyan",
    "failed": "bold red",
    "failed_governance": "bold red",
    "failed_criteria": "bold red",
    "revision_requested": "magenta",
}


def escape(text: Any) -> str:
    """Rich markup is interpreted and terminals obey control sequences: anything from input
    is escaped for both before printing."""
    return _escape(visible_controls(str(text)))


def last_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else ""


def styled(status: str | None) -> str:
    status = status or "-"
    return f"[{STATUS_STYLE.get(status, 'white')}]{escape(status)}[/]"


class ProgressPrinter:
    """Prints one line per stage event as the graph streams them."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        stage = escape(ev.get("stage", ""))
        if kind == "started":
            self.console.print(f"[bold]▶ {stage}[/] ({escape(ev.get('agent'))})")
        elif kind == "tool":
            self.console.print(f"    · {escape(ev.get('tool'))}")
        elif kind == "retry":
            self.console.print(f"    [yellow]↻ retrying after: {escape(ev.get('error'))}[/]")
        elif kind == "fallback":
            self.console.print(f"    [yellow]⤷ fallback: {escape(ev.get('fallback'))}[/]")
        elif kind == "finished":
            summary = escape(last_line(ev.get("summary")))
            self.console.print(
                f"  {styled(ev.get('status'))} {stage} in {ev.get('duration_s', 0):.1f}s  [dim]{summary}[/]"
            )
        elif kind == "log" and ev.get("node") in {
            "supervisor",
            "governance",
            "approvals",
            "synthesize",
            "plan",
        }:
            self.console.print(
                f"[dim]{escape(ev.get('node'))}: {escape(ev.get('event'))} {escape(ev.get('detail', ''))}[/]"
            )
        elif kind == "message":
            self.console.print(escape(ev.get("text", "")))


QUESTION_INTROS = {
    "kickoff_questions": "I still need a few things before I can plan the project.",
    "open_questions": "The governance policies ask questions no stage could answer; empty skips one.",
}
MULTI_VALUE = {"checkbox", "multiselect"}


def ask_questions(
    console: Console, questions: list[dict[str, Any]], kind: str = "kickoff_questions"
) -> dict[str, Any]:
    """Ask kickoff or governance questions at the terminal; multi-choice answers split on commas."""
    console.print(f"[bold]Project manager:[/] {QUESTION_INTROS.get(kind, '')}")
    answers: dict[str, Any] = {}
    for q in questions:
        options = q.get("options")
        prompt = escape(q.get("question") or q.get("label"))
        if q.get("type"):
            prompt += f" [dim]({escape(q['type'])})[/]"
        if q.get("problem"):
            console.print(f"[yellow]{escape(q['problem'])}[/]")
        if options:
            prompt += f" [dim]({escape(' | '.join(map(str, options)))})[/]"
        console.print(prompt)
        text = console.input("[bold cyan]you>[/] ").strip()
        if text:
            answers[q.get("field") or q.get("key")] = (
                [p.strip() for p in text.split(",")] if q.get("type") in MULTI_VALUE else text
            )
    return answers


def stage_table(values: dict[str, Any]) -> Table:
    table = Table(title="Stages", show_lines=False)
    for col in ("stage", "agent", "status", "time (s)", "tries", "summary"):
        table.add_column(col)
    plan = values.get("plan") or {}
    results = values.get("results") or {}
    for spec in plan.get("stages", []):
        r = results.get(spec["name"]) or {}
        summary = r.get("error") or last_line(r.get("summary"))
        table.add_row(
            escape(spec["name"]),
            escape(spec["agent"]),
            styled(r.get("status") or "pending"),
            f"{r['duration_s']:.1f}" if r.get("duration_s") is not None else "",
            str(r.get("attempts", "")),
            escape(summary[:90]),
        )
    return table


def waiting(console: Console, interrupts: list[dict[str, Any]]) -> None:
    for item in interrupts:
        value = (
            item["value"]
            if isinstance(item["value"], dict)
            else {"type": "question", "text": item["value"]}
        )
        kind = value.get("type")
        if kind == "kickoff_questions":
            fields = ", ".join(q.get("field", "?") for q in value.get("questions", []))
            console.print(f"[cyan]waiting for kickoff answers:[/] {escape(fields)}")
        elif kind == "approval":
            console.print(
                f"[cyan]waiting for approval[/] [bold]{escape(value.get('approval_id'))}[/] "
                f"({escape(value.get('name'))}) from {escape(', '.join(value.get('approver_groups', [])))} "
                f"since {escape(value.get('requested_at', '?'))}"
            )
        elif kind == "open_questions":
            console.print(
                f"[cyan]waiting for answers to {len(value.get('questions', []))} governance questions[/] (mpm answer THREAD)"
            )
        else:
            console.print(f"[cyan]waiting:[/] {escape(value)}")


def outcome(console: Console, result: Any) -> None:
    values = result.values
    if values.get("plan"):
        console.print(stage_table(values))
    if result.interrupts:
        waiting(console, result.interrupts)
    deliverables = values.get("deliverables") or {}
    for name, path in (deliverables.get("files") or {}).items():
        console.print(f"  {escape(name)}: {escape(path)}")
    reg = deliverables.get("registered_model") or {}
    if reg.get("model_uri"):
        console.print(
            f"  registered model: {escape(reg.get('registered_model_name'))} v{escape(reg.get('registered_model_version'))}"
        )
    console.print(f"thread [bold]{escape(result.thread_id)}[/]: {styled(result.status)}")
    if result.status == "running":
        console.print(
            "the run was cut off mid-step; continue it with `mpm resume "
            + escape(result.thread_id)
            + "`"
        )


def status(console: Console, result: Any) -> None:
    values = result.values
    req = values.get("requirements") or {}
    if req:
        console.print(
            f"[bold]{escape(req.get('project_name'))}[/] — {escape(req.get('model_type'))}, "
            f"{escape(req.get('target_metric'))} ≥/≤ {escape(req.get('success_threshold'))}, risk {escape(req.get('risk_level'))}"
        )
    gov = values.get("governance") or {}
    if gov:
        console.print(
            f"governance: {styled(gov.get('overall_status'))} frameworks: {escape(', '.join(gov.get('frameworks', [])))}"
        )
        if gov.get("error"):
            console.print(f"  [red]{escape(gov['error'])}[/]")
        guarded = gov.get("fail_closed") or {}
        if guarded.get("blocked"):
            console.print(f"  [red]registration refused ({escape(guarded.get('status'))}):[/]")
            for reason in guarded.get("reasons") or []:
                console.print(f"    [red]{escape(reason)}[/]")
        for b in guarded.get("accepted") or []:
            console.print(
                f"  [yellow]risk accepted:[/] {escape(b.get('finding_id'))} "
                f"(evidence {escape(str(b.get('evidence_hash', ''))[:12])}) by {escape(b.get('accepted_by'))}"
            )
    outcome(console, result)
    events = values.get("events") or []
    failures = [
        e
        for e in events
        if e.get("event")
        in {
            "attempt_failed",
            "fallback_started",
            "critical_failure",
            "requirements_invalid",
            "kickoff_failed",
            "proposal_rejected",
            "guard_override",
        }
    ]
    for e in failures[-5:]:
        console.print(
            f"[yellow]{escape(e.get('ts'))} {escape(e.get('node'))}: {escape(e.get('event'))} {escape(e.get('detail'))}[/]"
        )


def threads(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(title="Threads")
    for col in ("thread", "project", "status", "updated", "waiting for"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            escape(r["thread_id"]),
            escape(r["project"]),
            styled(r["status"]),
            escape(r["updated_at"]),
            escape(", ".join(filter(None, r["waiting_for"]))),
        )
    console.print(table if rows else "no threads in this workspace")


def history(console: Console, thread_id: str, rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"Checkpoints of {escape(thread_id)} (newest first)")
    for col in ("step", "created", "source", "next", "checkpoint id"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["step"]),
            escape(r["created_at"]),
            escape(r["source"]),
            escape(", ".join(r["next"])),
            escape(r["checkpoint_id"]),
        )
    console.print(table)
