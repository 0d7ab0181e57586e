"""The graph served by ``langgraph dev`` (the in-memory LangGraph Server), driven with the
official ``langgraph-sdk`` client: threads, runs, interrupts in the thread state, resumes
with ``Command(resume={interrupt_id: value})``, and the same approver authorisation as the
CLI -- behind mpm's custom auth (``graph/auth.py``) and the served graph's guards
(``graph/server.py``): bearer tokens, trust settings only from the server's environment,
recorded per thread, no state written from outside, every run traced in MLflow.
One server for the module. Offline: no LangSmith, no analytics, no version check."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mpm.graph.auth import token_digest
from mpm.graph.context import TRUST_SETTINGS
from tests.graph.helpers import REPO, approver_for, auto_answer, decision, example

STARTUP_TIMEOUT_S = 120.0
RUN_TIMEOUT_S = 300.0
OFFLINE_ENV = {
    "LANGSMITH_TRACING": "false",  # no LangSmith tracing
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",  # the CLI's usage analytics
    "LANGGRAPH_NO_VERSION_CHECK": "true",  # the server's PyPI version check
}
TOKENS = {"alice": "alice-secret-token", "bob": "bob-secret-token"}


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


@dataclass(frozen=True)
class Served:
    url: str
    workspace: Path

    def client(self, user: str = "alice") -> Any:
        from langgraph_sdk import get_sync_client

        headers = {"Authorization": f"Bearer {TOKENS[user]}"}
        return get_sync_client(url=self.url, headers=headers, timeout=RUN_TIMEOUT_S)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Served]:
    """``langgraph dev`` on a free port from the repo root: stub model, no-op tools, MLflow
    tracking on (traces), two users with bearer tokens (only their digests on disk)."""
    cli = Path(sys.executable).with_name("langgraph")
    if not cli.exists():
        pytest.fail(f"{cli} not found: install the server extra: pip install -e '.[server]'")
    tmp = tmp_path_factory.mktemp("served")
    tokens = tmp / "tokens"
    tokens.write_text(
        "# user  digest of the bearer token\n"
        + "".join(f"{user} {token_digest(token)}\n" for user, token in TOKENS.items())
    )
    # the in-memory runtime pickles its threads into .langgraph_api/ in the working
    # directory (the repo root, where langgraph.json's paths are resolved): leave none behind
    state_dir = REPO / ".langgraph_api"
    state_dir_existed = state_dir.exists()
    port = _free_port()
    workspace = tmp / "ws"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MPM_")},
        **OFFLINE_ENV,
        "MPM_WORKSPACE": str(workspace),
        "MPM_TOOLSET": "noop",
        "MPM_TRACKING": "1",
        "MPM_TRACING": "1",
        "MPM_SERVER_TOKENS": str(tokens),
    }
    try:  # where approvers sign with real keys, the server knows the session's identities
        identity, _keys = request.getfixturevalue("signing_identity")
        env["MPM_IDENTITY"] = str(identity)
    except pytest.FixtureLookupError:
        pass
    log_path = tmp / "server.log"
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
        yield Served(url, workspace)
    finally:
        _stop(proc)
        if not state_dir_existed:
            shutil.rmtree(state_dir, ignore_errors=True)


def _refused(call: Callable[[], Any]) -> tuple[int, str]:
    """Status and one-line detail of a request the server must refuse."""
    import httpx

    try:
        call()
    except httpx.HTTPStatusError as exc:
        body = exc.response.json()
        return exc.response.status_code, str(body.get("detail") or body.get("message"))
    pytest.fail("the server accepted the request")


def _assistant(client: Any) -> str:
    (assistant,) = client.assistants.search(graph_id="mpm")
    return str(assistant["assistant_id"])


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


def test_langgraph_dev_serves_a_governed_run_to_completion_through_the_sdk(
    server: Served,
) -> None:
    client = server.client("alice")
    assistant = {"assistant_id": _assistant(client)}
    thread_id = client.threads.create()["thread_id"]
    requirements = example("breast_cancer")
    requested_by = requirements["requested_by"]

    # started with the settings a client may choose; every resume below sends none
    client.runs.wait(
        thread_id,
        assistant["assistant_id"],
        input={"requirements": requirements},
        context={"model": "stub", "tracing": True},
    )
    state = client.threads.get_state(thread_id)
    assert state["values"]["thread_id"] == thread_id
    assert state["values"]["status"] == "waiting"
    settings = state["values"]["settings"]
    assert settings["workspace"] == str(server.workspace)  # the server's, resolved
    assert (settings["toolset"], settings["model"], settings["started_by"]) == (
        "noop",
        "stub",
        "alice",
    )
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
    # resumed without a context, many times: the thread kept its settings, its workspace
    # (one run folder, in the server's workspace) and its no-op tools
    assert values["settings"] == settings
    assert all(set(r["outputs"].values()) == {True} for r in values["results"].values())
    assert (server.workspace / "runs" / thread_id / "governance").is_dir()
    run_dir = server.workspace / "runs" / thread_id
    assert {p.name for p in run_dir.iterdir() if p.is_dir()} >= set(values["results"])
    runs = client.runs.list(thread_id, limit=100)
    assert runs and all(r["metadata"].get("mpm_user") == "alice" for r in runs)


def test_an_unauthenticated_client_is_refused(server: Served) -> None:
    from langgraph_sdk import get_sync_client

    for headers, detail in (
        ({}, "missing 'Authorization: Bearer <token>'"),
        ({"Authorization": "Bearer not-a-token"}, "unknown token"),
        ({"Authorization": f"Basic {TOKENS['alice']}"}, "missing 'Authorization: Bearer"),
        # Studio's LangSmith scheme is not a way in (disable_studio_auth)
        ({"x-auth-scheme": "langsmith"}, "missing 'Authorization: Bearer"),
    ):
        client = get_sync_client(url=server.url, headers=headers)
        status, said = _refused(lambda c=client: c.threads.create())
        assert (status, detail in said) == (401, True), (headers, said)
    threads = server.client("bob").threads.search(limit=1000)
    assert all(t["metadata"].get("mpm_created_by") in TOKENS for t in threads)


def test_a_run_that_tries_to_set_trust_settings_is_refused_and_nothing_is_saved(
    server: Served, tmp_path: Path
) -> None:
    client = server.client("bob")
    assistant = _assistant(client)
    thread_id = client.threads.create()["thread_id"]
    start = {"requirements": example("breast_cancer")}
    elsewhere = str(tmp_path / "client-chosen")
    attempts: list[tuple[dict[str, Any], str]] = []
    for key in sorted(TRUST_SETTINGS):
        value: Any = False if key == "tracking" else elsewhere
        attempts.append(({"input": start, "context": {key: value}}, f"run context sets {key}"))
        attempts.append(
            (
                {"input": start, "config": {"configurable": {key: value}}},
                f"sets {key}: ",  # the server makes a context of it: refused as one
            )
        )
    attempts += [
        ({"input": start, "context": {"model": "openai:gpt-4o"}}, "this server offers stub"),
        ({"input": {**start, "settings": {"toolset": "real"}}}, "run input 'settings'"),
        ({"command": {"update": {"approvals": {"a": {}}}}}, "command 'update' is refused"),
        ({"command": {"goto": "synthesize"}}, "command 'goto' is refused"),
    ]
    for kwargs, detail in attempts:
        status, said = _refused(lambda kw=kwargs: client.runs.wait(thread_id, assistant, **kw))
        assert status == 403 and detail in said, (kwargs, said)
        assert "\n" not in said
    state = client.threads.get_state(thread_id)
    assert state["values"] in ({}, None) and not state["checkpoint"]  # no checkpoint at all
    assert client.runs.list(thread_id) == []
    assert not Path(elsewhere).exists()


def test_update_state_and_supersteps_cannot_write_approvals_or_audit(server: Served) -> None:
    client = server.client("bob")
    assistant = _assistant(client)
    thread_id = client.threads.create()["thread_id"]
    client.runs.wait(thread_id, assistant, input={"requirements": example("breast_cancer")})
    before = client.threads.get_state(thread_id)
    approval_ids = [a["approval_id"] for a in before["values"]["plan"].get("approvals") or []]
    forged = {
        "approvals": {a: {"decision": "approve", "approver": "bob"} for a in approval_ids},
        "audit": [{"approval_id": "x", "decision": "approve", "accepted": True}],
    }
    for values, as_node in ((forged, "approval"), (forged, None), ({"settings": {}}, None)):
        status, said = _refused(
            lambda v=values, n=as_node: client.threads.update_state(thread_id, v, as_node=n)
        )
        assert status == 403 and "written only by mpm's graph" in said
    # time travel: a run from an older checkpoint would fork the thread's history
    older = client.threads.get_history(thread_id, limit=5)[-1]["checkpoint"]["checkpoint_id"]
    status, said = _refused(
        lambda: client.runs.wait(
            thread_id, assistant, checkpoint_id=older, command={"resume": {"x": 1}}
        )
    )
    assert status == 403 and "run from a checkpoint_id is refused" in said
    after = client.threads.get_state(thread_id)
    assert after["checkpoint"] == before["checkpoint"] and after["values"] == before["values"]
    # a thread created with supersteps is created, with none of the state it was sent
    import uuid

    made = str(uuid.uuid4())
    said = client.threads.create(
        thread_id=made, supersteps=[{"updates": [{"values": forged, "as_node": "approval"}]}]
    )
    assert "written only by mpm's graph" in str(said)
    assert client.threads.get_state(made)["values"] in ({}, None)


def test_schemas_are_real_and_list_the_input_fields(server: Served) -> None:
    client = server.client("alice")
    schemas = client.assistants.get_schemas(_assistant(client))
    assert schemas["input_schema"] is not None and schemas["output_schema"] is not None
    assert set(schemas["input_schema"]["properties"]) == {"requirements", "conversation"}
    assert {"requirements", "approvals", "audit", "results"} <= set(
        schemas["output_schema"]["properties"]
    )
    assert set(schemas["context_schema"]["properties"]) == {"model", "tracing"}


def test_a_served_run_is_traced_in_mlflow_tagged_with_its_thread_and_linked_to_its_run(
    server: Served,
) -> None:
    from mpm.tools import tracking

    client = server.client("bob")
    thread_id = client.threads.create()["thread_id"]
    client.runs.wait(
        thread_id, _assistant(client), input={"requirements": example("breast_cancer")}
    )
    values = client.threads.get_state(thread_id)["values"]
    ids = values["mlflow"]
    store = tracking.client(tracking.tracking_uri_for(server.workspace))
    traces = store.search_traces(
        locations=[ids["experiment_id"]],
        filter_string=f"tags.`{tracking.THREAD_TAG}` = '{thread_id}'",
    )
    assert len(traces) == 1  # one invocation, one trace
    (trace,) = traces
    assert trace.info.state.value == "OK"
    assert trace.info.trace_metadata.get("mlflow.trace.session") == thread_id
    names = [span.name for span in trace.data.spans]
    assert names[0] == "mpm.start"
    assert {"kickoff", "plan", "governance", "supervisor"} <= set(names)
    agents = {
        stage["agent"] for stage in values["plan"]["stages"] if stage["name"] in values["results"]
    }
    assert agents and agents <= set(names)  # the stage nodes that ran, traced too
    linked = store.search_traces(locations=[ids["experiment_id"]], run_id=ids["parent_run_id"])
    assert trace.info.trace_id in {t.info.trace_id for t in linked}


def test_served_graph_brings_no_checkpointer_and_langgraph_json_points_at_it() -> None:
    import json

    from mpm.graph.server import ServedGraph, graph

    assert isinstance(graph, ServedGraph)
    assert graph.checkpointer is None  # the server's persistence, not ours
    spec = json.loads((REPO / "langgraph.json").read_text())
    path, variable = spec["graphs"]["mpm"]["path"].split(":")
    assert (REPO / path).resolve() == (REPO / "graph" / "server.py").resolve()
    assert variable == "graph"
    auth_path, auth_variable = spec["auth"]["path"].split(":")
    assert (REPO / auth_path).resolve() == (REPO / "graph" / "auth.py").resolve()
    assert auth_variable == "auth" and spec["auth"]["disable_studio_auth"] is True
