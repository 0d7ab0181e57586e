"""Target-leakage detection a model validator can trust: ``data_findings`` (data time) and
``model_findings`` (validation time), each a finding with a stable id and its evidence.

Plain correlation with a fixed cut-off misses the leaks validators see first: a raw wage
column next to a log-wage target correlates at 0.947 (monotone, not linear), and a
death / end-of-observation date is not a number at all. So every feature is judged by
several independent measures: rank correlation, normalised mutual information, and how well
a small model on that one feature alone predicts the target ("single-feature skill"), plus
what its name and type say (outcome or post-event information). At validation time the
trained model is judged too: one input carrying almost all the importance, and a result
implausibly close to perfect next to the naive baseline.

A finding is ``likely_leak`` (it fails validation when the column is a model input, see
``blocking``) or ``warning`` (reported, never blocking on its own). Its ``id`` is stable
(``leakage.<kind>.<column>``) so a person can accept exactly that finding through a
signed risk acceptance, or exclude the column in the requirements (``exclude_columns``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# Documented defaults (README "Validation protocol"); a caller may only tighten them.
THRESHOLDS: dict[str, float] = {
    "single_feature_skill": 0.98,  # one feature alone closes >= 98% of the gap to perfect
    "rank_correlation": 0.98,  # |Spearman| with the target (regression) or a class indicator
    "linear_correlation": 0.95,  # |Pearson|, the old cut-off, kept as one measure among several
    "mutual_information": 0.90,  # MI(feature; target) / H(target), classification
    "marker_association": 0.30,  # a name-marked column leaks once it carries this much signal
    "importance_share": 0.90,  # one input's share of the model's permutation importance
    "implausible_skill": 0.98,  # test result closes >= 98% of the baseline-to-perfect gap
}
SAMPLE_ROWS = 5000  # single-feature models are fitted on at most this many rows
_BINS = 20

# Tokens in a column name that mark outcome or post-event information.
OUTCOME_TOKENS = frozenset(
    {
        "outcome", "outcomes", "result", "results", "death", "died", "dead", "deceased",
        "mortality", "end", "ended", "ending", "exit", "discharge", "discharged",
        "terminated", "termination", "cancelled", "canceled", "closed", "closure",
        "resolution", "resolved", "final", "settled", "settlement", "recovered", "recovery",
        "chargeoff", "writeoff", "label", "target", "post", "after", "future", "followup",
    }
)  # fmt: skip
# Tokens that say a numeric column is a point in time (days since enrolment, a year ...).
DATE_TOKENS = frozenset({"date", "day", "days", "time", "dt", "timestamp", "when", "year", "month"})
_TOKEN = re.compile(r"[a-z]+|\d+")


def name_tokens(name: str) -> list[str]:
    """``deathDate`` / ``date_of_death`` / ``END-DATE`` -> lower-case word tokens."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))
    return _TOKEN.findall(spaced.lower())


def outcome_markers(name: str) -> list[str]:
    return [t for t in name_tokens(name) if t in OUTCOME_TOKENS]


def finding(
    kind: str, column: str | None, severity: str, reason: str, evidence: Mapping[str, Any]
) -> dict[str, Any]:
    """One finding; ``id`` is what a signed risk acceptance names."""
    return {
        "id": f"leakage.{kind}" + (f".{column}" if column is not None else ""),
        "category": "leakage",
        "kind": kind,
        "column": column,
        "severity": severity,
        "reason": reason,
        "evidence": {k: _round(v) for k, v in evidence.items()},
    }


def blocking(
    findings: Iterable[Mapping[str, Any]], model_inputs: Sequence[str]
) -> list[dict[str, Any]]:
    """The findings that fail validation: every ``blocking`` one (a failed data-quality
    gate) and the likely leaks (and ``blocking_if_input`` findings such as a constant or
    ID-like column) on a column the model uses (a leak in a column that never
    reaches the model cannot inflate its score) or on the model as a whole."""
    inputs = set(model_inputs)
    return [
        dict(f)
        for f in findings
        if f.get("severity") == "blocking"
        or (
            f.get("severity") in {"likely_leak", "blocking_if_input"}
            and (f.get("column") is None or f["column"] in inputs)
        )
    ]


# --------------------------------------------------------------------------- data time


