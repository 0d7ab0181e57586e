"""Model training: ``train_candidates`` (the real thing) and ``train_baseline`` (the fallback).

The selection protocol (README "Validation protocol"), the one an independent validator
expects: every family and setting is scored by cross-validation over train+validation
(stratified, grouped or time-ordered as the requirements say); the family *and* the
setting are chosen on the cross-validation mean (its spread recorded next to it); the
chosen pipeline is refitted once on train+validation; the test split is never read here,
the validator scores it once, at the end. For imbalanced targets the candidates include
class weighting, and a binary classifier's decision threshold is tuned on the
out-of-fold predictions for the target metric. The protocol is written to
``selection_protocol.json`` and to the MLflow runs.

With tracking on, every candidate is a nested MLflow run ``{family}_training`` under the
stage run, found again by a stable key on re-run so a crashed-and-resumed stage never
duplicates runs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mpm.tools.datasets import check_target, read_table
from mpm.tools.errors import ToolConfigError, TrainingError
from mpm.tools.features import build_preprocessor, recommend_features, sensitive_features
from mpm.tools.metrics import (
    all_metrics,
    check_metric,
    check_model_type,
    cv_scorer,
    cv_sign,
    is_better,
    lower_is_better,
    positive_label,
    predict,
)
from mpm.tools.positive_class import resolve_positive_class

CV_FOLDS = 3
IMBALANCE_SHARE = 0.2  # smallest class below this share: class-weighted candidates too
THRESHOLD_METRICS = frozenset({"f1", "balanced_accuracy", "accuracy"})
"""Target metrics a binary decision threshold changes (recall and precision are not tuned:
either is maximised by a degenerate threshold); for ``roc_auc``, which no threshold
changes, an imbalanced target's threshold is tuned for balanced accuracy."""
N_JOBS = 2  # random forest threads: the machine budget is 2 cores
OPENMP_THREADS = 1
MODEL_FILE = "model.joblib"

# family -> list of hyper-parameter settings tried (kept small for 2 cores)
GRIDS: dict[str, dict[str, list[dict[str, Any]]]] = {
    "classification": {
        "logistic_regression": [{"C": 0.1}, {"C": 1.0}, {"C": 10.0}],
        "random_forest": [
            {"n_estimators": 100, "max_depth": 8, "min_samples_leaf": 2},
            {"n_estimators": 100, "max_depth": None, "min_samples_leaf": 5},
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
        ],
    },
    "regression": {
        "ridge": [{"alpha": 0.1}, {"alpha": 1.0}, {"alpha": 10.0}],
        "random_forest": [
            {"n_estimators": 100, "max_depth": 8, "min_samples_leaf": 2},
            {"n_estimators": 100, "max_depth": None, "min_samples_leaf": 5},
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
        ],
    },
}


def _estimator(family: str, model_type: str, params: dict[str, Any], seed: int) -> Any:
    from sklearn import dummy, ensemble, linear_model

    classification = model_type == "classification"
    if family == "logistic_regression":
        return linear_model.LogisticRegression(max_iter=2000, random_state=seed, **params)
    if family == "ridge":
        return linear_model.Ridge(random_state=seed, **params)
    if family == "random_forest":
        cls = ensemble.RandomForestClassifier if classification else ensemble.RandomForestRegressor
        return cls(random_state=seed, n_jobs=N_JOBS, **params)
    if family == "gradient_boosting":
        cls = (
            ensemble.HistGradientBoostingClassifier
            if classification
            else ensemble.HistGradientBoostingRegressor
        )
        return cls(random_state=seed, **params)
    if family == "dummy":
        return (
            dummy.DummyClassifier(strategy="prior")
            if classification
            else dummy.DummyRegressor(strategy="mean")
        )
    raise ToolConfigError(f"unknown model family {family!r}")


