"""Supervisor: route to the next ready stage(s), to governance, or to synthesis.

Where the guard leaves exactly one valid next step the model is not consulted at all;
where there is a real choice the model proposes (structured output) and the guard
disposes. Independent ready stages fan out in parallel with ``Send``.

When validation misses the success criterion the supervisor runs the bounded remediation
loop (``graph/remediation.py``) before anything else is asked of people: model
development goes back to its agent with a strategy, within the requirements' budget."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime
from langgraph.types import Command, Send
from pydantic import BaseModel, Field, create_model

from mpm.graph import guard
from mpm.graph import remediation as loop
from mpm.graph.context import RunContext, run_context
from mpm.graph.events import event
from mpm.graph.llm import get_chat_model, invoke_with_timeout, register_structured_rule
from mpm.graph.state import GATED_ACTIONS, ExecutionPlan, GraphState, now_iso
from mpm.tools.killpoints import maybe_die

SYSTEM_PROMPT = """You are the project manager supervising an ML project. Choose which of the
ready stages to start now; ready stages may run in parallel. Answer in JSON with the stage
names exactly as listed, e.g. {"next_stages": ["<a ready stage>"], "reason": "<one short sentence>"}."""


class RouteDecision(BaseModel):
    next_stages: list[str] = Field(description="names of ready stages to start now")
    reason: str = ""


def route_schema(ready: Sequence[str]) -> type[RouteDecision]:
    """A :class:`RouteDecision` whose stage names are an enum of ``ready``, built per call,
    so a constrained decoder (a JSON-schema grammar) can only name a stage that may start."""
    names = tuple(dict.fromkeys(ready))
    return create_model(
        "RouteDecision",
        __base__=RouteDecision,
        next_stages=(
            list[Literal[names]],  # type: ignore[valid-type]
            Field(min_length=1, max_length=len(names), description="ready stages to start now"),
        ),
        reason=(str, Field(default="", max_length=300)),
    )


_READY = re.compile(r"^Ready stages:\s*(?P<names>.*)$", re.MULTILINE)


@register_structured_rule(RouteDecision)
def _stub_route(messages: Sequence[BaseMessage]) -> RouteDecision:
    """Stub rule: start every ready stage, in plan order."""
    text = str(messages[-1].content)
    m = _READY.search(text)
    names = [n.strip() for n in m.group("names").split(",") if n.strip()] if m else []
    return RouteDecision(
        next_stages=names, reason="all ready stages are independent; start them together"
    )


def stage_input(state: GraphState, plan: ExecutionPlan, name: str) -> dict[str, Any]:
    """The Send payload for one stage: its spec and a compact brief, not the whole state."""
    spec = plan.stage(name)
    results = state.get("results") or {}
    revision = (state.get("revisions") or {}).get(name) or {}
    attempt = loop.running_attempt(state)
    # only what this stage builds on: its dependencies, direct or not (keeps briefs linear)
    needed = guard.ancestors(plan, name)
    context = dict((state.get("governance") or {}).get("context") or {})
    if "expected_evidence" in context:
        context["expected_evidence"] = context["expected_evidence"].get(name, [])
    return {
        "stage": name,
        "spec": spec.model_dump(mode="json"),
        "requirements": state["requirements"],
        "upstream": {
            # direct dependencies with their summary; further ones by reference only
            n: r if n in spec.depends_on else {**r, "summary": ""}
            for n, r in results.items()
            if n in needed and r.get("status") in guard.FINISHED | {"failed"}
        },
        "governance": context,
        "mlflow": state.get("mlflow") or {},
        "revision": revision.get("count", 0),
        "revision_comment": revision.get("comment"),
        **({"remediation": loop.brief(attempt)} if attempt and name in _REMEDIATED else {}),
    }


_REMEDIATED = frozenset({loop.DEV, loop.VAL})


def blocked_stages(plan: ExecutionPlan, governance: dict[str, Any]) -> dict[str, str]:
    """Stage -> why it may not start: a policy gate on its action is not open yet.

    Decided from the *current* governance evaluation; when governance is in ERROR (or has
    not run) every gated stage stays blocked."""
    # stage -> the gated actions it performs (deployment performs two: serve, app)
    gated: dict[str, set[str]] = {}
    for action, stage in GATED_ACTIONS.items():
        if stage in plan.stage_names:
            gated.setdefault(stage, set()).add(action)
    if not gated:
        return {}
    if governance.get("overall_status") in (None, "ERROR"):
        reason = governance.get("error") or "governance has not been evaluated"
        return {stage: reason for stage in gated}
    blocked: dict[str, str] = {}
    guarded = governance.get("fail_closed")
    if not isinstance(guarded, dict) or guarded.get("blocked", True):
        # fail closed: a FAILED framework or an unmet success criterion that no granted
        # risk acceptance covers (or a view without the verdict) blocks every guarded stage
        reasons = (guarded or {}).get("reasons") if isinstance(guarded, dict) else None
        why = "; ".join(reasons or []) or "governance has not shown the guarded action may run"
        blocked = {stage: f"fail closed: {why}" for stage in gated}
    for gate in (governance.get("gates") or {}).values():
        for stage, actions in gated.items():
            if actions & set(gate["blocks"]) and gate["state"] != "open":
                blocked.setdefault(
                    stage, f"gate '{gate['name']}' waits for {', '.join(gate['blocked_by'])}"
                )
    return blocked


def milestone_holds(plan: ExecutionPlan, governance: dict[str, Any]) -> dict[str, str]:
    """Stage -> why it waits in ``step_by_step`` mode: a sign-off asked after an earlier
    plan stage is not granted yet (``automated`` mode: no holds; only gates block)."""
    if (governance.get("execution_mode") or {}).get("mode") != "step_by_step":
        return {}
    order = plan.stage_names
    holds: dict[str, str] = {}
    for a in governance.get("approvals") or []:
        if a["state"] in {"granted", "not_required"} or a["round"] not in order:
            continue
        for stage in order[order.index(a["round"]) + 1 :]:
            holds.setdefault(stage, f"step_by_step: waits for sign-off {a['id']}")
    return holds


def approvals_to_request(
    plan: ExecutionPlan, governance: dict[str, Any], finished: set[str]
) -> list[dict[str, Any]]:
    """Ready approvals whose evidence exists: the project stage they follow has finished
    (approvals after a stage this plan does not have wait for every stage)."""
    out = []
    for a in governance.get("approvals") or []:
        if a["state"] != "ready":
            continue
        after = a["round"] if a["round"] in plan.stage_names else None
        if (after and after in finished) or (after is None and finished >= set(plan.stage_names)):
            out.append(a)
    return out


def _revision(
    state: GraphState, plan: ExecutionPlan, sent_back: list[dict[str, Any]]
) -> dict[str, Any]:
    """Send the owning stage of a rejected approval (and what depends on it) back to its
    agent with the reviewer's comment; approvals that reviewed that work are asked again."""
    results = state.get("results") or {}
    revisions = state.get("revisions") or {}
    decisions = state.get("approvals") or {}
    by_id = {a["id"]: a for a in (state.get("governance") or {}).get("approvals") or []}
    reset_results: dict[str, Any] = {}
    new_revisions: dict[str, Any] = {}
    superseded: dict[str, Any] = {}
    events = []
    for a in sent_back:
        owner = a["round"] if a["round"] in plan.stage_names else plan.stage_names[-1]
        record = decisions[a["id"]]
        affected = guard.dependents(plan, owner)
        for stage in affected:
            if stage in results:
                reset_results[stage] = {**results[stage], "status": "revision_requested"}
        comment = f"{record['approver']} ({record['decision']}): {record['comment']}"
        for stage in affected:  # a new revision number gives each re-run its own MLflow run
            count = int((revisions.get(stage) or {}).get("count", 0)) + 1
            new_revisions[stage] = {
                "count": count,
                "comment": comment
                if stage == owner
                else f"re-run because {owner} was sent back: {comment}",
            }
        for other_id, other in decisions.items():
            reviewed_affected = by_id.get(other_id, {}).get("round") in affected
            if other.get("decision") in DECIDED and (reviewed_affected or other_id == a["id"]):
                superseded[other_id] = {**other, "decision": "superseded", "superseded_by": a["id"]}
        events.append(
            event(
                "supervisor",
                "stage_sent_back",
                f"{owner} (and {', '.join(affected[1:]) or 'nothing else'}) after {a['id']}",
                comment=record["comment"],
            )
        )
    return {
        "results": reset_results,
        "revisions": new_revisions,
        "approvals": superseded,
        "events": events,
    }