def data_findings(
    df: pd.DataFrame,
    target: str,
    model_type: str,
    *,
    exclude: Sequence[str] = (),
    seed: int = 42,
    thresholds: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Leakage findings for every feature of ``df`` (``exclude``: columns the
    requirements already keep out of the model). Deterministic for a given seed."""
    import numpy as np

    t = {**THRESHOLDS, **dict(thresholds or {})}
    d = df[df[target].notna()]
    if len(d) > SAMPLE_ROWS:
        d = d.sample(SAMPLE_ROWS, random_state=seed)
    d = d.reset_index(drop=True)
    y = d[target]
    if model_type == "classification" and y.nunique() < 2:
        return []
    if model_type == "regression" and y.astype(float).nunique() < 2:
        return []
    out: list[dict[str, Any]] = []
    y_text = y.astype(str)
    for col in [c for c in d.columns if c != target and c not in set(exclude)]:
        x = d[col]
        if x.notna().all() and x.astype(str).equals(y_text):
            out.append(
                finding(
                    "target_copy", col, "likely_leak", "identical to the target", {"match": 1.0}
                )
            )
            continue
        values, kind = as_number(x)
        markers = outcome_markers(col)
        ev: dict[str, Any] = {"column_kind": kind}
        if values is not None and np.isfinite(values).sum() >= 10:
            ev.update(_associations(values, y, model_type, seed))
        prefix = _prefix_purity(x, y) if kind == "text" else None
        if prefix is not None:
            ev["label_prefix_purity"] = prefix
        strong = _strong(ev, t, model_type)
        if strong:
            out.append(
                finding(
                    "target_proxy",
                    col,
                    "likely_leak",
                    f"{col!r} nearly determines the target ({strong})",
                    ev,
                )
            )
        elif prefix == 1.0:
            out.append(
                finding(
                    "id_encodes_label",
                    col,
                    "likely_leak",
                    f"the leading letters of {col!r} determine the target exactly",
                    ev,
                )
            )
        elif markers or kind == "date":
            signal = _signal(ev)
            dated = kind == "date" or bool(DATE_TOKENS & set(name_tokens(col)))
            what = "post-event date" if dated else "outcome information"
            why = (
                f"name marks {what} ({', '.join(markers)})"
                if markers
                else "a date column (dates after the event give the outcome away)"
            )
            # a date alone is only a warning (a sign-up date is legitimate); a date or any
            # column whose name marks the outcome or what happened after it is a likely leak
            # once it carries signal about the target
            leaky = signal >= t["marker_association"] and bool(markers)
            out.append(
                finding(
                    "post_event_date" if dated else "outcome_name",
                    col,
                    "likely_leak" if leaky else "warning",
                    f"{why}; association with the target {signal:.3f}"
                    + (
                        f" >= {t['marker_association']}"
                        if leaky
                        else f" < {t['marker_association']}"
                    ),
                    {**ev, "name_markers": markers, "association": signal},
                )
            )
    return out


def as_number(x: pd.Series) -> tuple[Any, str]:
    """The column as floats and what it is: ``numeric``, ``date`` (days since the epoch),
    ``category`` (codes of a low-cardinality column) or ``text`` (nothing numeric)."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(x):
        return x.astype(float).to_numpy(), "numeric"
    if pd.api.types.is_datetime64_any_dtype(x):
        return _days(x), "date"
    if pd.api.types.is_numeric_dtype(x):
        return x.astype(float).to_numpy(), "numeric"
    s = x.astype("object")
    sample = s.dropna().astype(str).head(200)
    if (
        len(sample)
        and sample.str.contains(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4}").mean() > 0.9
    ):
        parsed = pd.to_datetime(s, errors="coerce", format="mixed")
        if parsed.notna().mean() > 0.9:
            return _days(parsed), "date"
    n_unique = s.nunique(dropna=True)
    if 1 < n_unique <= max(50, int(0.05 * len(s))):
        codes = pd.Series(pd.Categorical(s.astype(str).where(s.notna())).codes, dtype=float)
        return codes.where(codes >= 0, np.nan).to_numpy(), "category"
    return None, "text"


def _days(x: pd.Series) -> Any:
    import numpy as np
    import pandas as pd

    v = pd.to_datetime(x, errors="coerce", utc=True)
    days = (v - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds() / 86_400.0
    return days.astype(float).fillna(np.nan).to_numpy()


def _associations(values: Any, y: pd.Series, model_type: str, seed: int) -> dict[str, Any]:
    """Rank / linear correlation, normalised mutual information and single-feature skill."""
    import numpy as np
    import pandas as pd

    x = pd.Series(values, dtype=float)
    ev: dict[str, Any] = {}
    if x.nunique() < 2:
        return ev
    if model_type == "regression":
        yf = y.astype(float)
        ev["pearson"] = abs(_nan0(x.corr(yf)))
        ev["spearman"] = abs(_nan0(x.corr(yf, method="spearman")))
    else:
        classes = sorted(y.astype(str).unique())
        y_str = y.astype(str)
        inds = [(y_str == c).astype(float) for c in (classes[1:] if len(classes) == 2 else classes)]
        ev["pearson"] = max(abs(_nan0(x.corr(i))) for i in inds)
        ev["spearman"] = max(abs(_nan0(x.corr(i, method="spearman"))) for i in inds)
        ev["mutual_information"] = _normalised_mi(x, y_str)
    ev["single_feature_skill"] = single_feature_skill(x.to_numpy(), y, model_type, seed)
    ev["missing_rate"] = float(np.isnan(x.to_numpy()).mean())
    return ev


def _normalised_mi(x: pd.Series, y: pd.Series) -> float:
    """MI(binned x; y) / H(y): 1 when the feature's bins fix the class, 0 when independent.
    Missing values form their own bin (missingness itself can leak)."""
    import numpy as np
    import pandas as pd
    from sklearn.metrics import mutual_info_score

    if x.nunique() > _BINS:
        bins = pd.qcut(x, _BINS, labels=False, duplicates="drop")
    else:
        bins = pd.Series(pd.Categorical(x).codes, dtype=float).where(x.notna())
    b = bins.astype(float).fillna(-1).astype(int).to_numpy()
    shares = y.value_counts(normalize=True).to_numpy()
    h = float(-(shares * np.log(shares)).sum())
    return float(mutual_info_score(y.to_numpy(), b) / h) if h > 0 else 0.0


def single_feature_skill(values: Any, y: pd.Series, model_type: str, seed: int) -> float:
    """How well a shallow tree on this feature alone predicts the target, out of fold:
    the share of the gap between the naive baseline and a perfect score it closes
    (regression: R²; classification: 2*AUC-1 for binary, balanced-accuracy gain otherwise)."""
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    x = np.asarray(values, dtype=float).reshape(-1, 1)
    missing = np.isnan(x[:, 0])
    # missing as its own value, far outside the observed range
    fill = (np.nanmin(x) - 1e6) if (~missing).any() else 0.0
    x = np.where(np.isnan(x), fill, x)
    if model_type == "regression":
        yv = y.astype(float).to_numpy()
        pred = cross_val_predict(
            DecisionTreeRegressor(max_depth=6, min_samples_leaf=5, random_state=seed),
            x,
            yv,
            cv=KFold(3, shuffle=True, random_state=seed),
        )
        ss_res = float(((yv - pred) ** 2).sum())
        ss_tot = float(((yv - yv.mean()) ** 2).sum())
        return max(0.0, 1 - ss_res / ss_tot) if ss_tot > 0 else 0.0
    labels = y.astype(str).to_numpy()
    classes, counts = np.unique(labels, return_counts=True)
    folds = min(3, int(counts.min()))
    if folds < 2:
        return 0.0
    tree = DecisionTreeClassifier(max_depth=4, min_samples_leaf=5, random_state=seed)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    if len(classes) == 2:
        from sklearn.metrics import roc_auc_score

        proba = cross_val_predict(tree, x, labels, cv=cv, method="predict_proba")[:, 1]
        auc = roc_auc_score(labels == classes[1], proba)
        return max(0.0, 2 * max(auc, 1 - auc) - 1)
    from sklearn.metrics import balanced_accuracy_score

    pred = cross_val_predict(tree, x, labels, cv=cv)
    chance = 1.0 / len(classes)
    return max(0.0, (balanced_accuracy_score(labels, pred) - chance) / (1 - chance))


def _prefix_purity(x: pd.Series, y: pd.Series) -> float | None:
    """For identifier-like text (``D-0001``, ``A-0002``): the share of rows whose leading
    letters alone fix the target (1.0: the id encodes the label); None if no prefix."""
    s = x.astype("object").dropna().astype(str)
    if len(s) < 10:
        return None
    prefix = s.str.extract(r"^([A-Za-z]+)", expand=False)
    if prefix.isna().mean() > 0.1:
        return None
    n = prefix.nunique()
    if not 1 < n <= 20:
        return None
    yy = y.loc[prefix.index].astype(str)
    pure = yy.groupby(prefix).agg(lambda v: v.value_counts(normalize=True).iloc[0])
    sizes = prefix.value_counts()
    return float((pure * sizes.reindex(pure.index)).sum() / sizes.sum())


def _strong(ev: Mapping[str, Any], t: Mapping[str, float], model_type: str) -> str:
    """Which measure (if any) says the feature nearly determines the target."""
    checks = [
        ("single_feature_skill", "single-feature skill"),
        ("rank_correlation", "rank correlation"),
        ("linear_correlation", "linear correlation"),
    ]
    names = {"rank_correlation": "spearman", "linear_correlation": "pearson"}
    for key, label in checks:
        value = ev.get(names.get(key, key))
        if isinstance(value, float) and value >= t[key]:
            return f"{label} {value:.3f} >= {t[key]}"
    mi = ev.get("mutual_information")
    if model_type == "classification" and isinstance(mi, float) and mi >= t["mutual_information"]:
        return f"normalised mutual information {mi:.3f} >= {t['mutual_information']}"
    return ""


def _signal(ev: Mapping[str, Any]) -> float:
    return max(
        (
            float(ev[k])
            for k in ("single_feature_skill", "spearman", "mutual_information")
            if k in ev
        ),
        default=0.0,
    )


# --------------------------------------------------------------------------- validation time


def skill(score: float, baseline: float, metric: str) -> float | None:
    """Share of the gap between the naive baseline and a perfect score that ``score``
    closes (1.0 = perfect); None when the baseline is already perfect."""
    from mpm.tools.metrics import lower_is_better

    perfect = 0.0 if lower_is_better(metric) else 1.0
    gap = perfect - baseline
    if abs(gap) < 1e-12:
        return None
    return (score - baseline) / gap


def model_findings(
    *,
    test_score: float,
    baseline_score: float,
    metric: str,
    importances: Sequence[Mapping[str, Any]],
    data_level: Sequence[Mapping[str, Any]] = (),
    thresholds: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Findings about the trained model: an implausibly good result next to the naive
    baseline, and one input carrying almost all the importance. Together (or with a
    data-time finding on the same column) they make a likely leak naming that column."""
    t = {**THRESHOLDS, **dict(thresholds or {})}
    out: list[dict[str, Any]] = []
    s = skill(test_score, baseline_score, metric)
    implausible = s is not None and s >= t["implausible_skill"]
    if implausible:
        out.append(
            finding(
                "implausible_result",
                None,
                "warning",
                f"test {metric} {test_score:.5f} closes {s:.1%} of the gap between the naive "
                f"baseline ({baseline_score:.4f}) and a perfect score: check for leakage",
                {"test_score": test_score, "baseline_score": baseline_score, "skill": s},
            )
        )
    positive = [(str(i["feature"]), max(float(i["mean"]), 0.0)) for i in importances]
    total = sum(v for _, v in positive)
    if total > 0:
        top, value = max(positive, key=lambda kv: kv[1])
        share = value / total
        if share >= t["importance_share"]:
            flagged = {f["column"] for f in data_level if f.get("column")}
            leak = implausible or top in flagged
            out.append(
                finding(
                    "dominant_feature",
                    top,
                    "likely_leak" if leak else "warning",
                    f"{top!r} carries {share:.1%} of the model's permutation importance"
                    + (
                        " and the result is implausibly good"
                        if implausible
                        else " (also flagged in the data)"
                        if top in flagged
                        else ""
                    ),
                    {"importance_share": share, "importance": value, "skill": s},
                )
            )
    return out


def _nan0(x: Any) -> float:
    x = float(x) if x is not None else 0.0
    return 0.0 if math.isnan(x) else x


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 6)
    if hasattr(v, "item"):
        return _round(v.item())
    return v