def train_candidates(
    train_path: str,
    val_path: str,
    target_column: str,
    out_dir: str,
    *,
    model_type: str,
    target_metric: str,
    recommendations: list[dict[str, Any]] | None = None,
    seed: int = 42,
    families: Sequence[str] | None = None,
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
    """Train every candidate family, pick the best by cross-validation over train+validation,
    refit it there and save it as ``model.joblib``.

    ``families`` restricts the candidates (classification: logistic_regression,
    random_forest, gradient_boosting; regression: ridge, random_forest, gradient_boosting).
    ``recommendations`` are EDA's feature-engineering actions (``None``: derive them from
    the training data as EDA would, without dropping sensitive attributes; ``[]``: only
    the imputing and encoding every model needs).

    ``group_column`` / ``time_column``: grouped or time-ordered cross-validation (and the
    column is never a model input).

    ``positive_class`` (the requirement, a label value or, with ``label_names``, its name),
    ``objective``: which class of a binary target is positive, stated or inferred by
    ``tools.positive_class.resolve_positive_class``; every binary metric, the scorer and
    the tuned threshold are for it. ``sensitive_attributes`` are never model inputs unless
    ``use_sensitive_attributes`` (the requirement that opts in; recorded either way).

    Returns ``{candidates: [{name, family, run_id, params, search, cv_score, cv_std,
    val_score, val_metrics, fit_seconds, status, error}], best_model_name,
    best_model_run_id, best_model_score, decision_threshold, threshold_tuning, protocol,
    protocol_path, target_metric, lower_is_better, model_path, summary_path,
    feature_columns, dropped_columns, ignored_recommendations, metrics, positive_class,
    positive_class_name, positive_class_display, positive_class_reason,
    positive_class_source, sensitive_features}`` (the ``positive_class*`` values are None
    for regression and multiclass targets). ``val_score``
    and ``val_metrics`` are measured on the validation folds (out-of-fold predictions over
    train+validation), the numbers the selection used. Raises ``TrainingError`` if every
    candidate fails.
    """
    model_type = check_model_type(model_type)
    target_metric = check_metric(target_metric, model_type)
    grids = GRIDS[model_type]
    chosen = list(families) if families else list(grids)
    unknown = [f for f in chosen if f not in grids]
    if unknown:
        raise ToolConfigError(
            f"families: unknown {', '.join(map(repr, unknown))} for {model_type}; expected some of {', '.join(grids)}"
        )
    plan = [(f, grids[f]) for f in chosen]
    return train_plan(
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
        positive_class=positive_class,
        objective=objective,
        label_names=label_names,
        sensitive_attributes=sensitive_attributes,
        use_sensitive_attributes=use_sensitive_attributes,
    )


def train_baseline(
    train_path: str,
    val_path: str,
    target_column: str,
    out_dir: str,
    *,
    model_type: str,
    target_metric: str,
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
    """The fallback: one simple model (logistic regression / ridge with default settings),
    or a Dummy predictor if even that fails. Same return shape as ``train_candidates``."""
    model_type = check_model_type(model_type)
    target_metric = check_metric(target_metric, model_type)
    simple = "logistic_regression" if model_type == "classification" else "ridge"
    kwargs: dict[str, Any] = dict(
        model_type=model_type,
        target_metric=target_metric,
        recommendations=recommendations,
        seed=seed,
        tracking_uri=tracking_uri,
        run_id=run_id,
        experiment_id=experiment_id,
        name_suffix="_baseline",
        group_column=group_column,
        time_column=time_column,
        imbalance_variants=False,
        positive_class=positive_class,
        objective=objective,
        label_names=label_names,
        sensitive_attributes=sensitive_attributes,
        use_sensitive_attributes=use_sensitive_attributes,
    )
    try:
        return train_plan([(simple, [{}])], train_path, val_path, target_column, out_dir, **kwargs)
    except TrainingError:
        return train_plan([("dummy", [{}])], train_path, val_path, target_column, out_dir, **kwargs)


# --------------------------------------------------------------------------- the loop


def train_plan(
    plan: list[tuple[str, list[dict[str, Any]]]],
    train_path: str,
    val_path: str,
    target_column: str,
    out_dir: str,
    *,
    model_type: str,
    target_metric: str,
    recommendations: Any,
    seed: int,
    tracking_uri: str | None,
    run_id: str | None,
    experiment_id: str | None,
    name_suffix: str = "",
    group_column: str | None = None,
    time_column: str | None = None,
    imbalance_variants: bool = True,
    positive_class: str | None = None,
    objective: str | None = None,
    label_names: Mapping[str, str] | None = None,
    sensitive_attributes: Sequence[str] = (),
    use_sensitive_attributes: bool = False,
) -> dict[str, Any]:
    """Cross-validate every (family, settings grid) of ``plan`` on train+validation, refit
    the winner, score it on validation and save it with its tracked runs: what
    :func:`train_candidates` and :func:`train_baseline` run with their own plans, and the
    remediation loop (``tools/remediation.py``) with its wider ones."""
    import joblib
    import pandas as pd
    from threadpoolctl import threadpool_limits

    train = read_table(Path(train_path))
    val = read_table(Path(val_path))
    for name, df in (("train", train), ("val", val)):
        check_target(
            df,
            target_column,
            model_type,
            f"{name} split {Path(train_path if name == 'train' else val_path).name}",
        )
    train = train[train[target_column].notna()].reset_index(drop=True)
    val = val[val[target_column].notna()].reset_index(drop=True)
    # train+validation: what the selection cross-validates and the winner is refitted on
    # (the split keeps time order, so train rows precede validation rows)
    dev = pd.concat([train, val], ignore_index=True)
    if recommendations is None:  # not given: what EDA would recommend for this data
        recommendations = recommend_features(train, target_column, model_type)
    split_columns = [c for c in (group_column, time_column) if c and c in dev.columns]
    if split_columns:
        recommendations = [
            *recommendations,
            {"action": "drop", "columns": split_columns, "reason": "split column, not an input"},
        ]
    sensitive = sensitive_features(
        dev, target_column, sensitive_attributes, use_sensitive_attributes
    )
    if sensitive["excluded_from_features"]:
        recommendations = [
            *recommendations,
            {
                "action": "drop",
                "columns": sensitive["excluded_from_features"],
                "reason": "sensitive attribute: kept for fairness evaluation only",
            },
        ]
    preprocessor, info = build_preprocessor(dev, target_column, recommendations)
    features = info["feature_columns"]
    x_dev, y_dev = dev[features], dev[target_column]
    classes = sorted(y_dev.unique().tolist()) if model_type == "classification" else []
    positive = (
        resolve_positive_class(
            classes,
            counts=y_dev.value_counts().to_dict(),
            stated=positive_class,
            objective=objective,
            names=label_names,
            target_column=target_column,
        )
        if len(classes) == 2
        else None
    )
    pos_label = positive["label"] if positive else None
    scorer = cv_scorer(target_metric, classes, pos_label)
    folds, cv_kind = cv_folds(dev, y_dev, model_type, group_column, time_column, seed)
    imbalance = _imbalance(y_dev) if model_type == "classification" else None
    if imbalance_variants and imbalance and imbalance["imbalanced"]:
        plan = [(f, _with_class_weights(f, grid)) for f, grid in plan]
    tracker = _Tracker(tracking_uri, run_id, experiment_id)
    candidates: list[dict[str, Any]] = []

    for family, grid in plan:
        name = f"{family}{name_suffix}"
        started = time.perf_counter()
        cand: dict[str, Any] = {
            "name": name,
            "family": family,
            "run_id": None,
            "status": "ok",
            "error": None,
        }
        try:
            # OpenMP (gradient boosting) busy-waits when it shares cores with other work;
            # on a small shared machine one thread is faster than two fighting.
            with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
                fields = _search(
                    family,
                    grid,
                    preprocessor,
                    (x_dev, y_dev),
                    model_type=model_type,
                    target_metric=target_metric,
                    scorer=scorer,
                    folds=folds,
                    classes=classes,
                    seed=seed,
                    pos_label=pos_label,
                )
            cand.update(fields)
        except Exception as exc:  # one failing family must not sink the others
            cand.update(
                status="failed",
                error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            )
            cand.setdefault("params", {})
            cand.setdefault("search", [])
            cand.update(cv_score=None, cv_std=None, val_score=None, val_metrics={})
        cand["fit_seconds"] = round(time.perf_counter() - started, 3)
        candidates.append(cand)

    ok = [c for c in candidates if c["status"] == "ok"]
    if not ok:
        for cand in candidates:
            cand["run_id"] = tracker.log_candidate(
                cand, **_context(model_type, target_metric, seed, dev, features, cv_kind, positive)
            )
        raise TrainingError(
            "no candidate model could be trained: "
            + "; ".join(f"{c['name']}: {c['error']}" for c in candidates)
        )
    best = None
    for c in ok:  # family and setting both chosen on the cross-validation mean
        if best is None or is_better(c["cv_score"], best["cv_score"], target_metric):
            best = c
    assert best is not None
    tuning = _tune_threshold(best, y_dev, classes, target_metric, imbalance, pos_label)
    started = time.perf_counter()
    with threadpool_limits(limits=OPENMP_THREADS, user_api="openmp"):
        winner = _pipeline(best["family"], preprocessor, best["params"], model_type, seed)
        winner.fit(x_dev, y_dev)  # refitted once on train+validation
    best["refit_seconds"] = round(time.perf_counter() - started, 3)
    for cand in candidates:
        cand.pop("_oof", None)
        cand["run_id"] = tracker.log_candidate(
            cand, **_context(model_type, target_metric, seed, dev, features, cv_kind, positive)
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    if "n_jobs" in winner.named_steps["model"].get_params():
        # Parallel tree averaging sums in thread order: serve single-threaded so the same
        # input always gives bit-identical probabilities.
        winner.set_params(model__n_jobs=1)
    joblib.dump(winner, model_path)
    threshold = tuning["threshold"] if tuning else None
    protocol = {
        "selection": "cross-validation mean of the target metric over train+validation",
        "target_metric": target_metric,
        "cross_validation": {
            "kind": cv_kind,
            "folds": CV_FOLDS,
            "rows": len(dev),
            "group_column": group_column,
            "time_column": time_column,
        },
        "candidates": [
            {
                "name": c["name"],
                "status": c["status"],
                "settings": [
                    {"params": e["params"], "cv_mean": e["cv_mean"], "cv_std": e["cv_std"]}
                    for e in c.get("search") or []
                ],
                "chosen_params": c.get("params"),
                "cv_mean": c.get("cv_score"),
                "cv_std": c.get("cv_std"),
            }
            for c in candidates
        ],
        "chosen": {
            "name": best["name"],
            "params": best["params"],
            "cv_mean": best["cv_score"],
            "cv_std": best["cv_std"],
        },
        "refit": {
            "on": "train+validation",
            "rows": len(dev),
            "train_rows": len(train),
            "val_rows": len(val),
        },
        "test_split": "not read during development; scored once by the validator, at the end",
        "imbalance": imbalance,
        "positive_class": positive,
        "sensitive_attributes": sensitive,
        "class_weighting": bool(imbalance_variants and imbalance and imbalance["imbalanced"]),
        "decision_threshold": tuning,
    }
    result: dict[str, Any] = {
        "candidates": candidates,
        "best_model_name": best["name"],
        "best_model_run_id": best["run_id"],
        "best_model_score": best["cv_score"],
        "best_model_params": best["params"],
        "decision_threshold": threshold,
        "threshold_tuning": tuning,
        "protocol": protocol,
        "target_metric": target_metric,
        "lower_is_better": lower_is_better(target_metric),
        "model_type": model_type,
        "model_path": str(model_path),
        "feature_columns": features,
        "numeric_columns": info["numeric_columns"],
        "categorical_columns": info["categorical_columns"],
        "dropped_columns": info["dropped_columns"],
        "ignored_recommendations": info["ignored_recommendations"],
        "classes": [_json_scalar(c) for c in classes],
        "n_train_rows": len(train),
        "n_val_rows": len(val),
        "n_refit_rows": len(dev),
        "cv_kind": cv_kind,
        "seed": seed,
        "positive_class": pos_label,
        "positive_class_name": positive["name"] if positive else None,
        "positive_class_display": positive["display"] if positive else None,
        "positive_class_reason": positive["reason"] if positive else None,
        "positive_class_source": positive["source"] if positive else None,
        "sensitive_features": sensitive,
        "metrics": {
            "best_model_score": best["cv_score"],
            "best_model_cv_std": best["cv_std"],
            **{f"val_{k}": v for k, v in best["val_metrics"].items()},
            "n_candidates": float(len(candidates)),
            "n_candidates_failed": float(len(candidates) - len(ok)),
            "n_refit_rows": float(len(dev)),
            **({"decision_threshold": threshold} if threshold is not None else {}),
            **(
                {
                    f"val_{tuning['metric']}_default_threshold": tuning["default_score"],
                    f"val_{tuning['metric']}_tuned_threshold": tuning["tuned_score"],
                }
                if tuning
                else {}
            ),
        },
    }
    protocol_path = out / "selection_protocol.json"
    protocol_path.write_text(json.dumps(protocol, indent=2, default=str, sort_keys=True))
    result["protocol_path"] = str(protocol_path)
    summary_path = out / "training_summary.json"
    summary_path.write_text(json.dumps(result, indent=2, default=str, sort_keys=True))
    result["summary_path"] = str(summary_path)
    tracker.mark_best(best, candidates, model_path, result)
    return result


def _context(
    model_type: str,
    target_metric: str,
    seed: int,
    dev: Any,
    features: list[str],
    cv_kind: str,
    positive: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "positive_class": None if positive is None else positive["display"],
        "model_type": model_type,
        "target_metric": target_metric,
        "seed": seed,
        "n_train": len(dev),
        "features": features,
        "cv_kind": cv_kind,
    }


def cv_folds(
    dev: Any,
    y: Any,
    model_type: str,
    group_column: str | None,
    time_column: str | None,
    seed: int,
) -> tuple[list[tuple[Any, Any]], str]:
    """The cross-validation folds as index pairs and their kind: time-ordered (each fold
    validates on rows later than all it trained on), grouped (a group in one fold only,
    stratified for classification) or stratified / shuffled K-fold."""
    from sklearn.model_selection import (
        GroupKFold,
        KFold,
        StratifiedGroupKFold,
        StratifiedKFold,
        TimeSeriesSplit,
    )

    if time_column:
        return list(TimeSeriesSplit(CV_FOLDS).split(dev)), "time_ordered"
    if group_column:
        groups = dev[group_column].astype(str)
        if model_type == "classification":
            cv: Any = StratifiedGroupKFold(CV_FOLDS, shuffle=True, random_state=seed)
        else:
            cv = GroupKFold(CV_FOLDS)
        return list(cv.split(dev, y, groups)), "grouped"
    if model_type == "classification":
        cv = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed)
        return list(cv.split(dev, y)), "stratified"
    return list(KFold(CV_FOLDS, shuffle=True, random_state=seed).split(dev)), "shuffled"


def _imbalance(y: Any) -> dict[str, Any]:
    shares = y.value_counts(normalize=True)
    return {
        "min_class": _json_scalar(shares.idxmin()),
        "min_share": round(float(shares.min()), 6),
        "imbalanced": bool(shares.min() < IMBALANCE_SHARE),
        "rule": f"smallest class share < {IMBALANCE_SHARE}",
    }


def _with_class_weights(family: str, grid: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The family's settings plus one class-weighted variant (of its first setting): a
    weighted candidate for every family without doubling the search on 2 cores."""
    if family not in {"logistic_regression", "random_forest", "gradient_boosting"} or not grid:
        return grid
    return [*grid, {**grid[0], "class_weight": "balanced"}]


def _pipeline(family: str, preprocessor: Any, params: dict[str, Any], model_type: str, seed: int):  # noqa: ANN202
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    return Pipeline(
        [
            ("preprocess", clone(preprocessor)),
            ("model", _estimator(family, model_type, params, seed)),
        ]
    )


def _search(
    family: str,
    grid: list[dict[str, Any]],
    preprocessor: Any,
    data: tuple[Any, Any],
    *,
    model_type: str,
    target_metric: str,
    scorer: Any,
    folds: list[tuple[Any, Any]],
    classes: list[Any],
    seed: int,
    pos_label: Any = None,
) -> dict[str, Any]:
    """Cross-validate every setting of ``grid`` over train+validation and keep the best
    by its mean. Returns the candidate's numbers, including the out-of-fold metrics
    (``val_metrics``) and predictions (``_oof``, for threshold tuning)."""
    import numpy as np
    from sklearn.metrics import get_scorer

    x, y = data
    score_fn = get_scorer(scorer) if isinstance(scorer, str) else scorer
    search, oofs = [], []
    for params in grid:
        scores: list[float] = []
        oof_pred = np.empty(len(y), dtype=object if model_type == "classification" else float)
        oof_proba = (
            np.full((len(y), len(classes)), np.nan) if model_type == "classification" else None
        )
        covered = np.zeros(len(y), dtype=bool)
        try:
            for fit_idx, val_idx in folds:
                pipe = _pipeline(family, preprocessor, params, model_type, seed)
                pipe.fit(x.iloc[fit_idx], y.iloc[fit_idx])
                x_val, y_val = x.iloc[val_idx], y.iloc[val_idx]
                pred, proba, fitted_classes = _predict_once(pipe, x_val, model_type)
                fold = (
                    all_metrics(model_type, y_val, pred, proba, fitted_classes, pos_label).get(
                        target_metric
                    )
                    if len(fitted_classes) == len(classes)
                    else None
                )
                if fold is None or len(fitted_classes) != len(classes):
                    # the metric needs what this fold lacks (e.g. a class): score it as
                    # scikit-learn's scorer does
                    fold = cv_sign(target_metric) * float(score_fn(pipe, x_val, y_val))
                scores.append(float(fold))
                oof_pred[val_idx] = pred
                if oof_proba is not None and proba is not None:
                    cols = [classes.index(c) for c in fitted_classes]
                    oof_proba[np.ix_(val_idx, cols)] = proba
                    oof_proba[val_idx] = np.nan_to_num(oof_proba[val_idx], nan=0.0)
                covered[val_idx] = True
        except Exception as exc:  # noqa: BLE001 - a failing setting is recorded, not fatal
            search.append(
                {
                    "params": params,
                    "cv_mean": None,
                    "cv_std": None,
                    "error": f"{type(exc).__name__}: {str(exc)[:200]}",
                }
            )
            oofs.append(None)
            continue
        search.append(
            {
                "params": params,
                "cv_mean": _f(np.mean(scores)),
                "cv_std": _f(np.std(scores)),
                "fold_scores": [_f(v) for v in scores],
            }
        )
        oofs.append((covered, oof_pred, oof_proba))
    best_i = None
    for i, entry in enumerate(search):
        if entry["cv_mean"] is not None and is_better(
            entry["cv_mean"], None if best_i is None else search[best_i]["cv_mean"], target_metric
        ):
            best_i = i
    if best_i is None:
        errors = "; ".join(dict.fromkeys(e.get("error", "") for e in search if e.get("error")))
        raise TrainingError(f"{family}: every cross-validation fold failed: {errors}")
    covered, oof_pred, oof_proba = oofs[best_i]  # type: ignore[misc]
    y_cov = y.to_numpy()[covered]
    pred_cov = oof_pred[covered]
    if model_type == "classification" and isinstance(y.dtype, np.dtype) and y.dtype != object:
        pred_cov = pred_cov.astype(y.dtype)  # numpy labels; pandas string labels stay as read
    val_metrics = all_metrics(
        model_type,
        y_cov,
        pred_cov,
        None if oof_proba is None else oof_proba[covered],
        classes,
        pos_label,
    )
    best = search[best_i]
    return {
        "params": best["params"],
        "search": search,
        "cv_score": best["cv_mean"],
        "cv_std": best["cv_std"],
        # the selection score: the cross-validation mean over train+validation
        "val_score": best["cv_mean"],
        "val_metrics": val_metrics,
        "_oof": (y_cov, None if oof_proba is None else oof_proba[covered]),
    }


def _predict_once(pipe: Any, x: Any, model_type: str) -> tuple[Any, Any, list[Any]]:
    """Labels and probabilities from one ``predict_proba`` call: every classifier here
    predicts the most probable class, so the labels are its arg-max (a fold is scored and
    its out-of-fold predictions kept without predicting twice)."""
    import numpy as np

    if model_type != "classification" or not hasattr(pipe, "predict_proba"):
        return predict(pipe, x, model_type)
    proba = pipe.predict_proba(x)
    return np.asarray(pipe.classes_)[proba.argmax(axis=1)], proba, list(pipe.classes_)


def _tune_threshold(
    best: dict[str, Any],
    y: Any,
    classes: list[Any],
    target_metric: str,
    imbalance: dict[str, Any] | None,
    pos_label: Any = None,
) -> dict[str, Any] | None:
    """The binary decision threshold that maximises the target metric on the champion's
    out-of-fold predictions (never the test split); None when no threshold applies."""
    import numpy as np
    from sklearn import metrics as skm

    if len(classes) != 2 or best.get("_oof") is None:
        return None
    metric = target_metric
    if metric not in THRESHOLD_METRICS:
        if metric == "roc_auc" and imbalance and imbalance["imbalanced"]:
            metric = "balanced_accuracy"
        else:
            return None
    y_cov, proba = best["_oof"]
    if proba is None:
        return None
    pos = positive_label(classes, pos_label)
    p = proba[:, classes.index(pos)]
    truth = np.asarray(y_cov) == pos

    def score(t: float) -> float:
        pred = p > t
        if metric == "f1":
            return float(skm.f1_score(truth, pred, zero_division=0))
        if metric == "balanced_accuracy":
            return float(skm.balanced_accuracy_score(truth, pred))
        return float(skm.accuracy_score(truth, pred))

    grid = [round(t, 3) for t in np.arange(0.05, 0.951, 0.01)]
    scored = [(t, score(t)) for t in grid]
    default = score(0.5)
    t_best, s_best = max(scored, key=lambda ts: (ts[1], -abs(ts[0] - 0.5)))
    if s_best <= default:  # no gain: keep the conventional cut-off
        t_best, s_best = 0.5, default
    return {
        "threshold": float(t_best),
        "metric": metric,
        "positive_label": _json_scalar(pos),
        "default_score": default,
        "tuned_score": s_best,
        "tuned_on": "out-of-fold predictions over train+validation",
        "grid": "0.05 to 0.95 step 0.01",
    }


def _f(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _json_scalar(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


class _Tracker:
    """MLflow bookkeeping for one training call; a no-op when tracking is off."""

    def __init__(
        self, tracking_uri: str | None, run_id: str | None, experiment_id: str | None
    ) -> None:
        self.on = bool(tracking_uri and run_id)
        self.uri, self.parent = tracking_uri, run_id
        if not self.on:
            return
        from mpm.tools import tracking

        self.t = tracking
        self.c = tracking.client(tracking_uri)  # type: ignore[arg-type]
        self.experiment_id = experiment_id or self.c.get_run(run_id).info.experiment_id  # type: ignore[arg-type]

    def log_candidate(self, cand: dict[str, Any], **context: Any) -> str | None:
        if not self.on:
            return None
        t, c = self.t, self.c
        run_name = f"{cand['name']}_training"
        rid = t.find_or_create_run(
            c,
            self.experiment_id,
            key=f"{self.parent}/{run_name}",
            run_name=run_name,
            parent_run_id=self.parent,
            tags={"mpm.family": cand["family"], "mpm.kind": "candidate"},
        )
        t.log_params(
            c,
            rid,
            {
                "family": cand["family"],
                **{f"param_{k}": v for k, v in cand.get("params", {}).items()},
                "target_metric": context["target_metric"],
                "model_type": context["model_type"],
                "seed": context["seed"],
                "cv_folds": CV_FOLDS,
                "cv_kind": context["cv_kind"],
                "cv_rows": context["n_train"],
                "n_train_rows": context["n_train"],
                "n_features": len(context["features"]),
                **(
                    {"positive_class": context["positive_class"]}
                    if context.get("positive_class") is not None
                    else {}
                ),
            },
        )
        metric = context["target_metric"]
        if cand["status"] == "ok":
            t.log_metrics(
                c,
                rid,
                {
                    f"cv_{metric}_mean": cand["cv_score"],
                    f"cv_{metric}_std": cand["cv_std"],
                    **{f"val_{k}": v for k, v in cand["val_metrics"].items()},
                    "fit_seconds": cand["fit_seconds"],
                },
            )
            for i, entry in enumerate(cand["search"]):
                if entry["cv_mean"] is not None:
                    t.log_metrics(c, rid, {f"search_cv_{metric}": entry["cv_mean"]}, step=i)
        t.log_dict(
            c,
            rid,
            {"search": cand["search"], "params": cand["params"], "error": cand["error"]},
            "search.json",
        )
        t.set_tags(c, rid, {"mpm.status": cand["status"], "error": cand["error"]})
        t.finish_run(c, rid, "FINISHED" if cand["status"] == "ok" else "FAILED")
        return rid

    def mark_best(
        self,
        best: dict[str, Any],
        candidates: list[dict[str, Any]],
        model_path: Path,
        result: dict[str, Any],
    ) -> None:
        if not self.on:
            return
        t, c = self.t, self.c
        for cand in candidates:
            if cand["run_id"]:
                t.set_tags(
                    c, cand["run_id"], {"model_quality": "best" if cand is best else "candidate"}
                )
        t.log_file(c, best["run_id"], model_path, "model")
        refit = result["protocol"]["refit"]
        t.log_params(
            c,
            best["run_id"],
            {"refit_on": refit["on"], "refit_rows": refit["rows"]},
        )
        t.log_metrics(c, best["run_id"], {"refit_seconds": best.get("refit_seconds", 0.0)})
        protocol = {
            "mpm.selection": "cv_mean",
            "mpm.refit_on": refit["on"],
            "mpm.cv_kind": result["cv_kind"],
        }
        if result.get("decision_threshold") is not None:
            protocol["mpm.decision_threshold"] = str(result["decision_threshold"])
        if result.get("positive_class_display") is not None:
            protocol["mpm.positive_class"] = result["positive_class_display"]
            protocol["mpm.positive_class_reason"] = result["positive_class_reason"]
        sensitive = result.get("sensitive_features") or {}
        if sensitive.get("present"):
            protocol["mpm.sensitive_attributes_excluded"] = (
                ", ".join(sensitive["excluded_from_features"]) or "none"
            )
            protocol["mpm.use_sensitive_attributes"] = str(sensitive["use_sensitive_attributes"])
        t.set_tags(c, best["run_id"], protocol)
        t.log_params(
            c,
            self.parent,  # type: ignore[arg-type]
            {
                "positive_class": result.get("positive_class_display"),
                "positive_class_source": result.get("positive_class_source"),
                "sensitive_attributes_excluded": ", ".join(sensitive["excluded_from_features"])
                if sensitive.get("present")
                else None,
                "use_sensitive_attributes": sensitive.get("use_sensitive_attributes"),
            },
        )
        t.set_tags(
            c,
            self.parent,  # type: ignore[arg-type]
            {
                "best_model_name": best["name"],
                "best_model_run_id": best["run_id"],
                **protocol,
            },
        )
        t.log_dict(c, self.parent, result["protocol"], "training/selection_protocol.json")  # type: ignore[arg-type]
        t.log_metrics(c, self.parent, result["metrics"])  # type: ignore[arg-type]
        t.log_file(c, self.parent, Path(result["summary_path"]), "training")  # type: ignore[arg-type]
