"""The remediation loop's strategies: which one to try when validation misses the success
criterion, and the training each one means.

The supervisor (``graph/nodes/supervisor.py``) decides *whether* to try again (the
criterion unmet, budget left); this module decides *what* to try, from the diagnosis
the earlier stages wrote (the selection protocol's class shares, the validator's named
findings, the target metric) and trains it for the model developer. Strategies, in the
order they are considered, each used at most once and kept for later attempts (an
attempt trains with every strategy chosen so far):

``drop_features``
    validation named model inputs as likely leaks or proxies of a sensitive attribute:
    they are dropped from the features.
``class_weights``
    the smallest class is under :data:`CLASS_WEIGHT_SHARE` of the rows and the target
    metric depends on it (not plain accuracy): every setting of every family is also
    tried with balanced class weights (the first search weights at most one setting per
    family, and only below ``tools.training.IMBALANCE_SHARE``). Class weights reweight
    the loss rather than resample rows: the same effect without duplicated rows leaking
    across cross-validation folds.
``threshold_tuning``
    a binary target scored by recall or precision, which the first search never tunes a
    threshold for (either is maximised by a degenerate cut-off): the decision threshold
    is moved to the cut-off whose out-of-fold score reaches the success threshold plus
    :data:`THRESHOLD_MARGIN`, keeping as much of the other metric as possible, and never
    past 0.5 in the direction that would lower the target metric.
``wider_search``
    nothing more specific applies (or it did not suffice): more settings per family
    (:data:`WIDER_GRIDS`).

Keeping the final test estimate honest: every choice an attempt makes -- the strategy's
settings, the family, the hyper-parameters, the threshold -- is made on cross-validation
over train+validation, as in the first search; the test split is read only by the
validator, once per attempt's champion. The test score only decides *whether* another
attempt runs (at most ``max_attempts`` extra looks, all of them reported with their
scores), never *which* model or setting is chosen.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

STRATEGIES = ("drop_features", "class_weights", "threshold_tuning", "wider_search")
CLASS_WEIGHT_SHARE = 0.4
"""Smallest class share below which class weighting is a remediation worth trying."""
THRESHOLD_MARGIN = 0.02
"""How far past the success threshold a tuned cut-off aims on the out-of-fold scores, so
that the sampling noise of a held-out estimate does not undo the tuning."""
WEIGHTABLE = frozenset({"logistic_regression", "random_forest", "gradient_boosting"})
_LEAK_SEVERITIES = frozenset({"likely_leak", "blocking_if_input"})

# family -> settings of the wider search (a superset of tools.training.GRIDS, sized for
# two cores)
_WIDER_TREES: dict[str, list[dict[str, Any]]] = {
    "random_forest": [
        {"n_estimators": 100, "max_depth": 8, "min_samples_leaf": 2},
        {"n_estimators": 100, "max_depth": None, "min_samples_leaf": 5},
        {"n_estimators": 200, "max_depth": None, "min_samples_leaf": 1},
        {"n_estimators": 200, "max_depth": 4, "min_samples_leaf": 10},
    ],
    "gradient_boosting": [
        {
            "learning_rate": 0.05,
            "max_iter": 200,
            "max_leaf_nodes": 15,
            "min_samples_leaf": 40,
            "l2_regularization": 1.0,
        },
        {"learning_rate": 0.1, "max_iter": 100, "max_leaf_nodes": 31, "min_samples_leaf": 20},
        {"learning_rate": 0.03, "max_iter": 300, "max_leaf_nodes": 7, "min_samples_leaf": 20},
        {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 63, "min_samples_leaf": 10},
    ],
}
"""The tree families' wider settings: the same for classification and regression."""
WIDER_GRIDS: dict[str, dict[str, list[dict[str, Any]]]] = {
    "classification": {
        "logistic_regression": [{"C": c} for c in (0.01, 0.1, 1.0, 10.0, 100.0)],
        **_WIDER_TREES,
    },
    "regression": {"ridge": [{"alpha": a} for a in (0.01, 0.1, 1.0, 10.0, 100.0)], **_WIDER_TREES},
}


# --------------------------------------------------------------------------- diagnosis


