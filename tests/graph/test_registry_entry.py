"""The registered version is a governed registry entry, on real governed runs: it carries a
description and tags saying what governance knew (thread, status, frameworks, audit chain
head, signed approvals, positive class, success criterion), the alias ``champion`` only
when governance passed, and the parent run links it. Projects whose names slug alike, or
to nothing, never share an experiment or a registered model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mpm.graph import audit
from mpm.tools.naming import experiment_name, registered_model_name
from tests.graph.helpers import drive_to_completion, example, runner

NAMES = {"a": "Tumour Screening (EU)", "b": "tumour screening eu", "c": "🩺🔬"}


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three projects in one workspace and MLflow store: ``a`` and ``b`` slug alike and
    run the real tools to a registered model; ``c`` (emoji, slug empty) is tracked only."""
    ws = tmp_path_factory.mktemp("registry")
    values = {}
    real = runner(ws, toolset="real", tracking=True)
    for thread in ("a", "b"):
        req = example("breast_cancer", project_name=NAMES[thread])
        values[thread] = drive_to_completion(real, real.start(thread, {"requirements": req})).values
    noop = runner(ws, toolset="noop", tracking=True)
    req = example("breast_cancer", project_name=NAMES["c"])
    values["c"] = drive_to_completion(noop, noop.start("c", {"requirements": req})).values
    from mlflow import MlflowClient

    return {"ws": ws, "values": values, "client": MlflowClient(f"sqlite:///{ws / 'mlflow.db'}")}


def test_projects_with_colliding_or_empty_slugs_never_share_experiment_or_model(
    governed: dict[str, Any],
) -> None:
    client, values = governed["client"], governed["values"]
    experiments = {t: v["mlflow"]["experiment"] for t, v in values.items()}
    assert experiments == {t: experiment_name(n) for t, n in NAMES.items()}
    assert len(set(experiments.values())) == 3, experiments
    for thread, name in experiments.items():
        exp = client.get_experiment_by_name(name)
        runs = client.search_runs([exp.experiment_id])
        parents = [r.data.tags.get("mpm.key") for r in runs if r.info.run_name.startswith("master")]
        assert parents == [f"{thread}:parent"], (name, parents)
        threads = {r.data.tags.get("mpm.thread_id") for r in runs} - {None}
        assert threads == {thread}, (name, threads)

    models = {t: values[t]["results"]["mlops"]["outputs"]["registered_model_name"] for t in "ab"}
    assert models == {t: registered_model_name(NAMES[t]) for t in "ab"}
    assert models["a"] != models["b"]
    for thread, model in models.items():
        (version,) = client.search_model_versions(f"name='{model}'")
        assert version.tags["mpm.thread_id"] == thread
        assert version.tags["mpm.project_name"] == NAMES[thread]


