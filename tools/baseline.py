"""The naive baseline a model has to beat: majority class or mean predictor."""

from __future__ import annotations


def naive_baseline_score(
    train_path: str,
    test_path: str,
    target_column: str,
    model_type: str,
    target_metric: str,
    pos_label: object = None,
) -> float:
    """Score of a ``DummyClassifier(most_frequent)`` / ``DummyRegressor(mean)`` on the test
    set (binary precision/recall/F1 for ``pos_label``, default the larger label)."""
    import numpy as np
    import pandas as pd
    from sklearn import metrics
    from sklearn.dummy import DummyClassifier, DummyRegressor

    train = pd.read_parquet(train_path)
    test = pd.read_parquet(test_path)
    x_train = np.zeros((len(train), 1))
    x_test = np.zeros((len(test), 1))
    y_train, y_test = train[target_column], test[target_column]
    if model_type == "regression":
        pred = DummyRegressor(strategy="mean").fit(x_train, y_train).predict(x_test)
        return {
            "r2": lambda: metrics.r2_score(y_test, pred),
            "rmse": lambda: float(np.sqrt(metrics.mean_squared_error(y_test, pred))),
            "mae": lambda: metrics.mean_absolute_error(y_test, pred),
            "mape": lambda: metrics.mean_absolute_percentage_error(y_test, pred),
        }[target_metric]()
    model = DummyClassifier(strategy="most_frequent").fit(x_train, y_train)
    pred = model.predict(x_test)
    if target_metric == "roc_auc":
        return 0.5  # a constant score ranks nothing: AUC of a no-skill model
    binary = y_train.nunique() == 2
    kw: dict = {"average": "binary" if binary else "macro", "zero_division": 0}
    if binary:
        from mpm.tools.metrics import positive_label

        kw["pos_label"] = positive_label(sorted(y_train.unique().tolist()), pos_label)
    scorers = {
        "accuracy": lambda: metrics.accuracy_score(y_test, pred),
        "balanced_accuracy": lambda: metrics.balanced_accuracy_score(y_test, pred),
        "f1": lambda: metrics.f1_score(y_test, pred, **kw),
        "precision": lambda: metrics.precision_score(y_test, pred, **kw),
        "recall": lambda: metrics.recall_score(y_test, pred, **kw),
    }
    return float(scorers[target_metric]())
