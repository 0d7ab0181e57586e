"""The governance evaluation cache never lets a stale evaluation grant anything.

An evaluation is reused only for exactly the inputs it was made from (the policy and
identity files, and the state keys it reads); a change to any of them between super-steps
gives a new evaluation, and that is the one the guard and the fail-closed check see."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path
from typing import Any

from mpm.graph.context import RunContext
from mpm.graph.nodes import governance as node
from tests.graph.helpers import REPO, approver_for, auto_answer, decision, example, runner


def _state_after_validation(workspace: Path) -> dict[str, Any]:
    """A real thread's state, stopped at its first interrupt (after model validation)."""
    r = runner(workspace)
    outcome = r.start("cache", {"requirements": example("breast_cancer")})
    assert outcome.interrupts, "expected the run to wait for its owner"
    assert "model_validation" in outcome.values["results"]
    return copy.deepcopy(outcome.values)


def _with_score(state: dict[str, Any], score: float) -> dict[str, Any]:
    changed = copy.deepcopy(state)
    validation = changed["results"]["model_validation"]
    validation["status"] = "success"
    validation["outputs"] = {**(validation.get("outputs") or {}), "test_score": score}
    return changed


def test_same_inputs_reuse_the_evaluation_and_a_changed_result_gets_a_new_one(
    workspace: Path,
) -> None:
    state = _state_after_validation(workspace)
    ctx = RunContext(workspace=str(workspace))
    node.EVALUATIONS.clear()

    passing = _with_score(state, 0.97)  # breast_cancer: accuracy >= 0.9
    view, report, _, digest = node.evaluate_with_digest(passing, ctx)
    assert report is not None and node.EVALUATIONS.misses == 1
    assert not any("accuracy" in r for r in view["fail_closed"]["reasons"]), view["fail_closed"]

    again, report_again, _, digest_again = node.evaluate_with_digest(copy.deepcopy(passing), ctx)
    assert digest_again == digest and report_again is report, "equal inputs: reused"
    assert node.EVALUATIONS.hits == 1
    again["fail_closed"]["blocked"] = "edited"  # a caller editing its copy...
    third, *_ = node.evaluate_with_digest(passing, ctx)
    assert third["fail_closed"]["blocked"] == view["fail_closed"]["blocked"]  # ...changes nothing

    # a finding appears between two super-steps: the test score now misses the threshold
    failing = _with_score(state, 0.5)
    fresh, fresh_report, _, fresh_digest = node.evaluate_with_digest(failing, ctx)
    assert fresh_digest != digest and fresh_report is not report
    assert fresh["fail_closed"]["blocked"] is True
    assert fresh["fail_closed"]["status"] == "failed_criteria"
    assert any("accuracy" in r for r in fresh["fail_closed"]["reasons"])
    assert "register_model" not in fresh["context"]["open_actions"]

    # a signed decision landing (audit) and an answer are inputs too
    for key, value in (("audit", [*state.get("audit", []), {"x": 1}]), ("human_answers", {"a": 1})):
        other = {**passing, key: value}
        assert node.evaluate_with_digest(other, ctx)[3] != digest, key


def test_a_changed_policy_file_is_a_new_evaluation(workspace: Path, tmp_path: Path) -> None:
    state = _with_score(_state_after_validation(workspace), 0.97)
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "reference" / "governance", policies)
    ctx = RunContext(workspace=str(workspace), policies=str(policies))
    node.EVALUATIONS.clear()
    _, report, _, digest = node.evaluate_with_digest(state, ctx)
    assert report is not None

    # tighten the workflow file: a newer mtime is a new context, so a new evaluation
    workflow = policies / "workflow.yaml"
    workflow.write_text(workflow.read_text() + "\n# tightened\n")
    stat = workflow.stat()
    os.utime(workflow, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10_000_000))
    _, report2, _, digest2 = node.evaluate_with_digest(state, ctx)
    assert digest2 != digest and report2 is not report

    # a policy library that cannot be loaded is ERROR, blocked, and never cached
    shutil.rmtree(policies)
    view, report3, _, digest3 = node.evaluate_with_digest(state, ctx)
    assert view["overall_status"] == "ERROR" and report3 is None and digest3 is None
    assert view["fail_closed"]["blocked"] is True


