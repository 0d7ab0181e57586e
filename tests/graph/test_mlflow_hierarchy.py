"""The seed's MLflow run hierarchy, read back with MlflowClient."""

from __future__ import annotations

import json
from pathlib import Path

from mpm.tools.naming import experiment_name
from tests.graph.helpers import drive_to_completion, example, runner


def test_parent_and_stage_runs_follow_the_seed(workspace: Path) -> None:
    r = runner(workspace, tracking=True)
    outcome = drive_to_completion(r, r.start("mlf1", {"requirements": example("breast_cancer")}))
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment_name("Tumour Screening Triage"))
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    parents = [x for x in runs if x.info.run_name == "master_pipeline_orchestration"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_id == outcome.values["mlflow"]["parent_run_id"]
    assert parent.data.tags["orchestrator"] == "project_manager"
    assert parent.data.tags["pipeline_type"] == "ml_model"
    assert parent.data.params["project_name"] == "Tumour Screening Triage"
    # the seed's six stages and the deployment stage that serves the registered model
    assert parent.data.params["pipeline_stages"] == "7"
    assert [s["name"] for s in outcome.values["plan"]["stages"]][-2:] == ["mlops", "deployment"]
    assert parent.data.params["target_metric"] == "accuracy"
    plan = json.loads(
        Path(
            client.download_artifacts(parent.info.run_id, "execution_plan.json", str(workspace))
        ).read_text()
    )
    # the logged plan is the plan the run followed, and every stage of it has a result
    assert plan["stages"] == outcome.values["plan"]["stages"]
    assert {s["name"] for s in plan["stages"]} == set(outcome.values["results"])
    children = [x for x in runs if x.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    stages = [x for x in children if x.info.run_name.startswith("stage_")]
    (gov,) = [x for x in children if x.info.run_name == "governance_orchestration"]
    assert gov.data.tags["governance_status"] == outcome.values["governance"]["overall_status"]
    for fw in outcome.values["governance"]["frameworks"]:
        assert f"{fw}_compliance_score" in gov.data.metrics
    artifacts = {a.path for a in client.list_artifacts(gov.info.run_id)}
    assert {
        "governance_orchestration_results.json",
        "governance_dashboard.html",
        "audit_trail.jsonl",
    } <= artifacts
    assert sorted(x.info.run_name for x in stages) == sorted(
        f"stage_{s['name']}" for s in plan["stages"]
    )
    for run in stages:
        name = run.data.tags["stage_name"]
        assert run.info.run_name == f"stage_{name}"
        assert run.data.tags["agent_type"] == outcome.values["results"][name]["agent"]
        assert outcome.values["results"][name]["mlflow_run_id"] == run.info.run_id
        assert f"{name}_duration" in parent.data.metrics
        assert parent.data.tags[f"{name}_status"] == "success"
        assert run.info.status == "FINISHED"
    assert parent.info.status == "FINISHED"
    assert "pipeline_validation_passed" in parent.data.metrics
    assert parent.data.tags["pipeline_status"] in {"success", "partial_success"}
