"""One definition of every metric the tools report, shared by training and evaluation.

Training picks the best candidate and evaluation checks the success threshold with the
same functions, so "best on validation" and "meets the threshold on test" can never
disagree about what a metric means, which label is positive, or which direction is better.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mpm.tools.errors import ToolConfigError

MODEL_TYPES = ("classification", "regression")
CLASSIFICATION_METRICS = ("accuracy", "roc_auc", "f1", "precision", "recall", "balanced_accuracy")
REGRESSION_METRICS = ("r2", "rmse", "mae", "mape")
# Smaller is better for these: the success threshold is an upper bound.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mape"})


def check_model_type(model_type: str) -> str:
    value = str(model_type).strip().lower()
    if value not in MODEL_TYPES:
        raise ToolConfigError(
            f"model_type: expected one of {', '.join(MODEL_TYPES)}; got {model_type!r}"
        )
    return value


def check_metric(metric: str, model_type: str) -> str:
    """The normalised metric name, or a ToolConfigError if it does not fit the model type."""
    model_type = check_model_type(model_type)
    value = str(metric).strip().lower()
    allowed = CLASSIFICATION_METRICS if model_type == "classification" else REGRESSION_METRICS
    if value not in allowed:
        raise ToolConfigError(
            f"target_metric: expected one of {', '.join(allowed)} for {model_type}; got {metric!r}"
        )
    return value


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


def is_better(candidate: float, incumbent: float | None, metric: str) -> bool:
    """Strictly better, so that ties keep the earlier (simpler) candidate."""
    if incumbent is None:
        return True
    return candidate < incumbent if lower_is_better(metric) else candidate > incumbent


def meets_threshold(score: float, threshold: float, metric: str) -> bool:
    return score <= threshold if lower_is_better(metric) else score >= threshold


def positive_label(classes: Sequence[Any], pos_label: Any = None) -> Any:
    """The positive class of a binary problem: ``pos_label`` when it is one of the classes
    (the explicit choice, see ``tools/positive_class.py``), else the larger label (1 of
    0/1, 'yes' of no/yes), scikit-learn's ``classes_[1]`` convention."""
    if pos_label is not None:
        for c in classes:
            if c == pos_label or str(c) == str(pos_label):
                return c
        raise ToolConfigError(
            f"positive class {pos_label!r} is not one of the classes {', '.join(map(str, classes))}"
        )
    return sorted(classes)[-1]


def cv_scorer(metric: str, classes: Sequence[Any], pos_label: Any = None) -> Any:
    """A scikit-learn scorer for ``metric``; errors (``neg_*``) are flipped back by ``cv_sign``."""
    from sklearn.metrics import f1_score, make_scorer, precision_score, recall_score

    binary = len(classes) == 2
    if metric in ("f1", "precision", "recall"):
        fn = {"f1": f1_score, "precision": precision_score, "recall": recall_score}[metric]
        if binary:
            return make_scorer(fn, pos_label=positive_label(classes, pos_label), zero_division=0)
        return make_scorer(fn, average="macro", zero_division=0)
    return {
        "accuracy": "accuracy",
        "balanced_accuracy": "balanced_accuracy",
        "roc_auc": "roc_auc" if binary else "roc_auc_ovr",
        "r2": "r2",
        "rmse": "neg_root_mean_squared_error",
        "mae": "neg_mean_absolute_error",
        "mape": "neg_mean_absolute_percentage_error",
    }[metric]


def cv_sign(metric: str) -> float:
    return -1.0 if lower_is_better(metric) else 1.0


def predict(pipeline: Any, features: Any, model_type: str) -> tuple[Any, Any | None, list[Any]]:
    """Labels (or values), class probabilities (classification only) and the class list."""
    y_pred = pipeline.predict(features)
    if model_type != "classification":
        return y_pred, None, []
    proba = pipeline.predict_proba(features) if hasattr(pipeline, "predict_proba") else None
    return y_pred, proba, list(pipeline.classes_)


def classification_metrics(
    y_true: Any, y_pred: Any, proba: Any | None, classes: Sequence[Any], pos_label: Any = None
) -> dict[str, float]:
    """accuracy, roc_auc, f1, precision, recall, balanced_accuracy, brier (binary: for the
    positive class ``pos_label``; multiclass: macro averages, one-vs-rest AUC)."""
    import numpy as np
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        brier_score_loss,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    y_true = np.asarray(y_true)
    binary = len(classes) == 2
    pos = positive_label(classes, pos_label) if binary else None
    kw: dict[str, Any] = (
        {"pos_label": pos} if binary else {"average": "macro", "labels": list(classes)}
    )
    out = {
        "accuracy": accuracy_score(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy_score(y_true, y_pred),
        "f1": f1_score(y_true, y_pred, zero_division=0, **kw),
        "precision": precision_score(y_true, y_pred, zero_division=0, **kw),
        "recall": recall_score(y_true, y_pred, zero_division=0, **kw),
    }
    present = set(np.unique(y_true).tolist())
    if proba is not None and len(present) > 1:
        if binary:
            p = proba[:, list(classes).index(pos)]
            out["roc_auc"] = roc_auc_score(y_true == pos, p)
            out["brier"] = brier_score_loss(y_true == pos, p)
        elif present == set(classes):
            out["roc_auc"] = roc_auc_score(y_true, proba, multi_class="ovr", labels=list(classes))
            out["brier"] = brier_score_loss(y_true, proba, labels=list(classes))
    return {k: float(v) for k, v in out.items()}


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """r2, rmse, mae and (when no true value is zero) mape."""
    import numpy as np
    from sklearn.metrics import (
        mean_absolute_error,
        mean_absolute_percentage_error,
        r2_score,
        root_mean_squared_error,
    )

    y_true = np.asarray(y_true, dtype=float)
    out = {
        "r2": r2_score(y_true, y_pred),
        "rmse": root_mean_squared_error(y_true, y_pred),
        "mae": mean_absolute_error(y_true, y_pred),
    }
    if not np.any(y_true == 0):
        out["mape"] = mean_absolute_percentage_error(y_true, y_pred)
    return {k: float(v) for k, v in out.items()}


def all_metrics(
    model_type: str,
    y_true: Any,
    y_pred: Any,
    proba: Any | None,
    classes: Sequence[Any],
    pos_label: Any = None,
) -> dict[str, float]:
    if model_type == "classification":
        return classification_metrics(y_true, y_pred, proba, classes, pos_label)
    return regression_metrics(y_true, y_pred)
