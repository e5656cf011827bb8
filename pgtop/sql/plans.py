"""What analysis produces for a statement (a `Plan`), what running one needs (an `Execution`),
and the row sources statements read: stored tables and pg_stat_activity."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pgtop.sql.compiled import Context, Scope, ScopeColumn
from pgtop.sql.environment import Environment, Storage, TableDef
from pgtop.sql.errors import undefined_table
from pgtop.sql.types import (
    BY_NAME,
    INET,
    INT4,
    NAME,
    TEXT,
    TIMESTAMPTZ,
    SqlType,
    input_value,
    output_value,
)

Values = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class OutputColumn:
    name: str
    type: SqlType
    typmod: int = -1


@dataclass(slots=True)
class Execution:
    """Everything a running statement may touch."""

    session: Any  # the engine's SessionState: env, settings, user, clocks, notices
    storage: Storage
    params: Sequence[Any]

    @property
    def env(self) -> Environment:
        return self.session.env

    def context(self, row: Sequence[Any] | None = None, aggregates: Sequence[Any] = ()) -> Context:
        return Context(self.session, self.params, row, aggregates)

    def notice(self, sqlstate: str, message: str, severity: str = "NOTICE") -> None:
        self.session.notify(severity, sqlstate, message)


@dataclass(frozen=True, slots=True)
class Plan:
    """A statement ready to run: `run` returns the rows (Python values) and the command tag."""

    columns: tuple[OutputColumn, ...] | None
    run: Callable[[Execution], tuple[list[Values], str]]


@dataclass(frozen=True, slots=True)
class Source:
    scope: Scope
    rows: Callable[[Execution], Iterator[tuple[int, Values]]]
    table: TableDef | None = None  # None for pg_stat_activity, which cannot be written


def table_scope(table: TableDef, alias: str | None = None) -> Scope:
    columns = [ScopeColumn(c.name, BY_NAME[c.type_name], c.type_modifier, i) for i, c in enumerate(table.columns)]
    return Scope(table.name, alias, columns)


def decode_row(table: TableDef, row: Sequence[str | None]) -> Values:
    return tuple(None if text is None else input_value(BY_NAME[c.type_name], text)
                 for c, text in zip(table.columns, row))


def encode_row(table: TableDef, values: Sequence[Any]) -> tuple[str | None, ...]:
    return tuple(None if v is None else output_value(BY_NAME[c.type_name], v) for c, v in zip(table.columns, values))


def table_source(storage: Storage, name: str, alias: str | None, position: int) -> Source:
    table = storage.get_table(name)
    if table is None:
        raise undefined_table(name, position)

    def rows(ex: Execution) -> Iterator[tuple[int, Values]]:
        current = ex.storage.get_table(name)
        if current is None:  # dropped since the statement was prepared
            raise undefined_table(name)
        for count, (row_id, row) in enumerate(ex.storage.scan(name)):
            if count % 1000 == 999:
                ex.env.check_for_interrupts()
            yield row_id, decode_row(current, row)

    return Source(table_scope(table, alias), rows, table)


# pg_stat_activity's columns, in PostgreSQL's order (the subset pgtop keeps).
ACTIVITY_COLUMNS: tuple[tuple[str, SqlType], ...] = (
    ("datname", NAME), ("pid", INT4), ("usename", NAME), ("application_name", TEXT), ("client_addr", INET),
    ("backend_start", TIMESTAMPTZ), ("state_change", TIMESTAMPTZ), ("state", TEXT), ("query", TEXT),
    ("backend_type", TEXT),
)


def _timestamp(epoch: float | None) -> dt.datetime | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


def activity_source(alias: str | None) -> Source:
    scope = Scope("pg_stat_activity", alias,
                  [ScopeColumn(name, typ, -1, i) for i, (name, typ) in enumerate(ACTIVITY_COLUMNS)])

    def rows(ex: Execution) -> Iterator[tuple[int, Values]]:
        for index, a in enumerate(ex.env.activity()):
            yield index, (a.database or None, a.pid, a.user or None, a.application_name, a.client_addr,
                          _timestamp(a.backend_start), _timestamp(a.state_change), a.state or None,
                          a.query, a.backend_type)

    return Source(scope, rows)


SYSTEM_VIEWS = {"pg_stat_activity": activity_source}


def source_for(storage: Storage, name: str, alias: str | None, position: int) -> Source:
    if name in SYSTEM_VIEWS:
        return SYSTEM_VIEWS[name](alias)
    return table_source(storage, name, alias, position)


def empty_source() -> Source:
    """SELECT without FROM: one row with no columns."""

    def rows(ex: Execution) -> Iterable[tuple[int, Values]]:
        return iter([(0, ())])

    return Source(Scope(), rows)  # type: ignore[arg-type]
