"""Hostile content: names, objectives, comments and approver ids carrying HTML/JS, shell
metacharacters, path traversal, rich markup, terminal escapes, bidirectional overrides,
NULs and 10k-character strings. Nothing is executed, nothing escapes the workspace, every
output a person reads shows the text as text. And forged decisions -- for another thread,
another approval, replayed, by a non-member -- are refused and audited."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from mpm.graph import audit
from tests.graph.helpers import approver_for, auto_answer, decision, example, mpm, runner

PWNED = Path("/tmp/mpm-hostile-pwned")
NAME = (
    '<script>alert(1)</script> "><img src=x onerror=alert(1)> '
    f"$(touch {PWNED}); touch {PWNED} ../../etc [bold red]Pwn[/bold red] "
    "\x1b[31mred\u202eevil\x00nul [x](javascript:alert(1))"
)
CONTROLS = ("\x1b", "\u202e", "\x00")
LONG = "<b>" + "A" * 10_000 + "</b>"


class _Tags(HTMLParser):
    """Every element a browser would build from the page, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text.append(data)


def _assert_inert_html(html: str) -> None:
    parser = _Tags()
    parser.feed(html)
    assert not [t for t, _ in parser.tags if t in {"script", "iframe", "object"}], "input markup"
    images = [a.get("src") for t, a in parser.tags if t == "img"]
    assert set(images) <= {"stage_durations.png"}, f"an image from input: {images}"
    for tag, attrs in parser.tags:
        assert not [a for a in attrs if a.startswith("on")], f"event handler on <{tag}>"
        assert "javascript:" not in str(attrs.get("href") or "").lower()
    assert not any(c in html for c in CONTROLS), "a control character reached the page"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> dict[str, Any]:
    """A finished run whose every free-text input is hostile, decided with hostile comments."""
    from tests.reliability.conftest import seed_workspace

    PWNED.unlink(missing_ok=True)
    base = tmp_path_factory.mktemp("hostile")
    ws = seed_workspace(base / "ws", mlflow_template)
    req = example(
        "breast_cancer",
        project_name=NAME,
        business_objective=NAME,
        constraints=[LONG, "$(reboot)"],
        stakeholders=[NAME],
    )
    r = runner(ws, tracking=True)
    outcome = r.start("hostile", {"requirements": req})
    comment = NAME + " " + LONG
    for _ in range(60):
        if not outcome.interrupts:
            break
        value = outcome.interrupts[0]["value"]
        if value["type"] == "open_questions":
            answers = {q["key"]: auto_answer(q) for q in value["questions"]}
            outcome = r.answer("hostile", "open_questions", answers)
            continue
        who = approver_for(value, req["requested_by"])
        outcome = r.answer(
            "hostile",
            "approval",
            decision(value, who, comment=comment),
            key=value["approval_id"],
        )
    assert not outcome.interrupts and outcome.status in {"completed", "partial"}
    return {"ws": ws, "base": base, "values": outcome.values}


def test_nothing_in_the_input_is_executed(hostile: dict[str, Any]) -> None:
    assert not PWNED.exists()
    assert hostile["values"]["requirements"]["project_name"] == NAME, "kept as given"


