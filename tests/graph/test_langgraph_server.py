"""The graph served by ``langgraph dev`` (the in-memory LangGraph Server), driven with the
official ``langgraph-sdk`` client: threads, runs, interrupts in the thread state, resumes
with ``Command(resume={interrupt_id: value})``, and the same approver authorisation as the
CLI. Offline: no LangSmith, no analytics, no version check."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.graph.helpers import REPO, approver_for, auto_answer, decision, example

STARTUP_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 300.0
OFFLINE_ENV = {
    "LANGSMITH_TRACING": "false",  # no LangSmith tracing
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",  # the CLI's usage analytics
    "LANGGRAPH_NO_VERSION_CHECK": "true",  # the server's PyPI version check
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL it if it lingers."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``langgraph dev`` on a free port from the repo root, stub model, no-op tools."""
    cli = Path(sys.executable).with_name("langgraph")
    if not cli.exists():
        pytest.fail(f"{cli} not found: install the server extra: pip install -e '.[server]'")
    # the in-memory runtime pickles its threads into .langgraph_api/ in the working
    # directory (the repo root, where langgraph.json's paths are resolved): leave none behind
    state_dir = REPO / ".langgraph_api"
    state_dir_existed = state_dir.exists()
    port = _free_port()
    env = {
        **os.environ,
        **OFFLINE_ENV,
        "MPM_WORKSPACE": str(tmp_path / "ws"),
        "MPM_TOOLSET": "noop",
        "MPM_TRACKING": "0",
    }
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(cli), "dev", "--port", str(port)]
            + ["--host", "127.0.0.1", "--no-browser", "--no-reload"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: torn down as one
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited ({proc.returncode}):\n{_tail(log_path)}")
            try:
                with urllib.request.urlopen(f"{url}/ok", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"langgraph dev not up after {STARTUP_TIMEOUT_S:g}s:\n{_tail(log_path)}"
                )
            time.sleep(0.5)
        yield url
    finally:
        _stop(proc)
        if not state_dir_existed:
            shutil.rmtree(state_dir, ignore_errors=True)


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _pending(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The interrupts the thread waits on, from ``tasks[].interrupts`` (and the top-level list)."""
    found = {i["id"]: i for task in state["tasks"] for i in task.get("interrupts") or []}
    assert set(found) == {i["id"] for i in state.get("interrupts") or []}
    return list(found.values())


def _answer(item: dict[str, Any], requested_by: str) -> Any:
    value = item["value"]
    if value["type"] == "open_questions":
        return {q["key"]: auto_answer(q) for q in value["questions"]}
    assert value["type"] == "approval", value
    return decision(value, approver_for(value, requested_by), comment="approved via the SDK")


def test_langgraph_dev_serves_a_governed_run_to_completion_through_the_sdk(server: str) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server, timeout=RUN_TIMEOUT_S)
    (assistant,) = client.assistants.search(graph_id="mpm")
    thread_id = client.threads.create()["thread_id"]
    requirements = example("breast_cancer")
    requested_by = requirements["requested_by"]

    client.runs.wait(thread_id, assistant["assistant_id"], input={"requirements": requirements})
    state = client.threads.get_state(thread_id)
    assert state["values"]["thread_id"] == thread_id
    assert state["values"]["status"] == "waiting"
    kinds_seen: set[str] = set()
    outsider_refused = False
    for _round in range(40):
        pending = _pending(state)
        if not pending:
            break
        kinds_seen |= {i["value"]["type"] for i in pending}
        approvals = [i for i in pending if i["value"]["type"] == "approval"]
        if approvals and not outsider_refused:
            # an approver outside the named groups is refused and the approval stays pending
            target = approvals[0]
            assert "mallory" not in target["value"]["eligible_approvers"]
            client.runs.wait(
                thread_id,
                assistant["assistant_id"],
                command={"resume": {target["id"]: decision(target["value"], "mallory")}},
            )
            state = client.threads.get_state(thread_id)
            again = next(
                i["value"]
                for i in _pending(state)
                if i["value"].get("approval_id") == target["value"]["approval_id"]
            )
            assert again["refusals"][-1]["approver"] == "mallory"
            assert "is not a member of" in again["refusals"][-1]["reason"]
            assert target["value"]["approval_id"] not in (state["values"].get("approvals") or {})
            outsider_refused = True
            continue
        # every pending interrupt answered in one resume: {interrupt_id: value}
        resume = {i["id"]: _answer(i, requested_by) for i in pending}
        client.runs.wait(thread_id, assistant["assistant_id"], command={"resume": resume})
        state = client.threads.get_state(thread_id)
    else:
        pytest.fail("the run did not finish within 40 rounds of answers")

    assert kinds_seen == {"open_questions", "approval"}
    assert outsider_refused
    assert state["next"] == []
    values = state["values"]
    assert values["status"] in {"completed", "partial"}
    assert set(values["results"]) == {s["name"] for s in values["plan"]["stages"]}
    assert all(r["status"] == "success" for r in values["results"].values())
    assert values["requirements"]["project_name"] == requirements["project_name"]
    decided = values["approvals"]
    assert decided and all(a["decision"] == "approve" for a in decided.values())
    assert all(a["approver"] != requested_by for a in decided.values())
    assert any(not e["accepted"] and e["approver"] == "mallory" for e in values["audit"])
    deliverables = values["deliverables"]
    assert deliverables["pipeline_status"] in {"success", "partial_success"}
    assert deliverables["validation"]["checks"]["approvals_granted"]["passed"] is True


def test_served_graph_brings_no_checkpointer_and_langgraph_json_points_at_it() -> None:
    import json

    from mpm.graph.server import graph

    assert graph.checkpointer is None  # the server's persistence, not ours
    spec = json.loads((REPO / "langgraph.json").read_text())["graphs"]["mpm"]
    path, variable = spec["path"].split(":")
    assert (REPO / path).resolve() == (REPO / "graph" / "server.py").resolve()
    assert variable == "graph"
