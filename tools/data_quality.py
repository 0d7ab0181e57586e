"""Data profiling and the named data-quality checks that become governance evidence.

``profile_dataset`` describes a table (it never rejects one: a missing target is a
finding, recorded as such); ``quality_checks`` turns a profile into pass/fail checks,
each ``{passed, value, threshold, detail}``, plus an overall verdict and score.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpm.tools.datasets import read_table
from mpm.tools.metrics import check_model_type

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_THRESHOLDS: dict[str, float] = {
    "max_missing_rate": 0.20,  # share of missing feature cells
    "max_column_missing_rate": 0.50,  # worst single feature column
    "max_duplicate_rate": 0.05,  # share of fully duplicated rows
    "min_rows": 100,
    "min_class_share": 0.05,  # smallest class share (classification)
    "max_target_missing_rate": 0.05,
    "leakage_correlation": 0.95,  # |corr(feature, target)| above this is a leakage hint
}
_ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key|identifier)$", re.IGNORECASE)


def profile_dataset(
    path: str, target_column: str, model_type: str, *, out_dir: str | None = None
) -> dict[str, Any]:
    """Describe the table at ``path`` and write ``profile.json`` (to ``out_dir``, default
    the data file's folder).

    Returns rows, columns, dtypes, missing values per column, duplicates, class balance
    (classification) or target summary (regression), numeric and categorical summaries,
    id-like and constant columns and leakage hints, plus ``profile_path``.
    """
    model_type = check_model_type(model_type)
    df = read_table(Path(path))
    target_present = target_column in df.columns
    features = [c for c in df.columns if c != target_column]
    numeric, categorical = column_kinds(df, features)
    n = len(df)

    missing = {
        c: {"count": int(df[c].isna().sum()), "rate": _r(df[c].isna().mean())} for c in df.columns
    }
    feature_cells = n * max(len(features), 1)
    missing_rate = float(df[features].isna().sum().sum()) / feature_cells if features else 0.0
    dup_count = int(df.duplicated().sum())

    profile: dict[str, Any] = {
        "path": str(path),
        "rows": n,
        "columns": int(df.shape[1]),
        "column_names": [str(c) for c in df.columns],
        "target_column": target_column,
        "target_present": target_present,
        "model_type": model_type,
        "feature_columns": features,
        "numeric_columns": numeric,
        "categorical_columns": categorical,
        "dtypes": {c: str(df[c].dtype) for c in df.columns},
        "missing": missing,
        "missing_rate": _r(missing_rate),
        "max_column_missing_rate": _r(max((missing[c]["rate"] for c in features), default=0.0)),
        "duplicates": {"count": dup_count, "rate": _r(dup_count / n if n else 0.0)},
        "numeric_summary": {c: numeric_summary(df[c]) for c in numeric},
        "categorical_summary": {c: categorical_summary(df[c]) for c in categorical},
        "id_like_columns": id_like_columns(df, features),
        "constant_columns": [c for c in features if df[c].nunique(dropna=True) <= 1],
    }
    profile["target"] = _target_profile(df, target_column, model_type) if target_present else {}
    profile["leakage_hints"] = (
        leakage_hints(df, target_column, model_type, exclude=profile["id_like_columns"])
        if target_present and profile["target"].get("usable")
        else []
    )
    if model_type == "classification" and target_present:
        profile["class_balance"] = profile["target"].get("class_balance", {})
    out = Path(out_dir) if out_dir else Path(path).parent
    out.mkdir(parents=True, exist_ok=True)
    profile_path = out / "profile.json"
    profile["profile_path"] = str(profile_path)
    profile_path.write_text(json.dumps(profile, indent=2, default=str, sort_keys=True))
    return profile


def quality_checks(
    profile: Mapping[str, Any], model_type: str, *, thresholds: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Named checks over a profile, each ``{passed, value, threshold, detail}``, as the
    top-level keys of the result (``target_present``, ``target_suitable``,
    ``target_missing_rate``, ``missing_rate``, ``column_missing_rate``, ``duplicate_rate``,
    ``minimum_rows``, ``class_balance`` (classification only), ``no_leakage``).

    Besides them: ``data_quality_passed`` (every check passed), ``data_quality_score``
    (share of checks passed, 0-1), ``failed_checks`` and ``check_names`` (lists). Every
    dict-valued key of the result is a check.
    """
    model_type = check_model_type(model_type)
    t = {**DEFAULT_THRESHOLDS, **dict(thresholds or {})}
    target = profile.get("target") or {}
    rows = int(profile.get("rows", 0))
    checks: dict[str, dict[str, Any]] = {}

    def add(name: str, passed: bool, value: Any, threshold: Any, detail: str) -> None:
        checks[name] = {
            "passed": bool(passed),
            "value": value,
            "threshold": threshold,
            "detail": detail,
        }

    present = bool(profile.get("target_present"))
    add(
        "target_present",
        present,
        present,
        True,
        f"target column {profile.get('target_column')!r} "
        + (
            "is present"
            if present
            else f"is missing; columns: {', '.join(profile.get('column_names', []))}"
        ),
    )
    usable = bool(target.get("usable"))
    add("target_suitable", usable, usable, True, target.get("detail", "target column missing"))
    t_missing = float(target.get("missing_rate", 1.0 if not present else 0.0))
    add(
        "target_missing_rate",
        t_missing <= t["max_target_missing_rate"],
        t_missing,
        t["max_target_missing_rate"],
        f"{t_missing:.1%} of rows have no target value (they are dropped before training)",
    )
    rate = float(profile.get("missing_rate", 0.0))
    add(
        "missing_rate",
        rate < t["max_missing_rate"],
        rate,
        t["max_missing_rate"],
        f"{rate:.1%} of feature cells are missing",
    )
    worst = float(profile.get("max_column_missing_rate", 0.0))
    worst_col = max(
        (
            (c, m["rate"])
            for c, m in (profile.get("missing") or {}).items()
            if c != profile.get("target_column")
        ),
        key=lambda kv: kv[1],
        default=("-", 0.0),
    )[0]
    add(
        "column_missing_rate",
        worst < t["max_column_missing_rate"],
        worst,
        t["max_column_missing_rate"],
        f"worst column {worst_col!r} is {worst:.1%} missing",
    )
    dup = float((profile.get("duplicates") or {}).get("rate", 0.0))
    add(
        "duplicate_rate",
        dup < t["max_duplicate_rate"],
        dup,
        t["max_duplicate_rate"],
        f"{(profile.get('duplicates') or {}).get('count', 0)} fully duplicated rows ({dup:.1%})",
    )
    add("minimum_rows", rows >= t["min_rows"], rows, int(t["min_rows"]), f"{rows} rows")
    if model_type == "classification":
        balance = target.get("class_balance") or {}
        min_share = float(balance.get("min_share", 0.0))
        add(
            "class_balance",
            min_share >= t["min_class_share"],
            min_share,
            t["min_class_share"],
            f"smallest class {balance.get('min_class')!r} is {min_share:.1%} of rows"
            if balance
            else "no class balance: target missing or unusable",
        )
    leaks = list(profile.get("leakage_hints") or [])
    add(
        "no_leakage",
        not leaks,
        len(leaks),
        0,
        "no feature mirrors the target"
        if not leaks
        else "; ".join(f"{h['column']}: {h['reason']}" for h in leaks),
    )
    passed = [name for name, c in checks.items() if c["passed"]]
    score = round(len(passed) / len(checks), 4)
    return {
        **checks,
        "data_quality_passed": len(passed) == len(checks),
        "data_quality_score": score,
        "failed_checks": [name for name in checks if name not in passed],
        "check_names": list(checks),
    }


# --------------------------------------------------------------------------- column facts
# (shared with tools.features, which derives feature-engineering recommendations from them)


def column_kinds(df: pd.DataFrame, columns: list[str]) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns; booleans and strings count as categorical."""
    numeric = [c for c in columns if _is_numeric(df[c])]
    return numeric, [c for c in columns if c not in numeric]


def id_like_columns(df: pd.DataFrame, columns: list[str]) -> list[str]:
    return [c for c in columns if _id_like(c, df[c])]


def _r(x: float) -> float:
    return round(float(x), 6)


def _is_numeric(s: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s))


def _finite(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else round(x, 6)


def numeric_summary(s: pd.Series) -> dict[str, Any]:
    v = s.dropna().astype(float)
    if v.empty:
        return {"count": 0}
    q = v.quantile([0.01, 0.25, 0.5, 0.75, 0.99])
    return {
        "count": int(v.size),
        "mean": _finite(v.mean()),
        "std": _finite(v.std(ddof=0)),
        "min": _finite(v.min()),
        "p01": _finite(q.loc[0.01]),
        "p25": _finite(q.loc[0.25]),
        "median": _finite(q.loc[0.5]),
        "p75": _finite(q.loc[0.75]),
        "p99": _finite(q.loc[0.99]),
        "max": _finite(v.max()),
        "skew": _finite(v.skew()) if v.size > 2 else 0.0,
        "n_unique": int(v.nunique()),
    }


def categorical_summary(s: pd.Series) -> dict[str, Any]:
    counts = s.astype("object").dropna().astype(str).value_counts()
    return {
        "count": int(counts.sum()),
        "n_unique": int(counts.size),
        "top": {str(k): int(v) for k, v in counts.head(10).items()},
        "frequencies": {
            str(k): _r(v / max(int(counts.sum()), 1)) for k, v in counts.head(50).items()
        },
    }


def _id_like(name: str, s: pd.Series) -> bool:
    """Identifier columns carry no signal that generalises: unique strings, a running
    integer counter, or an ``*_id`` name with mostly distinct values."""
    import pandas as pd

    v = s.dropna()
    if len(v) < 10:
        return False
    unique_ratio = v.nunique() / len(v)
    if _ID_NAME.search(str(name)) and unique_ratio > 0.5:
        return True
    if not _is_numeric(v) and unique_ratio > 0.95:
        return True
    if pd.api.types.is_integer_dtype(v) and unique_ratio == 1.0:
        ordered = v.sort_values().to_numpy()
        return bool((ordered[1:] - ordered[:-1] == 1).all())
    return False


def _target_profile(df: pd.DataFrame, target: str, model_type: str) -> dict[str, Any]:
    import pandas as pd

    y = df[target]
    out: dict[str, Any] = {"dtype": str(y.dtype), "missing_rate": _r(y.isna().mean())}
    v = y.dropna()
    if v.empty:
        return {**out, "usable": False, "detail": f"target {target!r} has no values"}
    if model_type == "regression":
        if not _is_numeric(v):
            return {
                **out,
                "usable": False,
                "detail": f"target {target!r} is {y.dtype}, regression needs numbers",
            }
        if v.nunique() < 2:
            return {**out, "usable": False, "detail": f"target {target!r} is constant"}
        return {
            **out,
            "usable": True,
            "detail": "numeric, non-constant",
            "summary": numeric_summary(v),
        }
    counts = v.astype("object").value_counts()
    if counts.size < 2:
        return {**out, "usable": False, "detail": f"target {target!r} has a single class"}
    if pd.api.types.is_float_dtype(v) and counts.size > 50:
        return {
            **out,
            "usable": False,
            "detail": f"target {target!r} looks continuous ({counts.size} values)",
        }
    shares = counts / counts.sum()
    return {
        **out,
        "usable": True,
        "detail": f"{counts.size} classes",
        "class_balance": {
            "n_classes": int(counts.size),
            "counts": {str(k): int(c) for k, c in counts.items()},
            "shares": {str(k): _r(sv) for k, sv in shares.items()},
            "min_share": _r(shares.min()),
            "min_class": str(shares.idxmin()),
        },
    }


def leakage_hints(
    df: pd.DataFrame, target: str, model_type: str, *, exclude: list[str] | tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Features that give the answer away: a copy of the target, a near-perfect
    correlation with it, or a low-cardinality column that determines it exactly."""
    import pandas as pd

    limit = DEFAULT_THRESHOLDS["leakage_correlation"]
    numeric, categorical = column_kinds(df, [c for c in df.columns if c != target])
    d = df[df[target].notna()]
    y = d[target]
    if model_type == "regression":
        indicators = [y.astype(float)]
    else:
        classes = sorted(y.astype(str).unique())
        y_str = y.astype(str)
        indicators = [
            (y_str == c).astype(float) for c in (classes[1:] if len(classes) == 2 else classes)
        ]
    hints: list[dict[str, Any]] = []
    y_text = y.astype(str)
    for col in numeric + categorical:
        x = d[col]
        if col in exclude:
            continue
        if x.notna().all() and x.astype(str).equals(y_text):
            hints.append({"column": col, "reason": "identical to target", "value": 1.0})
            continue
        if col in numeric:
            xf = x.astype(float)
            if xf.nunique() < 2:
                continue
            best = 0.0
            for ind in indicators:
                corr = xf.corr(ind)
                if corr is not None and not pd.isna(corr):
                    best = max(best, abs(float(corr)))
            if best > limit:
                hints.append(
                    {
                        "column": col,
                        "reason": f"|correlation| with target {best:.3f} > {limit}",
                        "value": _r(best),
                    }
                )
                continue
        if model_type == "classification":
            known = x.notna()
            n_values = x[known].nunique()
            if 1 < n_values <= max(50, int(0.05 * len(d))) and known.mean() > 0.9:
                purity = d[known].groupby(x[known].astype(str))[target].nunique().max()
                if purity == 1:
                    hints.append(
                        {
                            "column": col,
                            "reason": "each value determines the target exactly",
                            "value": 1.0,
                        }
                    )
    return hints
