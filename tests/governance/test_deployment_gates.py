"""Every gated action has a plan stage, and a gate that could never open is refused at load.

Proves: registration (``mlops``) and serving / the app scaffold (``deployment``, after it)
are the stages the graph, the plan and governance agree perform each gated action; with
the reference library every gate's approvals are asked before the stage it holds (the NIST
deployment-readiness sign-off after registration, before serving); and a gate whose
approval can only be asked at or after the step it blocks -- by zero-config alignment, by
workflow.yaml alignment, or because it waits for such an approval -- is one load-time line
naming the gate, the approval and the stage, from ``mpm policies validate`` and from
``mpm kickoff`` alike (exit 2, no thread saved).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from mpm.governance import parse_policy
from mpm.governance._files import reference_dir
from mpm.governance.config import check_directory
from mpm.governance.defaults import PLAN_STAGES, STAGE_OF_ACTION, align_policy
from mpm.graph.nodes.plan import CATALOGUE
from mpm.graph.state import GATED_ACTIONS, STAGE_NAMES
from tests.graph.helpers import example, mpm

REFERENCE = reference_dir()

SERVING = """
stages:
  - name: Model Validation
    approvals:
      - name: Validation sign-off
        approvers: [modeling-review]
  - name: Post-implementation monitoring
    approvals:
      - name: Monitoring sign-off
        approvers: [modeling-leadership]
gates:
  - name: Serve once monitored
    rules:
      - action: CreateEndpoint
        parameters: {hardwareTierId: any}
    approvals: [Validation sign-off, Monitoring sign-off]
