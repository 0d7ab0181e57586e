"""Exploratory data analysis on the training split: ``run_eda``.

It reads only the training data (so nothing about validation or test leaks into
modelling choices), writes a Markdown report, a JSON summary and PNG plots, and returns
structured feature-engineering recommendations that ``train_candidates`` applies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mpm.tools import plots
from mpm.tools.data_quality import categorical_summary, column_kinds, numeric_summary
from mpm.tools.datasets import check_target, read_table
from mpm.tools.features import recommend_features
from mpm.tools.inert import code, md
from mpm.tools.metrics import check_model_type

if TYPE_CHECKING:
    import pandas as pd

MAX_HEATMAP_COLUMNS = 20


def run_eda(
    train_path: str,
    target_column: str,
    out_dir: str,
    *,
    model_type: str,
    sensitive_attributes: Sequence[str] = (),
    tracking_uri: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Summary statistics, correlations and target relationships of the training data.

    Writes ``eda_report.md``, ``eda_summary.json`` and ``target_distribution.png``,
    ``correlation_heatmap.png`` (when there are two or more numeric features) and
    ``top_feature_vs_target.png`` to ``out_dir``; logs them under ``eda/`` in the MLflow
    run ``run_id`` when tracking is on. ``sensitive_attributes`` present in the data are
    recommended for dropping from the model inputs (they stay in the data for fairness).

    Returns ``{report_path, summary_path, plots, recommendations, insights, metrics,
    target_correlations, n_samples, n_features}``.
    """
    model_type = check_model_type(model_type)
    df = read_table(Path(train_path))
    check_target(df, target_column, model_type, str(train_path))
    df = df[df[target_column].notna()].reset_index(drop=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    features = [c for c in df.columns if c != target_column]
    numeric, categorical = column_kinds(df, features)
    y = df[target_column]
    target_corr = _target_correlations(df, numeric, y, model_type)
    pairs = _correlated_pairs(df, numeric)
    cat_rel = _categorical_relationships(df, categorical, y, model_type)
    recommendations = recommend_features(
        df, target_column, model_type, sensitive_attributes=sensitive_attributes
    )

    target_summary: dict[str, Any]
    if model_type == "classification":
        counts = y.astype(str).value_counts()
        target_summary = {
            "counts": {k: int(v) for k, v in counts.items()},
            "shares": {k: round(float(v / counts.sum()), 6) for k, v in counts.items()},
        }
    else:
        target_summary = numeric_summary(y)
    summary: dict[str, Any] = {
        "n_samples": len(df),
        "n_features": len(features),
        "target_column": target_column,
        "model_type": model_type,
        "numeric_columns": numeric,
        "categorical_columns": categorical,
        "target": target_summary,
        "numeric_summary": {c: numeric_summary(df[c]) for c in numeric},
        "categorical_summary": {c: categorical_summary(df[c]) for c in categorical},
        "missing_rates": {
            c: round(float(df[c].isna().mean()), 6) for c in features if df[c].isna().any()
        },
        "target_correlations": target_corr,
        "correlated_feature_pairs": pairs,
        "categorical_target_relationships": cat_rel,
        "sensitive_attributes": [c for c in sensitive_attributes if c in df.columns],
    }
    insights = _insights(summary, model_type)
    summary["insights"] = insights
    summary["recommendations"] = recommendations

    plot_paths = _draw(df, out, target_column, model_type, numeric, target_corr)
    report_path = out / "eda_report.md"
    report_path.write_text(_report(summary, plot_paths))
    summary_path = out / "eda_summary.json"
    summary_path.write_text(json.dumps(summary, indent=2, default=str, sort_keys=True))

    metrics = {
        "n_samples": float(len(df)),
        "n_features": float(len(features)),
        "total_insights": float(len(insights)),
        "n_recommendations": float(len(recommendations)),
    }
    if tracking_uri and run_id:
        from mpm.tools import tracking

        c = tracking.client(tracking_uri)
        for p in [report_path, summary_path, *map(Path, plot_paths)]:
            tracking.log_file(c, run_id, p, "eda")
        tracking.log_metrics(c, run_id, {f"eda_{k}": v for k, v in metrics.items()})
    return {
        "report_path": str(report_path),
        "summary_path": str(summary_path),
        "plots": plot_paths,
        "recommendations": recommendations,
        "insights": insights,
        "metrics": metrics,
        "target_correlations": dict(list(target_corr.items())[:10]),
        "n_samples": len(df),
        "n_features": len(features),
    }


# --------------------------------------------------------------------------- analysis


def _target_correlations(
    df: pd.DataFrame, numeric: list[str], y: pd.Series, model_type: str
) -> dict[str, float]:
    """|Pearson r| of each numeric feature with the target (one-vs-rest max for multiclass),
    strongest first."""
    if model_type == "regression":
        targets = [y.astype(float)]
    else:
        classes = sorted(y.astype(str).unique())
        ys = y.astype(str)
        targets = [(ys == c).astype(float) for c in (classes[1:] if len(classes) == 2 else classes)]
    out: dict[str, float] = {}
    for c in numeric:
        x = df[c].astype(float)
        if x.nunique() < 2:
            continue
        best = None
        for t in targets:
            r = x.corr(t)
            if r == r and (best is None or abs(r) > abs(best)):  # r == r: not NaN
                best = float(r)
        if best is not None:
            out[c] = round(best, 6)
    return dict(sorted(out.items(), key=lambda kv: -abs(kv[1])))


def _correlated_pairs(
    df: pd.DataFrame, numeric: list[str], limit: float = 0.9
) -> list[dict[str, Any]]:
    import numpy as np

    if len(numeric) < 2:
        return []
    corr = df[numeric].astype(float).corr().to_numpy()
    pairs = []
    for i in range(len(numeric)):
        for j in range(i + 1, len(numeric)):
            r = corr[i, j]
            if not np.isnan(r) and abs(r) >= limit:
                pairs.append(
                    {"columns": [numeric[i], numeric[j]], "correlation": round(float(r), 4)}
                )
    return sorted(pairs, key=lambda p: -abs(p["correlation"]))[:25]


def _categorical_relationships(
    df: pd.DataFrame, categorical: list[str], y: pd.Series, model_type: str
) -> dict[str, dict[str, Any]]:
    """Per category: the positive rate (binary), majority class (multiclass) or the target
    mean (regression), for categories with at least 1% of rows; plus the spread."""
    out: dict[str, dict[str, Any]] = {}
    classes = sorted(y.astype(str).unique()) if model_type == "classification" else []
    for c in categorical:
        x = df[c].astype("object").fillna("<missing>").astype(str)
        if x.nunique() > 50:
            continue
        if model_type == "regression":
            stat = y.astype(float).groupby(x).mean()
            label = "target_mean"
        elif len(classes) == 2:
            stat = (y.astype(str) == classes[1]).astype(float).groupby(x).mean()
            label = f"rate_{classes[1]}"
        else:
            stat = y.astype(str).groupby(x).agg(lambda s: s.value_counts(normalize=True).iloc[0])
            label = "majority_class_share"
        counts = x.value_counts()
        stat = stat[counts.reindex(stat.index) >= max(1, int(0.01 * len(x)))]
        if stat.empty:
            continue
        out[c] = {
            "statistic": label,
            "values": {
                str(k): round(float(v), 6) for k, v in stat.sort_values(ascending=False).items()
            },
            "spread": round(float(stat.max() - stat.min()), 6),
        }
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["spread"]))


