"""Compiled expressions, the run-time context they read, and the coercion rules between types."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pgtop.sql.errors import SqlError
from pgtop.sql.types import (
    BY_OID,
    NUMERIC_TYPES,
    STRING_TYPES,
    TEXT,
    UNKNOWN,
    SqlType,
    apply_typmod,
    can_cast,
    cast_value,
    input_value,
)


class Context:
    """What a compiled expression reads while it runs: the current row, the parameters,
    the aggregates' results and the session (Environment, settings, clock, notices)."""

    __slots__ = ("row", "params", "aggregates", "session")

    def __init__(self, session: Any, params: Sequence[Any] = (), row: Sequence[Any] | None = None,
                 aggregates: Sequence[Any] = ()) -> None:
        self.session = session
        self.params = params
        self.row = row
        self.aggregates = aggregates


@dataclass(slots=True)
class Compiled:
    type: SqlType
    fn: Callable[[Context], Any]
    position: int
    typmod: int = -1
    label: str = "?column?"  # FigureColname's answer
    strength: int = 0  # how sure the label is: 2 for columns and functions, 1 for casts and CASE
    literal: bool = False  # a constant of the query text: unknown literals convert at analysis
    value: Any = None
    param: int | None = None  # a bare $n whose type is still open


def constant(value: Any, typ: SqlType, position: int, typmod: int = -1) -> Compiled:
    return Compiled(typ, lambda ctx: value, position, typmod, literal=True, value=value)


class Params:
    """The statement's parameters: declared by Parse, or inferred from where they are used.
    `declared` None means the simple protocol, which has no parameters."""

    def __init__(self, declared: Sequence[int] | None) -> None:
        self.fixed = declared is None
        self.types: list[SqlType | None] = []
        for oid in declared or ():
            if oid and oid not in BY_OID:
                raise SqlError("42704", f"type with OID {oid} does not exist")
            self.types.append(BY_OID.get(oid) if oid else None)
        self.referenced: set[int] = set()

    def reference(self, number: int, position: int) -> SqlType | None:
        if self.fixed or number < 1 or (number > len(self.types) and number > 65535):
            raise SqlError("42P02", f"there is no parameter ${number}", position=position)
        while len(self.types) < number:
            self.types.append(None)
        self.referenced.add(number)
        return self.types[number - 1]

    def resolve(self, number: int, typ: SqlType) -> None:
        if self.types[number - 1] is None:
            self.types[number - 1] = TEXT if typ is UNKNOWN else typ

    def final_types(self) -> tuple[SqlType, ...]:
        for number, typ in enumerate(self.types, start=1):
            if typ is None and number not in self.referenced:
                raise SqlError("42P18", f"could not determine data type of parameter ${number}")
        return tuple(t or TEXT for t in self.types)


def implicitly_coercible(source: SqlType, target: SqlType) -> bool:
    """Casts PostgreSQL applies on its own to match a function or operator."""
    if source == target or source is UNKNOWN:
        return True
    if source in NUMERIC_TYPES and target in NUMERIC_TYPES:
        return source.rank < target.rank
    return source in STRING_TYPES and target is TEXT


def assignable(source: SqlType, target: SqlType) -> bool:
    """Casts allowed when storing into a column (assignment casts)."""
    if implicitly_coercible(source, target):
        return True
    if source in NUMERIC_TYPES and target in NUMERIC_TYPES:
        return True
    return target in STRING_TYPES


def coerce(compiled: Compiled, target: SqlType, params: Params, typmod: int = -1, how: str = "implicit") -> Compiled:
    """`compiled` converted to `target`. `how` is implicit, assignment or explicit; the caller
    has checked the cast is allowed (see implicitly_coercible, assignable, can_cast)."""
    source = compiled.type
    if compiled.param is not None and source is UNKNOWN:
        params.resolve(compiled.param, target)
        resolved = params.types[compiled.param - 1]
        number = compiled.param
        fn: Callable[[Context], Any] = lambda ctx: ctx.params[number - 1]  # noqa: E731
        if resolved != target or typmod >= 0:
            fn = _converter(fn, resolved or TEXT, target, typmod, how == "explicit")
        return replace(compiled, type=target, typmod=typmod, fn=fn, param=None)
    if compiled.literal and source is UNKNOWN:
        try:
            value = None if compiled.value is None else input_value(target, compiled.value)
        except SqlError as error:
            if error.position is None:  # input functions run at parse time report where
                error.position = compiled.position
            raise
        value = apply_typmod(target, value, typmod, how == "explicit")
        return replace(constant(value, target, compiled.position, typmod), label=compiled.label,
                       strength=compiled.strength)
    if source == target and typmod < 0:
        return compiled
    if not can_cast(source, target):
        raise SqlError("42846", f"cannot cast type {source} to {target}", position=compiled.position)
    fn = _converter(compiled.fn, source, target, typmod, how == "explicit")
    if compiled.literal:  # fold constants now, so bad values fail at analysis as in PostgreSQL
        return replace(constant(fn(Context(None)), target, compiled.position, typmod),
                       label=compiled.label, strength=compiled.strength)
    return replace(compiled, type=target, typmod=typmod, fn=fn, literal=False)


def _converter(fn: Callable[[Context], Any], source: SqlType, target: SqlType, typmod: int,
               explicit: bool) -> Callable[[Context], Any]:
    def convert(ctx: Context) -> Any:
        return cast_value(fn(ctx), source, target, typmod, explicit)

    return convert


def output(compiled: Compiled, params: Params) -> Compiled:
    """A result column never has type unknown: PostgreSQL makes it text."""
    if compiled.param is not None:
        params.resolve(compiled.param, TEXT)
        typ = params.types[compiled.param - 1] or TEXT
        return replace(compiled, type=typ, param=None)
    if compiled.type is UNKNOWN:
        return replace(compiled, type=TEXT)
    return compiled


@dataclass(slots=True)
class ScopeColumn:
    name: str
    type: SqlType
    typmod: int
    index: int


@dataclass(slots=True)
class Scope:
    """The columns a statement's expressions can name: one table (or none)."""

    table: str | None = None
    alias: str | None = None
    columns: list[ScopeColumn] = field(default_factory=list)

    @property
    def reference_name(self) -> str | None:
        return self.alias or self.table

    def find(self, names: tuple[str, ...], position: int) -> ScopeColumn:
        if len(names) > 2:
            raise SqlError("0A000", f"cross-database references are not implemented: {'.'.join(names)}",
                           position=position)
        if len(names) == 2 and names[0] != self.reference_name:
            raise SqlError("42P01", f'missing FROM-clause entry for table "{names[0]}"', position=position)
        for column in self.columns:
            if column.name == names[-1]:
                return column
        if len(names) == 2:
            raise SqlError("42703", f"column {names[0]}.{names[1]} does not exist", position=position)
        raise SqlError("42703", f'column "{names[0]}" does not exist', position=position)
