"""Model developer: trains candidate model families and picks the best by the target metric."""

from __future__ import annotations

from typing import Any

from agents.base import AgentSpec, Toolkit, tool

PERSONA = """You are the model developer of a governed ML project. You train several candidate
model families suited to the model type, with cross-validation and a small
hyper-parameter search, track every candidate in MLflow, and pick the best by the
project's target metric on the validation set."""


class ModelDeveloperToolkit(Toolkit):
    required_outputs = ("model_path", "best_model_name")

    def _inputs(self) -> dict[str, Any]:
        return {
            "train_path": self.ctx.upstream_output("train_path"),
            "val_path": self.ctx.upstream_output("val_path"),
            "target_column": self.ctx.upstream_output("target_column"),
            "out_dir": str(self.ctx.stage_dir),
        }

    def _common(self) -> dict[str, Any]:
        return {
            "model_type": self.ctx.requirements["model_type"],
            "target_metric": self.ctx.requirements["target_metric"],
            "seed": self.ctx.seed,
            "tracking_uri": self.ctx.tracking_uri,
            "run_id": self.ctx.run_id,
            "experiment_id": self.ctx.experiment_id,
        }

    def _publish_training(self, result: dict[str, Any]) -> dict[str, Any]:
        self.publish(
            outputs={
                "model_path": result["model_path"],
                "best_model_name": result["best_model_name"],
                "best_model_run_id": result["best_model_run_id"],
                "best_model_score": result["best_model_score"],
                "feature_columns": result.get("feature_columns"),
                "candidates": [
                    {k: c.get(k) for k in ("name", "run_id", "cv_score", "val_score")}
                    for c in result["candidates"]
                ],
            },
            metrics={
                "best_model_score": result["best_model_score"],
                "n_candidates": len(result["candidates"]),
            },
            evidence={
                "model_families": ", ".join(c["name"] for c in result["candidates"]),
                "best_model_name": result["best_model_name"],
            },
        )
        return {
            "summary": f"best {result['best_model_name']} "
            f"({self.ctx.requirements['target_metric']}={result['best_model_score']:.4f}) "
            f"of {len(result['candidates'])} candidates",
            "best_model_name": result["best_model_name"],
            "best_model_score": result["best_model_score"],
        }

    @tool
    def train_candidates(self, families: list[str] | None = None) -> dict[str, Any]:
        """Train the candidate families (default: all suited to the model type) and pick the best."""
        from tools.training import train_candidates

        upstream_recs = None
        try:
            upstream_recs = self.ctx.upstream_output("recommendations")
        except Exception:  # noqa: BLE001 - EDA is optional for training
            upstream_recs = None
        result = train_candidates(
            **self._inputs(), recommendations=upstream_recs, families=families, **self._common()
        )
        return self._publish_training(result)

    @tool
    def train_baseline(self) -> dict[str, Any]:
        """Fallback: train one simple, robust baseline model."""
        from tools.training import train_baseline

        return self._publish_training(train_baseline(**self._inputs(), **self._common()))


SPEC = AgentSpec(
    name="model_developer",
    persona=PERSONA,
    toolkit=ModelDeveloperToolkit,
    procedure=(("train_candidates", {}),),
    fallback_procedure=(("train_baseline", {}),),
)