def _insights(summary: dict[str, Any], model_type: str) -> list[str]:
    out: list[str] = []
    corr = summary["target_correlations"]
    if corr:
        top = list(corr.items())[:3]
        out.append(
            "Strongest numeric signals: " + ", ".join(f"{c} (r={r:+.2f})" for c, r in top) + "."
        )
    cat = summary["categorical_target_relationships"]
    if cat:
        name, rel = next(iter(cat.items()))
        out.append(
            f"Categorical feature with the largest target spread: {name} ({rel['statistic']} spread {rel['spread']:.3f})."
        )
    if model_type == "classification":
        shares = summary["target"]["shares"]
        minority = min(shares.items(), key=lambda kv: kv[1])
        if minority[1] < 0.6 / len(shares):
            out.append(
                f"Class imbalance: class {minority[0]} is {minority[1]:.1%} of training rows; prefer roc_auc / balanced metrics."
            )
    missing = summary["missing_rates"]
    if missing:
        worst = max(missing.items(), key=lambda kv: kv[1])
        out.append(
            f"{len(missing)} feature(s) have missing values; worst is {worst[0]} ({worst[1]:.1%})."
        )
    for pair in summary["correlated_feature_pairs"][:3]:
        a, b = pair["columns"]
        out.append(
            f"{a} and {b} are highly correlated (r={pair['correlation']:+.2f}); expect redundancy."
        )
    skewed = [
        (c, s["skew"])
        for c, s in summary["numeric_summary"].items()
        if s.get("skew") and s["skew"] > 2 and (s.get("min") or 0) >= 0
    ]
    if skewed:
        shown = ", ".join(f"{c} (skew {k:.1f})" for c, k in sorted(skewed, key=lambda x: -x[1])[:3])
        more = f" and {len(skewed) - 3} more" if len(skewed) > 3 else ""
        out.append(f"Strongly right-skewed: {shown}{more}.")
    return out


