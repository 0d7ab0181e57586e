"""Model quality on real tabular data that ships inside pip packages, and leakage probes.

mpm's model development (EDA recommendations -> candidates chosen on the cross-validation
mean over train+validation -> refit -> one test evaluation) runs on datasets bundled with
scikit-learn and statsmodels (none of them mpm's bundled examples); FLAML, when installed,
gets the same time budget on the same splits. Then the leakage probes: pip-bundled data
with a target-derived column left in, run through mpm's development *and* validation, each
reported as caught or not. Prints JSON.

Run: ``python benchmarks/model_quality.py`` (short: at most 1500 rows per dataset, a few
minutes on 2 cores) or ``--full`` (every row). ``--no-flaml`` skips the comparison.
Needs the ``bench`` extra (statsmodels, flaml); datasets whose package is missing are
reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

QUICK_ROWS = 1500
SEED = 42


# --------------------------------------------------------------------------- datasets


def _sklearn(name: str) -> Any:
    import sklearn.datasets as skd

    return getattr(skd, f"load_{name}")(as_frame=True).frame


def _statsmodels(name: str) -> Any:
    import importlib

    return importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data


def wine() -> Any:
    return _sklearn("wine")


def digits() -> Any:
    return _sklearn("digits")


def fair() -> Any:
    df = _statsmodels("fair").copy()
    df["had_affair"] = (df.pop("affairs") > 0).astype(int)
    for col in ("occupation", "occupation_husb"):  # codes, not quantities
        df[col] = df[col].astype(int).astype(str)
    return df


def anes96() -> Any:
    df = _statsmodels("anes96").copy()
    df["vote"] = df["vote"].astype(int)
    df["PID"] = df["PID"].astype(int).astype(str)
    return df


def randhie() -> Any:
    import numpy as np

    df = _statsmodels("randhie").copy()
    df["log_visits"] = np.log1p(df.pop("mdvis"))
    return df


def star98() -> Any:
    df = _statsmodels("star98").copy()
    above, below = df.pop("NABOVE"), df.pop("NBELOW")
    df["share_above"] = above / (above + below)
    return df


# name: (loader, target, model_type, metric)
DATASETS: dict[str, tuple[Callable[[], Any], str, str, str]] = {
    "sklearn:wine": (wine, "target", "classification", "accuracy"),
    "sklearn:digits": (digits, "target", "classification", "accuracy"),
    "statsmodels:fair": (fair, "had_affair", "classification", "roc_auc"),
    "statsmodels:anes96": (anes96, "vote", "classification", "roc_auc"),
    "statsmodels:randhie": (randhie, "log_visits", "regression", "r2"),
    "statsmodels:star98": (star98, "share_above", "regression", "r2"),
}


def probe_log_visits() -> tuple[Any, str, str, str, str]:
    """The log-wage case: a log-transformed target with the raw count left in."""
    import numpy as np

    df = _statsmodels("randhie").copy()
    df["log_visits"] = np.log1p(df["mdvis"])
    return df, "log_visits", "regression", "r2", "mdvis"


def probe_followup_end() -> tuple[Any, str, str, str, str]:
    """The survival case: a diagnosis with the end-of-follow-up day left in (for the
    malignant cases the day of death, for the benign ones the study end or the day they
    were lost to follow-up) built on scikit-learn's breast-cancer data."""
    import numpy as np

    df = _sklearn("breast_cancer").copy()
    rng = np.random.default_rng(SEED)
    malignant = df["target"] == 0
    df["end_of_followup_day"] = np.where(
        malignant,
        rng.integers(30, 1500, len(df)),
        np.where(rng.random(len(df)) < 0.3, rng.integers(200, 1825, len(df)), 1825),
    )
    return df, "target", "classification", "roc_auc", "end_of_followup_day"


