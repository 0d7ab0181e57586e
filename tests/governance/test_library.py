"""Approvers.md and the policy library (framework ids, unknown approvers, per-file errors)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mpm.governance import ApproverDirectory, PolicyError, PolicyLibrary, PolicyLibraryError
from mpm.governance.approvers import ApproversFileError

EXAMPLE_FILES = {
    "nist_rmf": "Example NIST RMF.yml",
    "model_risk_management": "Example ModelRiskManagementV3.yml",
    "ethical_ai": "Example EthicalAI.yml",
    "model_intake": "Example ModelIntake.yml",
    "external_llm_governance": "Example External LLM Governance Policy.yml",
}

MINIMAL_POLICY = "stages:\n  - name: Review\n    approvals:\n      - name: Sign off\n        approvers: [{approver}]\n"


# ----------------------------------------------------------------------------- Approvers.md


def test_public_approvers_file_parses_groups_by_section(shared_policies: Path) -> None:
    directory = ApproverDirectory.load(shared_policies / "domino-examples" / "Approvers.md")
    assert list(directory.sections) == [
        "Modeling",
        "IT",
        "Information Security",
        "Line of Business",
        "Legal",
        "Marketing",
    ]
    assert directory.sections["Legal"] == ["legal-review", "legal-ledarship"]
    assert len(directory.groups) == 13
    assert directory.known_users == frozenset()
    assert directory.members_of("infosec-review") == frozenset()
    assert directory.groups["modeling-review"].section == "Modeling"
    assert directory.section_descriptions["IT"].startswith(
        "responsible for managing Information infrastructure"
    )
    assert not directory.is_group("model-gov-org")


def test_typo_in_a_group_name_is_flagged(shared_policies: Path) -> None:
    directory = ApproverDirectory.load(shared_policies / "domino-examples" / "Approvers.md")
    assert directory.warnings == [
        "Approvers.md:28: group 'legal-ledarship' looks like a typo of 'legal-leadership' (other "
        "sections use '-leadership'); a policy naming 'legal-leadership' will not match it"
    ]


APPROVERS_WITH_MEMBERS = """\
# Approval Organizations

## Model Governance
Independent model risk.
- model-gov-org
  - member: mrm-officer-1
  - member: `mrm-officer-2`
- `modeling-review`
  - ds-lead-1
  - member: mrm-officer-1

## Legal
- legal-review
  - member: two words here
    - too-deep
- legal-review
  - member: counsel-1
