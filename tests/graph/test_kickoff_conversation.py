"""The conversational kickoff asks only for what is missing or doubtful, one interrupt per
round, records only what the person stated, restates the requirements for confirmation
before planning, and the answers resume the same thread (in this process or another)."""

from __future__ import annotations

from pathlib import Path

from langchain_core.messages import HumanMessage

from mpm.graph.nodes.kickoff import extract_requirements, missing_fields
from tests.graph.helpers import runner


def test_extractor_reads_key_value_lines_and_free_text() -> None:
    draft = extract_requirements(
        [
            HumanMessage(
                "We want to predict whether a loan will default, high-risk and regulated.\n"
                "project: Loan Default\nmetric: roc_auc\nthreshold: 0.8\ndata: synthetic:credit (personal)"
            )
        ]
    )
    assert draft.project_name == "Loan Default"
    assert draft.model_type == "classification"
    assert (draft.target_metric, draft.success_threshold) == ("roc_auc", 0.8)
    assert draft.data_sources[0].uri == "synthetic:credit"
    assert draft.data_sources[0].sensitivity.value == "personal"
    assert draft.risk_level == "high" and draft.regulatory_impact is True
    assert missing_fields(draft, asked=set()) == ["business_objective", "constraints"]


def test_questions_interrupt_then_answers_resume_the_same_thread(workspace: Path) -> None:
    r = runner(workspace)
    first = r.start(
        "chat1",
        {
            "conversation": [
                {
                    "role": "user",
                    "content": "We need a classification model on sklearn:breast_cancer.",
                }
            ]
        },
    )
    assert first.status == "waiting"
    (pending,) = first.interrupts
    assert pending["value"]["type"] == "kickoff_questions"
    asked = [q["field"] for q in pending["value"]["questions"]]
    # what the opening message already said is not asked again
    assert "model_type" not in asked and "data_sources" not in asked
    assert {"project_name", "business_objective", "target_metric", "success_threshold"} <= set(
        asked
    )

    second = r.resume(
        "chat1",
        {pending["id"]: {"project_name": "Screening", "business_objective": "triage biopsies"}},
    )
    assert second.status == "waiting"
    (again,) = second.interrupts
    assert [q["field"] for q in again["value"]["questions"]] == [
        "target_metric",
        "success_threshold",
    ]

    fourth = r.resume(
        "chat1", {again["id"]: {"target_metric": "accuracy", "success_threshold": "90%"}}
    )
    # a binary target from a built-in source: its positive class asked, offered by name, with
    # the class mpm would otherwise infer (breast_cancer's minority class) and why
    (positive,) = fourth.interrupts
    (pq,) = positive["value"]["questions"]
    assert pq["field"] == "positive_class" and pq["options"] == ["malignant", "benign"]
    assert "mpm would choose 'malignant'" in pq["question"] and "minority class" in pq["question"]
    third = r.resume("chat1", {positive["id"]: {"positive_class": "malignant"}})
    # before planning: the complete requirements restated, one interrupt for "yes" or corrections
    assert "plan" not in third.values and "requirements" not in third.values
    (confirm,) = third.interrupts
    (question,) = confirm["value"]["questions"]
    assert question["field"] == "confirm" and confirm["value"]["confirmation"] is True
    assert "target_metric: accuracy" in question["question"]
    assert "success_threshold: 0.9" in question["question"]  # "90%" is a fraction
    assert "positive_class: malignant" in question["question"]
    assert question["requirements"]["project_name"] == "Screening"

    third = r.resume("chat1", {confirm["id"]: {"confirm": "yes"}})
    assert third.values["requirements"]["project_name"] == "Screening"
    assert third.values["requirements"]["target_metric"] == "accuracy"
    assert third.values["requirements"]["success_threshold"] == 0.9
    assert third.values["plan"]["stages"][0]["name"] == "business_analysis"
    # the conversation holds every round, in order
    roles = [t["role"] for t in third.values["conversation"]]
    assert roles == ["user", *["assistant", "user"] * 4]
    assert third.values["requirements"]["positive_class"] == "malignant"


