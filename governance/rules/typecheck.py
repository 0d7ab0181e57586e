"""Load-time checks of a policy's rules against its own inputs, located in the *file*.

Why: a classification rule can be valid Go and still be wrong for the policy it sits in.
The public FRB SR 11-7 policy compares ``classificationInputs["BusinessImpact"].(string)``
with ``"High"`` while the radio's options read ``High (Critical business decisions...)``:
the comparison can never be true, so the classification is always ``"00"`` and the
evidence sets shown only for other values stay hidden -- governance silently weakened.
Go's compiler would not catch that, but it would catch ``string == 5``; mpm reports both,
before any run, with the policy file, line and column in the file:

* errors: a string literal compared with a choice input's option values that can never
  match; a comparison of a string with a number; ``.(float64)`` (or ``.(int)``) on an input
  whose answers are text; a rule that returns a bool.
* warnings: a ``visibilityRule`` value the classification rule never returns; a named
  server-side rule (``rule: SOME-NAME`` naming no input) that mpm cannot evaluate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from mpm.governance.policy import CHOICE_INPUT_TYPES, EvidenceSet, InputArtifact, Policy
from mpm.governance.rules import nodes as n
from mpm.governance.rules.interpreter import INPUTS_NAME, VALUE_NAME

__all__ = ["RuleProblem", "check_rules"]

_TEXT_TYPES = frozenset({"radio", "select", "textinput", "textarea", "date"})
_COMPARE = frozenset({"==", "!="})
_ORDER = frozenset({"<", ">", "<=", ">="})


@dataclass(frozen=True)
class RuleProblem:
    severity: str  # "error" | "warning"
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


# --------------------------------------------------------------------------- positions


class _Locator:
    """Maps a position inside a rule string to its line and column in the YAML file.

    The file is re-read (a round-trip parse, for positions) only when a problem is to be
    placed: a clean policy -- every load of every run -- never pays for it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @cached_property
    def _parsed(self) -> tuple[list[str], Any]:
        try:
            from ruamel.yaml import YAML

            text = self.path.read_text(encoding="utf-8")
            return text.splitlines(), YAML(typ="rt", pure=True).load(text)
        except Exception:  # noqa: BLE001 - positions are a nicety; the policy already loaded
            return [], None

    @property
    def lines(self) -> list[str]:
        return self._parsed[0]

    @property
    def data(self) -> Any:
        return self._parsed[1]

    def origin(self, container: Any, key: str) -> tuple[int, int, str] | None:
        """(0-based line, 0-based column, style) of the value of ``container[key]``."""
        try:
            line, col = container.lc.value(key)
        except Exception:  # noqa: BLE001
            return None
        text = self.lines[line] if line < len(self.lines) else ""
        char = text[col] if col < len(text) else ""
        style = "block" if char in "|>" else "quoted" if char in "\"'" else "plain"
        return line, col, style

    def place(self, origin: tuple[int, int, str] | None, node: n.Node) -> tuple[int, int]:
        if origin is None:
            return node.line, node.column
        line, col, style = origin
        if style == "block":
            first = line + 1
            while first < len(self.lines) and not self.lines[first].strip():
                first += 1
            indent = (
                len(self.lines[first]) - len(self.lines[first].lstrip())
                if first < len(self.lines)
                else 0
            )
            return first + node.line, indent + node.column
        shift = 1 if style == "quoted" else 0
        if node.line == 1:
            return line + 1, col + shift + node.column
        return line + node.line, node.column


def _child(container: Any, *keys: Any) -> Any:
    for key in keys:
        try:
            container = container[key]
        except (KeyError, IndexError, TypeError):
            return None
    return container


# --------------------------------------------------------------------------- rule walking


def _walk_expr(expr: n.Expr) -> Iterator[n.Expr]:
    yield expr
    if isinstance(expr, n.Index):
        yield from _walk_expr(expr.target)
        yield from _walk_expr(expr.index)
    elif isinstance(expr, n.TypeAssert):
        yield from _walk_expr(expr.target)
    elif isinstance(expr, n.Convert):
        yield from _walk_expr(expr.arg)
    elif isinstance(expr, n.Unary):
        yield from _walk_expr(expr.operand)
    elif isinstance(expr, n.Binary):
        yield from _walk_expr(expr.left)
        yield from _walk_expr(expr.right)


