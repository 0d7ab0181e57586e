"""The registered model version as a governed registry entry.

A version in the MLflow registry is what a consumer picks a model by, often without ever
opening the run behind it. So the entry itself says what governance knew when it was let
in: a description, and tags for the thread, the governance status and frameworks, the
audit chain head, every granted approval with its signer and decision id, the positive
class and whether the success criterion was met. The alias ``champion`` names the version
to serve, and it is set **only** when governance passed (overall ``PASSED``), the success
criterion was measured and met and no risk had to be accepted for it; a version let in
through a risk acceptance, or while governance still waits for review, is registered but
not the champion. The parent run links the version (tags ``registered_model_name``,
``registered_model_version``, ``registered_model_uri``).

Registration happens before the stages after it, so the champion is settled again when
the run ends (:func:`settle_champion`, called with the final governance): an alias set
while governance passed is taken back from this version if governance later failed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from mpm.tools.inert import code, md, tracked_text

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION_ALIAS = "champion"
PASSED = "PASSED"
TAG_PREFIX = "mpm."
_MAX_TAG = 5000


class GrantedApproval(BaseModel):
    """One approval that let the version in: which, who signed it, which signed decision."""

    approval_id: str
    approver: str
    decision_id: str | None = None
    at: str | None = None


class RegistryFacts(BaseModel):
    """What governance and validation established about a version when it was registered."""

    thread_id: str
    project_name: str
    governance_status: str = Field(description="PASSED, FAILED, REQUIRES_REVIEW, ERROR, unknown")
    frameworks: list[str] = Field(default_factory=list)
    audit_head: str | None = None
    approvals: list[GrantedApproval] = Field(default_factory=list)
    positive_class: str | None = None
    target_metric: str | None = None
    success_threshold: float | None = None
    test_score: float | None = None
    criteria_met: bool | None = Field(default=None, description="None: not measured")
    accepted_risks: list[str] = Field(default_factory=list)
    model_type: str | None = None

    def champion_refusal(self) -> str | None:
        """Why this version may not be the champion, or None when it may."""
        if self.governance_status != PASSED:
            return f"governance is {self.governance_status}, not {PASSED}"
        if self.criteria_met is None:
            return f"the success criterion ({self.target_metric}) was not measured"
        if not self.criteria_met:
            return f"the success criterion ({self.target_metric}) was not met"
        if self.accepted_risks:
            return "registered under a risk acceptance: " + "; ".join(self.accepted_risks)
        return None


def measured_criterion(
    requirements: dict[str, Any], validation_outputs: dict[str, Any]
) -> tuple[float | None, bool | None]:
    """(test score, met) from the validator's own measurement, direction-aware; met is
    None when the score or the threshold is missing."""
    from mpm.tools.metrics import meets_threshold

    score = validation_outputs.get("test_score")
    if isinstance(score, bool) or not isinstance(score, int | float):
        return None, None
    threshold = requirements.get("success_threshold")
    if threshold is None:
        return float(score), None
    metric = str(requirements.get("target_metric") or "")
    return float(score), meets_threshold(float(score), float(threshold), metric)


def criterion_text(facts: RegistryFacts) -> str:
    if facts.test_score is None:
        return f"{facts.target_metric} not measured (threshold {facts.success_threshold})"
    verdict = "met" if facts.criteria_met else "NOT met"
    return (
        f"test {facts.target_metric} = {facts.test_score:.4g} against the threshold "
        f"{facts.success_threshold:g}: {verdict}"
    )


def version_tags(facts: RegistryFacts) -> dict[str, str]:
    """The entry's tags (values made inert: names and ids come from input)."""
    approvals = "; ".join(
        f"{a.approval_id} signed by {a.approver}"
        + (f" (decision {a.decision_id})" if a.decision_id else "")
        for a in facts.approvals
    )
    tags = {
        "thread_id": facts.thread_id,
        "project_name": facts.project_name,
        "governance_status": facts.governance_status,
        "frameworks": ", ".join(facts.frameworks) or "none applied",
        "approvals": approvals or "none",
        "approval_ids": ", ".join(a.approval_id for a in facts.approvals) or "none",
        "approvers": ", ".join(sorted({a.approver for a in facts.approvals})) or "none",
        "positive_class": facts.positive_class
        if facts.positive_class is not None
        else ("not applicable" if facts.model_type != "classification" else "not stated"),
        "success_criteria_met": "unknown"
        if facts.criteria_met is None
        else str(facts.criteria_met).lower(),
        "success_criteria": criterion_text(facts),
    }
    if facts.audit_head:
        tags["audit_head"] = facts.audit_head
    return {TAG_PREFIX + k: tracked_text(v)[:_MAX_TAG] for k, v in tags.items()}


