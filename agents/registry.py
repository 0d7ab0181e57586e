"""Which specialist runs which agent type, and the no-op and minimal variants used by benchmarks."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool, StructuredTool

from mpm.agents import (
    business_analyst,
    data_scientist,
    data_wrangler,
    deployment_engineer,
    mlops_engineer,
    model_developer,
    model_validator,
)
from mpm.agents.base import AgentFailure, AgentOutcome, AgentSpec, Toolkit

AGENTS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        business_analyst.SPEC,
        data_wrangler.SPEC,
        data_scientist.SPEC,
        model_developer.SPEC,
        model_validator.SPEC,
        mlops_engineer.SPEC,
        deployment_engineer.SPEC,
    )
}

TOOLSETS = ("real", "noop", "minimal")


class NoopToolkit(Toolkit):
    """Same tool names and prompts as the real toolkit, but every tool returns at once.

    Used by ``benchmarks/overhead.py`` and the concurrency benchmark to measure the graph
    and the agent loop without the cost of the ML work."""

    tool_names: tuple[str, ...] = ()

    def tools(self) -> list[BaseTool]:
        def make(name: str) -> BaseTool:
            def run() -> dict[str, Any]:
                self.outcome.outputs[name] = True
                return {"summary": f"{name}: no-op"}

            return StructuredTool.from_function(func=run, name=name, description=f"no-op {name}")

        return [make(n) for n in self.tool_names]

    def finalize(self) -> AgentOutcome:
        if self.outcome.tool_errors:
            raise AgentFailure(f"stage {self.ctx.stage!r}: {self.outcome.tool_errors[0]}")
        return self.outcome


def agent_for(name: str, toolset: str = "real") -> AgentSpec:
    spec = AGENTS[name]
    if toolset == "real":
        return spec
    if toolset == "minimal":  # real but minimal work, for benchmarks (agents/minimal.py)
        from mpm.agents.minimal import minimal_agent

        return minimal_agent(spec)
    if toolset != "noop":
        raise ValueError(f"toolset {toolset!r}: expected one of {', '.join(TOOLSETS)}")
    names = tuple(dict.fromkeys(t for t, _ in spec.procedure + spec.fallback_procedure))
    toolkit = type(f"Noop{spec.toolkit.__name__}", (NoopToolkit,), {"tool_names": names})
    return AgentSpec(spec.name, spec.persona, toolkit, spec.procedure, spec.fallback_procedure)
