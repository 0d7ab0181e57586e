"""``mpm policies validate | list | explain`` through typer's test runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mpm.cli.policies import app, default_policy_dir

MALFORMED = Path(__file__).parent / "malformed"
WIDE = {"COLUMNS": "220", "NO_COLOR": "1"}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_validate_public_examples_succeeds_and_prints_warnings(
    runner: CliRunner, shared_policies: Path
) -> None:
    result = runner.invoke(app, ["validate", str(shared_policies / "domino-examples")], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "5 policies valid, 0 invalid" in result.stdout
    assert "(model_intake): 4 stages, 4 approvals, 5 warnings" in result.stdout
    intake = shared_policies / "domino-examples" / "Example ModelIntake.yml"
    assert (
        f"warning: {intake}: rule: unknown key 'rule' kept but not used"
        in result.stdout.splitlines()
    )
    assert "looks like a typo of 'legal-leadership'" in result.stdout


def test_validate_files_and_directories_together(runner: CliRunner, shared_policies: Path) -> None:
    result = runner.invoke(
        app,
        [
            "validate",
            str(shared_policies / "NIST_AIRMF_100_1.yaml"),
            str(shared_policies / "oil-gas-predictive-model.yaml"),
        ],
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    assert "2 policies valid, 0 invalid" in result.stdout


def test_validate_reports_each_error_on_one_line_and_exits_2(
    runner: CliRunner, shared_policies: Path
) -> None:
    bad = MALFORMED / "bad_input_type.yml"
    also_bad = MALFORMED / "empty.yml"
    good = shared_policies / "oil-gas-predictive-model.yaml"
    result = runner.invoke(app, ["validate", str(bad), str(good), str(also_bad)], env=WIDE)
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: {bad}: stages[0].evidenceSet[0].definition[0].details.type: expected one of radio, "
        "textinput, textarea, select, multiselect, checkbox, date, numeric; got 'radiobutton'",
        f"error: {also_bad}: the file is empty; a policy needs a 'stages' list",
    ]
    assert "1 policy valid, 2 invalid" in result.stderr
    assert f"ok: {good}" in result.stdout


def test_validate_directory_with_a_broken_policy_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "broken.yml").write_text("stages: []\n")
    result = runner.invoke(app, ["validate", str(tmp_path)], env=WIDE)
    assert result.exit_code == 2
    assert (
        f"error: {tmp_path / 'broken.yml'}: stages: expected at least 1 item; got 0"
        in result.stderr
    )


def test_list_shows_one_row_per_framework(runner: CliRunner, shared_policies: Path) -> None:
    result = runner.invoke(app, ["list", str(shared_policies / "domino-examples")], env=WIDE)
    assert result.exit_code == 0, result.output
    rows = {
        line.split("│")[1].strip(): line
        for line in result.stdout.splitlines()
        if line.startswith("│")
    }
    for framework in (
        "nist_rmf",
        "model_risk_management",
        "ethical_ai",
        "model_intake",
        "external_llm_governance",
    ):
        assert framework in rows
    intake = [cell.strip() for cell in rows["model_intake"].split("│")[1:-1]]
    assert intake == ["model_intake", "Example ModelIntake", "4", "4", "rule", "0", "5"]
    llm = [cell.strip() for cell in rows["external_llm_governance"].split("│")[1:-1]]
    assert llm[4] == "none"
    assert "approver groups: 13 (0 members)" in result.stdout


def test_list_defaults_to_the_packaged_reference_policies(runner: CliRunner) -> None:
    result = runner.invoke(app, ["list"], env=WIDE)
    assert str(default_policy_dir()) in result.stdout.replace("\n", "")
    assert default_policy_dir().parts[-2:] == ("reference", "governance")


def test_explain_shows_stages_approvals_metrics_and_visibility(
    runner: CliRunner, shared_policies: Path
) -> None:
    path = shared_policies / "domino-examples" / "Example ModelRiskManagementV3.yml"
    result = runner.invoke(app, ["explain", str(path)], env=WIDE)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in (
        "framework: model_risk_management",
        "policy approvers: model-gov-org",
        "User Acceptance Testing",
        "Local.model-quality[0]",
        "metadata:modelmetric",
        "Validation sign off",
        "input:date",
        'classificationValue == "High"',
        "evaluate_model.py create --model-hub ${model_hub}",
        "674f04e2191e8f19a5d12552",
        "alias model-risk",
        "Local.business-case-signoff[3]",
    ):
        assert expected in out, expected
    metric_rows = [
        line for line in out.splitlines() if line.startswith("│ Acc ") or line.startswith("│ WAPE ")
    ]
    assert len(metric_rows) == 2
    assert ">= 0.8" in metric_rows[0] and "precision, p-value, acc" in metric_rows[0]
    assert "<= 0.16" in metric_rows[1] and "wape" in metric_rows[1]


def test_explain_shows_the_classification_rule_and_gates(runner: CliRunner, tmp_path: Path) -> None:
    policy = tmp_path / "gated.yml"
    policy.write_text(
        'classification:\n  rule: |\n    if classificationInputs["risk"].(string) == "High" {\n      return "High"\n    }\n'
        '    return "Low"\n  artifacts: [risk]\n'
        "stages:\n  - name: Validation\n    evidenceSet:\n      - id: Local.risk\n        name: Risk\n"
        "        definition:\n          - artifactType: input\n            aliasForClassification: risk\n"
        "            details: {type: radio, label: Risk, options: [High, Low]}\n"
        "    approvals:\n      - name: Validation sign off\n        approvers: [model-gov-org]\n"
        "gates:\n  - name: Prod\n    rules:\n      - action: CreateApp\n        parameters: {hardwareTierId: [large-k8s]}\n"
        "    approvals: [Validation sign off]\n"
    )
    result = runner.invoke(app, ["explain", str(policy)], env=WIDE)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Classification (rule)" in out
    assert 'if classificationInputs["risk"].(string) == "High" {' in out
    assert "alias risk" in out and "Local.risk (Validation): Risk" in out
    gate_rows = [line for line in out.splitlines() if line.startswith("│ Prod ")]
    assert len(gate_rows) == 1
    assert "CreateApp (hardwareTierId: large-k8s)" in gate_rows[0]
    assert "Validation sign off" in gate_rows[0]


def test_explain_of_a_malformed_policy_exits_2_with_the_error(runner: CliRunner) -> None:
    path = MALFORMED / "gate_unknown_approval.yml"
    result = runner.invoke(app, ["explain", str(path)], env=WIDE)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {path}: gates[0].approvals[0]: gate 'Prod' requires approval 'Validation signoff', "
        "which no stage defines (approvals: Validation sign off)"
    )
    assert result.stdout == ""


def test_explain_names_the_plan_stage_each_gate_holds(runner: CliRunner) -> None:
    from mpm.governance._files import reference_dir

    path = reference_dir() / "model_risk_management_v3.yml"
    result = runner.invoke(app, ["explain", str(path)], env=WIDE)
    assert result.exit_code == 0, result.output
    holds = [line for line in result.stdout.splitlines() if line.startswith("gate: ")]
    assert any(
        "RegisterModel holds the mlops stage (register_model) until" in line for line in holds
    ), holds
    assert any(
        "CreateEndpoint holds the deployment stage (deploy_endpoint) until" in line
        and "Model Risk Sign Off" in line
        for line in holds
    ), holds