"""


def test_members_are_nested_bullets_and_questions_answer_from_them() -> None:
    directory = ApproverDirectory.parse(APPROVERS_WITH_MEMBERS, source="Approvers.md")
    assert directory.members_of("model-gov-org") == {"mrm-officer-1", "mrm-officer-2"}
    assert directory.members_of("modeling-review") == {"ds-lead-1", "mrm-officer-1"}
    assert directory.members_of("legal-review") == {"counsel-1"}
    assert directory.groups_of("mrm-officer-1") == ["model-gov-org", "modeling-review"]
    assert directory.is_member("ds-lead-1", "modeling-review")
    assert not directory.is_member("ds-lead-1", "model-gov-org")
    assert not directory.is_member("ds-lead-1", "no-such-group")
    assert directory.can_act_as("counsel-1", "legal-review")
    assert directory.can_act_as("andrea_lowe", "andrea_lowe")  # an approver that is a user
    assert not directory.can_act_as("counsel-1", "model-gov-org")
    assert directory.eligible_users(["legal-review", "andrea_lowe"]) == {"counsel-1", "andrea_lowe"}
    assert directory.sections == {
        "Model Governance": ["model-gov-org", "modeling-review"],
        "Legal": ["legal-review"],
    }
    assert directory.section_descriptions == {"Model Governance": "Independent model risk."}
    with pytest.raises(KeyError, match="no approver group 'nobody'"):
        directory.members_of("nobody")


def test_unreadable_bullets_are_warnings_not_guesses() -> None:
    directory = ApproverDirectory.parse(APPROVERS_WITH_MEMBERS, source="Approvers.md")
    assert directory.warnings == [
        "Approvers.md:14: member 'member: two words here' of group 'legal-review' is not a user id; ignored",
        "Approvers.md:15: bullet 'too-deep' is nested too deeply; ignored",
        "Approvers.md:16: group 'legal-review' is listed again (first at line 13); members merged",
    ]


def test_approvers_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "Approvers.md"
    path.write_bytes(b"## Legal\n- l\xe9gal-review\n")
    with pytest.raises(ApproversFileError, match="not UTF-8 text"):
        ApproverDirectory.load(path)


# ----------------------------------------------------------------------------- library


def test_public_example_directory_loads_under_the_seed_framework_ids(shared_policies: Path) -> None:
    library = PolicyLibrary.load(shared_policies / "domino-examples")
    assert sorted(library.frameworks) == sorted(EXAMPLE_FILES)
    for framework, file_name in EXAMPLE_FILES.items():
        assert library.get(framework).source.name == file_name
    assert library.errors == []
    assert len(library.approvers.groups) == 13


def test_unknown_approvers_are_listed_with_policy_stage_and_approval(shared_policies: Path) -> None:
    library = PolicyLibrary.load(shared_policies / "domino-examples")
    unknown = {(u.framework, u.stage, u.approval, u.name) for u in library.unknown_approvers()}
    assert ("model_intake", "Intake", "Intake Review", "model-gov-org") in unknown
    assert ("model_risk_management", None, None, "model-gov-org") in unknown  # top-level approvers
    assert (
        "nist_rmf",
        "Problem Definition and Planning",
        "Problem Definition Sign Off",
        "andrea_lowe",
    ) in unknown
    assert (
        "ethical_ai",
        "Ethical Design and Purpose Assessment",
        "Ethical Design Assessment Sign Off",
        "anthony_huinker",
    ) in unknown
    assert {name for *_, name in unknown} == {"model-gov-org", "andrea_lowe", "anthony_huinker"}
    # groups Approvers.md does define are not flagged
    assert not any(name in ("infosec-review", "legal-review") for *_, name in unknown)
    intake = [u for u in library.unknown_approvers() if u.framework == "model_intake"]
    assert intake[0].path == "stages[0].approvals[0].approvers[0]"


def test_public_example_library_warnings_name_each_problem(shared_policies: Path) -> None:
    library = PolicyLibrary.load(shared_policies / "domino-examples")
    text = "\n".join(library.warnings)
    assert "'legal-ledarship' looks like a typo of 'legal-leadership'" in text
    assert (
        "Example ModelIntake.yml: stages[0].approvals[0].approvers[0], stages[3].approvals[0].approvers[0]: "
        "approver 'model-gov-org' (unknown name) is neither a group in Approvers.md nor a member of one"
    ) in text
    assert "approver 'andrea_lowe' (looks like an individual user id)" in text
    assert "approver 'anthony_huinker' (looks like an individual user id)" in text
    assert len(library.warnings) == 6  # the typo + one line per (policy, unknown approver)
    assert any("rule: unknown key 'rule'" in w for w in library.all_warnings())


def test_frameworks_index_names_files_and_titles(tmp_path: Path, shared_policies: Path) -> None:
    for file_name in ("Example NIST RMF.yml", "Example ModelIntake.yml", "Approvers.md"):
        shutil.copy(shared_policies / "domino-examples" / file_name, tmp_path / file_name)
    (tmp_path / "applicability.yaml").write_text("rules: []\n")  # configuration, not a policy
    (tmp_path / "frameworks.yaml").write_text(
        "frameworks:\n"
        "  rmf:\n    file: Example NIST RMF.yml\n    title: NIST AI RMF\n    owner: mrm\n"
        "  intake:\n    file: Example ModelIntake.yml\n"
    )
    library = PolicyLibrary.load(tmp_path)
    assert sorted(library.frameworks) == ["intake", "rmf"]
    assert library.title("rmf") == "NIST AI RMF"
    assert library.title("intake") == "Example ModelIntake"
    assert library.get("rmf").framework == "rmf"
    assert library.framework_info("rmf") == {
        "file": "Example NIST RMF.yml",
        "title": "NIST AI RMF",
        "owner": "mrm",
    }
    assert "applicability" not in library


def test_index_entry_for_a_missing_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "frameworks.yaml").write_text("frameworks:\n  rmf:\n    file: rmf.yml\n")
    library = PolicyLibrary.load(tmp_path, strict=False)
    assert [str(e) for e in library.errors] == [
        f"{tmp_path / 'frameworks.yaml'}: frameworks.rmf.file: 'rmf.yml' is not a file in {tmp_path}"
    ]


def test_malformed_index_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "frameworks.yaml").write_text("frameworks:\n  rmf:\n    title: no file\n")
    library = PolicyLibrary.load(tmp_path, strict=False)
    assert len(library.errors) == 1
    assert str(library.errors[0]).startswith(
        f"{tmp_path / 'frameworks.yaml'}: frameworks.rmf.file: "
    )


def test_lenient_load_keeps_good_policies_and_records_errors(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(MINIMAL_POLICY.format(approver="legal-review"))
    (tmp_path / "bad.yaml").write_text("stages: nope\n")
    (tmp_path / "Approvers.md").write_text("## Legal\n- legal-review\n  - member: counsel-1\n")
    library = PolicyLibrary.load(tmp_path, strict=False)
    assert library.frameworks == ["good"]
    assert [str(e) for e in library.errors] == [
        f"{tmp_path / 'bad.yaml'}: stages: expected a list; got 'nope'"
    ]
    assert library.unknown_approvers() == []
    assert library.warnings == []


def test_strict_load_raises_one_error_naming_every_failed_file(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(MINIMAL_POLICY.format(approver="legal-review"))
    (tmp_path / "bad.yaml").write_text("stages: nope\n")
    (tmp_path / "worse.yml").write_text("")
    with pytest.raises(PolicyLibraryError) as info:
        PolicyLibrary.load(tmp_path)
    assert isinstance(info.value, PolicyError)
    assert [e.source for e in info.value.errors] == [
        str(tmp_path / "bad.yaml"),
        str(tmp_path / "worse.yml"),
    ]
    assert str(info.value) == (
        f"{tmp_path}: {tmp_path / 'bad.yaml'}: stages: expected a list; got 'nope' (and 1 more problem)"
    )


def test_two_files_with_the_same_framework_id_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "credit risk.yml").write_text(MINIMAL_POLICY.format(approver="a"))
    (tmp_path / "credit-risk.yaml").write_text(MINIMAL_POLICY.format(approver="a"))
    library = PolicyLibrary.load(tmp_path, strict=False)
    assert library.frameworks == ["credit_risk"]
    assert "framework id 'credit_risk' is already used by credit risk.yml" in str(library.errors[0])


def test_missing_approvers_file_is_one_warning_not_one_per_approver(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(MINIMAL_POLICY.format(approver="someone"))
    library = PolicyLibrary.load(tmp_path)
    assert library.warnings == [
        f"{tmp_path / 'Approvers.md'}: no Approvers.md; no approver can be verified"
    ]
    assert [u.name for u in library.unknown_approvers()] == ["someone"]


def test_unknown_approver_close_to_a_group_gets_a_suggestion(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(MINIMAL_POLICY.format(approver="legal-reveiw"))
    (tmp_path / "Approvers.md").write_text("## Legal\n- legal-review\n")
    library = PolicyLibrary.load(tmp_path)
    [unknown] = library.unknown_approvers()
    assert unknown.suggestion == "legal-review"
    assert library.warnings[0].endswith("did you mean 'legal-review'?")


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PolicyLibraryError, match="not a directory"):
        PolicyLibrary.load(tmp_path / "missing")