def version_description(facts: RegistryFacts) -> str:
    """A short Markdown description of the version (MLflow shows it on the version page)."""
    refusal = facts.champion_refusal()
    lines = [
        f"Pipeline model of the project **{md(facts.project_name)}** "
        f"(mpm thread `{code(facts.thread_id)}`).",
        "",
        f"- Governance when registered: {facts.governance_status}; frameworks: "
        f"{md(', '.join(facts.frameworks) or 'none applied')}",
        f"- Success criterion: {criterion_text(facts)}",
        f"- Positive class: {md(facts.positive_class or 'not stated')}",
        f"- Approvals: {len(facts.approvals)} signed ("
        + md(", ".join(f"{a.approval_id} by {a.approver}" for a in facts.approvals))
        + ")",
        f"- Audit chain head: {facts.audit_head or 'none (no decisions recorded)'}",
        _alias_line(refusal),
    ]
    if facts.accepted_risks:
        lines.append("- Accepted risks: " + md("; ".join(facts.accepted_risks)))
    return "\n".join(lines)[:_MAX_TAG]


ALIAS_LINE = f"- Alias `{CHAMPION_ALIAS}`: "
FINAL_LINE = "- Governance at the end of the run: "


def _alias_line(refusal: str | None) -> str:
    return ALIAS_LINE + (
        "set (governance passed)" if refusal is None else f"not set: {md(refusal)}"
    )


def _settled_description(description: str, status: str, refusal: str | None) -> str:
    """The description with its alias line (and final-governance line) for the settled state."""
    kept = [
        line
        for line in (description or "").splitlines()
        if not line.startswith((ALIAS_LINE, FINAL_LINE))
    ]
    return "\n".join([*kept, FINAL_LINE + md(status), _alias_line(refusal)])[:_MAX_TAG]


def write_registry_entry(
    c: MlflowClient,
    name: str,
    version: int | str,
    facts: RegistryFacts,
    *,
    parent_run_id: str | None = None,
) -> dict[str, Any]:
    """Describe and tag the version, settle its ``champion`` alias, link it from the parent
    run. Idempotent: re-running writes the same values. Returns ``{champion,
    champion_reason, tags}``."""
    from mpm.tools import tracking

    version = str(version)
    for key, value in version_tags(facts).items():
        c.set_model_version_tag(name, version, key, value)
    c.update_model_version(name, version, description=version_description(facts))
    if c.get_registered_model(name).description in (None, ""):
        c.update_registered_model(
            name,
            description=tracked_text(
                f"Governed pipeline model of the project {facts.project_name}, registered by "
                f"mpm. The alias `{CHAMPION_ALIAS}` names the newest version whose governance "
                "passed; every version's tags say what governance knew."
            )[:_MAX_TAG],
        )
    champion = _settle_alias(c, name, version, facts.champion_refusal())
    if parent_run_id:
        tracking.set_tags(
            c,
            parent_run_id,
            {
                "registered_model_name": name,
                "registered_model_version": version,
                "registered_model_uri": f"models:/{name}/{version}",
                "registered_model_champion": str(champion["champion"]).lower(),
            },
        )
    return {**champion, "tags": version_tags(facts)}


def settle_champion(
    tracking_uri: str,
    name: str,
    version: int | str,
    *,
    governance_status: str,
    criteria_met: bool | None,
    accepted_risks: list[str] | None = None,
    target_metric: str | None = None,
    parent_run_id: str | None = None,
) -> dict[str, Any]:
    """Settle the alias again with the final governance of the run (synthesize calls it):
    the version's ``mpm.governance_status`` and its description's last lines say the final
    status, and the alias follows the same rule as at registration. What let the version
    in (approvals, chain head, criterion) stays as it was recorded at registration."""
    from mpm.tools import tracking

    c = tracking.client(tracking_uri)
    version = str(version)
    facts_like = RegistryFacts(
        thread_id="-",
        project_name="-",
        governance_status=governance_status or "unknown",
        criteria_met=criteria_met,
        accepted_risks=list(accepted_risks or []),
        target_metric=target_metric,
    )
    c.set_model_version_tag(
        name, version, TAG_PREFIX + "governance_status", tracked_text(facts_like.governance_status)
    )
    refusal = facts_like.champion_refusal()
    champion = _settle_alias(c, name, version, refusal)
    current = c.get_model_version(name, version).description or ""
    c.update_model_version(
        name,
        version,
        description=_settled_description(current, facts_like.governance_status, refusal),
    )
    if parent_run_id:
        tracking.set_tags(
            c, parent_run_id, {"registered_model_champion": str(champion["champion"]).lower()}
        )
    return champion


def _settle_alias(c: MlflowClient, name: str, version: str, refusal: str | None) -> dict[str, Any]:
    """Point ``champion`` at ``version`` when nothing refuses it; when something does, take
    the alias back only if it points at this version (an earlier champion keeps it)."""
    c.set_model_version_tag(
        name, version, TAG_PREFIX + "champion", "true" if refusal is None else "false"
    )
    c.set_model_version_tag(
        name,
        version,
        TAG_PREFIX + "champion_reason",
        "governance passed" if refusal is None else tracked_text(refusal)[:_MAX_TAG],
    )
    if refusal is None:
        c.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        return {"champion": True, "champion_reason": "governance passed"}
    current = c.get_registered_model(name).aliases.get(CHAMPION_ALIAS)
    if current is not None and str(current) == version:
        c.delete_registered_model_alias(name, CHAMPION_ALIAS)
    return {"champion": False, "champion_reason": refusal}
