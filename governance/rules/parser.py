"""Text -> syntax tree, with lark (LALR, basic lexer), and lark errors -> RuleSyntaxError."""

from __future__ import annotations

import functools
import re
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from mpm.governance.rules import nodes as n
from mpm.governance.rules.errors import RuleSyntaxError
from mpm.governance.rules.grammar import GRAMMAR

MAX_RULE_CHARS = 20_000

# Go keywords outside the supported subset: named in the error instead of "unexpected NAME".
UNSUPPORTED_KEYWORDS = frozenset(
    [
        "break",
        "case",
        "chan",
        "const",
        "continue",
        "default",
        "defer",
        "fallthrough",
        "for",
        "func",
        "go",
        "goto",
        "import",
        "interface",
        "map",
        "package",
        "range",
        "select",
        "struct",
        "switch",
        "type",
    ]
)

_TERMINAL_HINTS = {
    "NAME": "a name",
    "STRING": "a string literal",
    "RAW_STRING": "a string literal",
    "RUNE": "a rune literal",
    "NUMBER": "a number",
    "CMP_OP": "a comparison",
    "MUL_OP": "'*', '/' or '%'",
}


@functools.cache
def _parser() -> Lark:
    return Lark(
        GRAMMAR,
        parser="lalr",
        lexer="basic",
        start=["program", "expression"],
        propagate_positions=True,
        maybe_placeholders=False,
    )


def parse_program(text: str) -> tuple[n.Stmt, ...]:
    return _parse(text, "program")


def parse_expression(text: str) -> n.Expr:
    return _parse(text, "expression")


def _parse(text: str, start: str) -> Any:
    if len(text) > MAX_RULE_CHARS:
        raise RuleSyntaxError(f"rule is {len(text)} characters long; the limit is {MAX_RULE_CHARS}")
    parser = _parser()
    try:
        for token in parser.lex(text):
            if token.type == "NAME" and token.value in UNSUPPORTED_KEYWORDS:
                raise RuleSyntaxError(
                    f"Go keyword {token.value!r} is not supported by the rule language "
                    "(supported: var, :=, =, if/else, return, ==, !=, <, >, &&, ||, !, "
                    "+ - * / %, string(), []rune(), .(string))",
                    token.line,
                    token.column,
                )
        tree = parser.parse(text, start=start)
        return _ToNodes().transform(tree)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None
    except VisitError as exc:
        if isinstance(exc.orig_exc, RuleSyntaxError):
            raise exc.orig_exc from None
        raise
    except RecursionError:
        raise RuleSyntaxError("rule is nested too deeply") from None


def _describe_expected(expected: set[str]) -> str:
    terminals = {t.name: t for t in _parser().terminals}
    shown: list[str] = []
    for name in sorted(expected):
        if name in _TERMINAL_HINTS:
            shown.append(_TERMINAL_HINTS[name])
        elif name in terminals and terminals[name].pattern.type == "str":
            shown.append(repr(terminals[name].pattern.value))
        elif name == "$END":
            shown.append("end of rule")
    shown = sorted(set(shown))
    if not shown:
        return ""
    return "; expected " + ", ".join(shown[:8]) + (" ..." if len(shown) > 8 else "")


def _syntax_error(exc: UnexpectedInput, text: str) -> RuleSyntaxError:
    if isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    ):
        lines = text.rstrip().splitlines() or [""]
        expected = getattr(exc, "expected", None) or getattr(exc, "accepts", set())
        return RuleSyntaxError(
            "unexpected end of rule" + _describe_expected(set(expected)),
            len(lines),
            len(lines[-1]) + 1,
        )
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        return RuleSyntaxError(
            f"unexpected {token.value!r}" + _describe_expected(set(exc.accepts or exc.expected)),
            token.line,
            token.column,
        )
    if isinstance(exc, UnexpectedCharacters):
        return RuleSyntaxError(f"unexpected character {exc.char!r}", exc.line, exc.column)
    return RuleSyntaxError(
        str(exc).splitlines()[0], getattr(exc, "line", 1), getattr(exc, "column", 1)
    )


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
_ESCAPE_RE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)")


def _unescape(body: str, token: Token) -> str:
    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] in "xuU" and len(code) > 1:
            return chr(int(code[1:], 16))
        if code in _ESCAPES:
            return _ESCAPES[code]
        raise RuleSyntaxError(f"unknown escape sequence '\\{code}'", token.line, token.column)

    return _ESCAPE_RE.sub(replace, body)


def _pos(item: Any) -> tuple[int, int]:
    if isinstance(item, Token):
        return item.line or 1, item.column or 1
    if isinstance(item, n.Node):
        return item.line, item.column
    return getattr(item, "line", 1) or 1, getattr(item, "column", 1) or 1