"""


def _folder(tmp_path: Path, policy: str) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "serving.yml").write_text(policy)
    shutil.copy(REFERENCE / "Approvers.md", folder / "Approvers.md")
    return folder


def _reference_copy(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "reference"
    shutil.copytree(REFERENCE, folder)
    workflow = folder / "workflow.yaml"
    text = workflow.read_text()
    assert old in text
    workflow.write_text(text.replace(old, new))
    return folder


def _kickoff(tmp_path: Path, folder: Path) -> tuple[int, str, Path]:
    workspace = tmp_path / "ws"
    req = tmp_path / "credit_risk.yaml"
    req.write_text(yaml.safe_dump(example("credit_risk")))
    result = mpm(
        "kickoff", "-r", str(req), "-w", str(workspace), "--thread", "t", "--policies",
        str(folder), "--toolset", "noop", "--no-tracking",
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr, workspace


def _saved_threads(workspace: Path) -> list[str]:
    db = workspace / "checkpoints.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        try:
            return [t for (t,) in conn.execute("SELECT DISTINCT thread_id FROM checkpoints")]
        except sqlite3.OperationalError:
            return []


def test_graph_plan_and_governance_agree_who_performs_each_gated_action() -> None:
    assert GATED_ACTIONS == STAGE_OF_ACTION
    assert tuple(CATALOGUE) == PLAN_STAGES == STAGE_NAMES
    assert STAGE_OF_ACTION["register_model"] == "mlops"
    assert STAGE_OF_ACTION["deploy_endpoint"] == STAGE_OF_ACTION["deploy_app"] == "deployment"
    # serving comes after registration: deployment depends on mlops in the plan
    assert CATALOGUE["deployment"][2] == ("mlops",)


def test_reference_library_asks_every_gate_approval_before_the_stage_it_holds() -> None:
    check = check_directory(REFERENCE)
    assert check.ok, check.errors
    config = check.loaded.workflow
    assert config.rounds[-2:] == ["mlops", "deployment"]
    from mpm.governance.workflow import build_workflow

    workflow = build_workflow({f.framework: f for f in check.loaded.library}, config=config)
    by_id = {a.id: a for a in workflow.approvals}
    held = 0
    for gate in workflow.gates:
        for action in gate.actions:
            stage = STAGE_OF_ACTION[action.blocks]
            for aid in gate.approvals:
                assert PLAN_STAGES.index(by_id[aid].round) < PLAN_STAGES.index(stage), (gate, aid)
            held += stage == "deployment"
    assert held >= 3  # NIST, ethical AI, MRM (and the LLM policy) hold serving
    # the gap this closes: NIST's readiness sign-off is asked after registration, so its
    # serving gate can only open once the model is registered
    readiness = by_id["nist_rmf:deployment-readiness-sign-off"]
    assert readiness.round == "mlops"
    assert "nist_rmf:gate:ready-before-serving" in readiness.gates


def test_post_implementation_is_after_deployment_or_the_last_round_a_workflow_has() -> None:
    policy = parse_policy(SERVING, source="serving.yml").policy
    rounds = list(PLAN_STAGES)
    aligned = {a.stage: a.round for a in align_policy(policy, rounds)}
    assert aligned["Post-implementation monitoring"] == "deployment"
    assert aligned["Model Validation"] == "model_validation"
    # a workflow.yaml written before the deployment stage existed ends at mlops
    old = {a.stage: a.round for a in align_policy(policy, rounds[:-1])}
    assert old["Post-implementation monitoring"] == "mlops"


def test_serving_gate_on_a_post_deployment_approval_is_refused_by_validate_and_kickoff(
    tmp_path: Path,
) -> None:
    folder = _folder(tmp_path, SERVING)
    check = check_directory(folder)
    assert len(check.errors) == 1, check.errors
    line = check.errors[0]
    assert line.startswith("serving.yml: gates: gate 'Serve once monitored' blocks CreateEndpoint")
    assert "(performed in deployment)" in line
    assert "approval 'Monitoring sign-off' can only be requested after deployment" in line
    assert "Validation sign-off" not in line  # that one is asked in time

    validated = mpm("policies", "validate", str(folder))
    assert validated.returncode == 2
    assert any(
        "gate 'Serve once monitored'" in ln and "'Monitoring sign-off'" in ln
        for ln in validated.stdout.splitlines() + validated.stderr.splitlines()
    ), validated.stdout + validated.stderr

    code, out, workspace = _kickoff(tmp_path, folder)
    assert code == 2, out
    assert "gate 'Serve once monitored'" in out and "'Monitoring sign-off'" in out, out
    assert "deployment" in out
    assert _saved_threads(workspace) == []

    # aligned after registration instead, the same gate is fine
    (folder / "workflow.yaml").write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "rounds": list(PLAN_STAGES),
                "order": [{"tier": "All", "groups": ["modeling-review", "modeling-leadership"]}],
                "alignment": {
                    "serving": {
                        "Model Validation": "model_validation",
                        "Post-implementation monitoring": "mlops",
                    }
                },
            }
        )
    )
    assert check_directory(folder).ok, check_directory(folder).errors
    assert mpm("policies", "validate", str(folder)).returncode == 0


def test_reference_readiness_aligned_after_deployment_is_refused(tmp_path: Path) -> None:
    folder = _reference_copy(tmp_path, "    Manage: mlops", "    Manage: deployment")
    errors = check_directory(folder).errors
    assert errors == [
        "nist_ai_rmf.yml: gates: gate 'Ready before serving' blocks CreateEndpoint (performed "
        "in deployment) but its approval 'Deployment Readiness Sign Off' can only be requested "
        "after deployment; the run would wait forever -- align policy stage 'Manage' with a "
        "round before deployment (alignment in workflow.yaml)"
    ]
    code, out, workspace = _kickoff(tmp_path, folder)
    assert code == 2 and "'Ready before serving'" in out and "Deployment Readiness" in out, out
    assert _saved_threads(workspace) == []


def test_an_approval_waiting_for_a_later_round_deadlocks_its_gate_too(tmp_path: Path) -> None:
    """Rounds out of plan order: the validation round waits for the deployment round, so a
    serving gate on a validation approval could never open either."""
    folder = _folder(tmp_path, SERVING.replace(", Monitoring sign-off]", "]"))
    (folder / "workflow.yaml").write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "rounds": ["business_analysis", "deployment", "model_validation"],
                "order": [{"tier": "All", "groups": ["modeling-review", "modeling-leadership"]}],
                "alignment": {
                    "serving": {
                        "Post-implementation monitoring": "deployment",
                        "Model Validation": "model_validation",
                    }
                },
            }
        )
    )
    errors = check_directory(folder).errors
    assert len(errors) == 1, errors
    assert "approval 'Validation sign-off' can only be requested after deployment" in errors[0]
    assert "(it waits for 'Monitoring sign-off')" in errors[0]
    assert "align policy stage 'Post-implementation monitoring'" in errors[0]


def test_a_round_that_is_no_plan_stage_is_asked_last_and_cannot_gate_anything(
    tmp_path: Path,
) -> None:
    folder = _folder(tmp_path, SERVING.replace(", Monitoring sign-off]", "]"))
    (folder / "workflow.yaml").write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "rounds": ["business_analysis", "board_review"],
                "order": [{"tier": "All", "groups": ["modeling-review", "modeling-leadership"]}],
                "alignment": {"serving": {"Model Validation": "board_review"}},
            }
        )
    )
    errors = check_directory(folder).errors
    assert len(errors) == 1, errors
    assert "after every plan stage (round 'board_review' is not a plan stage)" in errors[0]


@pytest.mark.parametrize("bound", ["deploy_somewhere", "register"])
def test_an_action_bound_to_nothing_mpm_performs_is_refused(tmp_path: Path, bound: str) -> None:
    folder = _reference_copy(tmp_path, "CreateApp: deploy_app", f"CreateApp: {bound}")
    errors = check_directory(folder).errors
    assert errors == [
        f"workflow.yaml: actions.CreateApp: {bound!r} is not an action mpm performs "
        "(expected one of: register_model, deploy_endpoint, deploy_app)"
    ]