DECIDED = {"approve", "reject", "request_changes"}


def supervisor(state: GraphState, runtime: Runtime[RunContext]) -> Command:
    maybe_die("supervisor")
    plan = ExecutionPlan.model_validate(state["plan"])
    # a finished remediation attempt is recorded first, whatever is decided next
    settled = loop.settle(state)
    if settled:
        _tag_attempt(runtime, state, settled["remediation_attempts"][-1])
        state = {**state, **{k: v for k, v in settled.items() if k != "events"}}  # type: ignore[assignment]
    return _merge(_route(state, plan, runtime), settled)


def _merge(cmd: Command, extra: dict[str, Any]) -> Command:
    """``cmd`` with ``extra`` added to its update: ``extra``'s events come first; for any
    other key ``cmd``'s value wins (it was decided from a state that already had ``extra``)."""
    if not extra:
        return cmd
    update = dict(cmd.update or {})
    for key, value in extra.items():
        if key == "events":
            update[key] = [*value, *(update.get(key) or [])]
        else:
            update.setdefault(key, value)
    return Command(goto=cmd.goto, update=update)


def _route(state: GraphState, plan: ExecutionPlan, runtime: Runtime[RunContext]) -> Command:
    results = state.get("results") or {}
    gov = state.get("governance") or {}

    # a refused risk acceptance leaves its finding blocking; it sends no stage back
    sent_back = [
        a
        for a in gov.get("approvals") or []
        if a["state"] in {"rejected", "changes_requested"}
        and a.get("kind", "approval") != "risk_acceptance"
    ]
    if sent_back:
        # re-evaluate with the stage reopened, then come back here to re-run it
        update = _revision(state, plan, sent_back)
        return Command(goto="governance", update=_withdrawn(runtime, update))

    failures = guard.critical_failures(plan, results)
    if failures:
        return Command(
            goto="synthesize",
            update={"events": [event("supervisor", "critical_failure", ", ".join(failures))]},
        )

    # validation missed the success criterion: remediate (within budget) before the
    # guarded stages, risk acceptances or anything else are considered
    remedy = loop.next_attempt(state, plan)
    if remedy is not None and remedy.pop("start", False):
        _log_plan_revision(runtime, state, remedy["plan"])
        return Command(goto="governance", update=_withdrawn(runtime, remedy))
    if remedy is not None:  # why no attempt starts: recorded once, then carry on
        return _merge(_route_on(state, plan, runtime, gov), remedy)
    return _route_on(state, plan, runtime, gov)


