"""The contracts between the parts of mpm, and the graph's state schema.

Everything a node writes into the graph state is JSON: the pydantic models below are
stored as ``model_dump(mode="json")`` dicts and validated again where they are read.
That keeps checkpoints portable (SQLite, PostgreSQL, LangGraph Server) and small, and
means a checkpoint never holds a data frame or a fitted model, only references to them
(workspace paths, MLflow run ids, model URIs).
"""

from __future__ import annotations

import datetime as dt
import operator
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import (
    TypedDict,  # typing.TypedDict on 3.11 gives LangGraph Server null schemas
)

from mpm.graph.audit import chain_entries
from mpm.tools.naming import project_key

# --------------------------------------------------------------------------- requirements


class Sensitivity(StrEnum):
    """How sensitive a data source is; drives which governance frameworks apply."""

    public = "public"
    internal = "internal"
    personal = "personal"
    pii = "pii"
    protected = "protected"
    sensitive = "sensitive"


class ModelType(StrEnum):
    classification = "classification"
    regression = "regression"
    llm = "llm"


class RiskLevel(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class ComputeTier(StrEnum):
    small = "small"
    medium = "medium"
    large = "large"
    gpu = "gpu"


CLASSIFICATION_METRICS = ("accuracy", "roc_auc", "f1", "precision", "recall", "balanced_accuracy")
REGRESSION_METRICS = ("r2", "rmse", "mae", "mape")
STAGE_NAMES = (
    "business_analysis",
    "data_acquisition",
    "exploratory_analysis",
    "model_development",
    "model_validation",
    "mlops",
    "deployment",
)
# Metrics where smaller is better: the success threshold is an upper bound for these.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mape"})


# Every model here says ``defer_build=True``: its validator is built the first time it
# validates, not at import. The read commands (``mpm status``, ``approvals``, ``runs``)
# import this module and need few or none of them; building all ten at import cost about
# 40 ms of CPU per command on 2 cores.


def _known_stages(value: dict[str, Any]) -> dict[str, Any]:
    for stage in value:
        if stage not in STAGE_NAMES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGE_NAMES)}")
    return value


class DataSource(BaseModel):
    """One data source named by the requirements.

    ``uri`` says where the data comes from:
    ``sklearn:<name>`` (a dataset scikit-learn ships: breast_cancer, wine, diabetes, iris,
    digits, ...), ``synthetic:<schema>`` (credit, churn or fraud, generated with a fixed
    seed; ``rows`` sets the size), or a path to a CSV / Parquet file inside the workspace
    (relative paths are resolved against the workspace; nothing outside it is read).
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)

    name: str = Field(min_length=1, max_length=200)
    uri: str = Field(min_length=1, max_length=1000)
    sensitivity: Sensitivity = Sensitivity.internal
    description: str = ""
    rows: int | None = Field(default=None, gt=0, le=10_000_000)


class BusinessAssumptions(BaseModel):
    """The economics of the decisions the model supports, as the requester states them.

    ROI and value figures are computed from these and nothing else: without them the
    deliverables say "not estimated: no business assumptions given" instead of inventing
    figures. Amounts are in ``currency`` per year (``one_off_cost`` once)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    decisions_per_year: int = Field(gt=0, le=10**12, description="decisions the model makes a year")
    value_per_correct_decision: float = Field(
        ge=0, le=1e12, description="what one correct decision is worth"
    )
    cost_per_error: float = Field(ge=0, le=1e12, description="what one wrong decision costs")
    running_cost_per_year: float = Field(
        ge=0, le=1e15, description="serving, monitoring and upkeep per year"
    )
    one_off_cost: float = Field(
        default=0.0, ge=0, le=1e15, description="build, validation and deployment, once"
    )
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code")


