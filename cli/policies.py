"""``mpm policies ...``: check, list and explain Domino governance policies from a shell.

Why: a governance admin editing a policy wants the engine's verdict before a run does
(``validate``), an overview of what the library holds (``list``) and a plain reading of
one policy: what it asks, of whom, under which rule (``explain``).

Errors and warnings are printed as plain single lines (``<file>: <path>: <message>``) so
they can be grepped; tables use rich. Exit codes: 0 all loaded, 2 any policy failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mpm.governance import LoadedPolicy, PolicyError, PolicyLibrary, load_policy
from mpm.governance.policy import (
    FileDetails,
    GuidanceArtifact,
    InputArtifact,
    MetadataArtifact,
    ModelMetricDetails,
    MonitoringCheckArtifact,
    ScriptedCheckArtifact,
)
from mpm.graph.safe_text import visible_controls

app = typer.Typer(
    help="Validate, list and explain Domino governance policies.",
    no_args_is_help=True,
    add_completion=False,
)

EXIT_INVALID = 2


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _line(text: str, *, err: bool = False) -> None:
    """One unwrapped, unstyled line: messages must stay greppable whatever the width.

    Policy text (names, labels, rules, error excerpts) may hold terminal escape sequences
    or bidirectional overrides: they are printed as visible ``\\xNN`` escapes, and a line
    break in a message cannot start a forged line."""
    typer.echo(" ".join(visible_controls(str(text)).splitlines()), err=err)


def _text(value: object, **style: object) -> Text:
    """Policy text for a rich table or heading: never markup, control characters visible."""
    return Text(visible_controls(str(value)), **style)  # type: ignore[arg-type]


def default_policy_dir() -> Path:
    """The packaged reference policies (``reference/governance``)."""
    from importlib.resources import files

    # reference/ is a regular package installed as files (editable or wheel), so the
    # Traversable is a real directory path.
    return Path(str(files("mpm.reference") / "governance"))


# --------------------------------------------------------------------------- validate


@app.command()
def validate(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Policy files or directories (a directory also checks Approvers.md)."),
    ],
) -> None:
    """Load each policy; print warnings; exit 2 if any policy cannot be used."""
    failed = 0
    loaded = 0
    for path in paths:
        if path.is_dir():
            # The same checks a run makes (governance.config): policies, Approvers.md and
            # every optional configuration file that is present.
            from mpm.governance.config import check_directory

            check = check_directory(path)
            library = (
                check.loaded.library if check.loaded else PolicyLibrary.load(path, strict=False)
            )
            bad = {e.split(":", 1)[0] for e in check.errors}
            for policy in library:
                if policy.source.name not in bad and str(policy.source) not in bad:
                    loaded += 1
                _report_loaded(policy)
            already = set(library.all_warnings())
            for warning in [*library.warnings, *(w for w in check.warnings if w not in already)]:
                _line(f"warning: {warning}")
            for error in check.errors:
                failed += 1
                _line(f"error: {error}", err=True)
            if check.loaded:
                for note in check.loaded.notes:
                    if not note.configured:
                        scope = f"{note.framework}: " if note.framework else ""
                        _line(f"default: {note.topic}: {scope}{note.text}")
            continue
        try:
            policy = load_policy(path)
        except PolicyError as error:
            failed += 1
            _line(f"error: {error}", err=True)
            continue
        from mpm.governance.rules.typecheck import check_rules

        problems = check_rules(policy.policy, policy.source)
        errors = [p for p in problems if p.severity == "error"]
        _report_loaded(policy)
        for problem in problems:
            _line(f"{problem.severity}: {problem}", err=problem.severity == "error")
        if errors:
            failed += 1
        else:
            loaded += 1
    summary = f"{loaded} polic{'y' if loaded == 1 else 'ies'} valid, {failed} invalid"
    _line(summary, err=bool(failed))
    if failed:
        raise typer.Exit(EXIT_INVALID)


def _report_loaded(loaded: LoadedPolicy) -> None:
    policy = loaded.policy
    approvals = sum(1 for _ in policy.approvals())
    _line(
        f"ok: {loaded.source} ({loaded.framework}): {len(policy.stages)} stages, "
        f"{approvals} approvals, {len(loaded.warnings)} warnings"
    )
    for warning in loaded.warnings:
        _line(f"warning: {loaded.source}: {warning}")


# --------------------------------------------------------------------------- init


@app.command()
def init(
    directory: Annotated[
        Path, typer.Argument(help="Directory with the policies and Approvers.md.")
    ],
) -> None:
    """Write commented starter applicability.yaml, evidence_map.yaml and workflow.yaml.

    They spell out the defaults; existing files are kept."""
    from mpm.governance.starter import StarterError, write_starter_files

    try:
        written = write_starter_files(directory)
    except StarterError as error:
        _line(f"error: {error}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    for path, new in written:
        _line(f"{'wrote' if new else 'kept existing'}: {path}")


# --------------------------------------------------------------------------- list


@app.command("list")
def list_policies(
    directory: Annotated[
        Path | None,
        typer.Argument(help="Policy directory (default: the packaged reference/governance)."),
    ] = None,
) -> None:
    """Show every policy of a directory: framework, stages, approvals, classification, gates."""
    directory = directory or default_policy_dir()
    library = PolicyLibrary.load(directory, strict=False)
    table = Table(title=_text(f"Policies in {directory}"), show_lines=False)
    for column in (
        "framework",
        "title / file",
        "stages",
        "approvals",
        "classification",
        "gates",
        "warnings",
    ):
        table.add_column(column, overflow="fold")
    for loaded in library:
        policy = loaded.policy
        kind = policy.classification.kind if policy.classification else "none"
        table.add_row(
            _text(loaded.framework),
            _text(f"{loaded.title}\n{loaded.source.name}"),
            str(len(policy.stages)),
            str(sum(1 for _ in policy.approvals())),
            _text(kind),
            str(len(policy.gates)),
            str(len(loaded.warnings)),
        )
    _console().print(table)
    if library.approvers.groups:
        _line(
            f"approver groups: {len(library.approvers.groups)} "
            f"({sum(len(g.members) for g in library.approvers.groups.values())} members)"
        )
    for warning in library.warnings:
        _line(f"warning: {warning}")
    for error in library.errors:
        _line(f"error: {error}", err=True)
    if library.errors:
        raise typer.Exit(EXIT_INVALID)


# --------------------------------------------------------------------------- explain


@app.command()
def explain(file: Annotated[Path, typer.Argument(help="One policy file.")]) -> None:
    """Explain one policy: stages, evidence, approvals, classification, metrics, gates."""
    try:
        loaded = load_policy(file)
    except PolicyError as error:
        _line(f"error: {error}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    console = _console()
    policy = loaded.policy
    console.print(
        _text(
            f"{loaded.source.name}  framework: {loaded.framework}  stages: {len(policy.stages)}  "
            f"sequential: {'yes' if policy.enforce_sequential_order else 'no'}",
            style="bold",
        )
    )
    if policy.approvers:
        console.print(_text("policy approvers: " + ", ".join(a.name for a in policy.approvers)))
    console.print(_evidence_table(loaded))
    console.print(_approvals_table(loaded))
    console.print(_classification_table(loaded))
    for table in (
        _visibility_table(loaded),
        _metrics_table(loaded),
        _checks_table(loaded),
        _gates_table(loaded),
    ):
        if table.row_count:
            console.print(table)
    for warning in loaded.warnings:
        _line(f"warning: {warning}")
    _explain_configuration(file)


def _explain_configuration(file: Path) -> None:
    """How the directory around ``file`` decides this framework: configured or default."""
    from mpm.governance.config import check_directory

    check = check_directory(file.resolve().parent)
    if check.loaded is None:
        for error in check.errors:
            _line(f"directory: {error}")
        return
    mine = [lp for lp in check.loaded.library if lp.source.resolve() == file.resolve()]
    for note in check.loaded.notes:
        if note.framework is None or note.framework in {lp.framework for lp in mine}:
            how = "configured" if note.configured else "default"
            _line(f"{how}: {note.topic}: {note.text}")
    _explain_holds(mine, check.loaded.workflow.actions)


def _explain_holds(policies: list[LoadedPolicy], actions: dict[str, str]) -> None:
    """Which plan stage each gate holds in this directory (Domino action -> mpm action ->
    the stage that performs it): what `mpm status` will say is held, known before a run."""
    from mpm.governance.defaults import STAGE_OF_ACTION

    for loaded in policies:
        for gate in loaded.policy.gates:
            for rule in gate.rules:
                bound = actions.get(rule.action)
                stage = STAGE_OF_ACTION.get(bound or "")
                where = (
                    f"holds the {stage} stage ({bound})"
                    if stage
                    else "holds nothing: the action is bound to no step mpm performs"
                )
                _line(
                    f"gate: {gate.name}: {rule.action} {where} until "
                    f"{', '.join(gate.approvals) or 'nothing'} granted"
                )


def _artifact_kind(artifact: object) -> str:
    if isinstance(artifact, InputArtifact):
        return f"input:{artifact.details.type}"
    if isinstance(artifact, MetadataArtifact):
        return f"metadata:{artifact.details.type}"
    if isinstance(artifact, GuidanceArtifact):
        return "guidance"
    if isinstance(artifact, ScriptedCheckArtifact):
        return "policyScriptedCheck"
    if isinstance(artifact, MonitoringCheckArtifact):
        return "policyMonitoringCheck"
    return type(artifact).__name__


def _artifact_text(artifact: object) -> str:
    if isinstance(artifact, InputArtifact):
        text = artifact.details.label
        if artifact.details.options:
            text += " [" + " | ".join(o.value for o in artifact.details.options) + "]"
        if artifact.alias_for_classification:
            text += f"  (alias: {artifact.alias_for_classification})"
        return text
    if isinstance(artifact, GuidanceArtifact):
        first = artifact.details.text.strip().splitlines()[0]
        return first[:120] + ("..." if len(first) > 120 else "")
    if isinstance(artifact, MetadataArtifact) and isinstance(artifact.details, ModelMetricDetails):
        return ", ".join(
            f"{m.name} {m.threshold or '(no threshold)'}" for m in artifact.details.metrics
        )
    if isinstance(artifact, MetadataArtifact) and isinstance(artifact.details, FileDetails):
        return f"file upload: {artifact.details.label}"
    if isinstance(artifact, ScriptedCheckArtifact):
        return artifact.details.label or artifact.details.name or "(unnamed scripted check)"
    if isinstance(artifact, MonitoringCheckArtifact):
        alerts = ", ".join(artifact.details.alert_types) or "no alert types"
        return f"{artifact.details.label or artifact.details.name or 'monitoring'} ({alerts})"
    return ""


def _evidence_table(loaded: LoadedPolicy) -> Table:
    table = Table(title="Stages and evidence", show_lines=True)
    for column in ("stage", "evidence set", "key", "type", "question / content"):
        table.add_column(column, overflow="fold")
    for placed in loaded.policy.evidence_sets():
        es = placed.evidence_set
        where = f"{es.id}\n{es.name or ''}"
        if placed.approval is not None:
            where += f"\n(evidence of approval '{placed.approval.name}')"
        if es.is_reference:
            where += "\n(reused by reference)"
        for index, artifact in enumerate(es.definition or []):
            table.add_row(
                _text(placed.stage.name),
                _text(where if index == 0 else ""),
                _text(es.artifact_key(index)),
                _text(_artifact_kind(artifact)),
                _text(_artifact_text(artifact)),
            )
    for stage in loaded.policy.stages:
        if not stage.evidence_set and not any(a.evidence for a in stage.approvals):
            table.add_row(_text(stage.name), _text("(no evidence)"), "", "", "")
    return table


def _approvals_table(loaded: LoadedPolicy) -> Table:
    table = Table(title="Approvals")
    for column in ("stage", "approval", "approvers", "additional approvers", "evidence"):
        table.add_column(column, overflow="fold")
    for stage, approval in loaded.policy.approvals():
        extra = approval.allow_additional_approvers
        table.add_row(
            _text(stage.name),
            _text(approval.name),
            _text(", ".join(approval.approver_names)),
            "allowed" if extra else ("not allowed" if extra is False else "unspecified"),
            _text(approval.evidence.id if approval.evidence else "-"),
        )
    return table


def _classification_table(loaded: LoadedPolicy) -> Table:
    policy = loaded.policy
    classification = policy.classification
    kind = classification.kind if classification else "none"
    table = Table(title=f"Classification ({kind})")
    table.add_column("rule / alias", overflow="fold")
    table.add_column("set by", overflow="fold")
    if classification is None:
        table.add_row("no classification block", "")
        return table
    rule = (classification.rule or "").strip() or "(empty rule: no classification is computed)"
    table.add_row(
        _text(rule), _text("listed aliases: " + (", ".join(classification.artifacts) or "none"))
    )
    aliases = policy.classification_aliases()
    for alias, placed in aliases.items():
        table.add_row(
            _text(f"alias {alias}"),
            _text(f"{placed.key} ({placed.stage.name}): {placed.artifact.label}"),
        )
    return table


def _visibility_table(loaded: LoadedPolicy) -> Table:
    table = Table(title="Visibility rules")
    for column in ("stage", "evidence set", "shown when"):
        table.add_column(column, overflow="fold")
    for placed in loaded.policy.evidence_sets():
        if placed.evidence_set.visibility_rule:
            table.add_row(
                _text(placed.stage.name),
                _text(placed.evidence_set.id),
                _text(placed.evidence_set.visibility_rule),
            )
    return table


def _metrics_table(loaded: LoadedPolicy) -> Table:
    table = Table(title="Metric checks")
    for column in ("metric", "label", "aliases", "threshold", "evidence key", "stage"):
        table.add_column(column, overflow="fold")
    for placed in loaded.policy.metrics():
        metric = placed.metric
        table.add_row(
            _text(metric.name),
            _text(metric.label or ""),
            _text(", ".join(metric.aliases)),
            _text(str(metric.threshold) if metric.threshold else "(none: shown for review)"),
            _text(placed.artifact_key),
            _text(placed.stage.name),
        )
    return table


def _checks_table(loaded: LoadedPolicy) -> Table:
    table = Table(title="Scripted and monitoring checks")
    for column in ("check", "kind", "command / alerts", "environment", "hardware tier"):
        table.add_column(column, overflow="fold")
    for placed in loaded.policy.scripted_checks():
        details = placed.artifact.details  # type: ignore[union-attr]
        table.add_row(
            _text(details.label or details.name or placed.key),
            "scripted",
            _text(details.command or "(no command)"),
            _text(details.environment or details.environment_id or "-"),
            _text(details.hardware_tier or details.hardware_tier_id or "-"),
        )
    for placed in loaded.policy.monitoring_checks():
        details = placed.artifact.details  # type: ignore[union-attr]
        table.add_row(
            _text(details.label or details.name or placed.key),
            "monitoring",
            _text(", ".join(details.alert_types) or "-"),
            "-",
            "-",
        )
    return table


def _gates_table(loaded: LoadedPolicy) -> Table:
    table = Table(title="Gates")
    for column in ("gate", "actions", "required approvals"):
        table.add_column(column, overflow="fold")
    for gate in loaded.policy.gates:
        actions = "; ".join(rule.action + _parameters_text(rule.parameters) for rule in gate.rules)
        table.add_row(_text(gate.name), _text(actions), _text(", ".join(gate.approvals)))
    return table


def _parameters_text(parameters: dict[str, object]) -> str:
    if not parameters:
        return ""
    parts = []
    for key, value in parameters.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"{key}: {shown}")
    return " (" + "; ".join(parts) + ")"
