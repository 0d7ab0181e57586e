"""Zero-config onboarding: a directory with one Domino policy and Approvers.md is enough.

Proves the one loader path (``governance.config``) fills in every optional file with its
documented default and says why, that ``frameworks.yaml`` never silently drops a policy,
that metrics are matched through the alias vocabulary, that a deadlocking gate is a load
error, and that ``mpm policies init`` writes files that behave exactly like their absence.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mpm.cli.policies import app
from mpm.governance import GovernanceContext, assess_project
from mpm.governance.config import check_directory, load_directory
from mpm.governance.defaults import (
    DEFAULT_APPLIES_REASON,
    canonical_metric,
    execution_mode,
    match_metric,
)
from tests.conftest import SHARED_POLICIES
from tests.graph.helpers import bind_named_people, signing_identity_dir

SHARED = SHARED_POLICIES
REFERENCE = Path(__file__).resolve().parents[2] / "reference" / "governance"
PUBLIC = sorted(
    [*SHARED.glob("domino-examples/*.yml"), *SHARED.glob("*.yaml")], key=lambda p: p.name
)

assert PUBLIC, f"the public policies are expected at {SHARED}"


def _alone(tmp_path: Path, policy: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir(parents=True)
    shutil.copy(policy, folder / policy.name)
    shutil.copy(REFERENCE / "Approvers.md", folder / "Approvers.md")
    return folder


@pytest.mark.parametrize("policy", PUBLIC, ids=lambda p: p.stem)
def test_each_public_policy_alone_loads_with_stated_defaults(tmp_path: Path, policy: Path) -> None:
    folder = _alone(tmp_path, policy)
    loaded = load_directory(folder)
    (framework,) = loaded.library.frameworks
    notes = {(n.topic, n.framework): n for n in loaded.notes}
    assert notes[("applicability", framework)].text == DEFAULT_APPLIES_REASON
    assert not notes[("applicability", framework)].configured
    assert not notes[("workflow", None)].configured
    aligned = [n for n in loaded.notes if n.topic == "alignment"]
    assert len(aligned) == len(loaded.library.get(framework).policy.stages)
    # never all at kickoff: stages with approvals land on more than the first round
    rounds = loaded.workflow.alignment[framework]
    stages_with_approvals = [
        s.name for s in loaded.library.get(framework).policy.stages if s.approvals
    ]
    if len(stages_with_approvals) > 1:
        assert len({rounds[s] for s in stages_with_approvals}) > 1, rounds
    # and the context a run loads is this one: a person the policy names directly must be
    # bound to a key (else the load refuses, naming them), as their organisation's would be
    named = bind_named_people(folder)
    if named:
        with pytest.raises(ValueError, match="resolves to no group or member"):
            GovernanceContext.load(folder)
    context = GovernanceContext.load(folder, signing_identity_dir())
    report = assess_project(
        {
            "requirements": {
                "project_name": "p",
                "risk_level": "high",
                "model_type": "classification",
            }
        },
        context=context,
    )
    assert report.frameworks == [framework]
    assert report.applicability[0].reason == DEFAULT_APPLIES_REASON
    assert any(c["topic"] == "alignment" for c in report.configuration)


def test_alignment_follows_stage_names(tmp_path: Path) -> None:
    folder = _alone(tmp_path, SHARED / "NIST_AIRMF_100_1.yaml")
    rounds = load_directory(folder).workflow.alignment["nist_airmf_100_1"]
    assert rounds["Build_and_Use_Model"] == "model_development"
    assert rounds["Verify_and_Validate_Model"] == "model_validation"
    assert rounds["Deploy_and_Use"] == "model_validation"  # before registration/deployment
    assert rounds["Operate_and_Monitor"] == "deployment"  # after deployment
    assert rounds["Collect_and_Process_Data"] == "data_acquisition"
    folder2 = _alone(
        tmp_path / "b", SHARED / "domino-examples" / "Example ModelRiskManagementV3.yml"
    )
    mrm = load_directory(folder2).workflow.alignment["model_risk_management"]
    assert mrm["Deployment"] == "model_validation"
    assert mrm["Business Case Development"] == "business_analysis"
    assert mrm["Requirement gathering"] == "model_validation"  # fallback: before first gate


def test_metric_alias_vocabulary() -> None:
    measured = {"test_roc_auc": 0.81, "roc_auc": 0.9, "test_f1": 0.6, "accuracy": 0.7}
    assert match_metric(measured, ["auc"]) == ("test_roc_auc", 0.81)
    assert match_metric(measured, ["AUC-ROC"]) == ("test_roc_auc", 0.81)
    assert match_metric(measured, ["f1_score"]) == ("test_f1", 0.6)
    assert match_metric(measured, ["roc_auc"]) == ("roc_auc", 0.9)  # exact name wins
    assert match_metric(measured, ["rmse"]) is None
    assert canonical_metric("test_brier_score") == "brier"


def test_unmatched_metric_finding_lists_available_names(tmp_path: Path) -> None:
    folder = _alone(tmp_path, SHARED / "domino-examples" / "Example ModelRiskManagementV3.yml")
    context = GovernanceContext.load(folder)
    state = {
        "requirements": {"project_name": "p", "risk_level": "high"},
        "results": {"model_validation": {"metrics": {"test_rmse_made_up": 1.0, "test_kappa": 0.3}}},
    }
    report = assess_project(state, context=context)
    missing = [f for f in report.findings if f.title.startswith("Metric not reported")]
    assert missing, [f.title for f in report.findings]
    assert "available: test_kappa, test_rmse_made_up" in missing[0].description


def test_frameworks_yaml_never_silently_ignores_a_policy(tmp_path: Path) -> None:
    folder = _alone(tmp_path, SHARED / "oil-gas-predictive-model.yaml")
    shutil.copy(SHARED / "NIST_AIRMF_100_1.yaml", folder / "NIST_AIRMF_100_1.yaml")
    (folder / "frameworks.yaml").write_text(
        "frameworks:\n  oil_gas:\n    file: oil-gas-predictive-model.yaml\n    title: Oil & Gas\n"
    )
    check = check_directory(folder)
    assert check.ok, check.errors
    assert set(check.loaded.library.frameworks) == {"oil_gas", "nist_airmf_100_1"}
    assert any("NIST_AIRMF_100_1.yaml: not listed in frameworks.yaml" in w for w in check.warnings)
    (folder / "frameworks.yaml").write_text(
        "frameworks:\n  oil_gas:\n    file: oil-gas-predictive-model.yaml\n"
        "exclude: [NIST_AIRMF_100_1.yaml]\n"
    )
    check = check_directory(folder)
    assert check.loaded.library.frameworks == ["oil_gas"]
    assert not any("not listed" in w for w in check.warnings)


GATED = """
stages:
  - name: Model Validation
    approvals:
      - name: Validation sign-off
        approvers: [modeling-review]
  - name: Post-implementation monitoring
    approvals:
      - name: Monitoring sign-off
        approvers: [modeling-leadership]