class RemediationBudget(BaseModel):
    """How much the model developer may spend trying to meet an unmet success criterion.

    Defaults: two attempts, ten minutes of stage time (training plus validation of the
    attempts, not time spent waiting for people). ``max_attempts: 0`` disables the loop:
    an unmet criterion then ends the run ``failed_criteria`` at once. An attempt starts
    only while the time already spent is under ``max_minutes``; a started attempt is
    bounded by its stages' timeouts."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    max_attempts: int = Field(default=2, ge=0, le=5)
    max_minutes: float = Field(default=10.0, gt=0, le=1440)


class ProjectRequirements(BaseModel):
    """What the person kicking off the project asked for; the input to planning."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    project_name: str = Field(min_length=1, max_length=200)
    business_objective: str = Field(min_length=1, max_length=5000)
    constraints: list[str] = Field(default_factory=list)
    project_type: str = Field(default="ml_model", min_length=1, max_length=100)
    model_type: ModelType
    target_metric: str
    success_threshold: float
    target_column: str | None = Field(default=None, max_length=200)
    positive_class: str | None = Field(
        default=None,
        max_length=200,
        description="the target value that counts as positive (binary classification)",
    )
    data_sources: list[DataSource] = Field(min_length=1)
    sensitive_attributes: list[str] = Field(default_factory=list)
    use_sensitive_attributes: bool = Field(
        default=False,
        description="keep the sensitive attributes as model inputs (default: excluded from "
        "the features, used only to measure fairness); the choice is recorded",
    )
    risk_level: RiskLevel = RiskLevel.medium
    regulatory_impact: bool = False
    ethical_ai_required: bool = False
    deadline: dt.date | None = None
    compute_tier: ComputeTier = ComputeTier.small
    stakeholders: list[str] = Field(default_factory=list)
    requested_by: str | None = Field(
        default=None, description="Who asked for the project; may not approve its gates."
    )
    governance_answers: dict[str, Any] = Field(
        default_factory=dict,
        description="answers to governance questions known at kickoff: {framework: {alias: answer}}",
    )
    execution_mode: Literal["step_by_step", "automated"] | None = Field(
        default=None,
        description="step_by_step: the next round of stages waits for the previous round's "
        "sign-offs; automated: only gates block. Default: workflow.yaml, else step_by_step "
        "for high-risk or regulated projects and automated otherwise",
    )
    exclude_columns: list[str] = Field(
        default_factory=list,
        description="columns never used as model inputs (e.g. a flagged leak); dropped at acquisition",
    )
    group_column: str | None = Field(
        default=None,
        max_length=200,
        description="split and cross-validate by this column: a group is in one split only",
    )
    time_column: str | None = Field(
        default=None,
        max_length=200,
        description="time-ordered split and cross-validation by this column (oldest trains)",
    )
    data_remediation: list[Literal["drop_missing_target", "drop_duplicates"]] = Field(
        default_factory=list,
        description="remediations applied to the data before its quality gates (recorded)",
    )
    quality_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="data-quality thresholds; only values stricter than the defaults apply",
    )
    business_assumptions: BusinessAssumptions | None = Field(
        default=None,
        description="decision economics for the ROI estimate; absent -> no ROI is estimated",
    )
    seed: int = 42
    remediation: RemediationBudget = Field(
        default_factory=RemediationBudget,
        description="budget of the remediation loop run when validation misses the success "
        "criterion: {max_attempts: 2, max_minutes: 10} by default; max_attempts 0 disables it",
    )
    stage_timeout_s: dict[str, float] = Field(
        default_factory=dict, description="per-stage timeout overrides in seconds, by stage name"
    )
    stage_retries: dict[str, int] = Field(
        default_factory=dict, description="per-stage retry overrides, by stage name"
    )

    @field_validator("target_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        value = value.strip().lower()
        known = CLASSIFICATION_METRICS + REGRESSION_METRICS + ("exact_match", "rouge_l")
        if value not in known:
            raise ValueError(f"expected one of {', '.join(known)}; got {value!r}")
        return value

    @field_validator("positive_class", mode="before")
    @classmethod
    def _label_text(cls, value: Any) -> Any:
        """``positive_class: 1`` in YAML is the label 1, not an error (labels are matched as text)."""
        if isinstance(value, bool):
            return str(int(value))
        return str(value) if isinstance(value, int | float) else value

    @field_validator("stage_timeout_s")
    @classmethod
    def _timeouts(cls, value: dict[str, float]) -> dict[str, float]:
        for stage, seconds in _known_stages(value).items():
            if not 0 < seconds <= 86_400:
                raise ValueError(
                    f"{stage}: expected a timeout between 0 and 86400 seconds; got {seconds!r}"
                )
        return value

    @field_validator("stage_retries")
    @classmethod
    def _retries(cls, value: dict[str, int]) -> dict[str, int]:
        for stage, retries in _known_stages(value).items():
            if not 0 <= retries <= 5:
                raise ValueError(f"{stage}: expected 0 to 5 retries; got {retries!r}")
        return value

    @model_validator(mode="after")
    def _split_columns(self) -> ProjectRequirements:
        if self.group_column and self.time_column:
            raise ValueError("group_column and time_column: expected at most one of them")
        if self.target_column:
            for name, value in (
                ("exclude_columns", self.exclude_columns),
                ("group_column", [self.group_column]),
                ("time_column", [self.time_column]),
            ):
                if self.target_column in value:
                    raise ValueError(
                        f"{name}: may not name the target column {self.target_column!r}"
                    )
        return self

    @model_validator(mode="after")
    def _metric_fits_model_type(self) -> ProjectRequirements:
        if (
            self.model_type == ModelType.classification
            and self.target_metric not in CLASSIFICATION_METRICS
        ):
            raise ValueError(
                f"target_metric {self.target_metric!r} is not a classification metric "
                f"(expected one of {', '.join(CLASSIFICATION_METRICS)})"
            )
        if self.model_type == ModelType.regression and self.target_metric not in REGRESSION_METRICS:
            raise ValueError(
                f"target_metric {self.target_metric!r} is not a regression metric "
                f"(expected one of {', '.join(REGRESSION_METRICS)})"
            )
        return self

    @model_validator(mode="after")
    def _requester_known(self) -> ProjectRequirements:
        """Separation of duties needs to know who asked: required where it matters most."""
        from mpm.governance.identity import UnsafeIdError, canonical_id

        if self.requested_by is not None:
            try:
                self.requested_by = canonical_id(self.requested_by, what="requested_by")
            except UnsafeIdError as exc:
                raise ValueError(str(exc)) from None
        elif self.regulatory_impact or self.risk_level == RiskLevel.high:
            raise ValueError(
                "requested_by: required for a regulated or high-risk project (separation of "
                "duties must know who asked)"
            )
        return self

    @property
    def slug(self) -> str:
        """The project's key: a file- and MLflow-safe form of the name that no other
        project shares (slug + digest of the exact name, ``tools/naming.py``); the
        experiment and registered model are named from it."""
        return project_key(self.project_name)

    @property
    def sensitive_data(self) -> bool:
        return any(
            s.sensitivity
            in {Sensitivity.personal, Sensitivity.pii, Sensitivity.protected, Sensitivity.sensitive}
            for s in self.data_sources
        )


# --------------------------------------------------------------------------- plan

# The actions policy gates can block, and the plan stage that performs each.
# mpm action -> the stage that performs it (governance.defaults.STAGE_OF_ACTION; kept
# literal so reading state does not import the governance package; a test compares them).
# Registration is mlops; serving and the app scaffold are the deployment stage after it.
GATED_ACTIONS = {
    "register_model": "mlops",
    "deploy_endpoint": "deployment",
    "deploy_app": "deployment",
}


class AgentType(StrEnum):
    business_analyst = "business_analyst"
    data_wrangler = "data_wrangler"
    data_scientist = "data_scientist"
    model_developer = "model_developer"
    model_validator = "model_validator"
    mlops_engineer = "mlops_engineer"
    deployment_engineer = "deployment_engineer"


class ApprovalGate(BaseModel):
    """A point in the plan that waits for human sign-off before ``blocks`` may run."""

    model_config = ConfigDict(defer_build=True)

    id: str
    name: str
    approvals: list[str] = Field(default_factory=list, description="approval ids to be granted")
    after_stage: str | None = None
    blocks: list[str] = Field(default_factory=list, description="stages held until granted")
    action: str | None = Field(default=None, description="gated action, e.g. register_model")


class StageSpec(BaseModel):
    model_config = ConfigDict(defer_build=True)
    name: str
    agent: AgentType
    task: str
    depends_on: list[str] = Field(default_factory=list)
    timeout_s: float = Field(default=600.0, gt=0)
    max_retries: int = Field(default=1, ge=0, le=5)
    fallback: str | None = Field(default=None, description="named fallback procedure, or None")
    critical: bool = True
    milestone: str | None = None


class PlanRevision(BaseModel):
    """A change to the plan after it was made: which stages run again, and why."""

    model_config = ConfigDict(defer_build=True)

    revision: int = Field(ge=1)
    reason: str
    stages: list[str] = Field(default_factory=list, description="stages run again")
    remediation_attempt: int | None = None
    at: str | None = None


class ExecutionPlan(BaseModel):
    model_config = ConfigDict(defer_build=True)
    stages: list[StageSpec]
    gates: list[ApprovalGate] = Field(default_factory=list)
    revisions: list[PlanRevision] = Field(
        default_factory=list, description="remediation attempts that re-ran stages, in order"
    )

    def stage(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]


# --------------------------------------------------------------------------- results


class StageStatus(StrEnum):
    success = "success"
    failed_with_fallback = "failed_with_fallback"
    failed = "failed"


class ArtifactRef(BaseModel):
    """A file a stage produced: where it is in the workspace and under which MLflow run."""

    model_config = ConfigDict(defer_build=True)

    name: str
    path: str | None = None
    mlflow_run_id: str | None = None
    artifact_path: str | None = None
    uri: str | None = None


class StageResult(BaseModel):
    model_config = ConfigDict(defer_build=True)
    stage: str
    agent: AgentType
    status: StageStatus
    summary: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)
    evidence: dict[str, Any] = Field(
        default_factory=dict, description="answers to governance questions, keyed by evidence key"
    )
    outputs: dict[str, Any] = Field(
        default_factory=dict, description="small JSON facts downstream stages read (paths, names)"
    )
    artifacts: list[ArtifactRef] = Field(default_factory=list)
    mlflow_run_id: str | None = None
    duration_s: float = 0.0
    cpu_s: float = 0.0
    attempts: int = 1
    error: str | None = None
    tool_calls: list[str] = Field(default_factory=list)
    model_calls: int = 0
    input_tokens: int = Field(default=0, description="as the model provider reported them")
    output_tokens: int = 0


