"""Feature-engineering recommendations and the preprocessing they turn into.

EDA *recommends* (a list of small JSON dicts an agent can read, edit or pass on), training
*applies* them as a scikit-learn ``ColumnTransformer``. Keeping both ends in one module
means every action EDA can emit is one training knows how to build.

The fitted transformer contains only scikit-learn and NumPy objects, never classes from
this package, so a pickled pipeline loads anywhere scikit-learn is installed (the MLflow
pyfunc model depends on that).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mpm.tools.data_quality import column_kinds, id_like_columns, leakage_hints

if TYPE_CHECKING:
    import pandas as pd

ACTIONS = (
    "drop",
    "impute_median",
    "impute_mean",
    "impute_most_frequent",
    "impute_constant",
    "one_hot",
    "ordinal_encode",
    "log1p",
    "scale",
)
# What a model tends to write instead of the canonical name.
_ALIASES = {
    "remove": "drop",
    "exclude": "drop",
    "impute": "impute_median",
    "median_impute": "impute_median",
    "mean_impute": "impute_mean",
    "mode_impute": "impute_most_frequent",
    "impute_mode": "impute_most_frequent",
    "onehot": "one_hot",
    "one_hot_encode": "one_hot",
    "onehot_encode": "one_hot",
    "ordinal": "ordinal_encode",
    "log": "log1p",
    "log_transform": "log1p",
    "standardize": "scale",
    "standard_scale": "scale",
    "normalize": "scale",
}
MOSTLY_MISSING = 0.6
HIGH_CARDINALITY = 50
SKEWED = 2.0


def recommend_features(
    df: pd.DataFrame,
    target_column: str,
    model_type: str,
    *,
    sensitive_attributes: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Structured recommendations ``{action, columns, reason}`` for the data in ``df``.

    Drops identifiers, constants, leaks, mostly-missing and very high-cardinality columns
    and the named sensitive attributes (kept in the data for fairness evaluation, not used
    as model inputs); imputes, one-hot encodes, log-transforms skewed non-negative
    counts/amounts and scales what is left.
    """
    features = [c for c in df.columns if c != target_column]
    numeric, categorical = column_kinds(df, features)
    recs: list[dict[str, Any]] = []
    dropped: set[str] = set()

    def drop(columns: Iterable[str], reason: str) -> None:
        cols = [c for c in columns if c not in dropped]
        if cols:
            recs.append({"action": "drop", "columns": cols, "reason": reason})
            dropped.update(cols)

    drop(
        [c for c in sensitive_attributes if c in features],
        "sensitive attribute: kept for fairness evaluation only",
    )
    drop(
        id_like_columns(df, features),
        "identifier: unique per row, carries no signal that generalises",
    )
    drop([c for c in features if df[c].nunique(dropna=True) <= 1], "constant: a single value")
    if target_column in df.columns:
        leaks = leakage_hints(df, target_column, model_type, exclude=sorted(dropped))
        drop(
            [h["column"] for h in leaks],
            "possible target leakage: " + "; ".join(h["reason"] for h in leaks),
        )
    drop(
        [c for c in features if df[c].isna().mean() > MOSTLY_MISSING],
        f"mostly missing (> {MOSTLY_MISSING:.0%})",
    )
    drop(
        [c for c in categorical if df[c].nunique(dropna=True) > HIGH_CARDINALITY],
        f"high-cardinality text (> {HIGH_CARDINALITY} distinct values)",
    )
    keep_num = [c for c in numeric if c not in dropped]
    keep_cat = [c for c in categorical if c not in dropped]

    def add(action: str, columns: list[str], reason: str) -> None:
        if columns:
            recs.append({"action": action, "columns": columns, "reason": reason})

    add(
        "impute_median",
        [c for c in keep_num if df[c].isna().any()],
        "numeric with missing values; median is robust to skew",
    )
    add(
        "impute_most_frequent",
        [c for c in keep_cat if df[c].isna().any()],
        "categorical with missing values",
    )
    add(
        "one_hot",
        keep_cat,
        "categorical: models need numeric inputs; unseen categories are ignored",
    )
    skewed = []
    for c in keep_num:
        v = df[c].dropna().astype(float)
        if v.nunique() > 10 and v.min() >= 0 and float(v.skew()) > SKEWED:
            skewed.append(c)
    add("log1p", skewed, f"right-skewed non-negative (skew > {SKEWED}); log1p tames the tail")
    add("scale", keep_num, "numeric: standardise for linear models")
    return recs


def sensitive_features(
    df: pd.DataFrame,
    target_column: str,
    sensitive_attributes: Sequence[str],
    use_sensitive_attributes: bool = False,
) -> dict[str, Any]:
    """Which sensitive attributes stay out of the model inputs, and why.

    By default every named sensitive attribute present in the data is excluded from the
    features (it stays in the data, for the fairness evaluation); the requirement
    ``use_sensitive_attributes: true`` keeps them as inputs, and that choice is recorded
    either way (training protocol, MLflow params)."""
    present = [c for c in sensitive_attributes if c in df.columns and c != target_column]
    return {
        "named": list(sensitive_attributes),
        "present": present,
        "missing": [c for c in sensitive_attributes if c not in df.columns],
        "use_sensitive_attributes": bool(use_sensitive_attributes),
        "excluded_from_features": [] if use_sensitive_attributes else present,
        "used_as_features": present if use_sensitive_attributes else [],
        "rule": "kept as model inputs: use_sensitive_attributes is true"
        if use_sensitive_attributes
        else "excluded from the model inputs by default (use_sensitive_attributes: false)",
    }


