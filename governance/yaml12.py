"""YAML 1.2 safe loading at libyaml's speed, for the files every command reads.

Policies and their configuration are YAML 1.2 (``Yes``/``on`` stay text, ``1:20`` is a
string, ``0o17`` is an octal int), which mpm has always read with ruamel.yaml in safe,
pure-Python mode. That parse was most of a refused ``mpm approve`` (about half a second for
the reference library on 2 cores). PyYAML's C parser (libyaml, in PyYAML's wheels) scans and
composes ten times faster; what makes a document YAML 1.1 or 1.2 is only the resolver and
the scalar constructors, which are Python and are replaced here with the 1.2 core schema as
ruamel implements it.

:func:`load` is the fast path and nothing more: it raises :class:`FastPathUnavailable` for
anything it does not handle exactly as ruamel does (no libyaml, a syntax error, a duplicate
key, a tag outside the core schema), and the caller then runs its ruamel path, which gives
the same result and the same error messages as before. A test loads every policy and
configuration file in the repository both ways and compares the results.
"""

from __future__ import annotations

import datetime
import functools
import re
from typing import Any

from mpm.governance._files import MAX_YAML_NODES, _expanded_size, _OverBudget

__all__ = ["FastPathUnavailable", "OverBudget", "load"]


class FastPathUnavailable(Exception):  # noqa: N818 - a signal to use the ruamel path
    """This text is for the ruamel path (which reports any error with its position)."""


class OverBudget(ValueError):
    """The document expands beyond mpm's limits (aliases, nesting)."""


@functools.cache
def _loader_class() -> type | None:
    import yaml

    if not getattr(yaml, "__with_libyaml__", False):
        return None
    from yaml.constructor import SafeConstructor
    from yaml.cyaml import CParser
    from yaml.resolver import BaseResolver

    class Resolver12(BaseResolver):
        """The YAML 1.2 core schema's implicit tags, as ruamel.yaml resolves them."""

    for tag, pattern, first in (
        ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
        (
            "float",
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
            |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
            |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            "-+0123456789.",
        ),
        (
            "int",
            r"""^(?:[-+]?0b[0-1_]+
            |[-+]?0o?[0-7_]+
            |[-+]?[0-9_]+
            |[-+]?0x[0-9a-fA-F_]+)$""",
            "-+0123456789",
        ),
        ("merge", r"^(?:<<)$", "<"),
        ("value", r"^(?:=)$", "="),  # ruamel refuses it: the ruamel path reports that
        ("null", r"^(?: ~ |null|Null|NULL | )$", ["~", "n", "N", ""]),
        (
            "timestamp",
            r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
            |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
            (?:[Tt]|[ \t]+)[0-9][0-9]?
            :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
            (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
            "0123456789",
        ),
    ):
        Resolver12.add_implicit_resolver(
            f"tag:yaml.org,2002:{tag}", re.compile(pattern, re.X), list(first)
        )

    class Constructor12(SafeConstructor):
        """SafeConstructor with 1.2 ints and a refusal of duplicate keys (as ruamel)."""

        def construct_yaml_int(self, node: Any) -> int:
            text = str(self.construct_scalar(node)).replace("_", "")
            sign = -1 if text.startswith("-") else 1
            text = text.lstrip("+-")
            for prefix, base in (("0b", 2), ("0x", 16), ("0o", 8)):
                if text.startswith(prefix):
                    return sign * int(text[2:], base)
            return sign * int(text, 10)  # 1.2: a leading 0 is not octal ("017" is 17)

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise FastPathUnavailable("merge keys")
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in seen:
                        raise FastPathUnavailable("duplicate key")
                    seen.add(key)
                except TypeError:
                    raise FastPathUnavailable("unhashable key") from None
            return super().construct_mapping(node, deep=deep)

        def construct_undefined(self, node: Any) -> Any:
            raise FastPathUnavailable(f"tag {node.tag}")

        def construct_yaml_timestamp(self, node: Any) -> Any:
            """A timestamp with a zone is the one scalar the two libraries construct
            differently (ruamel: naive, in UTC; PyYAML: aware): ruamel decides it."""
            value = super().construct_yaml_timestamp(node)
            if isinstance(value, datetime.datetime) and value.tzinfo is not None:
                raise FastPathUnavailable("a timestamp with a time zone")
            return value

    Constructor12.add_constructor("tag:yaml.org,2002:int", Constructor12.construct_yaml_int)
    Constructor12.add_constructor(
        "tag:yaml.org,2002:timestamp", Constructor12.construct_yaml_timestamp
    )
    Constructor12.add_constructor(None, Constructor12.construct_undefined)
    for tag in ("python/", "set", "omap", "pairs", "binary", "value"):
        Constructor12.yaml_constructors.pop(f"tag:yaml.org,2002:{tag}", None)

    class Loader12(CParser, Constructor12, Resolver12):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Constructor12.__init__(self)
            Resolver12.__init__(self)

    return Loader12


def load(text: str, *, max_nodes: int = MAX_YAML_NODES) -> Any:
    """The document in ``text`` as YAML 1.2 safe data (what ruamel's safe loader returns).

    Raises :class:`OverBudget` when aliases or nesting exceed mpm's limits and
    :class:`FastPathUnavailable` when the ruamel path must decide."""
    loader_class = _loader_class()
    if loader_class is None:
        raise FastPathUnavailable("PyYAML was built without libyaml")
    import yaml

    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if "&" in text or "*" in text:
            try:
                _expanded_size(node, max_nodes)
            except _OverBudget as exc:
                raise OverBudget(str(exc)) from None
        data = loader.construct_document(node)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        if isinstance(exc, OverBudget):
            raise
        raise FastPathUnavailable(str(exc)) from None
    finally:
        loader.dispose()
    return data
