"""Text from input, made safe to show: control characters become visible escapes.

A project name, a comment or a data value can hold terminal escape sequences
(``\\x1b[31m``, ``\\x1b]0;...\\x07``), a carriage return that overwrites the line, a NUL, or
Unicode bidirectional overrides (``\\u202e``) that make text read differently from what it
is. Shown as they are, they restyle or spoof what a person reads. Every place that shows
input to a person (terminal, reports) passes it through :func:`visible_controls` first;
newlines and tabs stay, so multi-line summaries keep their shape.
"""

from __future__ import annotations

import re

_CONTROLS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible_controls(text: str) -> str:
    """``text`` with every control and bidirectional-formatting character written as
    ``\\xNN`` / ``\\uNNNN`` (newline and tab are kept)."""
    return _CONTROLS.sub(_escaped, text)