def normalise_recommendations(
    recommendations: Any, columns: Sequence[str], target_column: str
) -> tuple[dict[str, list[str]], list[dict[str, Any]]]:
    """(action -> columns) from a loosely-formed list, and what was ignored and why.

    Agents pass recommendations through a language model, so this is forgiving: aliases
    are accepted, unknown actions or columns are reported back instead of raising.
    """
    by_action: dict[str, list[str]] = {a: [] for a in ACTIONS}
    ignored: list[dict[str, Any]] = []
    if not recommendations:
        return by_action, ignored
    if isinstance(recommendations, Mapping):
        recommendations = [recommendations]
    known = set(columns)
    for rec in recommendations:
        if not isinstance(rec, Mapping):
            ignored.append({"recommendation": str(rec)[:200], "why": "not an object"})
            continue
        raw = str(rec.get("action", "")).strip().lower()
        action = _ALIASES.get(raw, raw)
        cols = rec.get("columns", [])
        if isinstance(cols, str):
            cols = [cols]
        if action not in ACTIONS:
            ignored.append(
                {
                    "recommendation": dict(rec),
                    "why": f"unknown action {raw!r}; expected one of {', '.join(ACTIONS)}",
                }
            )
            continue
        for col in cols:
            col = str(col)
            if col == target_column:
                ignored.append({"action": action, "column": col, "why": "is the target column"})
            elif col not in known:
                ignored.append({"action": action, "column": col, "why": "no such column"})
            elif col not in by_action[action]:
                by_action[action].append(col)
    return by_action, ignored


def build_preprocessor(
    df: pd.DataFrame, target_column: str, recommendations: Any
) -> tuple[Any, dict[str, Any]]:
    """An unfitted ``ColumnTransformer`` for ``df`` and a description of what it does.

    Every kept numeric column is imputed (median unless told otherwise) and every kept
    categorical column imputed and encoded, recommended or not: serving data can have
    gaps and strings the training data did not, and a model cannot take either.
    """
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        OneHotEncoder,
        OrdinalEncoder,
        StandardScaler,
    )

    columns = [c for c in df.columns if c != target_column]
    by_action, ignored = normalise_recommendations(recommendations, columns, target_column)
    dropped = set(by_action["drop"])
    kept = [c for c in columns if c not in dropped]
    numeric, categorical = column_kinds(df, kept)
    if not kept:
        raise ValueError(
            "every feature column is dropped by the recommendations; nothing to train on"
        )

    log_cols = set()
    for c in by_action["log1p"]:
        if c in numeric and float(df[c].min(skipna=True)) >= 0:
            log_cols.add(c)
        else:
            ignored.append(
                {"action": "log1p", "column": c, "why": "not a non-negative numeric column"}
            )
    scale_cols = set(by_action["scale"]) & set(numeric)

    def num_strategy(c: str) -> str:
        if c in by_action["impute_mean"]:
            return "mean"
        if c in by_action["impute_most_frequent"]:
            return "most_frequent"
        return "median"

    transformers: list[tuple[str, Any, list[str]]] = []
    groups: dict[tuple[str, bool, bool], list[str]] = {}
    for c in numeric:
        groups.setdefault((num_strategy(c), c in log_cols, c in scale_cols), []).append(c)
    for (strategy, log, scale), cols in sorted(groups.items()):
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy=strategy))]
        if log:
            # clip first: a negative value at serving time must not turn into NaN
            steps.append(
                (
                    "clip",
                    FunctionTransformer(
                        np.clip,
                        kw_args={"a_min": 0.0, "a_max": None},
                        feature_names_out="one-to-one",
                    ),
                )
            )
            steps.append(("log1p", FunctionTransformer(np.log1p, feature_names_out="one-to-one")))
        if scale:
            steps.append(("scale", StandardScaler()))
        name = f"num_{strategy}{'_log' if log else ''}{'_scaled' if scale else ''}"
        transformers.append((name, Pipeline(steps), cols))

    ordinal = [c for c in categorical if c in by_action["ordinal_encode"]]
    onehot = [c for c in categorical if c not in ordinal]
    for kind, cols in (("onehot", onehot), ("ordinal", ordinal)):
        for constant in (False, True):
            group = [c for c in cols if (c in by_action["impute_constant"]) == constant]
            if not group:
                continue
            imputer = (
                SimpleImputer(strategy="constant", fill_value="__missing__")
                if constant
                else SimpleImputer(strategy="most_frequent")
            )
            encoder = (
                OneHotEncoder(handle_unknown="ignore", sparse_output=False)
                if kind == "onehot"
                else OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
            )
            transformers.append(
                (
                    f"cat_{kind}{'_constant' if constant else ''}",
                    Pipeline([("impute", imputer), ("encode", encoder)]),
                    group,
                )
            )
    preprocessor = ColumnTransformer(
        transformers, remainder="drop", verbose_feature_names_out=False
    )
    info = {
        "feature_columns": kept,
        "numeric_columns": numeric,
        "categorical_columns": categorical,
        "dropped_columns": [c for c in columns if c in dropped],
        "log1p_columns": sorted(log_cols),
        "scaled_columns": sorted(scale_cols),
        "ordinal_columns": ordinal,
        "ignored_recommendations": ignored,
    }
    return preprocessor, info
