"""Text from input, made inert for the Markdown deliverables a person reads.

A project name, a column name, a category value or a constraint can hold raw HTML
(``<img src=x onerror=...>``), Markdown links and images (``[click](javascript:...)``),
table-breaking pipes and line breaks, or terminal escape sequences and bidirectional
overrides that make text read differently from what it is. Every deliverable that puts
input into Markdown (``business_analysis.md``, ``eda_report.md``, ``serving_plan.md``)
passes it through :func:`md` (or :func:`code` inside backticks), the same treatment the
executive summary (Jinja2 autoescape + ``graph/reports.markdown_text``) and the dashboard
give it. This is the lowest layer (``tools/``), so agents and the graph can share it.
"""

from __future__ import annotations

import html
import re
from typing import Any

__all__ = ["code", "md", "tracked_text", "visible_controls"]

_CONTROLS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)
_MARKDOWN = re.compile(r"([\\`*_\[\]()!|#~{}])")


def _escaped(match: re.Match[str]) -> str:
    code_point = ord(match.group())
    return f"\\x{code_point:02x}" if code_point <= 0xFF else f"\\u{code_point:04x}"


def visible_controls(text: str) -> str:
    """``text`` with every control and bidirectional-formatting character written as
    ``\\xNN`` / ``\\uNNNN`` (newline and tab are kept)."""
    return _CONTROLS.sub(_escaped, text)


def md(value: Any) -> str:
    """Input as one line of inert Markdown text: control characters visible, line breaks
    joined, HTML escaped (``<`` -> ``&lt;``), and the characters that make links, images,
    emphasis, code, headings or table cells backslash-escaped."""
    one_line = " ".join(visible_controls(str(value)).splitlines())
    return _MARKDOWN.sub(r"\\\1", html.escape(one_line, quote=False))


def code(value: Any) -> str:
    """Input for inside a Markdown code span: one line, controls visible, no backtick."""
    one_line = " ".join(visible_controls(str(value)).splitlines())
    return one_line.replace("`", "'")


_LINK_AND_HTML = str.maketrans({"<": "&lt;", ">": "&gt;", "[": "\\[", "]": "\\]"})


def tracked_text(value: Any) -> str:
    """A value for an MLflow tag or param: control characters visible, raw HTML and
    Markdown link brackets neutralised; identifiers, URIs and numbers pass unchanged."""
    return visible_controls(str(value)).translate(_LINK_AND_HTML)
