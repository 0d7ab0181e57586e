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


def test_demo_runs_a_users_own_requirements_file_on_a_csv(tmp_path: Path) -> None:
    """``mpm demo --requirements FILE``: a requirements file of the user's own, over a CSV in
    the workspace, runs to a registered model the same way, approvers played openly."""
    import yaml
    from sklearn.datasets import load_breast_cancer

    workspace = tmp_path / "ws"
    frame = load_breast_cancer(as_frame=True).frame
    frame["malignant"] = 1 - frame.pop("target")  # scikit-learn's label 0 is malignant
    (workspace / "data").mkdir(parents=True)
    frame.to_csv(workspace / "data" / "biopsies.csv", index=False)
    bundled = yaml.safe_load((REPO / "reference" / "examples" / "breast_cancer.yaml").read_text())
    requirements = {
        "project_name": "Our Own Biopsy Triage",
        "business_objective": "Rank biopsies by the likelihood of malignancy.",
        "model_type": "classification",
        "target_metric": "roc_auc",
        "success_threshold": 0.9,
        "target_column": "malignant",
        "data_sources": [{"name": "biopsies", "uri": "data/biopsies.csv", "sensitivity": "public"}],
        "risk_level": "low",
        "requested_by": "lab-analytics",
        "governance_answers": bundled["governance_answers"],
    }
    req_file = tmp_path / "our_project.yaml"
    req_file.write_text(yaml.safe_dump(requirements), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in MPM_ENV_VARS} | {"COLUMNS": "200"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpm",
            "demo",
            "-r",
            str(req_file),
            "-w",
            str(workspace),
            "-t",
            "own",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    assert f"Our Own Biopsy Triage from {req_file}" in " ".join(output.split())
    assert "thread own: completed" in output
    assert re.search(r"demo approver \S+ \(member of [^)]+\)\s+signs an approval of", output)
    assert "demo only: real approvers sign with their own keys" in output
    values = runner(workspace).snapshot("own").values
    mlops = values["results"]["mlops"]["outputs"]
    assert f"{mlops['model_uri']} loaded from the registry" in output
    assert values["requirements"]["data_sources"][0]["uri"] == "data/biopsies.csv"


def test_demo_refuses_a_bad_requirements_file_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in MPM_ENV_VARS}
    workspace = tmp_path / "ws"
    bad = tmp_path / "bad.yaml"
    bad.write_text("project_name: [unclosed\n", encoding="utf-8")
    for args, expected in (
        (["-r", str(tmp_path / "missing.yaml")], "missing.yaml: cannot read"),
        (["-r", str(bad)], "bad.yaml: YAML syntax error"),
        (
            ["-r", str(bad), "-e", "credit_risk"],
            "--example and --requirements: expected at most one",
        ),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "mpm", "demo", *args, "-w", str(workspace)],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=120,
        )
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
        assert not workspace.exists()