# --------------------------------------------------------------------------- graph state


def merge_dicts(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer for maps written by parallel branches: keys from the right win."""
    merged = dict(left or {})
    merged.update(right or {})
    return merged


def merge_nested(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer for maps of maps (framework -> answers): inner maps are merged too."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in (left or {}).items()}
    for key, value in (right or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def latest_head(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: the longer chain head wins (parallel approvals may both report one)."""
    heads = [h for h in (left, right) if isinstance(h, dict)]
    return max(heads, key=lambda h: int(h.get("count") or 0), default={})


class InputState(TypedDict, total=False):
    """What the outside world may send to start a run."""

    requirements: dict[str, Any]
    """Structured requirements (from a file); validated by kickoff."""
    settings: dict[str, Any]
    """Model, toolset, tracking and policy directory the thread was started with (runner)."""
    conversation: Annotated[list[dict[str, str]], operator.add]
    """Chat turns ``{"role": "user"|"assistant", "content": ...}`` for the conversational kickoff."""


class GraphState(InputState, total=False):
    """The whole run. Every value is JSON; see the module docstring."""

    thread_id: str
    """Written by kickoff from the run config; used to name MLflow runs and workspace folders."""
    settings: dict[str, Any]
    """Model, toolset, tracking, tracing and policy directory the thread was started with (kickoff)."""
    status: str
    """Overall run status: running, waiting, completed, partial, failed (written by any node)."""
    plan: dict[str, Any]
    """``ExecutionPlan`` (plan node)."""
    results: Annotated[dict[str, dict[str, Any]], merge_dicts]
    """Stage name -> ``StageResult`` (stage nodes; merged so parallel stages can both write)."""
    mlflow: Annotated[dict[str, Any], merge_dicts]
    """MLflow ids: experiment_id, parent_run_id, stage_runs {stage: run_id} (plan + stage nodes)."""
    events: Annotated[list[dict[str, Any]], operator.add]
    """Append-only decision and state-change log (every node)."""
    revisions: Annotated[dict[str, dict[str, Any]], merge_dicts]
    """Stage name -> {count, comment}: stages sent back by a reviewer (approvals node)."""
    governance: dict[str, Any]
    """Latest governance evaluation (governance node)."""
    approvals: Annotated[dict[str, dict[str, Any]], merge_dicts]
    """Approval id -> decision record (approvals node)."""
    approval_requests: Annotated[dict[str, str], merge_dicts]
    """Approval id -> when it was first requested (supervisor); shown as "pending since"."""
    audit: Annotated[list[dict[str, Any]], chain_entries]
    """The checkpoint's copy of the hash-chained audit trail (approval node; the durable
    trail is ``runs/<thread>/audit_trail.jsonl``). Approval state is derived from it."""
    audit_head: Annotated[dict[str, Any], latest_head]
    """Chain head ``{count, hash}`` of the durable trail, anchored in the checkpoint."""
    human_answers: Annotated[dict[str, Any], merge_nested]
    """Framework -> {question alias or key: answer} given by people (questions, approvals)."""
    asked_questions: list[str]
    """Evidence keys already put to the project owner (questions node)."""
    remediation_attempts: list[dict[str, Any]]
    """Remediation attempts, in order (supervisor only; see ``tools/remediation.py``):
    ``{attempt, strategy, strategies, why, status, before, after, run_ids, minutes, ...}``;
    written when an attempt starts and again when its validation has finished, so a
    resumed run neither repeats nor loses one."""
    remediation: dict[str, Any]
    """The loop's budget and why it stopped: ``{budget, stopped, minutes_used}`` (supervisor)."""
    deliverables: dict[str, Any]
    """What synthesize produced: paths, registered model, validation outcome."""
    started_at: str
    finished_at: str


RunStatus = Literal[
    "running", "waiting", "completed", "partial", "failed", "failed_governance", "failed_criteria"
]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
