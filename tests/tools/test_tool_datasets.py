"""acquire_dataset / split_dataset: sources, reproducibility, path safety, bad data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mpm.tools.datasets import acquire_dataset, split_dataset
from mpm.tools.errors import DataError


def test_sklearn_dataset_is_written_as_parquet_with_target_and_features(
    tmp_path: Path, assert_json
) -> None:
    result = acquire_dataset("sklearn:iris", str(tmp_path))
    assert_json(result)
    df = pd.read_parquet(result["path"])
    assert Path(result["path"]) == tmp_path / "raw.parquet"
    assert result["rows"] == len(df) == 150
    assert result["target_column"] == "target"
    assert result["feature_columns"] == [c for c in df.columns if c != "target"]
    assert sorted(df["target"].unique()) == [0, 1, 2]


def test_synthetic_credit_has_sensitive_attributes_missing_values_and_a_learnable_binary_target(
    tmp_path: Path,
) -> None:
    result = acquire_dataset("synthetic:credit", str(tmp_path), rows=1000, seed=1)
    df = pd.read_parquet(result["path"])
    assert result["rows"] == 1000 and result["target_column"] == "default"
    assert result["sensitive_columns"] == ["gender", "age_band"]
    assert set(df["default"].unique()) == {0, 1}
    assert 0.1 < df["default"].mean() < 0.3
    missing = df.isna().mean()
    assert 0 < missing.max() < 0.1  # some gaps, not a wreck
    assert missing["default"] == 0
    # plausible signal: utilisation and late payments move the default rate
    high = df[df["num_late_payments"] >= 2]["default"].mean()
    low = df[df["num_late_payments"] == 0]["default"].mean()
    assert high > low + 0.1


@pytest.mark.parametrize("schema,target", [("churn", "churned"), ("fraud", "is_fraud")])
def test_other_synthetic_schemas_have_their_own_binary_target(
    tmp_path: Path, schema: str, target: str
) -> None:
    result = acquire_dataset(f"synthetic:{schema}", str(tmp_path), rows=500)
    df = pd.read_parquet(result["path"])
    assert result["target_column"] == target
    assert set(df[target].unique()) == {0, 1}
    assert {"gender", "age_band"} <= set(df.columns)


def test_same_seed_gives_identical_data_and_another_seed_differs(tmp_path: Path) -> None:
    a = pd.read_parquet(
        acquire_dataset("synthetic:churn", str(tmp_path / "a"), rows=300, seed=5)["path"]
    )
    b = pd.read_parquet(
        acquire_dataset("synthetic:churn", str(tmp_path / "b"), rows=300, seed=5)["path"]
    )
    c = pd.read_parquet(
        acquire_dataset("synthetic:churn", str(tmp_path / "c"), rows=300, seed=6)["path"]
    )
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_csv_inside_base_dir_is_acquired_and_sampled_reproducibly(tmp_path: Path, make_csv) -> None:
    make_csv({"x": list(range(200)), "label": [i % 2 for i in range(200)]}, "in.csv")
    first = acquire_dataset("in.csv", str(tmp_path / "o1"), rows=50, base_dir=str(tmp_path))
    second = acquire_dataset("in.csv", str(tmp_path / "o2"), rows=50, base_dir=str(tmp_path))
    assert first["target_column"] == "label" and first["rows"] == 50 and first["source"] == "file"
    pd.testing.assert_frame_equal(pd.read_parquet(first["path"]), pd.read_parquet(second["path"]))


def test_path_that_escapes_base_dir_is_refused(tmp_path: Path, make_csv) -> None:
    inside = tmp_path / "ws"
    inside.mkdir()
    make_csv({"x": list(range(50)), "target": [0, 1] * 25}, "outside.csv")
    with pytest.raises(DataError, match="outside the allowed folder"):
        acquire_dataset("../outside.csv", str(inside / "o"), base_dir=str(inside))
    with pytest.raises(DataError, match="outside the allowed folder"):
        acquire_dataset(str(tmp_path / "outside.csv"), str(inside / "o"), base_dir=str(inside))
    assert not (inside / "o").exists()


def test_missing_target_column_names_it_and_lists_the_columns(tmp_path: Path, make_csv) -> None:
    make_csv({"age": list(range(40)), "income": list(range(40))})
    with pytest.raises(DataError) as err:
        acquire_dataset(
            "data.csv", str(tmp_path / "o"), target_column="churn", base_dir=str(tmp_path)
        )
    message = str(err.value)
    assert "'churn' not found" in message and "age, income" in message and "\n" not in message


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv: file is empty"):
        acquire_dataset("empty.csv", str(tmp_path / "o"), base_dir=str(tmp_path))


def test_header_only_csv_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "header.csv").write_text("a,b,target\n")
    with pytest.raises(DataError, match="header but no data rows"):
        acquire_dataset("header.csv", str(tmp_path / "o"), base_dir=str(tmp_path))


def test_unsupported_format_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "data.xlsx").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match=r"unsupported file format '\.xlsx'"):
        acquire_dataset("data.xlsx", str(tmp_path / "o"), base_dir=str(tmp_path))


def test_corrupt_parquet_is_reported_as_unreadable(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_bytes(b"this is not parquet at all")
    with pytest.raises(DataError, match="bad.parquet: cannot read as PARQUET"):
        acquire_dataset("bad.parquet", str(tmp_path / "o"), base_dir=str(tmp_path))


def test_unknown_sklearn_dataset_says_which_names_exist(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        acquire_dataset("sklearn:california_housing", str(tmp_path))
    assert "california_housing" in str(err.value) and "breast_cancer" in str(err.value)


def test_unknown_synthetic_schema_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown synthetic schema 'loans'"):
        acquire_dataset("synthetic:loans", str(tmp_path))


def test_too_few_rows_is_rejected(tmp_path: Path, make_csv) -> None:
    make_csv({"x": list(range(10)), "target": [0, 1] * 5})
    with pytest.raises(DataError, match="only 10 rows; need at least 30"):
        acquire_dataset("data.csv", str(tmp_path / "o"), base_dir=str(tmp_path))


def test_non_numeric_target_for_regression_is_rejected_at_split(tmp_path: Path, make_csv) -> None:
    make_csv({"x": list(range(60)), "target": ["low", "high", "mid"] * 20})
    acquired = acquire_dataset("data.csv", str(tmp_path / "o"), base_dir=str(tmp_path))
    with pytest.raises(DataError, match="'target' is .* regression needs a numeric target"):
        split_dataset(
            acquired["path"], "target", str(tmp_path / "s"), seed=1, model_type="regression"
        )


def test_split_is_stratified_disjoint_and_reproducible(credit, tmp_path: Path, assert_json) -> None:
    split = credit["split"]
    assert_json(split)
    parts = {k: pd.read_parquet(split[f"{k}_path"]) for k in ("train", "val", "test")}
    assert split["rows"] == {"train": 360, "val": 120, "test": 120}
    assert (split["train_rows"], split["val_rows"], split["test_rows"]) == (360, 120, 120)
    ids = [set(p["applicant_id"]) for p in parts.values()]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    overall = pd.read_parquet(credit["acquired"]["path"])["default"].mean()
    for p in parts.values():
        assert abs(p["default"].mean() - overall) < 0.02  # stratified
    again = split_dataset(
        credit["acquired"]["path"], "default", str(tmp_path), seed=7, model_type="classification"
    )
    pd.testing.assert_frame_equal(pd.read_parquet(again["test_path"]), parts["test"])
    other = split_dataset(
        credit["acquired"]["path"],
        "default",
        str(tmp_path / "x"),
        seed=8,
        model_type="classification",
    )
    assert set(pd.read_parquet(other["test_path"])["applicant_id"]) != ids[2]


def test_split_drops_rows_without_a_target(tmp_path: Path, make_csv) -> None:
    make_csv(
        {"x": list(range(100)), "target": [float(i % 5) if i % 10 else None for i in range(100)]}
    )
    acquired = acquire_dataset("data.csv", str(tmp_path / "o"), base_dir=str(tmp_path))
    split = split_dataset(
        acquired["path"], "target", str(tmp_path / "s"), seed=1, model_type="regression"
    )
    assert split["dropped_missing_target"] == 10
    assert sum(split["rows"].values()) == 90
    assert split["stratified"] is False
