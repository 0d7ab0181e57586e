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
    "met": "green",
    "unmet": "red",
}


def escape(text: Any) -> str:
    """Rich markup is interpreted and terminals obey control sequences: anything from input
    is escaped for both before printing."""
    return _escape(visible_controls(str(text)))


def plain(text: Any) -> str:
    """For plain (non-rich) output: control characters made visible."""
    return visible_controls(str(text))


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


DIRECTION_SIGN = {">=": "≥", "<=": "≤"}

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
        while text and (why := _valid_choice(q, text)):  # say why and ask again
            console.print(f"[yellow]{escape(why)}[/]")
            text = console.input("[bold cyan]you>[/] ").strip()
        if text:
            answers[q.get("field") or q.get("key")] = (
                [p.strip() for p in text.split(",")] if q.get("type") in MULTI_VALUE else text
            )
    return answers


def open_questions(console: Console, questions: list[dict[str, Any]]) -> None:
    """One line per open question, by the key an answers file uses (`mpm answer --template`)."""
    for q in questions:
        key = q.get("field") or q.get("key") or "?"
        text = str(q.get("question") or q.get("label") or "").splitlines() or [""]
        line = f"  - {escape(key)}: {escape(text[0])}"
        for more in text[1:]:  # a confirmation restates the requirements, one per line
            line += f"\n      {escape(more)}"
        if q.get("options"):
            line += f" [dim]({escape(' | '.join(map(str, q['options'][:12])))})[/]"
        console.print(line)
        if q.get("problem"):
            console.print(f"    [yellow]{escape(q['problem'])}[/]")


def _valid_choice(q: dict[str, Any], text: str) -> str | None:
    """Why ``text`` is not an answer to a question that only admits its options, or None."""
    options = [str(o) for o in q.get("options") or []]
    if not q.get("strict") or not options or text in options:
        return None
    return f"{text!r} is not one of: {', '.join(options[:20])}"


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


def waiting(console: Console, interrupts: list[dict[str, Any]], thread_id: str) -> None:
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
            open_questions(console, value.get("questions", []))
        elif kind == "approval":
            console.print(
                f"[cyan]waiting for approval[/] [bold]{escape(value.get('approval_id'))}[/] "
                f"({escape(value.get('name'))}) from {escape(', '.join(value.get('approver_groups', [])))} "
                f"since {escape(value.get('requested_at', '?'))}"
            )
        elif kind == "open_questions":
            console.print(
                f"[cyan]waiting for answers to {len(value.get('questions', []))} governance questions[/] (mpm answer {escape(thread_id)})"
            )
            open_questions(console, value.get("questions", []))
        else:
            console.print(f"[cyan]waiting:[/] {escape(value)}")


def outcome(console: Console, result: Any) -> None:
    values = result.values
    if values.get("plan"):
        console.print(stage_table(values))
    if result.interrupts:
        waiting(console, result.interrupts, result.thread_id)
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


def gate_holds(console: Console, values: dict[str, Any]) -> None:
    """One line per policy gate that still holds a plan stage (e.g. ``deployment`` until
    the deployment-readiness sign-off): which stage, which action, which approvals."""
    live = (values.get("governance") or {}).get("gates") or {}
    for gate in (values.get("plan") or {}).get("gates") or []:
        now = live.get(gate.get("id")) or {}
        if not gate.get("action") or not gate.get("blocks") or now.get("state") == "open":
            continue
        waits = now.get("blocked_by") or gate.get("approvals") or []
        until = f" until {escape(', '.join(waits))} granted" if waits else ""
        console.print(
            f"gate [bold]{escape(gate.get('name'))}[/] holds {escape(', '.join(gate['blocks']))} "
            f"({escape(gate['action'])}){until}"
        )


def status(console: Console, result: Any) -> None:
    values = result.values
    req = values.get("requirements") or {}
    if req:
        console.print(
            f"[bold]{escape(req.get('project_name'))}[/] — {escape(req.get('model_type'))}, "
            f"{escape(req.get('target_metric'))} {DIRECTION_SIGN.get(metric_direction(req) or '', '?')} "
            f"{escape(req.get('success_threshold'))}, risk {escape(req.get('risk_level'))}"
        )
    gov = values.get("governance") or {}
    if gov:
        console.print(
            f"governance: {styled(gov.get('overall_status'))} frameworks: {escape(', '.join(gov.get('frameworks', [])))}"
        )
        if gov.get("error"):
            console.print(f"  [red]{escape(gov['error'])}[/]")
        mode = gov.get("execution_mode") or {}
        if mode:
            console.print(
                f"execution mode: {escape(mode.get('mode'))} ({escape(mode.get('reason'))})"
            )
        gate_holds(console, values)
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
    remediation(console, values)
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