def _walk_stmts(stmts: tuple[n.Stmt, ...]) -> Iterator[n.Stmt]:
    for stmt in stmts:
        yield stmt
        if isinstance(stmt, n.If):
            yield from _walk_stmts(stmt.then)
            if stmt.otherwise:
                yield from _walk_stmts(stmt.otherwise)


def _exprs_of(stmt: n.Stmt) -> list[n.Expr]:
    if isinstance(stmt, n.If):
        return [stmt.condition]
    if isinstance(stmt, n.IndexAssign):
        return [stmt.index, stmt.value]
    value = getattr(stmt, "value", None)
    return [value] if value is not None else []


def _input_alias(expr: n.Expr) -> tuple[str, str | None] | None:
    """``classificationInputs["x"]`` (optionally ``.(T)``) -> ("x", T)."""
    asserted = None
    if isinstance(expr, n.TypeAssert):
        asserted, expr = expr.type, expr.target
    if (
        isinstance(expr, n.Index)
        and isinstance(expr.target, n.Name)
        and expr.target.id == INPUTS_NAME
        and isinstance(expr.index, n.Literal)
        and isinstance(expr.index.value, str)
    ):
        return expr.index.value, asserted
    return None


def _is_string(expr: n.Expr) -> bool:
    if isinstance(expr, n.Literal):
        return isinstance(expr.value, str)
    if isinstance(expr, n.TypeAssert):
        return expr.type == "string"
    if isinstance(expr, n.Convert):
        return expr.type == "string"
    return False


def _is_number(expr: n.Expr) -> bool:
    if isinstance(expr, n.Literal):
        return isinstance(expr.value, int | float) and not isinstance(expr.value, bool)
    if isinstance(expr, n.TypeAssert | n.Convert):
        return expr.type in ("float64", "int")
    return False


def _is_bool(expr: n.Expr) -> bool:
    if isinstance(expr, n.Literal):
        return isinstance(expr.value, bool)
    if isinstance(expr, n.Unary):
        return expr.op == "!"
    if isinstance(expr, n.Binary):
        return expr.op in _COMPARE | _ORDER | {"&&", "||"}
    return False


def _returned_literals(program: tuple[n.Stmt, ...]) -> set[str] | None:
    """Every string the rule can return, when each return is a literal or a variable only
    ever assigned literals; None when that cannot be known statically."""
    assigned: dict[str, set[str] | None] = {}
    for stmt in _walk_stmts(program):
        if isinstance(stmt, n.VarDecl | n.ShortDecl | n.Assign):
            value = stmt.value
            known = assigned.setdefault(stmt.name, set())
            if isinstance(value, n.Literal) and isinstance(value.value, str):
                if known is not None:
                    known.add(value.value)
            elif value is not None:
                assigned[stmt.name] = None
        elif isinstance(stmt, n.IndexAssign):
            assigned[stmt.name] = None
    values: set[str] = set()
    for stmt in _walk_stmts(program):
        if not isinstance(stmt, n.Return):
            continue
        if isinstance(stmt.value, n.Literal) and isinstance(stmt.value.value, str):
            values.add(stmt.value.value)
        elif isinstance(stmt.value, n.Name) and assigned.get(stmt.value.id) is not None:
            values |= assigned[stmt.value.id]  # type: ignore[operator]
        else:
            return None
    return values


# --------------------------------------------------------------------------- checks


def _inputs_by_alias(policy: Policy) -> dict[str, InputArtifact]:
    found: dict[str, InputArtifact] = {}
    for placed in policy.inputs():
        artifact = placed.artifact
        if isinstance(artifact, InputArtifact) and artifact.alias_for_classification:
            found.setdefault(artifact.alias_for_classification, artifact)
    return found


def _evidence_sets(policy: Policy) -> Iterator[tuple[EvidenceSet, tuple[Any, ...]]]:
    """Each evidence set with the keys that lead to it in the YAML document."""
    for i, stage in enumerate(policy.stages):
        for j, evidence in enumerate(stage.evidence_set):
            yield evidence, ("stages", i, "evidenceSet", j)
        for k, approval in enumerate(stage.approvals):
            if approval.evidence is not None:
                yield approval.evidence, ("stages", i, "approvals", k, "evidence")


