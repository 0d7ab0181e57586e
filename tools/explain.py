"""Global explanation of a trained pipeline: ``permutation_importances``.

Governance asks how a model is explained. Permutation importance works for every model
family the training tools produce, is computed on the project's own validation data and
is reported per *input* column (the pipeline does its own preprocessing), so a reviewer
reads it in the vocabulary of the data, not of one-hot encoded internals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mpm.tools.datasets import check_target, read_table
from mpm.tools.evaluation import load_model, model_input_columns
from mpm.tools.metrics import check_metric, check_model_type, cv_scorer

METHOD = "Permutation importance"
N_REPEATS = 5
MAX_ROWS = 2000  # enough for stable importances; bounded so large data stays cheap


def permutation_importances(
    model_path: str,
    data_path: str,
    target_column: str,
    out_dir: str,
    *,
    model_type: str,
    target_metric: str,
    seed: int = 42,
    n_repeats: int = N_REPEATS,
    max_rows: int = MAX_ROWS,
    pos_label: Any = None,
) -> dict[str, Any]:
    """Permutation importance of every input column of the saved pipeline on ``data_path``
    (the validation split), scored with the project's target metric; writes
    ``feature_importance.json`` to ``out_dir``.

    Returns ``{method, target_metric, n_rows, n_repeats, importances: [{feature, mean,
    std}] (largest first; ``mean`` is how much the metric worsens when the column is
    shuffled), path}``.
    """
    import numpy as np
    from sklearn.inspection import permutation_importance

    model_type = check_model_type(model_type)
    target_metric = check_metric(target_metric, model_type)
    pipeline = load_model(model_path)
    data = read_table(Path(data_path))
    check_target(data, target_column, model_type, f"data {Path(data_path).name}")
    data = data[data[target_column].notna()]
    if len(data) > max_rows:
        data = data.sample(n=max_rows, random_state=seed)
    inputs = model_input_columns(pipeline)
    x, y = data[inputs].reset_index(drop=True), data[target_column].reset_index(drop=True)
    classes = list(pipeline.classes_) if model_type == "classification" else []
    result = permutation_importance(
        pipeline,
        x,
        y,
        scoring=cv_scorer(target_metric, classes, pos_label),  # for the positive class
        n_repeats=n_repeats,
        random_state=seed,
        n_jobs=1,
    )
    # scikit-learn scorers are "greater is better" (errors are negated), so the importance
    # (score with the column intact minus score with it shuffled) is a drop for every metric
    ranked = sorted(
        (
            {
                "feature": str(name),
                "mean": round(float(mean), 6),
                "std": round(float(std), 6),
            }
            for name, mean, std in zip(
                inputs, result.importances_mean, result.importances_std, strict=True
            )
            if np.isfinite(mean)
        ),
        key=lambda item: item["mean"],
        reverse=True,
    )
    report = {
        "method": METHOD,
        "target_metric": target_metric,
        "n_rows": int(len(x)),
        "n_repeats": int(n_repeats),
        "importances": ranked,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "feature_importance.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    return {**report, "path": str(path)}
