"""Governance: evaluate the evidence collected so far against every applicable policy.

Runs after the plan (which frameworks apply, with reasons) and after every stage and
every decision. The full report and the dashboard go to the workspace and to the nested
MLflow run ``governance_orchestration`` (as the seed does); the graph keeps a compact
view. A policy library that cannot be loaded puts governance into ``ERROR`` with the
reason: gated actions then stay blocked, nothing crashes.

An evaluation is a pure function of the loaded policy library and identity directory
and of the state keys it reads (:func:`inputs_digest`); it is cached on exactly those,
so a step that changed none of them reuses the evaluation and one that changed any of
them gets a new one. The guard and the fail-closed check read the view this node
writes into the state, which is therefore always the evaluation of the current inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson
from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import Command

from mpm.graph.context import RunContext, run_context
from mpm.graph.events import event
from mpm.graph.governance_context import context_key, governance_context
from mpm.graph.governance_view import compact
from mpm.graph.state import GraphState, now_iso
from mpm.tools import tracking
from mpm.tools.killpoints import maybe_die

EVALUATION_INPUTS = (
    "requirements",
    "results",
    "human_answers",
    "audit",
    "approvals",
    "thread_id",
    "mlflow",
)
"""State keys an evaluation reads whatever the evidence map says (assessment, decisions
derived from the signed audit trail, revoked/superseded marks, the compact view, the
report's MLflow run ids from ``mlflow``); the evidence map's own sources add theirs
(:meth:`EvidenceMap.state_keys`)."""
CACHE_SIZE = 16


def inputs_digest(state: GraphState, key: tuple[str, str, float], context: Any) -> str:
    """SHA-256 over everything an evaluation depends on: the context's key and the state
    keys it reads. Equal digests mean an equal evaluation (up to its timestamp)."""
    keys = sorted({*EVALUATION_INPUTS, *context.evidence_map.state_keys()})
    body = [list(key), {k: state.get(k) for k in keys}]
    return hashlib.sha256(_json_bytes(body, sort_keys=True)).hexdigest()


def _json_bytes(value: Any, *, sort_keys: bool = False, indent: bool = False) -> bytes:
    """``value`` as JSON (UTF-8), with orjson: the report is ~50 kB of nested data and
    the standard library's encoder runs in pure Python whenever ``indent`` is set (about
    1 ms a report, 50 times orjson). Anything orjson refuses (an integer beyond 64 bits)
    goes through the standard library, so the output is the same JSON either way."""
    option = orjson.OPT_NON_STR_KEYS
    if sort_keys:
        option |= orjson.OPT_SORT_KEYS
    if indent:
        option |= orjson.OPT_INDENT_2
    try:
        return orjson.dumps(value, default=str, option=option)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        text = json.dumps(
            value,
            sort_keys=sort_keys,
            default=str,
            ensure_ascii=False,
            **({"indent": 2} if indent else {"separators": (",", ":")}),
        )
        return text.encode("utf-8")


class _EvaluationCache:
    """The last few evaluations by input digest (process-wide; nodes run in threads).

    A view is kept as its JSON text and decoded afresh on the way out (the view is JSON
    by design; a round trip through orjson is ten times cheaper than ``deepcopy``), so a
    caller that edits its view cannot change what a later step is given."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[bytes, Any, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, digest: str) -> tuple[dict[str, Any], Any, dict[str, Any]] | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(digest)
            self.hits += 1
        view, report, payload = entry
        return orjson.loads(view), report, payload

    def put(self, digest: str, view: dict[str, Any], report: Any, payload: dict[str, Any]) -> None:
        frozen = orjson.dumps(view, default=str, option=orjson.OPT_NON_STR_KEYS)
        with self._lock:
            self._entries[digest] = (frozen, report, payload)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


EVALUATIONS = _EvaluationCache(CACHE_SIZE)


