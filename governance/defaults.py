"""What mpm assumes when a governance directory holds only policies and Approvers.md.

Why: an organisation adopting mpm already has Domino policies; it should not have to
hand-write four configuration files before the first governed run. Every optional file has
a default here, and every default carries the sentence that explains it, so ``mpm policies
explain``, the governance report and the dashboard can say *why* a policy applies, where
its approvals are asked and how its metrics were found:

* **applicability** -- a framework without a rule applies to every model project
  (:data:`DEFAULT_APPLIES_REASON`); ``applicability.yaml`` only narrows.
* **metrics** -- a policy's ``modelmetric`` names are matched to the measured metrics
  through :data:`METRIC_ALIASES` (with or without a ``test_`` prefix).
* **alignment** -- each policy stage's approvals are asked after the plan stage its name
  (else its guidance) matches (:func:`align_stage`), falling back to the round before the
  first gated action -- never all at kickoff.
* **workflow** -- the standard plan stages as rounds, one parallel tier holding every
  approver group, Domino's gate actions bound to mpm's actions (:func:`default_workflow`).

Gated actions and the plan stage that performs each (:data:`STAGE_OF_ACTION`): mpm's
``RegisterModel`` extension -> ``register_model`` in ``mlops``; Domino's ``CreateEndpoint``
-> ``deploy_endpoint`` and ``CreateApp`` -> ``deploy_app`` in ``deployment``, the stage after
registration, so the sign-offs a policy asks at deployment time (after ``mlops``) can be
granted before serving is attempted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mpm.governance.policy import GuidanceArtifact, InputArtifact, Policy, Stage

__all__ = [
    "DEFAULT_ACTIONS",
    "DEFAULT_APPLIES_REASON",
    "FALLBACK_REASON",
    "METRIC_ALIASES",
    "PLAN_STAGES",
    "STAGE_OF_ACTION",
    "Alignment",
    "AlwaysApplies",
    "align_policy",
    "align_stage",
    "canonical_metric",
    "default_workflow",
    "execution_mode",
    "match_metric",
]

#: The standard plan stages, in order (``graph.state`` plans a subset of these).
PLAN_STAGES: tuple[str, ...] = (
    "business_analysis",
    "data_acquisition",
    "exploratory_analysis",
    "model_development",
    "model_validation",
    "mlops",
    "deployment",
)

#: Domino gate action -> the mpm action it blocks. ``RegisterModel`` is mpm's own
#: documented extension (Domino documents only CreateApp and CreateEndpoint).
DEFAULT_ACTIONS: dict[str, str] = {
    "RegisterModel": "register_model",
    "CreateEndpoint": "deploy_endpoint",
    "CreateApp": "deploy_app",
}

#: mpm action -> the plan stage that performs it. Registration happens in ``mlops``;
#: serving (the registered model behind MLflow's scoring server on loopback, answering a
#: smoke request) and the app scaffold happen in ``deployment``, which runs after ``mlops``
#: and after the approvals asked after it. Every action here is checked for deadlocks at
#: load time (``governance.config``); ``workflow.yaml`` may bind a policy action only to
#: one of these.
STAGE_OF_ACTION: dict[str, str] = {
    "register_model": "mlops",
    "deploy_endpoint": "deployment",
    "deploy_app": "deployment",
}

DEFAULT_APPLIES_REASON = "applies by default: no rule configured"
FALLBACK_REASON = "no stage name or guidance matched; asked before the first gated action"


# --------------------------------------------------------------------------- applicability


@dataclass(frozen=True)
class _Applies:
    matched: bool
    reason: str


@dataclass(frozen=True)
class AlwaysApplies:
    """The condition of a framework that has no applicability rule: every model project."""

    reason: str = DEFAULT_APPLIES_REASON

    def check(self, data: Any, prefix: str) -> _Applies:  # noqa: ARG002 - condition protocol
        return _Applies(True, self.reason)


# --------------------------------------------------------------------------- metrics

#: Canonical metric -> the names it is measured or asked under. Matching folds case and
#: ignores a ``test_`` / ``val_`` / ``validation_`` prefix on either side.
METRIC_ALIASES: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy", "acc"),
    "balanced_accuracy": ("balanced_accuracy", "balanced_acc", "bacc"),
    "roc_auc": ("roc_auc", "auc", "auc_roc", "rocauc", "area_under_roc", "auroc"),
    "pr_auc": ("pr_auc", "average_precision", "auprc", "ap"),
    "f1": ("f1", "f1_score", "f1score", "f_score"),
    "precision": ("precision", "ppv"),
    "recall": ("recall", "sensitivity", "tpr", "true_positive_rate"),
    "specificity": ("specificity", "tnr", "true_negative_rate"),
    "log_loss": ("log_loss", "logloss", "cross_entropy"),
    "brier": ("brier", "brier_score", "brier_score_loss"),
    "ks": ("ks", "ks_statistic", "kolmogorov_smirnov"),
    "gini": ("gini", "gini_coefficient"),
    "r2": ("r2", "r_squared", "r2_score", "rsquared"),
    "rmse": ("rmse", "root_mean_squared_error"),
    "mse": ("mse", "mean_squared_error"),
    "mae": ("mae", "mean_absolute_error"),
    "mape": ("mape", "mean_absolute_percentage_error"),
}
_PREFIX = re.compile(r"^(test|val|validation|holdout)_")
_CANONICAL = {
    re.sub(r"[\s-]+", "_", name.casefold()): canonical
    for canonical, names in METRIC_ALIASES.items()
    for name in names
}


def _fold(name: str) -> str:
    return _PREFIX.sub("", re.sub(r"[\s-]+", "_", str(name).strip().casefold()))


def canonical_metric(name: str) -> str | None:
    """The canonical name of a metric name, or None when the vocabulary does not know it."""
    return _CANONICAL.get(_fold(name))


def match_metric(metrics: Mapping[str, float], names: Iterable[str]) -> tuple[str, float] | None:
    """The measured metric (logged name, value) a policy metric asks for, or None.

    Exact names (case-insensitive) win; then the same name with/without a split prefix
    (``test_auc`` for ``auc``); then any name of the same canonical metric. Among several
    candidates a ``test_`` metric is preferred: policies judge the held-out score.
    """
    names = list(names)
    folded = {str(k).casefold(): k for k in metrics}
    for name in names:
        if name.casefold() in folded:
            key = folded[name.casefold()]
            return key, metrics[key]

    def ranked(keys: Iterable[str]) -> str | None:
        keys = sorted(keys, key=lambda k: (not str(k).casefold().startswith("test_"), str(k)))
        return keys[0] if keys else None

    wanted = {_fold(n) for n in names}
    key = ranked(k for k in metrics if _fold(k) in wanted)
    if key is None:
        canon = {canonical_metric(n) for n in names} - {None}
        key = ranked(k for k in metrics if canonical_metric(k) in canon)
    return (key, metrics[key]) if key is not None else None


# --------------------------------------------------------------------------- alignment

# (pattern, round(s), why); see _best for how one is chosen. At the same position the
# earlier rule wins, so "post-implementation" is tried before "implementation". A tuple of
# rounds is a preference: the first one the workflow has (a workflow.yaml written before
# the deployment stage existed has no ``deployment`` round; its last stage is ``mlops``).
_RULES: tuple[tuple[re.Pattern[str], str | tuple[str, ...], str], ...] = (
    (
        re.compile(r"\bfinal\b"),
        "model_validation",
        "final sign-off: asked before registration and deployment",
    ),
    (
        re.compile(
            r"post ?(implementation|deployment|production|launch)|monitor|ongoing|"
            r"general(ly)?[\s_-]*availab|retire"
        ),
        ("deployment", "mlops"),
        "post-implementation / monitoring: asked after deployment",
    ),
    (
        re.compile(r"deploy|production|implement|release|go[\s_-]*live|launch|preview"),
        "model_validation",
        "deployment / production / implementation: asked before registration and deployment",
    ),
    (
        re.compile(r"validat|testing|\btest|evaluat|verification|performance"),
        "model_validation",
        "validation / testing: asked after model validation",
    ),
    (
        re.compile(r"develop|build|training|\btrain|design|methodolog|modell?ing"),
        "model_development",
        "development: asked after model development",
    ),
    (
        re.compile(r"\bdata\b|dataset|acquisition|sourcing"),
        "data_acquisition",
        "data: asked after data acquisition",
    ),
    (
        re.compile(r"intake|business|use[\s_-]*case|purpose|scop|proposal|ideation|inception"),
        "business_analysis",
        "intake / business case: asked after business analysis",
    ),
)


@dataclass(frozen=True)
class Alignment:
    """Where one policy stage's approvals are asked, and why."""

    stage: str
    round: str
    reason: str
    configured: bool = False


