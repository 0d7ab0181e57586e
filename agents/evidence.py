"""The governance evidence the agents record, derived from requirements and tool results.

``reference/governance/evidence_map.yaml`` reads each policy answer from a stage's
``StageResult.evidence``; this module turns what the tools actually returned into those
values, in the shape the policy input expects (text for text areas, an option string for
a radio or select, a list of options for a checkbox, ``True``/``False`` where the map
translates booleans, a ``{passed, ...}`` result for scripted and monitoring checks).

Only facts the run itself establishes are derived here. Questions that need a person's
judgement (lawful basis, risk tolerance, harm severity, decision autonomy, out-of-scope
uses, ...) have no function: they stay unanswered so the graph asks the project owner.
Every function returns ``None`` when the facts it needs are missing, and the caller then
records nothing rather than a guess.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

LOWER_IS_BETTER = frozenset({"rmse", "mae", "mape"})
MAX_RELATIVE_DROP = 0.05
"""Stability criterion: the target metric may worsen by at most 5% of its clean value
under the validator's input noise."""

LINEAR_FAMILIES = frozenset({"logistic_regression", "ridge"})
TREE_FAMILIES = frozenset({"random_forest", "gradient_boosting"})


def _op(metric: str) -> str:
    return "<=" if metric in LOWER_IS_BETTER else ">="


def _f(value: Any, digits: int = 4) -> str:
    return f"{float(value):.{digits}f}" if isinstance(value, int | float) else "n/a"


def _names(items: Sequence[str]) -> str:
    return ", ".join(str(i) for i in items)


# --------------------------------------------------------------------------- business analysis


def success_criterion(requirements: Mapping[str, Any]) -> str:
    metric = requirements["target_metric"]
    return f"{metric} {_op(metric)} {requirements['success_threshold']} on the held-out test set"


def business_owner(requirements: Mapping[str, Any]) -> str | None:
    """Who asked for the project (a team or role account), else the first stakeholder."""
    owner = requirements.get("requested_by") or next(
        iter(requirements.get("stakeholders") or []), None
    )
    return str(owner) if owner else None


def data_categories(sources: Sequence[Mapping[str, Any]]) -> list[str] | None:
    """The intake policy's data categories that the data sources' URIs establish.

    A scikit-learn bundled data set is public, a ``synthetic:`` source is synthetic data;
    a source declared ``public`` is public or open data. Any other source (a file of
    unknown origin) needs a person, so nothing is returned for the whole list."""
    found: list[str] = []
    for source in sources:
        uri = str(source.get("uri", ""))
        if uri.startswith("synthetic:"):
            category = "Synthetic data"
        elif uri.startswith("sklearn:") or source.get("sensitivity") == "public":
            category = "Public or open data"
        else:
            return None
        if category not in found:
            found.append(category)
    return found or None


# --------------------------------------------------------------------------- data acquisition


def data_lineage(
    source: Mapping[str, Any],
    info: Mapping[str, Any],
    *,
    seed: int,
    extracted_on: str,
    sha256: str | None,
) -> str:
    """Where the data came from and how it was extracted, from ``acquire_dataset``'s result."""
    uri = str(source["uri"])
    kind = info.get("source")
    if kind == "sklearn":
        origin = f"the data set {uri.removeprefix('sklearn:')!r} bundled with scikit-learn"
    elif kind == "synthetic":
        origin = f"mpm's synthetic {uri.removeprefix('synthetic:')!r} generator with seed {seed}"
    else:
        origin = f"the file {uri}"
    sampled = (
        f", sampled to {source['rows']} rows with seed {seed}"
        if source.get("rows") and kind != "synthetic"
        else ""
    )
    columns = info.get("columns")
    n_columns = columns if isinstance(columns, int) else len(columns or [])
    text = (
        f"{source['name']} ({uri}): loaded from {origin}{sampled} on {extracted_on} by the mpm "
        f"data wrangler; {info['rows']} rows x {n_columns} columns, target "
        f"{info.get('target_column')!r}."
    )
    if info.get("description"):
        text += f" Source description: {str(info['description']).rstrip('.')}."
    if sha256:
        text += f" Extract stored as {info.get('path', 'raw.parquet').rsplit('/', 1)[-1]} (sha256 {sha256})."
    return text


