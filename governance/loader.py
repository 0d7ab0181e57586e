"""Read a policy file into a validated :class:`Policy`, or fail with one located line.

Why a loader of its own: policies come from people and from Domino exports, so every
failure (bytes, YAML syntax, schema, cross-references, rule syntax) must come out as
``<file>: <yaml path>: <what was expected; what was found>`` -- the shape of a pydantic
error location, but in the YAML's own spelling (``stages[2].evidenceSet[0]...``).

YAML is read with ruamel.yaml in safe mode, YAML 1.2: ``Yes``/``No``/``On`` stay the
strings they were written as (PyYAML's YAML 1.1 would turn them into booleans), and
duplicate keys are an error instead of a silent overwrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mpm.governance._files import YAMLBudgetError, load_yaml12
from mpm.governance.policy import ARTIFACT_TYPES, EvidenceSet, Policy, PolicyNode

MAX_POLICY_BYTES = 5_000_000

# The framework ids the seed's orchestrator used for the published example files.
KNOWN_FRAMEWORK_FILES: dict[str, str] = {
    "Example NIST RMF.yml": "nist_rmf",
    "Example ModelRiskManagementV3.yml": "model_risk_management",
    "Example EthicalAI.yml": "ethical_ai",
    "Example ModelIntake.yml": "model_intake",
    "Example External LLM Governance Policy.yml": "external_llm_governance",
}

_DISCRIMINATOR_CHOICES: dict[str, tuple[str, ...]] = {
    "artifactType": ARTIFACT_TYPES,
    "type": ("modelmetric", "file"),
}


@dataclass(frozen=True)
class PolicyIssue:
    """One problem (error or warning) at a YAML path inside a policy file."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class PolicyError(ValueError):
    """A policy file cannot be used. ``str(error)`` is one line naming file, path and fix.

    ``issues`` holds every problem found (the message shows the first and a count).
    """

    def __init__(self, source: str | Path, issues: list[PolicyIssue]) -> None:
        self.source = str(source)
        self.issues = issues
        first = issues[0] if issues else PolicyIssue("", "invalid policy")
        more = (
            f" (and {len(issues) - 1} more problem{'s' if len(issues) > 2 else ''})"
            if len(issues) > 1
            else ""
        )
        super().__init__(f"{self.source}: {first}{more}")

    @property
    def path(self) -> str:
        return self.issues[0].path if self.issues else ""


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy with where it came from and what the loader had to say about it."""

    policy: Policy
    source: Path
    framework: str
    warnings: tuple[PolicyIssue, ...] = field(default_factory=tuple)
    title: str = ""

    def __post_init__(self) -> None:
        if not self.title:
            object.__setattr__(self, "title", self.source.stem)


def framework_id_for(path: str | Path) -> str:
    """The default framework id of a policy file: a known seed name, else a stem slug."""
    path = Path(path)
    if path.name in KNOWN_FRAMEWORK_FILES:
        return KNOWN_FRAMEWORK_FILES[path.name]
    stem = re.sub(r"^example[\s_-]+", "", path.stem, flags=re.IGNORECASE)
    slug = re.sub(r"[^0-9a-zA-Z]+", "_", stem).strip("_").lower()
    return slug or "policy"


def load_policy(
    path: str | Path, *, framework: str | None = None, title: str | None = None
) -> LoadedPolicy:
    """Load and validate one policy file. Raises :class:`PolicyError`, nothing else."""
    path = Path(path)
    try:
        if path.is_dir():
            raise PolicyError(
                path, [PolicyIssue("", "is a directory; load a directory with PolicyLibrary.load")]
            )
        if not path.is_file():
            raise PolicyError(path, [PolicyIssue("", "no such file")])
        size = path.stat().st_size
        if size > MAX_POLICY_BYTES:
            raise PolicyError(
                path, [PolicyIssue("", f"file is {size} bytes; the limit is {MAX_POLICY_BYTES}")]
            )
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(
            path, [PolicyIssue("", f"cannot read the file: {exc.strerror or exc}")]
        ) from None
    return parse_policy(
        data,
        source=path,
        framework=framework or framework_id_for(path),
        title=title,
    )


def parse_policy(
    text: str | bytes,
    *,
    source: str | Path = "<policy>",
    framework: str | None = None,
    title: str | None = None,
) -> LoadedPolicy:
    """Validate policy YAML given as text or bytes (what :func:`load_policy` does after reading)."""
    raw = read_yaml(text, source=source)
    policy = validate_policy(raw, source=source)
    source_path = Path(str(source))
    return LoadedPolicy(
        policy=policy,
        source=source_path,
        framework=framework or framework_id_for(source_path),
        warnings=tuple(collect_warnings(policy)),
        title=title or "",
    )


# --------------------------------------------------------------------------- YAML


def read_yaml(text: str | bytes, *, source: str | Path = "<policy>") -> dict[str, Any]:
    """Decode and parse YAML 1.2 safely; return the top-level mapping or raise PolicyError."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            bad = text[exc.start]
            raise PolicyError(
                source,
                [
                    PolicyIssue(
                        "",
                        f"not UTF-8 text: byte 0x{bad:02x} at offset {exc.start}; save the file as UTF-8",
                    )
                ],
            ) from None
    if not text.strip():
        raise PolicyError(
            source, [PolicyIssue("", "the file is empty; a policy needs a 'stages' list")]
        )
    try:
        data = load_yaml12(text, max_bytes=MAX_POLICY_BYTES)
    except YAMLBudgetError as exc:
        raise PolicyError(source, [PolicyIssue("", str(exc))]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise PolicyError(
            source, [PolicyIssue("", f"YAML syntax error{where}: {problem}")]
        ) from None
    except YAMLError as exc:
        first = " ".join(str(exc).split())
        raise PolicyError(source, [PolicyIssue("", f"YAML syntax error: {first}")]) from None
    except RecursionError:
        raise PolicyError(source, [PolicyIssue("", "YAML is nested too deeply")]) from None
    if data is None:
        raise PolicyError(
            source,
            [PolicyIssue("", "the file holds no YAML document; a policy needs a 'stages' list")],
        )
    if not isinstance(data, dict):
        raise PolicyError(
            source,
            [
                PolicyIssue(
                    "",
                    f"top level: expected a mapping with a 'stages' list; got {_show(data)}",
                )
            ],
        )
    return _string_keys(data)


def _string_keys(node: Any) -> Any:
    """YAML allows ``1:`` or ``true:`` as keys; the policy format only has text keys."""
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: _string_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_string_keys(v) for v in node]
    return node


