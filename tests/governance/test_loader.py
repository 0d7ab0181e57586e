"""Loading real and synthetic Domino policies into the models, with warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpm.governance import LoadedPolicy, PolicyError, load_policy, parse_policy
from mpm.governance.loader import framework_id_for, read_yaml
from mpm.governance.policy import (
    FileDetails,
    GuidanceArtifact,
    InputArtifact,
    MetadataArtifact,
    ModelMetricDetails,
    MonitoringCheckArtifact,
    Policy,
    ScriptedCheckArtifact,
)


def _examples(shared_policies: Path) -> Path:
    return shared_policies / "domino-examples"


def _load(shared_policies: Path, name: str) -> LoadedPolicy:
    return load_policy(_examples(shared_policies) / name)


def _warnings(loaded: LoadedPolicy) -> list[str]:
    return [str(w) for w in loaded.warnings]


def test_every_public_policy_loads(shared_policies: Path) -> None:
    files = sorted(shared_policies.rglob("*.y*ml"))
    assert len(files) == 7
    for path in files:
        loaded = load_policy(path)
        assert loaded.policy.stages, path
        assert loaded.source == path


# ----------------------------------------------------------------------------- MRMv3


def test_mrm_v3_stages_and_approvals(shared_policies: Path) -> None:
    loaded = _load(shared_policies, "Example ModelRiskManagementV3.yml")
    policy = loaded.policy
    assert loaded.framework == "model_risk_management"
    assert [s.name for s in policy.stages] == [
        "Business Case Development",
        "Requirement gathering",
        "Model development",
        "User Acceptance Testing",
        "Validation",
        "Deployment",
    ]
    assert [a.name for a in policy.approvers] == ["model-gov-org"]
    assert [(s.name, a.name) for s, a in policy.approvals()] == [
        ("Business Case Development", "Business Case Sign Off"),
        ("Validation", "Validation sign off"),
    ]
    sign_off = policy.approval("Business Case Sign Off")
    assert sign_off.allow_additional_approvers is True
    assert sign_off.approver_names == ["model-gov-org"]
    # Validation lists approvals before evidenceSet; both are read.
    validation = policy.stage("Validation")
    assert [e.id for e in validation.evidence_set] == [
        "Local.validation_method",
        "Local.model-quality",
    ]
    assert validation.approvals[0].evidence is not None
    assert validation.approvals[0].evidence.id == "Local.validation-approval-body"
    assert loaded.warnings == ()


def test_mrm_v3_metric_thresholds_with_aliases(shared_policies: Path) -> None:
    policy = _load(shared_policies, "Example ModelRiskManagementV3.yml").policy
    metrics = {m.metric.name: m for m in policy.metrics()}
    acc, wape = metrics["Acc"].metric, metrics["WAPE"].metric
    assert acc.label == "Accuracy"
    assert acc.aliases == ["precision", "p-value", "acc"]
    assert acc.threshold is not None and (acc.threshold.operator, acc.threshold.value) == (
        ">=",
        0.8,
    )
    assert wape.aliases == ["wape"]
    assert wape.threshold is not None and (wape.threshold.operator, wape.threshold.value) == (
        "<=",
        0.16,
    )
    assert metrics["Acc"].artifact_key == "Local.model-quality[0]"
    assert metrics["Acc"].stage.name == "Validation"
    assert acc.threshold.passes(0.85) and not acc.threshold.passes(0.79)
    assert wape.threshold.passes(0.16) and not wape.threshold.passes(0.2)


def test_mrm_v3_scripted_check_and_file_upload(shared_policies: Path) -> None:
    policy = _load(shared_policies, "Example ModelRiskManagementV3.yml").policy
    [check] = list(policy.scripted_checks())
    assert check.key == "Local.model-quality[1]"
    details = check.artifact.details
    assert isinstance(check.artifact, ScriptedCheckArtifact)
    assert (
        details.command
        == "evaluate_model.py create --model-hub ${model_hub} --model-name ${model_name}"
    )
    assert [(p.name, p.default) for p in details.parameters] == [
        ("model_hub", "openai"),
        ("model_name", "gpt-4"),
    ]
    assert (
        details.environment_id == "674f04e2191e8f19a5d12552"
    )  # the YAML comment is not part of it
    assert details.hardware_tier_id == "small-k8s"
    assert details.volume_size_gib == 4
    assert details.output_types == ["txt", "png"]
    [upload] = list(policy.file_uploads())
    assert isinstance(upload.artifact.details, FileDetails)
    assert upload.artifact.details.label == "Upload model validation report."
    assert upload.key == "Local.model-quality[2]"


def test_mrm_v3_change_plan_is_visible_only_for_high_risk(shared_policies: Path) -> None:
    policy = _load(shared_policies, "Example ModelRiskManagementV3.yml").policy
    change_plan = policy.evidence_set("Local.change-plan")
    assert change_plan.visibility_rule == 'classificationValue == "High"'
    assert change_plan.is_visible("High") and not change_plan.is_visible("Low")
    assert policy.evidence_set("Local.define-requirement").is_visible("Low")
    # The model-risk alias sits in approval evidence; the rule itself is empty.
    assert policy.classification is not None and policy.classification.kind == "none"
    alias = policy.classification_aliases()["model-risk"]
    assert alias.key == "Local.business-case-signoff[3]"
    assert alias.approval is not None and alias.approval.name == "Business Case Sign Off"
    assert policy.classify({"model-risk": "High"}) is None


def test_mrm_v3_date_and_select_inputs(shared_policies: Path) -> None:
    policy = _load(shared_policies, "Example ModelRiskManagementV3.yml").policy
    sign_off_date = policy.artifact("Local.business-case-signoff[4]")
    assert isinstance(sign_off_date, InputArtifact) and sign_off_date.details.type == "date"
    business_type = policy.artifact("Local.business-case[1]")
    assert isinstance(business_type, InputArtifact)
    assert business_type.details.option_values == [
        "Model development (incl new model)",
        "Model change",
    ]


# ----------------------------------------------------------------------------- ModelIntake


def test_model_intake_yes_stays_the_string_yes(shared_policies: Path) -> None:
    policy = _load(shared_policies, "Example ModelIntake.yml").policy
    legal = policy.artifact("Local.intake-signoff[1]")
    assert isinstance(legal, InputArtifact)
    assert legal.alias_for_classification == "LegalReview"
    assert [(o.label, o.value) for o in legal.details.options or []] == [
        ("Yes", "Yes"),
        ("No", "No"),
    ]
    complete = policy.artifact("Local.intake-signoff[0]")
    assert isinstance(complete, InputArtifact)
    assert complete.details.option_values == ["Yes", "No, Additional Information Required"]
    condition = policy.artifact("Local.security-question1")
    assert (
        isinstance(condition, InputArtifact) and condition.details.conditional_display is not None
    )
    assert condition.details.conditional_display.show_if_value == "Yes"


@pytest.mark.parametrize(
    ("itsec", "legal", "bitmap", "itsec_visible", "legal_visible"),
    [
        ("Yes", "Yes", "11", True, True),
        ("Yes", "No", "10", True, False),
        ("No", "Yes", "01", False, True),
        ("No", "No", "00", False, False),
    ],
)
def test_model_intake_classification_drives_questionnaire_visibility(
    shared_policies: Path,
    itsec: str,
    legal: str,
    bitmap: str,
    itsec_visible: bool,
    legal_visible: bool,
) -> None:
    policy = _load(shared_policies, "Example ModelIntake.yml").policy
    answers = {"Local.intake-signoff[1]": legal, "Local.intake-signoff[2]": itsec}
    inputs = policy.classification_inputs(answers)
    assert inputs == {"LegalReview": legal, "ITSecReview": itsec}
    value = policy.classify(inputs)
    assert value == bitmap
    for set_id in ("Local.security-question1", "Local.security-question2"):
        assert policy.evidence_set(set_id).is_visible(value) is itsec_visible
    for set_id in ("Local.legal-question1", "Local.legal-question2"):
        assert policy.evidence_set(set_id).is_visible(value) is legal_visible
    assert policy.evidence_set("Local.model-purpose").is_visible(value)


def test_model_intake_quirks_are_kept_and_reported(shared_policies: Path) -> None:
    loaded = _load(shared_policies, "Example ModelIntake.yml")
    assert loaded.policy.model_extra == {"rule": {"artifacts": ["model-governance"]}}
    warnings = _warnings(loaded)
    assert "rule: unknown key 'rule' kept but not used" in warnings
    dangling = [w for w in warnings if "dependsOn" in w]
    assert len(dangling) == 4
    assert dangling[0].startswith(
        "stages[1].evidenceSet[0].definition[0].details.conditionalDisplay.dependsOn: 'Local.security-review'"
    )
    assert loaded.policy.classification is not None
    assert loaded.policy.classification.kind == "rule"
    assert [a.name for a in loaded.policy.approval("Intake Review").approvers] == [
        "model-gov-org",
        "infosec-review",
        "legal-review",
    ]


# ----------------------------------------------------------------------------- others


def test_nist_airmf_bare_name_rule_reads_the_implementation_tier(shared_policies: Path) -> None:
    loaded = load_policy(shared_policies / "NIST_AIRMF_100_1.yaml")
    policy = loaded.policy
    assert loaded.framework == "nist_airmf_100_1"
    assert len(policy.stages) == 10
    assert list(policy.approvals()) == []
    assert [a.name for a in policy.approvers] == ["ahmet_gyger"]
    assert policy.classification is not None and policy.classification.kind == "alias"
    tier = policy.classification_aliases()["implementation-tier"]
    assert tier.key == "Local.profile-tier[0]"
    inputs = policy.classification_inputs({"Local.profile-tier[0]": "Advanced"})
    assert policy.classify(inputs) == "Advanced"
    assert policy.classify({}) is None
    taxonomy = policy.artifact("Local.gov-taxonomy[1]")
    assert isinstance(taxonomy, InputArtifact) and taxonomy.details.type == "multiselect"
    first = (taxonomy.details.options or [])[0]
    assert (first.label, first.value) == (
        "GOVERN - Assign Roles, Accountabilities, and Decision Rights",
        "GOV-1",
    )
    assert loaded.warnings == ()


def test_external_llm_has_null_classification_and_partial_stages(shared_policies: Path) -> None:
    loaded = _load(shared_policies, "Example External LLM Governance Policy.yml")
    policy = loaded.policy
    assert policy.classification is None
    assert policy.classify({"anything": "x"}) is None
    assert policy.stage("Generally Available").evidence_set == []
    assert [a.name for a in policy.stage("Generally Available").approvals] == [
        "LLM Governance Approval"
    ]
    assert policy.stage("Intake").approvals == []
    [check] = list(policy.scripted_checks())
    details = check.artifact.details
    assert isinstance(check.artifact, ScriptedCheckArtifact)
    assert details.command is None
    assert details.environment == "Domino Standard Domino Py3.10 R4.4"
    assert details.hardware_tier == "Medium"
    assert details.volume_size_gib == 8
    safety = policy.artifact("Local.safety-checks")
    assert isinstance(safety, InputArtifact) and safety.details.tooltip is not None
    comments = policy.artifact("Local.deployment-readiness[2]")
    assert isinstance(comments, InputArtifact) and comments.details.type == "textinput"
    assert comments.details.placeholder == "Enter any remarks or suggestions here"


def test_oil_gas_thresholds_and_object_approvers(shared_policies: Path) -> None:
    loaded = load_policy(shared_policies / "oil-gas-predictive-model.yaml")
    policy = loaded.policy
    metrics = {m.metric.name: m.metric for m in policy.metrics()}
    rmse, r2 = metrics["rmse"], metrics["r2_score"]
    assert rmse.threshold is not None and (rmse.threshold.operator, rmse.threshold.value) == (
        "<=",
        0.15,
    )
    assert rmse.aliases == ["RMSE", "root_mean_squared_error", "rmse_score"]
    assert r2.threshold is not None and (r2.threshold.operator, r2.threshold.value) == (">=", 0.85)
    assert r2.names == ["r2_score", "r2", "r_squared", "coefficient_of_determination"]
    approval = policy.approval("Model Design Approval")
    assert [(a.name, a.show_by_default, a.editable) for a in approval.approvers] == [
        ("modeling-practitioners", True, False),
        ("modeling-leadership", True, False),
    ]
    assert policy.stages[0].policy_entity_id == "f90cc6c9-11c0-4071-bffa-ed721a2c5740"
    [check] = list(policy.scripted_checks())
    assert check.artifact.details.parameters == []  # type: ignore[union-attr]
    assert policy.classification is None
    assert len(policy.classification_aliases()) > 10  # an alias on every input, none used by a rule


def test_nist_rmf_example_individual_approvers_and_guidance(shared_policies: Path) -> None:
    loaded = _load(shared_policies, "Example NIST RMF.yml")
    policy = loaded.policy
    assert {a for _, ap in policy.approvals() for a in ap.approver_names} == {"andrea_lowe"}
    guidance = policy.artifact("Local.guidance")
    assert isinstance(guidance, GuidanceArtifact)
    assert (
        "[Learn More](https://www.nist.gov/itl/ai-risk-management-framework)"
        in guidance.details.text
    )
    assert guidance.details.type is None
    assert policy.classification is not None and policy.classification.kind == "none"
    assert _warnings(loaded) == [
        "classification.artifacts[0]: alias 'model-risk' is not set by any input's aliasForClassification"
    ]


def test_ethical_ai_checkbox_and_three_way_radio(shared_policies: Path) -> None:
    policy = _load(shared_policies, "Example EthicalAI.yml").policy
    types = {p.artifact.details.type for p in policy.inputs()}  # type: ignore[union-attr]
    assert {"checkbox", "select", "radio", "textarea"} <= types
    design = policy.artifact("Local.ethical-design-signoff")
    assert isinstance(design, InputArtifact)
    assert design.details.option_values == ["Yes", "No", "Requires Modification"]
    assert policy.approver_names() == {"anthony_huinker"}


# ----------------------------------------------------------------------------- synthetic


SYNTHETIC = """
enforceSequentialOrder: true
approvers:
  - name: model-gov-org
    showByDefault: true
    editable: false
