"""The syntax tree of the rule language: small frozen dataclasses with source positions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    line: int
    column: int


# ----------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Literal(Node):
    value: str | int | float | bool


@dataclass(frozen=True)
class RuneLiteral(Node):
    value: int


@dataclass(frozen=True)
class Name(Node):
    id: str


@dataclass(frozen=True)
class Index(Node):
    target: Expr
    index: Expr


@dataclass(frozen=True)
class TypeAssert(Node):
    """``x.(string)``: Go's type assertion, used on ``classificationInputs[...]``."""

    target: Expr
    type: str


@dataclass(frozen=True)
class Convert(Node):
    """``string(x)``, ``float64(x)``, ``int(x)`` or ``[]rune(x)``."""

    type: str
    arg: Expr


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "!" or "-"
    operand: Expr


@dataclass(frozen=True)
class Binary(Node):
    op: str  # + - * / % == != < > <= >= && ||
    left: Expr
    right: Expr


Expr = Literal | RuneLiteral | Name | Index | TypeAssert | Convert | Unary | Binary


# ----------------------------------------------------------------- statements


@dataclass(frozen=True)
class VarDecl(Node):
    name: str
    type: str
    value: Expr | None


@dataclass(frozen=True)
class ShortDecl(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Assign(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class IndexAssign(Node):
    name: str
    index: Expr
    value: Expr


@dataclass(frozen=True)
class If(Node):
    condition: Expr
    then: tuple[Stmt, ...]
    otherwise: tuple[Stmt, ...] | None


@dataclass(frozen=True)
class Return(Node):
    value: Expr


Stmt = VarDecl | ShortDecl | Assign | IndexAssign | If | Return
