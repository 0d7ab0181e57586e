"""Reading the small YAML configuration files that sit beside the policies.

One place knows where the reference governance directory is and how its configuration
files are read: YAML 1.2 in safe mode (ruamel), so ``Yes`` / ``No`` / ``on`` stay text as
the author wrote them, and no file can construct Python objects. libyaml parses what it
can decide alone (:mod:`mpm.governance.yaml12`); ruamel.yaml the rest, and reports errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "MAX_YAML_BYTES",
    "MAX_YAML_NODES",
    "YAMLBudgetError",
    "load_yaml12",
    "read_yaml_mapping",
    "reference_dir",
    "yaml_budget_problem",
]

MAX_YAML_BYTES = 1_000_000
"""Largest YAML file mpm reads (requirements, answers, policies, configs): 1 MB. The
largest reference policy is about 25 kB."""
MAX_YAML_NODES = 100_000
"""Most YAML nodes a file may hold once its aliases are expanded. Aliases are shared
references when parsed, but everything downstream (validation, JSON in the checkpoint,
the workspace) expands them: a 1 kB "billion laughs" file would become gigabytes."""
_MAX_DEPTH = 200


class _OverBudget(Exception):  # noqa: N818 - internal signal
    pass


def _expanded_size(root: Any, budget: int) -> int:
    """Nodes in the document with every alias expanded; raises _OverBudget past ``budget``.

    Works on PyYAML and ruamel.yaml node graphs alike (an alias is the same node object
    reached twice); memoised per node, so the check itself stays linear in the file."""
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any, depth: int) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        if key in active:
            raise _OverBudget("an alias refers to the node that contains it (recursive YAML)")
        if depth > _MAX_DEPTH:
            raise _OverBudget(f"YAML nested deeper than {_MAX_DEPTH} levels")
        active.add(key)
        total = 1
        value = getattr(node, "value", None)
        if isinstance(value, list):
            for item in value:
                for child in item if isinstance(item, tuple) else (item,):
                    total += size(child, depth + 1)
                    if total > budget:
                        raise _OverBudget(
                            f"aliases expand to more than {budget:,} YAML nodes (alias bomb?)"
                        )
        active.discard(key)
        memo[key] = total
        return total

    return size(root, 0)


def yaml_budget_problem(
    text: str | bytes,
    *,
    ruamel: bool = True,
    max_nodes: int = MAX_YAML_NODES,
    max_bytes: int = MAX_YAML_BYTES,
) -> str | None:
    """Why a YAML text is over mpm's limits (size, expanded aliases, nesting), or None.

    Syntax errors are left to the caller's own loader (None), which reports them with
    its position."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > max_bytes:
        return f"file of {size:,} bytes exceeds the limit of {max_bytes:,} bytes"
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if "&" not in text and "*" not in text:
        return None  # no anchors or aliases: nothing can expand
    try:
        if ruamel:
            from ruamel.yaml import YAML

            root = YAML(typ="safe", pure=True).compose(text)
        else:
            import yaml

            root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        return f"YAML nested deeper than {_MAX_DEPTH} levels"
    except Exception:  # noqa: BLE001 - syntax errors: the real loader reports them
        return None
    if root is None:
        return None
    try:
        _expanded_size(root, max_nodes)
    except _OverBudget as exc:
        return str(exc)
    return None


class YAMLBudgetError(ValueError):
    """A YAML text over mpm's limits; the message says which."""


def load_yaml12(text: str, *, max_bytes: int = MAX_YAML_BYTES) -> Any:
    """The YAML 1.2 safe data of ``text``, within mpm's limits.

    libyaml's parser when it can decide alone (:mod:`mpm.governance.yaml12`), ruamel.yaml
    otherwise. Raises :class:`YAMLBudgetError`, or ruamel's ``YAMLError`` (with the
    position) for text that is not valid YAML."""
    from mpm.governance import yaml12

    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise YAMLBudgetError(f"file of {size:,} bytes exceeds the limit of {max_bytes:,} bytes")
    try:
        return yaml12.load(text)
    except yaml12.OverBudget as exc:
        raise YAMLBudgetError(str(exc)) from None
    except yaml12.FastPathUnavailable:
        pass
    problem = yaml_budget_problem(text, max_bytes=max_bytes)
    if problem is not None:
        raise YAMLBudgetError(problem)
    from ruamel.yaml import YAML

    parser = YAML(typ="safe", pure=True)
    parser.version = (1, 2)
    return parser.load(text)


def reference_dir() -> Path:
    """``reference/governance`` of the installed mpm (the policies, Approvers.md, configs)."""
    import mpm.reference as reference

    return Path(reference.__file__).resolve().parent / "governance"


def read_yaml_mapping(path: Path, error: type[Exception]) -> dict[str, Any]:
    """Parse a YAML file whose top level must be a mapping; failures raise ``error``."""
    from ruamel.yaml.error import YAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = load_yaml12(text)
    except YAMLBudgetError as exc:
        raise error(f"{path.name}: {exc}") from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{path.name}: not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{path.name}: (root): expected a mapping; got {type(data).__name__}")
    return data
