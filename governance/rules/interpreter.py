"""Evaluates a checked syntax tree with Go-like semantics (no eval/exec, no loops).

Values: ``str``, ``int``, ``float``, ``bool``, :class:`Rune` (a character, what indexing a
string or a ``[]rune`` yields), ``list[Rune]`` (a ``[]rune``) and ``None`` (an answer that
was not given, read without a type assertion).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mpm.governance.rules import nodes as n
from mpm.governance.rules.errors import RuleEvaluationError, RuleLimitError

INPUTS_NAME = "classificationInputs"
VALUE_NAME = "classificationValue"

# Evaluation limits: a classification rule does a handful of comparisons, so legitimate
# rules stay far below these; a rule that would run for ever (repeated squaring of an
# integer, string doubling) stops with one line instead of hanging or exhausting memory.
MAX_STEPS = 10_000
"""Statements plus expressions evaluated in one run."""
MAX_STRING = 10_000
"""Characters of any string or []rune a rule builds."""
MAX_INT_BITS = 64
"""Integers are Go's int64; a result outside it is refused instead of growing without bound."""
MAX_DEPTH = 100
"""Nesting of expressions and blocks while evaluating."""


class Rune(int):
    """A Go rune: compares with rune literals, becomes text through ``string(...)``."""

    def __repr__(self) -> str:
        return repr(chr(self))


ZERO_VALUES: dict[str, Any] = {"string": "", "float64": 0.0, "int": 0, "bool": False}


def zero_value(type_: str) -> Any:
    return [] if type_ == "[]rune" else ZERO_VALUES[type_]


def type_name(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, Rune):
        return "rune"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list) and all(isinstance(v, Rune) for v in value):
        return "[]rune"
    return type(value).__name__


def _fits(value: Any, type_: str) -> bool:
    kind = type_name(value)
    if type_ in ("float64", "int"):
        return kind in ("int", "float64", "rune")
    return kind == type_


class _Returned(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, value: Any) -> None:
        self.value = value