# --------------------------------------------------------------------------- output


def _draw(
    df: pd.DataFrame,
    out: Path,
    target: str,
    model_type: str,
    numeric: list[str],
    target_corr: dict[str, float],
) -> list[str]:
    y = df[target]
    paths: list[str] = []
    if model_type == "classification":
        counts = y.astype(str).value_counts().sort_index()
        paths.append(
            plots.bar(
                out / "target_distribution.png",
                list(counts.index),
                list(counts.values),
                title=f"{target}: class counts",
                ylabel="rows",
            )
        )
    else:
        paths.append(
            plots.histogram(
                out / "target_distribution.png",
                y.astype(float),
                title=f"{target}: distribution",
                xlabel=target,
            )
        )
    ranked = list(target_corr)[:MAX_HEATMAP_COLUMNS] or numeric[:MAX_HEATMAP_COLUMNS]
    if len(ranked) >= 2:
        matrix = df[ranked].astype(float).corr().fillna(0.0).to_numpy()
        paths.append(
            plots.heatmap(
                out / "correlation_heatmap.png",
                matrix,
                ranked,
                title="Feature correlations (top by target signal)",
            )
        )
    if target_corr:
        top = next(iter(target_corr))
        if model_type == "classification":
            groups = {
                str(k): g[top].dropna().astype(float).to_numpy()
                for k, g in df.groupby(y.astype(str))
            }
            paths.append(
                plots.feature_by_class(
                    out / "top_feature_vs_target.png",
                    groups,
                    feature=top,
                    title=f"{top} by {target}",
                )
            )
        else:
            sample = df[[top, target]].dropna().sample(n=min(len(df), 3000), random_state=0)
            paths.append(
                plots.scatter(
                    out / "top_feature_vs_target.png",
                    sample[top],
                    sample[target],
                    title=f"{top} vs {target}",
                    xlabel=top,
                    ylabel=target,
                )
            )
    return paths


def _cell(value: Any) -> str:
    """A Markdown table cell: numbers to 4 significant digits, text from the data (column
    names, category values) inert: no HTML, links, emphasis, pipes, line breaks or
    control characters (``tools/inert.py``)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return md(value)


def _report(summary: dict[str, Any], plot_paths: list[str]) -> str:
    lines = [
        "# Exploratory data analysis",
        "",
        f"Training rows: {summary['n_samples']}; features: {summary['n_features']} "
        f"({len(summary['numeric_columns'])} numeric, {len(summary['categorical_columns'])} categorical); "
        f"target: `{code(summary['target_column'])}` ({_cell(summary['model_type'])}).",
        "",
        "## Insights",
        "",
        *[f"- {_cell(i)}" for i in summary["insights"] or ["No notable findings."]],
        "",
        "## Target",
        "",
    ]
    if summary["model_type"] == "classification":
        lines += ["| class | rows | share |", "|---|---:|---:|"]
        lines += [
            f"| {_cell(k)} | {v} | {summary['target']['shares'][k]:.1%} |"
            for k, v in summary["target"]["counts"].items()
        ]
    else:
        t = summary["target"]
        lines.append(
            ", ".join(f"{k} {_cell(t.get(k))}" for k in ("mean", "std", "min", "median", "max"))
        )
    lines += [
        "",
        "## Numeric features",
        "",
        "| feature | mean | std | min | median | max | missing | r with target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, s in summary["numeric_summary"].items():
        stats = " | ".join(_cell(s.get(k)) for k in ("mean", "std", "min", "median", "max"))
        lines.append(
            f"| {_cell(c)} | {stats} | {summary['missing_rates'].get(c, 0.0):.1%} | "
            f"{_cell(summary['target_correlations'].get(c))} |"
        )
    if summary["categorical_summary"]:
        lines += [
            "",
            "## Categorical features",
            "",
            "| feature | distinct | most common | missing |",
            "|---|---:|---|---:|",
        ]
        for c, s in summary["categorical_summary"].items():
            top = ", ".join(f"{_cell(k)} ({v})" for k, v in list(s["top"].items())[:3])
            lines.append(
                f"| {_cell(c)} | {s['n_unique']} | {top} | {summary['missing_rates'].get(c, 0.0):.1%} |"
            )
    lines += ["", "## Recommendations", ""]
    for r in summary["recommendations"]:
        lines.append(
            f"- **{_cell(r['action'])}** {_cell(', '.join(map(str, r['columns'])))}: {_cell(r['reason'])}"
        )
    lines += ["", "## Plots", ""]
    lines += [f"![{_cell(Path(p).stem)}]({quote(Path(p).name)})" for p in plot_paths]
    return "\n".join(lines) + "\n"