def test_a_score_below_the_threshold_is_refused_registration_in_a_warm_process(
    tmp_path: Path,
) -> None:
    """The same project twice in one process, real interrupts and signed decisions: the
    first run's evaluations are cached; the second measures a score that misses its
    stricter threshold after validation, and its next evaluation (not a cached one)
    blocks registration; its risk acceptance is rejected, so the run ends refused."""
    warm = runner(tmp_path / "warm", toolset="minimal")
    strict = runner(tmp_path / "strict", toolset="minimal")

    def drive(r: Any, thread: str, requirements: dict[str, Any]) -> Any:
        outcome = r.start(thread, {"requirements": requirements})
        for _ in range(60):
            if not outcome.interrupts:
                return outcome
            value = outcome.interrupts[0]["value"]
            if value["type"] == "open_questions":
                answers = {q["key"]: auto_answer(q) for q in value["questions"]}
                outcome = r.answer(thread, "open_questions", answers)
                continue
            verdict = "reject" if value.get("kind") == "risk_acceptance" else "approve"
            signed = decision(value, approver_for(value, requirements["requested_by"]), verdict)
            outcome = r.answer(thread, "approval", signed, key=value["approval_id"])
        raise AssertionError("the run did not finish")

    node.EVALUATIONS.clear()
    # warm the cache with a run that stops at its first interrupt (no registry needed)
    first = warm.start("warm", {"requirements": example("breast_cancer")})
    assert first.interrupts and node.EVALUATIONS.misses > 0

    outcome = drive(strict, "strict", example("breast_cancer", success_threshold=0.999))
    score = outcome.values["results"]["model_validation"]["outputs"]["test_score"]
    assert score < 0.999
    assert outcome.status == "failed_criteria", outcome.status
    assert "mlops" not in outcome.values["results"] or (
        outcome.values["results"]["mlops"]["status"] != "success"
    )
    refused = [e for e in outcome.values["events"] if e["event"] == "registration_refused"]
    assert refused and "accuracy" in refused[0]["detail"]
    assert outcome.values["governance"]["fail_closed"]["status"] == "failed_criteria"


def test_the_mlflow_ids_the_report_names_are_an_input(workspace: Path) -> None:
    """The report lists the run's MLflow ids (``runs``, from the state's ``mlflow``): ids
    that change between two evaluations with otherwise equal inputs give a new report
    naming the new ids, not the cached one naming the old."""
    state = _with_score(_state_after_validation(workspace), 0.97)
    ctx = RunContext(workspace=str(workspace))
    node.EVALUATIONS.clear()
    first = {**state, "mlflow": {"experiment_id": "1", "parent_run_id": "old-parent"}}
    _, report, _, digest = node.evaluate_with_digest(first, ctx)
    assert report is not None and report.runs["parent_run_id"] == "old-parent"

    moved = {**state, "mlflow": {"experiment_id": "1", "parent_run_id": "new-parent"}}
    _, report2, payload2, digest2 = node.evaluate_with_digest(moved, ctx)
    assert digest2 != digest and node.EVALUATIONS.hits == 0
    assert report2 is not None and report2.runs["parent_run_id"] == "new-parent"
    assert payload2 is not None and payload2["runs"]["parent_run_id"] == "new-parent"


def test_the_report_file_is_the_report_as_json(workspace: Path, tmp_path: Path) -> None:
    """The results file (written with orjson) parses back to exactly the report's JSON
    data, text outside ASCII included; a value orjson cannot encode (an integer beyond
    64 bits) is written by the standard library instead of failing the evaluation."""
    import json

    state = _with_score(_state_after_validation(workspace), 0.97)
    state["requirements"] = {**state["requirements"], "project_name": "Détection précoce ✓"}
    ctx = RunContext(workspace=str(workspace))
    node.EVALUATIONS.clear()
    view, report, payload, digest = node.evaluate_with_digest(state, ctx)
    assert report is not None and payload is not None
    files, _, written = node._write_outputs(
        ctx, "cache", view, report, state.get("audit") or [], None, payload=payload, digest=digest
    )
    assert written
    text = files["results"].read_text(encoding="utf-8")
    assert json.loads(text) == payload
    assert "Détection précoce ✓" in text and text.startswith("{\n  ")  # indented, UTF-8
    assert files["dashboard"].read_text(encoding="utf-8").count("Détection précoce") >= 1

    huge = {"n": 2**80, "ok": "é"}
    assert json.loads(node._json_bytes(huge, indent=True)) == huge
    assert node._json_bytes({"b": 1, "a": 2}, sort_keys=True) == b'{"a":2,"b":1}'