def _withdrawn(runtime: Runtime[RunContext], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` with its superseded decisions withdrawn in the durable audit trail too
    (``graph/audit.py::record_withdrawals``), and those entries in the checkpoint's copy."""
    from langgraph.config import get_config

    from mpm.graph import audit

    superseded = update.get("approvals") or {}
    if not superseded:
        return update
    thread_id = str(get_config()["configurable"]["thread_id"])
    entries = audit.record_withdrawals(
        run_context(runtime).ws, thread_id, superseded, now=now_iso()
    )
    return {**update, "audit": entries} if entries else update


def _route_on(
    state: GraphState, plan: ExecutionPlan, runtime: Runtime[RunContext], gov: dict[str, Any]
) -> Command:
    results = state.get("results") or {}

    blocked = {**milestone_holds(plan, gov), **blocked_stages(plan, gov)}
    ready = guard.ready_stages(plan, results, blocked)
    if ready:
        return _start_stages(state, plan, ready, runtime)

    asked = set(state.get("asked_questions") or [])
    if any(q["key"] not in asked or q.get("problem") for q in gov.get("open_questions") or []):
        return Command(
            goto="questions",
            update={
                "status": "waiting",
                "events": [
                    event("supervisor", "questions_for_owner", f"{len(gov['open_questions'])} open")
                ],
            },
        )

    finished = guard.finished_stages(plan, results)
    to_request = approvals_to_request(plan, gov, finished)
    if to_request:
        return _request_approvals(state, to_request)

    unfinished = [s for s in plan.stage_names if s not in finished]
    if unfinished:
        why = "; ".join(f"{s}: {blocked.get(s, 'not runnable')}" for s in unfinished)
        return Command(goto="synthesize", update={"events": [event("supervisor", "blocked", why)]})
    return Command(
        goto="synthesize", update={"events": [event("supervisor", "all_stages_finished")]}
    )


def _start_stages(
    state: GraphState, plan: ExecutionPlan, ready: list[str], runtime: Runtime[RunContext]
) -> Command:
    events = []
    if len(ready) == 1:
        chosen = ready
    else:
        ctx = run_context(runtime)
        chosen, rejected, reason = _ask_model(ctx.model, state, plan, ready)
        if rejected:
            events.append(
                event("supervisor", "proposal_rejected", ", ".join(rejected), ready=ready)
            )
            _record_rejection(ctx, state, ", ".join(rejected))
        if not chosen:
            chosen = ready[:1]
            events.append(
                event("supervisor", "guard_override", f"no valid proposal; starting {chosen[0]}")
            )
        events.append(event("supervisor", "model_proposal", reason, accepted=chosen))
    events.append(event("supervisor", "route", ", ".join(chosen)))
    sends = [Send(plan.stage(n).agent.value, stage_input(state, plan, n)) for n in chosen]
    return Command(goto=sends, update={"events": events, "status": "running"})


def _request_approvals(state: GraphState, approvals: list[dict[str, Any]]) -> Command:
    gov = state.get("governance") or {}
    req = state["requirements"]
    requested = dict(state.get("approval_requests") or {})
    new = {a["id"]: now_iso() for a in approvals if a["id"] not in requested}
    requested.update(new)
    used = sorted({e["decision_id"] for e in state.get("audit") or [] if e.get("decision_id")})
    results = state.get("results") or {}
    headline = {
        k: v
        for r in results.values()
        for k, v in (r.get("metrics") or {}).items()
        if k.startswith("test_")
        or k in {"demographic_parity_difference", "equalized_odds_difference", "data_quality_score"}
    }
    sends = []
    for a in approvals:
        framework_view = (gov.get("compliance_status") or {}).get(a["framework"], {})
        request = {
            "type": "approval",
            "kind": a.get("kind", "approval"),
            **({"finding": a["finding"]} if a.get("finding") else {}),
            "approval_id": a["id"],
            "name": a["name"],
            "frameworks": [a["framework"]],
            "framework_title": (gov.get("titles") or {}).get(a["framework"], a["framework"]),
            "policy_stage": a["stage"],
            "project_stage": a["round"],
            "approver_groups": a["approvers"],
            "eligible_approvers": a["eligible"],
            "evidence_questions": a.get("open_evidence") or [],
            "group_rule": a.get("group_rule", "any_of"),
            "parallel": a["parallel"],
            "gates": a["gates"],
            "requested_at": requested[a["id"]],
            "summary": {
                "project": req["project_name"],
                "governance_status": gov.get("overall_status"),
                "compliance": {
                    a["framework"]: {
                        k: framework_view.get(k)
                        for k in ("status", "compliance_score", "classification")
                    }
                },
                "failed_checks": framework_view.get("failed_checks", [])[:10],
                "metrics": headline,
                "dashboard": (gov.get("files") or {}).get("dashboard"),
            },
        }
        sends.append(
            Send(
                "approval",
                {
                    "approval": a,
                    "request": request,
                    "requested_by": req.get("requested_by"),
                    "used_decision_ids": used,
                },
            )
        )
    events = [event("supervisor", "approvals_requested", ", ".join(a["id"] for a in approvals))]
    return Command(
        goto=sends, update={"approval_requests": new, "status": "waiting", "events": events}
    )


def _tag_attempt(runtime: Runtime[RunContext], state: GraphState, attempt: dict[str, Any]) -> None:
    """Tag the attempt's MLflow stage runs (nested under the pipeline run) with its number,
    strategy and outcome (idempotent: a replayed step writes the same tags)."""
    ctx = run_context(runtime)
    ids = state.get("mlflow") or {}
    if not (ctx.tracking and ids.get("tracking_uri")):
        return
    from mpm.tools import tracking

    c = tracking.client(ids["tracking_uri"])
    after = attempt.get("after") or {}
    for run_id in (after.get("development_run_id"), after.get("validation_run_id")):
        if run_id:
            tracking.set_tags(
                c,
                run_id,
                {
                    "mpm.remediation_attempt": attempt["attempt"],
                    "mpm.remediation_strategy": attempt["strategy"],
                    "mpm.remediation_strategies": ",".join(attempt.get("strategies") or []),
                    "mpm.remediation_status": attempt["status"],
                },
            )
    if ids.get("parent_run_id"):
        tracking.set_tags(
            c,
            ids["parent_run_id"],
            {
                "mpm.remediation_attempts": attempt["attempt"],
                "mpm.remediation_last_status": attempt["status"],
            },
        )


def _log_plan_revision(
    runtime: Runtime[RunContext], state: GraphState, plan: dict[str, Any]
) -> None:
    """The revised plan next to the original ``execution_plan.json`` on the pipeline run."""
    ctx = run_context(runtime)
    ids = state.get("mlflow") or {}
    if not (ctx.tracking and ids.get("parent_run_id")):
        return
    from mpm.tools import tracking

    number = len(plan.get("revisions") or [])
    tracking.log_dict(
        tracking.client(ids["tracking_uri"]),
        ids["parent_run_id"],
        plan,
        f"execution_plan_rev{number}.json",
    )


def _record_rejection(ctx: RunContext, state: GraphState, rejected: str) -> None:
    """Put the rejected proposal on the parent MLflow run, beside the stages' statuses."""
    ids = state.get("mlflow") or {}
    if not (ctx.tracking and ids.get("parent_run_id")):
        return
    from mpm.tools import tracking

    tracking.set_tags(
        tracking.client(ids["tracking_uri"]),
        ids["parent_run_id"],
        {"supervisor_proposal_rejected": rejected[:500]},
    )


def _ask_model(
    model_spec: str, state: GraphState, plan: ExecutionPlan, ready: list[str]
) -> tuple[list[str], list[str], str]:
    results = state.get("results") or {}
    done = ", ".join(f"{n} ({r.get('status')})" for n, r in results.items()) or "none"
    prompt = (
        f"Project: {state['requirements']['project_name']}\n"
        f"Finished: {done}\n"
        + "\n".join(f"- {s.name}: {s.task}" for s in plan.stages if s.name in ready)
        + f"\nReady stages: {', '.join(ready)}"
    )
    try:
        model = get_chat_model(model_spec).with_structured_output(route_schema(ready))
        decision = invoke_with_timeout(
            model, [SystemMessage(SYSTEM_PROMPT), HumanMessage(prompt)], what="supervisor route"
        )
    except Exception as exc:  # noqa: BLE001 - a broken proposal falls back to the guard
        first = str(exc).splitlines()[0] if str(exc) else ""
        return [], [f"<model error: {type(exc).__name__}: {first[:300]}>"], "model failed"
    accepted, rejected = guard.check_proposal(decision.next_stages, ready)
    return accepted, rejected, decision.reason
