"""The supervisor's guard: a wrong model proposal can never skip a stage."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableLambda

from mpm.graph import guard
from mpm.graph.llm import StubChatModel, register_model
from mpm.graph.nodes.plan import build_plan
from mpm.graph.nodes.supervisor import RouteDecision
from mpm.graph.state import ProjectRequirements
from tests.graph.helpers import drive_to_completion, example, runner


def _plan() -> Any:
    return build_plan(ProjectRequirements.model_validate(example("breast_cancer")))


def test_only_stages_with_finished_dependencies_are_ready() -> None:
    plan = _plan()
    assert guard.ready_stages(plan, {}) == ["business_analysis", "data_acquisition"]
    results = {"data_acquisition": {"status": "success"}}
    assert guard.ready_stages(plan, results) == ["business_analysis", "exploratory_analysis"]
    # model validation needs both model development and business analysis
    results |= {
        "exploratory_analysis": {"status": "success"},
        "model_development": {"status": "failed_with_fallback"},
    }
    assert "model_validation" not in guard.ready_stages(plan, results)
    results |= {
        "business_analysis": {"status": "failed"}
    }  # non-critical failure counts as finished
    assert guard.ready_stages(plan, results) == ["model_validation"]


def test_gated_stage_is_never_ready() -> None:
    plan = _plan()
    done = {n: {"status": "success"} for n in plan.stage_names if n != "mlops"}
    assert guard.ready_stages(plan, done) == ["mlops"]
    assert guard.ready_stages(plan, done, blocked={"mlops"}) == []


def test_proposal_outside_the_ready_set_is_rejected() -> None:
    accepted, rejected = guard.check_proposal(
        ["mlops", "data_acquisition", "deploy_now"], ["business_analysis", "data_acquisition"]
    )
    assert accepted == ["data_acquisition"]
    assert rejected == ["mlops", "deploy_now"]


def test_dependents_of_a_stage_are_found_transitively() -> None:
    assert guard.dependents(_plan(), "exploratory_analysis") == [
        "exploratory_analysis",
        "model_development",
        "model_validation",
        "mlops",
        "deployment",
    ]


LIES = ["exploratory_analysis", "model_development", "mlops", "deploy_to_production"]
"""Stages whose dependencies are not finished when the model is first asked (no approval
gate holds the first two back: only the dependency check can), and one that does not
exist."""


class LyingModel(StubChatModel):
    """Proposes to skip ahead to stages whose inputs do not exist yet, and to a stage that
    does not exist."""

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Any:
        assert issubclass(schema, RouteDecision)  # the per-call enum of ready stages

        def answer(_messages: Sequence[BaseMessage]) -> RouteDecision:
            self.usage.add(1, 1)
            return RouteDecision(next_stages=LIES, reason="ship it")

        return RunnableLambda(answer)


def test_lying_model_cannot_skip_stages_in_a_real_run(workspace: Path) -> None:
    register_model("liar", LyingModel)
    r = runner(workspace, model="liar")
    outcome = drive_to_completion(r, r.start("guard1", {"requirements": example("breast_cancer")}))
    events = outcome.values["events"]
    rejected = [e for e in events if e["event"] == "proposal_rejected"]
    assert rejected
    # at the first choice (business analysis or data acquisition) every lie is refused,
    # the ungated ones by the dependency check alone
    assert rejected[0]["detail"].split(", ") == LIES, rejected[0]
    assert rejected[0]["ready"] == ["business_analysis", "data_acquisition"]
    started = [e["node"] for e in events if e["event"] == "stage_started"]
    plan = outcome.values["plan"]
    deps = {s["name"]: s["depends_on"] for s in plan["stages"]}
    for i, stage in enumerate(started):
        assert all(d in started[:i] for d in deps[stage]), (
            f"{stage} started before its dependencies"
        )
    assert started[-2:] == ["mlops", "deployment"]  # registration, then serving
    assert set(started) == set(deps)


def test_model_is_consulted_only_when_there_is_a_choice(workspace: Path) -> None:
    r = runner(workspace)
    outcome = drive_to_completion(r, r.start("guard2", {"requirements": example("breast_cancer")}))
    proposals = [e for e in outcome.values["events"] if e["event"] == "model_proposal"]
    routes = [e for e in outcome.values["events"] if e["event"] == "route"]
    # business analysis and data acquisition are the only real choice in this plan
    assert len(proposals) == 1 and proposals[0]["accepted"] == [
        "business_analysis",
        "data_acquisition",
    ]
    assert len(routes) >= 5