class Interpreter:
    """One evaluation: a scope chain of variables plus the read-only globals."""

    def __init__(self, globals_: Mapping[str, Any]) -> None:
        self.globals = globals_
        self.scopes: list[dict[str, tuple[str, Any]]] = [{}]
        self.steps = 0
        self.depth = 0

    def _step(self, node: Any) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise RuleLimitError(
                f"line {getattr(node, 'line', '?')}: rule evaluation exceeded {MAX_STEPS:,} steps"
            )

    @staticmethod
    def _bounded(node: Any, value: Any) -> Any:
        """Refuse a value beyond the limits (long strings / rune slices, huge integers)."""
        if isinstance(value, str | list) and len(value) > MAX_STRING:
            raise RuleLimitError(
                f"line {getattr(node, 'line', '?')}: a value of {len(value):,} characters "
                f"exceeds the rule limit of {MAX_STRING:,}"
            )
        if (
            isinstance(value, int)
            and not isinstance(value, bool | Rune)
            and value.bit_length() >= MAX_INT_BITS
        ):
            raise RuleLimitError(
                f"line {getattr(node, 'line', '?')}: integer overflow (beyond int64)"
            )
        return value

    # ----------------------------------------------------------------- statements

    def run(self, program: tuple[n.Stmt, ...]) -> Any:
        try:
            self._block(program, new_scope=False)
        except _Returned as done:
            return done.value
        return None

    def _block(self, stmts: tuple[n.Stmt, ...], new_scope: bool = True) -> None:
        if new_scope:
            self.scopes.append({})
        try:
            for stmt in stmts:
                self._stmt(stmt)
        finally:
            if new_scope:
                self.scopes.pop()

    def _stmt(self, stmt: n.Stmt) -> None:
        self._step(stmt)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise RuleLimitError(f"line {stmt.line}: rule nested deeper than {MAX_DEPTH}")
            self._statement(stmt)
        finally:
            self.depth -= 1

    def _statement(self, stmt: n.Stmt) -> None:
        if isinstance(stmt, n.VarDecl):
            value = zero_value(stmt.type) if stmt.value is None else self.eval(stmt.value)
            self._check_type(stmt, value, stmt.type, stmt.name)
            self.scopes[-1][stmt.name] = (stmt.type, self._coerce(value, stmt.type))
        elif isinstance(stmt, n.ShortDecl):
            value = self.eval(stmt.value)
            kind = type_name(value)
            if kind == "nil":
                raise RuleEvaluationError(
                    f"line {stmt.line}: cannot declare {stmt.name} from an untyped nil value; "
                    "use a type assertion such as .(string)"
                )
            self.scopes[-1][stmt.name] = ("int" if kind == "rune" else kind, value)
        elif isinstance(stmt, n.Assign):
            scope = self._scope_of(stmt.name)
            type_, _ = scope[stmt.name]
            value = self.eval(stmt.value)
            self._check_type(stmt, value, type_, stmt.name)
            scope[stmt.name] = (type_, self._coerce(value, type_))
        elif isinstance(stmt, n.IndexAssign):
            scope = self._scope_of(stmt.name)
            type_, target = scope[stmt.name]
            if type_ != "[]rune":
                raise RuleEvaluationError(
                    f"line {stmt.line}: cannot assign to {stmt.name}[...] ({stmt.name} is a "
                    f"{type_}; only []rune elements can be assigned)"
                )
            index = self._index_of(stmt, self.eval(stmt.index), len(target))
            value = self.eval(stmt.value)
            if not isinstance(value, int) or isinstance(value, bool):
                raise RuleEvaluationError(
                    f"line {stmt.line}: cannot assign a {type_name(value)} to an element of "
                    f"{stmt.name} (use a rune literal such as '1')"
                )
            target[index] = Rune(value)
        elif isinstance(stmt, n.If):
            if self._condition(stmt.condition, "if"):
                self._block(stmt.then)
            elif stmt.otherwise is not None:
                self._block(stmt.otherwise)
        elif isinstance(stmt, n.Return):
            raise _Returned(self.eval(stmt.value))
        else:  # pragma: no cover - the parser produces no other statements
            raise RuleEvaluationError(f"unknown statement {stmt!r}")

    def _scope_of(self, name: str) -> dict[str, tuple[str, Any]]:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope
        raise RuleEvaluationError(f"undefined: {name}")  # the checker rejects this earlier

    @staticmethod
    def _check_type(stmt: n.Node, value: Any, type_: str, name: str) -> None:
        if not _fits(value, type_):
            raise RuleEvaluationError(
                f"line {stmt.line}: cannot use a {type_name(value)} value as {type_} in "
                f"assignment to {name}"
            )

    @staticmethod
    def _coerce(value: Any, type_: str) -> Any:
        if type_ == "float64":
            return float(value)
        if type_ == "int":
            return int(value)
        if type_ == "[]rune":
            return list(value)
        return value

    @staticmethod
    def _index_of(node: n.Node, index: Any, length: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int):
            raise RuleEvaluationError(
                f"line {node.line}: index must be an integer, got {type_name(index)}"
            )
        if not 0 <= index < length:
            raise RuleEvaluationError(
                f"line {node.line}: index out of range [{index}] with length {length}"
            )
        return int(index)

    def _condition(self, expr: n.Expr, where: str) -> bool:
        value = self.eval(expr)
        if not isinstance(value, bool):
            raise RuleEvaluationError(
                f"line {expr.line}: non-boolean {type_name(value)} used as {where} condition"
            )
        return value

    # ----------------------------------------------------------------- expressions

    def eval(self, expr: n.Expr) -> Any:
        self._step(expr)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise RuleLimitError(
                    f"line {getattr(expr, 'line', '?')}: expression nested deeper than {MAX_DEPTH}"
                )
            return self._bounded(expr, self._eval(expr))
        finally:
            self.depth -= 1

    def _eval(self, expr: n.Expr) -> Any:
        if isinstance(expr, n.Literal):
            return expr.value
        if isinstance(expr, n.RuneLiteral):
            return Rune(expr.value)
        if isinstance(expr, n.Name):
            for scope in reversed(self.scopes):
                if expr.id in scope:
                    value = scope[expr.id][1]
                    return list(value) if isinstance(value, list) else value
            if expr.id in self.globals:
                return self.globals[expr.id]
            raise RuleEvaluationError(f"undefined: {expr.id}")
        if isinstance(expr, n.Index):
            return self._index(expr)
        if isinstance(expr, n.TypeAssert):
            return self._assert(expr)
        if isinstance(expr, n.Convert):
            return self._convert(expr)
        if isinstance(expr, n.Unary):
            return self._unary(expr)
        if isinstance(expr, n.Binary):
            return self._binary(expr)
        raise RuleEvaluationError(f"unknown expression {expr!r}")  # pragma: no cover

    def _index(self, expr: n.Index) -> Any:
        if isinstance(expr.target, n.Name) and expr.target.id == INPUTS_NAME:
            key = self.eval(expr.index)
            if not isinstance(key, str):
                raise RuleEvaluationError(f"line {expr.line}: {INPUTS_NAME} keys are strings")
            return self.globals[INPUTS_NAME].get(key)
        target = self.eval(expr.target)
        if isinstance(target, str):
            return Rune(ord(target[self._index_of(expr, self.eval(expr.index), len(target))]))
        if isinstance(target, list):
            return target[self._index_of(expr, self.eval(expr.index), len(target))]
        raise RuleEvaluationError(f"line {expr.line}: cannot index a {type_name(target)}")

    def _assert(self, expr: n.TypeAssert) -> Any:
        value = self.eval(expr.target)
        if value is None:
            # An unanswered input reads as the type's zero value (documented behaviour).
            return ZERO_VALUES[expr.type]
        if expr.type == "string" and isinstance(value, str):
            return value
        if expr.type == "bool" and isinstance(value, bool):
            return value
        if expr.type in ("float64", "int") and not isinstance(value, bool):
            if isinstance(value, int | float):
                return float(value) if expr.type == "float64" else int(value)
            if isinstance(value, str):
                try:
                    number = float(value)
                except ValueError:
                    pass
                else:
                    return number if expr.type == "float64" else int(number)
        raise RuleEvaluationError(
            f"line {expr.line}: interface conversion: value is {type_name(value)}, not {expr.type}"
        )

    def _convert(self, expr: n.Convert) -> Any:
        value = self.eval(expr.arg)
        kind = type_name(value)
        if expr.type == "string":
            if kind in ("string", "nil"):
                return value or ""
            if kind in ("rune", "int"):
                return chr(value)
            if kind == "[]rune":
                return "".join(chr(r) for r in value)
        elif expr.type == "[]rune":
            if kind in ("string", "nil"):
                return [Rune(ord(c)) for c in value or ""]
            if kind == "[]rune":
                return list(value)
        elif expr.type in ("float64", "int") and kind in ("int", "float64", "rune"):
            return float(value) if expr.type == "float64" else int(value)
        raise RuleEvaluationError(f"line {expr.line}: cannot convert a {kind} to {expr.type}")

    def _unary(self, expr: n.Unary) -> Any:
        if expr.op == "!":
            return not self._condition(expr.operand, "operand of !")
        value = self.eval(expr.operand)
        if type_name(value) in ("int", "float64", "rune"):
            return -value
        raise RuleEvaluationError(f"line {expr.line}: cannot negate a {type_name(value)}")

    def _binary(self, expr: n.Binary) -> Any:
        op = expr.op
        if op == "&&":
            return self._condition(expr.left, "operand of &&") and self._condition(
                expr.right, "operand of &&"
            )
        if op == "||":
            return self._condition(expr.left, "operand of ||") or self._condition(
                expr.right, "operand of ||"
            )
        left, right = self.eval(expr.left), self.eval(expr.right)
        lk, rk = type_name(left), type_name(right)
        numeric = {"int", "float64", "rune"}
        if op in ("==", "!="):
            if lk == "nil" or rk == "nil":
                equal = left is None and right is None
            elif lk == rk or (lk in numeric and rk in numeric):
                if lk == "[]rune":
                    raise RuleEvaluationError(f"line {expr.line}: slices cannot be compared")
                equal = left == right
            else:
                raise RuleEvaluationError(
                    f"line {expr.line}: mismatched types {lk} and {rk} in {op}"
                )
            return equal if op == "==" else not equal
        if op in ("<", ">", "<=", ">="):
            if not ((lk == rk == "string") or (lk in numeric and rk in numeric)):
                raise RuleEvaluationError(f"line {expr.line}: cannot order {lk} and {rk} with {op}")
            return {"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[
                op
            ]
        if op == "+" and lk == rk == "string":
            if len(left) + len(right) > MAX_STRING:
                raise RuleLimitError(
                    f"line {expr.line}: a string of {len(left) + len(right):,} characters "
                    f"exceeds the rule limit of {MAX_STRING:,}"
                )
            return left + right
        if (
            op == "*"
            and lk in ("int", "rune")
            and rk in ("int", "rune")
            and abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS + 1
        ):
            raise RuleLimitError(f"line {expr.line}: integer overflow (beyond int64)")
        if lk in numeric and rk in numeric:
            if op == "+":
                return left + right
            if op == "-":
                return left - right
            if op == "*":
                return left * right
            if right == 0:
                raise RuleEvaluationError(f"line {expr.line}: division by zero")
            if isinstance(left, float) or isinstance(right, float):
                return left / right if op == "/" else float(left % right)
            quotient = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)
            return quotient if op == "/" else left - quotient * right
        raise RuleEvaluationError(f"line {expr.line}: operator {op} not defined on {lk} and {rk}")
