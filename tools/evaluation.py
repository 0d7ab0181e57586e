"""Independent validation of a trained model on the held-out test split: ``validate_model``.

Performance (every usual metric, the target metric against the success threshold),
calibration, robustness to small input noise and group fairness. The flat ``metrics``
dict uses fixed names (``test_roc_auc``, ``expected_calibration_error``,
``robustness_drop``, ``demographic_parity_difference`` ...) that governance policies
match as model-metric evidence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpm.tools import plots
from mpm.tools.data_quality import column_kinds
from mpm.tools.datasets import check_target, read_table
from mpm.tools.degenerate import degenerate_findings
from mpm.tools.errors import DataError
from mpm.tools.fairness import compare_limits, fairness_report, proxy_findings
from mpm.tools.fairness import flat_metrics as fairness_flat
from mpm.tools.leakage import blocking as blocking_findings
from mpm.tools.metrics import (
    all_metrics,
    check_metric,
    check_model_type,
    lower_is_better,
    meets_threshold,
    positive_label,
    predict,
)

if TYPE_CHECKING:
    import numpy as np

CALIBRATION_BINS = 10
NOISE_LEVEL = 0.1  # gaussian noise, as a fraction of each numeric feature's std


def load_model(model_path: str) -> Any:
    import joblib

    path = Path(model_path)
    if not path.is_file():
        raise DataError(f"{model_path}: model file not found")
    return joblib.load(path)


def model_input_columns(pipeline: Any) -> list[str]:
    """The columns the fitted pipeline was trained on (and so needs at prediction time)."""
    names = getattr(pipeline, "feature_names_in_", None)
    if names is None:
        raise DataError("model: the pipeline was not fitted on a data frame; input columns unknown")
    return [str(c) for c in names]


def validate_model(
    model_path: str,
    test_path: str,
    target_column: str,
    out_dir: str,
    *,
    model_type: str,
    target_metric: str,
    success_threshold: float,
    sensitive_attributes: Sequence[str] = (),
    seed: int = 42,
    noise_level: float = NOISE_LEVEL,
    tracking_uri: str | None = None,
    run_id: str | None = None,
    decision_threshold: float | None = None,
    train_path: str | None = None,
    findings: Sequence[dict[str, Any]] = (),
    positive_class: Any = None,
    positive_class_reason: str | None = None,
    fairness_limits: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Score the saved pipeline on the test split and write ``validation_report.json`` plus
    ``calibration.png`` (classification) or ``predicted_vs_actual.png`` (regression).

    Returns ``{test_score, target_metric, success_threshold, meets_threshold,
    lower_is_better, metrics, test_metrics, confusion_matrix, calibration, robustness,
    fairness, report_path, plots, n_test_rows}``; ``metrics`` is flat (``test_*``,
    ``expected_calibration_error``, ``robustness_drop``, ``demographic_parity_difference``,
    ``equalized_odds_difference`` ...) and is logged to the MLflow run ``run_id``.

    ``decision_threshold``: a binary classifier's tuned cut-off (positive-class probability
    above it predicts the positive class); every label metric, the confusion matrix, the
    per-class report and the fairness figures are at that threshold. ``train_path``: the
    development data, for the naive baseline the leakage checks compare against.
    ``findings``: what earlier stages found (data-quality gates, data-time leakage).

    ``positive_class``: the positive label of a binary target as training chose it (with
    ``positive_class_reason``); every binary metric, the threshold, calibration and every
    fairness rate are for it (None: the larger label). ``fairness_limits``: the parity and
    equalised-odds limits the applicable policies state (``{metric: {value, operator,
    source}}``); the documented defaults where none is stated.

    Fairness results (key ``fairness``): ``attributes`` (per sensitive attribute: per-group
    ``selection_rate``, ``true_positive_rate``, ``false_positive_rate``, ``accuracy``,
    ``count``; ``demographic_parity_difference``, ``equalized_odds_difference``),
    ``metrics`` (the worst case over attributes), ``limits`` (each difference vs its limit
    and where the limit comes from), ``proxies`` (model inputs associated with a sensitive
    attribute), ``positive_class`` and ``decision_threshold``. Degenerate models (a single
    predicted class, constant scores, chance-level AUC, trivially zero parity) are blocking
    findings (``tools/degenerate.py``).

    The verdict: ``validation_passed`` only when the threshold is met *and* no blocking
    finding remains (``blocking_findings``: failed data-quality gates, likely leaks in a
    model input), each with a stable ``id`` a signed risk acceptance can name.
    """
    import numpy as np

    model_type = check_model_type(model_type)
    target_metric = check_metric(target_metric, model_type)
    pipeline = load_model(model_path)
    test = read_table(Path(test_path))
    check_target(test, target_column, model_type, f"test split {Path(test_path).name}")
    test = test[test[target_column].notna()].reset_index(drop=True)
    inputs = model_input_columns(pipeline)
    missing = [c for c in inputs if c not in test.columns]
    if missing:
        raise DataError(
            f"{Path(test_path).name}: model input columns missing from the test data: {', '.join(missing)}"
        )
    x, y = test[inputs], test[target_column]
    y_pred, proba, classes = predict(pipeline, x, model_type)
    pos_label = positive_label(classes, positive_class) if len(classes) == 2 else None
    threshold = _check_threshold(decision_threshold, classes)
    if threshold is not None:
        y_pred = apply_threshold(proba, classes, threshold, pos_label)
    test_metrics = all_metrics(model_type, y, y_pred, proba, classes, pos_label)
    if target_metric not in test_metrics:
        raise DataError(
            f"{Path(test_path).name}: {target_metric} cannot be computed on the test split (e.g. a single class present)"
        )
    score = test_metrics[target_metric]
    passed = meets_threshold(score, float(success_threshold), target_metric)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "test_score": score,
        "target_metric": target_metric,
        "success_threshold": float(success_threshold),
        "meets_threshold": passed,
        "lower_is_better": lower_is_better(target_metric),
        "test_metrics": test_metrics,
        "n_test_rows": len(test),
        "model_path": str(model_path),
        "input_columns": inputs,
        "positive_class": _scalar(pos_label) if pos_label is not None else None,
        "positive_class_reason": _positive_reason(pos_label, positive_class, positive_class_reason),
    }
    plot_paths: list[str] = []
    flat: dict[str, float] = {f"test_{k}": v for k, v in test_metrics.items()}
    if model_type == "classification":
        from sklearn.metrics import confusion_matrix

        report["confusion_matrix"] = {
            "labels": [_scalar(c) for c in classes],
            "matrix": confusion_matrix(y, y_pred, labels=classes).tolist(),
            "decision_threshold": 0.5 if threshold is None else threshold,
        }
        report["decision_threshold"] = threshold
        report["per_class"] = per_class_report(y, y_pred, classes)
        for label, row in report["per_class"].items():
            key = _metric_key(label)
            flat[f"test_recall_class_{key}"] = row["recall"]
            flat[f"test_precision_class_{key}"] = row["precision"]
        flat["test_min_class_recall"] = min(r["recall"] for r in report["per_class"].values())
        if proba is not None:
            calib = calibration(np.asarray(y), proba, classes, pos_label=pos_label)
            report["calibration"] = calib
            flat["expected_calibration_error"] = calib["expected_calibration_error"]
            title = (
                "Calibration (positive class)"
                if calib["kind"] == "positive_class"
                else "Calibration (top-label confidence)"
            )
            plot_paths.append(
                plots.calibration(out / "calibration.png", calib["bins"], title=title)
            )
    else:
        sample = np.random.default_rng(seed).permutation(len(y))[:3000]
        plot_paths.append(
            plots.scatter(
                out / "predicted_vs_actual.png",
                np.asarray(y, dtype=float)[sample],
                np.asarray(y_pred, dtype=float)[sample],
                title="Predicted vs actual (test)",
                xlabel="actual",
                ylabel="predicted",
                diagonal=True,
            )
        )

    robustness = _robustness(
        pipeline,
        x,
        y,
        model_type,
        target_metric,
        score,
        y_pred,
        seed,
        noise_level,
        threshold,
        pos_label,
    )
    report["robustness"] = robustness
    flat["robustness_drop"] = robustness["drop"]
    flat["robustness_noisy_score"] = robustness["noisy_score"]
    if "prediction_flip_rate" in robustness:
        flat["prediction_flip_rate"] = robustness["prediction_flip_rate"]

    present = [c for c in sensitive_attributes if c in test.columns]
    fairness = (
        fairness_report(
            y, y_pred, test[present], model_type=model_type, classes=classes, pos_label=pos_label
        )
        if present
        else {"attributes": {}, "metrics": {}}
    )
    fairness["requested"] = list(sensitive_attributes)
    fairness["missing_attributes"] = [c for c in sensitive_attributes if c not in test.columns]
    never: list[Any] = []
    if model_type == "classification":
        # the fairness figures are for the labels the model gives at its threshold; a class
        # it never predicts makes the parity differences trivially zero
        fairness["decision_threshold"] = 0.5 if threshold is None else threshold
        never = [c for c, r in report["per_class"].items() if r["predicted"] == 0]
        fairness["never_predicted_classes"] = never
        if never and present:
            fairness["note"] = (
                f"class(es) {', '.join(map(str, never))} never predicted: group rates are "
                "trivially equal and say nothing about fairness"
            )
    fairness["positive_class"] = report["positive_class"]
    fairness["limits"] = compare_limits(fairness["metrics"], dict(fairness_limits or {}))
    proxies: list[dict[str, Any]] = []
    if present and train_path:
        proxies, associations = proxy_findings(
            read_table(Path(train_path)), inputs, present, seed=seed
        )
        fairness["proxies"] = [f["evidence"] for f in proxies]
        fairness["associations"] = associations[:20]
    fairness["sensitive_inputs"] = [c for c in present if c in inputs]
    report["fairness"] = fairness
    flat.update(fairness["metrics"])
    flat.update(fairness_flat(fairness))
    flat["test_score"] = score
    flat["meets_threshold"] = 1.0 if passed else 0.0

    all_findings = [dict(f) for f in findings]
    degenerate, degenerate_evidence = degenerate_findings(
        model_type=model_type,
        y_true=y,
        y_pred=y_pred,
        proba=proba,
        classes=classes,
        pos_label=pos_label,
        fairness_evaluated=bool(fairness["metrics"]),
        seed=seed,
    )
    report["degeneracy"] = degenerate_evidence
    if "auc_interval" in degenerate_evidence:
        ci = degenerate_evidence["auc_interval"]
        flat["test_roc_auc_ci_lower"] = ci["lower"]
        flat["test_roc_auc_ci_upper"] = ci["upper"]
    all_findings.extend(degenerate)
    all_findings.extend(proxies)
    for name, entry in fairness["limits"].items():
        if not entry["within_limit"]:
            all_findings.append(
                {
                    "id": f"fairness.limit_exceeded.{name}",
                    "category": "fairness",
                    "kind": "limit_exceeded",
                    "column": None,
                    "severity": "warning",
                    "reason": f"{name} {entry['value']:.4f} is not {entry['operator']} "
                    f"{entry['limit']} ({entry['source']})",
                    "evidence": entry,
                }
            )
    if never:
        all_findings.append(
            {
                "id": "model.never_predicted_class",
                "category": "model",
                "kind": "never_predicted_class",
                "column": None,
                "severity": "warning",
                "reason": f"class(es) {', '.join(map(str, never))} never predicted on the test split",
                "evidence": {"classes": never},
            }
        )
    if train_path:
        all_findings.extend(
            _model_leakage(
                pipeline,
                test_path,
                train_path,
                target_column,
                out,
                model_type=model_type,
                target_metric=target_metric,
                score=score,
                seed=seed,
                data_level=[f for f in findings if f.get("category") == "leakage"],
                pos_label=pos_label,
            )
        )
    blocking = blocking_findings(all_findings, inputs)
    report["findings"] = all_findings
    report["blocking_findings"] = blocking
    report["validation_passed"] = bool(passed and not blocking)
    if report["validation_passed"]:
        report["verdict"] = "passed"
    elif blocking:
        report["verdict"] = "blocked by findings: " + "; ".join(
            f"{f['id']} ({f['reason']})" for f in blocking
        )
    else:
        report["verdict"] = "below the success threshold"
    flat["n_findings"] = float(len(all_findings))
    flat["n_blocking_findings"] = float(len(blocking))
    flat["validation_passed"] = 1.0 if report["validation_passed"] else 0.0
    report["metrics"] = flat

    report_path = out / "validation_report.json"
    report_path.write_text(json.dumps(report, indent=2, default=str, sort_keys=True))
    report["report_path"] = str(report_path)
    report["plots"] = plot_paths

    if tracking_uri and run_id:
        from mpm.tools import tracking

        c = tracking.client(tracking_uri)
        tracking.log_metrics(c, run_id, flat)
        status = (
            "passed"
            if report["validation_passed"]
            else "blocked_by_findings"
            if blocking
            else "below_threshold"
        )
        tracking.set_tags(
            c,
            run_id,
            {
                "validation_status": status,
                "blocking_findings": ", ".join(f["id"] for f in blocking) or None,
                "positive_class": None if pos_label is None else str(_scalar(pos_label)),
                "positive_class_reason": report["positive_class_reason"],
            },
        )
        for p in [report_path, *map(Path, plot_paths)]:
            tracking.log_file(c, run_id, p, "validation")
    return report


