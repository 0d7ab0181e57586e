"""The exceptions the tool functions raise.

An agent shows ``str(error)`` to a model or a person, so every message is one line that
names the file or field at fault and says what was expected.
"""

from __future__ import annotations


class ToolError(Exception):
    """Base class: anything a tool function rejects on purpose."""


class DataError(ToolError, ValueError):
    """The data itself is unusable: missing target, empty or unreadable file, too few rows..."""


class ToolConfigError(ToolError, ValueError):
    """An argument is wrong: unknown metric, model family, model type or URI scheme."""


class TrainingError(ToolError, RuntimeError):
    """No candidate model could be trained."""
