"""Business analyst: turns the requirements into success criteria, a risk register and evidence."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from mpm.agents import evidence
from mpm.agents.base import AgentSpec, Toolkit, tool
from mpm.tools.inert import code, md

PERSONA = """You are the business analyst of a governed ML project. You restate the business
objective as measurable success criteria, record constraints, stakeholders and data
sensitivity, and build the risk register the governance reviewers will read."""

LOWER_IS_BETTER = {"rmse", "mae", "mape"}


class BusinessAnalystToolkit(Toolkit):
    required_outputs = ("success_criteria", "risk_register_path")

    @tool
    def analyse_requirements(self) -> dict[str, Any]:
        """Write the business analysis (objective, success criteria, constraints, stakeholders, data)."""
        req = self.ctx.requirements
        metric, threshold = req["target_metric"], req["success_threshold"]
        op = "<=" if metric in LOWER_IS_BETTER else ">="
        criteria = f"{metric} {op} {threshold} on the held-out test set"
        sources = req.get("data_sources") or []
        # everything from the requirements is inert Markdown (no HTML, links, controls)
        lines = [
            f"# Business analysis: {md(req['project_name'])}",
            "",
            "## Objective",
            md(req["business_objective"]),
            "",
            "## Success criteria",
            f"- {md(criteria)}",
            "",
            *_positive_class_lines(req),
            "## Constraints",
            *[f"- {md(c)}" for c in req.get("constraints") or ["none stated"]],
            "",
            "## Stakeholders",
            *[f"- {md(s)}" for s in req.get("stakeholders") or ["none stated"]],
            "",
            "## Data sources",
            *[
                f"- {md(s['name'])} (`{code(s['uri'])}`), sensitivity: "
                f"{md(s.get('sensitivity', 'internal'))}"
                for s in sources
            ],
        ]
        path = self.ctx.stage_dir / "business_analysis.md"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.record_file(path)
        sensitivities = sorted({s.get("sensitivity", "internal") for s in sources})
        # Only what the requirements establish; judgement calls (lawful basis, risk
        # tolerance, decision autonomy, ...) stay open for the project owner.
        derived = {
            "business_owner": evidence.business_owner(req),
            "success_criterion": evidence.success_criterion(req),
            "data_categories": evidence.data_categories(sources),
        }
        self.publish(
            outputs={"success_criteria": criteria, "success_operator": op},
            evidence={
                **{k: v for k, v in derived.items() if v is not None},
                "business_objective": req["business_objective"],
                "success_criteria": criteria,
                "stakeholders": ", ".join(req.get("stakeholders") or []) or "not stated",
                "constraints": "; ".join(req.get("constraints") or []) or "none stated",
                "data_sensitivity": ", ".join(sensitivities),
                "data_sources": ", ".join(s["name"] for s in sources),
                "intended_use": req["business_objective"],
            },
        )
        return {"summary": f"success criteria: {criteria}", "path": str(path)}

    @tool
    def assess_risks(self) -> dict[str, Any]:
        """Build the project's risk register with a mitigation for each risk."""
        req = self.ctx.requirements
        risks: list[dict[str, str]] = []
        sensitive = [
            s["name"]
            for s in req.get("data_sources") or []
            if s.get("sensitivity") in {"personal", "pii", "protected", "sensitive"}
        ]
        if sensitive:
            risks.append(
                {
                    "risk": f"privacy: sensitive data in {', '.join(sensitive)}",
                    "severity": "high",
                    "mitigation": "minimise features, restrict access, fairness review across sensitive attributes",
                }
            )
        if req.get("risk_level") == "high":
            risks.append(
                {
                    "risk": "model risk: decisions with material impact",
                    "severity": "high",
                    "mitigation": "independent validation, model risk management sign-off before deployment",
                }
            )
        if req.get("regulatory_impact"):
            risks.append(
                {
                    "risk": "regulatory: outcomes subject to regulation",
                    "severity": "high",
                    "mitigation": "documented validation evidence, legal review, audit trail of approvals",
                }
            )
        if req.get("sensitive_attributes"):
            risks.append(
                {
                    "risk": f"fairness across {', '.join(req['sensitive_attributes'])}",
                    "severity": "medium",
                    "mitigation": "demographic parity and equalised odds measured at validation",
                }
            )
        deadline = req.get("deadline")
        if deadline and dt.date.fromisoformat(str(deadline)) - dt.date.today() < dt.timedelta(
            days=30
        ):
            risks.append(
                {
                    "risk": f"schedule: deadline {deadline} within 30 days",
                    "severity": "medium",
                    "mitigation": "fall back to the baseline model if tuning does not converge",
                }
            )
        risks.append(
            {
                "risk": "performance: the model may miss the success threshold",
                "severity": "medium",
                "mitigation": "several model families compared; threshold checked on a held-out test set",
            }
        )
        risks.append(
            {
                "risk": "drift: data may change after deployment",
                "severity": "low",
                "mitigation": "monitoring plan with drift thresholds per feature",
            }
        )
        path = self.ctx.stage_dir / "risk_register.json"
        path.write_text(json.dumps(risks, indent=2), encoding="utf-8")
        self.record_file(path)
        high = sum(1 for r in risks if r["severity"] == "high")
        self.publish(
            outputs={"risk_register_path": str(path), "risks": risks},
            metrics={"risks_identified": len(risks), "high_risks": high},
            evidence={
                "risk_assessment": "; ".join(f"{r['risk']} -> {r['mitigation']}" for r in risks)
            },
        )
        return {"summary": f"{len(risks)} risks identified, {high} high", "path": str(path)}


SPEC = AgentSpec(
    name="business_analyst",
    persona=PERSONA,
    toolkit=BusinessAnalystToolkit,
    procedure=(("analyse_requirements", {}), ("assess_risks", {})),
)


def _positive_class_lines(req: dict[str, Any]) -> list[str]:
    """Which class the binary figures will be for: stated, or how training will infer it
    (tools/positive_class.py), so the plan says it before any number is computed."""
    if req.get("model_type") != "classification":
        return []
    stated = req.get("positive_class")
    line = (
        f"- {md(str(stated))} (stated in the requirements)"
        if stated
        else "- not stated: inferred from the training data at model development (the class "
        "the objective names, else the minority class) and reported with its reason; set "
        "`positive_class` to choose it"
    )
    return ["## Positive class (binary targets)", line, ""]