def split_lineage(split: Mapping[str, Any]) -> str:
    kind = split.get("split_kind")
    how = (
        f"ordered by {split.get('time_column')!r} (oldest rows train, newest test), "
        if kind == "time_ordered"
        else f"grouped by {split.get('group_column')!r} (a group in one split only), "
        if kind == "grouped"
        else "stratified by the target, "
        if split.get("stratified")
        else ""
    )
    dropped = int(split.get("dropped_missing_target") or 0)
    return (
        f"Split reproducibly ({how}seed {split.get('seed')}) into train {split['train_rows']}, "
        f"validation {split['val_rows']} and test {split['test_rows']} rows"
        + (f"; {dropped} rows without a target value dropped." if dropped else ".")
    )


def today() -> str:
    return dt.date.today().isoformat()


# --------------------------------------------------------------------------- model development


def methodology(result: Mapping[str, Any], *, cv_folds: int) -> str:
    """The modelling approach, from ``train_candidates`` (or ``train_baseline``)."""
    metric = result["target_metric"]
    candidates = list(result.get("candidates") or [])
    ok = [c for c in candidates if c.get("status") == "ok"]
    failed = [c for c in candidates if c.get("status") != "ok"]
    cv_kind = str(
        result.get("cv_kind")
        or ("stratified" if result.get("model_type") == "classification" else "shuffled")
    )
    cv_text = {
        "stratified": "stratified ",
        "grouped": "grouped ",
        "time_ordered": "time-ordered ",
        "shuffled": "",
    }.get(cv_kind, "")
    searches = "; ".join(
        f"{c['name']}: {len(c.get('search') or [])} setting(s), best {c.get('params') or 'defaults'}"
        for c in ok
    )
    dropped = list(result.get("dropped_columns") or [])
    dropped_text = f"; dropped before training: {_names(dropped)}" if dropped else ""
    direction = "lowest" if result.get("lower_is_better") else "highest"
    text = (
        f"Supervised {result.get('model_type')}: {len(candidates)} candidate model "
        f"famil{'y' if len(candidates) == 1 else 'ies'} compared "
        f"({_names([c['name'] for c in candidates])}), each a scikit-learn pipeline of "
        f"preprocessing (imputation, encoding and scaling as recommended by the exploratory "
        f"analysis; {len(result.get('feature_columns') or [])} input features{dropped_text}) and "
        f"the model. Every family and setting was scored by {cv_folds}-fold {cv_text}"
        f"cross-validation over train+validation ({_rows(result)} rows) by {metric} ({searches}); "
        f"the family and its setting were both chosen on the cross-validation mean, and the "
        f"chosen pipeline was refitted once on train+validation. The test split was not used. "
        f"Champion: {result['best_model_name']} with cross-validated {metric} "
        f"{_f(result['best_model_score'])} (+/- {_f(_champion(result).get('cv_std'))}), the "
        f"{direction} of the candidates."
    )
    protocol = result.get("protocol") or {}
    if protocol.get("class_weighting"):
        imb = protocol.get("imbalance") or {}
        text += (
            f" The target is imbalanced (smallest class {imb.get('min_class')!r} is "
            f"{float(imb.get('min_share') or 0):.1%} of rows), so every family also had a "
            "class-weighted (balanced) candidate setting."
        )
    tuned = result.get("threshold_tuning")
    if tuned:
        text += (
            f" Decision threshold {tuned['threshold']:.2f} for the positive class "
            f"{tuned.get('positive_label')!r}, tuned for {tuned['metric']} on the out-of-fold "
            f"predictions ({tuned['metric']} {_f(tuned['default_score'])} at 0.50, "
            f"{_f(tuned['tuned_score'])} at {tuned['threshold']:.2f})."
        )
    if failed:
        text += (
            " Failed candidates: "
            + "; ".join(f"{c['name']} ({c.get('error')})" for c in failed)
            + "."
        )
    return text


