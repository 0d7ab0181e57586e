"""Human-in-the-loop nodes: approval decisions and answers to open governance questions.

Each pending approval is its own task (the supervisor fans them out with ``Send``), so
approvals that may run in parallel are pending at the same time and each is resumed on
its own: ``Command(resume={interrupt_id: decision})``. A decision counts only if the
approver may act for one of the groups the approval names (``Approvers.md``), is not the
person who requested the project (separation of duties), is meant for this thread and
this approval, and has not been used before. A refused decision is audited and the
approval stays pending in the same task: the node interrupts again.
"""

from __future__ import annotations

from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from mpm.governance.answers import check_approval_answers
from mpm.graph.context import RunContext, run_context
from mpm.graph.events import event
from mpm.graph.nodes.governance import governance_context
from mpm.graph.state import now_iso
from mpm.tools.killpoints import maybe_die

DECISIONS = ("approve", "reject", "request_changes")
SEEN_DECISIONS = "seen_decision_ids"
"""Resume-value key: decision ids the thread has recorded, as the runner read them."""


def check_decision(
    value: Any,
    approval: dict[str, Any],
    thread_id: str,
    *,
    directory: Any,
    requested_by: str | None,
    separation_of_duties: bool,
    used_decision_ids: set[str],
    policy: Any = None,
) -> str | None:
    """None when the decision may count, else why it is refused (one line)."""
    if not isinstance(value, dict):
        return f"a decision must be an object with decision, approver and comment; got {type(value).__name__}"
    decision, approver = value.get("decision"), str(value.get("approver") or "").strip()
    if decision not in DECISIONS:
        return f"decision {decision!r}: expected one of {', '.join(DECISIONS)}"
    if not approver:
        return "approver: the approver's id is required"
    if value.get("thread_id") not in (None, thread_id):
        return f"decision is for thread {value.get('thread_id')!r}, not {thread_id!r}"
    if value.get("approval_id") not in (None, approval["id"]):
        return f"decision is for approval {value.get('approval_id')!r}, not {approval['id']!r}"
    if value.get("decision_id") and value["decision_id"] in used_decision_ids:
        return f"decision {value['decision_id']} was already used (replayed decision)"
    if separation_of_duties and requested_by and approver == requested_by:
        return f"{approver} requested this project and may not approve it (separation of duties)"
    if not any(directory.can_act_as(approver, name) for name in approval["approvers"]):
        return f"{approver} is not a member of {', '.join(approval['approvers'])}"
    # the approver's own evidence answers must not contradict the decision (governance/answers.py)
    return check_approval_answers(policy, approval["name"], decision, value.get("answers"))[1]


def _policy_of(context: Any, item: dict[str, Any]) -> Any:
    """The policy whose approval this is (None for a risk acceptance: it has no questions)."""
    if item.get("kind", "approval") != "approval" or item["framework"] not in context.library:
        return None
    return context.library.get(item["framework"]).policy


def approval(payload: dict[str, Any], runtime: Runtime[RunContext]) -> dict[str, Any]:
    ctx = run_context(runtime)
    thread_id = get_config()["configurable"]["thread_id"]
    item = payload["approval"]
    context = governance_context(ctx)
    used = set(payload.get("used_decision_ids") or [])
    entries: list[dict[str, Any]] = []
    refusals: list[dict[str, Any]] = []
    while True:  # each refusal re-asks in the same task, so the approval stays pending
        maybe_die("approval.ask")
        value = interrupt({**payload["request"], "refusals": refusals})
        # ids recorded since the approvals were requested (a parallel approval decided
        # first), as the runner read them from the thread: they can only refuse more
        seen = value.get(SEEN_DECISIONS) if isinstance(value, dict) else None
        problem = check_decision(
            value,
            item,
            thread_id,
            directory=context.library.approvers,
            requested_by=payload.get("requested_by"),
            separation_of_duties=context.workflow.separation_of_duties,
            used_decision_ids=used | {str(i) for i in seen or []},
            policy=_policy_of(context, item),
        )
        value = value if isinstance(value, dict) else {}
        entry = {
            "ts": value.get("submitted_at") or now_iso(),
            "thread_id": thread_id,
            "approval_id": item["id"],
            "approver": str(value.get("approver") or ""),
            "decision": value.get("decision"),
            "comment": str(value.get("comment") or "")[:2000],
            "accepted": problem is None,
            "reason": problem
            or f"{value.get('approver')} may act for {', '.join(item['approvers'])}",
            "decision_id": value.get("decision_id"),
        }
        entries.append(entry)
        if value.get("decision_id"):
            used.add(value["decision_id"])
        if problem is None:
            break
        refusals.append({"approver": entry["approver"], "reason": problem, "ts": entry["ts"]})
    record = {
        "decision": entry["decision"],
        "approver": entry["approver"],
        "comment": entry["comment"],
        "decided_at": entry["ts"],
        "round": item["round"],
        # only answers to this approval's own questions count (governance/answers.py)
        "answers": check_approval_answers(
            _policy_of(context, item), item["name"], entry["decision"], value.get("answers")
        )[0],
    }
    events = [
        event("approvals", "approval_refused", e["reason"], approval=item["id"])
        for e in entries
        if not e["accepted"]
    ]
    events.append(
        event(
            "approvals",
            f"approval_{entry['decision']}",
            f"{item['id']} by {entry['approver']}",
            approval=item["id"],
        )
    )
    update: dict[str, Any] = {"approvals": {item["id"]: record}, "audit": entries, "events": events}
    maybe_die("approval.decided")
    if record["answers"]:
        update["human_answers"] = {item["framework"]: record["answers"]}
    return update


def questions(state: dict[str, Any], runtime: Runtime[RunContext]) -> dict[str, Any]:
    """One interrupt listing every open question; valid answers become evidence."""
    from mpm.governance.evaluation import validate_answer

    ctx = run_context(runtime)
    pending = (state.get("governance") or {}).get("open_questions") or []
    asked = set(state.get("asked_questions") or [])
    todo = [q for q in pending if q["key"] not in asked or q.get("problem")]
    answers = interrupt({"type": "open_questions", "questions": todo, "requested_at": now_iso()})
    answers = answers if isinstance(answers, dict) else {}
    maybe_die("questions.answered")
    library = governance_context(ctx).library
    accepted: dict[str, dict[str, Any]] = {}
    problems = []
    invalid: set[str] = set()
    for q in todo:
        given = answers.get(q["key"], answers.get(q.get("alias") or ""))
        if given is None or given == "":
            continue
        artifact = library.get(q["framework"]).policy.artifact(q["key"])
        value, problem = validate_answer(artifact, given)
        if problem:
            problems.append(f"{q['key']}: {problem}")
            invalid.add(q["key"])
            continue
        plain = value.isoformat() if hasattr(value, "isoformat") else value  # dates -> JSON
        accepted.setdefault(q["framework"], {})[q.get("alias") or q["key"]] = plain
    events = [
        event(
            "questions",
            "questions_answered",
            f"{sum(len(v) for v in accepted.values())} answers accepted",
        )
    ]
    events += [event("questions", "answer_invalid", p) for p in problems]
    return {
        "human_answers": accepted,
        # invalid answers are asked again; unanswered ones are not (the person chose to skip)
        "asked_questions": sorted(asked | {q["key"] for q in todo} - invalid),
        "events": events,
    }
