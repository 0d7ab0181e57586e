"""Data is checked before a run exists: ``mpm kickoff -r`` (and ``mpm demo -r``) refuse a
data source that is missing, outside the workspace, inside another thread's run folder,
or whose target is missing or has one class, with one line naming the file and field,
exit 2, and nothing created (no workspace folder, no checkpoint, no thread, no MLflow).
The graph's own kickoff (API, server, conversation) checks the same before planning, and a
stage that fails on data is not retried (the same input fails the same way)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.graph.helpers import example, mpm, runner


def _csv(path: Path, *, one_class: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["age,income,churned"] + [
        f"{20 + i},{1000 + 13 * i},{'no' if one_class or i % 3 else 'yes'}" for i in range(60)
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _requirements(tmp: Path, uri: str, **fields: Any) -> Path:
    req = {
        "project_name": "Data Check",
        "business_objective": "Find churners",
        "model_type": "classification",
        "target_metric": "roc_auc",
        "success_threshold": 0.6,
        "target_column": "churned",
        "data_sources": [{"name": "customers", "uri": uri}],
        "risk_level": "low",
        **fields,
    }
    path = tmp / "req.yaml"
    path.write_text(yaml.safe_dump(req, allow_unicode=True), encoding="utf-8")
    return path


def _tree(ws: Path) -> list[str] | None:
    return sorted(str(p.relative_to(ws)) for p in ws.rglob("*")) if ws.exists() else None


def _case(tmp: Path, name: str) -> tuple[Path, Path, str]:
    """(workspace, requirements file, expected fragment of the one error line)."""
    ws = tmp / "ws"
    if name == "missing-file":
        return (
            ws,
            _requirements(tmp, "data/customers.csv"),
            ("data_sources.0.uri: data/customers.csv: file not found"),
        )
    if name == "outside-workspace":
        outside = _csv(tmp / "elsewhere" / "customers.csv")
        return (
            ws,
            _requirements(tmp, str(outside)),
            (f"data_sources.0.uri: {outside}: path resolves outside the allowed folder {ws}"),
        )
    if name == "missing-target":
        _csv(ws / "data" / "customers.csv")
        return (
            ws,
            _requirements(tmp, "data/customers.csv", target_column="left_us"),
            (
                "target_column: data/customers.csv: target column 'left_us' not found; "
                "available columns: age, income, churned"
            ),
        )
    if name == "one-class-target":
        _csv(ws / "data" / "customers.csv", one_class=True)
        return (
            ws,
            _requirements(tmp, "data/customers.csv"),
            (
                "target_column: data/customers.csv: target column 'churned' has a single class "
                "('no'); classification needs at least two"
            ),
        )
    if name == "another-threads-run-folder":
        _csv(ws / "runs" / "other-project" / "data_acquisition" / "customers.csv")
        uri = "runs/other-project/data_acquisition/customers.csv"
        return (
            ws,
            _requirements(tmp, uri),
            (f"data_sources.0.uri: {uri}: inside the run folder of thread 'other-project'"),
        )
    raise AssertionError(name)


CASES = [
    "missing-file",
    "outside-workspace",
    "missing-target",
    "one-class-target",
    "another-threads-run-folder",
]


@pytest.mark.parametrize("command", ["kickoff", "demo"])
@pytest.mark.parametrize("name", CASES)
def test_bad_data_is_refused_at_kickoff_and_nothing_is_created(
    tmp_path: Path, name: str, command: str
) -> None:
    ws, req, expected = _case(tmp_path, name)
    before = _tree(ws)
    run = mpm(command, "-r", str(req), "-w", str(ws), "-t", "fresh", env={"MPM_TRACING": "0"})
    assert run.returncode == 2, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ") and f"{req}: {expected}" in lines[0], lines[0]
    assert "Traceback" not in run.stdout + run.stderr
    assert _tree(ws) == before  # no workspace folder, checkpoint, thread, keys or MLflow store


def test_the_advice_in_the_outside_workspace_error_works(tmp_path: Path) -> None:
    """The refusal says to copy the file into the workspace and name it relative to it;
    doing exactly that passes the check (the run then starts)."""
    from mpm.tools.data_check import check_data_sources

    ws, req_file, _ = _case(tmp_path, "outside-workspace")
    ws.mkdir()
    outside = tmp_path / "elsewhere" / "customers.csv"
    _csv(ws / "data" / outside.name)  # "copy the file into it (e.g. <ws>/data/customers.csv)"
    req = yaml.safe_load(req_file.read_text())
    req["data_sources"][0]["uri"] = "data/customers.csv"  # "relative to <ws>"
    check_data_sources(req, ws, "fresh")


def test_an_api_kickoff_with_bad_data_ends_before_planning(workspace: Path) -> None:
    """The graph's kickoff (Python API, LangGraph Server) checks too: the run ends failed
    with the reason, before a plan or an MLflow run exists for it."""
    req = example("breast_cancer")
    req["data_sources"] = [{"name": "x", "uri": "data/not_here.csv"}]
    outcome = runner(workspace, toolset="real", tracking=True).start("api1", {"requirements": req})
    values = outcome.values
    assert values["status"] == "failed" and "plan" not in values and not values.get("results")
    assert not (values.get("mlflow") or {}).get("parent_run_id")  # no parent run was opened
    (invalid,) = [e for e in values["events"] if e["event"] == "data_invalid"]
    assert "data_sources.0.uri: data/not_here.csv: file not found" in invalid["detail"]
    assert not (workspace / "runs" / "api1" / "data_acquisition").exists()  # no stage ran


def test_the_conversational_kickoff_asks_again_about_a_one_class_target(workspace: Path) -> None:
    _csv(workspace / "customers.csv", one_class=True)
    opening = (
        "project: Churn\nobjective: keep customers\nWe need to classify churn on customers.csv, "
        "AUC of at least 75%.\ntarget column: churned\nconstraints: none\nRisk is low."
    )
    r = runner(workspace, toolset="real")
    first = r.start("chat1", {"conversation": [{"role": "user", "content": opening}]})
    (question,) = first.interrupts[0]["value"]["questions"]
    assert question["field"] == "target_column"
    assert "target column 'churned' has a single class ('no')" in question["problem"]
    assert "plan" not in first.values


def test_a_data_error_found_by_the_data_stage_is_not_retried(workspace: Path) -> None:
    """A class too rare to split is found only when splitting; the same data would fail
    the same way, so the stage is not run again."""
    path = workspace / "data" / "rare.csv"
    path.parent.mkdir()
    rows = ["age,income,label"] + [
        f"{20 + i},{1000 + 7 * i},{'yes' if i < 3 else 'no'}" for i in range(60)
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    req = example(
        "breast_cancer",
        data_sources=[{"name": "rare", "uri": "data/rare.csv"}],
        target_column="label",
        stage_retries={"data_acquisition": 2},
    )
    r = runner(workspace, toolset="real")
    values = r.start("rare1", {"requirements": req}).values
    data = values["results"]["data_acquisition"]
    assert data["status"] == "failed" and data["attempts"] == 1
    assert "class 'yes' has only 3 rows" in data["error"]
    events = [e["event"] for e in values["events"] if e["node"] == "data_acquisition"]
    assert events.count("attempt_failed") == 1 and "not_retried" in events
