"""The seed's MLflow run hierarchy for one project thread.

Experiment ``ml_pipeline_{project key}`` (slug + digest of the exact name, unique per
project: ``tools/naming.py``); parent run ``master_pipeline_orchestration``
(tags ``orchestrator=project_manager``, ``pipeline_type``; params ``project_name``,
``pipeline_stages``, ``target_metric``; artifact ``execution_plan.json``); one nested run
``stage_{name}`` per stage (tags ``stage_name``, ``agent_type``), and on the parent a
``{stage}_duration`` metric and ``{stage}_status`` tag. Runs are found by key tags, so a
node re-run after a crash reuses its run instead of creating a second one.
"""

from __future__ import annotations

from typing import Any

from mpm.tools import naming, tracking

PARENT_RUN_NAME = "master_pipeline_orchestration"


def experiment_name(key: str) -> str:
    """The experiment for a project key (``ProjectRequirements.slug``)."""
    return f"{naming.EXPERIMENT_PREFIX}{key}"


def open_parent_run(
    tracking_uri: str,
    artifact_root: Any,
    thread_id: str,
    slug: str,
    plan: dict[str, Any],
    requirements: dict[str, Any],
) -> dict[str, str]:
    c = tracking.client(tracking_uri)
    experiment_id = tracking.ensure_experiment(c, experiment_name(slug), artifact_root)
    run_id = tracking.find_or_create_run(
        c,
        experiment_id,
        f"{thread_id}:parent",
        PARENT_RUN_NAME,
        tags={tracking.THREAD_TAG: thread_id},
    )
    tracking.set_tags(
        c,
        run_id,
        {
            "orchestrator": "project_manager",
            "pipeline_type": requirements.get("project_type", "end_to_end"),
            "mpm.project_key": slug,
        },
    )
    tracking.log_params(
        c,
        run_id,
        {
            "project_name": requirements["project_name"],
            "pipeline_stages": len(plan["stages"]),
            "target_metric": requirements["target_metric"],
            "model_type": requirements["model_type"],
        },
    )
    tracking.log_dict(c, run_id, plan, "execution_plan.json")
    return {
        "tracking_uri": tracking_uri,
        "experiment_id": experiment_id,
        "parent_run_id": run_id,
        "experiment": experiment_name(slug),
    }


def open_stage_run(
    ids: dict[str, str], thread_id: str, stage: str, agent: str, revision: int
) -> str:
    c = tracking.client(ids["tracking_uri"])
    key = f"{thread_id}:stage:{stage}:{revision}"
    run_id = tracking.find_or_create_run(
        c,
        ids["experiment_id"],
        key,
        f"stage_{stage}" if revision == 0 else f"stage_{stage}_rev{revision}",
        parent_run_id=ids["parent_run_id"],
        tags={tracking.THREAD_TAG: thread_id, "stage_name": stage, "agent_type": agent},
    )
    return run_id


def close_stage_run(ids: dict[str, str], stage: str, run_id: str, result: dict[str, Any]) -> None:
    c = tracking.client(ids["tracking_uri"])
    status = result["status"]
    tracking.log_metrics(
        c,
        run_id,
        {k: v for k, v in result.get("metrics", {}).items() if isinstance(v, int | float)},
    )
    tracking.set_tags(c, run_id, {"stage_status": status})
    if result.get("error"):
        tracking.set_tags(c, run_id, {"error": result["error"]})
    tracking.log_dict(
        c,
        run_id,
        {k: result.get(k) for k in ("summary", "outputs", "evidence", "tool_calls", "error")},
        "stage_result.json",
    )
    tracking.finish_run(c, run_id, "FAILED" if status == "failed" else "FINISHED")
    parent = ids["parent_run_id"]
    outputs = result.get("outputs") or {}
    if stage == "model_development" and outputs.get("best_model_run_id"):
        # the seed records the winning candidate on the parent run
        tracking.set_tags(c, parent, {"best_model_run_id": outputs["best_model_run_id"]})
        tracking.log_params(
            c, parent, {"best_model_name": outputs.get("best_model_name", "unknown")}
        )
        tracking.log_metrics(
            c, parent, {"best_model_score": float(outputs.get("best_model_score") or 0.0)}
        )
    tracking.log_metrics(c, parent, {f"{stage}_duration": result.get("duration_s", 0.0)})
    tracking.set_tags(c, parent, {f"{stage}_status": status})
    if result.get("error"):
        tracking.set_tags(c, parent, {f"{stage}_error": result["error"][:500]})
        tracking.log_params(c, parent, {f"{stage}_error": result["error"][:500]})