@v_args(meta=True)
class _ToNodes(Transformer):
    """Builds :mod:`governance.rules.nodes` from the lark tree; rejects calls and selectors."""

    # ----- top level
    def program(self, meta: Any, items: list[n.Stmt]) -> tuple[n.Stmt, ...]:
        return tuple(items)

    def expression(self, meta: Any, items: list[n.Expr]) -> n.Expr:
        return items[0]

    def block(self, meta: Any, items: list[n.Stmt]) -> tuple[n.Stmt, ...]:
        return tuple(items)

    # ----- statements
    def var_decl(self, meta: Any, items: list[Any]) -> n.VarDecl:
        name, type_, *value = items
        return n.VarDecl(name.line, name.column, str(name), type_, value[0] if value else None)

    def short_decl(self, meta: Any, items: list[Any]) -> n.ShortDecl:
        name, value = items
        return n.ShortDecl(name.line, name.column, str(name), value)

    def assign(self, meta: Any, items: list[Any]) -> n.Assign:
        name, value = items
        return n.Assign(name.line, name.column, str(name), value)

    def index_assign(self, meta: Any, items: list[Any]) -> n.IndexAssign:
        name, index, value = items
        return n.IndexAssign(name.line, name.column, str(name), index, value)

    def if_stmt(self, meta: Any, items: list[Any]) -> n.If:
        condition, then, *rest = items
        otherwise: tuple[n.Stmt, ...] | None = None
        if rest:
            otherwise = (rest[0],) if isinstance(rest[0], n.If) else rest[0]
        return n.If(meta.line, meta.column, condition, then, otherwise)

    def return_stmt(self, meta: Any, items: list[Any]) -> n.Return:
        return n.Return(meta.line, meta.column, items[0])

    # ----- types
    def type_name(self, meta: Any, items: list[Token]) -> str:
        return str(items[0])

    def type(self, meta: Any, items: list[str]) -> str:
        return items[0]

    def rune_slice_type(self, meta: Any, items: list[Any]) -> str:
        return "[]rune"

    # ----- expressions
    def string(self, meta: Any, items: list[Token]) -> n.Literal:
        token = items[0]
        return n.Literal(*_pos(token), _unescape(token.value[1:-1], token))

    def raw_string(self, meta: Any, items: list[Token]) -> n.Literal:
        return n.Literal(*_pos(items[0]), items[0].value[1:-1])

    def rune(self, meta: Any, items: list[Token]) -> n.RuneLiteral:
        token = items[0]
        text = _unescape(token.value[1:-1], token)
        if len(text) != 1:
            raise RuleSyntaxError("more than one character in rune literal", *_pos(token))
        return n.RuneLiteral(*_pos(token), ord(text))

    def number(self, meta: Any, items: list[Token]) -> n.Literal:
        text = items[0].value
        value: int | float = int(text) if text.isdigit() else float(text)
        return n.Literal(*_pos(items[0]), value)

    def true(self, meta: Any, items: list[Token]) -> n.Literal:
        return n.Literal(*_pos(items[0]), True)

    def false(self, meta: Any, items: list[Token]) -> n.Literal:
        return n.Literal(*_pos(items[0]), False)

    def name(self, meta: Any, items: list[Token]) -> n.Name:
        return n.Name(*_pos(items[0]), str(items[0]))

    def index(self, meta: Any, items: list[Any]) -> n.Index:
        target, index = items
        return n.Index(*_pos(target), target, index)

    def type_assert(self, meta: Any, items: list[Any]) -> n.TypeAssert:
        target, type_ = items
        if type_ not in ("string", "float64", "int", "bool"):
            raise RuleSyntaxError(f"type assertion to {type_} is not supported", *_pos(target))
        return n.TypeAssert(*_pos(target), target, type_)

    def convert(self, meta: Any, items: list[Any]) -> n.Convert:
        type_, arg = items
        if type_ == "bool":
            raise RuleSyntaxError("conversion bool(...) is not supported", meta.line, meta.column)
        return n.Convert(meta.line, meta.column, type_, arg)

    def to_runes(self, meta: Any, items: list[Any]) -> n.Convert:
        return n.Convert(meta.line, meta.column, "[]rune", items[-1])

    def selector(self, meta: Any, items: list[Any]) -> Any:
        target, field = items
        what = f"{target.id}.{field}" if isinstance(target, n.Name) else f"...{field}"
        raise RuleSyntaxError(
            f"selector {what!r} is not supported (no packages, fields or methods)", *_pos(field)
        )

    def call(self, meta: Any, items: list[Any]) -> Any:
        target = items[0]
        what = repr(target.id) if isinstance(target, n.Name) else "of this value"
        raise RuleSyntaxError(
            f"function call {what} is not supported (only string(), float64(), int() and []rune())",
            *_pos(target),
        )

    def not_op(self, meta: Any, items: list[Any]) -> n.Unary:
        return n.Unary(meta.line, meta.column, "!", items[0])

    def neg(self, meta: Any, items: list[Any]) -> n.Unary:
        return n.Unary(meta.line, meta.column, "-", items[-1])

    def binary(self, meta: Any, items: list[Any]) -> n.Binary:
        left, op, right = items
        return n.Binary(*_pos(op), str(op), left, right)

    compare = binary

    def and_op(self, meta: Any, items: list[Any]) -> n.Binary:
        return n.Binary(meta.line, meta.column, "&&", items[0], items[1])

    def or_op(self, meta: Any, items: list[Any]) -> n.Binary:
        return n.Binary(meta.line, meta.column, "||", items[0], items[1])