def calibration(
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[Any],
    n_bins: int = CALIBRATION_BINS,
    pos_label: Any = None,
) -> dict[str, Any]:
    """Reliability bins and expected calibration error (ECE = sum over bins of
    share_of_rows * |observed frequency - mean predicted probability|).

    Binary: the positive-class probability against the positive rate. Multiclass: the
    top-label confidence against accuracy.
    """
    import numpy as np

    classes = list(classes)
    if len(classes) == 2:
        pos = positive_label(classes, pos_label)
        conf = proba[:, classes.index(pos)]
        hit = (y_true == pos).astype(float)
        kind = "positive_class"
    else:
        conf = proba.max(axis=1)
        hit = (np.asarray(classes, dtype=object)[proba.argmax(axis=1)] == y_true).astype(float)
        kind = "top_label"
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        in_bin = index == b
        n = int(in_bin.sum())
        mean_pred = float(conf[in_bin].mean()) if n else 0.0
        frac = float(hit[in_bin].mean()) if n else 0.0
        ece += (n / len(conf)) * abs(frac - mean_pred)
        bins.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": n,
                "mean_predicted": mean_pred,
                "fraction_positive": frac,
            }
        )
    return {"kind": kind, "bins": bins, "expected_calibration_error": float(ece), "n_bins": n_bins}


