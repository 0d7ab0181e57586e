"""Recommendations -> ColumnTransformer: what each action does to the data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mpm.tools.features import ACTIONS, build_preprocessor, recommend_features


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    return pd.DataFrame(
        {
            "id": [f"row-{i}" for i in range(n)],
            "gender": rng.choice(["f", "m"], n),
            "amount": np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(3, 1.2, n)),
            "score": rng.normal(50, 10, n),
            "city": np.where(rng.random(n) < 0.05, None, rng.choice(["a", "b", "c"], n)),
            "y": rng.integers(0, 2, n),
        }
    )


def test_recommendations_reflect_the_data() -> None:
    recs = recommend_features(_frame(), "y", "classification", sensitive_attributes=["gender"])
    by = {}
    for r in recs:
        assert r["action"] in ACTIONS and r["columns"] and r["reason"]
        by.setdefault(r["action"], []).extend(r["columns"])
    assert set(by["drop"]) == {"id", "gender"}
    assert by["impute_median"] == ["amount"]
    assert by["impute_most_frequent"] == ["city"]
    assert by["one_hot"] == ["city"]
    assert by["log1p"] == ["amount"]
    assert set(by["scale"]) == {"amount", "score"}


def test_preprocessor_drops_imputes_encodes_and_scales_as_recommended() -> None:
    df = _frame()
    recs = recommend_features(df, "y", "classification", sensitive_attributes=["gender"])
    pre, info = build_preprocessor(df, "y", recs)
    out = pd.DataFrame(pre.fit_transform(df), columns=pre.get_feature_names_out())
    assert info["dropped_columns"] == ["id", "gender"]
    assert info["feature_columns"] == ["amount", "score", "city"]
    assert set(out.columns) == {"amount", "score", "city_a", "city_b", "city_c"}
    assert not out.isna().any().any()
    assert abs(out["score"].mean()) < 1e-9 and abs(out["score"].std(ddof=0) - 1) < 1e-9
    logged = np.log1p(df["amount"].fillna(df["amount"].median()))
    assert np.allclose(out["amount"], (logged - logged.mean()) / logged.std(ddof=0))


def test_log1p_column_never_turns_a_negative_serving_value_into_nan() -> None:
    df = _frame()
    pre, _ = build_preprocessor(df, "y", [{"action": "log1p", "columns": ["amount"]}])
    pre.fit(df)
    serving = df.head(3).copy()
    serving["amount"] = [-5.0, 0.0, np.nan]
    assert not np.isnan(pre.transform(serving)).any()


def test_unknown_actions_and_columns_are_reported_back_not_raised() -> None:
    df = _frame()
    recs = [
        {"action": "standardize", "columns": ["score"]},  # alias of scale
        {"action": "pca", "columns": ["score"]},
        {"action": "drop", "columns": ["nope", "y"]},
        "drop everything",
    ]
    _, info = build_preprocessor(df, "y", recs)
    why = [i["why"] for i in info["ignored_recommendations"]]
    assert any("unknown action 'pca'" in w for w in why)
    assert "no such column" in why and "is the target column" in why and "not an object" in why
    assert info["scaled_columns"] == ["score"]
    assert "y" not in info["feature_columns"]
