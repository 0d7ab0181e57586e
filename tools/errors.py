"""The exceptions the tool functions raise.

An agent shows ``str(error)`` to a model or a person, so every message is one line that
names the file or field at fault and says what was expected.
"""

from __future__ import annotations


class ToolError(Exception):
    """Base class: anything a tool function rejects on purpose."""


class PermanentError(ToolError):
    """An error that cannot change on retry (the same input gives the same answer): the
    stage machinery does not retry a stage that failed on one (``graph/nodes/stage.py``)."""


class DataError(PermanentError, ValueError):
    """The data itself is unusable: missing target, empty or unreadable file, too few rows..."""


class ToolConfigError(PermanentError, ValueError):
    """An argument is wrong: unknown metric, model family, model type or URI scheme."""


class TrainingError(ToolError, RuntimeError):
    """No candidate model could be trained."""