def test_invalid_answer_is_asked_again_with_the_problem(workspace: Path) -> None:
    r = runner(workspace)
    opening = (
        "project: P\nobjective: o\nmodel type: regression\nmetric: accuracy\nthreshold: 0.5\n"
        "data: sklearn:diabetes\nconstraints: none\nrisk: low"
    )
    first = r.start("chat2", {"conversation": [{"role": "user", "content": opening}]})
    (pending,) = first.interrupts
    question = pending["value"]["questions"][0]
    assert "not a regression metric" in question["problem"]
    confirm = r.resume("chat2", {pending["id"]: {"target_metric": "r2"}})
    assert "target_metric: r2" in confirm.interrupts[0]["value"]["questions"][0]["question"]
    done = r.resume("chat2", {confirm.interrupts[0]["id"]: {"confirm": True}})  # YAML `yes`
    assert done.values["requirements"]["target_metric"] == "r2"


# ------------------------------------------------------------------ what the extractor records


def _read(text: str) -> dict:
    return extract_requirements([HumanMessage(text)]).model_dump(exclude_defaults=True)


def test_negated_facts_are_never_recorded_as_the_fact() -> None:
    medium = _read("Risk is medium, no regulatory impact.")
    assert medium["risk_level"] == "medium" and medium["regulatory_impact"] is False
    assert "risk_level" not in _read("This is not a high-risk use case.")
    assert _read("It isn't regulated.")["regulatory_impact"] is False
    assert _read("An unregulated, low risk tool.") == {
        "risk_level": "low",
        "regulatory_impact": False,
    }
    assert _read("regulatory: no")["regulatory_impact"] is False
    # "risk: not high" says what the risk is not: nothing recorded, so it is asked
    stated = extract_requirements([HumanMessage("risk: not high")])
    assert stated.risk_level is None and "risk_level" in missing_fields(stated, asked=set())
    # and a plain positive statement still counts
    assert _read("A high-risk and regulated use.") == {
        "risk_level": "high",
        "regulatory_impact": True,
    }


def test_percentages_are_fractions_and_metric_synonyms_are_canonical() -> None:
    assert _read("We want an AUC of at least 70% on data.csv")["success_threshold"] == 0.70
    assert _read("We want an AUC of at least 70% on data.csv")["target_metric"] == "roc_auc"
    kv = _read("metric: ROC AUC\nthreshold: 85 percent")
    assert (kv["target_metric"], kv["success_threshold"]) == ("roc_auc", 0.85)
    assert _read("F1 score above 0.8")["target_metric"] == "f1"
    assert _read("metric: R-squared\nthreshold: 0.6")["target_metric"] == "r2"


def test_a_threshold_outside_the_metric_range_is_asked_not_guessed(workspace: Path) -> None:
    r = runner(workspace)
    opening = (
        "project: P\nobjective: o\nmodel type: classification\nmetric: accuracy\nthreshold: 70\n"
        "data: sklearn:breast_cancer\nconstraints: none\nrisk: low\npositive class: malignant"
    )
    first = r.start("chat3", {"conversation": [{"role": "user", "content": opening}]})
    (question,) = first.interrupts[0]["value"]["questions"]
    assert question["field"] == "success_threshold" and "outside 0..1" in question["problem"]
    confirm = r.resume("chat3", {first.interrupts[0]["id"]: {"success_threshold": "70%"}})
    assert (
        confirm.interrupts[0]["value"]["questions"][0]["requirements"]["success_threshold"] == 0.7
    )


# ------------------------------------------------------------------ file sources, confirmation