def _protocol(dev_outputs: Mapping[str, Any]) -> dict[str, Any]:
    path = dev_outputs.get("selection_protocol_path")
    if not path or not Path(path).is_file():
        return {}
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


def named_columns(
    validation_outputs: Mapping[str, Any], feature_columns: Sequence[str]
) -> list[dict[str, Any]]:
    """Model inputs validation named as likely leaks or proxies: ``[{column, id, reason}]``."""
    inputs = set(feature_columns or [])
    named: dict[str, dict[str, Any]] = {}
    for f in validation_outputs.get("findings") or []:
        if not isinstance(f, Mapping) or not f.get("column") or f["column"] not in inputs:
            continue
        text = f"{f.get('category', '')} {f.get('kind', '')}".lower()
        if f.get("severity") in _LEAK_SEVERITIES or "proxy" in text or "leak" in text:
            named.setdefault(
                str(f["column"]),
                {"column": str(f["column"]), "id": f.get("id"), "reason": f.get("reason")},
            )
    return list(named.values())


def choose_strategy(
    requirements: Mapping[str, Any],
    dev_outputs: Mapping[str, Any],
    validation_outputs: Mapping[str, Any],
    used: Sequence[str],
) -> dict[str, Any] | None:
    """The next strategy to try and why, from what development and validation found;
    None when every applicable strategy was tried. ``{strategy, why, drop_columns}``."""
    model_type = str(requirements.get("model_type"))
    metric = str(requirements.get("target_metric"))
    threshold = requirements.get("success_threshold")
    protocol = _protocol(dev_outputs)
    imbalance = protocol.get("imbalance") or {}
    labels = (validation_outputs.get("confusion_matrix") or {}).get("labels") or []
    binary = model_type == "classification" and (len(labels) == 2 or _binary(protocol))
    score = validation_outputs.get("test_score")
    gap = f"test {metric} {score:.4f} against {threshold}" if isinstance(score, float) else ""

    if "drop_features" not in used:
        named = named_columns(validation_outputs, dev_outputs.get("feature_columns") or [])
        if named:
            return {
                "strategy": "drop_features",
                "drop_columns": [n["column"] for n in named],
                "why": "validation named "
                + ", ".join(f"{n['column']!r} ({n['id']})" for n in named)
                + " as likely leak or proxy; a score that leans on them cannot be trusted, so "
                "they are dropped from the inputs",
            }
    share = imbalance.get("min_share")
    if (
        "class_weights" not in used
        and model_type == "classification"
        and isinstance(share, int | float)
        and share < CLASS_WEIGHT_SHARE
        and metric != "accuracy"
    ):
        first = (
            "weighted only one setting per family"
            if protocol.get("class_weighting")
            else "had no class-weighted settings"
        )
        return {
            "strategy": "class_weights",
            "why": f"{gap}: the smallest class ({imbalance.get('min_class')!r}) is "
            f"{share:.0%} of the development rows and {metric} depends on it; the first "
            f"search {first}, so every setting is also tried with balanced class weights",
        }
    if "threshold_tuning" not in used and binary and metric in {"recall", "precision"}:
        return {
            "strategy": "threshold_tuning",
            "why": f"{gap}: {metric} on its own is set by the decision threshold, which the "
            f"first search left at its default; the cut-off is tuned on out-of-fold "
            f"predictions over train+validation to reach {threshold} + {THRESHOLD_MARGIN}",
        }
    if "wider_search" not in used:
        return {
            "strategy": "wider_search",
            "why": f"{gap}: "
            + (
                f"still unmet after {', '.join(used)}"
                if used
                else "no specific cause found in the diagnosis"
            )
            + "; more settings per family are searched",
        }
    return None


def _binary(protocol: Mapping[str, Any]) -> bool:
    tuning = protocol.get("decision_threshold")
    return isinstance(tuning, Mapping) and tuning.get("positive_label") is not None


# --------------------------------------------------------------------------- training


