"""Model validator: tests the best model on held-out data, for performance, calibration,
robustness and fairness."""

from __future__ import annotations

from typing import Any

from mpm.agents import evidence
from mpm.agents.base import AgentFailure, AgentSpec, Toolkit, tool

PERSONA = """You are the independent model validator of a governed ML project. You test the
chosen model on the held-out test set against the success threshold, and report
calibration, robustness to small input noise and fairness across the sensitive
attributes the requirements name. Your numbers are evidence for the policies' checks."""


class ModelValidatorToolkit(Toolkit):
    required_outputs = ("meets_threshold", "test_score", "validation_passed")

    def _evidence(self, result: dict[str, Any]) -> dict[str, Any]:
        """Evaluation design and outcomes from the validation report; conceptual soundness
        and model-card publication are a reviewer's call and stay open."""
        from mpm.tools.training import CV_FOLDS

        req = self.ctx.requirements
        try:
            split = self.ctx.upstream_output("split_info")
        except AgentFailure:
            split = None
        found = {
            # a score that blocking findings (a leak, a failed data gate) make untrustworthy
            # does not show the criterion holds: fail closed
            "meets_success_threshold": "Yes" if result["validation_passed"] else "No",
            "validation_summary": f"test {req['target_metric']}={result['test_score']:.4f} "
            f"vs threshold {req['success_threshold']}",
            "evaluation_approach": evidence.evaluation_approach(
                result,
                model_type=req["model_type"],
                split=split,
                cv_folds=CV_FOLDS,
                sensitive_attributes=req.get("sensitive_attributes") or [],
            ),
            "outcome_analysis": evidence.outcome_analysis(result),
            "group_error_comparison": evidence.group_error_comparison(
                result.get("fairness") or {}, req["model_type"]
            ),
            "stability_check": evidence.stability_check(
                result.get("robustness") or {}, result["target_metric"]
            ),
        }
        return {k: v for k, v in found.items() if v is not None}

    @tool
    def validate_model(self) -> dict[str, Any]:
        """Validate the best model on the test set: score vs threshold, calibration, robustness, fairness."""
        from mpm.tools.evaluation import validate_model

        req = self.ctx.requirements
        result = validate_model(
            self.ctx.upstream_output("model_path"),
            self.ctx.upstream_output("test_path"),
            self.ctx.upstream_output("target_column"),
            str(self.ctx.stage_dir),
            model_type=req["model_type"],
            target_metric=req["target_metric"],
            success_threshold=req["success_threshold"],
            sensitive_attributes=tuple(req.get("sensitive_attributes") or ()),
            seed=self.ctx.seed,
            tracking_uri=self.ctx.tracking_uri,
            run_id=self.ctx.run_id,
            decision_threshold=self._optional("decision_threshold"),
            train_path=self.ctx.upstream_output("train_path"),
            findings=self._data_findings(),
            positive_class=self._optional("positive_class"),
            positive_class_reason=self._optional("positive_class_reason"),
            fairness_limits=self.ctx.governance.get("metric_limits") or None,
        )
        metrics = result["metrics"]
        meets = bool(result["meets_threshold"])
        blocking = result["blocking_findings"]
        self.publish(
            outputs={
                "meets_threshold": meets,
                "validation_passed": bool(result["validation_passed"]),
                "verdict": result["verdict"],
                "blocking_findings": blocking,
                "findings": result["findings"],
                "test_score": result["test_score"],
                "validation_report_path": result.get("report_path"),
                "fairness": result.get("fairness", {}),
                "per_class": result.get("per_class"),
                "confusion_matrix": result.get("confusion_matrix"),
                "decision_threshold": result.get("decision_threshold"),
                "positive_class": result.get("positive_class"),
                "positive_class_reason": result.get("positive_class_reason"),
                "degeneracy": result.get("degeneracy"),
            },
            metrics=metrics,
            evidence=self._evidence(result),
        )
        if result.get("report_path"):
            # validate_model logged it under validation/ already; governance reads it by name
            self.record_file(
                result["report_path"],
                artifact_path="validation",
                name="validation_report",
                already_logged=True,
            )
        positive = self._positive_display(result.get("positive_class"))
        return {
            "summary": f"test {req['target_metric']}={result['test_score']:.4f}"
            + (
                f" (positive class {positive}: {result['positive_class_reason']})"
                if positive
                else ""
            )
            + "; "
            f"threshold {'met' if meets else 'NOT met'}; validation "
            + (
                "passed"
                if result["validation_passed"]
                else "FAILED"
                + (
                    ": " + "; ".join(f"{f['id']}: {f['reason']}" for f in blocking)
                    if blocking
                    else ""
                )
            ),
            "meets_threshold": meets,
            "validation_passed": bool(result["validation_passed"]),
            "blocking_findings": [f["id"] for f in blocking],
        }

    def _positive_display(self, label: Any) -> str | None:
        """``malignant (label 0)``: the name training gave the positive label, when it has one."""
        if label is None:
            return None
        name = self._optional("positive_class_name")
        return f"{name} (label {label})" if name and str(name) != str(label) else str(label)

    def _data_findings(self) -> list[dict[str, Any]]:
        """What data acquisition found, and a blocking finding for every gate it could not
        show was evaluated (fail closed: an unchecked gate is not a passed one)."""
        from mpm.tools.data_quality import GATES

        findings = list(self._optional("data_findings") or [])
        checks = self._optional("quality_checks") or {}
        profile = self._profile()
        special = dict.fromkeys(
            [*(profile.get("constant_columns") or []), *(profile.get("id_like_columns") or [])]
        )
        for column in special:  # the constant / ID-like gate, on the trained model's inputs
            findings.append(
                {
                    "id": f"data_quality.constant_or_id_columns.{column}",
                    "category": "data_quality",
                    "kind": "constant_or_id_columns",
                    "column": column,
                    "severity": "blocking_if_input",
                    "reason": f"{column!r} is constant or ID-like and is a model input",
                    "evidence": {},
                }
            )
        for gate in GATES:
            if gate not in checks:
                findings.append(
                    {
                        "id": f"data_quality.{gate}",
                        "category": "data_quality",
                        "kind": gate,
                        "column": None,
                        "severity": "blocking",
                        "reason": f"data-quality gate {gate} was not evaluated",
                        "evidence": {},
                    }
                )
        return findings

    def _profile(self) -> dict[str, Any]:
        import json
        from pathlib import Path

        path = self._optional("profile_path")
        return json.loads(Path(path).read_text()) if path and Path(path).is_file() else {}

    def _optional(self, key: str) -> Any:
        try:
            return self.ctx.upstream_output(key)
        except AgentFailure:
            return None


SPEC = AgentSpec(
    name="model_validator",
    persona=PERSONA,
    toolkit=ModelValidatorToolkit,
    procedure=(("validate_model", {}),),
)
