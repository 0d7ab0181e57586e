"""profile_dataset / quality_checks: exact numbers on known data, named failing checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mpm.tools.data_quality import profile_dataset, quality_checks


def _write(tmp_path: Path, df: pd.DataFrame) -> str:
    path = tmp_path / "data.parquet"
    df.to_parquet(path, index=False)
    return str(path)


@pytest.fixture
def clean(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    return _write(
        tmp_path,
        pd.DataFrame(
            {
                "x": x,
                "z": rng.normal(size=n),
                "colour": rng.choice(["red", "blue"], n),
                "y": (x + rng.normal(scale=1.5, size=n) > 0.5).astype(int),
            }
        ),
    )


def test_profile_reports_exact_missing_duplicates_and_class_balance(
    tmp_path: Path, assert_json
) -> None:
    df = pd.DataFrame(
        {
            "a": [1.0, np.nan, 3.0, 4.0, 5.0, 1.0] * 20,
            "b": ["u", "v", None, "u", "v", "u"] * 20,
            "y": [0, 1, 0, 0, 0, 0] * 20,
        }
    )
    path = _write(tmp_path, df)
    profile = profile_dataset(path, "y", "classification", out_dir=str(tmp_path / "p"))
    assert_json(profile)
    assert profile["rows"] == 120 and profile["columns"] == 3
    assert profile["missing"]["a"] == {"count": 20, "rate": round(20 / 120, 6)}
    assert profile["missing"]["b"]["count"] == 20
    assert profile["missing_rate"] == round(40 / 240, 6)
    assert profile["duplicates"]["count"] == int(df.duplicated().sum())
    assert profile["class_balance"]["counts"] == {"0": 100, "1": 20}
    assert profile["class_balance"]["min_share"] == round(20 / 120, 6)
    assert profile["numeric_summary"]["a"]["mean"] == round(df["a"].mean(), 6)
    assert profile["categorical_columns"] == ["b"]
    written = json.loads((tmp_path / "p" / "profile.json").read_text())
    assert written["rows"] == 120 and profile["profile_path"].endswith("profile.json")


def test_leakage_hints_flag_target_copies_near_perfect_correlation_and_id_columns(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(1)
    n = 300
    y = rng.integers(0, 2, n)
    df = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "row_number": np.arange(n),
            "copy_of_y": y,
            "almost_y": y + rng.normal(scale=0.01, size=n),
            "outcome_code": np.where(y == 1, "approved", "declined"),
            "honest": rng.normal(size=n),
            "y": y,
        }
    )
    profile = profile_dataset(_write(tmp_path, df), "y", "classification")
    flagged = {h["column"] for h in profile["leakage_hints"]}
    assert flagged == {"copy_of_y", "almost_y", "outcome_code"}
    assert set(profile["id_like_columns"]) == {"customer_id", "row_number"}
    checks = quality_checks(profile, "classification")
    assert checks["no_leakage"]["passed"] is False
    assert checks["no_leakage"]["value"] == 3


def test_clean_data_passes_every_check(clean: str, assert_json) -> None:
    result = quality_checks(profile_dataset(clean, "y", "classification"), "classification")
    assert_json(result)
    assert result["data_quality_passed"] is True
    assert result["data_quality_score"] == 1.0
    assert result["failed_checks"] == []
    assert result["check_names"] == [k for k, v in result.items() if isinstance(v, dict)]
    for name in result["check_names"]:
        assert set(result[name]) == {"passed", "value", "threshold", "detail"}


def test_bad_data_fails_the_named_checks_and_lowers_the_score(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    n = 60  # below the 100-row minimum
    df = pd.DataFrame(
        {
            "mostly_gone": np.where(rng.random(n) < 0.7, np.nan, 1.0),
            "x": rng.normal(size=n),
            "y": [1] + [0] * (n - 1),  # one positive: 1.7 % minority
        }
    )
    df = pd.concat([df, df.iloc[:10]], ignore_index=True)  # 10 duplicate rows
    result = quality_checks(
        profile_dataset(_write(tmp_path, df), "y", "classification"), "classification"
    )
    assert set(result["failed_checks"]) == {
        "minimum_rows",
        "class_balance",
        "duplicate_rate",
        "column_missing_rate",
        "missing_rate",
    }
    total = len(result["check_names"])
    assert result["data_quality_score"] == round((total - 5) / total, 4)
    assert result["data_quality_passed"] is False
    assert result["minimum_rows"]["value"] == 70
    assert "mostly_gone" in result["column_missing_rate"]["detail"]


def test_missing_target_is_a_failed_check_not_a_crash(clean: str) -> None:
    profile = profile_dataset(clean, "not_there", "classification")
    result = quality_checks(profile, "classification")
    assert result["target_present"]["passed"] is False
    assert "not_there" in result["target_present"]["detail"]
    assert "target_present" in result["failed_checks"]


def test_text_target_for_regression_fails_target_suitable(tmp_path: Path) -> None:
    df = pd.DataFrame({"x": range(150), "y": ["a", "b", "c"] * 50})
    result = quality_checks(profile_dataset(_write(tmp_path, df), "y", "regression"), "regression")
    assert result["target_suitable"]["passed"] is False
    assert "class_balance" not in result["check_names"]


def test_thresholds_can_be_tightened(clean: str) -> None:
    profile = profile_dataset(clean, "y", "classification")
    result = quality_checks(profile, "classification", thresholds={"min_rows": 10_000})
    assert result["failed_checks"] == ["minimum_rows"]
    assert result["minimum_rows"]["threshold"] == 10_000
