"""``mpm policies init DIR``: commented starter configuration showing the defaults.

Why: the zero-config path works, but an administrator who wants to refine it should start
from what mpm already does, not from a blank page. Each file written here is valid and
*behaves exactly like its absence* (applicability: every framework applies; alignment: the
default per policy stage, with the reason in a comment; workflow: the default tier and
actions), so writing them changes nothing until someone edits them. Existing files are
never overwritten.
"""

from __future__ import annotations

from pathlib import Path

from mpm.governance.config import (
    APPLICABILITY_FILE,
    EVIDENCE_MAP_FILE,
    WORKFLOW_FILE,
    check_directory,
)
from mpm.governance.defaults import (
    DEFAULT_ACTIONS,
    METRIC_ALIASES,
    PLAN_STAGES,
    align_policy,
)

__all__ = ["StarterError", "write_starter_files"]


class StarterError(ValueError):
    """The directory cannot be initialised (it does not load); the message says why."""


def _q(text: str) -> str:
    """A YAML double-quoted scalar (policy names may hold ':' or '#')."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _applicability(frameworks: dict[str, str]) -> str:
    lines = [
        "# Which frameworks apply to a project. Without this file (or without a rule for a",
        "# framework) every framework applies to every model project:",
        '#   "applies by default: no rule configured".',
        "# The rules below state that default explicitly (every project has a model_type) and",
        "# 'always' lists every framework, so this file changes nothing until you edit it.",
        "# Rules narrow; they may test only controlled fields (model_type, risk_level,",
        "# regulatory_impact, ethical_ai_required, data_sources[*].sensitivity), e.g.",
        "#   when: {field: risk_level, in: [medium, high]}",
        "# and 'always' must keep at least one framework every model project gets.",
        "version: 1",
        "frameworks:",
    ]
    for fid, title in frameworks.items():
        lines += [
            f"  {fid}:",
            f"    description: {_q(title + ': every model project (the default)')}",
            "    when: {field: model_type, exists: true}",
        ]
    lines.append("always: [" + ", ".join(frameworks) + "]")
    return "\n".join(lines) + "\n"


def _evidence_map() -> str:
    lines = [
        "# Where the answers to policy questions come from. Without this file, metrics are",
        "# read from what validation and development measured and matched to a policy's",
        "# modelmetric names through this alias vocabulary (with or without a test_ prefix);",
        "# every other question is asked of people, with the policy's own labels.",
        "#",
    ]
    for canonical, names in METRIC_ALIASES.items():
        lines.append(f"#   {canonical}: {', '.join(names)}")
    lines += [
        "#",
        "# Add answers by the question's aliasForClassification (or evidence key), e.g.",
        "#   frameworks:",
        "#     <framework>:",
        "#       answers:",
        "#         model-purpose: requirements.business_objective",
        "version: 1",
        "common:",
        "  metric_sources:",
        "    - results.model_validation.metrics",
        "    - results.model_development.metrics",
    ]
    return "\n".join(lines) + "\n"


def _workflow(check_alignment: dict[str, list[tuple[str, str, str]]], groups: list[str]) -> str:
    lines = [
        "# How the approvals of all applicable policies are ordered. Without this file:",
        "# rounds are mpm's plan stages; each policy stage's approvals are asked after the",
        "# plan stage its name or guidance matches (the reason is in the comment), falling",
        "# back to before the first gated action; one parallel tier holds every group.",
        "# execution_mode: step_by_step (next round waits for the previous sign-offs; the",
        "# default for high-risk or regulated projects) or automated (only gates block).",
        "version: 1",
        "rounds: [" + ", ".join(PLAN_STAGES) + "]",
        "order:",
        "  - tier: Approvers",
        "    groups: [" + ", ".join(_q(g) for g in (groups or ["approvers"])) + "]",
        "    parallel: true",
        "default_tier: Approvers",
        "alignment:",
    ]
    for fid, rows in check_alignment.items():
        lines.append(f"  {fid}:")
        for stage, round_, why in rows:
            lines.append(f"    {_q(stage)}: {round_}  # {why}")
    lines += [
        "# Domino gate actions -> what they block in mpm (RegisterModel is mpm's extension):",
        "# register_model is the mlops stage; deploy_endpoint (serving on loopback) and",
        "# deploy_app (the app scaffold) are the deployment stage after it. A gate's approvals",
        "# must be asked before the stage it holds; otherwise the directory is refused.",
        "actions:",
        *(f"  {k}: {v}" for k, v in DEFAULT_ACTIONS.items()),
        "separation_of_duties: true",
        "# An approval's own evidence questions must be answered before it is granted.",
        "approval_evidence: required",
        "# Approvals naming several groups: any_of (one member of any group decides) or",
        "# all_of (one approval per named group, each by a different member).",
        "group_rule: any_of",
        "group_rules: {}   # per approval id, e.g. {my_policy:final-sign-off: all_of}",
    ]
    return "\n".join(lines) + "\n"


def write_starter_files(directory: str | Path) -> list[tuple[Path, bool]]:
    """Write the three starter files; returns (path, written) -- False when it existed."""
    folder = Path(directory)
    check = check_directory(folder)
    if not check.ok or check.loaded is None:
        raise StarterError(check.errors[0] if check.errors else f"{folder}: cannot be loaded")
    library = check.loaded.library
    frameworks = {loaded.framework: loaded.title for loaded in library}
    alignment = {
        loaded.framework: [
            (a.stage, a.round, a.reason) for a in align_policy(loaded.policy, list(PLAN_STAGES))
        ]
        for loaded in library
    }
    contents = {
        APPLICABILITY_FILE: _applicability(frameworks),
        EVIDENCE_MAP_FILE: _evidence_map(),
        WORKFLOW_FILE: _workflow(alignment, list(library.approvers.groups)),
    }
    written = []
    for name, text in contents.items():
        path = folder / name
        if path.exists():
            written.append((path, False))
            continue
        path.write_text(text, encoding="utf-8")
        written.append((path, True))
    return written
