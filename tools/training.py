"""Model training: ``train_candidates`` (the real thing) and ``train_baseline`` (the fallback).

Each candidate family gets a small cross-validated hyper-parameter search on the training
split, is refitted with its best setting and scored on the validation split; the best by
the project's target metric wins. With tracking on, every candidate is a nested MLflow run
``{family}_training`` under the stage run, found again by a stable key on re-run so a
crashed-and-resumed stage never duplicates runs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mpm.tools.datasets import check_target, read_table
from mpm.tools.errors import ToolConfigError, TrainingError
from mpm.tools.features import build_preprocessor, recommend_features
from mpm.tools.metrics import (
    all_metrics,
    check_metric,
    check_model_type,
    cv_scorer,
    cv_sign,
    is_better,
    lower_is_better,
    predict,
)

CV_FOLDS = 3
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
) -> dict[str, Any]:
    """Train every candidate family, pick the best on validation, save it as ``model.joblib``.

    ``families`` restricts the candidates (classification: logistic_regression,
    random_forest, gradient_boosting; regression: ridge, random_forest, gradient_boosting).
    ``recommendations`` are EDA's feature-engineering actions (``None``: derive them from
    the training data as EDA would, without dropping sensitive attributes; ``[]``: only
    the imputing and encoding every model needs).

    Returns ``{candidates: [{name, family, run_id, params, search, cv_score, cv_std,
    val_score, val_metrics, fit_seconds, status, error}], best_model_name,
    best_model_run_id, best_model_score, target_metric, lower_is_better, model_path,
    summary_path, feature_columns, dropped_columns, ignored_recommendations, metrics}``.
    Raises ``TrainingError`` if every candidate fails.
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
    return _train(
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
    )
    try:
        return _train([(simple, [{}])], train_path, val_path, target_column, out_dir, **kwargs)
    except TrainingError:
        return _train([("dummy", [{}])], train_path, val_path, target_column, out_dir, **kwargs)


# --------------------------------------------------------------------------- the loop


def _train(
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
) -> dict[str, Any]:
    import joblib
    from sklearn.model_selection import KFold, StratifiedKFold
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
    if recommendations is None:  # not given: what EDA would recommend for this data
        recommendations = recommend_features(train, target_column, model_type)
    preprocessor, info = build_preprocessor(train, target_column, recommendations)
    features = info["feature_columns"]
    x_train, y_train = train[features], train[target_column]
    x_val, y_val = val[features], val[target_column]
    classes = sorted(y_train.unique().tolist()) if model_type == "classification" else []
    scorer = cv_scorer(target_metric, classes)
    folds = (
        StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed)
        if model_type == "classification"
        else KFold(CV_FOLDS, shuffle=True, random_state=seed)
    )
    tracker = _Tracker(tracking_uri, run_id, experiment_id)
    candidates: list[dict[str, Any]] = []
    fitted: dict[str, Any] = {}

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
                pipe, fields = _search_and_fit(
                    family,
                    grid,
                    preprocessor,
                    (x_train, y_train, x_val, y_val),
                    model_type=model_type,
                    target_metric=target_metric,
                    scorer=scorer,
                    folds=folds,
                    seed=seed,
                )
            cand.update(fields)
            fitted[name] = pipe
        except Exception as exc:  # one failing family must not sink the others
            cand.update(
                status="failed",
                error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            )
            cand.setdefault("params", {})
            cand.setdefault("search", [])
            cand.update(cv_score=None, cv_std=None, val_score=None, val_metrics={})
        cand["fit_seconds"] = round(time.perf_counter() - started, 3)
        cand["run_id"] = tracker.log_candidate(
            cand,
            model_type=model_type,
            target_metric=target_metric,
            seed=seed,
            n_train=len(train),
            features=features,
        )
        candidates.append(cand)

    ok = [c for c in candidates if c["status"] == "ok"]
    if not ok:
        raise TrainingError(
            "no candidate model could be trained: "
            + "; ".join(f"{c['name']}: {c['error']}" for c in candidates)
        )
    best = None
    for c in ok:
        if best is None or is_better(c["val_score"], best["val_score"], target_metric):
            best = c
    assert best is not None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    winner = fitted[best["name"]]
    if "n_jobs" in winner.named_steps["model"].get_params():
        # Parallel tree averaging sums in thread order: serve single-threaded so the same
        # input always gives bit-identical probabilities.
        winner.set_params(model__n_jobs=1)
    joblib.dump(winner, model_path)
    result: dict[str, Any] = {
        "candidates": candidates,
        "best_model_name": best["name"],
        "best_model_run_id": best["run_id"],
        "best_model_score": best["val_score"],
        "best_model_params": best["params"],
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
        "seed": seed,
        "metrics": {
            "best_model_score": best["val_score"],
            **{f"val_{k}": v for k, v in best["val_metrics"].items()},
            "n_candidates": float(len(candidates)),
            "n_candidates_failed": float(len(candidates) - len(ok)),
        },
    }
    summary_path = out / "training_summary.json"
    summary_path.write_text(json.dumps(result, indent=2, default=str, sort_keys=True))
    result["summary_path"] = str(summary_path)
    tracker.mark_best(best, candidates, model_path, result)
    return result