def _stage_text(stage: Stage) -> str:
    parts: list[str] = []
    for evidence in [*stage.evidence_set, *(a.evidence for a in stage.approvals if a.evidence)]:
        parts.extend([evidence.name or "", evidence.description or ""])
        for artifact in evidence.artifacts:
            if isinstance(artifact, GuidanceArtifact):
                parts.append(artifact.details.text or "")
            elif isinstance(artifact, InputArtifact):
                parts.append(artifact.details.label or "")
    return " ".join(parts).casefold()


def fallback_round(rounds: list[str], actions: Mapping[str, str] | None = None) -> str:
    """The round just before the first plan stage that performs a gated action."""
    actions = actions if actions is not None else DEFAULT_ACTIONS
    stages = [STAGE_OF_ACTION.get(a) for a in actions.values()]
    firsts = sorted(rounds.index(s) for s in stages if s in rounds)
    if not firsts:
        return rounds[-1]
    return rounds[max(firsts[0] - 1, 0)]


def _best(text: str, rounds: list[str], *, by_count: bool) -> tuple[str, str] | None:
    """The (round, why) the text names: the keyword that comes first (a stage name's head
    word: "Deployment Authorization and Monitoring" is about deployment), or for guidance
    the round named most often (first mention breaks ties)."""
    hits: dict[int, tuple[int, int]] = {}  # rule index -> (count, first position)
    chosen: dict[int, str] = {}
    for index, (pattern, wanted, _why) in enumerate(_RULES):
        options = (wanted,) if isinstance(wanted, str) else wanted
        round_ = next((r for r in options if r in rounds), None)
        if round_ is None:
            continue
        found = [m.start() for m in pattern.finditer(text)]
        if found:
            hits[index] = (len(found), found[0])
            chosen[index] = round_
    if not hits:
        return None
    if by_count:
        index = min(hits, key=lambda i: (-hits[i][0], hits[i][1], i))
    else:
        index = min(hits, key=lambda i: (hits[i][1], i))
    return chosen[index], _RULES[index][2]