def _robustness(
    pipeline: Any,
    x: Any,
    y: Any,
    model_type: str,
    metric: str,
    clean_score: float,
    clean_pred: Any,
    seed: int,
    noise_level: float,
    threshold: float | None = None,
    pos_label: Any = None,
) -> dict[str, Any]:
    """The target metric again after adding N(0, (noise_level * std)^2) to every numeric
    input column; ``drop`` is how much worse it got (positive = worse, either direction)."""
    import numpy as np

    numeric, _ = column_kinds(x, list(x.columns))
    rng = np.random.default_rng(seed)
    noisy = x.copy()
    for c in numeric:
        col = noisy[c].astype(float)
        std = float(col.std(ddof=0)) if col.notna().any() else 0.0
        noisy[c] = col + rng.normal(0.0, noise_level * std, len(col)) if std > 0 else col
    y_pred, proba, classes = predict(pipeline, noisy, model_type)
    if threshold is not None:
        y_pred = apply_threshold(proba, classes, threshold, pos_label)
    noisy_score = all_metrics(model_type, y, y_pred, proba, classes, pos_label).get(
        metric, float("nan")
    )
    drop = (noisy_score - clean_score) if lower_is_better(metric) else (clean_score - noisy_score)
    out: dict[str, Any] = {
        "noise_level": noise_level,
        "perturbed_columns": numeric,
        "clean_score": clean_score,
        "noisy_score": float(noisy_score),
        "drop": float(drop),
        "relative_drop": float(drop / abs(clean_score)) if clean_score else 0.0,
    }
    if model_type == "classification":
        out["prediction_flip_rate"] = float(np.mean(np.asarray(y_pred) != np.asarray(clean_pred)))
    return out