def training_plan(
    model_type: str, strategies: Sequence[str]
) -> tuple[list[tuple[str, list[dict[str, Any]]]], bool]:
    """``(family, settings)`` pairs for an attempt using ``strategies``, and whether the
    first search's own class-weight variants should still be added (not when every
    setting is weighted already)."""
    from mpm.tools.training import GRIDS

    grids = WIDER_GRIDS[model_type] if "wider_search" in strategies else GRIDS[model_type]
    weighted = "class_weights" in strategies and model_type == "classification"
    plan = []
    for family, grid in grids.items():
        settings = [dict(s) for s in grid]
        if weighted and family in WEIGHTABLE:
            settings += [{**s, "class_weight": "balanced"} for s in grid]
        plan.append((family, settings))
    return plan, not weighted


def train_remediated(
    train_path: str,
    val_path: str,
    target_column: str,
    out_dir: str,
    *,
    model_type: str,
    target_metric: str,
    success_threshold: float,
    remediation: Mapping[str, Any],
    recommendations: list[dict[str, Any]] | None = None,
    seed: int = 42,
    tracking_uri: str | None = None,
    run_id: str | None = None,
    experiment_id: str | None = None,
    group_column: str | None = None,
    time_column: str | None = None,
    positive_class: str | None = None,
    objective: str | None = None,
    label_names: Mapping[str, str] | None = None,
    sensitive_attributes: Sequence[str] = (),
    use_sensitive_attributes: bool = False,
) -> dict[str, Any]:
    """Train one remediation attempt: ``remediation`` is the attempt record
    (``strategies`` so far, ``drop_columns``). Same return shape as
    ``tools.training.train_candidates``, plus ``remediation`` (what was applied).
    ``positive_class`` ... ``use_sensitive_attributes``: as for ``train_candidates``
    (the positive class every binary figure is for; sensitive attributes kept out)."""
    import pandas as pd

    from mpm.tools.datasets import read_table
    from mpm.tools.features import recommend_features
    from mpm.tools.metrics import check_metric, check_model_type
    from mpm.tools.training import train_plan

    model_type = check_model_type(model_type)
    target_metric = check_metric(target_metric, model_type)
    strategies = [s for s in remediation.get("strategies") or [] if s in STRATEGIES]
    drops = [str(c) for c in remediation.get("drop_columns") or [] if c != target_column]
    if "drop_features" in strategies and drops:
        if recommendations is None:  # what EDA would recommend, as train_candidates does
            train = read_table(Path(train_path))
            recommendations = recommend_features(train, target_column, model_type)
        recommendations = [
            *recommendations,
            {"action": "drop", "columns": drops, "reason": "remediation: named by validation"},
        ]
    plan, own_variants = training_plan(model_type, strategies)
    result = train_plan(
        plan,
        train_path,
        val_path,
        target_column,
        out_dir,
        model_type=model_type,
        target_metric=target_metric,
        recommendations=recommendations,
        seed=seed,
        tracking_uri=tracking_uri,
        run_id=run_id,
        experiment_id=experiment_id,
        group_column=group_column,
        time_column=time_column,
        imbalance_variants=own_variants,
        positive_class=positive_class,
        objective=objective,
        label_names=label_names,
        sensitive_attributes=sensitive_attributes,
        use_sensitive_attributes=use_sensitive_attributes,
    )
    applied: dict[str, Any] = {
        "attempt": remediation.get("attempt"),
        "strategies": strategies,
        "drop_columns": drops if "drop_features" in strategies else [],
        "settings_searched": sum(len(grid) for _, grid in plan),
    }
    if "threshold_tuning" in strategies and target_metric in {"recall", "precision"}:
        dev = pd.concat(
            [read_table(Path(train_path)), read_table(Path(val_path))], ignore_index=True
        )
        dev = dev[dev[target_column].notna()].reset_index(drop=True)
        tuning = tune_threshold_to_goal(
            result["model_path"],
            dev,
            target_column,
            result["feature_columns"],
            target_metric=target_metric,
            goal=float(success_threshold),
            model_type=model_type,
            seed=seed,
            group_column=group_column,
            time_column=time_column,
            pos_label=result.get("positive_class"),
        )
        if tuning is not None:
            result["decision_threshold"] = tuning["threshold"]
            result["threshold_tuning"] = tuning
            result["metrics"]["decision_threshold"] = tuning["threshold"]
            result["metrics"][f"val_{target_metric}_tuned_threshold"] = tuning["tuned_score"]
            result["protocol"]["decision_threshold"] = tuning
        applied["threshold_tuning"] = tuning
    result["protocol"]["remediation"] = applied
    Path(result["protocol_path"]).write_text(
        json.dumps(result["protocol"], indent=2, default=str, sort_keys=True)
    )
    if tracking_uri and run_id:  # the tracked protocol says what the attempt applied
        from mpm.tools import tracking

        c = tracking.client(tracking_uri)
        tracking.log_dict(c, run_id, result["protocol"], "training/selection_protocol.json")
        if result.get("decision_threshold") is not None:
            tracking.log_metrics(c, run_id, {"decision_threshold": result["decision_threshold"]})
            tracking.set_tags(c, run_id, {"mpm.decision_threshold": result["decision_threshold"]})
    result["remediation"] = applied
    return result


