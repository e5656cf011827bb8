"""Tables and the committed state built from WAL records (the "table image").

A TableSet is what redo produces: every table's committed rows, plus the records of the
transactions still in flight, buffered per xid until their COMMIT (applied in order) or
ABORT (discarded). A shutdown checkpoint or an end of recovery discards whatever is still in
flight: the processes that ran those transactions are gone, so they can never commit (the
same reason PostgreSQL treats such xids as aborted).

Rows have ids that every replica computes alike: the LSN of the INSERT record that wrote the
row times ROW_ID_SLOTS, plus the row's place in that record. UPDATE keeps a row's id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pgtop.storage.records import RecordType, WalRecord
from pgtop.storage.values import ColumnType

ROW_ID_SLOTS = 1024  # more than the rows one INSERT record may carry
Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType


@dataclass(slots=True)
class Table:
    """One table's contents. `relfilenode` (the LSN of its CREATE record) tells two tables of
    the same name apart; `changed_at` is the commit LSN of its last change; `definition` is
    whatever the creator asked to keep with the table (the SQL layer's TableDef)."""

    name: str
    columns: tuple[Column, ...]
    rows: dict[int, Row] = field(default_factory=dict)
    relfilenode: int = 0
    changed_at: int = 0
    definition: dict[str, Any] | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def decode_row(self, stored: Sequence[Any]) -> Row:
        return tuple(column.type.decode(value) for column, value in zip(self.columns, stored))

    def encode_row(self, row: Sequence[Any]) -> list[Any]:
        return [column.type.encode(value) for column, value in zip(self.columns, row)]


def row_ids(insert_lsn: int, count: int) -> list[int]:
    return [insert_lsn * ROW_ID_SLOTS + index for index in range(count)]


def columns_from_json(stored: Sequence[Sequence[str]]) -> tuple[Column, ...]:
    return tuple(Column(name, ColumnType.from_name(kind)) for name, kind in stored)


def columns_to_json(columns: Sequence[Column]) -> list[list[str]]:
    return [[column.name, column.type.value] for column in columns]


# A buffered record of an in-flight transaction: (record type, LSN, payload)
PendingRecord = tuple[int, int, dict[str, Any]]


class TableSet:
    """The result of redo: committed tables and in-flight transactions."""

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}
        self.pending: dict[int, list[PendingRecord]] = {}
        self.max_xid = 0
        self.last_commit_time: float | None = None  # for "last completed transaction was at log time"
        self.last_checkpoint = 0  # LSN of the last checkpoint record applied

    def apply(self, record: WalRecord) -> None:
        """Redo one record."""
        kind = record.type
        self.max_xid = max(self.max_xid, record.xid)
        if kind.transactional:
            self.pending.setdefault(record.xid, []).append((int(kind), record.lsn, record.data))
        elif kind is RecordType.COMMIT:
            self._commit(self.pending.pop(record.xid, []), record.lsn)
            self.last_commit_time = record.data.get("time", self.last_commit_time)
        elif kind is RecordType.ABORT:
            self.pending.pop(record.xid, None)
        elif kind in (RecordType.CHECKPOINT_SHUTDOWN, RecordType.END_OF_RECOVERY):
            self.pending.clear()
        if kind.is_checkpoint:
            self.last_checkpoint = record.lsn

    def _commit(self, records: list[PendingRecord], commit_lsn: int) -> None:
        # The committing backend checked, under the WAL insert lock, that these operations
        # still make sense; a record that does not is skipped so redo stays deterministic.
        for kind, lsn, data in records:
            name = data["table"]
            table = self.tables.get(name)
            if kind == RecordType.CREATE_TABLE and table is None:
                self.tables[name] = Table(name, columns_from_json(data["columns"]), {}, lsn, commit_lsn,
                                          data.get("definition"))
            elif table is None or table.relfilenode != data["relfilenode"]:
                continue
            elif kind == RecordType.DROP_TABLE:
                del self.tables[name]
            else:
                _change_rows(table, kind, lsn, data)
                table.changed_at = commit_lsn

    def discard_in_flight(self) -> None:
        self.pending.clear()


def _change_rows(table: Table, kind: int, lsn: int, data: dict[str, Any]) -> None:
    rows = table.rows
    if kind == RecordType.INSERT:
        stored = data["rows"]
        rows.update(zip(row_ids(lsn, len(stored)), map(table.decode_row, stored)))
    elif kind == RecordType.UPDATE:
        for row_id, *values in data["rows"]:
            if row_id in rows:  # a row deleted meanwhile stays deleted
                rows[row_id] = table.decode_row(values)
    elif kind == RecordType.DELETE:
        for row_id in data["row_ids"]:
            rows.pop(row_id, None)
