"""``mpm demo``, the README's first command, end to end in its own process: the bundled
example runs to ``completed``, every approval is decided by an authorised role account
through the audited path, the registered model is loaded back and predicts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from mpm.graph import audit
from tests.conftest import MPM_ENV_VARS
from tests.graph.helpers import REPO, runner


def test_demo_runs_the_bundled_example_to_a_registered_model(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    env = {k: v for k, v in os.environ.items() if k not in MPM_ENV_VARS} | {"COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "mpm", "demo", "-w", str(workspace), "-t", "demo"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    assert "thread demo: completed" in output
    approvers = re.findall(
        r"demo approver (\S+) \(member of ([^)]+)\)\s+signs an approval of\s+(\S+)", output
    )
    assert len(approvers) >= 2, output

    values = runner(workspace).snapshot("demo").values
    assert values["status"] == "completed"
    accepted = [e for e in values["audit"] if e["accepted"]]
    # exactly the decisions the demo announced, each by the account it named
    assert sorted((e["approver"], e["approval_id"]) for e in accepted) == sorted(
        (who, approval) for who, _groups, approval in approvers
    )
    assert audit.verify(values["audit"])[0]
    requested_by = values["requirements"]["requested_by"]
    assert all(e["approver"] != requested_by for e in accepted)

    mlops = values["results"]["mlops"]["outputs"]
    uri = mlops["model_uri"]
    # the deployment stage served that model on loopback once its gates opened
    smoke = values["results"]["deployment"]["outputs"]["endpoint_smoke"]
    assert smoke["passed"] and smoke["url"].startswith("http://127.0.0.1:"), smoke
    assert f"{uri} loaded from the registry; predictions on 5 held-out rows" in output
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    versions = client.search_model_versions(f"name='{mlops['registered_model_name']}'")
    assert [int(v.version) for v in versions] == [1]
