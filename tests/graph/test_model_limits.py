"""Every provider model call is bounded: an output cap, and a timeout that closes the HTTP
connection (so a server like llama.cpp cancels the generation instead of running on and
queueing every later request behind it). Structured outputs admit only the valid choices
of the moment: the supervisor's route is an enum of the stages that are ready."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.messages import HumanMessage
from pydantic import ValidationError

from mpm.graph.llm import StubChatModel, get_chat_model, invoke_with_timeout, register_model
from mpm.graph.nodes.supervisor import RouteDecision, route_schema
from tests.graph.helpers import drive_to_completion, example, runner


class SilentServer:
    """Accepts HTTP connections, reads the request, never answers; notes each close."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.closed_at: list[float] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the client closed its end: the request is cancelled
                    self.closed_at.append(time.monotonic())
                    return


@pytest.fixture
def silent(monkeypatch: pytest.MonkeyPatch) -> Iterator[SilentServer]:
    server = SilentServer()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("MPM_MODEL_TIMEOUT_S", "1")
    monkeypatch.setenv("MPM_MODEL_MAX_TOKENS", "64")
    yield server
    server.sock.close()


def test_a_timed_out_call_is_cancelled_by_closing_the_connection(silent: SilentServer) -> None:
    model = get_chat_model("openai:mpm-local")
    assert model.max_tokens == 64 and model.max_retries == 0
    started = time.monotonic()
    with pytest.raises(Exception, match="(?i)time"):
        invoke_with_timeout(model, [HumanMessage("hello")], what="test call")
    gave_up = time.monotonic()
    assert gave_up - started < 5
    deadline = time.monotonic() + 5
    while not silent.closed_at and time.monotonic() < deadline:
        time.sleep(0.05)
    assert silent.closed_at, "the client gave up but left the connection (and generation) open"
    assert silent.closed_at[0] - started < 4
    assert silent.connections == 1  # no silent retry queued behind it


def test_route_schema_admits_only_the_ready_stages() -> None:
    schema = route_schema(["data_acquisition", "business_analysis"])
    items = schema.model_json_schema()["properties"]["next_stages"]["items"]
    assert items["enum"] == ["data_acquisition", "business_analysis"]
    assert schema.model_validate({"next_stages": ["business_analysis"]}).next_stages == [
        "business_analysis"
    ]
    for bad in (["mlops"], [], ["data_acquisition", "deploy"]):
        with pytest.raises(ValidationError):
            schema.model_validate({"next_stages": bad})
    assert issubclass(schema, RouteDecision)


class SchemaRecorder(StubChatModel):
    """The stub, noting the schema each structured-output request was built with."""

    seen: ClassVar[list[Any]] = []

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Any:
        self.seen.append(schema)
        return super().with_structured_output(schema, **kwargs)


def test_the_supervisor_builds_the_route_enum_per_call_from_the_ready_stages(
    workspace: Path,
) -> None:
    SchemaRecorder.seen = []
    register_model("schema-recorder", SchemaRecorder)
    r = runner(workspace, model="schema-recorder")
    done = drive_to_completion(r, r.start("route1", {"requirements": example("breast_cancer")}))
    routes = [s for s in SchemaRecorder.seen if issubclass(s, RouteDecision)]
    assert routes, "the supervisor never had a real choice to ask the model about"
    proposals = [e for e in done.values["events"] if e["event"] == "model_proposal"]
    stage_names = set(done.values["plan"] and [s["name"] for s in done.values["plan"]["stages"]])
    for schema, proposal in zip(routes, proposals, strict=True):
        enum = schema.model_json_schema()["properties"]["next_stages"]["items"]["enum"]
        assert (
            set(enum) == set(proposal["ready"]) if "ready" in proposal else set(enum) <= stage_names
        )
        assert set(enum) <= stage_names and len(enum) >= 2