def _error_view(exc: Exception) -> dict[str, Any]:
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return {
        "overall_status": "ERROR",
        "error": f"governance could not be evaluated: {reason}",
        "frameworks": [],
        "approvals": [],
        "gates": {},
        "open_questions": [],
        "fail_closed": {
            "blocked": True,
            "status": "failed_governance",
            "reasons": [f"governance could not be evaluated: {reason}"],
            "blockers": [],
            "accepted": [],
        },
        "evaluated_at": now_iso(),
        "context": {"overall_status": "ERROR"},
    }


def evaluate_with_digest(
    state: GraphState, ctx: RunContext
) -> tuple[dict[str, Any], Any, dict[str, Any] | None, str | None]:
    """(compact view, full report or None, the report as JSON data or None, input digest
    or None). Never raises: failures become ``ERROR`` (never cached)."""
    from mpm.governance import assess_project

    try:
        key = context_key(ctx)
        context = governance_context(ctx, key)
        digest = inputs_digest(state, key, context)
        cached = EVALUATIONS.get(digest)
        if cached is not None:
            view, report, payload = cached
            return view, report, payload, digest
        report = assess_project(state, context=context)
        view = compact(report, context, state)
        payload = report.model_dump(mode="json")
    except Exception as exc:  # noqa: BLE001 - governance failure is a state, not a crash
        return _error_view(exc), None, None, None
    EVALUATIONS.put(digest, view, report, payload)
    return view, report, payload, digest


def evaluate(state: GraphState, ctx: RunContext) -> tuple[dict[str, Any], Any]:
    """(compact view, full report or None). Never raises: failures become ``ERROR``."""
    view, report, _, _ = evaluate_with_digest(state, ctx)
    return view, report


def _replace_text(path: Path, text: str | bytes) -> None:
    """Write ``path`` as a new file rather than truncating the old one.

    ext4 (``auto_da_alloc``) flushes a file truncated and rewritten in place -- and one
    renamed over -- to disk on close: 5-20 ms per file on a busy machine, three files per
    evaluation. A fresh file moved onto a name that is free is not flushed. A reader can
    find the name missing for an instant; these are reports rebuilt from the state at the
    next evaluation, never the record (that is the checkpoint)."""
    fresh = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fresh.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    path.unlink(missing_ok=True)
    os.rename(fresh, path)


def _write_outputs(
    ctx: RunContext,
    thread_id: str,
    view: dict[str, Any],
    report: Any,
    audit: list[dict[str, Any]],
    previous: dict[str, Any] | None = None,
    *,
    payload: dict[str, Any] | None = None,
    digest: str | None = None,
) -> tuple[dict[str, Path], str, bool]:
    """Write the report, audit trail and dashboard; (files, digest, written).

    The files are made of the evaluation's inputs (``digest``, from
    :func:`inputs_digest`; the audit trail is one of them): when the previous evaluation
    had the same inputs and its files are all there, they are kept as they are. An
    evaluation in ``ERROR`` has no digest and always writes."""
    from mpm.governance import render_dashboard

    out = ctx.ws.stage_dir(thread_id, "governance")
    results = out / "governance_orchestration_results.json"
    if payload is None:
        payload = report.model_dump(mode="json") if report is not None else view
    kept = {k: Path(v) for k, v in ((previous or {}).get("files") or {}).items()}
    if (
        digest is not None
        and previous
        and previous.get("outputs_digest") == digest
        and kept
        and all(p.is_file() for p in kept.values())
    ):
        return kept, digest, False
    _replace_text(results, _json_bytes(payload, indent=True))
    files = {"results": results}
    if audit:
        from mpm.graph.audit import to_jsonl

        trail = out / "audit_trail.jsonl"
        _replace_text(trail, to_jsonl(audit))
        files["audit"] = trail
    if report is not None:
        dashboard = out / "governance_dashboard.html"
        _replace_text(dashboard, render_dashboard(report))
        files["dashboard"] = dashboard
    if digest is None:
        digest = hashlib.sha256(results.read_bytes()).hexdigest()
    return files, digest, True