def _rows(result: Mapping[str, Any]) -> Any:
    if result.get("n_refit_rows") is not None:
        return result["n_refit_rows"]
    return result.get("n_train_rows")


def _champion(result: Mapping[str, Any]) -> Mapping[str, Any]:
    return next(
        (
            c
            for c in result.get("candidates") or []
            if c.get("name") == result.get("best_model_name")
        ),
        {},
    )


def challenger_comparison(result: Mapping[str, Any]) -> str | None:
    """Champion against every challenger on validation and cross-validation scores;
    ``None`` when no challenger was built (a single-candidate fallback)."""
    metric = result["target_metric"]
    ok = [c for c in result.get("candidates") or [] if c.get("status") == "ok"]
    champion = next((c for c in ok if c["name"] == result["best_model_name"]), None)
    challengers = [c for c in ok if c is not champion]
    if champion is None or not challengers:
        return None

    def describe(c: Mapping[str, Any]) -> str:
        return (
            f"{c['name']} validation {metric} {_f(c.get('val_score'))} "
            f"(cross-validation mean over the validation folds, +/- {_f(c.get('cv_std'))})"
        )

    best = challengers[0]
    for c in challengers[1:]:
        better = (
            c["val_score"] < best["val_score"]
            if result.get("lower_is_better")
            else c["val_score"] > best["val_score"]
        )
        if better:
            best = c
    margin = abs(float(champion["val_score"]) - float(best["val_score"]))
    return (
        f"Champion {describe(champion)}. Challengers: "
        + "; ".join(describe(c) for c in challengers)
        + f". The champion leads the best challenger ({best['name']}) by {_f(margin)} "
        f"cross-validated {metric}."
    )


def limitations(
    result: Mapping[str, Any],
    profile: Mapping[str, Any],
    requirements: Mapping[str, Any],
) -> str:
    """Known limitations, from the data profile, the training result and the data source."""
    items: list[str] = []
    rows = profile.get("rows")
    sources = requirements.get("data_sources") or []
    origin = ", ".join(str(s.get("uri")) for s in sources)
    items.append(
        f"Developed on {rows if rows is not None else 'an unknown number of'} rows from {origin}; "
        "behaviour on a population that differs from this data is unknown"
    )
    if any(str(s.get("uri", "")).startswith("synthetic:") for s in sources):
        items.append(
            "the development data is synthetic: the model must be re-validated on real data before any real decision"
        )
    n_train = result.get("n_train_rows")
    if isinstance(n_train, int) and n_train < 1000:
        items.append(
            f"the training split is small ({n_train} rows), so scores carry wide uncertainty"
        )
    missing = profile.get("missing_rate")
    if isinstance(missing, int | float) and missing > 0:
        items.append(
            f"{missing:.1%} of feature cells are missing and are imputed (the worst column "
            f"is {float(profile.get('max_column_missing_rate') or 0):.1%} missing)"
        )
    features = set(result.get("feature_columns") or [])
    leaks = list(
        dict.fromkeys(
            [str(h.get("column")) for h in profile.get("leakage_hints") or []]
            + [
                str(f.get("column"))
                for f in profile.get("leakage_findings") or []
                if f.get("severity") == "likely_leak"
            ]
        )
    )
    if leaks:
        used = [c for c in leaks if c in features]
        items.append(
            f"possible target leakage flagged in {_names(leaks)}"
            + (
                f"; still model inputs: {_names(used)}, check they are known at prediction time"
                if used
                else " (excluded from the inputs)"
            )
        )
    balance = profile.get("class_balance") or {}
    share = balance.get("min_share")
    if isinstance(share, int | float) and share < 0.2:
        items.append(
            f"imbalanced classes: the smallest class ({balance.get('min_class')}) is {share:.1%} of rows"
        )
    sensitive = [c for c in requirements.get("sensitive_attributes") or [] if c not in features]
    if sensitive:
        items.append(
            f"the sensitive attributes {_names(sensitive)} are not model inputs, but other "
            "features may act as proxies for them"
        )
    family = str(result.get("best_model_name", "")).removesuffix("_baseline")
    if family in LINEAR_FAMILIES:
        items.append("a linear model: it assumes additive effects of the transformed inputs")
    elif family in TREE_FAMILIES:
        items.append(
            "a tree ensemble: it does not extrapolate beyond the input ranges seen in training"
        )
    elif family == "dummy":
        items.append("the fallback dummy model predicts a constant and carries no signal")
    kind = result.get("cv_kind")
    if kind == "time_ordered":
        items.append(
            "validated out-of-time on the newest rows; drift after deployment is left to monitoring"
        )
    else:
        items.append(
            "validated on a random hold-out of the same data, not out-of-time: drift after "
            "deployment is left to monitoring"
        )
    return "; ".join(items) + "."


