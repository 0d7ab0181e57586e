"""The project manager graph: nodes, then the wiring, each edge with why it is there.

``build_graph(checkpointer)`` is the factory: the CLI compiles with a saver from
``graph/checkpointing.py``; LangGraph Server imports ``graph.server:graph`` (compiled
without one, persistence is the server's).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from langgraph.graph import END, START, StateGraph

from mpm.graph.context import RunContext
from mpm.graph.nodes.approvals import approval, questions
from mpm.graph.nodes.governance import governance
from mpm.graph.nodes.kickoff import kickoff
from mpm.graph.nodes.plan import plan
from mpm.graph.nodes.stage import run_stage
from mpm.graph.nodes.supervisor import supervisor
from mpm.graph.nodes.synthesize import synthesize
from mpm.graph.state import AgentType, GraphState, InputState

AGENT_NODES = tuple(a.value for a in AgentType)


@lru_cache(maxsize=1)
def _compiled() -> Any:
    return build_graph()


def graph_with(checkpointer: Any) -> Any:
    """The compiled graph bound to ``checkpointer``, without compiling it again: compiling
    inspects every node's code and costs tens of milliseconds, a copy costs microseconds."""
    return _compiled().copy({"checkpointer": checkpointer})


def build_graph(checkpointer: Any = None, **compile_kwargs: Any) -> Any:
    builder = StateGraph(GraphState, context_schema=RunContext, input_schema=InputState)

    # kickoff loops on itself while it still has questions, then hands over to plan.
    builder.add_node("kickoff", kickoff, destinations=("kickoff", "plan", END))
    # plan hands over to governance, which decides the frameworks and adds the gates.
    builder.add_node("plan", plan, destinations=("governance",))
    # governance always reports to the supervisor, which decides what comes next.
    builder.add_node("governance", governance, destinations=("supervisor",))
    # supervisor: stages (Send fan-out), approvals (Send, one interrupt each), open
    # questions, back to governance after a rejection, or synthesis at the end.
    builder.add_node(
        "supervisor",
        supervisor,
        destinations=(*AGENT_NODES, "approval", "questions", "governance", "synthesize"),
    )
    for name in AGENT_NODES:
        builder.add_node(name, run_stage)
        # new evidence: governance re-evaluates after every stage (once per super-step).
        builder.add_edge(name, "governance")
    builder.add_node("approval", approval)
    # a decision changes approval states and gates: re-evaluate.
    builder.add_edge("approval", "governance")
    builder.add_node("questions", questions)
    # answers are evidence: re-evaluate.
    builder.add_edge("questions", "governance")
    builder.add_node("synthesize", synthesize)

    # every run starts by turning the conversation or file into requirements.
    builder.add_edge(START, "kickoff")
    # synthesis is the last step of every run that got past kickoff.
    builder.add_edge("synthesize", END)
    return builder.compile(checkpointer=checkpointer, **compile_kwargs)
