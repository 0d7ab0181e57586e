"""Benchmark: model calls and input tokens to run the same N-stage project through three
orchestrations, all on the same counting stub model.

    python benchmarks/tokens.py                       # 3, 6 and 12 stages
    python benchmarks/tokens.py --stages 3 --stages 24

Prints one JSON document on stdout. Needs the ``bench`` extra
(``pip install -e '.[bench]'``: langgraph-supervisor and langchain).

The orchestrations:

* ``mpm`` -- this project's graph (``graph.runner.Runner``, toolset ``noop``, tracking
  off, model ``stub``), driven to the end: governance questions are answered and every
  approval is granted by an eligible approver (no model is involved in either).
* ``langgraph_supervisor`` -- ``langgraph_supervisor.create_supervisor`` with default
  settings over one ``langgraph.prebuilt.create_react_agent`` per stage, as its README
  builds them.
* ``langchain_subagents`` -- the pattern LangChain now recommends instead: a
  ``langchain.agents.create_agent`` supervisor whose tools are the sub-agents (each a
  ``create_agent`` with its stage's tools), called with a written request.

What is the same in all three:

* **the project**: the requirements of ``reference/examples/breast_cancer.yaml``.
* **the stages**: the plan catalogue's stages (``graph.nodes.plan.CATALOGUE``), in plan
  order; for more than six stages the catalogue repeats (``data_acquisition_2``, ...),
  each copy's first stages depending on the previous copy's last. mpm is given this
  plan by replacing ``graph.nodes.plan.build_plan`` in this process only (the plan node
  calls it to make the plan); nothing else in the graph changes, and the benchmark checks
  that the run used exactly this plan.
* **the tools**: each stage agent's no-op toolkit (``agents.registry.agent_for(agent,
  "noop")``): the same tool names, descriptions and schemas, each returning at once.
* **the agent prompts**: each stage agent's system prompt (persona + standard procedure)
  is ``AgentSpec.system_prompt()``; the other two add the stage's task (in the prompt for
  langgraph-supervisor, whose handoffs carry no arguments; in the supervisor's written
  request for the sub-agent pattern, which also carries the requirements).
* **the model**: ``graph.llm.StubChatModel``, which counts every message it is sent plus
  the bound tools' JSON schemas (``mpm.graph.llm.count_tokens``, a word/punctuation count, not
  a BPE tokenizer) into ``graph.llm.STUB_USAGE``. The other two use
  ``benchmarks/_scripted.py``'s subclass, which scripts a sensible run of their protocols:
  the supervisor delegates each stage in order, each stage agent calls its tools in order
  and answers, then the supervisor finishes. Each run is checked: every stage ran, and
  called exactly its procedure's tools in order.

The supervisors of the other two delegate one stage at a time; mpm runs independent
stages in parallel, and asks its model only where more than one stage is ready.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from mpm.graph.state import ExecutionPlan, StageSpec  # noqa: E402

DEFAULT_SIZES = (3, 6, 12)
FRAMEWORKS = ("mpm", "langgraph_supervisor", "langchain_subagents")


class BenchmarkError(RuntimeError):
    """A run did not do what the benchmark scripts; its numbers would mean nothing."""


def requirements() -> dict[str, Any]:
    path = ROOT / "reference" / "examples" / "breast_cancer.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def project_plan(n: int) -> ExecutionPlan:
    """The first ``n`` stages of the plan catalogue, repeated as often as needed."""
    from mpm.graph.nodes.plan import CATALOGUE

    catalogue = list(CATALOGUE.items())
    stages: list[StageSpec] = []
    for i in range(n):
        copy, (name, (agent, task, deps, critical, fallback, _milestone, timeout)) = (
            i // len(catalogue),
            catalogue[i % len(catalogue)],
        )
        suffix = "" if copy == 0 else f"_{copy + 1}"
        known = {s.name for s in stages}
        depends_on = [d + suffix for d in deps if d + suffix in known]
        if copy > 0 and not deps:
            depends_on = [f"{catalogue[-1][0]}{'' if copy == 1 else f'_{copy}'}"]
        stages.append(
            StageSpec(
                name=name + suffix,
                agent=agent,
                task=task,
                depends_on=depends_on,
                critical=critical,
                fallback=fallback,
                timeout_s=timeout,
                max_retries=1,
            )
        )
    return ExecutionPlan(stages=stages)


def procedure(agent: str) -> list[str]:
    from mpm.agents.registry import agent_for

    return [tool for tool, _ in agent_for(agent, "noop").procedure]


def _usage(run: Callable[[], None]) -> dict[str, Any]:
    from mpm.graph.llm import STUB_USAGE

    STUB_USAGE.reset()
    started = time.perf_counter()
    run()
    usage = STUB_USAGE.snapshot()
    return {
        "model_calls": usage["calls"],
        "input_tokens": usage["input_tokens"],
        "output_tokens": usage["output_tokens"],
        "seconds": round(time.perf_counter() - started, 3),
    }


# --------------------------------------------------------------------------- mpm


@contextlib.contextmanager
def _plan_replaced(plan: ExecutionPlan) -> Iterator[None]:
    import mpm.graph.nodes.plan as plan_node

    original = plan_node.build_plan
    plan_node.build_plan = lambda *_args, **_kwargs: plan.model_copy(deep=True)
    try:
        yield
    finally:
        plan_node.build_plan = original


def run_mpm(plan: ExecutionPlan, workdir: Path) -> dict[str, Any]:
    from mpm.graph.context import RunContext
    from mpm.graph.runner import Runner
    from tests.graph.helpers import drive_to_completion, own_signers

    box: dict[str, Any] = {}

    def run() -> None:
        with own_signers(workdir / "signing") as identity, _plan_replaced(plan):
            ctx = RunContext(
                workspace=str(workdir),
                model="stub",
                toolset="noop",
                tracking=False,
                identity=str(identity),  # the approvers played sign with real keys
            )
            runner = Runner(ctx, "sqlite")
            outcome = runner.start("tokens", {"requirements": requirements()})
            box["outcome"] = drive_to_completion(runner, outcome, max_rounds=200)

    usage = _usage(run)
    values = box["outcome"].values
    used = [s["name"] for s in values["plan"]["stages"]]
    if used != plan.stage_names:
        raise BenchmarkError(f"mpm ran the plan {used}, not the benchmark's {plan.stage_names}")
    for spec in plan.stages:
        result = values["results"].get(spec.name) or {}
        if result.get("status") != "success" or result.get("tool_calls") != procedure(
            spec.agent.value
        ):
            raise BenchmarkError(f"mpm stage {spec.name} did not run its procedure: {result}")
    return usage


# --------------------------------------------------------------------------- the others


def _stage_tools(spec: StageSpec, workdir: Path, calls: list[tuple[str, str]]) -> list[Any]:
    """The stage agent's no-op tools (as mpm binds them), logging each call."""
    import functools

    from langchain_core.tools import StructuredTool

    from mpm.agents.base import StageContext
    from mpm.agents.registry import agent_for

    toolkit = agent_for(spec.agent.value, "noop").toolkit(
        StageContext(
            stage=spec.name,
            stage_dir=workdir,
            workspace_root=workdir,
            requirements=requirements(),
        )
    )
    logged = []
    for tool in toolkit.tools():

        def call(*args: Any, _tool: Any = tool, **kwargs: Any) -> Any:
            calls.append((spec.name, _tool.name))
            return _tool.func(*args, **kwargs)

        functools.update_wrapper(call, tool.func)
        logged.append(
            StructuredTool.from_function(
                func=call,
                name=tool.name,
                description=tool.description,
                args_schema=tool.args_schema,
            )
        )
    return logged


