"""The graph as LangGraph Server serves it: ``langgraph.json`` names ``./graph/server.py:graph``.

Compiled without a checkpointer: the server brings persistence (in memory under
``langgraph dev``, PostgreSQL in a deployment) and rejects a graph that has its own.
Run settings come from the server's environment, the fallbacks of
:class:`graph.context.RunContext` (``MPM_WORKSPACE``, ``MPM_MODEL``, ``MPM_TOOLSET``,
``MPM_TRACKING``, ``MPM_POLICIES``), or per run from the client's ``context``.
"""

from __future__ import annotations

from mpm.graph.builder import build_graph

graph = build_graph()
