"""Data scientist: exploratory analysis and feature-engineering recommendations."""

from __future__ import annotations

from typing import Any

from mpm.agents.base import AgentSpec, Toolkit, tool

PERSONA = """You are the data scientist of a governed ML project. You explore the training
data (summary statistics, correlations, relationships with the target), plot what a
reader would rather see than read, and recommend feature engineering for the model
developer."""


class DataScientistToolkit(Toolkit):
    required_outputs = ("recommendations",)

    @tool
    def run_eda(self) -> dict[str, Any]:
        """Run the exploratory analysis on the training split and log report and plots."""
        from mpm.tools.eda import run_eda

        result = run_eda(
            self.ctx.upstream_output("train_path"),
            self.ctx.upstream_output("target_column"),
            str(self.ctx.stage_dir),
            model_type=self.ctx.requirements["model_type"],
            sensitive_attributes=tuple(self.ctx.requirements.get("sensitive_attributes") or ()),
            tracking_uri=self.ctx.tracking_uri,
            run_id=self.ctx.run_id,
        )
        for plot in result.get("plots", []):
            self.outcome.artifacts.append(
                {
                    "name": plot.rsplit("/", 1)[-1],
                    "path": plot,
                    "mlflow_run_id": self.ctx.run_id,
                    "artifact_path": "eda",
                }
            )
        self.publish(
            outputs={
                "recommendations": result["recommendations"],
                "eda_report_path": result["report_path"],
            },
            metrics={
                "n_plots": len(result.get("plots", [])),
                "n_recommendations": len(result["recommendations"]),
            },
            evidence={
                "eda_summary": f"EDA report with {len(result.get('plots', []))} plots and {len(result['recommendations'])} recommendations"
            },
        )
        return {
            "summary": f"{len(result['recommendations'])} feature-engineering recommendations",
            "recommendations": result["recommendations"],
        }


SPEC = AgentSpec(
    name="data_scientist",
    persona=PERSONA,
    toolkit=DataScientistToolkit,
    procedure=(("run_eda", {}),),
)
