"""The generated pipeline test suite (``pipeline_test_suite.json``) and its runner.

``generate_test_suite`` derives concrete, checkable expectations from what the project
already knows (training data, the registered model, validation results, requirements);
``run_test_suite`` executes them against the *registered* pyfunc model loaded by URI, so
the suite tests what would be served, not the in-memory training object.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mpm.tools import tracking
from mpm.tools.data_quality import column_kinds
from mpm.tools.datasets import read_table
from mpm.tools.errors import ToolConfigError
from mpm.tools.metrics import LOWER_IS_BETTER, all_metrics, meets_threshold

SUITE_FILE = "pipeline_test_suite.json"
RANGE_TOLERANCE = 0.1  # share of the training range a test value may fall outside it
MAX_RANGE_VIOLATIONS = (
    0.02  # share of rows a range case tolerates outside the widened range (outliers)
)
MAX_UNSEEN_CATEGORIES = 0.05
FAIRNESS_BOUND = 0.1  # demographic parity / equalized odds difference (classification)
REGRESSION_FAIRNESS_BOUND = 0.25  # largest group RMSE gap relative to the overall RMSE


def generate_test_suite(
    train_path: str,
    model_info: Mapping[str, Any],
    validation: Mapping[str, Any],
    requirements: Mapping[str, Any],
    *,
    target_column: str | None = None,
    fairness_bound: float | None = None,
    out_dir: str | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """The test suite as a JSON-ready dict (also written to ``out_dir/pipeline_test_suite.json``
    when ``out_dir`` is given).

    ``model_info`` is ideally ``build_pipeline_model``'s result; if it lacks the model
    type, target or input/output columns but has ``model_uri``, they are read from the
    registered model (``tracking_uri`` names the store).

    Cases: schema (columns, dtypes), value ranges and categorical domains per input (from
    the training data), prediction properties (output columns, no NaN, probabilities in
    [0, 1], labels in the class set or values in the training range, determinism, missing
    values handled), the performance floor (success threshold) and fairness bounds per
    sensitive attribute.
    """
    needed = ("model_type", "target_column", "input_columns", "output_columns")
    if model_info.get("model_uri") and not all(model_info.get(k) for k in needed):
        from mpm.tools.pipeline_model import model_metadata

        known = model_metadata(str(model_info["model_uri"]), tracking_uri)
        model_info = {**known, **{k: v for k, v in model_info.items() if v}}
    model_type = str(model_info.get("model_type") or requirements.get("model_type") or "")
    target = target_column or model_info.get("target_column") or requirements.get("target_column")
    if not target:
        raise ToolConfigError(
            "target_column: not given and not found in model_info or requirements"
        )
    train = read_table(Path(train_path))
    inputs = list(model_info.get("input_columns") or [c for c in train.columns if c != target])
    numeric, categorical = column_kinds(train, inputs)
    tests: list[dict[str, Any]] = []

    def case(case_id: str, kind: str, description: str, **fields: Any) -> None:
        tests.append({"id": case_id, "kind": kind, "description": description, **fields})

    case(
        "schema.columns",
        "schema_columns",
        "the model's input schema and the scoring data have exactly these columns",
        expected=inputs,
    )
    for c in inputs:
        case(
            f"schema.dtype.{c}",
            "schema_dtype",
            f"{c} is {'numeric' if c in numeric else 'categorical'}",
            column=c,
            expected="numeric" if c in numeric else "categorical",
        )
    for c in numeric:
        v = train[c].dropna().astype(float)
        if v.empty:
            continue
        case(
            f"range.{c}",
            "value_range",
            f"{c} stays within its training range (+/- {RANGE_TOLERANCE:.0%} of the range) "
            f"for all but {MAX_RANGE_VIOLATIONS:.0%} of rows (one row at least is tolerated)",
            column=c,
            min=float(v.min()),
            max=float(v.max()),
            tolerance=RANGE_TOLERANCE,
            max_violation_rate=MAX_RANGE_VIOLATIONS,
        )
    for c in categorical:
        allowed = sorted(train[c].dropna().astype(str).unique().tolist())
        case(
            f"domain.{c}",
            "categorical_domain",
            f"{c} takes values seen in training",
            column=c,
            allowed=allowed,
            max_unseen_rate=MAX_UNSEEN_CATEGORIES,
        )

    outputs = list(model_info.get("output_columns") or ["prediction"])
    case(
        "prediction.columns",
        "prediction_columns",
        "the model returns these output columns",
        expected=outputs,
    )
    case("prediction.no_nan", "no_nan_predictions", "no prediction is missing")
    case("prediction.deterministic", "deterministic", "the same input gives the same output twice")
    optional = [c for c in inputs if train[c].isna().any()]
    if optional:
        case(
            "prediction.missing_values",
            "handles_missing_values",
            "rows with gaps in optional inputs still get a prediction",
            columns=optional,
        )
    if model_type == "classification":
        classes = sorted(train[target].dropna().unique().tolist())
        case(
            "prediction.probability_range",
            "probabilities_in_unit_interval",
            "every probability is within [0, 1]",
        )
        case(
            "prediction.labels",
            "labels_in_class_set",
            "every label is a known class",
            classes=[_scalar(x) for x in classes],
        )
    else:
        y = train[target].dropna().astype(float)
        case(
            "prediction.range",
            "prediction_in_range",
            "predictions stay within the training target range",
            min=float(y.min()),
            max=float(y.max()),
        )

    metric = str(validation.get("target_metric") or requirements.get("target_metric"))
    threshold = requirements.get("success_threshold", validation.get("success_threshold"))
    if threshold is not None:
        case(
            "performance.floor",
            "performance_floor",
            f"{metric} on the scoring data {'<=' if metric in LOWER_IS_BETTER else '>='} {threshold}",
            metric=metric,
            threshold=float(threshold),
            lower_is_better=metric in LOWER_IS_BETTER,
        )
    sensitive = [c for c in requirements.get("sensitive_attributes") or [] if c in train.columns]
    if model_type == "classification":
        bound = FAIRNESS_BOUND if fairness_bound is None else float(fairness_bound)
        for attr in sensitive:
            for name in ("demographic_parity_difference", "equalized_odds_difference"):
                case(
                    f"fairness.{attr}.{name}",
                    "fairness_bound",
                    f"{name} across {attr} <= {bound}",
                    attribute=attr,
                    metric=name,
                    bound=bound,
                )
    else:
        bound = REGRESSION_FAIRNESS_BOUND if fairness_bound is None else float(fairness_bound)
        for attr in sensitive:
            case(
                f"fairness.{attr}.relative_rmse_gap",
                "fairness_bound",
                f"largest RMSE gap between {attr} groups <= {bound:.0%} of the overall RMSE",
                attribute=attr,
                metric="relative_rmse_gap",
                bound=bound,
            )

    suite = {
        "suite": "pipeline_test_suite",
        "format_version": 1,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "project": requirements.get("project_name"),
        "model": {
            k: model_info.get(k)
            for k in ("registered_model_name", "version", "model_uri", "run_id")
        },
        "model_type": model_type,
        "target_column": target,
        # the class the served binary ``probability`` is for (as validated); None: the larger
        "positive_label": validation.get("positive_class"),
        "input_columns": inputs,
        "tests": tests,
    }
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / SUITE_FILE
        path.write_text(json.dumps(suite, indent=2, default=str))
        suite["path"] = str(path)
    return suite


def run_test_suite(
    suite: Mapping[str, Any], model_uri: str, test_path: str, *, tracking_uri: str | None = None
) -> dict[str, Any]:
    """Run every case of ``suite`` against the pyfunc model at ``model_uri`` on the rows of
    ``test_path``. Returns ``{total, passed, failed, all_passed, pass_rate, results:
    [{id, kind, passed, detail}], metrics: {tests_passed, tests_failed}}``."""
    import mlflow

    with tracking.use_tracking_uri(tracking_uri):
        model = mlflow.pyfunc.load_model(model_uri)
    data = read_table(Path(test_path))
    ctx = _Context(model, data, suite)
    results = []
    for test in suite.get("tests", []):
        check = _CHECKS.get(test.get("kind", ""))
        if check is None:
            passed, detail = False, f"unknown test kind {test.get('kind')!r}"
        else:
            try:
                passed, detail = check(ctx, test)
            except Exception as exc:  # a crashing check is a failing check, with the reason
                passed, detail = (
                    False,
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                )
        results.append(
            {
                "id": test.get("id"),
                "kind": test.get("kind"),
                "passed": bool(passed),
                "detail": detail,
            }
        )
    n_pass = sum(r["passed"] for r in results)
    total = len(results)
    return {
        "total": total,
        "passed": n_pass,
        "failed": total - n_pass,
        "all_passed": n_pass == total,
        "pass_rate": round(n_pass / total, 4) if total else 0.0,
        "results": results,
        "metrics": {"tests_passed": float(n_pass), "tests_failed": float(total - n_pass)},
    }


# --------------------------------------------------------------------------- the checks


class _Context:
    """The loaded model, the scoring data and one cached prediction shared by the checks."""

    def __init__(self, model: Any, data: Any, suite: Mapping[str, Any]) -> None:
        self.model, self.data, self.suite = model, data, suite
        self.target = suite.get("target_column")
        self.inputs = list(suite.get("input_columns") or [])
        self._out: Any = None

    @property
    def features(self) -> Any:
        return self.data[self.inputs]

    @property
    def output(self) -> Any:
        if self._out is None:
            self._out = self.model.predict(self.features)
        return self._out

    def scores(self) -> tuple[Any, Any, list[Any]]:
        """(labels or values, class probabilities, classes) from the model output."""
        import numpy as np

        out = self.output
        if self.suite.get("model_type") != "classification":
            return out["prediction"].to_numpy(), None, []
        classes = sorted(self.data[self.target].dropna().unique().tolist())
        per_class = [f"probability_{c}" for c in classes]
        if all(c in out.columns for c in per_class):
            proba = out[per_class].to_numpy()
        else:  # binary: ``probability`` is the positive class's (the suite says which)
            p = out["probability"].to_numpy(dtype=float)
            pos = self.positive_label(classes)
            proba = (
                np.column_stack([1 - p, p])
                if classes.index(pos) == 1
                else np.column_stack([p, 1 - p])
            )
        return out["prediction"].to_numpy(), proba, classes

    def positive_label(self, classes: list[Any]) -> Any:
        from mpm.tools.metrics import positive_label

        if len(classes) != 2:
            return None
        return positive_label(classes, self.suite.get("positive_label"))


def _schema_columns(ctx: _Context, t: Mapping[str, Any]) -> tuple[bool, str]:
    expected = list(t["expected"])
    schema = ctx.model.metadata.get_input_schema()
    model_cols = schema.input_names() if schema is not None else []
    missing = [c for c in expected if c not in ctx.data.columns]
    if model_cols != expected:
        return False, f"model input schema {model_cols} != expected {expected}"
    if missing:
        return False, f"scoring data lacks {missing}"
    return True, f"{len(expected)} columns present in schema and data"


def _schema_dtype(ctx: _Context, t: Mapping[str, Any]) -> tuple[bool, str]:
    col = t["column"]
    numeric, _ = column_kinds(ctx.data, [col])
    kind = "numeric" if numeric else "categorical"
    return kind == t["expected"], f"{col} is {kind} ({ctx.data[col].dtype})"


def _value_range(ctx: _Context, t: Mapping[str, Any]) -> tuple[bool, str]:
    v = ctx.data[t["column"]].dropna().astype(float)
    span = float(t["max"]) - float(t["min"])
    lo, hi = float(t["min"]) - t["tolerance"] * span, float(t["max"]) + t["tolerance"] * span
    outside = int(((v < lo) | (v > hi)).sum())
    ok = outside <= _allowed(t["max_violation_rate"], len(v))
    return ok, f"{outside} of {len(v)} values outside [{lo:.4g}, {hi:.4g}]"


def _categorical_domain(ctx: _Context, t: Mapping[str, Any]) -> tuple[bool, str]:
    v = ctx.data[t["column"]].dropna().astype(str)
    unseen = ~v.isin(set(t["allowed"]))
    examples = sorted(v[unseen].unique().tolist())[:5]
    ok = int(unseen.sum()) <= _allowed(t["max_unseen_rate"], len(v))
    detail = f"{int(unseen.sum())} of {len(v)} values unseen in training"
    return ok, detail + (f" (e.g. {examples})" if examples else "")


def _allowed(rate: float, n: int) -> float:
    """How many offending rows a rate allows: at least one, so a single outlier in a small
    scoring sample is not mistaken for a broken data contract."""
    return max(rate * n, 1.0)


def _prediction_columns(ctx: _Context, t: Mapping[str, Any]) -> tuple[bool, str]:
    cols = list(ctx.output.columns)
    return cols == list(t["expected"]), f"output columns {cols}"


def _no_nan(ctx: _Context, t: Mapping[str, Any]) -> tuple[bool, str]:
    n = int(ctx.output.isna().sum().sum())
    return n == 0, f"{n} missing values in {len(ctx.output)} predictions"


def _deterministic(ctx: _Context, t: Mapping[str, Any]) -> tuple[bool, str]:
    again = ctx.model.predict(ctx.features)
    same = again.equals(ctx.output)
    return same, "identical outputs" if same else "outputs differ between two identical calls"


def _handles_missing(ctx: _Context, t: Mapping[str, Any]) -> tuple[bool, str]:
    import numpy as np

    rows = ctx.features.head(20).copy()
    for c in t["columns"]:
        rows[c] = np.nan if rows[c].dtype.kind in "fiu" else None
    out = ctx.model.predict(rows)
    ok = len(out) == len(rows) and not out["prediction"].isna().any()
    return (
        ok,
        f"{len(out)} predictions for {len(rows)} rows with {len(t['columns'])} inputs blanked",
    )


def _probabilities(ctx: _Context, t: Mapping[str, Any]) -> tuple[bool, str]:
    cols = [c for c in ctx.output.columns if c.startswith("probability")]
    p = ctx.output[cols].to_numpy(dtype=float)
    ok = bool(((p >= 0) & (p <= 1)).all())
    return ok, f"probability range [{p.min():.4f}, {p.max():.4f}]"


def _labels(ctx: _Context, t: Mapping[str, Any]) -> tuple[bool, str]:
    allowed = {str(c) for c in t["classes"]}
    seen = {str(x) for x in ctx.output["prediction"].unique()}
    extra = sorted(seen - allowed)
    return not extra, f"labels {sorted(seen)}" + (f"; unknown {extra}" if extra else "")


def _prediction_range(ctx: _Context, t: Mapping[str, Any]) -> tuple[bool, str]:
    p = ctx.output["prediction"].astype(float)
    ok = bool(((p >= t["min"]) & (p <= t["max"])).all())
    return (
        ok,
        f"prediction range [{p.min():.4g}, {p.max():.4g}] vs training [{t['min']:.4g}, {t['max']:.4g}]",
    )


def _performance(ctx: _Context, t: Mapping[str, Any]) -> tuple[bool, str]:
    y_pred, proba, classes = ctx.scores()
    y = ctx.data[ctx.target]
    model_type = str(ctx.suite.get("model_type"))
    score = all_metrics(
        model_type, y, y_pred, proba, classes, ctx.positive_label(list(classes))
    ).get(t["metric"])
    if score is None:
        return False, f"{t['metric']} cannot be computed on this data"
    ok = meets_threshold(score, t["threshold"], t["metric"])
    return ok, f"{t['metric']} = {score:.4f} (threshold {t['threshold']})"


def _fairness(ctx: _Context, t: Mapping[str, Any]) -> tuple[bool, str]:
    from mpm.tools.fairness import fairness_report

    attr = t["attribute"]
    if attr not in ctx.data.columns:
        return False, f"sensitive attribute {attr!r} not in the scoring data"
    y_pred, _, classes = ctx.scores()
    y = ctx.data[ctx.target]
    model_type = str(ctx.suite.get("model_type"))
    report = fairness_report(
        y,
        y_pred,
        ctx.data[[attr]],
        model_type=model_type,
        classes=classes,
        pos_label=ctx.positive_label(list(classes)),
    )
    entry = report["attributes"][attr]
    if "per_group" not in entry:
        return True, entry.get("note") or entry.get("skipped", "not enough data per group")
    if t["metric"] == "relative_rmse_gap":
        overall = all_metrics("regression", y, y_pred, None, [])["rmse"]
        value = entry["rmse_gap"] / overall if overall else 0.0
    else:
        value = entry[t["metric"]]
    return value <= t["bound"], f"{t['metric']} across {attr} = {value:.4f} (bound {t['bound']})"


def _scalar(x: Any) -> Any:
    return x.item() if hasattr(x, "item") else x


_CHECKS: dict[str, Callable[[_Context, Mapping[str, Any]], tuple[bool, str]]] = {
    "schema_columns": _schema_columns,
    "schema_dtype": _schema_dtype,
    "value_range": _value_range,
    "categorical_domain": _categorical_domain,
    "prediction_columns": _prediction_columns,
    "no_nan_predictions": _no_nan,
    "deterministic": _deterministic,
    "handles_missing_values": _handles_missing,
    "probabilities_in_unit_interval": _probabilities,
    "labels_in_class_set": _labels,
    "prediction_in_range": _prediction_range,
    "performance_floor": _performance,
    "fairness_bound": _fairness,
}
SUITE_KINDS: Sequence[str] = tuple(_CHECKS)
