"""Each public Domino policy, alone in a directory with the organisation's Approvers.md,
governs a kickoff of the credit-risk example with no other file -- across processes.

The kickoff (one ``mpm`` process) must apply the policy with the default reason, hold the
high-risk run step by step, and ask the policy's own questions with its own labels; the
answers (another process) must lead to approvals requested at the plan stage the policy
stage's name matches, from the groups the policy names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mpm.governance import load_policy
from mpm.governance.defaults import DEFAULT_APPLIES_REASON
from mpm.graph import inbox
from mpm.graph.workspace import Workspace
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

    # the gates it names hold the actions they name, and nothing else holds a stage: the
    # public policies name no gate, so registration and serving wait for no policy gate
    named = {g.name for g in load_policy(policy).policy.gates}
    assert {g["name"] for g in snap.values["plan"]["gates"] if g["action"]} == named
    assert {g["name"] for g in gov["gates"].values()} == named

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
        answered = mpm("answer", "t", "--wait", "-w", str(workspace), "--file", str(answers))
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


@pytest.mark.parametrize("mode", ["--wait", "background"])
def test_all_of_needs_each_group_and_the_approvals_own_evidence(tmp_path: Path, mode: str) -> None:
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
    assert mpm("answer", "d", "--wait", "-w", str(ws), "--file", str(notes)).returncode == 0

    listed = mpm("approvals", "-w", str(ws), env={"COLUMNS": "250"})
    assert "all of: still modeling-review, infosec-review" in listed.stdout, listed.stdout
    assert "answer first: Residual risk accepted by" in listed.stdout

    def approve(who: str, *extra: str) -> Any:
        """--wait: the outcome in the foreground. Background: received, then (bounded) until
        its worker applied it -- each group's decision lands in the one pending task."""
        flags = ["--wait"] if mode == "--wait" else ["--json"]
        done = mpm("approve", "d", "dual:dual-sign-off", "--as", who, "-c", "ok", *flags, "-w",
                   str(ws), *extra)  # fmt: skip
        if mode == "background" and done.returncode == 0:
            from tests.reliability.test_background_decisions import wait_for_worker

            wait_for_worker(json.loads(done.stdout.splitlines()[-1])["continuing"]["pid"])
            assert not inbox.pending(Workspace(ws), "d")  # applied, and settled as such:
            assert not inbox.settled(Workspace(ws), "d", inbox.ASIDE)  # never set aside
        return done

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


WITH_APPROVALS = [p for p in PUBLIC if any(True for _ in load_policy(p).policy.approvals())]


def _with_serving_gate(tmp_path: Path, policy: Path, approval: str) -> Path:
    """The public policy as its organisation would gate it: Domino's CreateEndpoint and
    CreateApp held until one of the policy's own approvals."""
    folder = tmp_path / "policies"
    folder.mkdir()
    text = policy.read_text(encoding="utf-8").rstrip("\n")
    gate = (
        "\ngates:\n  - name: Serve when signed off\n    rules:\n"
        "      - action: CreateEndpoint\n        parameters: {hardwareTierId: any}\n"
        "      - action: CreateApp\n        parameters: {hardwareTierId: any}\n"
        f"    approvals: [{json.dumps(approval)}]\n"
    )
    (folder / policy.name).write_text(text + "\n" + gate, encoding="utf-8")
    shutil.copy(REPO / "reference" / "governance" / "Approvers.md", folder / "Approvers.md")
    bind_named_people(folder)
    return folder


@pytest.mark.parametrize("policy", WITH_APPROVALS, ids=lambda p: p.stem)
def test_public_policy_serving_gate_holds_the_deployment_stage(
    tmp_path: Path, policy: Path
) -> None:
    """A gate on the policy's first approval holds serving and the app (the deployment
    stage), across processes: the plan, the governance view and `mpm status` say so."""
    from mpm.graph.nodes.supervisor import blocked_stages
    from mpm.graph.state import ExecutionPlan

    first = next(a for _, a in load_policy(policy).policy.approvals()).name
    folder = _with_serving_gate(tmp_path, policy, first)
    workspace = tmp_path / "ws"
    req = tmp_path / "credit_risk.yaml"
    req.write_text(yaml.safe_dump(example("credit_risk")))
    result = mpm(
        "kickoff", "-r", str(req), "-w", str(workspace), "--thread", "g", "--policies",
        str(folder), *CLI_RUN,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    snap = runner(workspace).snapshot("g")
    (gate,) = [g for g in snap.values["plan"]["gates"] if g["action"]]
    assert gate["name"] == "Serve when signed off" and gate["blocks"] == ["deployment"]
    assert set(gate["action"].split(", ")) == {"deploy_app", "deploy_endpoint"}
    (live,) = snap.values["governance"]["gates"].values()
    assert live["state"] == "blocked" and live["blocked_by"] == gate["approvals"]
    plan = ExecutionPlan.model_validate(snap.values["plan"])
    assert "deployment" in blocked_stages(plan, snap.values["governance"])
    # fail closed aside (no validation has run yet), the gate alone holds deployment and
    # nothing holds registration: the policy names no RegisterModel gate
    cleared = {**snap.values["governance"], "fail_closed": {"blocked": False}}
    assert blocked_stages(plan, cleared) == {
        "deployment": f"gate 'Serve when signed off' waits for {gate['approvals'][0]}"
    }
    assert "deployment" not in (snap.values.get("results") or {})
    status = mpm("status", "g", "-w", str(workspace), env={"COLUMNS": "250"})
    assert "gate Serve when signed off holds deployment" in status.stdout, status.stdout
    assert gate["approvals"][0] in status.stdout


def test_a_serving_gate_on_general_availability_is_refused_at_kickoff(tmp_path: Path) -> None:
    """Generally Available is post-implementation: asked after deployment, so a serving
    gate on it could never open -- one line naming the gate, the approval and the stage."""
    policy = SHARED / "domino-examples" / "Example External LLM Governance Policy.yml"
    folder = _with_serving_gate(tmp_path, policy, "LLM Governance Approval")
    req = tmp_path / "credit_risk.yaml"
    req.write_text(yaml.safe_dump(example("credit_risk")))
    result = mpm(
        "kickoff", "-r", str(req), "-w", str(tmp_path / "ws"), "--thread", "g", "--policies",
        str(folder), *CLI_RUN,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if "Serve when signed off" in ln]
    assert len(lines) == 1, result.stderr
    assert "'LLM Governance Approval' can only be requested after deployment" in lines[0]
    assert "(performed in deployment)" in lines[0]
    validated = mpm("policies", "validate", str(folder))
    assert validated.returncode == 2
    assert "'LLM Governance Approval' can only be requested after deployment" in (
        validated.stdout + validated.stderr
    )