# --------------------------------------------------------------------------- validation


def validate_policy(raw: dict[str, Any], *, source: str | Path = "<policy>") -> Policy:
    """Validate a parsed mapping; pydantic errors become located :class:`PolicyIssue` s."""
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        issues = [_issue_from_error(error, raw) for error in exc.errors(include_url=False)]
        raise PolicyError(source, _dedupe(issues)) from None


def _dedupe(issues: list[PolicyIssue]) -> list[PolicyIssue]:
    seen: dict[tuple[str, str], PolicyIssue] = {}
    for issue in issues:
        seen.setdefault((issue.path, issue.message), issue)
    return list(seen.values())


def yaml_path(loc: tuple[Any, ...], raw: Any) -> str:
    """Turn a pydantic ``loc`` into ``stages[2].evidenceSet[0].definition[1].details.type``.

    Union tags pydantic inserts (``'input'``, ``'modelmetric'``) are dropped by walking
    the raw YAML alongside the location.
    """
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int) and isinstance(node, list):
            parts.append(f"[{item}]")
            node = node[item] if 0 <= item < len(node) else None
        elif isinstance(node, dict) and item in node:
            parts.append(f".{item}")
            node = node[item]
        elif isinstance(node, dict) and item in (node.get("artifactType"), node.get("type")):
            continue  # a discriminated-union tag, not a key
        else:
            parts.append(f"[{item}]" if isinstance(item, int) else f".{item}")
            node = None
    return "".join(parts).lstrip(".")


def _issue_from_error(error: dict[str, Any], raw: Any) -> PolicyIssue:
    ctx = error.get("ctx") or {}
    kind = error["type"]
    loc = tuple(error.get("loc", ()))
    value = error.get("input")
    path = str(ctx["path"]) if "path" in ctx else yaml_path(loc, raw)
    if "at" in ctx:
        path = f"{path}.{ctx['at']}" if path else str(ctx["at"])
    message = _message(kind, ctx, value, loc, error.get("msg", ""))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = _discriminator_key(ctx)
        path = f"{path}.{key}" if path else key
    return PolicyIssue(path, message)


def _message(kind: str, ctx: dict[str, Any], value: Any, loc: tuple[Any, ...], msg: str) -> str:
    got = _show(value)
    if kind == "missing":
        return f"missing required key {loc[-1]!r}" if loc else "missing required key"
    if kind in ("string_type", "string_sub_type"):
        return f"expected text; got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false; got {got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number; got {got}"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return f"expected a number; got {got}"
    if kind == "list_type":
        return f"expected a list; got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping; got {got}"
    if kind == "too_short":
        minimum = ctx.get("min_length", 1)
        return f"expected at least {minimum} item{'s' if minimum != 1 else ''}; got {ctx.get('actual_length', 0)}"
    if kind == "literal_error":
        expected = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", "")))) or ctx.get(
            "expected"
        )
        return f"expected one of {expected}; got {got}"
    if kind == "union_tag_invalid":
        expected = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected_tags", ""))))
        return f"expected one of {expected}; got {ctx.get('tag')!r}"
    if kind == "union_tag_not_found":
        key = _discriminator_key(ctx)
        choices = _DISCRIMINATOR_CHOICES.get(key)
        return f"missing required key {key!r}" + (
            f" (one of {', '.join(choices)})" if choices else ""
        )
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    return msg


def _discriminator_key(ctx: dict[str, Any]) -> str:
    """pydantic names a discriminator "'artifact_type' | 'artifactType'"; the YAML key is last."""
    names = re.findall(r"'([^']*)'", str(ctx.get("discriminator", "")))
    return names[-1] if names else str(ctx.get("discriminator", ""))


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "...'"
    return text if isinstance(value, str) else f"{text} ({type(value).__name__})"


# --------------------------------------------------------------------------- warnings


def collect_warnings(policy: Policy) -> list[PolicyIssue]:
    """Unknown keys (kept, unused) and notes left by validators, each at its YAML path."""
    found: list[PolicyIssue] = []
    _walk(policy, "", found)
    return found


def _join(path: str, sub: str) -> str:
    if not sub:
        return path
    if not path:
        return sub
    return f"{path}{sub}" if sub.startswith("[") else f"{path}.{sub}"


def _walk(node: PolicyNode, path: str, found: list[PolicyIssue]) -> None:
    for key in node.model_extra or {}:
        found.append(PolicyIssue(_join(path, key), f"unknown key {key!r} kept but not used"))
    for at, message in node.notes:
        found.append(PolicyIssue(_join(path, at), message))
    for name, info in type(node).model_fields.items():
        if isinstance(node, EvidenceSet) and name == "definition" and node.is_reference:
            continue  # walked where it is defined
        value = getattr(node, name)
        key = info.alias or name
        if isinstance(value, BaseModel) and isinstance(value, PolicyNode):
            _walk(value, _join(path, key), found)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, PolicyNode):
                    _walk(item, f"{_join(path, key)}[{index}]", found)
