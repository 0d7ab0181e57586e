"""MLOps engineer: packages the pipeline model, registers it, plans serving and monitoring.
Runs only behind the governance gate that guards model registration."""

from __future__ import annotations

from typing import Any

from agents.base import AgentSpec, Toolkit, tool

PERSONA = """You are the MLOps engineer of a governed ML project. Once the approvals the
registration gate names are granted, you package preprocessing, features, model and
post-processing as one MLflow pyfunc pipeline model with signature and input example,
register it, and write the serving and monitoring plan."""


class MLOpsToolkit(Toolkit):
    required_outputs = ("model_uri", "registered_model_name")

    @tool
    def register_pipeline_model(self) -> dict[str, Any]:
        """Build the pipeline pyfunc model, log it and register it as pipeline_<project>."""
        from tools.naming import project_slug
        from tools.pipeline_model import build_pipeline_model

        name = f"pipeline_{project_slug(self.ctx.requirements['project_name'])}"
        info = build_pipeline_model(
            self.ctx.upstream_output("model_path"),
            self.ctx.upstream_output("train_path"),
            self.ctx.upstream_output("test_path"),
            self.ctx.upstream_output("target_column"),
            str(self.ctx.stage_dir),
            model_type=self.ctx.requirements["model_type"],
            registered_model_name=name,
            tracking_uri=self.ctx.tracking_uri,
            run_id=self.ctx.run_id,
        )
        self.publish(
            outputs={
                "model_uri": info["model_uri"],
                "registered_model_name": info["registered_model_name"],
                "registered_model_version": info["version"],
            },
            evidence={
                "model_registered": "Yes",
                "registered_model": f"{info['registered_model_name']} v{info['version']}",
            },
        )
        return {
            "summary": f"registered {info['registered_model_name']} version {info['version']}",
            **info,
        }

    @tool
    def write_serving_plan(self) -> dict[str, Any]:
        """Write the serving and monitoring plan (drift thresholds, alerts, rollback)."""
        import json
        from pathlib import Path

        from tools.pipeline_model import write_serving_plan

        profile_path = self.ctx.upstream_output("profile_path")
        profile = (
            json.loads(Path(profile_path).read_text())
            if profile_path and Path(profile_path).exists()
            else {}
        )
        validation_path = self.ctx.upstream_output("validation_report_path")
        validation = (
            json.loads(Path(validation_path).read_text())
            if validation_path and Path(validation_path).exists()
            else {}
        )
        plan = write_serving_plan(
            str(self.ctx.stage_dir),
            model_info=dict(self.outcome.outputs),
            profile=profile,
            validation=validation,
            requirements=self.ctx.requirements,
        )
        for key in ("serving_plan_path", "monitoring_config_path"):
            if plan.get(key):
                self.record_file(plan[key])
        self.publish(
            outputs={k: v for k, v in plan.items() if k.endswith("_path")},
            evidence={"monitoring_plan": "Yes"},
        )
        return {"summary": "serving and monitoring plan written"}


SPEC = AgentSpec(
    name="mlops_engineer",
    persona=PERSONA,
    toolkit=MLOpsToolkit,
    procedure=(("register_pipeline_model", {}), ("write_serving_plan", {})),
)