def _log(
    ids: dict[str, Any],
    thread_id: str,
    view: dict[str, Any],
    files: dict[str, Path],
    step: int,
    head: dict[str, Any] | None = None,
    *,
    log_files: bool = True,
) -> str:
    c = tracking.client(ids["tracking_uri"])
    run_id = tracking.find_or_create_run(
        c,
        ids["experiment_id"],
        f"{thread_id}:governance",
        "governance_orchestration",
        parent_run_id=ids["parent_run_id"],
        tags={tracking.THREAD_TAG: thread_id, "orchestration_type": "governance_compliance"},
    )
    tracking.log_params(c, run_id, {"applicable_frameworks": ",".join(view.get("frameworks", []))})
    tracking.log_metrics(
        c,
        run_id,
        {
            f"{fw}_compliance_score": v["compliance_score"]
            for fw, v in (view.get("compliance_status") or {}).items()
        },
        step=step,
    )
    if log_files:  # unchanged files are already the run's artifacts
        for path in files.values():
            tracking.log_file(c, run_id, path)
    tracking.set_tags(c, run_id, {"governance_status": view["overall_status"]})
    if view.get("error"):
        tracking.set_tags(c, run_id, {"governance_orchestration_error": view["error"][:5000]})
    tracking.set_tags(c, ids["parent_run_id"], {"governance_status": view["overall_status"]})
    if head is not None and head["count"]:  # the audit chain head, anchored outside the trail
        from mpm.graph.audit import HEAD_TAG, head_tag

        tracking.set_tags(c, ids["parent_run_id"], {HEAD_TAG: head_tag(head)})
    return run_id


def governance(state: GraphState, runtime: Runtime[RunContext]) -> Command:
    ctx = run_context(runtime)
    thread_id = get_config()["configurable"]["thread_id"]
    view, report, payload, inputs = evaluate_with_digest(state, ctx)
    previous = state.get("governance") or {}
    files, digest, written = _write_outputs(
        ctx,
        thread_id,
        view,
        report,
        state.get("audit") or [],
        previous,
        payload=payload,
        digest=inputs,
    )
    view["files"] = {k: str(v) for k, v in files.items()}
    view["outputs_digest"] = digest
    step = int(previous.get("evaluations", 0)) + 1
    view["evaluations"] = step
    ids = state.get("mlflow") or {}
    if ctx.tracking and ids.get("parent_run_id"):
        from mpm.graph.audit import head as chain_head

        audit_head = chain_head(state.get("audit") or [])
        view["mlflow_run_id"] = _log(
            ids, thread_id, view, files, step, audit_head, log_files=written
        )
    changed = previous.get("overall_status") != view["overall_status"]
    events = [
        event(
            "governance",
            "governance_evaluated",
            view["overall_status"],
            frameworks=view["frameworks"],
        )
    ]
    if view.get("error"):
        events.append(event("governance", "governance_error", view["error"]))
    elif changed:
        events.append(
            event(
                "governance",
                "governance_status_changed",
                f"{previous.get('overall_status')} -> {view['overall_status']}",
            )
        )
    update: dict[str, Any] = {"governance": view, "events": events}
    plan = state.get("plan")
    if plan is not None and not plan.get("gates"):
        from mpm.graph.nodes.plan import approval_gates
        from mpm.graph.state import ExecutionPlan

        gates = approval_gates(ExecutionPlan.model_validate(plan), view)
        update["plan"] = {**plan, "gates": [g.model_dump(mode="json") for g in gates]}
        if ctx.tracking and ids.get("parent_run_id"):
            tracking.log_dict(
                tracking.client(ids["tracking_uri"]),
                ids["parent_run_id"],
                update["plan"],
                "execution_plan.json",
            )
        blocking = [g for g in gates if g.blocks]
        events.append(
            event(
                "governance",
                "gates_planned",
                f"{len(gates)} gates ({len(blocking)} blocking: "
                + ", ".join(f"{g.name} -> {'/'.join(g.blocks)}" for g in blocking)
                + ")",
                frameworks=[
                    f"{a['framework']}: {a['reason']}"
                    for a in view.get("applicability", [])
                    if a.get("applies")
                ],
            )
        )
    maybe_die("governance")
    return Command(goto="supervisor", update=update)