def test_dashboard_shows_hostile_text_as_text(hostile: dict[str, Any]) -> None:
    html = Path(hostile["values"]["governance"]["files"]["dashboard"]).read_text()
    _assert_inert_html(html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\\u202e" in html and "\\u001b" in html  # visible, not acted on


def test_executive_summary_is_inert_markdown(hostile: dict[str, Any]) -> None:
    from markdown_it import MarkdownIt

    text = Path(hostile["values"]["deliverables"]["files"]["executive_summary.md"]).read_text()
    assert not any(c in text for c in CONTROLS)
    rendered = MarkdownIt("commonmark").render(text)  # raw HTML allowed: the worst case
    _assert_inert_html(rendered)
    assert "<a " not in rendered, "a link was injected through a name or comment"
    # the comment's text is all there (truncated at 2000 characters by the audit), as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered


def test_names_derived_from_input_stay_safe_and_inside_the_workspace(
    hostile: dict[str, Any],
) -> None:
    ws, values = hostile["ws"], hostile["values"]
    # nothing was written next to the workspace (no ../../etc, no file named after input)
    assert sorted(p.name for p in hostile["base"].iterdir()) == ["ws"]
    for path in ws.rglob("*"):
        assert path.resolve().is_relative_to(ws.resolve())
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+", path.name), f"unexpected file name {path.name!r}"
    experiment = values["mlflow"]["experiment"]
    assert re.fullmatch(r"ml_pipeline_[a-z0-9_]{1,64}_[0-9a-f]{8}", experiment)
    registered = values["results"]["mlops"]["outputs"].get("registered_model_name")
    assert registered is None or re.fullmatch(r"pipeline_[a-z0-9_]{1,64}_[0-9a-f]{8}", registered)


def test_long_comments_are_truncated_safely_in_the_audit_trail(hostile: dict[str, Any]) -> None:
    entries = hostile["values"]["audit"]
    assert entries and all(len(e["comment"]) == 2000 for e in entries if e["accepted"])
    assert audit.verify(entries)[0]


def test_terminal_output_escapes_markup_and_control_characters(hostile: dict[str, Any]) -> None:
    for command in (["status", "hostile"], ["runs"], ["audit", "hostile"]):
        run = mpm(*command, "-w", str(hostile["ws"]), env={"COLUMNS": "400"})
        assert run.returncode == 0, run.stderr
        assert "Traceback" not in run.stdout + run.stderr
        assert not any(c in run.stdout for c in CONTROLS), command
        assert "[bold red]Pwn[/bold red]" in run.stdout, command  # printed, not applied
        assert "\\x1b[31mred\\u202eevil\\x00nul" in run.stdout, command


def test_overlong_free_text_is_refused_with_the_limit(tmp_path: Path, workspace: Path) -> None:
    req = tmp_path / "long.yaml"
    req.write_text(yaml.safe_dump(example("breast_cancer", business_objective="x" * 10_000)))
    run = mpm("kickoff", "-r", str(req), "-w", str(workspace), "-t", "long")
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1
    assert "business_objective: String should have at most 5000 characters" in run.stderr
    assert not (workspace / "checkpoints.db").exists()


# --------------------------------------------------------------------------- forged decisions


def test_forged_decisions_are_refused_and_audited(workspace: Path) -> None:
    r = runner(workspace)
    # the requester holds a role account of modeling-review, which the intake triage
    # names: only separation of duties stands between them and approving their own project
    requester = "mr-reviewer-1"
    req = example("breast_cancer", requested_by=requester)
    outcome = r.start("forge", {"requirements": req})
    while outcome.interrupts[0]["value"]["type"] == "open_questions":
        questions = outcome.interrupts[0]["value"]["questions"]
        outcome = r.answer("forge", "open_questions", {q["key"]: auto_answer(q) for q in questions})
    pending = [i["value"] for i in outcome.interrupts]
    assert len(pending) >= 2, "two approvals pending together"
    second = next(p for p in pending if requester in p["eligible_approvers"])
    first = next(p for p in pending if p is not second)
    member = approver_for(first, req["requested_by"])

    def send(target: dict[str, Any], forged: dict[str, Any]) -> Any:
        return r.answer("forge", "approval", forged, key=target["approval_id"])

    # a genuine decision on the first approval: its id is now spent
    genuine = {**decision(first, member), "thread_id": "forge"}
    send(first, genuine)
    member2 = approver_for(second, req["requested_by"])
    forgeries = {
        "another thread": {**decision(second, member2), "thread_id": "some-other-thread"},
        "another approval": {**decision(second, member2), "approval_id": first["approval_id"]},
        "replayed": {**decision(second, member2), "decision_id": genuine["decision_id"]},
        "non-member": decision(second, "intruder-42"),
        "requester": decision(second, req["requested_by"]),
        "unknown verb": {**decision(second, member2), "decision": "approve; rm -rf /"},
        "hostile approver": {**decision(second, member2), "approver": NAME},
        "not an object": "approve",
    }
    reasons = {
        "another thread": "decision is for thread 'some-other-thread', not 'forge'",
        "another approval": f"decision is for approval {first['approval_id']!r}",
        "replayed": "was already used (replayed decision)",
        "non-member": "intruder-42 is not a member of",
        "requester": f"{requester} requested this project and may not approve it (separation of duties)",
        "unknown verb": "expected one of approve, reject, request_changes",
        "hostile approver": "ids may use only a-z, 0-9",
        "not an object": "a decision must be an object",
    }
    for label, forged in forgeries.items():
        after = send(second, forged)
        still = next(
            (
                i["value"]
                for i in after.interrupts
                if i["value"]["approval_id"] == second["approval_id"]
            ),
            None,
        )
        assert still is not None, f"{label}: the forged decision was accepted"
        assert reasons[label] in still["refusals"][-1]["reason"], (label, still["refusals"][-1])
        assert second["approval_id"] not in (after.values.get("approvals") or {}), label
    final = send(second, decision(second, member2, decision_id=uuid.uuid4().hex))
    trail = [e for e in final.values["audit"] if e["approval_id"] == second["approval_id"]]
    assert [e["accepted"] for e in trail] == [False] * len(forgeries) + [True]
    assert all(e["reason"] for e in trail)
    assert audit.verify(final.values["audit"])[0]
    # the refusals are visible to auditors, escaped
    shown = mpm("audit", "forge", "-w", str(workspace), env={"COLUMNS": "400"})
    assert shown.returncode == 0 and shown.stdout.count("REFUSED") == len(forgeries)
    assert not any(c in shown.stdout for c in CONTROLS)


# --------------------------------------------------------------------------- every deliverable


def _assert_inert_markdown(text: str) -> None:
    """Rendered as CommonMark with raw HTML allowed (the worst case): no element, link or
    image from input, no control character."""
    from markdown_it import MarkdownIt

    assert not any(c in text for c in CONTROLS), "a control character reached the file"
    rendered = MarkdownIt("commonmark").render(text)
    parser = _Tags()
    parser.feed(rendered)
    built = {t for t, _ in parser.tags}
    assert not built & {"script", "iframe", "object", "a"}, built
    assert all(a.get("src", "").endswith(".png") for t, a in parser.tags if t == "img")
    for _tag, attrs in parser.tags:
        assert not [a for a in attrs if a.startswith("on")]
    assert "&lt;script&gt;" in rendered or "&lt;img" in rendered  # shown, as text


def test_business_analysis_is_inert_markdown(tmp_path: Path) -> None:
    from mpm.agents.base import StageContext
    from mpm.agents.business_analyst import BusinessAnalystToolkit

    req = example(
        "breast_cancer", project_name=NAME, business_objective=NAME, constraints=[NAME, LONG]
    )
    req["stakeholders"] = [NAME]
    req["data_sources"][0]["name"] = NAME
    kit = BusinessAnalystToolkit(StageContext("business_analysis", tmp_path, tmp_path, req))
    kit.analyse_requirements()
    _assert_inert_markdown((tmp_path / "business_analysis.md").read_text())


def test_eda_report_is_inert_markdown_whatever_the_column_names_and_values(
    tmp_path: Path,
) -> None:
    import pandas as pd

    from mpm.tools.eda import run_eda

    hostile_column = "<img src=x onerror=alert(1)> [x](javascript:alert(1)) \x1b[31m|"
    frame = pd.DataFrame(
        {
            "age": list(range(60)),
            hostile_column: [NAME if i % 2 else "<script>alert(1)</script>" for i in range(60)],
            "target": [i % 2 for i in range(60)],
        }
    )
    data = tmp_path / "train.parquet"
    frame.to_parquet(data)
    result = run_eda(str(data), "target", str(tmp_path / "eda"), model_type="classification")
    _assert_inert_markdown(Path(result["report_path"]).read_text())


def test_serving_plan_is_inert_markdown(tmp_path: Path) -> None:
    from mpm.tools.serving_plan import write_serving_plan

    plan = write_serving_plan(
        str(tmp_path),
        model_info={
            "registered_model_name": NAME,
            "version": "1",
            "model_uri": "models:/x`<script>alert(1)</script>`/1",
            "input_columns": [NAME, "<img src=x onerror=alert(1)>"],
            "output_columns": ["prediction"],
            "pip_requirements": ["scikit-learn"],
        },
        profile={},
        validation={"target_metric": "roc_auc", "test_score": 0.9},
        requirements={"project_name": NAME, "target_metric": "roc_auc", "success_threshold": 0.8},
    )
    _assert_inert_markdown(Path(plan["serving_plan_path"]).read_text())


def test_mlflow_tags_and_params_from_input_are_inert(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from mpm.tools import tracking

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("hostile", artifact_location=str(tmp_path / "a"))
    run_id = client.create_run(experiment).info.run_id
    tracking.set_tags(client, run_id, {"project": NAME})
    tracking.log_params(client, run_id, {"objective": NAME, "uri": "models:/pipeline_x/3"})
    data = client.get_run(run_id).data
    for value in (data.tags["project"], data.params["objective"]):
        assert not any(c in value for c in CONTROLS)
        assert "<script>" not in value and "[x](javascript:" not in value
        assert "\\x1b\\[31mred" in value and "&lt;script&gt;" in value
    assert data.params["uri"] == "models:/pipeline_x/3", "plain values pass unchanged"


def test_mpm_policies_output_shows_escape_sequences_as_text(tmp_path: Path) -> None:
    policy = tmp_path / "hostile.yml"
    name = "Evil \x1b]0;pwned\x07 \x1b[2J [bold red]Pwn[/bold red] \u202eevil"
    policy.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "stages": [
                    {
                        "name": name,
                        "evidenceSet": [
                            {
                                "id": "Local.x",
                                "name": name,
                                "definition": [
                                    {
                                        "artifactType": "input",
                                        "details": {"type": "textinput", "label": name},
                                    }
                                ],
                            }
                        ],
                    }
                ],
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    for command in (
        ["policies", "validate", str(policy)],
        ["policies", "explain", str(policy)],
        ["policies", "list", str(tmp_path)],
    ):
        run = mpm(*command, env={"COLUMNS": "400"})
        out = run.stdout + run.stderr
        assert "Traceback" not in out, command
        assert not any(c in out for c in ("\x1b", "\x07", "\u202e")), command
    explained = mpm("policies", "explain", str(policy), env={"COLUMNS": "400"}).stdout
    assert "\\x1b[2J" in explained and "[bold red]Pwn[/bold red]" in explained
