"""Each public Domino policy, alone in a directory with the organisation's Approvers.md,
governs a kickoff of the credit-risk example with no other file -- across processes.

The kickoff (one ``mpm`` process) must apply the policy with the default reason, hold the
high-risk run step by step, and ask the policy's own questions with its own labels; the
answers (another process) must lead to approvals requested at the plan stage the policy
stage's name matches, from the groups the policy names."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mpm.governance import load_policy
from mpm.governance.defaults import DEFAULT_APPLIES_REASON
from tests.graph.helpers import REPO, auto_answer, example, mpm, runner

SHARED = Path("/work/shared/policies")
PUBLIC = sorted(
    [*SHARED.glob("domino-examples/*.yml"), *SHARED.glob("*.yaml")], key=lambda p: p.name
)
CLI_RUN = ("--toolset", "noop", "--no-tracking")

pytestmark = pytest.mark.skipif(not PUBLIC, reason="shared public policies not present")


def _labels(policy: Path) -> set[str]:
    """Every label the policy gives its inputs and file uploads."""
    loaded = load_policy(policy).policy
    return {p.artifact.details.label for p in [*loaded.inputs(), *loaded.file_uploads()]}


@pytest.mark.parametrize("policy", PUBLIC, ids=lambda p: p.stem)
def test_public_policy_alone_governs_a_kickoff(tmp_path: Path, policy: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    shutil.copy(policy, folder / policy.name)
    shutil.copy(REPO / "reference" / "governance" / "Approvers.md", folder / "Approvers.md")
    workspace = tmp_path / "ws"
    req = tmp_path / "credit_risk.yaml"
    req.write_text(yaml.safe_dump(example("credit_risk")))
    result = mpm(
        "kickoff", "-r", str(req), "-w", str(workspace), "--thread", "t", "--policies",
        str(folder), *CLI_RUN,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr

    snap = runner(workspace).snapshot("t")
    gov: dict[str, Any] = snap.values["governance"]
    assert gov["overall_status"] != "ERROR", gov.get("error")
    (framework,) = gov["frameworks"]
    assert gov["applicability"][0]["reason"] == DEFAULT_APPLIES_REASON
    assert gov["execution_mode"]["mode"] == "step_by_step"  # credit_risk is high risk

    status = mpm("status", "t", "-w", str(workspace))
    assert "execution mode: step_by_step" in status.stdout, status.stdout + status.stderr

    stage_approvals = [a for _, a in load_policy(policy).policy.approvals()]
    assert len(gov["approvals"]) == len(stage_approvals)
    if not stage_approvals:
        return  # e.g. NIST AI RMF 100-1: only a top-level approver, no stage sign-offs
    if snap.interrupts and snap.interrupts[0]["value"]["type"] == "open_questions":
        asked = snap.interrupts[0]["value"]["questions"]
        labels = _labels(policy)
        assert asked and all(q["framework"] == framework for q in asked)
        assert {q["label"] for q in asked} <= labels, {q["label"] for q in asked} - labels
        answers = tmp_path / "answers.yaml"
        answers.write_text(yaml.safe_dump({q["key"]: auto_answer(q) for q in asked}))
        answered = mpm("answer", "t", "-w", str(workspace), "--file", str(answers))
        assert answered.returncode == 0, answered.stdout + answered.stderr
        snap = runner(workspace).snapshot("t")

    # step_by_step: no stage after the earliest sign-off's round ran before it was granted
    order = snap.values["plan"]["stages"]
    names = [s["name"] for s in order]
    first_round = min(names.index(a["round"]) for a in gov["approvals"] if a["round"] in names)
    ran = set(snap.values.get("results") or {})
    assert not ran & set(names[first_round + 1 :]), (ran, names[first_round])

    requests = [i["value"] for i in snap.interrupts if i["value"]["type"] == "approval"]
    if requests:
        by_id = {a["id"]: a for a in snap.values["governance"]["approvals"]}
        policy_groups = {
            approval.name: approval.approver_names
            for _, approval in load_policy(policy).policy.approvals()
        }
        for request in requests:
            assert request["project_stage"] == by_id[request["approval_id"]]["round"]
            assert request["project_stage"] == names[first_round]
            assert request["approver_groups"] == policy_groups[request["name"]]
