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
from mpm.tools.errors import ToolConfigError
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
    "max_train_test_overlap": 0.01,  # share of test rows repeating a train/validation row
    "max_constant_or_id_columns": 0,  # constant or ID-like columns left as model inputs
}
# Thresholds where a larger value is stricter; for every other one a smaller value is.
_HIGHER_IS_STRICTER = frozenset({"min_rows", "min_class_share"})
GATES = ("target_missing_rate", "duplicate_rate", "train_test_overlap", "constant_or_id_columns")
"""The checks whose failure blocks validation from passing unless remediated or accepted
(the other checks are reported as evidence; leakage has its own findings, tools.leakage)."""
REMEDIATIONS = ("drop_missing_target", "drop_duplicates")
_ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key|identifier)$", re.IGNORECASE)


def profile_dataset(
    path: str,
    target_column: str,
    model_type: str,
    *,
    out_dir: str | None = None,
    exclude: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """Describe the table at ``path`` and write ``profile.json`` (to ``out_dir``, default
    the data file's folder).

    Returns rows, columns, dtypes, missing values per column, duplicates, class balance
    (classification) or target summary (regression), numeric and categorical summaries,
    id-like and constant columns, leakage hints and ``leakage_findings`` (tools.leakage;
    ``exclude``: columns the requirements keep out of the model, not judged), plus
    ``profile_path``.
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
    usable = target_present and profile["target"].get("usable")
    profile["leakage_hints"] = (
        leakage_hints(df, target_column, model_type, exclude=profile["id_like_columns"])
        if usable
        else []
    )
    from mpm.tools.leakage import data_findings

    profile["leakage_findings"] = (
        data_findings(df, target_column, model_type, exclude=exclude) if usable else []
    )
    profile["excluded_columns"] = list(exclude)
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
    t, loosened = effective_thresholds(thresholds)
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
    special = [
        c
        for c in dict.fromkeys(
            [*(profile.get("constant_columns") or []), *(profile.get("id_like_columns") or [])]
        )
    ]
    add(
        "constant_or_id_columns",
        True,
        len(special),
        int(t["max_constant_or_id_columns"]),
        (
            f"constant or ID-like: {', '.join(special)}; dropped from the model inputs by the "
            "feature recommendations (the validator checks the trained model's inputs)"
        )
        if special
        else "no constant or ID-like columns",
    )
    leaks = list(profile.get("leakage_hints") or [])
    likely = [f for f in profile.get("leakage_findings") or [] if f["severity"] == "likely_leak"]
    for f in likely:
        if f["column"] not in {h["column"] for h in leaks}:
            leaks.append({"column": f["column"], "reason": f["reason"]})
    add(
        "no_leakage",
        not leaks,
        len(leaks),
        0,
        "no feature mirrors the target"
        if not leaks
        else "; ".join(f"{h['column']}: {h['reason']}" for h in leaks),
    )
    return summarise(checks, loosened=loosened)


def summarise(
    checks: Mapping[str, Mapping[str, Any]], *, loosened: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The verdict over named checks (also used after the split adds its overlap check)."""
    checks = {k: dict(v) for k, v in checks.items()}
    passed = [name for name, c in checks.items() if c["passed"]]
    score = round(len(passed) / len(checks), 4) if checks else 1.0
    return {
        **checks,
        "data_quality_passed": len(passed) == len(checks),
        "data_quality_score": score,
        "failed_checks": [name for name in checks if name not in passed],
        "failed_gates": [n for n in GATES if n in checks and not checks[n]["passed"]],
        "check_names": list(checks),
        # a list, not a dict: every dict-valued key of the result is a check
        "ignored_loosening": [
            {"threshold": k, "requested": v["requested"], "default": v["default"]}
            for k, v in sorted(dict(loosened or {}).items())
        ],
    }


def effective_thresholds(
    requested: Mapping[str, float] | None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """The defaults tightened by ``requested`` (a policy's or the requirements'
    ``quality_thresholds``). A value looser than the default is ignored and returned in the
    second dict: relaxing a gate takes a signed risk acceptance, not a setting."""
    t = dict(DEFAULT_THRESHOLDS)
    ignored: dict[str, Any] = {}
    for key, value in dict(requested or {}).items():
        if key not in DEFAULT_THRESHOLDS:
            raise ToolConfigError(
                f"quality_thresholds: unknown threshold {key!r}; expected some of "
                f"{', '.join(DEFAULT_THRESHOLDS)}"
            )
        value = float(value)
        default = DEFAULT_THRESHOLDS[key]
        stricter = value >= default if key in _HIGHER_IS_STRICTER else value <= default
        if stricter:
            t[key] = value
        else:
            ignored[key] = {"requested": value, "default": default}
    return t, ignored


def gate_findings(checks: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A finding (stable id ``data_quality.<check>``) for every failed gate: each blocks
    validation from passing until remediated or accepted through a signed risk acceptance."""
    out = []
    for name in GATES:
        c = checks.get(name)
        if isinstance(c, Mapping) and not c.get("passed", True):
            out.append(
                {
                    "id": f"data_quality.{name}",
                    "category": "data_quality",
                    "kind": name,
                    "column": None,
                    "severity": "blocking",
                    "reason": f"data-quality gate {name} failed: {c.get('detail')}",
                    "evidence": {"value": c.get("value"), "threshold": c.get("threshold")},
                    "remediation": _REMEDY.get(name, ""),
                }
            )
    return out


_REMEDY = {
    "target_missing_rate": "data_remediation: [drop_missing_target] in the requirements",
    "duplicate_rate": "data_remediation: [drop_duplicates] in the requirements",
    "train_test_overlap": "data_remediation: [drop_duplicates], or a group_column to split by",
    "constant_or_id_columns": "exclude_columns in the requirements",
}


def remediate(
    df: pd.DataFrame, target_column: str, actions: list[str] | tuple[str, ...]
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Apply the requested remediations in a fixed order; each is recorded with the rows
    it removed so the model documentation can say exactly what was done to the data."""
    unknown = [a for a in actions if a not in REMEDIATIONS]
    if unknown:
        raise ToolConfigError(
            f"data_remediation: unknown {', '.join(map(repr, unknown))}; expected some of "
            f"{', '.join(REMEDIATIONS)}"
        )
    records = []
    for action in REMEDIATIONS:
        if action not in actions:
            continue
        before = len(df)
        if action == "drop_missing_target" and target_column in df.columns:
            df = df[df[target_column].notna()]
            what = "rows without a target value dropped"
        elif action == "drop_duplicates":
            df = df.drop_duplicates()
            what = "exact duplicate rows dropped (first kept)"
        else:
            continue
        df = df.reset_index(drop=True)
        records.append(
            {
                "action": action,
                "rows_before": before,
                "rows_after": len(df),
                "rows_removed": before - len(df),
                "detail": f"{before - len(df)} {what}",
            }
        )
    return df, records


def train_test_overlap(
    train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame, *, threshold: float | None = None
) -> dict[str, Any]:
    """The ``train_test_overlap`` check: test rows that repeat a train or validation row
    exactly (every column, target included) measure memorisation, not generalisation."""
    import pandas as pd

    limit = DEFAULT_THRESHOLDS["max_train_test_overlap"] if threshold is None else threshold
    cols = list(test.columns)
    seen = pd.concat([train[cols], val[cols]]).drop_duplicates()
    key = lambda d: pd.util.hash_pandas_object(d.astype(str), index=False)  # noqa: E731
    repeated = int(key(test[cols]).isin(set(key(seen))).sum())
    rate = repeated / len(test) if len(test) else 0.0
    return {
        "passed": rate <= limit,
        "value": _r(rate),
        "threshold": limit,
        "detail": f"{repeated} of {len(test)} test rows ({rate:.1%}) repeat a train/validation row exactly",
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
