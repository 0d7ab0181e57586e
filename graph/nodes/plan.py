"""Plan: decompose the requirements into stages with owners, dependencies and milestones.

The decomposition is deterministic (a catalogue filtered by the requirements), so the
same requirements always give the same plan and the plan can be audited; approval gates
are added by governance (see ``graph/nodes/governance.py``).

Registration (``mlops``) and deployment (``deployment``: serving and the app scaffold) are
separate stages because policies ask for different sign-offs before each: a
deployment-readiness sign-off is asked once the model is registered, and only then may a
``CreateEndpoint`` gate open. In one stage that gate could never open."""

from __future__ import annotations

from typing import Any

from langgraph.config import get_config
from langgraph.runtime import Runtime
from langgraph.types import Command

from mpm.graph import run_tracking
from mpm.graph.context import RunContext, run_context
from mpm.graph.events import event
from mpm.graph.state import (
    GATED_ACTIONS,
    AgentType,
    ApprovalGate,
    ExecutionPlan,
    GraphState,
    ModelType,
    ProjectRequirements,
    StageSpec,
)
from mpm.tools.killpoints import maybe_die
from mpm.tools.tracking import tracking_uri_for

# name: (agent, task, depends_on, critical, fallback, milestone, timeout_s)
CATALOGUE: dict[
    str, tuple[AgentType, str, tuple[str, ...], bool, str | None, str | None, float]
] = {
    "business_analysis": (
        AgentType.business_analyst,
        "Restate the objective as measurable success criteria; record constraints and stakeholders; build the risk register.",
        (),
        False,
        None,
        "M1: requirements baselined",
        300.0,
    ),
    "data_acquisition": (
        AgentType.data_wrangler,
        "Acquire the data named in the requirements, profile it, run the quality checks, split train/validation/test.",
        (),
        True,
        None,
        "M2: data ready",
        600.0,
    ),
    "exploratory_analysis": (
        AgentType.data_scientist,
        "Explore the training data and recommend feature engineering for the model developer.",
        ("data_acquisition",),
        False,
        None,
        None,
        600.0,
    ),
    "model_development": (
        AgentType.model_developer,
        "Train several candidate model families with cross-validation and pick the best by the target metric.",
        ("data_acquisition", "exploratory_analysis"),
        True,
        "train_baseline",
        "M3: candidate model",
        1200.0,
    ),
    "model_validation": (
        AgentType.model_validator,
        "Test the best model on the held-out test set against the success threshold; calibration, robustness, fairness.",
        ("model_development", "business_analysis"),
        True,
        None,
        "M4: model validated",
        600.0,
    ),
    "mlops": (
        AgentType.mlops_engineer,
        "Package and register the pipeline model and write the serving and monitoring plan.",
        ("model_validation",),
        True,
        None,
        "M5: model registered",
        600.0,
    ),
    "deployment": (
        AgentType.deployment_engineer,
        "Serve the registered model on loopback and check it answers a smoke request; write the app scaffold over it.",
        ("mlops",),
        True,
        None,
        "M6: model deployed",
        600.0,
    ),
}

# LLM projects: no weights can be trained or fetched offline, so the plan stops after the
# data work; the external LLM governance framework covers the model itself.
LLM_STAGES = ("business_analysis", "data_acquisition", "exploratory_analysis")


def build_plan(req: ProjectRequirements) -> ExecutionPlan:
    names = LLM_STAGES if req.model_type == ModelType.llm else tuple(CATALOGUE)
    stages = []
    for name in names:
        agent, task, deps, critical, fallback, milestone, timeout = CATALOGUE[name]
        stages.append(
            StageSpec(
                name=name,
                agent=agent,
                task=task,
                depends_on=[d for d in deps if d in names],
                critical=critical,
                fallback=fallback,
                milestone=milestone,
                timeout_s=req.stage_timeout_s.get(name, timeout),
                max_retries=req.stage_retries.get(name, 1),
            )
        )
    return ExecutionPlan(stages=stages)


def plan(state: GraphState, runtime: Runtime[RunContext]) -> Command:
    ctx = run_context(runtime)
    req = ProjectRequirements.model_validate(state["requirements"])
    execution_plan = state.get("plan") or build_plan(req).model_dump(mode="json")
    update: dict[str, Any] = {
        "plan": execution_plan,
        "events": [
            event("plan", "plan_created", " -> ".join(s["name"] for s in execution_plan["stages"]))
        ],
    }
    if ctx.tracking:
        ws = ctx.ws
        thread_id = get_config()["configurable"]["thread_id"]
        update["mlflow"] = run_tracking.open_parent_run(
            tracking_uri_for(ws.root),
            ws.artifact_root,
            thread_id,
            req.slug,
            execution_plan,
            state["requirements"],
        )
        maybe_die("plan")
    # governance runs next: it decides the applicable frameworks and adds the approval gates.
    return Command(goto="governance", update=update)


def approval_gates(plan: ExecutionPlan, view: dict[str, Any]) -> list[ApprovalGate]:
    """The gates governance puts into the plan: policy gates on actions (blocking the
    stage that performs them) and, per project stage, the sign-offs asked after it."""
    if view.get("overall_status") == "ERROR":
        return [
            ApprovalGate(
                id="governance:unavailable",
                name=f"governance unavailable: {view.get('error', '')}",
                blocks=[s for s in plan.stage_names if s in GATED_ACTIONS.values()],
                action=", ".join(a for a, s in GATED_ACTIONS.items() if s in plan.stage_names),
            )
        ]
    gates = []
    for gate_id, gate in (view.get("gates") or {}).items():
        performers = {GATED_ACTIONS.get(a) for a in gate["blocks"]}
        stages = [s for s in plan.stage_names if s in performers]
        gates.append(
            ApprovalGate(
                id=gate_id,
                name=gate["name"],
                approvals=gate["approvals"],
                blocks=stages,
                action=", ".join(gate["blocks"]),
            )
        )
    mode = (view.get("execution_mode") or {}).get("mode", "automated")
    order = plan.stage_names
    for stage in order:
        asked = [a["id"] for a in view.get("approvals") or [] if a["round"] == stage]
        if asked:
            # step_by_step: the sign-offs after a stage hold every later stage.
            held = order[order.index(stage) + 1 :] if mode == "step_by_step" else []
            gates.append(
                ApprovalGate(
                    id=f"review:{stage}",
                    name=f"sign-off after {stage} ({mode})",
                    approvals=asked,
                    after_stage=stage,
                    blocks=held,
                )
            )
    return gates