def _search_and_fit(
    family: str,
    grid: list[dict[str, Any]],
    preprocessor: Any,
    data: tuple[Any, Any, Any, Any],
    *,
    model_type: str,
    target_metric: str,
    scorer: Any,
    folds: Any,
    seed: int,
) -> tuple[Any, dict[str, Any]]:
    """Cross-validate every setting of ``grid`` on train, refit the best on all of train,
    score it on validation. Returns the fitted pipeline and the candidate's numbers."""
    import numpy as np
    from sklearn.model_selection import cross_validate
    from sklearn.pipeline import Pipeline

    x_train, y_train, x_val, y_val = data

    def pipeline(params: dict[str, Any]) -> Any:
        return Pipeline(
            [("preprocess", preprocessor), ("model", _estimator(family, model_type, params, seed))]
        )

    search = []
    for params in grid:
        cv = cross_validate(
            pipeline(params),
            x_train,
            y_train,
            cv=folds,
            scoring=scorer,
            n_jobs=1,
            error_score=np.nan,
        )
        scores = cv_sign(target_metric) * np.asarray(cv["test_score"], dtype=float)
        search.append(
            {"params": params, "cv_mean": _f(np.mean(scores)), "cv_std": _f(np.std(scores))}
        )
    best = None
    for entry in search:
        if entry["cv_mean"] is not None and is_better(
            entry["cv_mean"], None if best is None else best["cv_mean"], target_metric
        ):
            best = entry
    if best is None:
        raise TrainingError(f"{family}: every cross-validation fold failed")
    pipe = pipeline(best["params"])
    pipe.fit(x_train, y_train)
    y_pred, proba, classes = predict(pipe, x_val, model_type)
    val_metrics = all_metrics(model_type, y_val, y_pred, proba, classes)
    val_score = val_metrics.get(target_metric)
    if val_score is None or math.isnan(val_score):
        raise TrainingError(
            f"{family}: {target_metric} could not be computed on the validation split"
        )
    return pipe, {
        "params": best["params"],
        "search": search,
        "cv_score": best["cv_mean"],
        "cv_std": best["cv_std"],
        "val_score": val_score,
        "val_metrics": val_metrics,
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
                "n_train_rows": context["n_train"],
                "n_features": len(context["features"]),
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
        t.set_tags(
            c,
            self.parent,  # type: ignore[arg-type]
            {"best_model_name": best["name"], "best_model_run_id": best["run_id"]},
        )
        t.log_metrics(c, self.parent, result["metrics"])  # type: ignore[arg-type]
        t.log_file(c, self.parent, Path(result["summary_path"]), "training")  # type: ignore[arg-type]
