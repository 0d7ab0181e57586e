"""MLflow tracing of graph runs: one trace per invocation, read back with MlflowClient."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mpm.graph.context import RunContext
from mpm.graph.runner import Runner
from mpm.tools.naming import experiment_name
from tests.graph.helpers import drive_to_completion, example, mpm

EXPERIMENT = experiment_name("Tumour Screening Triage")
THREAD_TAG = "mpm.thread_id"


def _counting_runner(workspace: Path, *, tracing: bool) -> tuple[Runner, list[Any]]:
    """A runner on the stub model and no-op tools, tracking on; counts graph invocations."""
    ctx = RunContext(
        workspace=str(workspace), model="stub", toolset="noop", tracking=True, tracing=tracing
    )
    r = Runner(ctx)
    invocations: list[Any] = []
    drive = r._drive

    def counted(g: Any, thread_id: str, graph_input: Any) -> Any:
        invocations.append(graph_input)
        return drive(g, thread_id, graph_input)

    r._drive = counted  # type: ignore[method-assign]
    return r, invocations


def _client(workspace: Path) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")


def _thread_traces(client: Any, experiment_id: str, thread_id: str) -> list[Any]:
    return list(
        client.search_traces(
            locations=[experiment_id],
            filter_string=f"tag.`{THREAD_TAG}` = '{thread_id}'",
            max_results=500,
        )
    )


def _ancestors(span: Any, by_id: dict[str, Any]) -> list[str]:
    names = []
    while span.parent_id:
        span = by_id[span.parent_id]
        names.append(span.name)
    return names


def test_every_invocation_is_traced_with_node_model_and_tool_spans_tagged_with_the_thread(
    workspace: Path,
) -> None:
    from mpm.graph.builder import AGENT_NODES

    r, invocations = _counting_runner(workspace, tracing=True)
    outcome = drive_to_completion(r, r.start("traced", {"requirements": example("breast_cancer")}))
    assert outcome.status in {"completed", "partial"}
    assert len(invocations) >= 2, "the run should have stopped for people at least once"

    client = _client(workspace)
    exp = client.get_experiment_by_name(EXPERIMENT)
    traces = _thread_traces(client, exp.experiment_id, "traced")
    # one trace per invocation: the start and every resume after an interrupt
    assert len(traces) == len(invocations)
    assert sorted(t.info.tags["mlflow.traceName"] for t in traces) == sorted(
        ["mpm.start"] + ["mpm.resume"] * (len(invocations) - 1)
    )
    for trace in traces:
        assert trace.info.tags[THREAD_TAG] == "traced"
        assert trace.info.trace_metadata["mlflow.trace.session"] == "traced"
        assert trace.info.state == "OK"

    spans = [s for t in traces for s in t.data.spans]
    names = {s.name for s in spans}
    assert {"kickoff", "plan", "governance", "supervisor", "approval", "synthesize"} <= names
    assert set(AGENT_NODES) <= names
    chat = [s for s in spans if s.span_type == "CHAT_MODEL"]
    tools = [s for s in spans if s.span_type == "TOOL"]
    assert chat and tools
    # the stage agents run in their own thread: their calls still nest under the stage node
    for trace in traces:
        by_id = {s.span_id: s for s in trace.data.spans}
        for span in trace.data.spans:
            if span.span_type == "TOOL":
                assert set(_ancestors(span, by_id)) & set(AGENT_NODES), span.name
    acquire = next(s for s in tools if s.name == "acquire_data")
    assert "data_wrangler" in _ancestors(acquire, {s.span_id: s for s in spans})

    # every trace of the thread is found from the parent run: the first (which opened the
    # run) is linked to it, the resumes name it as their source run
    parent = outcome.values["mlflow"]["parent_run_id"]
    by_run = client.search_traces(locations=[exp.experiment_id], run_id=parent, max_results=500)
    assert {t.info.trace_id for t in by_run} == {t.info.trace_id for t in traces}
    resumes = [t for t in traces if t.info.tags["mlflow.traceName"] == "mpm.resume"]
    assert all(t.info.trace_metadata.get("mlflow.sourceRun") == parent for t in resumes)


def test_tracing_off_records_no_traces_but_still_tracks_runs(workspace: Path) -> None:
    r, invocations = _counting_runner(workspace, tracing=False)
    outcome = drive_to_completion(r, r.start("quiet", {"requirements": example("breast_cancer")}))
    assert len(invocations) >= 2
    client = _client(workspace)
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert client.get_run(outcome.values["mlflow"]["parent_run_id"]).info.status == "FINISHED"
    assert list(client.search_traces(locations=[exp.experiment_id], max_results=10)) == []


def test_mpm_tracing_env_switches_tracing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from mpm.graph.tracing import tracing_enabled

    assert tracing_enabled(RunContext(tracking=True))
    assert not tracing_enabled(RunContext(tracking=False))
    monkeypatch.setenv("MPM_TRACING", "0")
    assert not tracing_enabled(RunContext(tracking=True))


def test_cli_no_tracing_is_recorded_in_the_thread_and_traces_nothing(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    requirements = Path(__file__).resolve().parents[2] / "reference/examples/breast_cancer.yaml"
    run = mpm(
        "kickoff", "-r", str(requirements), "-t", "cli-quiet", "-w", str(ws),
        "--toolset", "noop", "--no-tracing",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    from mpm.graph.runner import Runner

    values = Runner(RunContext(workspace=str(ws))).snapshot("cli-quiet").values
    assert values["settings"]["tracing"] is False
    client = _client(ws)
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None, "tracking stays on"
    assert list(client.search_traces(locations=[exp.experiment_id], max_results=10)) == []


def test_an_invocation_that_raises_leaves_an_error_trace_in_the_project_experiment(
    workspace: Path,
) -> None:
    from mpm.graph.tracing import traced_invocation

    ctx = RunContext(workspace=str(workspace), toolset="noop", tracking=True, tracing=True)
    start = {"requirements": example("breast_cancer")}
    with (
        pytest.raises(RuntimeError, match="killed mid-run"),
        traced_invocation(ctx, "crashed", {}, start) as trace,
    ):
        assert trace.callbacks
        raise RuntimeError("killed mid-run")
    client = _client(workspace)
    exp = client.get_experiment_by_name(EXPERIMENT)  # created from the requirements given
    (trace_row,) = _thread_traces(client, exp.experiment_id, "crashed")
    assert trace_row.info.state == "ERROR"
    assert trace_row.info.tags["mlflow.traceName"] == "mpm.start"


def test_a_tracing_failure_leaves_the_invocation_untraced_and_says_why(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import mpm.graph.tracing as tracing

    def unreachable(*_args: Any, **_kwargs: Any) -> Any:
        raise ConnectionError("tracking server unreachable")

    monkeypatch.setattr(tracing, "_open_trace", unreachable)
    ctx = RunContext(workspace=str(workspace), tracking=True, tracing=True)
    with (
        caplog.at_level("WARNING", logger="mpm.graph.tracing"),
        tracing.traced_invocation(ctx, "t", {}, None) as trace,
    ):
        assert trace.callbacks == [] and trace.trace_id is None
    assert "tracking server unreachable" in caplog.text
