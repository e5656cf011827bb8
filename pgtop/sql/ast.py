"""The parse tree: expressions and statements as frozen dataclasses. `position` is the 1-based
character offset PostgreSQL reports in errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pgtop.sql.types import SqlType

# -- expressions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Const:
    value: Any  # a string literal keeps its text with type unknown
    type: SqlType
    position: int


@dataclass(frozen=True, slots=True)
class Param:
    number: int
    position: int


@dataclass(frozen=True, slots=True)
class ColumnRef:
    names: tuple[str, ...]  # ("a",) or ("t", "a")
    position: int


@dataclass(frozen=True, slots=True)
class Star:
    qualifier: str | None
    position: int


@dataclass(frozen=True, slots=True)
class FuncCall:
    name: str
    args: tuple[Expr, ...]
    star: bool  # count(*)
    position: int


@dataclass(frozen=True, slots=True)
class BinaryOp:
    op: str
    left: Expr
    right: Expr
    position: int  # of the operator


@dataclass(frozen=True, slots=True)
class UnaryOp:
    op: str
    operand: Expr
    position: int


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # AND, OR, NOT (NOT has right None)
    left: Expr
    right: Expr | None
    position: int


@dataclass(frozen=True, slots=True)
class IsTest:
    operand: Expr
    test: str  # null, true, false, unknown
    negated: bool
    position: int


@dataclass(frozen=True, slots=True)
class Between:
    operand: Expr
    low: Expr
    high: Expr
    negated: bool
    position: int


@dataclass(frozen=True, slots=True)
class InList:
    operand: Expr
    items: tuple[Expr, ...]
    negated: bool
    position: int


@dataclass(frozen=True, slots=True)
class Like:
    operand: Expr
    pattern: Expr
    negated: bool
    case_insensitive: bool
    position: int


@dataclass(frozen=True, slots=True)
class TypeName:
    type: SqlType
    typmod: int
    label: str  # what a cast names its column (FigureColname): "int4", "varchar"
    position: int


@dataclass(frozen=True, slots=True)
class Cast:
    operand: Expr
    type_name: TypeName
    position: int


@dataclass(frozen=True, slots=True)
class Case:
    operand: Expr | None
    whens: tuple[tuple[Expr, Expr], ...]
    default: Expr | None
    position: int


@dataclass(frozen=True, slots=True)
class SqlValue:
    """current_user, session_user, current_timestamp...: keywords that read like columns."""

    name: str
    position: int


Expr = (
    Const | Param | ColumnRef | Star | FuncCall | BinaryOp | UnaryOp | BoolOp | IsTest | Between
    | InList | Like | Cast | Case | SqlValue
)

# -- statements -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    expr: Expr
    alias: str | None


@dataclass(frozen=True, slots=True)
class TableRef:
    name: str
    alias: str | None
    position: int


@dataclass(frozen=True, slots=True)
class OrderItem:
    expr: Expr
    descending: bool
    nulls_first: bool | None


@dataclass(frozen=True, slots=True)
class Select:
    targets: tuple[Target, ...]
    table: TableRef | None
    where: Expr | None
    order_by: tuple[OrderItem, ...]
    limit: Expr | None
    offset: Expr | None
    distinct: bool


@dataclass(frozen=True, slots=True)
class Show:
    name: str | None  # None: SHOW ALL


@dataclass(frozen=True, slots=True)
class SetParameter:
    name: str
    value: str | None  # None: DEFAULT
    local: bool


@dataclass(frozen=True, slots=True)
class Reset:
    name: str | None  # None: RESET ALL


@dataclass(frozen=True, slots=True)
class TransactionStmt:
    kind: str  # BEGIN, COMMIT, ROLLBACK
    tag: str


@dataclass(frozen=True, slots=True)
class DeallocateStmt:
    name: str | None  # None: ALL


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    type_name: TypeName
    not_null: bool
    primary_key: bool


@dataclass(frozen=True, slots=True)
class CreateTable:
    table: TableRef
    columns: tuple[ColumnSpec, ...]
    if_not_exists: bool


@dataclass(frozen=True, slots=True)
class DropTable:
    tables: tuple[TableRef, ...]
    if_exists: bool


@dataclass(frozen=True, slots=True)
class Insert:
    table: TableRef
    columns: tuple[tuple[str, int], ...] | None  # (name, position)
    rows: tuple[tuple[Expr, ...], ...]
    returning: tuple[Target, ...] | None


@dataclass(frozen=True, slots=True)
class Update:
    table: TableRef
    assignments: tuple[tuple[str, Expr, int], ...]  # (column, value, position)
    where: Expr | None
    returning: tuple[Target, ...] | None


@dataclass(frozen=True, slots=True)
class Delete:
    table: TableRef
    where: Expr | None
    returning: tuple[Target, ...] | None


Statement = (
    Select | Show | SetParameter | Reset | TransactionStmt | DeallocateStmt | CreateTable | DropTable
    | Insert | Update | Delete
)
