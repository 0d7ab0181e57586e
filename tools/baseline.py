"""The naive baseline a model has to beat: majority class or mean predictor."""

from __future__ import annotations


def naive_baseline_score(
    train_path: str, test_path: str, target_column: str, model_type: str, target_metric: str
) -> float:
    """Score of a ``DummyClassifier(most_frequent)`` / ``DummyRegressor(mean)`` on the test set."""
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
    average = "binary" if y_train.nunique() == 2 else "macro"
    scorers = {
        "accuracy": lambda: metrics.accuracy_score(y_test, pred),
        "balanced_accuracy": lambda: metrics.balanced_accuracy_score(y_test, pred),
        "f1": lambda: metrics.f1_score(y_test, pred, average=average, zero_division=0),
        "precision": lambda: metrics.precision_score(
            y_test, pred, average=average, zero_division=0
        ),
        "recall": lambda: metrics.recall_score(y_test, pred, average=average, zero_division=0),
    }
    return float(scorers[target_metric]())
