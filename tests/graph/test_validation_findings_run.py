"""A governed run on the real tools with a leaking column, missing targets and duplicate rows:
validation fails with the column and the failed gates named (in the stage result, the
deliverables check and the tracked validation run); excluding the column and remediating
the data (both in the requirements) clears it, with the remediation recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.graph.helpers import drive_to_completion, example, runner


def _wages(path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 700
    education = rng.integers(8, 21, n)
    experience = rng.integers(0, 40, n)
    log_wage = 1.2 + 0.09 * education + 0.02 * experience + rng.normal(0, 0.55, n)
    df = pd.DataFrame(
        {
            "education": education,
            "experience": experience,
            "region": rng.choice(["north", "south", "east", "west"], n),
            "wage": np.round(np.exp(log_wage), 2),  # the raw wage, left in
            "log_wage": log_wage,
        }
    )
    df.loc[rng.choice(n, 56, replace=False), "log_wage"] = np.nan  # 8% missing targets
    df = pd.concat([df, df.dropna().sample(70, random_state=1)], ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)


def _run(workspace: Path, name: str, **overrides: Any) -> dict[str, Any]:
    _wages(workspace / "data" / "wages.csv")
    req = example(
        "diabetes_progression",
        project_name=name,
        target_column="log_wage",
        success_threshold=0.1,
        data_sources=[{"name": "wages", "uri": "data/wages.csv", "sensitivity": "internal"}],
        **overrides,
    )
    r = runner(workspace, toolset="real", tracking=True)
    outcome = drive_to_completion(r, r.start(name.lower().replace(" ", "-"), {"requirements": req}))
    from mlflow import MlflowClient

    return {
        "values": outcome.values,
        "client": MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}"),
    }


@pytest.fixture(scope="module")
def leaky(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run(tmp_path_factory.mktemp("leaky"), "Wage Leak")


def test_the_leak_and_the_failed_gates_fail_validation_by_name(leaky: dict[str, Any]) -> None:
    values = leaky["values"]
    result = values["results"]["model_validation"]
    out = result["outputs"]
    assert out["meets_threshold"] is True  # the score alone clears the bar
    assert out["validation_passed"] is False
    ids = {f["id"] for f in out["blocking_findings"]}
    assert "leakage.target_proxy.wage" in ids
    assert {"data_quality.target_missing_rate", "data_quality.duplicate_rate"} <= ids
    assert "'wage'" in result["summary"] and "validation FAILED" in result["summary"]
    check = values["deliverables"]["validation"]["checks"]["validation_findings_clear"]
    assert check["passed"] is False and "leakage.target_proxy.wage" in check["detail"]
    assert values["deliverables"]["validation"]["passed"] is False
    # the policy answer follows the verdict, not the raw score
    assert result["evidence"]["meets_success_threshold"] == "No"
    tags = leaky["client"].get_run(result["mlflow_run_id"]).data.tags
    assert tags["validation_status"] == "blocked_by_findings"
    assert "leakage.target_proxy.wage" in tags["blocking_findings"]


def test_excluding_the_column_and_remediating_the_data_clears_validation(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run = _run(
        tmp_path_factory.mktemp("clean"),
        "Wage Clean",
        exclude_columns=["wage"],
        data_remediation=["drop_missing_target", "drop_duplicates"],
    )
    values = run["values"]
    data = values["results"]["data_acquisition"]["outputs"]
    assert data["excluded_columns"] == ["wage"]
    assert [(r["action"], r["rows_removed"]) for r in data["remediations"]] == [
        ("drop_missing_target", 56),
        ("drop_duplicates", 70),
    ]
    assert data["failed_quality_gates"] == []
    out = values["results"]["model_validation"]["outputs"]
    assert out["blocking_findings"] == [] and out["validation_passed"] is True
    dev = values["results"]["model_development"]["outputs"]
    assert "wage" not in dev["feature_columns"]
    assert values["deliverables"]["validation"]["checks"]["validation_findings_clear"]["passed"]


def test_each_blocking_finding_is_a_governance_blocker_only_its_acceptance_lifts(
    leaky: dict[str, Any],
) -> None:
    values = leaky["values"]
    blocking = values["results"]["model_validation"]["outputs"]["blocking_findings"]
    guarded = values["governance"]["fail_closed"]
    seen = {b["finding_id"]: b for b in [*guarded["blockers"], *guarded["accepted"]]}
    for f in blocking:
        blocker = seen[f"validation:{f['id']}"]
        assert blocker["kind"] == "validation_finding"
        # the test driver approves every pending approval: the registration went ahead only
        # because an exception approver accepted exactly this finding
        assert blocker in guarded["accepted"] and blocker["accepted_by"]
    assert values["results"]["mlops"]["status"] == "success"
