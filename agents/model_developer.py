"""Model developer: trains candidate model families and picks the best by the target metric."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mpm.agents import evidence
from mpm.agents.base import AgentFailure, AgentSpec, Toolkit, tool
from mpm.tools.positive_class import training_requirements

PERSONA = """You are the model developer of a governed ML project. You train several candidate
model families suited to the model type, with cross-validation over train+validation and a
small hyper-parameter search (class-weighted candidates and a tuned decision threshold for
imbalanced targets), track every candidate in MLflow, pick the best by the cross-validation
mean of the project's target metric and refit it on train+validation. You then explain the champion (permutation
importance of each input) so reviewers can see what drives its predictions. When the brief
names a remediation attempt (validation missed the success criterion), `train_candidates`
applies that attempt's strategies itself; call it as usual."""


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
            "group_column": self.ctx.requirements.get("group_column"),
            "time_column": self.ctx.requirements.get("time_column"),
            # positive class and sensitive attributes (mlcorrect: tools/positive_class.py)
            **training_requirements(self.ctx.requirements),
        }

    def _publish_training(self, result: dict[str, Any]) -> dict[str, Any]:
        if result.get("protocol_path"):
            self.record_file(result["protocol_path"], name="selection_protocol")
        self.publish(
            outputs={
                "model_path": result["model_path"],
                "best_model_name": result["best_model_name"],
                "best_model_run_id": result["best_model_run_id"],
                "best_model_score": result["best_model_score"],
                "feature_columns": result.get("feature_columns"),
                "decision_threshold": result.get("decision_threshold"),
                "threshold_tuning": result.get("threshold_tuning"),
                "selection_protocol_path": result.get("protocol_path"),
                **{
                    k: result.get(k)
                    for k in (
                        "positive_class",
                        "positive_class_name",
                        "positive_class_reason",
                        "positive_class_source",
                        "sensitive_features",
                    )
                },
                "candidates": [
                    {k: c.get(k) for k in ("name", "run_id", "cv_score", "val_score")}
                    for c in result["candidates"]
                ],
            },
            metrics={
                "best_model_score": result["best_model_score"],
                "n_candidates": len(result["candidates"]),
                **(
                    {"decision_threshold": result["decision_threshold"]}
                    if result.get("decision_threshold") is not None
                    else {}
                ),
            },
            evidence=self._evidence(result),
        )
        tuned = result.get("threshold_tuning")
        return {
            "summary": f"best {result['best_model_name']} "
            f"(cross-validated {self.ctx.requirements['target_metric']}={result['best_model_score']:.4f}) "
            f"of {len(result['candidates'])} candidates, refitted on train+validation"
            + (
                f"; decision threshold {tuned['threshold']:.2f} ({tuned['metric']} "
                f"{tuned['default_score']:.4f} -> {tuned['tuned_score']:.4f} on the validation folds)"
                if tuned and tuned["threshold"] != 0.5
                else ""
            ),
            "best_model_name": result["best_model_name"],
            "best_model_score": result["best_model_score"],
        }

    def _evidence(self, result: dict[str, Any]) -> dict[str, Any]:
        """Methodology, limitations and the challenger comparison, from what training
        returned and the data profile; mitigation choices stay with a person."""
        from mpm.tools.training import CV_FOLDS

        found = {
            "model_families": ", ".join(c["name"] for c in result["candidates"]),
            "best_model_name": result["best_model_name"],
            "methodology": evidence.methodology(result, cv_folds=CV_FOLDS),
            "limitations": evidence.limitations(result, self._profile(), self.ctx.requirements),
            "challenger_comparison": evidence.challenger_comparison(result),
        }
        return {k: v for k, v in found.items() if v is not None}

    def _profile(self) -> dict[str, Any]:
        try:
            path = self.ctx.upstream_output("profile_path")
        except AgentFailure:
            return {}
        return json.loads(Path(path).read_text()) if path and Path(path).is_file() else {}

    @tool
    def explain_model(self) -> dict[str, Any]:
        """Explain the trained model: permutation importance of each input on the validation split."""
        from mpm.tools.explain import permutation_importances

        model_path = self.outcome.outputs.get("model_path")
        if model_path is None:
            raise AgentFailure("explain_model needs a trained model: run train_candidates first")
        result = permutation_importances(
            model_path,
            self.ctx.upstream_output("val_path"),
            self.ctx.upstream_output("target_column"),
            str(self.ctx.stage_dir),
            model_type=self.ctx.requirements["model_type"],
            target_metric=self.ctx.requirements["target_metric"],
            seed=self.ctx.seed,
            pos_label=self.outcome.outputs.get("positive_class"),
        )
        self.record_file(result["path"], name="feature_importance")
        top = result["importances"][:5]
        self.publish(
            outputs={"feature_importance_path": result["path"]},
            evidence={"explanation_method": result["method"]},
        )
        return {
            "summary": "most important inputs: "
            + ", ".join(f"{i['feature']} ({i['mean']:.4f})" for i in top),
            "method": result["method"],
        }

    @tool
    def train_candidates(self, families: list[str] | None = None) -> dict[str, Any]:
        """Train the candidate families (default: all suited to the model type) and pick the best."""
        from mpm.tools.training import train_candidates

        upstream_recs = None
        try:
            upstream_recs = self.ctx.upstream_output("recommendations")
        except Exception:  # noqa: BLE001 - EDA is optional for training
            upstream_recs = None
        if self.ctx.remediation:
            # the supervisor chose the strategies from the diagnosis; the model does not
            # get to pick a narrower search for a remediation attempt
            return self._remediate(upstream_recs)
        result = train_candidates(
            **self._inputs(), recommendations=upstream_recs, families=families, **self._common()
        )
        return self._publish_training(result)

    def _remediate(self, recommendations: list[dict[str, Any]] | None) -> dict[str, Any]:
        """One remediation attempt: train with its strategies, tag the stage's MLflow run
        (nested under the pipeline run) with the attempt number and strategy."""
        from mpm.tools.remediation import train_remediated

        attempt = dict(self.ctx.remediation or {})
        if self.ctx.tracking_uri and self.ctx.run_id:
            from mpm.tools import tracking

            tracking.set_tags(
                tracking.client(self.ctx.tracking_uri),
                self.ctx.run_id,
                {
                    "mpm.remediation_attempt": attempt.get("attempt"),
                    "mpm.remediation_strategy": attempt.get("strategy"),
                    "mpm.remediation_strategies": ",".join(attempt.get("strategies") or []),
                },
            )
        result = train_remediated(
            **self._inputs(),
            recommendations=recommendations,
            remediation=attempt,
            success_threshold=float(self.ctx.requirements["success_threshold"]),
            **self._common(),
        )
        reply = self._publish_training(result)
        applied = result["remediation"]
        methodology = self.outcome.evidence.get("methodology")
        note = (
            f" Remediation attempt {attempt.get('attempt')} (validation missed the success "
            f"criterion): {', '.join(applied['strategies'])}"
            + (f", without {', '.join(applied['drop_columns'])}" if applied["drop_columns"] else "")
            + f"; chosen because {attempt.get('why')}. Every choice of the attempt was made on "
            "cross-validation over train+validation; the test split is scored once, by the "
            "validator."
        )
        self.publish(
            outputs={"remediation": applied},
            evidence={"methodology": (methodology or "") + note} if methodology else None,
        )
        reply["summary"] = (
            f"remediation attempt {attempt.get('attempt')} "
            f"({', '.join(result['remediation']['strategies'])}): {reply['summary']}"
        )
        return reply

    @tool
    def train_baseline(self) -> dict[str, Any]:
        """Fallback: train one simple, robust baseline model."""
        from mpm.tools.training import train_baseline

        return self._publish_training(train_baseline(**self._inputs(), **self._common()))


SPEC = AgentSpec(
    name="model_developer",
    persona=PERSONA,
    toolkit=ModelDeveloperToolkit,
    procedure=(("train_candidates", {}), ("explain_model", {})),
    # the fallback stays minimal: without an explanation the question goes to a person
    fallback_procedure=(("train_baseline", {}),),
)
