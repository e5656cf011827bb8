"""pgtop.sql's `Storage` protocol on a storage `Database`: the SQL engine's tables, WAL-logged.

The SQL engine keeps its own table definitions (TableDef) and stores each value in its
type's text form, so here every column is `text` and the TableDef rides along as the
table's definition. Storage errors come back as the wire protocol's PgError, with the same
SQLSTATE and text.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from pgtop.sql.environment import ColumnDef, Row, TableDef
from pgtop.storage.database import Database
from pgtop.storage.errors import StorageError
from pgtop.wire.errors import PgError

_Result = TypeVar("_Result")


def table_def_to_json(table: TableDef) -> dict[str, Any]:
    return {
        "columns": [[c.name, c.type_name, c.type_modifier, c.not_null] for c in table.columns],
        "primary_key": list(table.primary_key),
    }


def table_def_from_json(name: str, stored: Mapping[str, Any]) -> TableDef:
    columns = tuple(ColumnDef(n, type_name, modifier, not_null) for n, type_name, modifier, not_null in stored["columns"])
    return TableDef(name, columns, tuple(stored["primary_key"]))


@contextmanager
def _as_pg_errors() -> Iterator[None]:
    try:
        yield
    except StorageError as error:
        raise PgError(error.sqlstate, error.message, detail=error.detail, hint=error.hint) from None


class WalStorage:
    """One backend's Storage: reads see committed rows (refreshed per call), writes are
    WAL-logged at once, commit() fsyncs the WAL before returning."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def _call(self, action: Callable[[], _Result]) -> _Result:
        with _as_pg_errors():
            return action()

    def begin(self) -> None:
        if not self.database.in_transaction:  # a second BEGIN is the session's warning, not ours
            self._call(self.database.begin)

    def commit(self) -> None:
        self._call(self.database.commit)

    def abort(self) -> None:
        self._call(self.database.rollback)

    def get_table(self, name: str) -> TableDef | None:
        if not self._call(lambda: self.database.has_table(name)):
            return None
        stored = self._call(lambda: self.database.definition(name))
        if stored is None:  # made through the storage API directly: text columns
            columns = self._call(lambda: self.database.columns(name))
            return TableDef(name, tuple(ColumnDef(c.name, c.type.typname) for c in columns))
        return table_def_from_json(name, stored)

    def create_table(self, table: TableDef) -> None:
        columns = [(column.name, "text") for column in table.columns]
        self._call(lambda: self.database.create_table(table.name, columns, definition=table_def_to_json(table)))

    def drop_table(self, name: str) -> None:
        self._call(lambda: self.database.drop_table(name))

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        self._call(lambda: self.database.insert(table, rows))

    def scan(self, table: str) -> Iterator[tuple[int, Row]]:
        return iter(self._call(lambda: self.database.scan(table)))

    def update(self, table: str, rows: Mapping[int, Row]) -> None:
        self._call(lambda: self.database.update(table, rows))

    def delete(self, table: str, row_ids: Collection[int]) -> None:
        self._call(lambda: self.database.delete(table, row_ids))
