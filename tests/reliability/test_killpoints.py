"""The kill-point switch the torture test relies on: off and free unless set, exact when set."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpm.tools import killpoints
from tests.reliability.driver import KILLED, plan_kills, run_mpm


def test_unset_switch_counts_nothing_and_kills_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(killpoints.KILL_VAR, raising=False)
    monkeypatch.delenv(killpoints.TRACE_VAR, raising=False)
    killpoints.reset()
    for _ in range(3):
        killpoints.maybe_die("governance")
    assert not killpoints._hits


def test_trace_records_every_visit_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = tmp_path / "trace"
    monkeypatch.setenv(killpoints.TRACE_VAR, str(trace))
    killpoints.reset()
    for point in ("kickoff", "mlflow.write", "mlflow.write"):
        killpoints.maybe_die(point)
    assert [line.split()[1:] for line in trace.read_text().splitlines()] == [
        ["kickoff", "1"],
        ["mlflow.write", "1"],
        ["mlflow.write", "2"],
    ]
    killpoints.reset()


def test_kill_spec_is_checked() -> None:
    assert killpoints.parse("tool.after:3, governance") == {"tool.after": 3, "governance": 1}
    with pytest.raises(killpoints.KillPointError, match="unknown point 'tool'"):
        killpoints.parse("tool:3")
    with pytest.raises(killpoints.KillPointError, match="a count >= 1"):
        killpoints.parse("governance:0")


def test_process_dies_at_the_named_visit(tmp_path: Path, workspace: Path) -> None:
    """The third governance evaluation of a kickoff is where the process ends, by SIGKILL."""
    trace = tmp_path / "trace"
    run = run_mpm(
        ["kickoff", "-r", "reference/examples/breast_cancer.yaml", "-w", str(workspace)]
        + ["-t", "k", "--toolset", "noop", "--no-tracking"],
        {"MPM_KILL_AT": "governance:3", "MPM_KILL_TRACE": str(trace)},
    )
    assert run.returncode == KILLED
    visits = [line.split()[1] for line in trace.read_text().splitlines()]
    assert visits.count("governance") == 3 and visits[-1] == "governance"


def test_kill_plans_only_name_visits_a_resume_passes_again() -> None:
    """After a kill, the next kill of the same phase lies past a super-step boundary."""
    import random

    trace = {
        "kickoff": ["kickoff", "plan", "tool.before", "tool.after", "governance", "tool.before"]
    }
    checked = 0
    for seed in range(50):
        specs = plan_kills(trace, random.Random(seed), 2)["kickoff"]
        if len(specs) == 2 and specs[0] == "tool.before:1":
            # no boundary until governance: only the second tool.before may come next,
            # counted from past that boundary
            assert specs[1] == "tool.before:1"
            checked += 1
    assert checked, "no seed chose a chain that starts at a tool call"
