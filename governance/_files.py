"""Reading the small YAML configuration files that sit beside the policies.

One place knows where the reference governance directory is and how its configuration
files are read: YAML 1.2 in safe mode (ruamel), so ``Yes`` / ``No`` / ``on`` stay text as
the author wrote them, and no file can construct Python objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["read_yaml_mapping", "reference_dir"]


def reference_dir() -> Path:
    """``reference/governance`` of the installed mpm (the policies, Approvers.md, configs)."""
    import mpm.reference as reference

    return Path(reference.__file__).resolve().parent / "governance"


def read_yaml_mapping(path: Path, error: type[Exception]) -> dict[str, Any]:
    """Parse a YAML file whose top level must be a mapping; failures raise ``error``."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = YAML(typ="safe", pure=True).load(text)
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
