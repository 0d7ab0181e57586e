"""Model documentation: ``model_documentation.md`` and its HTML rendering.

The structure is what a model validator expects under SR 11-7 and in a model card:
purpose and intended use, data, methodology, performance against each success criterion
(with bootstrap confidence intervals on the test set), calibration, robustness, fairness,
explainability, limitations, monitoring plan, governance and reproducibility.

Every figure is read from something the run tracked (the stage results logged to MLflow,
the validation report, the governance report, the bootstrap intervals synthesize logs to
the validation run) or from the requirements; where a value is not there the document
says "not known" instead of filling it in. Text that came from people (names, comments,
objectives, column names) is made inert in both renderings: Markdown-escaped in the ``.md``
(``graph/reports.markdown_text`` + autoescape) and HTML-escaped in the ``.html``.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from mpm.graph.state import ProjectRequirements

NOT_KNOWN = "not known"
ENV_PACKAGES = ("scikit-learn", "pandas", "numpy", "scipy", "mlflow", "langgraph", "fairlearn")


def _read_json(path: Any) -> dict[str, Any]:
    if not path or not Path(str(path)).is_file():
        return {}
    try:
        data = json.loads(Path(str(path)).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _outputs(results: Mapping[str, Any], stage: str) -> dict[str, Any]:
    return (results.get(stage) or {}).get("outputs") or {}


def environment() -> dict[str, str]:
    """Python, platform and the versions of the packages the model was built with."""
    from importlib.metadata import PackageNotFoundError, version

    env = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for name in (*ENV_PACKAGES, "mpm"):
        try:
            env[name] = version(name)
        except PackageNotFoundError:
            continue
    return env


def file_sha256(path: Any) -> str | None:
    if not path or not Path(str(path)).is_file():
        return None
    digest = hashlib.sha256()
    with Path(str(path)).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_fingerprints(results: Mapping[str, Any]) -> dict[str, str]:
    """SHA-256 of each split file the model was trained, tuned and tested on."""
    data = _outputs(results, "data_acquisition")
    found = {}
    for split in ("train", "val", "test"):
        digest = file_sha256(data.get(f"{split}_path"))
        if digest:
            found[split] = digest
    return found


def bootstrap_metric_names(req: ProjectRequirements, criteria: list[dict[str, Any]]) -> list[str]:
    """The metrics to put intervals on: the target metric and every criterion metric that
    is a test-set metric the bootstrap can recompute."""
    from mpm.graph.state import CLASSIFICATION_METRICS, REGRESSION_METRICS

    known = (
        CLASSIFICATION_METRICS if req.model_type.value == "classification" else REGRESSION_METRICS
    )
    names = [req.target_metric]
    for row in criteria:
        metric = str(row.get("metric") or "").removeprefix("test ").removeprefix("test_")
        if metric in known:
            names.append(metric)
    return list(dict.fromkeys(names))


def ci_metric_names(metric: str) -> tuple[str, str]:
    """MLflow metric names of an interval's bounds on the validation run."""
    return f"test_{metric}_ci_low", f"test_{metric}_ci_high"


def _criterion_metric(row: Mapping[str, Any]) -> str:
    return str(row.get("metric") or "").removeprefix("test ").removeprefix("test_")


