"""serve_and_smoke / write_app_scaffold: the registered model really served on loopback,
and an app scaffold that is valid Python pointing at the registered model."""

from __future__ import annotations

import ast
import socket
from pathlib import Path

from mpm.tools.app_scaffold import write_app_scaffold
from mpm.tools.serving_smoke import serve_and_smoke


def test_registered_model_is_served_on_loopback_and_answers(
    credit, credit_trained, credit_registered, mlflow_store, assert_json
) -> None:
    info = credit_registered["info"]
    columns = credit_trained["result"]["feature_columns"]
    smoke = serve_and_smoke(
        info["model_uri"],
        credit["split"]["test_path"],
        input_columns=columns,
        tracking_uri=mlflow_store["uri"],
        n_rows=4,
    )
    assert_json(smoke)
    assert smoke["passed"], smoke["detail"]
    assert smoke["url"].startswith("http://127.0.0.1:")
    assert smoke["status"] == 200 and smoke["n_predictions"] == 4
    # the server is stopped afterwards: nothing listens on that port any more
    port = int(smoke["url"].rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_a_model_that_cannot_be_served_is_a_finding_not_a_crash(
    credit, credit_trained, mlflow_store
) -> None:
    smoke = serve_and_smoke(
        "models:/no_such_model/1",
        credit["split"]["test_path"],
        input_columns=credit_trained["result"]["feature_columns"],
        tracking_uri=mlflow_store["uri"],
    )
    assert smoke["passed"] is False
    assert smoke["detail"].startswith("cannot load the model for serving")


def test_app_scaffold_is_valid_python_and_inert_for_hostile_names(tmp_path: Path) -> None:
    hostile = 'x"""; import os; os.system("echo pwned") #'
    app = write_app_scaffold(
        str(tmp_path),
        model_uri="models:/credit_pipeline_test/1",
        title=hostile,
        input_columns=["age", hostile],
        example={"age": 41, hostile: "a"},
    )
    source = Path(app["app_path"]).read_text()
    tree = ast.parse(source)
    imported = {
        a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names
    }
    assert imported == {"mlflow", "pandas", "streamlit"}  # the hostile text stayed a literal
    assert "MODEL_URI = 'models:/credit_pipeline_test/1'" in source
    assert app["framework"] == "streamlit" and len(app["sha256"]) == 64


def test_closed_createendpoint_and_createapp_gates_hold_serving_and_the_app(
    tmp_path: Path,
) -> None:
    """The deployment tools check the gate first: held means recorded, nothing served or written."""
    from mpm.agents.base import StageContext
    from mpm.agents.deployment_engineer import DeploymentToolkit

    governance = {
        "gated_actions": ["deploy_app", "deploy_endpoint", "register_model"],
        "open_actions": ["register_model"],
        "closed_gates": {"deploy_endpoint": ["Ready before serving"], "deploy_app": ["App gate"]},
    }
    upstream = {"mlops": {"outputs": {"model_uri": "models:/would_be_served/1"}}}
    kit = DeploymentToolkit(
        StageContext("deployment", tmp_path, tmp_path, {}, upstream, governance=governance)
    )
    served = kit.serve_endpoint()
    app = kit.write_app()
    assert served["held"] and "Ready before serving" in served["summary"]
    assert app["held"] and "App gate" in app["summary"]
    assert kit.outcome.evidence["endpoint_served"] is False
    assert kit.outcome.evidence["app_written"] is False
    assert not list(tmp_path.rglob("app.py")) and "endpoint_smoke" not in kit.outcome.outputs
