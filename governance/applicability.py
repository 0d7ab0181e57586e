"""Which governance frameworks apply to a project, decided by data, not code.

The rules live in ``reference/governance/applicability.yaml`` beside the policies, so the
people who own governance can change when a framework applies without touching Python.
The condition language is deliberately tiny (``all_of`` / ``any_of`` / ``not``, field tests
``equals`` / ``in`` / ``contains`` / ``is`` / ``exists``, and ``any_item`` over a list) so a
rule file can be read by someone who does not program, and every decision can explain
itself: each :class:`Applicability` carries the field and value that decided it.

Rules key only on **controlled fields** -- values mpm validates against a fixed set
(:data:`CONTROLLED_FIELDS`: model type, risk level, regulatory impact, the explicit
ethical-AI request, the data sources' sensitivity) -- never on free text such as
``project_type``: a rule file loaded for a governance directory (``controlled=True``)
that tests any other field is refused. Its ``always`` list names the frameworks every
model project gets whatever the conditions say (at least intake), so no wording of the
requirements can leave a model with no framework at all.

A rule file that does not follow the format is rejected when it is loaded, with a
pydantic-style location (``applicability.yaml: frameworks.ethical_ai.when.any_of[1].in:
expected a non-empty list of values; got 'pii'``), never half-applied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from mpm.governance._files import read_yaml_mapping, reference_dir

__all__ = [
    "CONTROLLED_FIELDS",
    "Applicability",
    "ApplicabilityRules",
    "ApplicabilityRulesError",
    "FrameworkRule",
    "applicable_frameworks",
    "default_applicability_path",
    "determine_applicability",
    "load_applicability_rules",
]

_FRAMEWORK_ID = re.compile(r"^[a-z][a-z0-9_]*$")
CONTROLLED_FIELDS = frozenset(
    {"model_type", "risk_level", "regulatory_impact", "ethical_ai_required"}
)
"""Top-level requirement fields a controlled rule may test (validated enums / booleans)."""
CONTROLLED_ITEM_FIELDS = {"data_sources": frozenset({"sensitivity"})}
"""List fields a controlled rule may test with ``any_item``, and the item fields it may read."""
_OPERATORS = ("equals", "in", "contains", "is", "exists")
_COMBINATORS = ("all_of", "any_of", "not", "any_item")


class ApplicabilityRulesError(ValueError):
    """The applicability rule file does not follow the format; the message says where."""


class Applicability(BaseModel):
    """Whether one framework applies, and the requirement field and value that decided it."""

    framework: str
    applies: bool
    reason: str
    description: str = ""


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class _Verdict:
    matched: bool
    reason: str


class _Condition(Protocol):
    def check(self, data: Any, prefix: str) -> _Verdict: ...


_MISSING = object()


def _lookup(data: Any, path: str) -> Any:
    """Walk a dotted path through mappings (and integer indexes through lists)."""
    current = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return _MISSING
            current = current[part]
        elif isinstance(current, Sequence) and not isinstance(current, str) and part.isdigit():
            index = int(part)
            if index >= len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
    return current


def _norm(value: Any) -> Any:
    """Text compares case-insensitively; enums compare by their value."""
    value = getattr(value, "value", value)
    return value.casefold() if isinstance(value, str) else value


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    value = getattr(value, "value", value)
    return repr(value)


def _is_empty(value: Any) -> bool:
    return (
        value is _MISSING or value is None or (isinstance(value, str | list | dict) and not value)
    )


@dataclass(frozen=True)
class _FieldTest:
    field: str
    operator: str
    expected: Any

    def check(self, data: Any, prefix: str) -> _Verdict:
        name = prefix + self.field
        actual = _lookup(data, self.field)
        if self.operator == "exists":
            present = not _is_empty(actual)
            state = "is set" if present else "is not set"
            return _Verdict(present == self.expected, f"{name} {state}")
        if actual is _MISSING or actual is None:
            return _Verdict(False, f"{name} is not set")
        shown = _show(actual)
        if self.operator == "is":
            matched = actual is self.expected
            if matched:
                return _Verdict(True, f"{name} is {_show(self.expected)}")
            return _Verdict(False, f"{name} is {shown}, not {_show(self.expected)}")
        if self.operator == "equals":
            matched = _norm(actual) == _norm(self.expected)
            if matched:
                return _Verdict(True, f"{name} is {shown}")
            return _Verdict(False, f"{name} is {shown}, not {_show(self.expected)}")
        if self.operator == "in":
            matched = _norm(actual) in {_norm(v) for v in self.expected}
            choices = ", ".join(str(v) for v in self.expected)
            verb = "is one of" if matched else "is not one of"
            return _Verdict(matched, f"{name} {shown} {verb} [{choices}]")
        # contains: substring of text, or an item of a list
        needle = _norm(self.expected)
        if isinstance(actual, str):
            matched = isinstance(needle, str) and needle in actual.casefold()
        elif isinstance(actual, Sequence):
            matched = needle in {_norm(v) for v in actual}
        else:
            matched = False
        verb = "contains" if matched else "does not contain"
        return _Verdict(matched, f"{name} {shown} {verb} {_show(self.expected)}")


@dataclass(frozen=True)
class _AllOf:
    conditions: tuple[_Condition, ...]

    def check(self, data: Any, prefix: str) -> _Verdict:
        reasons = []
        for condition in self.conditions:
            verdict = condition.check(data, prefix)
            if not verdict.matched:
                return verdict
            reasons.append(verdict.reason)
        return _Verdict(True, " and ".join(reasons))


@dataclass(frozen=True)
class _AnyOf:
    conditions: tuple[_Condition, ...]

    def check(self, data: Any, prefix: str) -> _Verdict:
        reasons = []
        for condition in self.conditions:
            verdict = condition.check(data, prefix)
            if verdict.matched:
                return verdict
            reasons.append(verdict.reason)
        return _Verdict(False, "; ".join(reasons))


@dataclass(frozen=True)
class _Not:
    condition: _Condition

    def check(self, data: Any, prefix: str) -> _Verdict:
        verdict = self.condition.check(data, prefix)
        return _Verdict(not verdict.matched, verdict.reason)


@dataclass(frozen=True)
class _AnyItem:
    field: str
    where: _Condition

    def check(self, data: Any, prefix: str) -> _Verdict:
        name = prefix + self.field
        items = _lookup(data, self.field)
        if items is _MISSING or items is None:
            return _Verdict(False, f"{name} is not set")
        if isinstance(items, str) or not isinstance(items, Sequence):
            return _Verdict(False, f"{name} is not a list")
        if not items:
            return _Verdict(False, f"{name} is empty")
        misses = []
        for index, item in enumerate(items):
            verdict = self.where.check(item, f"{name}[{index}].")
            if verdict.matched:
                return verdict
            misses.append(verdict.reason)
        return _Verdict(False, "no item matches: " + "; ".join(misses))


# --------------------------------------------------------------------------- parsing


def _fail(source: str, loc: str, message: str) -> ApplicabilityRulesError:
    return ApplicabilityRulesError(f"{source}: {loc}: {message}")


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _check_controlled(field: str, allowed: frozenset[str] | None, loc: str, source: str) -> None:
    if allowed is not None and field not in allowed:
        raise _fail(
            source,
            loc,
            f"{field!r} is not a controlled field; applicability may key only on "
            f"{', '.join(sorted(allowed))}",
        )


_TOP = object()


def _parse_condition(node: Any, loc: str, source: str, allowed: Any = None) -> _Condition:
    if not isinstance(node, Mapping):
        raise _fail(source, loc, f"expected a condition mapping; got {node!r}")
    keys = set(node)
    combinators = keys & set(_COMBINATORS)
    if "field" in keys and not combinators:
        test = _parse_field_test(node, loc, source)
        fields = (
            CONTROLLED_FIELDS if allowed is _TOP else allowed
        )  # None: uncontrolled (tests of the engine)
        _check_controlled(test.field, fields, f"{loc}.field", source)
        return test
    if len(combinators) != 1 or keys - combinators:
        raise _fail(
            source,
            loc,
            "expected exactly one of all_of, any_of, not, any_item, or 'field' with one of "
            f"{', '.join(_OPERATORS)}; got keys {sorted(map(str, keys))}",
        )
    (kind,) = combinators
    value = node[kind]
    if kind in ("all_of", "any_of"):
        if not isinstance(value, list) or not value:
            raise _fail(
                source, f"{loc}.{kind}", f"expected a non-empty list of conditions; got {value!r}"
            )
        parsed = tuple(
            _parse_condition(c, f"{loc}.{kind}[{i}]", source, allowed) for i, c in enumerate(value)
        )
        return _AllOf(parsed) if kind == "all_of" else _AnyOf(parsed)
    if kind == "not":
        return _Not(_parse_condition(value, f"{loc}.not", source, allowed))
    # any_item
    if not isinstance(value, Mapping) or set(value) != {"field", "where"}:
        raise _fail(
            source, f"{loc}.any_item", f"expected a mapping with 'field' and 'where'; got {value!r}"
        )
    field = value["field"]
    if not isinstance(field, str) or not field.strip():
        raise _fail(source, f"{loc}.any_item.field", f"expected a field path; got {field!r}")
    inner = None
    if allowed is not None:
        if allowed is not _TOP or field not in CONTROLLED_ITEM_FIELDS:
            names = ", ".join(sorted(CONTROLLED_ITEM_FIELDS))
            raise _fail(
                source,
                f"{loc}.any_item.field",
                f"{field!r} is not a controlled list field; any_item may read only {names}",
            )
        inner = CONTROLLED_ITEM_FIELDS[field]
    return _AnyItem(field, _parse_condition(value["where"], f"{loc}.any_item.where", source, inner))


def _parse_field_test(node: Mapping[str, Any], loc: str, source: str) -> _FieldTest:
    field = node["field"]
    if not isinstance(field, str) or not field.strip() or any(not p for p in field.split(".")):
        raise _fail(source, f"{loc}.field", f"expected a dotted field path; got {field!r}")
    operators = [k for k in node if k != "field"]
    unknown = [k for k in operators if k not in _OPERATORS]
    if unknown:
        raise _fail(
            source,
            f"{loc}.{unknown[0]}",
            f"expected one of {', '.join(_OPERATORS)}; got {unknown[0]!r}",
        )
    if len(operators) != 1:
        raise _fail(
            source,
            loc,
            f"expected exactly one of {', '.join(_OPERATORS)} beside 'field'; got {operators or 'none'}",
        )
    operator = operators[0]
    expected = node[operator]
    where = f"{loc}.{operator}"
    if operator in ("is", "exists") and not isinstance(expected, bool):
        raise _fail(source, where, f"expected true or false; got {expected!r}")
    if operator in ("equals", "contains") and not _is_scalar(expected):
        raise _fail(source, where, f"expected a single value; got {expected!r}")
    if operator == "in":
        if not isinstance(expected, list) or not expected or not all(map(_is_scalar, expected)):
            raise _fail(source, where, f"expected a non-empty list of values; got {expected!r}")
        expected = tuple(expected)
    return _FieldTest(field, operator, expected)


@dataclass(frozen=True)
class FrameworkRule:
    """When one framework applies."""

    framework: str
    condition: _Condition
    description: str = ""

    def evaluate(self, requirements: Mapping[str, Any], always: bool = False) -> Applicability:
        verdict = self.condition.check(requirements, "")
        if always and not verdict.matched:
            verdict = _Verdict(True, f"every model project gets it ({verdict.reason})")
        return Applicability(
            framework=self.framework,
            applies=verdict.matched,
            reason=verdict.reason,
            description=self.description,
        )


@dataclass(frozen=True)
class ApplicabilityRules:
    """The parsed rule file: one rule per framework, in file order."""

    rules: tuple[FrameworkRule, ...]
    source: str = "<rules>"
    always: tuple[str, ...] = ()

    @property
    def frameworks(self) -> list[str]:
        return [r.framework for r in self.rules]

    @classmethod
    def from_mapping(
        cls,
        data: Any,
        *,
        source: str = "<rules>",
        known_frameworks: Iterable[str] | None = None,
        controlled: bool = False,
    ) -> ApplicabilityRules:
        """Parse a rule file; ``controlled`` refuses tests of fields outside
        :data:`CONTROLLED_FIELDS` and requires a non-empty ``always`` list."""
        if not isinstance(data, Mapping):
            raise _fail(source, "(root)", f"expected a mapping with 'frameworks'; got {data!r}")
        unknown = set(data) - {"version", "frameworks", "always"}
        if unknown:
            raise _fail(
                source,
                sorted(map(str, unknown))[0],
                "unknown key; expected 'version', 'frameworks' and 'always'",
            )
        if data.get("version", 1) != 1:
            raise _fail(source, "version", f"expected 1; got {data.get('version')!r}")
        frameworks = data.get("frameworks")
        if not isinstance(frameworks, Mapping) or not frameworks:
            raise _fail(source, "frameworks", f"expected a non-empty mapping; got {frameworks!r}")
        known = set(known_frameworks) if known_frameworks is not None else None
        rules = []
        for framework, spec in frameworks.items():
            loc = f"frameworks.{framework}"
            if not isinstance(framework, str) or not _FRAMEWORK_ID.match(framework):
                raise _fail(source, loc, "expected a framework id like 'model_intake'")
            if known is not None and framework not in known:
                raise _fail(
                    source,
                    loc,
                    f"unknown framework; the policy library defines {', '.join(sorted(known))}",
                )
            if not isinstance(spec, Mapping) or "when" not in spec:
                raise _fail(source, loc, f"expected a mapping with 'when'; got {spec!r}")
            extra = set(spec) - {"when", "description"}
            if extra:
                raise _fail(
                    source,
                    f"{loc}.{sorted(extra)[0]}",
                    "unknown key; expected 'when', 'description'",
                )
            description = spec.get("description", "")
            if not isinstance(description, str):
                raise _fail(source, f"{loc}.description", f"expected text; got {description!r}")
            condition = _parse_condition(
                spec["when"], f"{loc}.when", source, _TOP if controlled else None
            )
            rules.append(FrameworkRule(framework, condition, description.strip()))
        always = data.get("always", [])
        names = [r.framework for r in rules]
        if not isinstance(always, list) or not all(isinstance(a, str) for a in always):
            raise _fail(source, "always", f"expected a list of framework ids; got {always!r}")
        for name in always:
            if name not in names:
                raise _fail(source, "always", f"{name!r} has no rule under 'frameworks'")
        if controlled and not always:
            raise _fail(
                source,
                "always",
                "expected at least one framework every model project gets (e.g. [model_intake])",
            )
        return cls(tuple(rules), source, tuple(always))


# --------------------------------------------------------------------------- public API


def default_applicability_path() -> Path:
    return reference_dir() / "applicability.yaml"


def load_applicability_rules(
    path: str | Path | None = None,
    *,
    known_frameworks: Iterable[str] | None = None,
    controlled: bool | None = None,
) -> ApplicabilityRules:
    """Read and validate a rule file (default: the reference one).

    ``known_frameworks`` (e.g. the ids of a loaded policy library) makes a rule for a
    framework the library does not define an error instead of a silent no-op.
    """
    file = Path(path) if path is not None else default_applicability_path()
    data = read_yaml_mapping(file, ApplicabilityRulesError)
    return ApplicabilityRules.from_mapping(
        data,
        source=file.name,
        known_frameworks=known_frameworks,
        # the reference rules are always held to the controlled fields
        controlled=(path is None) if controlled is None else controlled,
    )


def _as_mapping(requirements: Any) -> Mapping[str, Any]:
    if isinstance(requirements, BaseModel):
        return requirements.model_dump(mode="json")
    if not isinstance(requirements, Mapping):
        raise TypeError(
            f"requirements must be a mapping or a pydantic model; got {type(requirements).__name__}"
        )
    return requirements


def determine_applicability(
    requirements: Mapping[str, Any] | BaseModel, rules: ApplicabilityRules | None = None
) -> list[Applicability]:
    """One decision per framework in the rule file, each with the reason that decided it."""
    rules = rules if rules is not None else load_applicability_rules()
    data = _as_mapping(requirements)
    return [rule.evaluate(data, rule.framework in rules.always) for rule in rules.rules]


def applicable_frameworks(
    requirements: Mapping[str, Any] | BaseModel, rules: ApplicabilityRules | None = None
) -> list[str]:
    """The ids of the frameworks that apply, in rule-file order (the seed's list shape)."""
    return [a.framework for a in determine_applicability(requirements, rules) if a.applies]
