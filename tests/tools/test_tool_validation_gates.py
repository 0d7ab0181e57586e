"""Data-quality gates that block validation until remediated (the remediation recorded),
thresholds that can only be tightened, grouped and time-ordered splits, and imbalance
handled by design (class weights and a tuned threshold that improve the target metric on
the validation folds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mpm.tools.data_quality import (
    effective_thresholds,
    gate_findings,
    profile_dataset,
    quality_checks,
    remediate,
    summarise,
    train_test_overlap,
)
from mpm.tools.datasets import acquire_dataset, split_dataset
from mpm.tools.errors import ToolConfigError
from mpm.tools.evaluation import validate_model
from mpm.tools.training import train_candidates


def _dirty(tmp_path: Path) -> tuple[pd.DataFrame, int, int]:
    """600 credit rows with 10% of targets blanked and 90 rows repeated exactly."""
    acquired = acquire_dataset("synthetic:credit", str(tmp_path / "raw"), rows=600, seed=4)
    df = pd.read_parquet(acquired["path"])
    rng = np.random.default_rng(4)
    df["default"] = df["default"].astype("float")
    df.loc[rng.choice(len(df), 60, replace=False), "default"] = np.nan
    repeats = df[df["default"].notna()].sample(90, random_state=4)
    return pd.concat([df, repeats], ignore_index=True), 60, 90


def _gates(df: pd.DataFrame, d: Path) -> dict[str, Any]:
    d.mkdir(parents=True, exist_ok=True)
    path = d / "data.parquet"
    df.to_parquet(path, index=False)
    profile = profile_dataset(str(path), "default", "classification", out_dir=str(d))
    checks = quality_checks(profile, "classification")
    split = split_dataset(
        str(path), "default", str(d / "split"), seed=4, model_type="classification"
    )
    parts = [pd.read_parquet(split[f"{n}_path"]) for n in ("train", "val", "test")]
    named = {k: v for k, v in checks.items() if isinstance(v, dict) and "passed" in v}
    named["train_test_overlap"] = train_test_overlap(*parts)
    return {"checks": summarise(named), "split": split}


def _validate(split: dict[str, Any], findings: list[dict[str, Any]], d: Path) -> dict[str, Any]:
    trained = train_candidates(
        split["train_path"],
        split["val_path"],
        "default",
        str(d / "train"),
        model_type="classification",
        target_metric="roc_auc",
        families=["logistic_regression"],
    )
    return validate_model(
        trained["model_path"],
        split["test_path"],
        "default",
        str(d / "validation"),
        model_type="classification",
        target_metric="roc_auc",
        success_threshold=0.6,
        decision_threshold=trained["decision_threshold"],
        findings=findings,
    )


def test_missing_targets_and_duplicates_fail_their_gates_until_remediated(tmp_path: Path) -> None:
    df, n_missing, n_repeats = _dirty(tmp_path)
    before = _gates(df, tmp_path / "before")
    checks = before["checks"]
    assert set(checks["failed_gates"]) == {
        "target_missing_rate",
        "duplicate_rate",
        "train_test_overlap",
    }
    assert checks["target_missing_rate"]["value"] == pytest.approx(n_missing / len(df), abs=1e-6)
    findings = gate_findings(checks)
    assert {f["id"] for f in findings} == {
        "data_quality.target_missing_rate",
        "data_quality.duplicate_rate",
        "data_quality.train_test_overlap",
    }
    assert all(f["severity"] == "blocking" and f["remediation"] for f in findings)
    report = _validate(before["split"], findings, tmp_path / "before")
    assert report["meets_threshold"] is True
    assert report["validation_passed"] is False  # the gates block it
    assert {f["id"] for f in report["blocking_findings"]} == {f["id"] for f in findings}

    fixed, records = remediate(df, "default", ["drop_duplicates", "drop_missing_target"])
    # applied in a fixed order and recorded with the rows each removed
    assert [r["action"] for r in records] == ["drop_missing_target", "drop_duplicates"]
    assert records[0]["rows_removed"] == n_missing
    assert records[1]["rows_removed"] == n_repeats
    assert records[1]["rows_after"] == len(fixed) == len(df) - n_missing - n_repeats
    after = _gates(fixed, tmp_path / "after")
    assert after["checks"]["failed_gates"] == []
    report = _validate(after["split"], gate_findings(after["checks"]), tmp_path / "after")
    assert report["validation_passed"] is True and report["blocking_findings"] == []


def test_thresholds_can_be_tightened_but_not_loosened() -> None:
    t, ignored = effective_thresholds({"max_duplicate_rate": 0.01, "max_target_missing_rate": 0.5})
    assert t["max_duplicate_rate"] == 0.01
    assert t["max_target_missing_rate"] == 0.05  # the default holds
    assert ignored == {"max_target_missing_rate": {"requested": 0.5, "default": 0.05}}
    t, _ = effective_thresholds({"min_rows": 50, "min_class_share": 0.1})
    assert t["min_rows"] == 100 and t["min_class_share"] == 0.1
    with pytest.raises(ToolConfigError, match="unknown threshold 'max_typo'"):
        effective_thresholds({"max_typo": 0.1})


def test_a_tightened_threshold_fails_a_gate_the_default_passes(tmp_path: Path) -> None:
    df, _, _ = _dirty(tmp_path)
    df = df[df["default"].notna()].drop_duplicates()
    df = pd.concat([df, df.head(12)], ignore_index=True)  # 2% duplicates
    path = tmp_path / "d.parquet"
    df.to_parquet(path, index=False)
    profile = profile_dataset(str(path), "default", "classification", out_dir=str(tmp_path))
    assert quality_checks(profile, "classification")["duplicate_rate"]["passed"] is True
    strict = quality_checks(profile, "classification", thresholds={"max_duplicate_rate": 0.01})
    assert strict["failed_gates"] == ["duplicate_rate"]


def test_grouped_split_keeps_each_group_in_one_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame(
        {
            "customer": rng.integers(0, 120, n).astype(str),
            "x": rng.normal(size=n),
            "y": rng.integers(0, 2, n),
        }
    )
    path = tmp_path / "panel.parquet"
    df.to_parquet(path, index=False)
    split = split_dataset(
        str(path), "y", str(tmp_path / "s"), seed=1, model_type="classification",
        group_column="customer",
    )  # fmt: skip
    groups = [
        set(pd.read_parquet(split[f"{n}_path"])["customer"]) for n in ("train", "val", "test")
    ]
    assert (
        not (groups[0] & groups[2]) and not (groups[1] & groups[2]) and not (groups[0] & groups[1])
    )
    assert split["split_kind"] == "grouped"
    trained = train_candidates(
        split["train_path"], split["val_path"], "y", str(tmp_path / "t"),
        model_type="classification", target_metric="roc_auc",
        families=["logistic_regression"], group_column="customer",
    )  # fmt: skip
    assert trained["cv_kind"] == "grouped" and "customer" not in trained["feature_columns"]


def test_time_ordered_split_tests_on_the_newest_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 500
    df = pd.DataFrame(
        {
            "when": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.permutation(n), unit="D"),
            "x": rng.normal(size=n),
        }
    )
    df["y"] = 2 * df["x"] + rng.normal(size=n)
    path = tmp_path / "series.parquet"
    df.to_parquet(path, index=False)
    split = split_dataset(
        str(path), "y", str(tmp_path / "s"), seed=1, model_type="regression", time_column="when"
    )
    train, val, test = (pd.read_parquet(split[f"{n}_path"]) for n in ("train", "val", "test"))
    assert train["when"].max() < val["when"].min() and val["when"].max() < test["when"].min()
    trained = train_candidates(
        split["train_path"], split["val_path"], "y", str(tmp_path / "t"),
        model_type="regression", target_metric="r2", families=["ridge"], time_column="when",
    )  # fmt: skip
    assert trained["cv_kind"] == "time_ordered" and "when" not in trained["feature_columns"]
    assert trained["protocol"]["cross_validation"]["kind"] == "time_ordered"


def _imbalanced(tmp_path: Path) -> dict[str, Any]:
    """A learnable target with an 8% positive class."""
    rng = np.random.default_rng(11)
    n = 1500
    x = rng.normal(size=(n, 4))
    logit = -3.6 + 1.4 * x[:, 0] + 0.9 * x[:, 1] - 0.6 * x[:, 2]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df = pd.DataFrame(x, columns=["a", "b", "c", "d"]).assign(y=y)
    path = tmp_path / "imb.parquet"
    df.to_parquet(path, index=False)
    split = split_dataset(str(path), "y", str(tmp_path / "s"), seed=2, model_type="classification")
    return {"share": float(y.mean()), "split": split}


@pytest.mark.parametrize("metric", ["balanced_accuracy", "f1"])
def test_imbalanced_target_gets_class_weights_and_a_tuned_threshold(
    tmp_path: Path, metric: str
) -> None:
    data = _imbalanced(tmp_path)
    assert data["share"] < 0.12
    split = data["split"]
    trained = train_candidates(
        split["train_path"], split["val_path"], "y", str(tmp_path / metric),
        model_type="classification", target_metric=metric, families=["logistic_regression"],
    )  # fmt: skip
    (cand,) = trained["candidates"]
    settings = {str(e["params"]): e for e in cand["search"]}
    weighted = settings[str({"C": 0.1, "class_weight": "balanced"})]
    plain = settings[str({"C": 0.1})]
    assert trained["protocol"]["class_weighting"] is True
    tuning = trained["threshold_tuning"]
    assert tuning["metric"] == metric
    # the tuned threshold improves the target metric on the validation folds
    assert tuning["tuned_score"] > tuning["default_score"]
    assert trained["decision_threshold"] == tuning["threshold"] != 0.5
    if metric == "balanced_accuracy":
        # class weighting improves the cross-validated target metric at the default cut-off
        assert weighted["cv_mean"] > plain["cv_mean"]
        assert cand["params"].get("class_weight") == "balanced"
    # the tuned threshold is what validation reports at: per class and in the matrix
    report = validate_model(
        trained["model_path"], split["test_path"], "y", str(tmp_path / f"v-{metric}"),
        model_type="classification", target_metric=metric, success_threshold=0.1,
        decision_threshold=trained["decision_threshold"],
    )  # fmt: skip
    at_default = validate_model(
        trained["model_path"], split["test_path"], "y", str(tmp_path / f"d-{metric}"),
        model_type="classification", target_metric=metric, success_threshold=0.1,
    )  # fmt: skip
    assert report["confusion_matrix"]["decision_threshold"] == trained["decision_threshold"]
    matrix = np.asarray(report["confusion_matrix"]["matrix"])
    assert matrix[1, 1] == round(report["per_class"]["1"]["recall"] * matrix[1].sum())
    assert report["fairness"]["decision_threshold"] == trained["decision_threshold"]
    if trained["decision_threshold"] < 0.5:
        assert report["per_class"]["1"]["recall"] >= at_default["per_class"]["1"]["recall"]


def test_roc_auc_target_on_imbalanced_data_tunes_the_threshold_for_balanced_accuracy(
    tmp_path: Path,
) -> None:
    split = _imbalanced(tmp_path)["split"]
    trained = train_candidates(
        split["train_path"], split["val_path"], "y", str(tmp_path / "t"),
        model_type="classification", target_metric="roc_auc", families=["logistic_regression"],
    )  # fmt: skip
    tuning = trained["threshold_tuning"]
    assert tuning["metric"] == "balanced_accuracy"
    assert tuning["tuned_score"] > tuning["default_score"]


def test_requirement_fields_refuse_contradictions_with_the_field_named() -> None:
    from pydantic import ValidationError

    from mpm.graph.state import ProjectRequirements

    base = {
        "project_name": "p",
        "business_objective": "o",
        "model_type": "classification",
        "target_metric": "roc_auc",
        "success_threshold": 0.7,
        "target_column": "y",
        "data_sources": [{"name": "d", "uri": "data.csv"}],
    }
    ok = ProjectRequirements.model_validate(
        {**base, "exclude_columns": ["wage"], "group_column": "customer",
         "data_remediation": ["drop_duplicates"], "quality_thresholds": {"max_duplicate_rate": 0.01}}
    )  # fmt: skip
    assert ok.exclude_columns == ["wage"] and ok.group_column == "customer"
    for bad, needle in (
        ({"exclude_columns": ["y"]}, "exclude_columns: may not name the target column"),
        ({"group_column": "g", "time_column": "t"}, "at most one of them"),
        ({"data_remediation": ["impute_target"]}, "data_remediation"),
        ({"exclude_colums": ["x"]}, "exclude_colums"),
    ):
        with pytest.raises(ValidationError, match=needle):
            ProjectRequirements.model_validate({**base, **bad})