def _check_calls(plan: ExecutionPlan, calls: list[tuple[str, str]], framework: str) -> None:
    expected = [(s.name, tool) for s in plan.stages for tool in procedure(s.agent.value)]
    if calls != expected:
        raise BenchmarkError(
            f"{framework} did not run the scripted project: expected tool calls {expected}, got {calls}"
        )


def _project_message() -> Any:
    from langchain_core.messages import HumanMessage

    return HumanMessage(json.dumps(requirements(), sort_keys=True, default=str))


def run_langgraph_supervisor(plan: ExecutionPlan, workdir: Path) -> dict[str, Any]:
    from langgraph.prebuilt import create_react_agent
    from langgraph_supervisor import create_supervisor

    from benchmarks._scripted import HANDOFF_PREFIX, ScriptedStub, supervisor_prompt
    from mpm.agents.registry import agent_for

    model = ScriptedStub()
    calls: list[tuple[str, str]] = []
    agents = []
    for spec in plan.stages:
        prompt = (
            agent_for(spec.agent.value, "noop").system_prompt()
            + f"\n\nYour stage: {spec.name}. Your task: {spec.task}"
        )
        agents.append(
            create_react_agent(
                model, _stage_tools(spec, workdir, calls), prompt=prompt, name=spec.name
            )
        )
    app = create_supervisor(
        agents,
        model=model,
        prompt=supervisor_prompt([(HANDOFF_PREFIX + s.name, s.task) for s in plan.stages]),
    ).compile()
    usage = _usage(
        lambda: app.invoke({"messages": [_project_message()]}, {"recursion_limit": 10_000})
    )
    _check_calls(plan, calls, "langgraph_supervisor")
    return usage


