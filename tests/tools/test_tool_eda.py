"""run_eda: files, plots, MLflow artifacts and recommendations."""

from __future__ import annotations

import json
from pathlib import Path

from mpm.tools import tracking
from mpm.tools.eda import run_eda

PNG = b"\x89PNG\r\n\x1a\n"


def test_eda_writes_report_summary_and_png_plots_and_logs_them_under_eda(
    credit, tmp_path: Path, mlflow_store, stage_run, assert_json
) -> None:
    result = run_eda(
        credit["split"]["train_path"],
        "default",
        str(tmp_path),
        model_type="classification",
        sensitive_attributes=["gender", "age_band"],
        tracking_uri=mlflow_store["uri"],
        run_id=stage_run,
    )
    assert_json(result)
    names = {Path(p).name for p in result["plots"]}
    assert names == {
        "target_distribution.png",
        "correlation_heatmap.png",
        "top_feature_vs_target.png",
    }
    for p in result["plots"]:
        assert Path(p).parent == tmp_path and Path(p).read_bytes()[:8] == PNG
    report = Path(result["report_path"]).read_text()
    assert "# Exploratory data analysis" in report and "## Recommendations" in report
    summary = json.loads(Path(result["summary_path"]).read_text())
    assert summary["n_samples"] == credit["split"]["rows"]["train"]
    top = next(iter(result["target_correlations"]))
    assert top in summary["numeric_columns"]

    c = tracking.client(mlflow_store["uri"])
    logged = {Path(a.path).name for a in c.list_artifacts(stage_run, "eda")}
    assert logged == names | {"eda_report.md", "eda_summary.json"}
    assert c.get_run(stage_run).data.metrics["eda_n_samples"] == result["n_samples"]


def test_eda_recommends_dropping_ids_and_sensitive_attributes_and_imputing_gaps(
    credit, tmp_path: Path
) -> None:
    result = run_eda(
        credit["split"]["train_path"],
        "default",
        str(tmp_path),
        model_type="classification",
        sensitive_attributes=["gender"],
    )
    recs = {}
    for r in result["recommendations"]:
        recs.setdefault(r["action"], set()).update(r["columns"])
    assert {"applicant_id", "gender"} <= recs["drop"]
    assert "age_band" not in recs["drop"]  # only the attributes named are dropped
    assert "annual_income" in recs["impute_median"]
    assert {"employment_type", "region", "loan_purpose"} <= recs["one_hot"]
    assert any("default" in i or "Class imbalance" in i for i in result["insights"])


def test_regression_eda_plots_a_scatter_and_recommends_no_encoding(
    diabetes, tmp_path: Path
) -> None:
    result = run_eda(
        diabetes["split"]["train_path"], "target", str(tmp_path), model_type="regression"
    )
    assert (tmp_path / "top_feature_vs_target.png").read_bytes()[:8] == PNG
    actions = {r["action"] for r in result["recommendations"]}
    assert "one_hot" not in actions and "scale" in actions
    assert next(iter(result["target_correlations"])) in ("bmi", "s5")


def test_report_tables_survive_a_pipe_or_newline_in_user_values(tmp_path: Path) -> None:
    import pandas as pd

    df = pd.DataFrame({"shop": ["a|b", "c\nd"] * 50, "x": range(100), "y": [0, 1, 1, 0] * 25})
    df.to_parquet(tmp_path / "train.parquet")
    result = run_eda(
        str(tmp_path / "train.parquet"), "y", str(tmp_path / "eda"), model_type="classification"
    )
    rows = [
        ln
        for ln in Path(result["report_path"]).read_text().splitlines()
        if ln.startswith("| shop |")
    ]
    assert len(rows) == 1 and "a\\|b" in rows[0] and rows[0].count(" | ") == 3