def test_registered_version_carries_what_governance_knew(governed: dict[str, Any]) -> None:
    client, values = governed["client"], governed["values"]["a"]
    mlops = values["results"]["mlops"]["outputs"]
    name, version = mlops["registered_model_name"], str(mlops["registered_model_version"])
    mv = client.get_model_version(name, version)
    tags = mv.tags
    governance = values["governance"]
    assert tags["mpm.thread_id"] == "a"
    assert tags["mpm.governance_status"] == governance["overall_status"]
    for title in governance["context"]["frameworks"]:
        assert title in tags["mpm.frameworks"]

    # the approvals that let it in: every approving entry of the audit trail up to the head
    # anchored on the version, each with its signer and signed decision id
    count = int(tags["mpm.audit_head"].split(":")[0])
    granted = [e for e in values["audit"][:count] if e["accepted"] and e["decision"] == "approve"]
    assert granted
    for entry in granted:
        assert governance_state(governance, entry["approval_id"]) == "granted"
        assert f"{entry['approval_id']} signed by {entry['approver']}" in tags["mpm.approvals"]
        assert entry["decision_id"] in tags["mpm.approvals"]
        assert entry["approver"] in tags["mpm.approvers"]
    assert tags["mpm.approval_ids"] == ", ".join(e["approval_id"] for e in granted)

    parent = client.get_run(values["mlflow"]["parent_run_id"])
    # the chain head when it was let in: a prefix of the trail the parent run anchors now
    assert tags["mpm.audit_head"] == audit.head_tag(values["audit"][:count])
    assert count <= int(parent.data.tags["mpm.audit_head"].split(":")[0])
    # breast_cancer's label 1 is benign: the tag says which class the probability is for
    results = values["results"]
    positive = next(
        (
            v
            for v in (
                results["model_development"]["outputs"].get("positive_class"),
                results["model_validation"]["outputs"].get("positive_class"),
                values["requirements"].get("positive_class"),
            )
            if v is not None
        ),
        None,
    )
    assert tags["mpm.positive_class"] == str(positive if positive is not None else 1)
    score = values["results"]["model_validation"]["outputs"]["test_score"]
    assert tags["mpm.success_criteria_met"] == "true"
    assert f"{score:.4g}" in tags["mpm.success_criteria"]
    assert NAMES["a"].replace("(", "\\(").replace(")", "\\)") in mv.description
    assert "Success criterion: test accuracy" in mv.description
    assert f"Governance at the end of the run: {governance['overall_status']}" in mv.description

    # the parent run links the version
    assert parent.data.tags["registered_model_name"] == name
    assert parent.data.tags["registered_model_version"] == version
    assert parent.data.tags["registered_model_uri"] == f"models:/{name}/{version}"

    # champion exactly when the run's final governance passed
    aliases = client.get_registered_model(name).aliases
    if governance["overall_status"] == "PASSED":
        assert str(aliases.get("champion")) == version
        assert tags["mpm.champion"] == "true"
        assert "- Alias `champion`: set (governance passed)" in mv.description
        assert parent.data.tags["registered_model_champion"] == "true"
    else:
        assert "champion" not in aliases
        assert tags["mpm.champion"] == "false"
        assert governance["overall_status"] in tags["mpm.champion_reason"]


def governance_state(governance: dict[str, Any], approval_id: str) -> str | None:
    return next((a["state"] for a in governance["approvals"] if a["id"] == approval_id), None)


def _version(client: Any, name: str) -> str:
    """A registered version on a real MLflow store (the alias rules need no model files)."""
    if not client.search_registered_models(f"name='{name}'"):
        client.create_registered_model(name)
    return str(client.create_model_version(name, source="file:///nowhere", run_id=None).version)


def test_champion_only_when_governance_passed_and_an_earlier_champion_keeps_it(
    tmp_path: Path,
) -> None:
    from mpm.tools import tracking
    from mpm.tools.registry_entry import RegistryFacts, settle_champion, write_registry_entry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = tracking.client(uri)
    name = "pipeline_alias_rules_0000abcd"
    facts = {
        "thread_id": "t",
        "project_name": "Alias Rules",
        "target_metric": "accuracy",
        "success_threshold": 0.9,
        "test_score": 0.95,
        "criteria_met": True,
        "model_type": "classification",
    }
    v1 = _version(c, name)
    passed = write_registry_entry(c, name, v1, RegistryFacts(governance_status="PASSED", **facts))
    assert passed["champion"] and str(c.get_registered_model(name).aliases["champion"]) == v1

    for status, extra in (
        ("REQUIRES_REVIEW", {}),  # approvals still pending
        ("FAILED", {"accepted_risks": ["ethical_ai:x accepted by mrm-head-1"]}),
        ("ERROR", {}),
        ("PASSED", {"criteria_met": False, "test_score": 0.5}),
        ("PASSED", {"accepted_risks": ["success_criteria:accuracy accepted by mrm-head-1"]}),
    ):
        v = _version(c, name)
        entry = write_registry_entry(
            c, name, v, RegistryFacts(governance_status=status, **{**facts, **extra})
        )
        assert not entry["champion"], (status, extra)
        assert c.get_model_version(name, v).tags["mpm.champion"] == "false"
        assert (
            str(c.get_registered_model(name).aliases["champion"]) == v1
        )  # the earlier one keeps it

    # settled again with the final governance: passed -> champion; failed later -> taken back
    last = _version(c, name)
    write_registry_entry(c, name, last, RegistryFacts(governance_status="REQUIRES_REVIEW", **facts))
    settle_champion(uri, name, last, governance_status="PASSED", criteria_met=True)
    assert str(c.get_registered_model(name).aliases["champion"]) == last
    settle_champion(uri, name, last, governance_status="FAILED", criteria_met=True)
    assert "champion" not in c.get_registered_model(name).aliases
    assert c.get_model_version(name, last).tags["mpm.governance_status"] == "FAILED"
