"""The executive summary and the pipeline metadata: what a sponsor reads at the end.

Numbers come from the stage results (the same values tracked in MLflow), never from the
model's prose. The Markdown is rendered with Jinja2 autoescaping, so names and comments
written by people cannot inject markup into whatever renders the summary."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from mpm.graph.state import LOWER_IS_BETTER, ProjectRequirements, now_iso

ROI_DEFAULTS = {
    "decisions_per_year": 100_000,
    "value_per_point": 2_000.0,
    "cost": 150_000.0,
    "currency": "USD",
}


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
    return env


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


def roi_estimate(
    req: ProjectRequirements, model_score: float | None, baseline_score: float | None
) -> dict[str, Any] | None:
    """First-year ROI from the improvement over a naive baseline, under stated assumptions."""
    if model_score is None or baseline_score is None:
        return None
    lower = req.target_metric in LOWER_IS_BETTER
    uplift = (baseline_score - model_score) if lower else (model_score - baseline_score)
    a = ROI_DEFAULTS
    # value scales with improvement in points of the metric (0.01 = one point) per 1,000 decisions
    annual = max(uplift, 0.0) * 100 * a["value_per_point"] * a["decisions_per_year"] / 1000
    return {
        "baseline_score": baseline_score,
        "model_score": model_score,
        "uplift": uplift,
        "annual_value": annual,
        "cost": a["cost"],
        "roi": (annual - a["cost"]) / a["cost"],
        "currency": a["currency"],
        "assumptions": [
            f"{a['decisions_per_year']:,} decisions a year are supported by the model",
            f"each point (0.01) of {req.target_metric} improvement over the naive baseline is worth "
            f"{a['currency']} {a['value_per_point']:,.0f} per 1,000 decisions",
            f"one-off build, validation and deployment cost of {a['currency']} {a['cost']:,.0f}",
            "the test-set improvement carries over to production unchanged",
        ],
    }


def render_executive_summary(**context: Any) -> str:
    def fmt(value: Any) -> str:
        return (
            f"{value:.4f}" if isinstance(value, float) else ("—" if value is None else str(value))
        )

    context.setdefault("generated_at", now_iso())
    return _env().get_template("executive_summary.md.j2").render(fmt=fmt, **context)


def plot_stage_durations(rows: list[dict[str, Any]], path: Path) -> Path:
    from mpm.tools.plots import stage_durations

    return stage_durations(path, rows, title="Stage durations")