def check_rules(policy: Policy, source: str | Path) -> list[RuleProblem]:
    """Every rule problem of ``policy`` (loaded from ``source``), errors first."""
    path = Path(source)
    locator = _Locator(path)
    name = path.name
    problems: list[RuleProblem] = []
    inputs = _inputs_by_alias(policy)
    classification = policy.classification
    compiled = classification.compiled if classification else None

    def classification_rule() -> Any:
        return locator.origin(_child(locator.data, "classification"), "rule")

    def report(severity: str, node: n.Node, message: str, at: Any = classification_rule) -> None:
        line, column = locator.place(at(), node)  # the file is parsed for positions only now
        problems.append(RuleProblem(severity, name, line, column, message))

    returnable: set[str] | None = None
    if compiled is not None and compiled.alias is not None:
        if compiled.alias not in inputs:
            report(
                "warning",
                n.Name(1, 1, compiled.alias),
                f"classification rule {compiled.alias!r} is a named server-side rule (no input "
                "has that aliasForClassification); Domino evaluates it, mpm cannot, so the "
                "classification stays unknown and sets shown only for some values stay hidden",
            )
    elif compiled is not None:
        returnable = _returned_literals(compiled.program)
        for stmt in _walk_stmts(compiled.program):
            if isinstance(stmt, n.Return) and _is_bool(stmt.value):
                report(
                    "error",
                    stmt.value,
                    "the rule returns a bool; a classification is a string or a number",
                )
            for expr in (e for top in _exprs_of(stmt) for e in _walk_expr(top)):
                _check_expr(expr, inputs, report)

    if returnable is not None:
        for evidence, keys in _evidence_sets(policy):
            visibility = evidence.visibility
            if visibility is None:
                continue

            def at(keys: tuple[Any, ...] = keys) -> Any:
                return locator.origin(_child(locator.data, *keys), "visibilityRule")

            for expr in _walk_expr(visibility.expression):
                if not (isinstance(expr, n.Binary) and expr.op in _COMPARE):
                    continue
                sides = (expr.left, expr.right)
                if not any(_is_value(s) for s in sides):
                    continue
                for side in sides:
                    if (
                        isinstance(side, n.Literal)
                        and isinstance(side.value, str)
                        and side.value not in returnable
                    ):
                        shown = ", ".join(repr(v) for v in sorted(returnable)) or "nothing"
                        report(
                            "warning",
                            side,
                            f"visibilityRule of {evidence.id} compares with {side.value!r}, "
                            f"which the classification rule never returns (it returns {shown})",
                            at,
                        )
    return sorted(problems, key=lambda p: (p.severity != "error", p.line, p.column))


def _is_value(expr: n.Expr) -> bool:
    """``classificationValue`` itself (or ``string(classificationValue)``), not an element."""
    if isinstance(expr, n.Convert) and expr.type == "string":
        expr = expr.arg
    return isinstance(expr, n.Name) and expr.id == VALUE_NAME


def _check_expr(expr: n.Expr, inputs: dict[str, InputArtifact], report: Any) -> None:
    if isinstance(expr, n.TypeAssert):
        target = _input_alias(expr)
        if target is not None and expr.type in ("float64", "int"):
            artifact = inputs.get(target[0])
            if artifact is not None and artifact.details.type in _TEXT_TYPES:
                report(
                    "error",
                    expr,
                    f'classificationInputs["{target[0]}"].({expr.type}) on a '
                    f"{artifact.details.type} input, whose answers are strings; the "
                    "assertion fails for every answer",
                )
        return
    if not isinstance(expr, n.Binary) or expr.op not in _COMPARE | _ORDER:
        return
    left, right = expr.left, expr.right
    if (_is_string(left) and _is_number(right)) or (_is_number(left) and _is_string(right)):
        report(
            "error",
            expr,
            f"mismatched types: a string {expr.op} a number can never compile in Go "
            "(invalid operation)",
        )
        return
    if expr.op not in _COMPARE:
        return
    for value_side, literal in ((left, right), (right, left)):
        target = _input_alias(value_side)
        if target is None or not isinstance(literal, n.Literal):
            continue
        if not isinstance(literal.value, str):
            continue
        artifact = inputs.get(target[0])
        if artifact is None or artifact.details.type not in CHOICE_INPUT_TYPES:
            continue
        if artifact.details.type in ("checkbox", "multiselect"):
            continue  # list answers: compared element-wise elsewhere
        options = artifact.details.option_values
        if options and literal.value not in options:
            shown = ", ".join(repr(o) for o in options)
            report(
                "error",
                literal,
                f'"{literal.value}" can never equal an answer of {target[0]!r} '
                f"({artifact.details.type}; options: {shown}), so this comparison is "
                f"always {'false' if expr.op == '==' else 'true'}",
            )