def performance_rows(
    criteria: list[dict[str, Any]], intervals: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Each criterion with its bootstrap interval when the interval's point estimate is the
    tracked score (else the interval is not shown: it would be for a different number)."""
    rows = []
    for row in criteria:
        ci = intervals.get(_criterion_metric(row))
        shown = dict(row)
        value = row.get("value")
        if (
            isinstance(ci, Mapping)
            and isinstance(value, int | float)
            and ci.get("low") is not None
            and abs(float(ci["estimate"]) - float(value)) <= 1e-9
        ):
            shown["ci"] = {"low": ci["low"], "high": ci["high"]}
        else:
            shown["ci"] = None
        rows.append(shown)
    return rows


def fairness_limits(report: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Policy checks on fairness metrics (parity, equalised odds, gaps), with their limits."""
    if not report:
        return []
    words = ("parity", "odds", "fairness", "gap", "disparity")
    rows = []
    for framework, evaluation in (report.get("compliance_status") or {}).items():
        for check in evaluation.get("checks") or []:
            key = str(check.get("key") or "").casefold()
            if check.get("kind") == "metric" and any(w in key for w in words):
                rows.append(
                    {
                        "framework": (report.get("titles") or {}).get(framework, framework),
                        "label": check.get("label"),
                        "threshold": check.get("threshold") or "no limit (shown for review)",
                        "value": check.get("value")
                        if isinstance(check.get("value"), int | float)
                        else None,
                        "outcome": check.get("outcome"),
                    }
                )
    return rows


def documentation_context(
    *,
    state: Mapping[str, Any],
    req: ProjectRequirements,
    thread_id: str,
    governance_report: Mapping[str, Any] | None,
    criteria: list[dict[str, Any]],
    decisions: list[dict[str, Any]],
    bootstrap: Mapping[str, Any] | None,
    env: Mapping[str, str],
    fingerprints: Mapping[str, str],
    rerun_command: str,
    registered: Mapping[str, Any] | None,
    pipeline_status: str,
    generated_at: str,
) -> dict[str, Any]:
    """Everything the two templates show, gathered once (both render the same facts)."""
    results = state.get("results") or {}
    data = _outputs(results, "data_acquisition")
    dev = _outputs(results, "model_development")
    val = _outputs(results, "model_validation")
    report = _read_json(val.get("validation_report_path"))
    importance = _read_json(dev.get("feature_importance_path"))
    quality = _read_json(data.get("quality_report_path"))
    data_metrics = (results.get("data_acquisition") or {}).get("metrics") or {}
    intervals = (bootstrap or {}).get("intervals") or {}
    lineage = ((results.get("data_acquisition") or {}).get("evidence") or {}).get("data_lineage")
    fairness = report.get("fairness") or val.get("fairness") or {}
    findings = list(report.get("findings") or val.get("findings") or [])
    governance = governance_report or {}
    return {
        "req": req,
        "thread_id": thread_id,
        "generated_at": generated_at,
        "pipeline_status": pipeline_status,
        "positive_class": next(
            (
                v
                for v in (
                    report.get("positive_class"),
                    val.get("positive_class"),
                    req.positive_class,
                    (bootstrap or {}).get("positive_class"),
                )
                if v is not None  # label 0 is a positive class too
            ),
            None,
        ),
        "data": {
            "sources": req.data_sources,
            "lineage": lineage,
            "target_column": data.get("target_column") or req.target_column,
            "feature_columns": data.get("feature_columns") or [],
            "excluded_columns": data.get("excluded_columns") or [],
            "remediations": data.get("remediations") or [],
            "rows_acquired": data_metrics.get("n_rows"),
            "splits": {
                k: v for k, v in data_metrics.items() if k.endswith("_rows") and k != "n_rows"
            },
            "split_info": data.get("split_info") or {},
            "quality_checks": quality.get("checks") or data.get("quality_checks") or {},
            "failed_gates": data.get("failed_quality_gates") or [],
            "quality_score": data_metrics.get("data_quality_score"),
            "missing_rate": data_metrics.get("missing_rate"),
        },
        "method": {
            "candidates": dev.get("candidates") or [],
            "best_model": dev.get("best_model_name"),
            "best_score": dev.get("best_model_score"),
            "decision_threshold": dev.get("decision_threshold"),
            "threshold_tuning": dev.get("threshold_tuning"),
            "feature_columns": dev.get("feature_columns") or [],
            # the remediation loop's attempts (state key, else model development's outputs)
            "remediation_attempts": state.get("remediation_attempts")
            or dev.get("remediation_attempts")
            or [],
        },
        "performance": performance_rows(criteria, intervals),
        "bootstrap": bootstrap or {},
        "test_metrics": report.get("test_metrics") or {},
        "n_test_rows": report.get("n_test_rows"),
        "calibration": report.get("calibration") or {},
        "brier": (report.get("test_metrics") or {}).get("brier"),
        "robustness": report.get("robustness") or {},
        "fairness": fairness,
        "fairness_limits": fairness_limits(governance),
        "importance": importance,
        "findings": findings,
        "blocking": val.get("blocking_findings") or report.get("blocking_findings") or [],
        "verdict": val.get("verdict") or report.get("verdict"),
        "risks": _outputs(results, "business_analysis").get("risks") or [],
        "governance": {
            "status": governance.get("overall_status"),
            "reason": governance.get("overall_reason"),
            "frameworks": [
                {
                    "title": (governance.get("titles") or {}).get(f, f),
                    "status": (governance.get("compliance_status") or {}).get(f, {}).get("status"),
                    "score": (governance.get("compliance_status") or {})
                    .get(f, {})
                    .get("compliance_score"),
                }
                for f in governance.get("frameworks") or []
            ],
            "findings": governance.get("findings") or [],
            "decisions": decisions,
            "audit_head": state.get("audit_head") or {},
        },
        "registered": registered or {},
        "reproducibility": {
            "environment": dict(env),
            "fingerprints": dict(fingerprints),
            "seed": req.seed,
            "command": rerun_command,
            "mlflow": {k: v for k, v in (state.get("mlflow") or {}).items() if k != "tracking_uri"},
        },
        "not_known": NOT_KNOWN,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return NOT_KNOWN
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        # counts arrive as floats from metric frames: 150.0 reads as 150
        return str(int(value)) if value.is_integer() and abs(value) >= 2 else f"{value:.4f}"
    return str(value)


@lru_cache(maxsize=1)
def _md_env() -> Any:
    from mpm.graph.reports import _env

    return _env()


@lru_cache(maxsize=1)
def _html_env() -> Any:
    from jinja2 import Environment, PackageLoader

    from mpm.tools.inert import visible_controls

    env = Environment(
        loader=PackageLoader("mpm.graph", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=lambda v: visible_controls(v) if isinstance(v, str) else v,
    )
    return env


def render_markdown(context: Mapping[str, Any]) -> str:
    return _md_env().get_template("model_documentation.md.j2").render(fmt=_fmt, **context)


def render_html(context: Mapping[str, Any]) -> str:
    return _html_env().get_template("model_documentation.html.j2").render(fmt=_fmt, **context)


# --------------------------------------------------------------------------- building


def governance_tables(
    governance_view: Mapping[str, Any] | None,
    requirements: Mapping[str, Any],
    results: Mapping[str, Any],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], list[dict[str, Any]]]:
    """(full governance report JSON, criteria rows, decision rows) from the report the last
    governance evaluation wrote; without one (governance in ERROR or not run) the project's
    own criterion is recomputed from the validation result and no decision is listed."""
    from mpm.governance.assessment import GovernanceReport
    from mpm.governance.dashboard import approval_rows, criteria_rows, success_criterion_row
    from mpm.governance.fail_closed import success_criterion

    path = ((governance_view or {}).get("files") or {}).get("results")
    data = _read_json(path)
    if data.get("overall_status") and data.get("approval_workflow") is not None:
        try:
            report = GovernanceReport.model_validate(data)
        except ValueError:
            report = None
        if report is not None:
            return data, criteria_rows(report), approval_rows(report)
    rows = []
    criterion = success_criterion(requirements, results)
    if criterion is not None:
        run_id = (results.get("model_validation") or {}).get("mlflow_run_id")
        rows.append({**success_criterion_row(criterion, "model_validation", run_id), "link": None})
    return None, rows, []


def test_intervals(
    req: ProjectRequirements, results: Mapping[str, Any], criteria: list[dict[str, Any]]
) -> tuple[dict[str, Any] | None, str | None]:
    """(bootstrap result, None) or (None, why the intervals are not known)."""
    from mpm.tools.bootstrap import bootstrap_intervals

    data = _outputs(results, "data_acquisition")
    dev = _outputs(results, "model_development")
    val = _outputs(results, "model_validation")
    if req.model_type.value not in ("classification", "regression"):
        return None, "no tabular test set"
    if val.get("test_score") is None or not dev.get("model_path") or not data.get("test_path"):
        return None, "the run has no validated model and test split"
    report = _read_json(val.get("validation_report_path"))
    try:
        return (
            bootstrap_intervals(
                dev["model_path"],
                data["test_path"],
                data["target_column"],
                model_type=req.model_type.value,
                metrics=bootstrap_metric_names(req, criteria),
                decision_threshold=val.get("decision_threshold"),
                # the label validation used (0 for breast_cancer's malignant: not falsy)
                positive_class=report["positive_class"]
                if report.get("positive_class") is not None
                else req.positive_class,
                seed=req.seed,
            ),
            None,
        )
    except Exception as exc:  # noqa: BLE001 - a missing interval is "not known", not a crash
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def interval_metrics(bootstrap: Mapping[str, Any] | None) -> dict[str, float]:
    """The interval bounds as metrics for the validation run."""
    out: dict[str, float] = {}
    for metric, ci in ((bootstrap or {}).get("intervals") or {}).items():
        if ci.get("low") is not None:
            low, high = ci_metric_names(metric)
            out[low], out[high] = float(ci["low"]), float(ci["high"])
    return out


def rerun_command(settings: Mapping[str, Any], workspace: Path, requirements_file: Path) -> str:
    """The exact ``mpm kickoff`` that starts the same project again in the same setting."""
    import shlex

    parts = [
        "mpm",
        "kickoff",
        "--requirements",
        str(requirements_file),
        "--workspace",
        str(workspace),
        "--model",
        str(settings.get("model") or "stub"),
        "--toolset",
        str(settings.get("toolset") or "real"),
    ]
    if settings.get("policies"):
        parts += ["--policies", str(settings["policies"])]
    if settings.get("tracking") is False:
        parts.append("--no-tracking")
    return shlex.join(parts)