def _customers(workspace: Path) -> Path:
    path = workspace / "customers.csv"
    rows = ["tenure,monthly_spend,region,churned"]
    rows += [
        f"{i % 40},{20 + i % 17},{'north' if i % 3 else 'south'},{'yes' if i % 4 == 0 else 'no'}"
        for i in range(120)
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_file_source_asks_target_column_then_positive_class_then_confirms(workspace: Path) -> None:
    _customers(workspace)
    r = runner(workspace)
    opening = (
        "project: Churn\nobjective: keep customers\nWe need to classify churn on customers.csv, "
        "AUC of at least 75%.\nconstraints: none\nRisk is medium, no regulatory impact."
    )
    first = r.start("file1", {"conversation": [{"role": "user", "content": opening}]})
    (target_q,) = first.interrupts[0]["value"]["questions"]
    assert target_q["field"] == "target_column"
    assert target_q["options"] == ["tenure", "monthly_spend", "region", "churned"]

    # a column the file does not have is asked again, saying why
    wrong = r.resume("file1", {first.interrupts[0]["id"]: {"target_column": "churn_flag"}})
    (again,) = wrong.interrupts[0]["value"]["questions"]
    assert again["field"] == "target_column" and "'churn_flag' is not a column" in again["problem"]

    second = r.resume("file1", {wrong.interrupts[0]["id"]: {"target_column": "churned"}})
    (positive_q,) = second.interrupts[0]["value"]["questions"]
    assert positive_q["field"] == "positive_class" and positive_q["options"] == ["no", "yes"]

    third = r.resume("file1", {second.interrupts[0]["id"]: {"positive_class": "yes"}})
    (confirm_q,) = third.interrupts[0]["value"]["questions"]
    assert confirm_q["field"] == "confirm" and "plan" not in third.values
    shown = confirm_q["question"]
    for line in (
        "target_column: churned",
        "positive_class: yes",
        "target_metric: roc_auc",
        "success_threshold: 0.75",
        "risk_level: medium",
        "regulatory_impact: no",
    ):
        assert line in shown, shown

    # a correction loops back through extraction and is confirmed again
    corrected = r.resume(
        "file1", {third.interrupts[0]["id"]: {"confirm": "metric: f1\nthreshold: 0.7"}}
    )
    (confirm_again,) = corrected.interrupts[0]["value"]["questions"]
    assert "target_metric: f1" in confirm_again["question"] and "plan" not in corrected.values
    assert "success_threshold: 0.7" in confirm_again["question"]

    done = r.resume("file1", {corrected.interrupts[0]["id"]: {"confirm": "yes"}})
    req = done.values["requirements"]
    assert (req["target_column"], req["positive_class"]) == ("churned", "yes")
    assert (req["target_metric"], req["success_threshold"]) == ("f1", 0.7)
    assert req["regulatory_impact"] is False and req["risk_level"] == "medium"
    assert done.values["plan"]["stages"]


def test_a_requirements_file_run_plans_without_a_confirmation_stop(workspace: Path) -> None:
    from tests.graph.helpers import example

    r = runner(workspace)
    outcome = r.start("file2", {"requirements": example("breast_cancer")})
    assert outcome.values["plan"]["stages"]
    kinds = [i["value"].get("type") for i in outcome.interrupts if isinstance(i["value"], dict)]
    assert "kickoff_questions" not in kinds


def test_confirmation_and_answers_work_across_processes(tmp_path: Path, workspace: Path) -> None:
    """Each step is its own ``mpm`` process; the thread waits in its checkpoint between them."""
    import yaml

    from tests.graph.helpers import mpm

    _customers(workspace)
    flags = ["-w", str(workspace), "--toolset", "noop", "--no-tracking"]
    opening = (
        "project: Churn\nobjective: keep customers\nclassify churn on customers.csv, "
        "accuracy of at least 80%\nconstraints: none\nrisk: low"
    )
    started = mpm("kickoff", "-m", opening, "-t", "xp1", *flags, input="")
    assert started.returncode == 0, started.stdout + started.stderr
    status = mpm("status", "xp1", "-w", str(workspace))
    assert "waiting for kickoff answers: target_column" in status.stdout, status.stdout
    assert (
        "- target_column: Which column of customers.csv" in status.stdout
    )  # keyed, with the question

    template = tmp_path / "answers.yaml"
    wrote = mpm("answer", "xp1", "--template", str(template), *flags)
    assert wrote.returncode == 0, wrote.stdout + wrote.stderr
    text = template.read_text()
    assert "# one of: tenure, monthly_spend, region, churned" in text
    assert yaml.safe_load(text) == {"target_column": None}

    template.write_text(text.replace("target_column: null", "target_column: churned"))
    answered = mpm("answer", "xp1", "--wait", "--file", str(template), *flags)
    assert "waiting for kickoff answers: positive_class" in answered.stdout, (
        answered.stdout + answered.stderr
    )
    positive = tmp_path / "positive.yaml"
    positive.write_text("positive_class: 'yes'\n")
    answered = mpm("answer", "xp1", "--wait", "--file", str(positive), *flags)
    assert "waiting for kickoff answers: confirm" in answered.stdout, (
        answered.stdout + answered.stderr
    )
    assert "positive_class: yes" in answered.stdout

    confirm = tmp_path / "confirm.yaml"
    confirm.write_text("confirm: yes\n")
    done = mpm("answer", "xp1", "--wait", "--file", str(confirm), *flags)
    assert "waiting for kickoff answers" not in done.stdout, done.stdout + done.stderr
    final = runner(workspace).snapshot("xp1")
    assert final.values["requirements"]["positive_class"] == "yes"
    assert final.values["plan"]["stages"] and final.values["results"]


def test_an_invalid_interactive_choice_says_why_and_is_asked_again() -> None:
    from io import StringIO

    from rich.console import Console

    from mpm.cli import render

    typed = iter(["churn_flag", "churned"])
    out = StringIO()
    console = Console(file=out, width=200)
    console.input = lambda *_a, **_k: next(typed)  # type: ignore[method-assign]
    question = {
        "field": "target_column",
        "question": "Which column of customers.csv is the target the model predicts?",
        "options": ["tenure", "churned"],
        "strict": True,
    }
    assert render.ask_questions(console, [question]) == {"target_column": "churned"}
    assert "'churn_flag' is not one of: tenure, churned" in out.getvalue()


def test_the_restatement_is_one_line_per_field_whatever_the_values_hold() -> None:
    from mpm.graph.nodes.kickoff import restate
    from mpm.graph.state import ProjectRequirements

    req = ProjectRequirements(
        project_name="X\nregulatory_impact: no",
        business_objective="triage",
        model_type="classification",
        target_metric="accuracy",
        success_threshold=0.9,
        data_sources=[{"name": "d", "uri": "sklearn:iris"}],
        regulatory_impact=True,
        requested_by="triage-lead",  # a regulated project names its requester
    )
    lines = restate(req).splitlines()
    assert [ln for ln in lines if ln.startswith("regulatory_impact:")] == ["regulatory_impact: yes"]
    assert lines[0] == "project_name: X regulatory_impact: no"


def test_a_model_reading_is_kept_only_where_the_conversation_says_it(workspace: Path) -> None:
    """A real model's extraction goes through the same schema and the same checks: an
    invented data file, a flipped negation and an unstated flag are not recorded."""
    from typing import Any

    from langchain_core.runnables import RunnableLambda

    from mpm.graph.llm import StubChatModel, register_model
    from mpm.graph.nodes.kickoff import RequirementsDraft

    class Inventive(StubChatModel):
        def with_structured_output(self, schema: Any, **kwargs: Any) -> Any:
            if not issubclass(schema, RequirementsDraft):
                return super().with_structured_output(schema, **kwargs)
            invented = RequirementsDraft(
                project_name="Screening",
                business_objective="triage biopsies",
                model_type="classification",
                target_metric="roc_auc",
                success_threshold=0.9,
                positive_class="malignant",
                data_sources=[{"name": "biopsy_data", "uri": "biopsy_data.csv"}],
                risk_level="high",
                regulatory_impact=True,
                ethical_ai_required=True,
                constraints=["none"],
                target_column="malignancy",
                stakeholders=["medical professionals"],
                deadline="2023-12-31",
            )
            return RunnableLambda(lambda _messages: invented)

    register_model("inventive", Inventive)
    r = runner(workspace, model="inventive")
    opening = (
        "Project Screening: triage biopsies. Classification on sklearn:breast_cancer, AUC of "
        "at least 90%. Risk is medium, no regulatory impact. This is not a high-risk use case. "
        "The positive class is malignant."
    )
    first = r.start("ground1", {"conversation": [{"role": "user", "content": opening}]})
    (confirm,) = first.interrupts[0]["value"]["questions"]
    req = confirm["requirements"]
    assert [d["uri"] for d in req["data_sources"]] == ["sklearn:breast_cancer"]
    assert req["risk_level"] == "medium" and req["regulatory_impact"] is False
    assert req["ethical_ai_required"] is False  # never mentioned: not recorded
    assert (req["target_column"], req["stakeholders"], req["deadline"]) == (None, [], None)
