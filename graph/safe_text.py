"""Text from input, made safe to show: control characters become visible escapes.

A project name, a comment or a data value can hold terminal escape sequences
(``\\x1b[31m``, ``\\x1b]0;...\\x07``), a carriage return that overwrites the line, a NUL, or
Unicode bidirectional overrides (``\\u202e``) that make text read differently from what it
is. Shown as they are, they restyle or spoof what a person reads. Every place that shows
input to a person (terminal, reports) passes it through :func:`visible_controls` first;
newlines and tabs stay, so multi-line summaries keep their shape.
"""

from __future__ import annotations

from mpm.tools.inert import visible_controls

__all__ = ["visible_controls"]
