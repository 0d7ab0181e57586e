"""The executive summary and the pipeline metadata: what a sponsor reads at the end.

Numbers come from the stage results (the same values tracked in MLflow), never from the
model's prose. The Markdown is rendered with Jinja2 autoescaping, so names and comments
written by people cannot inject markup into whatever renders the summary."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from mpm.graph.state import ProjectRequirements, now_iso


@lru_cache(maxsize=1)
def _env() -> Any:
    """One environment per process: it keeps its compiled templates (compiling the
    executive summary's template cost more than rendering it)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("mpm.graph", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=False,
    )
    env.filters["md"] = markdown_text
    env.filters["threshold"] = threshold_text
    return env


_NUM = r"[-+]?(?:\d|\.\d)[0-9.eE+-]*"
_THRESHOLD = re.compile(rf"^[<>=!≤≥ ]*{_NUM}(?:\s*(?:and|to|-|,)\s*{_NUM})?$")


def threshold_text(value: Any) -> Any:
    """A threshold as written (``>= 0.75``): shown as is when it is only a comparison and
    numbers, else escaped like any other text (a policy file is input too)."""
    from markupsafe import Markup

    text = str(value)
    return Markup(text) if _THRESHOLD.match(text.strip()) else markdown_text(text)


_MARKDOWN = re.compile(r"([\\`\[\]()!|])")


def markdown_text(value: Any) -> str:
    """Text from people, as inert Markdown: one line, control characters visible, and
    the characters that make links, images, code or table cells backslash-escaped (HTML
    is escaped by autoescape), so a name like ``[click](javascript:...)`` stays text."""
    from mpm.graph.safe_text import visible_controls

    one_line = " ".join(visible_controls(str(value)).splitlines())
    return _MARKDOWN.sub(r"\\\1", one_line)


def artifact_bytes(result: dict[str, Any]) -> int:
    total = 0
    for a in result.get("artifacts") or []:
        path = a.get("path")
        if path and Path(path).is_file():
            total += Path(path).stat().st_size
    return total


def stage_rows(plan_names: list[str], results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name in plan_names:
        r = results.get(name)
        if r is None:
            rows.append(
                {
                    "name": name,
                    "status": "not run",
                    "duration_s": 0.0,
                    "cpu_s": 0.0,
                    "attempts": 0,
                    "artifact_bytes": 0,
                }
            )
            continue
        rows.append(
            {
                "name": name,
                "status": r.get("status"),
                "duration_s": float(r.get("duration_s") or 0.0),
                "cpu_s": float(r.get("cpu_s") or 0.0),
                "attempts": r.get("attempts", 1),
                "artifact_bytes": artifact_bytes(r),
                "mlflow_run_id": r.get("mlflow_run_id"),
                "metrics": r.get("metrics") or {},
                "error": r.get("error"),
            }
        )
    return rows


NO_ASSUMPTIONS = "not estimated: no business assumptions given"


def roi_estimate(
    req: ProjectRequirements, model_accuracy: float | None, baseline_accuracy: float | None
) -> dict[str, Any]:
    """First-year value and ROI of the model's decisions over the naive baseline's, from the
    requester's ``business_assumptions`` and the tracked test accuracies; nothing else.

    Every decision is either correct (worth ``value_per_correct_decision``) or an error
    (costing ``cost_per_error``), so each point of accuracy gained over the naive baseline
    (majority class) is worth ``decisions_per_year * (value + cost)``:

    * incremental annual value = N * (acc_model - acc_baseline) * (value + cost)
    * first-year cost = running_cost_per_year + one_off_cost
    * net first-year value = incremental annual value - first-year cost
    * ROI (first year) = net first-year value / first-year cost

    Returns ``{"estimated": False, "reason": ...}`` when any input is missing: the summary
    says so instead of showing a figure nobody stated or measured."""
    a = req.business_assumptions
    if a is None:
        return {"estimated": False, "reason": NO_ASSUMPTIONS}
    if req.model_type.value != "classification":
        return {
            "estimated": False,
            "reason": "not estimated: the business assumptions price correct and wrong "
            "decisions, which a regression model does not make",
        }
    if model_accuracy is None or baseline_accuracy is None:
        return {
            "estimated": False,
            "reason": "not estimated: the run produced no tracked test accuracy for the model "
            "and the naive baseline",
        }
    uplift = model_accuracy - baseline_accuracy
    incremental = a.decisions_per_year * uplift * (a.value_per_correct_decision + a.cost_per_error)
    cost = a.running_cost_per_year + a.one_off_cost
    net = incremental - cost
    return {
        "estimated": True,
        "currency": a.currency,
        "model_accuracy": model_accuracy,
        "baseline_accuracy": baseline_accuracy,
        "accuracy_uplift": uplift,
        "incremental_annual_value": incremental,
        "first_year_cost": cost,
        "net_first_year_value": net,
        "roi_first_year": net / cost if cost > 0 else None,
        "assumptions": a.model_dump(mode="json"),
    }


def roi_metrics(roi: dict[str, Any]) -> dict[str, float]:
    """The ROI figures as MLflow metrics for the parent run: a figure the summary shows is
    a figure the run tracked."""
    if not roi.get("estimated"):
        return {}
    keys = (
        "baseline_accuracy",
        "accuracy_uplift",
        "incremental_annual_value",
        "first_year_cost",
        "net_first_year_value",
        "roi_first_year",
    )
    return {
        k if k.startswith("roi_") else f"roi_{k}": float(roi[k])
        for k in keys
        if roi.get(k) is not None
    }


def render_executive_summary(**context: Any) -> str:
    def fmt(value: Any) -> str:
        return (
            f"{value:.4f}" if isinstance(value, float) else ("—" if value is None else str(value))
        )

    context.setdefault("generated_at", now_iso())
    context.setdefault("fairness", {})
    context.setdefault("fairness_limits", [])
    context.setdefault("deployment", None)
    return _env().get_template("executive_summary.md.j2").render(fmt=fmt, **context)


def plot_stage_durations(rows: list[dict[str, Any]], path: Path) -> Path:
    from mpm.tools.plots import stage_durations

    return stage_durations(path, rows, title="Stage durations")
