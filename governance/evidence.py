"""The evidence known about one project, in the vocabulary of a policy.

An :class:`EvidenceBundle` is what evaluation reads and what the evidence map produces:
answers to policy questions, model metrics and attached files. It is plain JSON, so the
graph can keep it in its state and a person can read it in a checkpoint.

Answers may be keyed three ways and evaluation accepts all of them:

* the evidence key of the artifact (``Local.rmf-context[2]``, or ``Local.x`` for a
  single-artifact set -- see :mod:`governance.policy`);
* the input's ``aliasForClassification`` (``model-risk``), the stable name mpm's own
  reference policies give every question;
* the evidence-set id with a mapping ``{artifact index | evidence key | alias: value}``,
  the shape of Domino's submit API (``content: {<artifactId>: value}``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EvidenceBundle"]


class EvidenceBundle(BaseModel):
    """Answers, metrics and files for one framework (or shared by several)."""

    model_config = ConfigDict(extra="forbid")

    answers: dict[str, Any] = Field(
        default_factory=dict, description="evidence key, alias or evidence-set id -> answer"
    )
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="metric name as logged -> value (matched case-insensitively)",
    )
    files: dict[str, str] = Field(
        default_factory=dict,
        description="evidence key or file label -> path / URI of the attached file",
    )
    sources: dict[str, str] = Field(
        default_factory=dict,
        description="answer / metric / file key -> where the value came from (a state path, "
        "'constant' or 'human_answers...'), for the audit trail and the dashboard",
    )

    disputed: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="key -> {answer, source}: what a person answered where mpm derived the "
        "value itself; the derived value counts, the disagreement becomes a finding",
    )

    def merged(self, other: EvidenceBundle) -> EvidenceBundle:
        """A new bundle with ``other``'s entries added; ``other`` wins on the same key."""
        return EvidenceBundle(
            answers={**self.answers, **other.answers},
            metrics={**self.metrics, **other.metrics},
            files={**self.files, **other.files},
            sources={**self.sources, **other.sources},
            disputed={**self.disputed, **other.disputed},
        )