def align_stage(stage: Stage, rounds: list[str], fallback: str) -> Alignment:
    """The round of one policy stage: its name first, then its guidance, else ``fallback``."""
    for text, where in ((stage.name, "name"), (_stage_text(stage), "guidance")):
        text = re.sub(r"[_\s-]+", " ", text.casefold())
        best = _best(text, rounds, by_count=where == "guidance")
        if best is not None:
            return Alignment(stage.name, best[0], f"stage {where} matched {best[1]}")
    return Alignment(stage.name, fallback, FALLBACK_REASON)


def align_policy(
    policy: Policy,
    rounds: list[str],
    configured: Mapping[str, str] | None = None,
    actions: Mapping[str, str] | None = None,
) -> list[Alignment]:
    """The round of every stage of ``policy``; configured entries (workflow.yaml) win."""
    fallback = fallback_round(rounds, actions)
    out = []
    for stage in policy.stages:
        if configured and stage.name in configured:
            out.append(Alignment(stage.name, configured[stage.name], "workflow.yaml", True))
        else:
            out.append(align_stage(stage, rounds, fallback))
    return out


# --------------------------------------------------------------------------- workflow


def default_workflow(groups: Iterable[str]) -> dict[str, Any]:
    """The workflow.yaml a directory without one behaves as (before alignment is added)."""
    names = list(dict.fromkeys(groups)) or ["approvers"]
    return {
        "version": 1,
        "rounds": list(PLAN_STAGES),
        "order": [{"tier": "Approvers", "groups": names, "parallel": True}],
        "default_tier": "Approvers",
        "actions": dict(DEFAULT_ACTIONS),
        "separation_of_duties": True,
        "approval_evidence": "required",
    }


# --------------------------------------------------------------------------- execution mode


def execution_mode(
    requirements: Mapping[str, Any], configured: str | None = None
) -> tuple[str, str]:
    """(mode, reason): the requirements win, then workflow.yaml, then the risk default.

    ``step_by_step`` holds the next round of stages until the previous round's sign-offs
    are granted; ``automated`` lets stages run on and only gates block.
    """
    own = requirements.get("execution_mode")
    if own in ("step_by_step", "automated"):
        return own, "set in the project requirements (execution_mode)"
    if configured in ("step_by_step", "automated"):
        return configured, "set in workflow.yaml (execution_mode)"
    risk = str(requirements.get("risk_level") or "").casefold()
    if risk == "high" or requirements.get("regulatory_impact") is True:
        why = "high risk" if risk == "high" else "regulatory impact"
        return "step_by_step", f"default for high-risk or regulated projects ({why})"
    return "automated", "default for projects that are neither high-risk nor regulated"
