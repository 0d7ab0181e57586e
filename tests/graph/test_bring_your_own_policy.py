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
from tests.conftest import SHARED_POLICIES
from tests.graph.helpers import REPO, auto_answer, bind_named_people, example, mpm, runner

SHARED = SHARED_POLICIES
PUBLIC = sorted(
    [*SHARED.glob("domino-examples/*.yml"), *SHARED.glob("*.yaml")], key=lambda p: p.name
)
CLI_RUN = ("--toolset", "noop", "--no-tracking")


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
    bind_named_people(folder)  # the people it names directly get keys, as in their org
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


DUAL = """
stages:
  - name: Model Validation
    evidenceSet:
      - id: Local.validation-notes
        name: Validation notes
        definition:
          - artifactType: input
            details: {label: Validation approach, type: textarea}
    approvals:
      - name: Dual sign-off
        approvers: [modeling-review, infosec-review]
        evidence:
          id: Local.dual-evidence
          name: Sign-off checklist
          definition:
            - artifactType: input
              details: {label: Residual risk accepted by, type: textinput}
"""
DUAL_WORKFLOW = """
version: 1
rounds: [business_analysis, data_acquisition, exploratory_analysis, model_development,
         model_validation, mlops]
order:
  - {tier: Reviewers, groups: [modeling-review, infosec-review], parallel: true}
approval_evidence: required
group_rules: {"dual:dual-sign-off": all_of}
"""


def test_all_of_needs_each_group_and_the_approvals_own_evidence(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "dual.yml").write_text(DUAL)
    (folder / "workflow.yaml").write_text(DUAL_WORKFLOW)
    shutil.copy(REPO / "reference" / "governance" / "Approvers.md", folder / "Approvers.md")
    ws = tmp_path / "ws"
    req = tmp_path / "req.yaml"
    req.write_text(yaml.safe_dump(example("credit_risk")))
    kicked = mpm("kickoff", "-r", str(req), "-w", str(ws), "--thread", "d", "--policies",
                 str(folder), *CLI_RUN)  # fmt: skip
    assert kicked.returncode == 0, kicked.stdout + kicked.stderr
    notes = tmp_path / "notes.yaml"
    notes.write_text("Local.validation-notes: holdout evaluation\n")
    assert mpm("answer", "d", "-w", str(ws), "--file", str(notes)).returncode == 0

    listed = mpm("approvals", "-w", str(ws), env={"COLUMNS": "250"})
    assert "all of: still modeling-review, infosec-review" in listed.stdout, listed.stdout
    assert "answer first: Residual risk accepted by" in listed.stdout

    def approve(who: str, *extra: str) -> Any:
        return mpm("approve", "d", "dual:dual-sign-off", "--as", who, "-c", "ok", "-w", str(ws),
                   *extra)  # fmt: skip

    refused = approve("mr-reviewer-1")
    assert refused.returncode == 2 and "own evidence is unanswered" in refused.stderr
    checklist = tmp_path / "checklist.yaml"
    checklist.write_text("Local.dual-evidence: chief risk officer\n")
    answers = ("--answers", str(checklist))
    assert approve("mr-reviewer-1", *answers).returncode == 0
    snap = runner(ws).snapshot("d")
    assert "dual:dual-sign-off" not in (snap.values.get("approvals") or {})  # one group so far
    (pending,) = [i["value"] for i in snap.interrupts]
    assert pending["remaining_groups"] == ["infosec-review"]
    same_group = approve("mr-reviewer-2", *answers)
    assert same_group.returncode == 2 and "still to approve (infosec-review)" in same_group.stderr
    assert approve("infosec-reviewer-1", *answers).returncode in (0, 1)
    record = runner(ws).snapshot("d").values["approvals"]["dual:dual-sign-off"]
    assert record["decision"] == "approve"
    assert record["signed"] == {
        "modeling-review": "mr-reviewer-1",
        "infosec-review": "infosec-reviewer-1",
    }
