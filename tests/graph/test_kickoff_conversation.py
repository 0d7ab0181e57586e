"""The conversational kickoff asks only for what is missing, one interrupt per round,
and the answers resume the same thread."""

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

    third = r.resume(
        "chat1", {again["id"]: {"target_metric": "accuracy", "success_threshold": "0.9"}}
    )
    assert third.values["requirements"]["project_name"] == "Screening"
    assert third.values["requirements"]["target_metric"] == "accuracy"
    assert third.values["requirements"]["success_threshold"] == 0.9
    assert third.values["plan"]["stages"][0]["name"] == "business_analysis"
    # the conversation holds every round, in order
    roles = [t["role"] for t in third.values["conversation"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]


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
    done = r.resume("chat2", {pending["id"]: {"target_metric": "r2"}})
    assert done.values["requirements"]["target_metric"] == "r2"
