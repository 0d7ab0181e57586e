"""Does the registered model behave like the model that was validated? ``check_registered_model``.

Validation scored the fitted scikit-learn pipeline; consumers get the registered MLflow
pyfunc model (signature checks, post-processing, pinned dependencies in between). This
loads the registered model exactly as a consumer would and compares its output with the
validated pipeline's on held-out rows, which is what governance means by "the production
implementation was tested to reproduce the validated model".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mpm.tools.datasets import read_table
from mpm.tools.evaluation import load_model, model_input_columns
from mpm.tools.metrics import check_model_type

N_ROWS = 50
TOLERANCE = 1e-6  # probabilities and values are rounded to 6 decimals at most


def check_registered_model(
    model_uri: str,
    model_path: str,
    test_path: str,
    *,
    model_type: str,
    tracking_uri: str | None,
    n_rows: int = N_ROWS,
) -> dict[str, Any]:
    """Load ``model_uri`` with ``mlflow.pyfunc.load_model``, predict the first ``n_rows``
    rows of the test split and compare with the validated pipeline at ``model_path``.

    Never raises for a model that fails to load or predict: that is the finding.
    Returns ``{passed, model_uri, n_rows, n_mismatches, max_difference, detail}``.
    """
    import numpy as np

    model_type = check_model_type(model_type)
    pipeline = load_model(model_path)
    inputs = model_input_columns(pipeline)
    rows = read_table(Path(test_path))[inputs].head(int(n_rows)).reset_index(drop=True)
    result: dict[str, Any] = {
        "passed": False,
        "model_uri": model_uri,
        "n_rows": int(len(rows)),
        "n_mismatches": None,
        "max_difference": None,
    }
    if rows.empty:
        return {**result, "detail": f"{Path(test_path).name}: no test rows to predict"}
    try:
        served, config = _served_predictions(model_uri, rows, tracking_uri)
    except Exception as exc:  # noqa: BLE001 - a model that does not load or predict fails the check
        first = str(exc).splitlines()[0] if str(exc) else ""
        return {**result, "detail": f"loading or predicting failed: {type(exc).__name__}: {first}"}

    if model_type == "classification":
        expected_labels = np.asarray(pipeline.predict(rows)).astype(str)
        got_labels = np.asarray(served["prediction"]).astype(str)
        proba = pipeline.predict_proba(rows)
        classes = list(pipeline.classes_)
        if len(classes) == 2 and config.get("positive_label") is not None:
            expected_p = proba[:, classes.index(_same_type(config["positive_label"], classes))]
        else:
            expected_p = proba.max(axis=1)
        diff = np.abs(np.asarray(served["probability"], dtype=float) - expected_p)
        mismatches = int(np.sum(expected_labels != got_labels) + np.sum(diff > TOLERANCE))
        what = "labels and probabilities"
    else:
        expected = np.asarray(pipeline.predict(rows), dtype=float)
        if config.get("clip"):
            expected = np.clip(expected, *config["clip"])
        diff = np.abs(np.asarray(served["prediction"], dtype=float) - expected)
        mismatches = int(np.sum(diff > TOLERANCE))
        what = "predictions"
    max_diff = float(diff.max()) if diff.size else 0.0
    passed = mismatches == 0
    return {
        **result,
        "passed": passed,
        "n_mismatches": mismatches,
        "max_difference": max_diff,
        "detail": (
            f"the registered model reproduced the validated pipeline's {what} on "
            f"{len(rows)} test rows (max difference {max_diff:.2g})"
            if passed
            else f"{mismatches} of {len(rows)} test rows differ from the validated pipeline's {what}"
        ),
    }


def _served_predictions(
    model_uri: str, rows: Any, tracking_uri: str | None
) -> tuple[Any, dict[str, Any]]:
    import mlflow

    from mpm.tools.tracking import use_tracking_uri

    with use_tracking_uri(tracking_uri):
        model = mlflow.pyfunc.load_model(model_uri)
    config = dict(getattr(model.unwrap_python_model(), "config", {}) or {})
    return model.predict(rows), config


def _same_type(label: Any, classes: list[Any]) -> Any:
    """The class in ``classes`` that ``label`` (read back from JSON) names."""
    for cls in classes:
        if str(cls) == str(label):
            return cls
    return label
