"""compile_rule / compile_visibility: parse, check names statically, return callables.

Everything that can be found without answers (syntax, unsupported Go, undefined names,
``:=`` re-declarations, assignments to the inputs) is a :class:`RuleSyntaxError` at load
time, so a bad rule never silently yields a wrong classification later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mpm.governance.rules import nodes as n
from mpm.governance.rules.errors import RuleEvaluationError, RuleSyntaxError
from mpm.governance.rules.interpreter import INPUTS_NAME, VALUE_NAME, Interpreter, type_name
from mpm.governance.rules.parser import parse_expression, parse_program

# A rule that is a single name (``implementation-tier``, ``EU-AI-ACT``): the value of that
# alias. Hyphens and dots are allowed because aliases are kebab-case slugs.
_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


@dataclass(frozen=True)
class Rule:
    """A compiled classification rule.

    ``evaluate(inputs)`` takes the answers by alias (``classificationInputs``) and returns
    the classification value: a string, a float (any number) or None (no value: the rule
    returned nothing, or a bare-name rule's alias is unanswered).

    Unanswered aliases: ``classificationInputs["x"].(string)`` reads as ``""``
    (``.(float64)`` as 0), the zero value, so a rule written for complete answers still
    runs while evidence is being collected.
    """

    text: str
    alias: str | None = None  # set for a bare-name rule
    aliases: frozenset[str] = frozenset()  # every alias the rule reads by a literal key
    program: tuple[n.Stmt, ...] = field(default=(), repr=False)

    def evaluate(self, inputs: Mapping[str, Any]) -> str | float | None:
        if self.alias is not None:
            return _as_classification(inputs.get(self.alias), bare=True)
        result = Interpreter({INPUTS_NAME: inputs}).run(self.program)
        return _as_classification(result, bare=False)


@dataclass(frozen=True)
class Visibility:
    """A compiled ``visibilityRule``: a boolean expression over ``classificationValue``."""

    text: str
    expression: n.Expr = field(repr=False)

    def evaluate(self, classification_value: Any, *, strict: bool = False) -> bool:
        """Whether the evidence set is shown for that classification value.

        A missing classification (None) reads as ``""``. An expression that cannot be
        evaluated for this value (e.g. ``string(classificationValue[1])`` while the value
        is still ``""``) hides the set, unless ``strict`` asks for the RuleEvaluationError.
        """
        value = "" if classification_value is None else classification_value
        try:
            result = Interpreter({VALUE_NAME: value}).eval(self.expression)
            if not isinstance(result, bool):
                raise RuleEvaluationError(
                    f"visibility rule {self.text!r} gave a {type_name(result)}, not a bool"
                )
        except RuleEvaluationError:
            if strict:
                raise
            return False
        return result


def compile_rule(text: str | None) -> Rule | None:
    """Compile a classification rule; None for an empty rule (no classification)."""
    if text is None or not text.strip():
        return None
    stripped = text.strip()
    if _BARE_NAME.fullmatch(stripped) and stripped != "return":
        return Rule(text=text, alias=stripped, aliases=frozenset({stripped}))
    program = parse_program(text)
    checker = _Checker(globals_={INPUTS_NAME})
    checker.block(program, new_scope=False)
    if not checker.saw_return:
        raise RuleSyntaxError(
            "the rule never returns a value; end it with 'return <value>'",
            1,
            1,
            kind="invalid rule",
        )
    return Rule(text=text, aliases=frozenset(checker.aliases), program=program)


def compile_visibility(text: str) -> Visibility:
    """Compile a ``visibilityRule`` expression."""
    if not text.strip():
        raise RuleSyntaxError("empty visibility rule")
    expression = parse_expression(text)
    _Checker(globals_={VALUE_NAME}).expr(expression)
    return Visibility(text=text, expression=expression)


def _as_classification(value: Any, *, bare: bool) -> str | float | None:
    if value is None or (bare and value == ""):
        return None
    if isinstance(value, bool):
        if bare:
            return "true" if value else "false"
        raise RuleEvaluationError(
            "a classification rule must return a string or a number, not a bool"
        )
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return value
    if bare and isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    raise RuleEvaluationError(
        f"a classification rule must return a string or a number, not a {type_name(value)}"
        + ("; wrap it in string(...)" if type_name(value) == "[]rune" else "")
    )


class _Checker:
    """Static name checks with Go block scoping; collects the aliases a rule reads."""

    def __init__(self, globals_: set[str]) -> None:
        self.globals = globals_
        self.scopes: list[set[str]] = [set()]
        self.aliases: set[str] = set()
        self.saw_return = False

    def _declared(self, name: str) -> bool:
        return any(name in scope for scope in self.scopes)

    def _declare(self, node: n.Node, name: str, short: bool) -> None:
        if name in self.globals:
            raise RuleSyntaxError(
                f"cannot redeclare {name}", node.line, node.column, kind="invalid rule"
            )
        if name in self.scopes[-1]:
            what = "no new variables on left side of :=" if short else f"{name} redeclared"
            raise RuleSyntaxError(what, node.line, node.column, kind="invalid rule")
        self.scopes[-1].add(name)

    def block(self, stmts: tuple[n.Stmt, ...], new_scope: bool = True) -> None:
        if new_scope:
            self.scopes.append(set())
        for stmt in stmts:
            self.stmt(stmt)
        if new_scope:
            self.scopes.pop()

    def stmt(self, stmt: n.Stmt) -> None:
        if isinstance(stmt, n.VarDecl):
            if stmt.value is not None:
                self.expr(stmt.value)
            self._declare(stmt, stmt.name, short=False)
        elif isinstance(stmt, n.ShortDecl):
            self.expr(stmt.value)
            self._declare(stmt, stmt.name, short=True)
        elif isinstance(stmt, n.Assign | n.IndexAssign):
            if stmt.name in self.globals:
                raise RuleSyntaxError(
                    f"cannot assign to {stmt.name}", stmt.line, stmt.column, kind="invalid rule"
                )
            if not self._declared(stmt.name):
                raise RuleSyntaxError(
                    f"undefined: {stmt.name} (declare it with 'var {stmt.name} string' or ':=')",
                    stmt.line,
                    stmt.column,
                    kind="invalid rule",
                )
            if isinstance(stmt, n.IndexAssign):
                self.expr(stmt.index)
            self.expr(stmt.value)
        elif isinstance(stmt, n.If):
            self.expr(stmt.condition)
            self.block(stmt.then)
            if stmt.otherwise is not None:
                self.block(stmt.otherwise)
        elif isinstance(stmt, n.Return):
            self.saw_return = True
            self.expr(stmt.value)

    def expr(self, expr: n.Expr) -> None:
        if isinstance(expr, n.Name):
            if expr.id not in self.globals and not self._declared(expr.id):
                raise RuleSyntaxError(
                    f"undefined: {expr.id}", expr.line, expr.column, kind="invalid rule"
                )
        elif isinstance(expr, n.Index):
            reads_input = isinstance(expr.target, n.Name) and expr.target.id == INPUTS_NAME
            if (
                reads_input
                and isinstance(expr.index, n.Literal)
                and isinstance(expr.index.value, str)
            ):
                self.aliases.add(expr.index.value)
            self.expr(expr.target)
            self.expr(expr.index)
        elif isinstance(expr, n.TypeAssert | n.Convert):
            self.expr(expr.target if isinstance(expr, n.TypeAssert) else expr.arg)
        elif isinstance(expr, n.Unary):
            self.expr(expr.operand)
        elif isinstance(expr, n.Binary):
            self.expr(expr.left)
            self.expr(expr.right)