def tune_threshold_to_goal(
    model_path: str,
    dev: Any,
    target_column: str,
    features: Sequence[str],
    *,
    target_metric: str,
    goal: float,
    model_type: str,
    seed: int,
    group_column: str | None = None,
    time_column: str | None = None,
    pos_label: Any = None,
) -> dict[str, Any] | None:
    """The cut-off whose out-of-fold ``target_metric`` (recall or precision) over
    train+validation reaches ``goal + THRESHOLD_MARGIN`` and keeps the most of the other
    metric: recall -- the highest such cut-off at or below 0.5; precision -- the lowest at
    or above 0.5. The champion's pipeline is refitted per fold (the same folds as the
    selection); the test split is not read. None for a non-binary target."""
    import joblib
    import numpy as np
    from sklearn import metrics as skm
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    from mpm.tools.metrics import positive_label
    from mpm.tools.training import OPENMP_THREADS, cv_folds

    x, y = dev[list(features)], dev[target_column]
    classes = sorted(y.unique().tolist())
    if len(classes) != 2:
        return None
    champion = joblib.load(model_path)
    folds, _ = cv_folds(dev, y, model_type, group_column, time_column, seed)
    pos = positive_label(classes, pos_label)  # the class training chose
    p = np.full(len(y), np.nan)
    with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
        for fit_idx, val_idx in folds:
            pipe = clone(champion)
            pipe.fit(x.iloc[fit_idx], y.iloc[fit_idx])
            fitted = list(pipe.classes_)
            if pos not in fitted:
                continue
            p[val_idx] = pipe.predict_proba(x.iloc[val_idx])[:, fitted.index(pos)]
    covered = ~np.isnan(p)
    truth = y.to_numpy()[covered] == pos
    p = p[covered]
    if not truth.any():
        return None

    def scores(t: float) -> tuple[float, float]:
        pred = p > t
        return (
            float(skm.recall_score(truth, pred, zero_division=0)),
            float(skm.precision_score(truth, pred, zero_division=0)),
        )

    aim = goal + THRESHOLD_MARGIN
    recall_goal = target_metric == "recall"
    grid = [round(float(t), 2) for t in np.arange(0.01, 0.995, 0.01)]
    grid = [t for t in grid if (t <= 0.5 if recall_goal else t >= 0.5)]
    table = {t: scores(t) for t in grid}
    target_of = {t: (r if recall_goal else pr) for t, (r, pr) in table.items()}
    reaching = [t for t in grid if target_of[t] >= aim and (recall_goal or table[t][0] > 0)]
    if reaching:
        chosen = max(reaching) if recall_goal else min(reaching)
    else:  # out of reach: the cut-off that comes closest
        chosen = max(grid, key=lambda t: (target_of[t], t if recall_goal else -t))
    default_recall, default_precision = scores(0.5)
    recall, precision = table[chosen]
    return {
        "threshold": chosen,
        "metric": target_metric,
        "goal": goal,
        "margin": THRESHOLD_MARGIN,
        "reached": bool(reaching),
        "positive_label": pos.item() if hasattr(pos, "item") else pos,
        "default_score": default_recall if recall_goal else default_precision,
        "tuned_score": recall if recall_goal else precision,
        "oof_recall": recall,
        "oof_precision": precision,
        "tuned_on": "out-of-fold predictions over train+validation",
        "grid": "0.01 to 0.99 step 0.01",
    }
