"""Serve the registered model on loopback and answer one smoke request: ``serve_and_smoke``.

Why: Domino's ``CreateEndpoint`` gate action is about a served model, not a registered one.
This is the real serving step the MLOps stage performs behind that gate: MLflow's own
scoring server (``mlflow.pyfunc.scoring_server``, the app ``mlflow models serve`` runs) is
started in-process under uvicorn on ``127.0.0.1`` and a free port, ``/ping`` and
``/invocations`` are called over HTTP with held-out rows, and the result (URL, status,
latency, number of predictions) is the evidence. The server is stopped before returning:
the smoke test proves the endpoint works; it does not leave a service running.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mpm.tools.datasets import read_table

N_ROWS = 5
START_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"} if body else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:  # noqa: S310 - loopback URL we built
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def serve_and_smoke(
    model_uri: str,
    test_path: str,
    *,
    input_columns: list[str],
    tracking_uri: str | None,
    n_rows: int = N_ROWS,
) -> dict[str, Any]:
    """Serve ``model_uri`` on loopback, send ``n_rows`` test rows, stop the server.

    Never raises for a model that does not serve: that is the finding. Returns
    ``{passed, url, status, n_rows, n_predictions, latency_ms, detail}``.
    """
    import mlflow
    import uvicorn
    from mlflow.pyfunc import scoring_server

    from mpm.tools.tracking import use_tracking_uri

    rows = read_table(Path(test_path))[input_columns].head(int(n_rows)).reset_index(drop=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {
        "passed": False,
        "url": url,
        "status": None,
        "n_rows": int(len(rows)),
        "n_predictions": 0,
        "latency_ms": None,
    }
    try:
        with use_tracking_uri(tracking_uri):
            model = mlflow.pyfunc.load_model(model_uri)
        app = scoring_server.init(model)
    except Exception as exc:  # noqa: BLE001 - a model that cannot be served fails the smoke test
        return {
            **result,
            "detail": f"cannot load the model for serving: {type(exc).__name__}: {exc}",
        }
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="mpm-serving-smoke", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                return {**result, "detail": f"the scoring server did not start on {url}"}
            time.sleep(0.05)
        ping, _ = _request(f"{url}/ping")
        body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split"))}).encode()
        started = time.perf_counter()
        status, payload = _request(f"{url}/invocations", body)
        latency = (time.perf_counter() - started) * 1000
        result.update(status=status, latency_ms=round(latency, 1))
        if ping != 200 or status != 200:
            text = payload.decode("utf-8", "replace")[:300]
            return {**result, "detail": f"/ping {ping}, /invocations {status}: {text}"}
        predictions = json.loads(payload).get("predictions")
        count = len(predictions) if isinstance(predictions, list) else 0
        result["n_predictions"] = count
        passed = count == len(rows) and count > 0
        return {
            **result,
            "passed": passed,
            "detail": (
                f"served on {url}: /invocations answered {count} predictions for {len(rows)} "
                f"rows in {latency:.0f} ms"
                if passed
                else f"served on {url} but /invocations returned {count} predictions for {len(rows)} rows"
            ),
        }
    finally:
        server.should_exit = True
        thread.join(timeout=15)
