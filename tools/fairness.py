"""Group fairness of a model's test-set predictions, computed with fairlearn, and the
inputs that may stand in for a sensitive attribute (``proxy_findings``).

Classification: demographic parity difference and ratio, equalized odds difference and
per-group selection rate, accuracy, TPR, FPR and count, all for the positive class
(``pos_label``, see ``tools/positive_class.py``). ``compare_limits`` puts the parity and
equalised-odds differences next to the limits the applicable policies state (else the
documented ``DEFAULT_LIMITS``). Regression: per-group error metrics and
the largest gap between groups. Groups smaller than ``min_group_size`` are reported but
left out of the gap figures: a handful of rows says nothing about a model's fairness and
would otherwise dominate the maximum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mpm.tools.metrics import positive_label

if TYPE_CHECKING:
    import pandas as pd

MIN_GROUP_SIZE = 20
DEFAULT_LIMITS: dict[str, float] = {
    "demographic_parity_difference": 0.1,
    "equalized_odds_difference": 0.1,
}
"""Upper limits used where no applicable policy states one (the shipped ethical AI
policy states the same 0.1 for both)."""
PROXY_ASSOCIATION = 0.5
"""Cramer's V between a model input and a sensitive attribute at or above which the
input is reported as a possible proxy (numeric inputs binned into quintiles)."""
PROXY_SAMPLE_ROWS = 20_000
_PROXY_BINS = 5
MAX_GROUPS = 30
_BIN_NUMERIC_ABOVE = 10  # a numeric attribute with more distinct values is cut into quartiles


def group_labels(values: pd.Series) -> pd.Series:
    """Group label per row as text: categories as they are, missing as ``<missing>``,
    many-valued numbers (e.g. age) as quartile ranges."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values) and values.nunique() > _BIN_NUMERIC_ABOVE:
        binned = pd.qcut(values, q=4, duplicates="drop")
        return binned.astype("object").where(binned.notna(), "<missing>").astype(str)
    return values.astype("object").where(values.notna(), "<missing>").astype(str)


def fairness_report(
    y_true: Any,
    y_pred: Any,
    sensitive: pd.DataFrame,
    *,
    model_type: str,
    classes: Sequence[Any] = (),
    min_group_size: int = MIN_GROUP_SIZE,
    pos_label: Any = None,
) -> dict[str, Any]:
    """Per attribute (column of ``sensitive``) the fairness figures, plus the worst case
    over all attributes in ``metrics``."""
    import numpy as np

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    attributes: dict[str, Any] = {}
    for col in sensitive.columns:
        groups = group_labels(sensitive[col].reset_index(drop=True))
        counts = groups.value_counts()
        if len(counts) > MAX_GROUPS:
            attributes[col] = {
                "skipped": f"{len(counts)} groups (> {MAX_GROUPS}); not a group attribute"
            }
            continue
        keep_groups = counts[counts >= min_group_size].index
        mask = groups.isin(keep_groups).to_numpy()
        entry: dict[str, Any] = {
            "group_counts": {str(k): int(v) for k, v in counts.items()},
            "excluded_groups": sorted(str(g) for g in counts.index if g not in set(keep_groups)),
            "min_group_size": min_group_size,
        }
        if len(keep_groups) < 2:
            entry["note"] = (
                f"fewer than two groups with at least {min_group_size} rows; no gap computed"
            )
            attributes[col] = entry
            continue
        yt, yp, g = y_true[mask], y_pred[mask], groups[mask].to_numpy()
        if model_type == "classification":
            entry.update(_classification(yt, yp, g, list(classes), pos_label))
        else:
            entry.update(_regression(yt, yp, g))
        attributes[col] = entry
    return {"attributes": attributes, "metrics": _worst(attributes, model_type)}


