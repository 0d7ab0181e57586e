"""Leakage a validator catches first: a target-derived column and a post-event date are each
found in the data and fail validation with the column named; excluding the column clears it;
plain data raises nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mpm.tools.data_quality import profile_dataset, quality_checks
from mpm.tools.evaluation import validate_model
from mpm.tools.leakage import blocking, data_findings, model_findings, name_tokens
from mpm.tools.training import train_candidates


def wages(n: int = 900, seed: int = 0) -> pd.DataFrame:
    """A log-wage regression with the raw wage left in: monotone in the target but, at
    realistic spread, under the old 0.95 linear-correlation cut-off."""
    rng = np.random.default_rng(seed)
    education = rng.integers(8, 21, n)
    experience = rng.integers(0, 40, n)
    region = rng.choice(["north", "south", "east", "west"], n)
    log_wage = 1.2 + 0.09 * education + 0.02 * experience + rng.normal(0, 0.55, n)
    return pd.DataFrame(
        {
            "education": education,
            "experience": experience,
            "region": region,
            "wage": np.round(np.exp(log_wage), 2),
            "log_wage": log_wage,
        }
    )


def survival(n: int = 900, seed: int = 1) -> pd.DataFrame:
    """Survival status with the end-of-follow-up day left in: for the dead it is the day
    of death, for the living the study end or the day they were lost to follow-up."""
    rng = np.random.default_rng(seed)
    age = rng.integers(30, 90, n)
    stage = rng.integers(1, 5, n)
    marker = rng.normal(0, 1, n)
    logit = -4.0 + 0.04 * age + 0.5 * stage + 0.5 * marker
    died = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    end_day = np.where(
        died == 1,
        rng.integers(20, 1500, n),
        np.where(rng.random(n) < 0.3, rng.integers(200, 1825, n), 1825),
    )
    return pd.DataFrame(
        {"age": age, "stage": stage, "marker": marker, "end_of_followup_day": end_day, "died": died}
    )


def _split(df: pd.DataFrame, d: Path) -> dict[str, str]:
    d.mkdir(parents=True, exist_ok=True)
    idx = np.random.default_rng(3).permutation(len(df))
    parts = {"train": idx[: len(df) * 3 // 5], "val": idx[len(df) * 3 // 5 : len(df) * 4 // 5]}
    parts["test"] = idx[len(df) * 4 // 5 :]
    out = {}
    for name, rows in parts.items():
        path = d / f"{name}.parquet"
        df.iloc[rows].reset_index(drop=True).to_parquet(path, index=False)
        out[name] = str(path)
    return out


def _develop_and_validate(
    df: pd.DataFrame, target: str, model_type: str, metric: str, threshold: float, d: Path
) -> dict[str, Any]:
    paths = _split(df, d / "split")
    findings = data_findings(df, target, model_type)
    trained = train_candidates(
        paths["train"],
        paths["val"],
        target,
        str(d / "train"),
        model_type=model_type,
        target_metric=metric,
        families=["gradient_boosting"],
        recommendations=[],
    )
    report = validate_model(
        trained["model_path"],
        paths["test"],
        target,
        str(d / "validation"),
        model_type=model_type,
        target_metric=metric,
        success_threshold=threshold,
        decision_threshold=trained["decision_threshold"],
        train_path=paths["train"],
        findings=findings,
    )
    return {"findings": findings, "trained": trained, "report": report}


def test_a_target_derived_column_is_caught_and_fails_validation_with_the_column_named(
    tmp_path: Path,
) -> None:
    df = wages()
    # the old check's blind spot: linear correlation under its 0.95 cut-off
    assert abs(df["wage"].corr(df["log_wage"])) < 0.95
    run = _develop_and_validate(df, "log_wage", "regression", "r2", 0.1, tmp_path)
    (found,) = [f for f in run["findings"] if f["column"] == "wage"]
    assert found["id"] == "leakage.target_proxy.wage" and found["severity"] == "likely_leak"
    assert found["evidence"]["single_feature_skill"] >= 0.98
    assert found["evidence"]["spearman"] >= 0.98
    report = run["report"]
    assert report["meets_threshold"] is True  # the score alone would have passed
    assert report["validation_passed"] is False
    ids = [f["id"] for f in report["blocking_findings"]]
    assert "leakage.target_proxy.wage" in ids
    assert "'wage'" in report["verdict"]
    # at validation time too: the leak carries the importance and the result is too good
    dominant = [f for f in report["findings"] if f["kind"] == "dominant_feature"]
    assert dominant and dominant[0]["column"] == "wage"
    assert any(f["kind"] == "implausible_result" for f in report["findings"])
    assert report["metrics"]["n_blocking_findings"] >= 1.0


def test_a_post_event_date_is_caught_and_fails_validation_with_the_column_named(
    tmp_path: Path,
) -> None:
    run = _develop_and_validate(survival(), "died", "classification", "roc_auc", 0.6, tmp_path)
    (found,) = [f for f in run["findings"] if f["column"] == "end_of_followup_day"]
    assert found["kind"] in {"post_event_date", "target_proxy"}
    assert found["severity"] == "likely_leak"
    assert found["id"] == f"leakage.{found['kind']}.end_of_followup_day"
    report = run["report"]
    assert report["validation_passed"] is False
    assert found["id"] in [f["id"] for f in report["blocking_findings"]]
    assert "end_of_followup_day" in report["verdict"]


def test_a_marked_but_weak_date_is_caught_by_its_name_not_its_strength(tmp_path: Path) -> None:
    df = survival()
    rng = np.random.default_rng(5)
    # a noisier end date: far from deterministic, still post-event information
    df["end_of_followup_day"] = df["end_of_followup_day"] + rng.integers(0, 900, len(df))
    found = {f["column"]: f for f in data_findings(df, "died", "classification")}
    f = found["end_of_followup_day"]
    assert f["kind"] == "post_event_date" and f["severity"] == "likely_leak"
    assert f["evidence"]["single_feature_skill"] < 0.98
    assert f["evidence"]["name_markers"] == ["end", "followup"]


def test_a_real_datetime_column_named_as_a_death_date_is_a_post_event_date() -> None:
    df = survival()
    start = pd.Timestamp("2015-01-01")
    df["death_or_end_date"] = start + pd.to_timedelta(df.pop("end_of_followup_day"), unit="D")
    found = {f["column"]: f for f in data_findings(df, "died", "classification")}
    f = found["death_or_end_date"]
    assert f["severity"] == "likely_leak" and f["evidence"]["column_kind"] == "date"


def test_excluding_the_column_clears_the_finding_and_validation_passes(tmp_path: Path) -> None:
    df = wages().drop(columns=["wage"])  # what exclude_columns does at acquisition
    run = _develop_and_validate(df, "log_wage", "regression", "r2", 0.1, tmp_path)
    assert run["findings"] == []
    assert run["report"]["blocking_findings"] == []
    assert run["report"]["validation_passed"] is True


@pytest.mark.parametrize(
    ("name", "target", "model_type"),
    [("breast_cancer", "target", "classification"), ("diabetes", "target", "regression")],
)
def test_real_data_without_a_leak_raises_no_likely_leak(name, target, model_type) -> None:
    import sklearn.datasets as skd

    df = getattr(skd, f"load_{name}")(as_frame=True).frame
    assert [
        f for f in data_findings(df, target, model_type) if f["severity"] == "likely_leak"
    ] == []


def test_an_id_whose_prefix_encodes_the_label_is_caught() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300)
    df = pd.DataFrame(
        {
            "x": rng.normal(size=300),
            "case_id": [f"{'D' if v else 'A'}-{i:05d}" for i, v in enumerate(y)],
            "y": y,
        }
    )
    found = {f["column"]: f for f in data_findings(df, "y", "classification")}
    assert found["case_id"]["kind"] == "id_encodes_label"
    assert found["case_id"]["evidence"]["label_prefix_purity"] == 1.0


def test_leaks_fail_the_data_quality_leakage_check_too(tmp_path: Path) -> None:
    path = tmp_path / "wages.csv"
    wages().to_csv(path, index=False)
    profile = profile_dataset(str(path), "log_wage", "regression", out_dir=str(tmp_path))
    checks = quality_checks(profile, "regression")
    assert checks["no_leakage"]["passed"] is False and "wage" in checks["no_leakage"]["detail"]


def test_blocking_only_counts_likely_leaks_in_model_inputs() -> None:
    findings = [
        {"id": "leakage.target_proxy.a", "column": "a", "severity": "likely_leak"},
        {"id": "leakage.target_proxy.b", "column": "b", "severity": "likely_leak"},
        {"id": "leakage.outcome_name.c", "column": "c", "severity": "warning"},
        {
            "id": "data_quality.constant_or_id_columns.c",
            "column": "c",
            "severity": "blocking_if_input",
        },
        {
            "id": "data_quality.constant_or_id_columns.e",
            "column": "e",
            "severity": "blocking_if_input",
        },
        {"id": "data_quality.duplicate_rate", "column": None, "severity": "blocking"},
    ]
    assert [f["id"] for f in blocking(findings, ["a", "c"])] == [
        "leakage.target_proxy.a",
        "data_quality.constant_or_id_columns.c",
        "data_quality.duplicate_rate",
    ]


def test_one_dominant_feature_alone_is_a_warning_with_a_too_good_result_a_leak() -> None:
    imps = [{"feature": "a", "mean": 0.95}, {"feature": "b", "mean": 0.01}]
    plain = model_findings(test_score=0.80, baseline_score=0.5, metric="roc_auc", importances=imps)
    assert [(f["kind"], f["severity"]) for f in plain] == [("dominant_feature", "warning")]
    leak = model_findings(test_score=0.999, baseline_score=0.5, metric="roc_auc", importances=imps)
    kinds = {f["kind"]: f for f in leak}
    assert kinds["dominant_feature"]["severity"] == "likely_leak"
    assert kinds["dominant_feature"]["id"] == "leakage.dominant_feature.a"
    assert kinds["implausible_result"]["severity"] == "warning"


def test_name_tokens_split_snake_camel_and_kebab_case() -> None:
    assert name_tokens("deathDate") == ["death", "date"]
    assert name_tokens("END-of_followup") == ["end", "of", "followup"]
    assert "end" not in name_tokens("weekend_visits")
