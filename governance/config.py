"""The one loader path for a governance directory: what kickoff reads is what validate checks.

Why: a directory that ``mpm policies validate`` accepts must be a directory a run accepts.
Both call :func:`load_directory`, which reads the policies and Approvers.md
(:class:`PolicyLibrary`), then each optional configuration file *if present*, and fills in
what is absent from :mod:`governance.defaults` -- recording for each one whether it was
configured or defaulted and why (:class:`ConfigNote`), so the report, the dashboard and
``mpm policies explain`` can say so. Checks that need every piece together (a gate whose
approvals are only asked after the step it blocks) run here too, at load time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mpm.governance.applicability import (
    ApplicabilityRules,
    ApplicabilityRulesError,
    FrameworkRule,
    load_applicability_rules,
)
from mpm.governance.defaults import (
    DEFAULT_ACTIONS,
    DEFAULT_APPLIES_REASON,
    PLAN_STAGES,
    STAGE_OF_ACTION,
    AlwaysApplies,
    align_policy,
    default_workflow,
)
from mpm.governance.evaluation import approval_id
from mpm.governance.evidence_map import EvidenceMap, EvidenceMapError, load_evidence_map
from mpm.governance.library import PolicyLibrary
from mpm.governance.workflow import (
    WorkflowConfig,
    WorkflowConfigError,
    build_workflow,
    load_workflow_config,
)

__all__ = [
    "APPLICABILITY_FILE",
    "CONFIG_FILES",
    "EVIDENCE_MAP_FILE",
    "WORKFLOW_FILE",
    "ConfigNote",
    "DirectoryCheck",
    "GovernanceConfigError",
    "LoadedDirectory",
    "check_directory",
    "load_directory",
]

APPLICABILITY_FILE = "applicability.yaml"
EVIDENCE_MAP_FILE = "evidence_map.yaml"
WORKFLOW_FILE = "workflow.yaml"
CONFIG_FILES = ("frameworks.yaml", APPLICABILITY_FILE, EVIDENCE_MAP_FILE, WORKFLOW_FILE)


class GovernanceConfigError(ValueError):
    """A governance directory cannot be used; ``errors`` holds one line per defect."""

    def __init__(self, directory: Path, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(errors[0] if len(errors) == 1 else "; ".join(errors))


@dataclass(frozen=True)
class ConfigNote:
    """How one aspect of governance was decided: configured in a file, or by default."""

    topic: str  # frameworks | applicability | metrics | alignment | workflow
    configured: bool
    text: str
    framework: str | None = None


@dataclass
class LoadedDirectory:
    library: PolicyLibrary
    rules: ApplicabilityRules
    evidence_map: EvidenceMap
    workflow: WorkflowConfig
    notes: list[ConfigNote] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class DirectoryCheck:
    """Everything :func:`check_directory` found: errors (unusable) and warnings."""

    directory: Path
    loaded: LoadedDirectory | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _rules(directory: Path, library: PolicyLibrary, notes: list[ConfigNote]) -> ApplicabilityRules:
    path = directory / APPLICABILITY_FILE
    if path.is_file():
        rules = load_applicability_rules(path, known_frameworks=library.frameworks, controlled=True)
        listed = set(rules.frameworks)
    else:
        rules, listed = ApplicabilityRules((), source="(default)"), set()
    extra = []
    for framework in library.frameworks:
        if framework in listed:
            notes.append(
                ConfigNote("applicability", True, f"rule in {APPLICABILITY_FILE}", framework)
            )
            continue
        extra.append(FrameworkRule(framework, AlwaysApplies(), ""))  # type: ignore[arg-type]
        notes.append(ConfigNote("applicability", False, DEFAULT_APPLIES_REASON, framework))
    return ApplicabilityRules((*rules.rules, *extra), source=rules.source, always=rules.always)


def _evidence_map(directory: Path, notes: list[ConfigNote]) -> EvidenceMap:
    path = directory / EVIDENCE_MAP_FILE
    if path.is_file():
        notes.append(ConfigNote("metrics", True, f"answers and metrics from {EVIDENCE_MAP_FILE}"))
        return load_evidence_map(path)
    notes.append(
        ConfigNote(
            "metrics",
            False,
            "no evidence_map.yaml: metrics measured by validation and development are matched "
            "by name through the documented alias vocabulary; questions are answered by people",
        )
    )
    return EvidenceMap.model_validate(
        {
            "common": {
                "metric_sources": [
                    "results.model_validation.metrics",
                    "results.model_development.metrics",
                ]
            }
        }
    )


def _workflow(
    directory: Path, library: PolicyLibrary, notes: list[ConfigNote]
) -> tuple[WorkflowConfig, bool]:
    path = directory / WORKFLOW_FILE
    if path.is_file():
        config = load_workflow_config(path)
        notes.append(ConfigNote("workflow", True, f"rounds and tiers from {WORKFLOW_FILE}"))
        configured = True
    else:
        config = WorkflowConfig.model_validate(default_workflow(library.approvers.groups))
        notes.append(
            ConfigNote(
                "workflow",
                False,
                "no workflow.yaml: one parallel tier of every approver group; mpm's "
                "RegisterModel gates the mlops stage, Domino's CreateEndpoint and CreateApp "
                "the deployment stage after it",
            )
        )
        configured = False
    # Unconfigured actions keep Domino's meaning rather than blocking nothing.
    actions = {**DEFAULT_ACTIONS, **config.actions}
    # Frameworks workflow.yaml does not align get the default alignment, per stage.
    alignment = dict(config.alignment)
    for loaded in library:
        if loaded.framework in alignment:
            continue
        aligned = align_policy(loaded.policy, list(config.rounds), None, actions)
        alignment[loaded.framework] = {a.stage: a.round for a in aligned}
        for a in aligned:
            notes.append(
                ConfigNote(
                    "alignment",
                    False,
                    f"stage {a.stage!r} -> after {a.round}: {a.reason}",
                    loaded.framework,
                )
            )
    config = config.model_copy(update={"alignment": alignment, "actions": actions})
    unknown = [g for g in config.exception_approvers if g not in library.approvers.groups]
    if unknown:
        raise WorkflowConfigError(
            f"workflow.yaml: exception_approvers: {unknown[0]!r} is not a group in "
            f"Approvers.md (groups: {', '.join(sorted(library.approvers.groups))})"
        )
    return config, configured


def _action_errors(config: WorkflowConfig) -> list[str]:
    """A policy action bound to something mpm never performs would hold nothing: refuse it
    rather than let a gate look enforced while it guards no step."""
    known = ", ".join(STAGE_OF_ACTION)
    return [
        f"{WORKFLOW_FILE}: actions.{action}: {bound!r} is not an action mpm performs "
        f"(expected one of: {known})"
        for action, bound in config.actions.items()
        if bound not in STAGE_OF_ACTION
    ]


def _stage_position(round_: str) -> int:
    """Where a round's approvals are asked in the plan: after that plan stage; a round that
    is no plan stage is asked only once every stage has run (graph supervisor)."""
    return PLAN_STAGES.index(round_) if round_ in PLAN_STAGES else len(PLAN_STAGES)


def _gate_errors(library: PolicyLibrary, config: WorkflowConfig) -> list[str]:
    """Every gate whose approval can only be requested at or after the plan stage that
    performs an action the gate blocks: the approval waits for the stage, the stage for the
    gate, and the run would wait forever.

    "Can only be requested" is judged on the merged workflow the run builds: the round the
    approval is asked after (alignment, strict policy order applied) and the rounds of every
    approval it waits for, against the plan's stage order. One line per gate and approval,
    naming the gate, the approval, the blocked action(s) and the stage."""
    workflow = build_workflow({loaded.framework: loaded for loaded in library}, config=config)
    by_id = {a.id: a for a in workflow.approvals}
    errors = []
    for loaded in library:
        for gate in loaded.policy.gates:
            performed = {
                rule.action: STAGE_OF_ACTION[config.actions[rule.action]]
                for rule in gate.rules
                if config.actions.get(rule.action) in STAGE_OF_ACTION
            }
            if not performed:
                continue
            for name in gate.approvals:
                approval = by_id.get(approval_id(loaded.framework, name))
                if approval is None:
                    continue
                chain = [approval, *(by_id[p] for p in workflow.prerequisites(approval.id))]
                latest = max(chain, key=lambda a: (_stage_position(a.round), a.position))
                asked = _stage_position(latest.round)
                stuck = {a: s for a, s in performed.items() if asked >= _stage_position(s)}
                if not stuck:
                    continue
                stage = min(stuck.values(), key=_stage_position)
                when = (
                    f"after {latest.round}"
                    if latest.round in PLAN_STAGES
                    else f"after every plan stage (round {latest.round!r} is not a plan stage)"
                )
                via = "" if latest is approval else f" (it waits for {latest.name!r})"
                errors.append(
                    f"{loaded.source.name}: gates: gate {gate.name!r} blocks "
                    f"{', '.join(stuck)} (performed in {stage}) but its approval {name!r} "
                    f"can only be requested {when}{via}; the run would wait forever -- "
                    f"align policy stage {latest.stage!r} with a round before {stage} "
                    f"(alignment in {WORKFLOW_FILE})"
                )
    return errors


def load_directory(directory: str | Path) -> LoadedDirectory:
    """Load a governance directory the way a run does; raise on the first unusable file."""
    check = check_directory(directory)
    if not check.ok or check.loaded is None:
        raise GovernanceConfigError(Path(directory), check.errors)
    return check.loaded


def check_directory(directory: str | Path) -> DirectoryCheck:
    """Every check a run makes on ``directory``, collected (never raises for bad input)."""
    folder = Path(directory)
    check = DirectoryCheck(folder, None)
    library = PolicyLibrary.load(folder, strict=False)
    check.warnings.extend(library.all_warnings())
    check.errors.extend(str(e) for e in library.errors)
    if not library.policies and not library.errors:
        check.errors.append(f"{folder}: no *.yml or *.yaml policy files")
    if check.errors:
        return check
    from mpm.governance.rules.typecheck import check_rules

    for loaded in library:
        for problem in check_rules(loaded.policy, loaded.source):
            (check.errors if problem.severity == "error" else check.warnings).append(str(problem))
    # Rule errors do not stop the remaining checks: one line per defect, all at once.
    notes: list[ConfigNote] = []
    for fid, loaded in library.policies.items():
        entry = library.index.get(fid)
        how = f"listed in frameworks.yaml as {fid!r}" if entry else f"one per file, id {fid!r}"
        notes.append(
            ConfigNote("frameworks", entry is not None, f"{loaded.source.name}: {how}", fid)
        )
    parts: dict[str, object] = {}
    steps = (
        ("rules", lambda: _rules(folder, library, notes), ApplicabilityRulesError),
        ("evidence_map", lambda: _evidence_map(folder, notes), EvidenceMapError),
        ("workflow", lambda: _workflow(folder, library, notes)[0], WorkflowConfigError),
    )
    for name, step, error in steps:
        try:
            parts[name] = step()
        except error as exc:
            check.errors.append(str(exc))
    if "workflow" not in parts:
        return check
    workflow: WorkflowConfig = parts["workflow"]  # type: ignore[assignment]
    action_errors = _action_errors(workflow)
    check.errors.extend(action_errors or _gate_errors(library, workflow))
    if check.errors:
        return check
    check.loaded = LoadedDirectory(
        library=library,
        rules=parts["rules"],  # type: ignore[arg-type]
        evidence_map=parts["evidence_map"],  # type: ignore[arg-type]
        workflow=workflow,
        notes=notes,
        warnings=list(check.warnings),
    )
    return check