def _classification(
    y_true: Any, y_pred: Any, groups: Any, classes: list[Any], pos_label: Any = None
) -> dict[str, Any]:
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    targets = [positive_label(classes, pos_label)] if len(classes) == 2 else list(classes)
    dpd, dpr, eod = 0.0, 1.0, 0.0
    per_group: dict[str, dict[str, Any]] = {}
    for cls in targets:
        t = (y_true == cls).astype(int)
        p = (y_pred == cls).astype(int)
        dpd = max(dpd, float(demographic_parity_difference(t, p, sensitive_features=groups)))
        ratio = _num(demographic_parity_ratio(t, p, sensitive_features=groups))
        dpr = dpr if ratio is None else min(dpr, ratio)
        if t.min() != t.max():
            eod = max(eod, float(equalized_odds_difference(t, p, sensitive_features=groups)))
        frame = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "true_positive_rate": true_positive_rate,
                "false_positive_rate": false_positive_rate,
            },
            y_true=t,
            y_pred=p,
            sensitive_features=groups,
        )
        suffix = "" if len(targets) == 1 else f"_{cls}"
        for group, row in frame.by_group.iterrows():
            slot = per_group.setdefault(str(group), {})
            for name, value in row.items():
                slot[f"{name}{suffix}"] = _num(value)
    overall = MetricFrame(
        metrics={"accuracy": accuracy_score, "count": count},
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=groups,
    )
    for group, row in overall.by_group.iterrows():
        per_group.setdefault(str(group), {}).update({k: _num(v) for k, v in row.items()})
    return {
        "demographic_parity_difference": dpd,
        "demographic_parity_ratio": dpr,
        "equalized_odds_difference": eod,
        "accuracy_gap": float(overall.difference(method="between_groups")["accuracy"]),
        "per_group": per_group,
        "positive_label": str(targets[0]) if len(targets) == 1 else None,
    }


def _regression(y_true: Any, y_pred: Any, groups: Any) -> dict[str, Any]:
    import numpy as np
    from fairlearn.metrics import MetricFrame, count
    from sklearn.metrics import mean_absolute_error, root_mean_squared_error

    def mean_prediction(_: Any, p: Any) -> float:
        return float(np.mean(p))

    frame = MetricFrame(
        metrics={
            "rmse": root_mean_squared_error,
            "mae": mean_absolute_error,
            "mean_prediction": mean_prediction,
            "count": count,
        },
        y_true=y_true.astype(float),
        y_pred=y_pred.astype(float),
        sensitive_features=groups,
    )
    gaps = frame.difference(method="between_groups")
    return {
        "rmse_gap": float(gaps["rmse"]),
        "mae_gap": float(gaps["mae"]),
        "mean_prediction_gap": float(gaps["mean_prediction"]),
        "per_group": {
            str(g): {k: _num(v) for k, v in row.items()} for g, row in frame.by_group.iterrows()
        },
    }


def _worst(attributes: dict[str, Any], model_type: str) -> dict[str, float]:
    scored = [a for a in attributes.values() if "per_group" in a]
    if not scored:
        return {}
    if model_type == "classification":
        return {
            "demographic_parity_difference": max(
                a["demographic_parity_difference"] for a in scored
            ),
            "demographic_parity_ratio": min(a["demographic_parity_ratio"] for a in scored),
            "equalized_odds_difference": max(a["equalized_odds_difference"] for a in scored),
            "fairness_accuracy_gap": max(a["accuracy_gap"] for a in scored),
        }
    return {
        "fairness_rmse_gap": max(a["rmse_gap"] for a in scored),
        "fairness_mae_gap": max(a["mae_gap"] for a in scored),
        "fairness_mean_prediction_gap": max(a["mean_prediction_gap"] for a in scored),
    }


def _num(v: Any) -> float | None:
    v = float(v)
    return None if v != v else v


# --------------------------------------------------------------------------- limits