# --------------------------------------------------------------------------- model validation


def evaluation_approach(
    report: Mapping[str, Any],
    *,
    model_type: str,
    split: Mapping[str, Any] | None,
    cv_folds: int,
    sensitive_attributes: Sequence[str],
) -> str:
    """The evaluation design, from ``validate_model``'s report and the data split."""
    n_test = report.get("n_test_rows")
    if split:
        total = sum(int(split.get(k) or 0) for k in ("train_rows", "val_rows", "test_rows"))
        share = f"{int(split['test_rows']) / total:.0%} of the data, " if total else ""
        kind = split.get("split_kind")
        how = (
            f"the newest rows by {split.get('time_column')!r}, "
            if kind == "time_ordered"
            else f"grouped by {split.get('group_column')!r}, "
            if kind == "grouped"
            else "stratified by the target, "
            if split.get("stratified")
            else ""
        )
        design = f"a held-out test split of {n_test} rows ({share}{how}seed {split.get('seed')})"
        dev = int(split.get("train_rows") or 0) + int(split.get("val_rows") or 0)
        selection = (
            f"Candidates were compared and selected by the mean of {cv_folds}-fold "
            f"cross-validation over train+validation ({dev} rows), and the chosen pipeline was "
            "refitted there before this single test evaluation."
        )
    else:
        design, selection = f"a held-out test split of {n_test} rows", ""
    metric = report["target_metric"]
    checks = [
        f"{metric} against the success threshold ({_op(metric)} {report.get('success_threshold')})",
        f"all standard {model_type} metrics",
    ]
    if report.get("calibration"):
        checks.append(
            f"calibration (expected calibration error over {report['calibration'].get('n_bins')} bins)"
        )
    robustness = report.get("robustness") or {}
    if robustness:
        checks.append(
            f"robustness to Gaussian noise of {float(robustness.get('noise_level', 0)):.0%} of each "
            "numeric input's standard deviation"
        )
    measured = [
        a
        for a in sensitive_attributes
        if a in ((report.get("fairness") or {}).get("attributes") or {})
    ]
    if measured:
        checks.append(f"group fairness across {_names(measured)} (fairlearn)")
    return (
        f"The champion was scored once on {design}, never used for training, hyper-parameter "
        f"search or model selection. {selection} On the test split: {'; '.join(checks)}."
    ).replace("  ", " ")