def _positive_reason(pos_label: Any, given: Any, reason: str | None) -> str | None:
    if pos_label is None:
        return None
    if given is not None:
        return reason or "given to the validator"
    return "the larger label: no positive class was given"


def _scalar(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


def _metric_key(label: Any) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(label))[:60]


def _check_threshold(threshold: float | None, classes: Sequence[Any]) -> float | None:
    if threshold is None or len(classes) != 2:
        return None
    t = float(threshold)
    if not 0.0 < t < 1.0:
        raise DataError(f"decision_threshold: expected a probability between 0 and 1; got {t!r}")
    return t


def apply_threshold(
    proba: Any, classes: Sequence[Any], threshold: float, pos_label: Any = None
) -> Any:
    """Binary labels at ``threshold`` on the positive-class probability (the rule the
    served pyfunc model applies, so validation and serving agree)."""
    import numpy as np

    classes = list(classes)
    pos = positive_label(classes, pos_label)
    neg = next(c for c in classes if c != pos)
    p = proba[:, classes.index(pos)]
    return np.where(p > threshold, pos, neg)


def per_class_report(y: Any, y_pred: Any, classes: Sequence[Any]) -> dict[str, Any]:
    """Precision, recall, F1, support and how often each class is predicted."""
    import numpy as np
    from sklearn.metrics import precision_recall_fscore_support

    prec, rec, f1, support = precision_recall_fscore_support(
        y, y_pred, labels=list(classes), zero_division=0
    )
    predicted = [int(np.sum(np.asarray(y_pred) == c)) for c in classes]
    return {
        str(_scalar(c)): {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
            "predicted": predicted[i],
        }
        for i, c in enumerate(classes)
    }