classification:
  rule: |
    var tier string
    tier = "Low"
    if classificationInputs["risk"].(string) == "High" {
      tier = "High"
    }
    return tier
  artifacts: [risk]
stages:
  - name: Intake
    evidenceSet:
      - id: Global.shared-purpose
        name: Purpose
        description: shared
        definition:
          - artifactType: input
            aliasForClassification: risk
            required: true
            details:
              type: radio
              label: Risk
              options: [High, Low]
      - id: Local.numbers
        name: Numbers
        definition:
          - artifactType: input
            details: {type: numeric, label: Days in production, min: 0, max: 365}
          - artifactType: input
            details:
              type: date
              label: Sign-off date
              startDate: 20240612
              format: ISO8601
          - artifactType: policyMonitoringCheck
            details:
              name: drift
              alertTypes: [drift, data_quality]
              actions:
                - {type: notification, recipients: [ops]}
                - {type: createFinding, severity: High, owner: mrm}
          - artifactType: metadata
            details:
              type: modelmetric
              metrics:
                - name: auc
                  threshold: {operator: '=>', value: 0.7}
                - name: latency
  - name: Review
    evidenceSet:
      - id: Global.shared-purpose
      - id: Local.extra
        name: Extra
        visibilityRule: classificationValue == "High"
        definition:
          - artifactType: input
            details:
              type: textarea
              label: Why
              unknownDetail: 3
              conditionalDisplay:
                dependsOn: Global.shared-purpose
                showIfValues: [High]
    approvals:
      - name: Validation sign off
        approvers: [modeling-review]