def outcome_analysis(report: Mapping[str, Any]) -> str:
    """Test results against the threshold, calibration, robustness and group gaps."""
    metric = report["target_metric"]
    met = "met" if report.get("meets_threshold") else "NOT met"
    others = ", ".join(
        f"{k} {_f(v)}" for k, v in sorted((report.get("test_metrics") or {}).items()) if k != metric
    )
    parts = [
        f"Test {metric} {_f(report['test_score'])} against the threshold "
        f"{_op(metric)} {report.get('success_threshold')}: {met} ({report.get('n_test_rows')} test rows)",
    ]
    if others:
        parts.append(f"other test metrics: {others}")
    calib = report.get("calibration") or {}
    if "expected_calibration_error" in calib:
        parts.append(f"expected calibration error {_f(calib['expected_calibration_error'], 3)}")
    rob = report.get("robustness") or {}
    if rob:
        flips = (
            f", {float(rob['prediction_flip_rate']):.1%} of predictions changed"
            if "prediction_flip_rate" in rob
            else ""
        )
        parts.append(
            f"under {float(rob.get('noise_level', 0)):.0%} input noise {metric} was "
            f"{_f(rob.get('noisy_score'))} (drop {_f(rob.get('drop'))}{flips})"
        )
    if report.get("decision_threshold") is not None:
        parts.append(
            f"labels at the tuned decision threshold {float(report['decision_threshold']):.2f}"
        )
    per_class = report.get("per_class") or {}
    if per_class:
        parts.append(
            "per class: "
            + ", ".join(
                f"{label} recall {_f(r.get('recall'))} precision {_f(r.get('precision'))} "
                f"(n={int(r.get('support') or 0)})"
                for label, r in per_class.items()
            )
        )
    cm = report.get("confusion_matrix") or {}
    if cm.get("matrix"):
        parts.append(
            f"confusion matrix (rows true, columns predicted, labels {cm.get('labels')}): {cm['matrix']}"
        )
    fairness = (report.get("fairness") or {}).get("metrics") or {}
    if fairness:
        parts.append(
            "worst group gaps: " + ", ".join(f"{k} {_f(v)}" for k, v in sorted(fairness.items()))
        )
    blocking = report.get("blocking_findings") or []
    if blocking:
        parts.append(
            "validation FAILED on blocking findings: "
            + "; ".join(f"{f.get('id')} ({f.get('reason')})" for f in blocking)
        )
    warnings = [f for f in report.get("findings") or [] if f.get("severity") == "warning"]
    if warnings:
        parts.append("warnings: " + "; ".join(str(f.get("reason")) for f in warnings))
    return "; ".join(parts) + "."


def group_error_comparison(fairness: Mapping[str, Any], model_type: str) -> str | None:
    """Per sensitive attribute, the error of each group and the gaps fairlearn measured;
    ``None`` when no attribute had two groups large enough to compare."""
    lines: list[str] = []
    for attribute, entry in (fairness.get("attributes") or {}).items():
        groups = entry.get("per_group")
        if not groups:
            reason = entry.get("skipped") or entry.get("note")
            if reason:
                lines.append(f"{attribute}: not compared ({reason})")
            continue
        if model_type == "classification":
            per_group = ", ".join(
                f"{g} accuracy {_f(v.get('accuracy'))} (n={int(v.get('count') or 0)})"
                for g, v in groups.items()
            )
            gaps = (
                f"accuracy gap {_f(entry.get('accuracy_gap'))}, demographic parity difference "
                f"{_f(entry.get('demographic_parity_difference'))}, equalized odds difference "
                f"{_f(entry.get('equalized_odds_difference'))}"
            )
        else:
            per_group = ", ".join(
                f"{g} RMSE {_f(v.get('rmse'))} MAE {_f(v.get('mae'))} (n={int(v.get('count') or 0)})"
                for g, v in groups.items()
            )
            gaps = (
                f"RMSE gap {_f(entry.get('rmse_gap'))}, MAE gap {_f(entry.get('mae_gap'))}, mean "
                f"prediction gap {_f(entry.get('mean_prediction_gap'))}"
            )
        lines.append(f"{attribute}: {per_group}; {gaps}")
    if not any("per_group" in e for e in (fairness.get("attributes") or {}).values()):
        return None
    missing = fairness.get("missing_attributes") or []
    if missing:
        lines.append(f"not in the test data: {_names(missing)}")
    return ". ".join(lines) + "."


