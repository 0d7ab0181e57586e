"""The organisation's own reference policies: they load cleanly and are internally consistent."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mpm.governance import PolicyLibrary
from mpm.governance._files import reference_dir
from mpm.governance.policy import InputArtifact, MetadataArtifact, ModelMetricDetails
from mpm.governance.workflow import load_workflow_config

REFERENCE = reference_dir()
FRAMEWORKS = {
    "nist_rmf": "nist_ai_rmf.yml",
    "model_risk_management": "model_risk_management_v3.yml",
    "ethical_ai": "ethical_ai.yml",
    "model_intake": "model_intake.yml",
    "external_llm_governance": "external_llm_governance.yml",
}
GROUPS = {
    "modeling-review",
    "modeling-practitioners",
    "modeling-leadership",
    "it-review",
    "it-leadership",
    "infosec-review",
    "infosec-leadership",
    "legal-review",
    "legal-leadership",
    "lob-leadership",
    "lob-review",
    "marketing-review",
    "marketing-leadership",
    "model-gov-org",
    "model-risk-leadership",  # exception approvers (workflow.yaml): risk acceptances
}


@pytest.fixture(scope="module")
def library() -> PolicyLibrary:
    return PolicyLibrary.load(REFERENCE)


def test_reference_library_loads_all_five_frameworks_without_errors(library: PolicyLibrary) -> None:
    assert set(library.frameworks) == set(FRAMEWORKS)
    assert library.errors == []
    assert library.warnings == []  # every approver is known to Approvers.md
    for framework, file in FRAMEWORKS.items():
        assert library.get(framework).source.name == file


def test_reference_policies_warn_only_about_the_mpm_register_model_action(
    library: PolicyLibrary,
) -> None:
    # RegisterModel is mpm's gate action for model registration; Domino documents only
    # CreateApp / CreateEndpoint, so the loader rightly notes it. Nothing else may warn.
    for loaded in library:
        other = [w for w in loaded.warnings if "'RegisterModel'" not in w.message]
        assert other == [], f"{loaded.source.name}: {other}"


def test_frameworks_index_gives_each_framework_a_title(library: PolicyLibrary) -> None:
    assert library.title("nist_rmf") == "NIST AI Risk Management Framework"
    assert all(library.title(f) for f in FRAMEWORKS)


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_every_policy_gates_registration_or_deployment_on_its_own_approvals(
    library: PolicyLibrary, framework: str
) -> None:
    policy = library.get(framework).policy
    assert policy.gates, "each reference policy needs at least one gate"
    approvals = {a.name for _, a in policy.approvals()}
    actions = {rule.action for gate in policy.gates for rule in gate.rules}
    assert actions & {"RegisterModel", "CreateEndpoint", "CreateApp"}
    for gate in policy.gates:
        assert set(gate.approvals) <= approvals


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_approvals_name_only_groups_defined_in_approvers_md(
    library: PolicyLibrary, framework: str
) -> None:
    policy = library.get(framework).policy
    named = policy.approver_names()
    assert named, "a policy without approvers cannot gate anything"
    assert named <= set(library.approvers.groups), named - set(library.approvers.groups)
    assert not named & library.approvers.known_users, "approvals must name groups, not people"


def test_approvers_md_defines_every_group_with_role_account_members(library: PolicyLibrary) -> None:
    directory = library.approvers
    assert set(directory.groups) == GROUPS
    assert directory.warnings == []
    for group in GROUPS:
        members = directory.members_of(group)
        assert members, f"{group} has no members"
        assert all("-" in m and m[-1].isdigit() for m in members), (
            members
        )  # role accounts like mr-reviewer-1


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_each_policy_asks_several_kinds_of_questions_with_guidance(
    library: PolicyLibrary, framework: str
) -> None:
    policy = library.get(framework).policy
    types = {p.artifact.details.type for p in policy.inputs()}  # type: ignore[union-attr]
    assert len(types) >= 4, types
    assert any(p.artifact.artifact_type == "guidance" for p in policy.artifacts())
    assert len(policy.stages) >= 4


def test_library_covers_every_input_type_mpm_answers(library: PolicyLibrary) -> None:
    types = {p.artifact.details.type for loaded in library for p in loaded.policy.inputs()}  # type: ignore[union-attr]
    assert {"radio", "select", "checkbox", "textarea", "textinput", "numeric", "date"} <= types


@pytest.mark.parametrize("file", sorted(FRAMEWORKS.values()))
def test_yes_no_options_are_quoted_so_yaml_1_1_readers_keep_them_as_text(file: str) -> None:
    """PyYAML (YAML 1.1) turns bare Yes/No into booleans; our files must not depend on YAML 1.2."""
    data = yaml.safe_load((REFERENCE / file).read_text(encoding="utf-8"))

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, bool):
                    raise AssertionError(f"{file}: {path}[{index}] is a YAML boolean; quote it")
                walk(value, f"{path}[{index}]")

    walk(data, "")


def _metrics(library: PolicyLibrary, framework: str) -> dict[str, object]:
    found = {}
    for placed in library.get(framework).policy.artifacts():
        artifact = placed.artifact
        if isinstance(artifact, MetadataArtifact) and isinstance(
            artifact.details, ModelMetricDetails
        ):
            for metric in artifact.details.metrics:
                found[metric.name] = metric
    return found


def test_metric_standards_have_the_documented_thresholds_and_aliases(
    library: PolicyLibrary,
) -> None:
    mrm = _metrics(library, "model_risk_management")
    assert (mrm["roc_auc"].threshold.operator, mrm["roc_auc"].threshold.value) == (">=", 0.7)
    assert {"auc", "test_roc_auc"} <= set(mrm["roc_auc"].aliases)
    assert "acc" in mrm["accuracy"].aliases
    assert mrm["r2"].threshold.operator == ">="
    assert mrm["rmse"].threshold is None  # scale-dependent: shown for review only
    ethical = _metrics(library, "ethical_ai")
    for name in ("demographic_parity_difference", "equalized_odds_difference"):
        assert (ethical[name].threshold.operator, ethical[name].threshold.value) == ("<=", 0.1)
    assert _metrics(library, "external_llm_governance")["exact_match"].threshold.value == 0.6


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (
            {"model-risk": "High", "regulatory-impact": "No", "model-family": "Classification"},
            "Tier 1 classifier",
        ),
        (
            {"model-risk": "Low", "regulatory-impact": "Yes", "model-family": "Classification"},
            "Tier 1 classifier",
        ),
        (
            {"model-risk": "Medium", "regulatory-impact": "No", "model-family": "Regression"},
            "Tier 2 regressor",
        ),
        (
            {
                "model-risk": "Low",
                "regulatory-impact": "No",
                "model-family": "Large language model",
            },
            "Tier 3 language model",
        ),
    ],
)
def test_model_risk_tier_comes_from_model_risk_and_regulatory_impact(
    library: PolicyLibrary, inputs: dict[str, str], expected: str
) -> None:
    assert library.get("model_risk_management").policy.classify(inputs) == expected


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({"handles-personal-data": "Yes", "externally-exposed": "No", "regulated-use": "No"}, "11"),
        ({"handles-personal-data": "No", "externally-exposed": "Yes", "regulated-use": "No"}, "10"),
        ({"handles-personal-data": "No", "externally-exposed": "No", "regulated-use": "Yes"}, "01"),
        ({"handles-personal-data": "No", "externally-exposed": "No", "regulated-use": "No"}, "00"),
    ],
)
def test_model_intake_routing_bitmap(
    library: PolicyLibrary, inputs: dict[str, str], expected: str
) -> None:
    assert library.get("model_intake").policy.classify(inputs) == expected


def test_visibility_rules_read_the_classification(library: PolicyLibrary) -> None:
    mrm = library.get("model_risk_management").policy
    challenger = mrm.evidence_set("Local.mrm-challenger")
    regressor = mrm.evidence_set("Local.mrm-regressor-performance")
    monitoring = mrm.evidence_set("Local.mrm-monitoring")
    assert challenger.is_visible("Tier 1 classifier") and not challenger.is_visible(
        "Tier 2 classifier"
    )
    assert regressor.is_visible("Tier 3 regressor") and not regressor.is_visible(
        "Tier 3 classifier"
    )
    assert monitoring.is_visible("Tier 2 regressor") and not monitoring.is_visible(
        "Tier 3 regressor"
    )
    intake = library.get("model_intake").policy
    assert intake.evidence_set("Local.intake-security-data").is_visible("10")
    assert not intake.evidence_set("Local.intake-legal").is_visible("10")
    nist = library.get("nist_rmf").policy
    assert nist.classify({"model-risk": "Low", "decision-autonomy": "Fully automated"}) == "High"
    assert nist.evidence_set("Local.rmf-impact-assessment").is_visible("High")


def test_every_classification_alias_is_asked_by_an_input(library: PolicyLibrary) -> None:
    for loaded in library:
        policy = loaded.policy
        assert policy.classification is not None and policy.classification.compiled is not None
        assert set(policy.classification.artifacts) <= set(policy.classification_aliases())


def test_register_model_gates_wait_only_for_approvals_asked_before_mlops(
    library: PolicyLibrary,
) -> None:
    """Registration happens in the mlops stage, so its gate cannot wait for an mlops-round approval."""
    config = load_workflow_config()
    for loaded in library:
        alignment = config.alignment[loaded.framework]
        assert set(alignment) == {s.name for s in loaded.policy.stages}, loaded.framework
        for gate in loaded.policy.gates:
            if any(rule.action == "RegisterModel" for rule in gate.rules):
                for name in gate.approvals:
                    stage = loaded.policy.stage_of_approval(name).name
                    assert config.rounds.index(alignment[stage]) < config.rounds.index("mlops"), (
                        name
                    )


def test_every_input_has_a_stable_alias_unique_within_its_policy(library: PolicyLibrary) -> None:
    for loaded in library:
        aliases = [
            p.artifact.alias_for_classification
            for p in loaded.policy.inputs()
            if isinstance(p.artifact, InputArtifact) and p.approval is None
        ]
        assert all(aliases), f"{loaded.framework}: an evidence input lacks aliasForClassification"
        assert len(aliases) == len(set(aliases)), loaded.framework


def test_reference_files_ship_with_the_package() -> None:
    for name in (
        *FRAMEWORKS.values(),
        "Approvers.md",
        "frameworks.yaml",
        "applicability.yaml",
        "workflow.yaml",
        "evidence_map.yaml",
    ):
        assert (Path(REFERENCE) / name).is_file(), name