def _model_leakage(
    pipeline: Any,
    test_path: str,
    train_path: str,
    target_column: str,
    out: Path,
    *,
    model_type: str,
    target_metric: str,
    score: float,
    seed: int,
    data_level: list[dict[str, Any]],
    pos_label: Any = None,
) -> list[dict[str, Any]]:
    """Validation-time leakage findings: the result next to the naive baseline, and the
    importance concentration of the trained model's inputs (permutation importance on the
    test split; a diagnostic, nothing is selected on it)."""
    import joblib

    from mpm.tools.baseline import naive_baseline_score
    from mpm.tools.explain import permutation_importances
    from mpm.tools.leakage import model_findings

    baseline = naive_baseline_score(
        train_path, test_path, target_column, model_type, target_metric, pos_label
    )
    work = out / "leakage"
    work.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, work / "model.joblib")
    importance = permutation_importances(
        str(work / "model.joblib"),
        test_path,
        target_column,
        str(work),
        model_type=model_type,
        target_metric=target_metric,
        seed=seed,
        n_repeats=3,
        pos_label=pos_label,
    )
    (work / "model.joblib").unlink()
    return model_findings(
        test_score=score,
        baseline_score=float(baseline),
        metric=target_metric,
        importances=importance["importances"],
        data_level=data_level,
    )