def stability_check(robustness: Mapping[str, Any], metric: str) -> dict[str, Any] | None:
    """The segment-stability scripted check's result: passed when the target metric
    worsens by at most ``MAX_RELATIVE_DROP`` of its clean value under input noise."""
    if "relative_drop" not in robustness:
        return None
    relative = float(robustness["relative_drop"])
    passed = relative <= MAX_RELATIVE_DROP
    result: dict[str, Any] = {
        "passed": passed,
        "status": "passed" if passed else "failed",
        "check": "robustness of the target metric to input noise",
        "metric": metric,
        "noise_level": robustness.get("noise_level"),
        "clean_score": robustness.get("clean_score"),
        "noisy_score": robustness.get("noisy_score"),
        "relative_drop": relative,
        "max_relative_drop": MAX_RELATIVE_DROP,
    }
    if "prediction_flip_rate" in robustness:
        result["prediction_flip_rate"] = robustness["prediction_flip_rate"]
    return result


# --------------------------------------------------------------------------- mlops


def monitoring_plan(config: Mapping[str, Any]) -> str:
    """What is monitored, how often and what happens on an alert, from the monitoring config."""
    model = config.get("model") or {}
    perf = config.get("performance") or {}
    drift = config.get("data_drift") or {}
    parts = [
        f"{str(config.get('schedule', 'daily')).capitalize()} monitoring of "
        f"{model.get('registered_model_name')} v{model.get('version')}",
        f"performance: {perf.get('metric')} on {perf.get('evaluation_window')} (at least "
        f"{perf.get('min_labelled_rows')} labelled rows), alert when {perf.get('alert_when')} "
        f"(validated {_f(perf.get('validated_value'))})",
        f"data drift: population stability index per input (warn {drift.get('psi_warn')}, alert "
        f"{drift.get('psi_alert')}) with missing-rate and range checks against the training "
        f"profile on {len(drift.get('features') or {})} inputs",
    ]
    pred = config.get("prediction_drift") or {}
    if pred:
        parts.append(
            f"prediction drift: {str(pred.get('kind')).replace('_', ' ')} (PSI alert {pred.get('psi_alert')})"
        )
    bounds = (config.get("fairness") or {}).get("bounds") or {}
    if bounds:
        parts.append(
            "fairness: "
            + ", ".join(
                f"{k} alert above {b.get('alert_above')}" for k, b in sorted(bounds.items())
            )
        )
    rollback = config.get("rollback") or {}
    if rollback.get("triggers"):
        parts.append(
            f"on alert: {rollback.get('action')} when {'; or '.join(rollback['triggers'])}"
        )
    return "; ".join(parts) + "."


def has_rollback_plan(config: Mapping[str, Any]) -> bool:
    rollback = config.get("rollback") or {}
    return bool(rollback.get("triggers") and rollback.get("action"))


def monitoring_configured(
    config: Mapping[str, Any], config_path: str | None
) -> dict[str, Any] | None:
    """The drift and data-quality monitoring check's result, when the config defines both
    (per-feature drift thresholds and missing-rate alerts); ``None`` otherwise."""
    features = (config.get("data_drift") or {}).get("features") or {}
    quality = [f for f, spec in features.items() if "missing_rate_alert" in spec]
    if not features or not quality:
        return None
    return {
        "status": "configured",
        "alert_types": ["drift", "data_quality"],
        "schedule": config.get("schedule"),
        "features_monitored": len(features),
        "performance_alert": (config.get("performance") or {}).get("alert_when"),
        "config_path": config_path,
    }
