"""MLOps engineer: packages the pipeline model, registers it, tests the registered model,
plans serving and monitoring. Runs only behind the governance gate that guards model
registration, and refuses to register on its own while that gate is closed.

Serving and the app scaffold are not done here: they are the ``deployment`` stage
(:mod:`agents.deployment_engineer`), after the sign-offs policies ask once the model is
registered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mpm.agents import evidence
from mpm.agents.base import AgentFailure, AgentSpec, StageContext, Toolkit, tool
from mpm.tools import tracking

PERSONA = """You are the MLOps engineer of a governed ML project. Once the approvals the
registration gate names are granted, you package preprocessing, features, model and
post-processing as one MLflow pyfunc pipeline model with signature and input example,
register it, check that the registered model reproduces the validated model's
predictions, and write the serving and monitoring plan."""

REGISTER_ACTION = "register_model"
AUDIT_HEAD_TAG = "mpm.audit_head"  # graph/audit.py HEAD_TAG (agents may not import graph)
THREAD_TAG = "mpm.thread_id"  # tools/tracking.py THREAD_TAG, set on the parent run
CRITERIA_FINDING = "success_criteria:"


class RegistrationRefused(RuntimeError):
    """The last check before the registry call refused: governance does not clear it."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{REGISTER_ACTION} refused (fail closed): {reason}")


def registration_refusal(
    governance: dict[str, Any], requirements: dict[str, Any], upstream: dict[str, Any]
) -> str | None:
    """Why registration must not happen now, or None; the last check before the registry.

    Defence in depth beside the supervisor's guard: governance in ERROR, or a fail-closed
    verdict in the stage's governance context, refuses; and the success criterion is
    recomputed here from the validator's own measurement (direction-aware), so an unmet
    threshold refuses unless the context lists a granted risk acceptance of it."""
    from mpm.tools.metrics import meets_threshold

    if governance.get("overall_status") == "ERROR":
        return "governance is in ERROR"
    registration = governance.get("registration")
    if isinstance(registration, dict) and registration.get("blocked", True):
        return "; ".join(registration.get("reasons") or []) or "governance blocks registration"
    accepted = (registration or {}).get("accepted") if isinstance(registration, dict) else None
    criteria_accepted = any(
        str(a.get("finding_id", "")).startswith(CRITERIA_FINDING) for a in accepted or []
    )
    validation = upstream.get("model_validation")
    if validation is None or criteria_accepted:
        return None
    score = (validation.get("outputs") or {}).get("test_score")
    metric = str(requirements.get("target_metric") or "")
    threshold = requirements.get("success_threshold")
    if isinstance(score, bool) or not isinstance(score, int | float) or threshold is None:
        return f"the success criterion ({metric}) was not measured by validation"
    if not meets_threshold(float(score), float(threshold), metric):
        return f"test {metric} = {float(score):.4g} does not meet the success threshold {threshold}"
    return None


def _tag_accepted_risks(tracking_uri: str, info: dict[str, Any], accepted: list[Any]) -> None:
    """Say on the registered model version which findings were accepted, and by whom."""
    from mlflow import MlflowClient

    from mpm.tools.inert import tracked_text

    text = "; ".join(
        f"{a.get('finding_id')} (evidence {str(a.get('evidence_hash') or '')[:12]}) "
        f"accepted by {a.get('accepted_by')}"
        for a in accepted
        if isinstance(a, dict)
    )
    MlflowClient(tracking_uri).set_model_version_tag(
        info["registered_model_name"],
        str(info["version"]),
        "mpm.risk_accepted",
        tracked_text(text)[:5000],
    )