def compare_limits(
    metrics: dict[str, float], policy_limits: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """``{metric: {value, limit, operator, source, within_limit}}`` for the demographic
    parity and equalised-odds differences: the limit an applicable policy states
    (``policy_limits``: ``{metric: {value, operator, source}}``), else ``DEFAULT_LIMITS``."""
    import operator as op

    ops = {"<=": op.le, "<": op.lt, ">=": op.ge, ">": op.gt, "==": op.eq}
    out: dict[str, dict[str, Any]] = {}
    for name, default in DEFAULT_LIMITS.items():
        if name not in metrics:
            continue
        stated = (policy_limits or {}).get(name)
        if stated and stated.get("operator") in ops and stated.get("value") is not None:
            limit, operator = float(stated["value"]), str(stated["operator"])
            source = str(stated.get("source") or "policy")
        else:
            limit, operator, source = default, "<=", "mpm default (no applicable policy states one)"
        value = float(metrics[name])
        out[name] = {
            "value": value,
            "limit": limit,
            "operator": operator,
            "source": source,
            "within_limit": bool(ops[operator](value, limit)),
        }
    return out


def flat_metrics(fairness: dict[str, Any]) -> dict[str, float]:
    """Per-attribute and per-group figures as MLflow metric names:
    ``fairness_<attr>_<metric>`` and ``fairness_<attr>_<group>_<rate>``."""
    out: dict[str, float] = {}
    for attr, entry in (fairness.get("attributes") or {}).items():
        a = metric_key(attr)
        for name in (
            "demographic_parity_difference",
            "equalized_odds_difference",
            "rmse_gap",
            "mae_gap",
        ):
            if entry.get(name) is not None:
                out[f"fairness_{a}_{name}"] = float(entry[name])
        for group, row in (entry.get("per_group") or {}).items():
            g = metric_key(group)
            for rate, value in row.items():
                if value is not None:
                    out[f"fairness_{a}_{g}_{rate}"] = float(value)
    for name, entry in (fairness.get("limits") or {}).items():
        out[f"{name}_limit"] = entry["limit"]
    return out


def metric_key(label: Any) -> str:
    """A label as an MLflow-safe metric name part."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(label))[:60]


# --------------------------------------------------------------------------- proxies


def _binned(values: pd.Series) -> pd.Series:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values) and values.nunique() > _PROXY_BINS * 2:
        binned = pd.qcut(values.rank(method="first"), q=_PROXY_BINS, duplicates="drop")
        return binned.astype("object").where(values.notna(), "<missing>").astype(str)
    return values.astype("object").where(values.notna(), "<missing>").astype(str)


def cramers_v(a: pd.Series, b: pd.Series) -> float:
    """Cramer's V of two categorical series (scipy's ``association``); 0 when either has a
    single value."""
    import pandas as pd
    from scipy.stats.contingency import association

    table = pd.crosstab(a, b)
    if min(table.shape) < 2:
        return 0.0
    return float(association(table.to_numpy(), method="cramer"))


def proxy_findings(
    df: pd.DataFrame,
    features: Sequence[str],
    sensitive_attributes: Sequence[str],
    *,
    threshold: float = PROXY_ASSOCIATION,
    seed: int = 42,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(findings, associations): every model input whose Cramer's V with a sensitive
    attribute is at least ``threshold`` is a possible proxy (a ``warning`` finding
    ``fairness.possible_proxy.<column>``: reported for a person to judge, since a proxy
    can also be a legitimate predictor). ``associations`` lists the strongest measured
    association of every input."""
    present = [c for c in sensitive_attributes if c in df.columns]
    inputs = [c for c in features if c in df.columns and c not in present]
    if not present or not inputs:
        return [], []
    d = df if len(df) <= PROXY_SAMPLE_ROWS else df.sample(PROXY_SAMPLE_ROWS, random_state=seed)
    groups = {s: group_labels(d[s]) for s in present}
    findings: list[dict[str, Any]] = []
    associations: list[dict[str, Any]] = []
    for col in inputs:
        x = _binned(d[col])
        scored = sorted(
            ((cramers_v(x, g), s) for s, g in groups.items()), key=lambda t: t[0], reverse=True
        )
        value, attr = scored[0]
        row = {
            "column": col,
            "sensitive_attribute": attr,
            "cramers_v": round(value, 4),
            "threshold": threshold,
        }
        associations.append(row)
        if value >= threshold:
            findings.append(
                {
                    "id": f"fairness.possible_proxy.{col}",
                    "category": "fairness",
                    "kind": "possible_proxy",
                    "column": col,
                    "severity": "warning",
                    "reason": f"model input {col!r} is strongly associated with the sensitive "
                    f"attribute {attr!r} (Cramer's V {value:.2f} >= {threshold}): a possible proxy",
                    "evidence": {**row, "measure": "Cramer's V", "rows": len(d)},
                }
            )
    associations.sort(key=lambda r: r["cramers_v"], reverse=True)
    return findings, associations