def probe_affairs_measure() -> tuple[Any, str, str, str, str]:
    """The outcome's own measurement left in: had an affair, with the affairs score."""
    df = _statsmodels("fair").copy()
    df["had_affair"] = (df["affairs"] > 0).astype(int)
    return df, "had_affair", "classification", "roc_auc", "affairs"


PROBES: dict[str, Callable[[], tuple[Any, str, str, str, str]]] = {
    "randhie_log_visits_with_raw_visits": probe_log_visits,
    "breast_cancer_with_followup_end_day": probe_followup_end,
    "fair_had_affair_with_affairs_score": probe_affairs_measure,
}


# --------------------------------------------------------------------------- runs


def _prepare(df: Any, target: str, model_type: str, rows: int | None, work: Path) -> dict[str, Any]:
    from mpm.tools.datasets import split_dataset

    if rows and len(df) > rows:
        df = df.sample(rows, random_state=SEED)
    work.mkdir(parents=True, exist_ok=True)
    path = work / "data.parquet"
    df.reset_index(drop=True).to_parquet(path, index=False)
    split = split_dataset(str(path), target, str(work / "split"), seed=SEED, model_type=model_type)
    return {"path": str(path), "split": split, "rows": len(df)}


def run_mpm(
    df: Any, target: str, model_type: str, metric: str, rows: int | None, work: Path
) -> dict[str, Any]:
    """mpm's development and validation, the same tools a governed run calls."""
    from mpm.tools.datasets import read_table
    from mpm.tools.evaluation import validate_model
    from mpm.tools.leakage import data_findings
    from mpm.tools.training import train_candidates

    data = _prepare(df, target, model_type, rows, work)
    split = data["split"]
    started = time.perf_counter()
    trained = train_candidates(
        split["train_path"],
        split["val_path"],
        target,
        str(work / "train"),
        model_type=model_type,
        target_metric=metric,
        seed=SEED,
    )
    dev_seconds = time.perf_counter() - started
    findings = data_findings(read_table(Path(data["path"])), target, model_type, seed=SEED)
    report = validate_model(
        trained["model_path"],
        split["test_path"],
        target,
        str(work / "validation"),
        model_type=model_type,
        target_metric=metric,
        success_threshold=0.0 if metric != "rmse" else 1e12,
        decision_threshold=trained["decision_threshold"],
        train_path=split["train_path"],
        findings=findings,
        seed=SEED,
    )
    return {
        "rows": data["rows"],
        "split": split,
        "trained": trained,
        "report": report,
        "findings": findings,
        "seconds": round(dev_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
    }


def run_flaml(
    split: dict[str, Any], target: str, model_type: str, metric: str, budget: float
) -> dict[str, Any]:
    """FLAML's AutoML with the same time budget on the same train+validation rows, scored
    on the same test split with mpm's metric definitions."""
    import pandas as pd
    from flaml import AutoML

    from mpm.tools.metrics import all_metrics

    dev = pd.concat(
        [pd.read_parquet(split["train_path"]), pd.read_parquet(split["val_path"])],
        ignore_index=True,
    )
    test = pd.read_parquet(split["test_path"])
    x, y = dev.drop(columns=[target]), dev[target]
    classes = sorted(y.unique().tolist()) if model_type == "classification" else []
    flaml_metric = {"roc_auc": "roc_auc" if len(classes) <= 2 else "roc_auc_ovr"}.get(
        metric, metric
    )
    automl = AutoML()
    started = time.perf_counter()
    automl.fit(
        x,
        y,
        task="classification" if model_type == "classification" else "regression",
        metric=flaml_metric,
        time_budget=max(1.0, budget),
        seed=SEED,
        n_jobs=1,
        verbose=0,
    )
    seconds = time.perf_counter() - started
    xt = test[x.columns]
    pred = automl.predict(xt)
    proba = automl.predict_proba(xt) if model_type == "classification" else None
    scores = all_metrics(model_type, test[target], pred, proba, classes)
    return {
        "score": scores.get(metric),
        "best_estimator": automl.best_estimator,
        "seconds": round(seconds, 2),
    }


def quality(rows: int | None, flaml: bool, work: Path) -> list[dict[str, Any]]:
    out = []
    for name, (loader, target, model_type, metric) in DATASETS.items():
        try:
            df = loader()
        except ImportError as exc:
            out.append({"dataset": name, "skipped": f"not installed: {exc.name}"})
            continue
        run = run_mpm(df, target, model_type, metric, rows, work / name.replace(":", "_"))
        entry: dict[str, Any] = {
            "dataset": name,
            "model_type": model_type,
            "metric": metric,
            "rows": run["rows"],
            "mpm": {
                "score": round(run["report"]["test_score"], 5),
                "model": run["trained"]["best_model_name"],
                "cv_mean": round(run["trained"]["best_model_score"], 5),
                "decision_threshold": run["trained"]["decision_threshold"],
                "seconds": run["seconds"],
                "blocking_findings": [f["id"] for f in run["report"]["blocking_findings"]],
            },
        }
        if flaml:
            f = run_flaml(run["split"], target, model_type, metric, run["seconds"])
            entry["flaml"] = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in f.items()}
            if f["score"] is not None:
                entry["gap_mpm_minus_flaml"] = round(run["report"]["test_score"] - f["score"], 5)
        out.append(entry)
    return out