def run_langchain_subagents(plan: ExecutionPlan, workdir: Path) -> dict[str, Any]:
    from langchain.agents import create_agent
    from langchain_core.messages import HumanMessage
    from langchain_core.tools import StructuredTool

    from benchmarks._scripted import ScriptedStub, supervisor_prompt
    from mpm.agents.registry import agent_for

    model = ScriptedStub()
    calls: list[tuple[str, str]] = []

    def subagent_tool(spec: StageSpec) -> StructuredTool:
        agent = create_agent(
            model,
            tools=_stage_tools(spec, workdir, calls),
            system_prompt=agent_for(spec.agent.value, "noop").system_prompt(),
            name=spec.name,
        )

        def delegate(request: str) -> str:
            result = agent.invoke({"messages": [HumanMessage(request)]})
            return str(result["messages"][-1].content)

        return StructuredTool.from_function(
            func=delegate,
            name=spec.name,
            description=f"Delegate the {spec.name} stage to the {spec.agent.value} agent. "
            "`request`: the stage, its task and the project requirements, as JSON.",
        )

    supervisor = create_agent(
        model,
        tools=[subagent_tool(s) for s in plan.stages],
        system_prompt=supervisor_prompt([(s.name, s.task) for s in plan.stages]),
        name="supervisor",
    )
    usage = _usage(
        lambda: supervisor.invoke({"messages": [_project_message()]}, {"recursion_limit": 10_000})
    )
    _check_calls(plan, calls, "langchain_subagents")
    return usage


RUNNERS: dict[str, Callable[[ExecutionPlan, Path], dict[str, Any]]] = {
    "mpm": run_mpm,
    "langgraph_supervisor": run_langgraph_supervisor,
    "langchain_subagents": run_langchain_subagents,
}


def measure(sizes: list[int], frameworks: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for n in sizes:
        plan = project_plan(n)
        row: dict[str, Any] = {"stages": plan.stage_names}
        for name in frameworks:
            with tempfile.TemporaryDirectory(prefix=f"mpm-tokens-{name}-{n}-") as tmp:
                row[name] = RUNNERS[name](plan, Path(tmp))
        if "mpm" in row:
            base = row["mpm"]
            row["ratio_vs_mpm"] = {
                name: {
                    "input_tokens": round(row[name]["input_tokens"] / base["input_tokens"], 2),
                    "model_calls": round(row[name]["model_calls"] / base["model_calls"], 2),
                }
                for name in frameworks
                if name != "mpm"
            }
        results[str(n)] = row
    growth = {}
    if len(sizes) > 1:
        first, last = str(sizes[0]), str(sizes[-1])
        growth = {
            name: round(
                results[last][name]["input_tokens"] / results[first][name]["input_tokens"], 2
            )
            for name in frameworks
        }
    return {"sizes": results, f"input_token_growth_{sizes[0]}_to_{sizes[-1]}": growth}


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", type=int, action="append", help="plan sizes (default 3 6 12)")
    parser.add_argument(
        "--framework", action="append", choices=FRAMEWORKS, help="default: all three"
    )
    args = parser.parse_args(argv)
    sizes = sorted(set(args.stages or DEFAULT_SIZES))
    if any(n < 1 for n in sizes):
        parser.error("--stages: expected positive numbers")
    frameworks = args.framework or list(FRAMEWORKS)
    warnings.filterwarnings("ignore")  # create_react_agent's deprecation notice
    report = {
        "benchmark": "tokens",
        "model": "mpm.graph.llm.StubChatModel (scripted); tokens = mpm.graph.llm.count_tokens over every "
        "message sent plus the bound tools' JSON schemas",
        "project": "reference/examples/breast_cancer.yaml; plan = plan catalogue stages, repeated",
        **measure(sizes, frameworks),
        "versions": {
            p: _version(p)
            for p in ("langgraph", "langchain", "langchain-core", "langgraph-supervisor")
        },
        "python": platform.python_version(),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