gates:
  - name: Serve only when monitored
    rules:
      - action: RegisterModel
    approvals: [Monitoring sign-off]
"""


def test_gate_whose_approval_comes_after_its_step_is_a_load_error(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "serving.yml").write_text(GATED)
    shutil.copy(REFERENCE / "Approvers.md", folder / "Approvers.md")
    check = check_directory(folder)
    assert len(check.errors) == 1, check.errors
    assert "gate 'Serve only when monitored' blocks RegisterModel" in check.errors[0]
    assert (
        "approval 'Monitoring sign-off' can only be requested after deployment" in check.errors[0]
    )
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2
    # fixed by aligning the stage earlier in workflow.yaml
    (folder / "serving.yml").write_text(
        GATED.replace("Serve only when monitored", "G").replace(
            "approvals: [Monitoring sign-off]", "approvals: [Validation sign-off]"
        )
    )
    assert check_directory(folder).ok


def test_validate_runs_the_runs_checks_on_optional_files(tmp_path: Path) -> None:
    folder = _alone(tmp_path, SHARED / "oil-gas-predictive-model.yaml")
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", str(folder)])
    assert ok.exit_code == 0, ok.output
    assert "default: applicability: oil_gas_predictive_model: applies by default" in ok.output
    (folder / "workflow.yaml").write_text("version: 1\nrounds: []\norder: []\n")
    bad = runner.invoke(app, ["validate", str(folder)])
    assert bad.exit_code == 2
    assert "workflow.yaml: rounds" in bad.output
    with pytest.raises(ValueError, match="workflow.yaml"):
        GovernanceContext.load(folder)  # kickoff refuses exactly what validate refused


def test_init_writes_files_that_behave_like_their_absence(tmp_path: Path) -> None:
    folder = _alone(tmp_path, SHARED / "domino-examples" / "Example ModelRiskManagementV3.yml")
    before = load_directory(folder)
    result = CliRunner().invoke(app, ["init", str(folder)])
    assert result.exit_code == 0, result.output
    for name in ("applicability.yaml", "evidence_map.yaml", "workflow.yaml"):
        assert (folder / name).is_file()
        assert f"wrote: {folder / name}" in result.output
    text = (folder / "workflow.yaml").read_text()
    assert "# stage name matched deployment" in text
    after = load_directory(folder)
    assert after.workflow.alignment == before.workflow.alignment
    assert after.workflow.actions == before.workflow.actions
    req = {"requirements": {"project_name": "p", "risk_level": "low"}}
    a = assess_project(req, context=GovernanceContext.load(folder))
    assert a.frameworks == ["model_risk_management"]
    again = CliRunner().invoke(app, ["init", str(folder)])
    assert "kept existing" in again.output


def test_explain_states_the_defaults(tmp_path: Path) -> None:
    folder = _alone(tmp_path, SHARED / "oil-gas-predictive-model.yaml")
    result = CliRunner().invoke(app, ["explain", str(folder / "oil-gas-predictive-model.yaml")])
    assert result.exit_code == 0, result.output
    assert "default: applicability: applies by default: no rule configured" in result.output
    assert "default: alignment: stage 'Model Validation' -> after model_validation" in result.output


def test_execution_mode_defaults_and_overrides() -> None:
    assert execution_mode({"risk_level": "high"})[0] == "step_by_step"
    assert execution_mode({"risk_level": "low", "regulatory_impact": True})[0] == "step_by_step"
    assert execution_mode({"risk_level": "low"})[0] == "automated"
    assert execution_mode({"risk_level": "high"}, "automated")[0] == "automated"
    mode, why = execution_mode({"risk_level": "low", "execution_mode": "step_by_step"}, "automated")
    assert (mode, why) == ("step_by_step", "set in the project requirements (execution_mode)")


DEFECTS = Path(__file__).parent / "onboarding_defects"
EXPECTED = {
    # file -> (severity, "line:column", words of the message)
    "never_match.yml": ("error", "4:59", "\"High\" can never equal an answer of 'BusinessImpact'"),
    "string_vs_number.yml": ("error", "3:46", "mismatched types: a string == a number"),
    "float_on_radio.yml": ("error", "3:8", '["impact"].(float64) on a radio input'),
    "returns_bool.yml": ("error", "2:", "the rule returns a bool"),
    "hidden_forever.yml": ("warning", "18:48", "compares with 'Medium', which the classification"),
    "server_rule.yml": ("warning", "2:9", "'EU-AI-ACT' is a named server-side rule"),
    "gate_after_step.yml": ("error", None, "gate 'Register only when monitored' blocks"),
}


def test_each_load_time_defect_gets_one_precise_line(tmp_path: Path) -> None:
    folder = tmp_path / "defects"
    shutil.copytree(DEFECTS, folder)
    shutil.copy(REFERENCE / "Approvers.md", folder / "Approvers.md")
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 2
    lines = result.output.splitlines()
    for name, (severity, where, words) in EXPECTED.items():
        mine = [ln for ln in lines if ln.startswith(f"{severity}: {name}:") and words in ln]
        assert len(mine) == 1, (name, [ln for ln in lines if name in ln])
        if where is not None:
            assert mine[0].startswith(f"{severity}: {name}:{where}"), mine[0]


def test_gate_error_is_reported_once_the_rules_are_fixed(tmp_path: Path) -> None:
    """Rule errors stop the load first; a gate deadlock alone is one error line too."""
    folder = tmp_path / "gate"
    folder.mkdir()
    shutil.copy(DEFECTS / "gate_after_step.yml", folder / "gate_after_step.yml")
    shutil.copy(REFERENCE / "Approvers.md", folder / "Approvers.md")
    check = check_directory(folder)
    assert len(check.errors) == 1
    assert (
        "approval 'Monitoring sign-off' can only be requested after deployment" in check.errors[0]
    )


def test_dashboard_states_the_defaults(tmp_path: Path) -> None:
    from mpm.governance import render_dashboard

    folder = _alone(tmp_path, SHARED / "oil-gas-predictive-model.yaml")
    report = assess_project(
        {"requirements": {"project_name": "p", "risk_level": "high"}},
        context=GovernanceContext.load(folder),
    )
    html = render_dashboard(report)
    assert "<h2>Configuration" in html
    assert "applies by default: no rule configured" in html
    assert "stage &#39;Model Validation&#39; -&gt; after model_validation" in html


def test_single_file_validate_runs_the_rule_checks_too() -> None:
    result = CliRunner().invoke(app, ["validate", str(DEFECTS / "never_match.yml")])
    assert result.exit_code == 2
    assert "error: never_match.yml:4:59:" in result.output
    assert "0 policies valid, 1 invalid" in result.output