def probes(rows: int | None, work: Path) -> list[dict[str, Any]]:
    """Each probe caught when validation fails with the leaking column named (or, failing
    that, when the leak was kept out of the model inputs with the finding recorded)."""
    out = []
    for name, build in PROBES.items():
        try:
            df, target, model_type, metric, column = build()
        except ImportError as exc:
            out.append({"probe": name, "skipped": f"not installed: {exc.name}"})
            continue
        run = run_mpm(df, target, model_type, metric, rows, work / f"probe_{name}")
        report = run["report"]
        named = [f["id"] for f in report["blocking_findings"] if f.get("column") == column]
        flagged = [f["id"] for f in run["findings"] if f.get("column") == column]
        in_inputs = column in run["trained"]["feature_columns"]
        out.append(
            {
                "probe": name,
                "leaking_column": column,
                "caught": bool(named) or (bool(flagged) and not in_inputs),
                "validation_failed": not report["validation_passed"],
                "column_named_in_blocking_findings": named,
                "data_findings_on_column": flagged,
                "column_was_model_input": in_inputs,
                "test_score": round(report["test_score"], 5),
                "metric": metric,
                "verdict": report["verdict"],
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="every row (default: at most 1500)")
    parser.add_argument("--no-flaml", action="store_true", help="skip the FLAML comparison")
    parser.add_argument("--probes-only", action="store_true", help="only the leakage probes")
    args = parser.parse_args()
    rows = None if args.full else QUICK_ROWS
    try:
        from flaml import AutoML  # noqa: F401  (needs flaml[automl])

        have_flaml = not args.no_flaml
    except ImportError:
        have_flaml = False
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mpm-model-quality-") as tmp:
        work = Path(tmp)
        result: dict[str, Any] = {
            "benchmark": "model_quality",
            "mode": "full" if args.full else f"quick (at most {QUICK_ROWS} rows per dataset)",
            "python": platform.python_version(),
            "flaml": have_flaml,
        }
        if not args.probes_only:
            result["datasets"] = quality(rows, have_flaml, work)
            scored = [d for d in result["datasets"] if "gap_mpm_minus_flaml" in d]
            if scored:
                result["mpm_at_or_above_flaml"] = sum(d["gap_mpm_minus_flaml"] >= 0 for d in scored)
                result["compared"] = len(scored)
        result["leakage_probes"] = probes(rows, work)
        result["probes_caught"] = sum(bool(p.get("caught")) for p in result["leakage_probes"])
        result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
