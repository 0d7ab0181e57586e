"""With the real pinned local model (llama.cpp, Qwen2.5-Coder-1.5B, 1 thread): one
sub-agent stage runs end to end and the supervisor's constrained route names a ready stage.

Enabled by ``MPM_REAL_MODEL=1``, which ``.ci/run`` sets after ``mpm model fetch``. Skipped
only when that variable is absent outside CI; under ``CI=true`` its absence, or a model
that cannot be served, is a failure — never a silent skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ENV = "MPM_REAL_MODEL"

if not os.environ.get(ENV):
    if os.environ.get("CI", "").lower() == "true":
        raise RuntimeError(
            f"CI=true but {ENV} is not set: .ci/run must fetch the local model "
            f"(`mpm model fetch`) and export {ENV}=1"
        )
    pytest.skip(f"{ENV} is not set (the real-model tests run in CI)", allow_module_level=True)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_server() -> Iterator[str]:
    """Attach to the cached model's server or start one; stop it only if we started it."""
    from mpm.graph import local_model as lm

    if lm.cached_model() is None:
        pytest.fail(f"{ENV} is set but no verified weights are cached in {lm.cache_dir()}")
    already = lm.running_server() is not None
    try:
        url = lm.ensure_server()
    except lm.LocalModelError as exc:
        pytest.fail(f"the local model cannot be served: {exc}")
    yield url
    if not already:
        lm.stop_server()


def test_business_analysis_stage_finishes_with_the_real_model(
    local_server: str, tmp_path: Path
) -> None:
    from mpm.agents.base import StageContext, run_agent
    from mpm.agents.registry import agent_for
    from mpm.graph.llm import get_chat_model
    from mpm.graph.nodes.plan import CATALOGUE
    from mpm.graph.state import ProjectRequirements
    from tests.graph.helpers import example

    req = ProjectRequirements.model_validate(example("breast_cancer")).model_dump(mode="json")
    ctx = StageContext(
        stage="business_analysis",
        stage_dir=tmp_path,
        workspace_root=tmp_path,
        requirements=req,
    )
    outcome = run_agent(
        agent_for("business_analyst"),
        ctx,
        get_chat_model("local"),
        CATALOGUE["business_analysis"][1],
    )
    assert {"success_criteria", "risk_register_path"} <= set(outcome.outputs)
    assert outcome.outputs["success_criteria"] == "accuracy >= 0.9 on the held-out test set"
    assert (tmp_path / "risk_register.json").is_file()
    assert outcome.finished_by in {"finish", "repeat", "reply"}
    assert outcome.input_tokens > 0  # as the server reported it (usage_metadata)


def test_supervisor_route_with_the_real_model_names_a_ready_stage(local_server: str) -> None:
    from mpm.graph.nodes.plan import build_plan
    from mpm.graph.nodes.supervisor import _ask_model
    from mpm.graph.state import ProjectRequirements
    from tests.graph.helpers import example

    req = ProjectRequirements.model_validate(example("breast_cancer"))
    plan = build_plan(req)
    ready = ["business_analysis", "data_acquisition"]
    state = {"requirements": req.model_dump(mode="json"), "results": {}}
    accepted, rejected, reason = _ask_model("local", state, plan, ready)
    assert accepted and set(accepted) <= set(ready), (accepted, rejected, reason)
    assert rejected == []