def remediation(console: Console, values: dict[str, Any]) -> None:
    """The plan's revisions and the remediation attempts: what was tried, why, and with
    what result (``graph/remediation.py``)."""
    metric = (values.get("requirements") or {}).get("target_metric")
    for rev in (values.get("plan") or {}).get("revisions") or []:
        console.print(
            f"plan revision {escape(rev.get('revision'))}: re-run "
            f"{escape(', '.join(rev.get('stages') or []))} ({escape(last_line(rev.get('reason'))[:160])})"
        )
    for a in values.get("remediation_attempts") or []:
        before = (a.get("before") or {}).get("test_score")
        after = (a.get("after") or {}).get("test_score")
        console.print(
            f"  remediation attempt {escape(a.get('attempt'))} [bold]{escape(a.get('strategy'))}[/]: "
            f"test {escape(metric)} {_score(before)} -> {_score(after)}, {styled(a.get('status'))}"
        )
    stopped = (values.get("remediation") or {}).get("stopped")
    if stopped:
        console.print(f"  remediation stopped: {escape(stopped)}")


def _score(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "—"


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


# --------------------------------------------------------------------------- --json output
# Stable keys, documented in the README ("Machine-readable output"). Values are the
# run's own (JSON-escaped by the encoder), never rich markup.

JSON_VERSION = 1


def _interrupt_json(item: dict[str, Any], thread_id: str) -> dict[str, Any]:
    value = item["value"] if isinstance(item["value"], dict) else {"type": "question"}
    kind = value.get("type")
    out: dict[str, Any] = {"type": kind, "interrupt_id": item.get("id")}
    if kind == "approval":
        out |= approval_json({"thread_id": thread_id, **value})
    elif kind in {"open_questions", "kickoff_questions"}:
        out["questions"] = [
            q.get("key") or q.get("field")
            for q in value.get("questions", [])
            if isinstance(q, dict)
        ]
        out["command"] = ["mpm", "answer", thread_id]
    return out


def approval_json(row: dict[str, Any]) -> dict[str, Any]:
    """One pending approval. ``thread_id`` and ``approval_id`` are exactly the two
    arguments of ``mpm approve``; ``command`` is that command without ``--as``."""
    thread_id, approval_id = str(row.get("thread_id")), str(row.get("approval_id"))
    return {
        "thread_id": thread_id,
        "approval_id": approval_id,
        "name": row.get("name"),
        "framework": row.get("framework_title") or row.get("framework"),
        "approver_groups": list(row.get("approver_groups") or []),
        "eligible_approvers": list(row.get("eligible_approvers") or []),
        "requested_at": row.get("requested_at"),
        "command": ["mpm", "approve", thread_id, approval_id],
    }


def outcome_json(result: Any) -> dict[str, Any]:
    """The final state of a run command (kickoff, resume, approve, answer) or ``status``."""
    values = result.values
    req = values.get("requirements") or {}
    plan = values.get("plan") or {}
    results = values.get("results") or {}
    stages = []
    for spec in plan.get("stages", []):
        r = results.get(spec["name"]) or {}
        stages.append(
            {
                "name": spec["name"],
                "agent": spec["agent"],
                "status": r.get("status") or "pending",
                "duration_s": r.get("duration_s"),
                "attempts": r.get("attempts"),
                "error": r.get("error"),
            }
        )
    gov = values.get("governance") or {}
    deliverables = values.get("deliverables") or {}
    reg = deliverables.get("registered_model") or {}
    return {
        "version": JSON_VERSION,
        "thread_id": result.thread_id,
        "status": result.status,
        "project": req.get("project_name"),
        "target_metric": req.get("target_metric"),
        "metric_direction": metric_direction(req),
        "success_threshold": req.get("success_threshold"),
        "risk_level": req.get("risk_level"),
        "governance": {
            "overall_status": gov.get("overall_status"),
            "frameworks": list(gov.get("frameworks") or []),
            "error": gov.get("error"),
        }
        if gov
        else None,
        "stages": stages,
        "remediation_attempts": [
            {
                k: a.get(k)
                for k in ("attempt", "strategy", "strategies", "why", "status", "before", "after")
            }
            for a in values.get("remediation_attempts") or []
        ],
        "waiting_for": [_interrupt_json(i, result.thread_id) for i in result.interrupts],
        "deliverables": dict(deliverables.get("files") or {}),
        "registered_model": {
            "name": reg.get("registered_model_name"),
            "version": reg.get("registered_model_version"),
            "model_uri": reg.get("model_uri"),
        }
        if reg.get("model_uri")
        else None,
    }


def metric_direction(req: dict[str, Any]) -> str | None:
    """``>=`` when a higher target metric is better, ``<=`` when lower is."""
    if not req.get("target_metric"):
        return None
    from mpm.tools.metrics import lower_is_better

    return "<=" if lower_is_better(str(req["target_metric"])) else ">="
