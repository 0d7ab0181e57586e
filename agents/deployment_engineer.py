"""Deployment engineer: serves the registered model and writes the app over it.

Why a stage of its own: Domino's ``CreateEndpoint`` and ``CreateApp`` gates typically wait
for a deployment-readiness sign-off that policies ask *after* the model is registered.
Run inside the registration stage, those gates could never open; as the ``deployment``
stage after ``mlops`` they open once that sign-off is granted, and the supervisor's guard
starts this stage only then. Each tool checks its gate again right before acting (defence
in depth): a closed gate is recorded as held, nothing is served or written, and the stage
fails with the reason rather than reporting a deployment that did not happen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mpm.agents.base import AgentFailure, AgentOutcome, AgentSpec, GateClosed, Toolkit, tool

PERSONA = """You are the deployment engineer of a governed ML project. Once the approvals the
serving and app gates name are granted, you serve the registered pipeline model on
loopback with MLflow's scoring server, check that it answers a smoke request with
held-out rows, and write a small Streamlit app over the registered model (written, not
served)."""

ENDPOINT_ACTION = "deploy_endpoint"  # Domino's CreateEndpoint
APP_ACTION = "deploy_app"  # Domino's CreateApp
SMOKE_FILE = "endpoint_smoke.json"


class DeploymentToolkit(Toolkit):
    required_outputs = ("endpoint_smoke", "app_path")

    @tool
    def serve_endpoint(self) -> dict[str, Any]:
        """Serve the registered model on loopback (MLflow scoring server) and send a smoke request."""
        from mpm.tools.evaluation import load_model, model_input_columns
        from mpm.tools.serving_smoke import serve_and_smoke

        held = self._held(ENDPOINT_ACTION, "endpoint_served")
        if held is not None:
            return held
        model_uri = self._registered_uri("serve_endpoint")
        columns = model_input_columns(load_model(self.ctx.upstream_output("model_path")))
        smoke = serve_and_smoke(
            model_uri,
            self.ctx.upstream_output("test_path"),
            input_columns=columns,
            tracking_uri=self.ctx.tracking_uri,
        )
        path = self.ctx.stage_dir / SMOKE_FILE
        path.write_text(json.dumps({"model_uri": model_uri, **smoke}, indent=2, default=str))
        self.record_file(path)
        self.publish(
            outputs={"endpoint_smoke": smoke},
            evidence={"endpoint_served": bool(smoke["passed"]), "endpoint_smoke": smoke["detail"]},
        )
        return {"summary": smoke["detail"], "passed": smoke["passed"]}

    @tool
    def write_app(self) -> dict[str, Any]:
        """Write a small Streamlit app over the registered model (written, not served)."""
        from mpm.tools.app_scaffold import write_app_scaffold
        from mpm.tools.datasets import read_table
        from mpm.tools.evaluation import load_model, model_input_columns

        held = self._held(APP_ACTION, "app_written")
        if held is not None:
            return held
        model_uri = self._registered_uri("write_app")
        columns = model_input_columns(load_model(self.ctx.upstream_output("model_path")))
        rows = read_table(Path(self.ctx.upstream_output("test_path")))[columns].head(1)
        app = write_app_scaffold(
            str(self.ctx.stage_dir / "app"),
            model_uri=model_uri,
            title=str(self.ctx.requirements["project_name"]),
            input_columns=columns,
            example=rows.iloc[0].to_dict() if len(rows) else {},
        )
        self.record_file(app["app_path"])
        self.publish(
            outputs={"app_path": app["app_path"]},
            evidence={"app_written": True, "app_sha256": app["sha256"]},
        )
        return {"summary": f"wrote {app['framework']} app {app['app_path']}", **app}

    def finalize(self) -> AgentOutcome:
        held = [v for k, v in self.outcome.evidence.items() if k.endswith("_held")]
        if held:
            raise AgentFailure(f"stage {self.ctx.stage!r} held (fail closed): {'; '.join(held)}")
        return super().finalize()

    def _held(self, action: str, evidence_key: str) -> dict[str, Any] | None:
        """Why ``action`` must not happen now, recorded as held (nothing is performed):
        its gate is closed, or fail-closed governance refuses every guarded action."""
        try:
            self.ctx.ensure_open(action)
            guarded = self.ctx.governance.get("registration")
            if isinstance(guarded, dict) and guarded.get("blocked"):
                reasons = "; ".join(guarded.get("reasons") or []) or "governance blocks it"
                raise GateClosed(action, [f"fail closed: {reasons}"])
        except GateClosed as closed:
            self.publish(evidence={evidence_key: False, f"{action}_held": str(closed)})
            return {"summary": f"{action} held: {closed}", "held": True}
        return None

    def _registered_uri(self, who: str) -> str:
        try:
            return str(self.ctx.upstream_output("model_uri"))
        except AgentFailure:
            raise AgentFailure(
                f"{who} needs the registered model: the mlops stage registered none"
            ) from None


SPEC = AgentSpec(
    name="deployment_engineer",
    persona=PERSONA,
    toolkit=DeploymentToolkit,
    # the smoke result last: it is the line `mpm status` and the demo show for the stage
    procedure=(("write_app", {}), ("serve_endpoint", {})),
)