class MLOpsToolkit(Toolkit):
    required_outputs = ("model_uri", "registered_model_name")

    @tool
    def register_pipeline_model(self) -> dict[str, Any]:
        """Build the pipeline pyfunc model, log it and register it as the project's pipeline model."""
        from mpm.tools.pipeline_model import build_pipeline_model
        from mpm.tools.registry_entry import write_registry_entry

        self.ctx.ensure_open(REGISTER_ACTION)
        refusal = registration_refusal(
            self.ctx.governance, self.ctx.requirements, self.ctx.upstream
        )
        if refusal is not None:
            raise RegistrationRefused(refusal)
        parent = self._parent_tags()
        info = build_pipeline_model(
            self.ctx.upstream_output("model_path"),
            self.ctx.upstream_output("train_path"),
            self.ctx.upstream_output("test_path"),
            self.ctx.upstream_output("target_column"),
            str(self.ctx.stage_dir),
            model_type=self.ctx.requirements["model_type"],
            registered_model_name=self._registered_name(),
            decision_threshold=_tuned_threshold(self.ctx),
            positive_class=_positive_class(self.ctx),
            tracking_uri=self.ctx.tracking_uri,
            run_id=self.ctx.run_id,
            tags={AUDIT_HEAD_TAG: parent[AUDIT_HEAD_TAG]} if parent.get(AUDIT_HEAD_TAG) else {},
        )
        accepted = ((self.ctx.governance.get("registration") or {}).get("accepted")) or []
        if accepted and self.ctx.tracking_uri:
            _tag_accepted_risks(self.ctx.tracking_uri, info, accepted)
        entry = write_registry_entry(
            tracking.client(self.ctx.tracking_uri),
            info["registered_model_name"],
            info["version"],
            registry_facts(self.ctx, parent, accepted),
            parent_run_id=self.ctx.parent_run_id,
        )
        self.publish(
            outputs={
                "model_uri": info["model_uri"],
                "registered_model_name": info["registered_model_name"],
                "registered_model_version": info["version"],
                "champion": entry["champion"],
                "champion_reason": entry["champion_reason"],
            },
            evidence={
                "model_registered": True,
                "registered_model": f"{info['registered_model_name']} v{info['version']}",
            },
        )
        alias = "alias champion set" if entry["champion"] else "no champion alias"
        return {
            "summary": f"registered {info['registered_model_name']} version {info['version']} "
            f"({alias}: {entry['champion_reason']})",
            **info,
        }

    def _registered_name(self) -> str:
        """The project's registered model: named after the experiment the thread recorded
        when it planned (so a resumed thread keeps its names), else from the project name."""
        from mpm.tools.naming import registered_model_for_experiment, registered_model_name

        if self.ctx.tracking_uri and self.ctx.experiment_id:
            experiment = tracking.client(self.ctx.tracking_uri).get_experiment(
                self.ctx.experiment_id
            )
            derived = registered_model_for_experiment(experiment.name)
            if derived:
                return derived
        return registered_model_name(self.ctx.requirements["project_name"])

    def _parent_tags(self) -> dict[str, str]:
        """The parent run's tags: the thread id, and the signed-approval chain head, copied
        onto the version so the registry entry itself says which audited decisions let it in."""
        if not self.ctx.tracking_uri or not self.ctx.parent_run_id:
            return {}
        return dict(
            tracking.client(self.ctx.tracking_uri).get_run(self.ctx.parent_run_id).data.tags
        )

    @tool
    def test_registered_model(self) -> dict[str, Any]:
        """Load the registered model as a consumer would and check it reproduces the validated predictions."""
        from mpm.tools.serving_check import check_registered_model

        model_uri = self.outcome.outputs.get("model_uri")
        if model_uri is None:
            raise AgentFailure(
                "test_registered_model needs a registered model: run register_pipeline_model first"
            )
        check = check_registered_model(
            model_uri,
            self.ctx.upstream_output("model_path"),
            self.ctx.upstream_output("test_path"),
            model_type=self.ctx.requirements["model_type"],
            tracking_uri=self.ctx.tracking_uri,
        )
        self.publish(
            outputs={"implementation_check": check},
            evidence={"implementation_tested": bool(check["passed"])},
        )
        return {"summary": check["detail"], "passed": check["passed"]}

    @tool
    def write_serving_plan(self) -> dict[str, Any]:
        """Write the serving and monitoring plan (drift thresholds, alerts, rollback)."""
        from mpm.tools.pipeline_model import write_serving_plan

        plan = write_serving_plan(
            str(self.ctx.stage_dir),
            model_info=dict(self.outcome.outputs),
            profile=self._upstream_json("profile_path"),
            validation=self._upstream_json("validation_report_path"),
            requirements=self.ctx.requirements,
        )
        for key in ("serving_plan_path", "monitoring_config_path"):
            if plan.get(key):
                self.record_file(plan[key])
        config = plan["monitoring_config"]
        found = {
            "monitoring_plan": evidence.monitoring_plan(config),
            "rollback_plan": evidence.has_rollback_plan(config),
            "monitoring_configured": evidence.monitoring_configured(
                config, plan.get("monitoring_config_path")
            ),
        }
        self.publish(
            outputs={k: v for k, v in plan.items() if k.endswith("_path")},
            evidence={k: v for k, v in found.items() if v is not None},
        )
        return {"summary": "serving and monitoring plan written"}

    def _upstream_json(self, key: str) -> dict[str, Any]:
        path = self.ctx.upstream_output(key)
        return json.loads(Path(path).read_text()) if path and Path(path).exists() else {}


