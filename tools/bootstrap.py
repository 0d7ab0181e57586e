"""Bootstrap confidence intervals for the test-set metrics a model is judged on.

A single test score says nothing about how much it would move on another sample of the
same size; a validator asks for the interval. The interval here is the percentile
bootstrap (``scipy.stats.bootstrap``) over the rows of the held-out test split: the saved
pipeline's predictions are computed once, rows are resampled with replacement
``n_resamples`` times (seeded, so a re-run gives the same interval), and each metric is
recomputed on every resample with the same scikit-learn definitions and the same decision
threshold and positive class the validation used. The point estimate is recomputed too and
returned beside the interval, so a caller can check it equals the validation's tracked score
before showing the interval next to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mpm.tools.errors import DataError

__all__ = ["CONFIDENCE", "N_RESAMPLES", "bootstrap_intervals", "metric_function"]

N_RESAMPLES = 1000
CONFIDENCE = 0.95
METHOD = "percentile bootstrap over test rows (scipy.stats.bootstrap)"


def metric_function(
    metric: str, classes: Sequence[Any], positive: Any
) -> Callable[[Any, Any, Any], float] | None:
    """``f(y_true, y_pred, proba) -> value`` for one metric, or None if it is not one the
    bootstrap knows. Binary label metrics are for ``positive``; multiclass ones are macro
    averages and AUC is one-vs-rest, as in ``tools/metrics.py``."""
    import numpy as np
    from sklearn import metrics as m

    binary = len(classes) == 2
    label_kw: dict[str, Any] = (
        {"pos_label": positive} if binary else {"average": "macro", "labels": list(classes)}
    )
    pos_index = list(classes).index(positive) if binary and positive in classes else None

    def auc(y: Any, _pred: Any, proba: Any) -> float:
        if proba is None or len(np.unique(y)) < 2:
            return float("nan")
        if binary:
            return float(m.roc_auc_score(np.asarray(y) == positive, proba[:, pos_index]))
        if len(np.unique(y)) < len(classes):
            return float("nan")
        return float(m.roc_auc_score(y, proba, multi_class="ovr", labels=list(classes)))

    table: dict[str, Callable[[Any, Any, Any], float]] = {
        "accuracy": lambda y, p, _: float(m.accuracy_score(y, p)),
        "balanced_accuracy": lambda y, p, _: float(m.balanced_accuracy_score(y, p)),
        "f1": lambda y, p, _: float(m.f1_score(y, p, zero_division=0, **label_kw)),
        "precision": lambda y, p, _: float(m.precision_score(y, p, zero_division=0, **label_kw)),
        "recall": lambda y, p, _: float(m.recall_score(y, p, zero_division=0, **label_kw)),
        "roc_auc": auc,
        "r2": lambda y, p, _: float(m.r2_score(y, p)),
        "rmse": lambda y, p, _: float(m.root_mean_squared_error(y, p)),
        "mae": lambda y, p, _: float(m.mean_absolute_error(y, p)),
        "mape": lambda y, p, _: float(m.mean_absolute_percentage_error(y, p)),
    }
    return table.get(metric)


def _positive(classes: Sequence[Any], positive_class: Any | None) -> Any:
    """The validation's positive class: the one the requirements name (matched as text,
    since a CSV may hold 0/1 where the requirements say "1"), else the larger label."""
    from mpm.tools.metrics import positive_label

    if positive_class is not None:
        for c in classes:
            if str(c) == str(positive_class):
                return c
    return positive_label(classes) if classes else None


def bootstrap_intervals(
    model_path: str,
    test_path: str,
    target_column: str,
    *,
    model_type: str,
    metrics: Sequence[str],
    decision_threshold: float | None = None,
    positive_class: Any | None = None,
    seed: int = 42,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """``{method, n_resamples, confidence, seed, n_rows, positive_class, intervals}`` where
    ``intervals[metric] = {estimate, low, high}`` (low/high None when the interval is
    undefined, e.g. a resample with one class for AUC); unknown metrics are left out."""
    import numpy as np
    from scipy.stats import bootstrap

    from mpm.tools.datasets import read_table
    from mpm.tools.evaluation import apply_threshold, load_model, model_input_columns
    from mpm.tools.metrics import predict

    pipeline = load_model(model_path)
    test = read_table(Path(test_path))
    if target_column not in test.columns:
        raise DataError(f"{Path(test_path).name}: target column {target_column!r} not found")
    test = test[test[target_column].notna()].reset_index(drop=True)
    inputs = model_input_columns(pipeline)
    y = np.asarray(test[target_column])
    y_pred, proba, classes = predict(pipeline, test[inputs], model_type)
    positive = _positive(classes, positive_class) if model_type == "classification" else None
    if decision_threshold is not None and proba is not None and len(classes) == 2:
        y_pred = apply_threshold(proba, classes, decision_threshold)
    y_pred = np.asarray(y_pred)
    functions = {
        name: fn
        for name in dict.fromkeys(metrics)
        if (fn := metric_function(name, classes, positive)) is not None
    }
    result: dict[str, Any] = {
        "method": METHOD,
        "n_resamples": n_resamples,
        "confidence": confidence,
        "seed": seed,
        "n_rows": len(y),
        "positive_class": None if positive is None else str(positive),
        "decision_threshold": decision_threshold,
        "intervals": {},
    }
    if not functions or len(y) < 2:
        return result
    names = list(functions)

    def statistic(rows: Any) -> Any:
        sample_proba = None if proba is None else proba[rows]
        return np.array([functions[n](y[rows], y_pred[rows], sample_proba) for n in names])

    estimate = statistic(np.arange(len(y)))
    ci = bootstrap(
        (np.arange(len(y)),),
        statistic,
        vectorized=False,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    for i, name in enumerate(names):
        low, high = float(ci.low[i]), float(ci.high[i])
        defined = np.isfinite(low) and np.isfinite(high)
        result["intervals"][name] = {
            "estimate": float(estimate[i]),
            "low": low if defined else None,
            "high": high if defined else None,
        }
    return result