gates:
  - name: Prod
    rules:
      - action: CreateEndpoint
        parameters:
          hardwareTierId: [large-k8s]
    approvals: [Validation sign off]
"""


@pytest.fixture
def synthetic() -> LoadedPolicy:
    return parse_policy(SYNTHETIC, source="synthetic.yml")


def test_id_only_evidence_reference_reuses_the_earlier_definition(synthetic: LoadedPolicy) -> None:
    policy = synthetic.policy
    first, second = policy.stages[0].evidence_set[0], policy.stages[1].evidence_set[0]
    assert second.is_reference and not first.is_reference
    assert second.name == "Purpose"
    assert second.definition is first.definition
    placements = [
        p.stage.name for p in policy.evidence_sets() if p.evidence_set.id == "Global.shared-purpose"
    ]
    assert placements == ["Intake", "Review"]
    # the artifact is listed (and answered) once, under one key
    assert [p.key for p in policy.artifacts()].count("Global.shared-purpose") == 1


def test_evidence_key_convention(synthetic: LoadedPolicy) -> None:
    policy = synthetic.policy
    assert [p.key for p in policy.artifacts()] == [
        "Global.shared-purpose",
        "Local.numbers[0]",
        "Local.numbers[1]",
        "Local.numbers[2]",
        "Local.numbers[3]",
        "Local.extra",
    ]
    assert policy.artifact("Global.shared-purpose[0]") is policy.artifact("Global.shared-purpose")
    assert policy.artifact("Local.numbers[1]").key == "Local.numbers[1]"
    assert policy.artifact("Local.numbers[1]").evidence_set_id == "Local.numbers"
    with pytest.raises(KeyError, match="Local.numbers"):
        policy.artifact("Local.numbers")


def test_synthetic_features_are_read(synthetic: LoadedPolicy) -> None:
    policy = synthetic.policy
    assert policy.enforce_sequential_order is True
    assert policy.approvers[0].show_by_default is True and policy.approvers[0].editable is False
    numeric = policy.artifact("Local.numbers[0]")
    assert isinstance(numeric, InputArtifact) and (numeric.details.min, numeric.details.max) == (
        0,
        365,
    )
    date = policy.artifact("Local.numbers[1]")
    assert isinstance(date, InputArtifact) and date.details.start_date == "20240612"
    risk = policy.artifact("Global.shared-purpose")
    assert isinstance(risk, InputArtifact) and risk.required is True and risk.is_required
    monitoring = policy.artifact("Local.numbers[2]")
    assert isinstance(monitoring, MonitoringCheckArtifact)
    assert monitoring.details.alert_types == ["drift", "data_quality"]
    assert [a.type for a in monitoring.details.actions] == ["notification", "createFinding"]
    assert monitoring.details.actions[1].severity == "High"
    metric = policy.artifact("Local.numbers[3]")
    assert isinstance(metric, MetadataArtifact) and isinstance(metric.details, ModelMetricDetails)
    assert metric.details.metrics[0].threshold is not None
    assert metric.details.metrics[0].threshold.operator == ">="
    assert metric.details.metrics[1].threshold is None
    gate = policy.gate("Prod")
    assert gate.rules[0].action == "CreateEndpoint"
    assert gate.rules[0].parameters == {"hardwareTierId": ["large-k8s"]}
    assert gate.approvals == ["Validation sign off"]
    extra = policy.artifact("Local.extra")
    assert isinstance(extra, InputArtifact) and extra.details.conditional_display is not None
    assert extra.details.conditional_display.shows_for("High")
    assert not extra.details.conditional_display.shows_for("Low")
    assert (
        policy.classify(policy.classification_inputs({"Global.shared-purpose": "High"})) == "High"
    )
    assert policy.evidence_set("Local.extra").is_visible("High")
    assert not policy.evidence_set("Local.extra").is_visible("Low")


def test_reversed_operator_and_unknown_keys_are_warnings_with_paths(
    synthetic: LoadedPolicy,
) -> None:
    assert [str(w) for w in synthetic.warnings] == [
        "stages[0].evidenceSet[1].definition[3].details.metrics[0].threshold.operator: "
        "operator '=>' read as '>='; write '>=' instead",
        "stages[1].evidenceSet[1].definition[0].details.unknownDetail: unknown key 'unknownDetail' kept but not used",
    ]
    extra = synthetic.policy.artifact("Local.extra")
    assert extra.details.model_extra == {"unknownDetail": 3}  # type: ignore[union-attr]


def test_dump_by_alias_round_trips_to_an_equal_policy(synthetic: LoadedPolicy) -> None:
    dumped = synthetic.policy.model_dump(by_alias=True, exclude_none=True)
    assert "evidenceSet" in dumped["stages"][0]
    again = Policy.model_validate(dumped)
    assert [p.key for p in again.artifacts()] == [p.key for p in synthetic.policy.artifacts()]
    assert again.classify({"risk": "High"}) == "High"


def test_yaml_1_2_keeps_yes_no_on_as_strings() -> None:
    data = read_yaml("a: Yes\nb: [No, On, off, y]\nc: {label: Yes, value: Yes}\n")
    assert data == {
        "a": "Yes",
        "b": ["No", "On", "off", "y"],
        "c": {"label": "Yes", "value": "Yes"},
    }


def test_framework_ids_follow_the_seed_names_else_the_file_stem() -> None:
    assert framework_id_for("x/Example NIST RMF.yml") == "nist_rmf"
    assert (
        framework_id_for("Example External LLM Governance Policy.yml") == "external_llm_governance"
    )
    assert framework_id_for("oil-gas-predictive-model.yaml") == "oil_gas_predictive_model"
    assert framework_id_for("Example Credit Scoring.yml") == "credit_scoring"


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path / "nope.yml")
    assert str(info.value) == f"{tmp_path / 'nope.yml'}: no such file"
    assert isinstance(info.value, ValueError)


def test_several_problems_are_counted_on_one_line() -> None:
    text = "stages:\n  - name: A\n    evidenceSet: 3\n  - evidenceSet: []\n"
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="two.yml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("two.yml: stages[0].evidenceSet: expected a list; got 3 (int)")
    assert message.endswith("(and 1 more problem)")
    assert [str(i) for i in info.value.issues][1] == "stages[1].name: missing required key 'name'"


def test_scripted_check_with_empty_details_is_valid() -> None:
    loaded = parse_policy(
        "stages:\n  - name: Checks\n    evidenceSet:\n      - id: Local.checks\n        name: Checks\n"
        "        definition:\n          - artifactType: policyScriptedCheck\n            details: {}\n"
        "          - artifactType: policyScriptedCheck\n            details:\n              name: nightly\n"
        "              parameters:\n              command: run.sh\n",
        source="checks.yml",
    )
    empty, nightly = (p.artifact for p in loaded.policy.scripted_checks())
    assert isinstance(empty, ScriptedCheckArtifact) and empty.details.command is None
    assert empty.details.parameters == [] and empty.label == "policyScriptedCheck"
    assert isinstance(nightly, ScriptedCheckArtifact) and nightly.details.parameters == []
    assert nightly.label == "nightly"
    assert loaded.warnings == ()


def test_loading_a_directory_as_a_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(
        PolicyError, match="is a directory; load a directory with PolicyLibrary.load"
    ):
        load_policy(tmp_path)
