"""The deployment engineer's own last check: a closed gate or a fail-closed verdict in its
governance context holds serving and the app (nothing started or written) and the stage
fails with the reason, rather than reporting a deployment that did not happen."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mpm.agents.base import AgentFailure, StageContext
from mpm.agents.deployment_engineer import SPEC, DeploymentToolkit
from mpm.agents.mlops_engineer import SPEC as MLOPS
from mpm.tools import serving_smoke

UPSTREAM = {"mlops": {"outputs": {"model_uri": "models:/would_be_served/1"}}}


def _kit(tmp_path: Path, governance: dict[str, Any]) -> DeploymentToolkit:
    ctx = StageContext("deployment", tmp_path, tmp_path, {}, UPSTREAM, governance=governance)
    return DeploymentToolkit(ctx)


@pytest.fixture
def never_served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(serving_smoke, "serve_and_smoke", lambda uri, *a, **k: calls.append(uri))
    return calls


def test_serving_and_the_app_left_the_registration_stage() -> None:
    assert {t for t, _ in SPEC.procedure} == {"serve_endpoint", "write_app"}
    assert not {"serve_endpoint", "write_app"} & {t for t, _ in MLOPS.procedure}


def test_a_closed_serving_gate_fails_the_stage_with_the_gate_named(
    tmp_path: Path, never_served: list[str]
) -> None:
    kit = _kit(
        tmp_path,
        {
            "gated_actions": ["deploy_endpoint", "register_model"],
            "open_actions": ["register_model"],
            "closed_gates": {"deploy_endpoint": ["Ready before serving"]},
            "registration": {"blocked": False, "reasons": []},
        },
    )
    assert kit.serve_endpoint()["held"]
    with pytest.raises(AgentFailure, match="held .fail closed.: deploy_endpoint refused: gate "
                       "'Ready before serving' is not open"):  # fmt: skip
        kit.finalize()
    assert never_served == []


def test_fail_closed_governance_holds_even_an_ungated_endpoint(
    tmp_path: Path, never_served: list[str]
) -> None:
    kit = _kit(
        tmp_path,
        {
            "gated_actions": [],
            "open_actions": [],
            "closed_gates": {},
            "registration": {"blocked": True, "reasons": ["Ethical AI: FAILED"]},
        },
    )
    served, app = kit.serve_endpoint(), kit.write_app()
    assert served["held"] and app["held"] and "Ethical AI: FAILED" in served["summary"]
    assert never_served == [] and not list(tmp_path.rglob("app.py"))
    with pytest.raises(AgentFailure, match="fail closed: Ethical AI: FAILED"):
        kit.finalize()


def test_without_a_registered_model_there_is_nothing_to_serve(tmp_path: Path) -> None:
    ctx = StageContext("deployment", tmp_path, tmp_path, {}, {"mlops": {"outputs": {}}})
    with pytest.raises(AgentFailure, match="the mlops stage registered none"):
        DeploymentToolkit(ctx).serve_endpoint()
