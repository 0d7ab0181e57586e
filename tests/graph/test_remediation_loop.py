"""The remediation loop's decisions, on plain state: when an attempt starts, what budget
stops it, which strategy the diagnosis picks, and that a finished attempt is settled
once (the graph-level behaviour is in test_remediation.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mpm.graph import remediation as loop
from mpm.graph.state import ExecutionPlan, ProjectRequirements
from mpm.tools.remediation import choose_strategy, training_plan

STAGES = [
    ("business_analysis", "business_analyst", []),
    ("data_acquisition", "data_wrangler", ["business_analysis"]),
    ("model_development", "model_developer", ["data_acquisition"]),
    ("model_validation", "model_validator", ["model_development"]),
    ("mlops", "mlops_engineer", ["model_validation"]),
]
PLAN = ExecutionPlan.model_validate(
    {"stages": [{"name": n, "agent": a, "task": n, "depends_on": d} for n, a, d in STAGES]}
)


def _protocol(tmp_path: Path, share: float, weighted: bool) -> str:
    path = tmp_path / "selection_protocol.json"
    path.write_text(
        json.dumps(
            {
                "imbalance": {"min_class": "yes", "min_share": share, "imbalanced": share < 0.2},
                "class_weighting": weighted,
            }
        )
    )
    return str(path)


def _state(
    tmp_path: Path,
    *,
    metric: str = "roc_auc",
    threshold: float = 0.8,
    score: float = 0.6,
    share: float = 0.05,
    budget: dict[str, Any] | None = None,
    attempts: list[dict[str, Any]] | None = None,
    findings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    req = {
        "project_name": "p",
        "business_objective": "o",
        "model_type": "classification",
        "target_metric": metric,
        "success_threshold": threshold,
        "data_sources": [{"name": "d", "uri": "data/d.csv"}],
        **({"remediation": budget} if budget is not None else {}),
    }
    ProjectRequirements.model_validate(req)  # a valid project
    done = {"status": "success", "duration_s": 30.0}
    return {
        "requirements": req,
        "plan": PLAN.model_dump(mode="json"),
        "results": {
            "business_analysis": done,
            "data_acquisition": done,
            "model_development": {
                **done,
                "mlflow_run_id": "dev-run",
                "outputs": {
                    "best_model_name": "logistic_regression",
                    "best_model_score": score + 0.01,
                    "feature_columns": ["x0", "x1", "zip"],
                    "selection_protocol_path": _protocol(tmp_path, share, share < 0.2),
                },
            },
            "model_validation": {
                **done,
                "mlflow_run_id": "val-run",
                "outputs": {
                    "test_score": score,
                    "findings": findings or [],
                    "confusion_matrix": {"labels": ["no", "yes"]},
                },
            },
        },
        "remediation_attempts": attempts or [],
    }


def test_an_unmet_criterion_starts_attempt_1_with_model_development_sent_back(
    tmp_path: Path,
) -> None:
    update = loop.next_attempt(_state(tmp_path), PLAN)
    assert update is not None and update.pop("start") is True
    (attempt,) = update["remediation_attempts"]
    assert attempt["attempt"] == 1 and attempt["status"] == "running"
    assert attempt["strategy"] == "class_weights" and "5%" in attempt["why"]
    assert attempt["before"]["test_score"] == 0.6
    assert set(update["results"]) == {"model_development", "model_validation"}
    assert {r["status"] for r in update["results"].values()} == {"revision_requested"}
    assert update["revisions"]["model_development"]["count"] == 1
    assert update["plan"]["revisions"][0]["remediation_attempt"] == 1
    assert update["plan"]["revisions"][0]["stages"] == [
        "model_development",
        "model_validation",
        "mlops",
    ]


def test_a_met_criterion_starts_nothing(tmp_path: Path) -> None:
    assert loop.next_attempt(_state(tmp_path, score=0.85), PLAN) is None
    on_the_line = _state(tmp_path, metric="recall", threshold=0.7, score=0.7)
    assert loop.next_attempt(on_the_line, PLAN) is None  # on the threshold is met


def test_max_attempts_0_disables_the_loop(tmp_path: Path) -> None:
    state = _state(tmp_path, budget={"max_attempts": 0})
    update = loop.next_attempt(state, PLAN)
    assert update is not None and "start" not in update
    assert update["remediation"]["stopped"] == "remediation disabled (max_attempts: 0)"
    # recorded once: the same state with the record asks for nothing more
    assert loop.next_attempt({**state, **update}, PLAN) is None


def _finished(n: int, strategy: str, minutes: float = 0.5) -> dict[str, Any]:
    return {
        "attempt": n,
        "strategy": strategy,
        "strategies": [strategy],
        "status": "unmet",
        "minutes": minutes,
        "before": {},
        "after": {},
    }


def test_the_attempt_and_time_budgets_stop_the_loop(tmp_path: Path) -> None:
    spent = _state(tmp_path, attempts=[_finished(1, "class_weights"), _finished(2, "x")])
    update = loop.next_attempt(spent, PLAN)
    assert update["remediation"]["stopped"] == "attempt budget spent (2 of 2)"
    slow = _state(
        tmp_path,
        budget={"max_attempts": 3, "max_minutes": 1},
        attempts=[_finished(1, "class_weights", minutes=1.2)],
    )
    update = loop.next_attempt(slow, PLAN)
    assert update["remediation"]["stopped"] == "time budget spent (1.2 of 1 minutes)"
    assert update["remediation"]["minutes_used"] == 1.2


def test_a_running_attempt_is_settled_once_its_validation_finished(tmp_path: Path) -> None:
    state = _state(tmp_path)
    started = loop.next_attempt(state, PLAN)
    started.pop("start")
    mid = {**state, **started, "results": {**state["results"], **started["results"]}}
    assert loop.settle(mid) == {}  # still under way
    assert loop.next_attempt(mid, PLAN) is None  # and no second attempt meanwhile
    validated = {**mid, "results": state["results"]}
    validated["results"]["model_validation"]["outputs"]["test_score"] = 0.82
    update = loop.settle(validated)
    (done,) = update["remediation_attempts"]
    assert done["status"] == "met" and done["after"]["test_score"] == 0.82
    assert done["minutes"] == 1.0  # 30 s training + 30 s validation
    assert update["remediation"]["stopped"] == "criterion met after attempt 1"
    assert loop.settle({**validated, **update}) == {}


@pytest.mark.parametrize(
    ("metric", "share", "used", "expected"),
    [
        ("roc_auc", 0.05, [], "class_weights"),
        ("accuracy", 0.05, [], "wider_search"),  # weighting does not serve plain accuracy
        ("recall", 0.45, [], "threshold_tuning"),  # balanced enough: no class weights
        ("recall", 0.25, ["class_weights"], "threshold_tuning"),
        ("f1", 0.25, ["class_weights"], "wider_search"),  # f1's threshold is tuned already
        ("roc_auc", 0.05, ["class_weights", "wider_search"], None),
    ],
)
def test_the_diagnosis_picks_the_strategy(
    tmp_path: Path, metric: str, share: float, used: list[str], expected: str | None
) -> None:
    state = _state(tmp_path, metric=metric, share=share, threshold=0.9)
    results = state["results"]
    choice = choose_strategy(
        state["requirements"],
        results["model_development"]["outputs"],
        results["model_validation"]["outputs"],
        used,
    )
    assert (choice and choice["strategy"]) == expected


def test_features_validation_names_as_leaks_are_dropped_first(tmp_path: Path) -> None:
    findings = [
        {
            "id": "leakage.target_proxy.zip",
            "column": "zip",
            "severity": "likely_leak",
            "reason": "r",
        },
        {"id": "leakage.target_proxy.gone", "column": "gone", "severity": "likely_leak"},
    ]
    state = _state(tmp_path, findings=findings)
    update = loop.next_attempt(state, PLAN)
    (attempt,) = update["remediation_attempts"]
    assert attempt["strategy"] == "drop_features"
    assert attempt["drop_columns"] == ["zip"]  # only model inputs are named
    assert "leakage.target_proxy.zip" in attempt["why"]


def test_class_weights_weight_every_setting() -> None:
    plain, own = training_plan("classification", [])
    weighted, own_weighted = training_plan("classification", ["class_weights"])
    assert own is True and own_weighted is False
    for (family, base), (_, both) in zip(plain, weighted, strict=True):
        assert len(both) == 2 * len(base), family
        assert sum(1 for s in both if s.get("class_weight") == "balanced") == len(base)