SPEC = AgentSpec(
    name="mlops_engineer",
    persona=PERSONA,
    toolkit=MLOpsToolkit,
    procedure=(
        ("register_pipeline_model", {}),
        ("test_registered_model", {}),
        ("write_serving_plan", {}),
    ),
)


def registry_facts(ctx: StageContext, parent_tags: dict[str, str], accepted: list[Any]) -> Any:
    """What the registry entry states, each from where mpm established it: governance from
    the stage's governance context (status, frameworks, approvals granted on verified
    signed decisions), the chain head from the parent run, the success criterion
    recomputed from the validator's own measurement, the positive class model development
    chose (the one the served probability is for; else validation's, the requirements', or
    the packaged model's)."""
    from mpm.tools.registry_entry import GrantedApproval, RegistryFacts, measured_criterion

    req, gov = ctx.requirements, ctx.governance
    validation = (ctx.upstream.get("model_validation") or {}).get("outputs") or {}
    score, met = measured_criterion(req, validation)
    threshold = req.get("success_threshold")
    positive = next(
        (
            v
            for v in (
                _positive_class(ctx),
                validation.get("positive_class"),
                req.get("positive_class"),
            )
            if v is not None
        ),
        None,
    )
    if positive is None and req.get("model_type") == "classification":
        config = Path(ctx.stage_dir) / "pipeline_config.json"
        if config.is_file():
            positive = json.loads(config.read_text(encoding="utf-8")).get("positive_label")
    return RegistryFacts(
        thread_id=parent_tags.get(THREAD_TAG) or Path(ctx.stage_dir).parent.name,
        project_name=str(req["project_name"]),
        governance_status=str(gov.get("overall_status") or "unknown"),
        frameworks=[str(f) for f in gov.get("frameworks") or []],
        audit_head=parent_tags.get(AUDIT_HEAD_TAG),
        approvals=[GrantedApproval.model_validate(a) for a in gov.get("granted_approvals") or []],
        positive_class=None if positive is None else str(positive),
        target_metric=str(req.get("target_metric") or ""),
        success_threshold=None if threshold is None else float(threshold),
        test_score=score,
        criteria_met=met,
        accepted_risks=[
            f"{a.get('finding_id')} accepted by {a.get('accepted_by')}"
            for a in accepted
            if isinstance(a, dict)
        ],
        model_type=str(req.get("model_type") or ""),
    )


def _positive_class(ctx: Any) -> Any:
    """The positive label model development chose (stated or inferred, with its reason in
    its outputs): the served probability is for it. None (the larger label) without one."""
    try:
        return ctx.upstream_output("positive_class")
    except AgentFailure:
        return None


def _tuned_threshold(ctx: Any) -> float:
    """The decision threshold model development tuned on its validation folds (0.5, the
    conventional cut-off, when none was tuned), so serving predicts what was validated."""
    try:
        value = ctx.upstream_output("decision_threshold")
    except AgentFailure:
        return 0.5
    return 0.5 if value is None else float(value)
