"""Errors of the classification / visibility rule language."""

from __future__ import annotations


class RuleSyntaxError(ValueError):
    """The rule text is not in the supported Go subset (raised when a policy is loaded).

    ``line`` and ``column`` are 1-based positions inside the rule text itself.
    """

    def __init__(
        self,
        message: str,
        line: int | None = None,
        column: int | None = None,
        *,
        kind: str = "unsupported construct",
    ) -> None:
        self.line = line
        self.column = column
        self.detail = message
        if line is not None and column is not None:
            message = f"{kind} at line {line}, column {column}: {message}"
        super().__init__(message)


class RuleEvaluationError(ValueError):
    """A well-formed rule failed on the given answers (what would be a panic in Go).

    Example: ``classificationInputs["x"].(string)`` when the answer to ``x`` is a list.
    """


class RuleLimitError(RuleEvaluationError):
    """A rule exceeded an evaluation limit (steps, string length, integer size, nesting).

    The limits (``governance/rules/interpreter.py``) keep a hostile or careless rule from
    running for ever or exhausting memory: a classification rule does a handful of
    comparisons, so legitimate rules stay far below them."""
