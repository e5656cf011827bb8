"""A backend's session on the tables: reads see committed rows, writes are WAL-logged.

Reads see what other backends committed up to the last refresh (auto_refresh: before each
call, which costs nothing when the WAL has not moved), plus this session's own uncommitted
changes. Each write appends its WAL record at once (so a crash leaves uncommitted records for
recovery to discard); commit() appends COMMIT and fsyncs before returning: committed means
durable. A write outside begin()/commit() is its own transaction, as a statement outside a
transaction block is in PostgreSQL. XIDs are assigned at the first write, under the WAL
insert lock, so read-only transactions and standbys never consume one (as in PostgreSQL).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Self, TypeVar

from pgtop.storage import errors
from pgtop.storage.errors import StorageError
from pgtop.storage.overlay import Transaction
from pgtop.storage.records import RecordType, encode_payload
from pgtop.storage.replica import open_replica
from pgtop.storage.tables import Column, Row, Table, columns_to_json, row_ids
from pgtop.storage.values import ColumnType
from pgtop.storage.wal import MAX_RECORD_SIZE, Wal

ROWS_PER_RECORD = 1000
_Result = TypeVar("_Result")


class Database:
    """One session. Not thread-safe: one per backend (or per thread)."""

    def __init__(self, datadir: str, *, auto_refresh: bool = True) -> None:
        self.datadir = datadir
        self.auto_refresh = auto_refresh
        self._wal = Wal(datadir)
        self._replica = open_replica(datadir, self._wal)
        self._txn: Transaction | None = None

    def close(self) -> None:
        if self._txn is not None and self._txn.xid is not None:
            self.rollback()
        self._replica.close()
        self._wal.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -----------------------------------------------------------------------------

    def refresh(self) -> int:
        """See what was committed since; returns the number of WAL records applied."""
        return self._replica.refresh()

    @property
    def position(self) -> int:
        """The LSN this session's view of the tables is current to."""
        return self._replica.position

    @property
    def in_transaction(self) -> bool:
        return self._txn is not None

    @property
    def transaction_failed(self) -> bool:
        return self._txn is not None and self._txn.failed

    @property
    def xid(self) -> int | None:
        """The current transaction's xid, None until it writes."""
        return None if self._txn is None else self._txn.xid

    # -- reading ---------------------------------------------------------------------------

    def table_names(self) -> list[str]:
        self._before_read()
        names = self._replica.tables.tables
        return sorted(names) if self._txn is None else self._txn.names(names)

    def has_table(self, name: str) -> bool:
        self._before_read()
        return self._resolve(name) is not None

    def columns(self, name: str) -> tuple[Column, ...]:
        self._before_read()
        return self._require(name).columns

    def definition(self, name: str) -> dict[str, Any] | None:
        """What create_table(definition=...) stored with the table; None if nothing."""
        self._before_read()
        return self._require(name).definition

    def rows(self, name: str) -> list[Row]:
        """Every row visible to this session, in insertion order."""
        return [row for _row_id, row in self.scan(name)]

    def scan(self, name: str) -> list[tuple[int, Row]]:
        """(row id, row) for every visible row; ids stay valid until the transaction ends."""
        self._before_read()
        table = self._require(name)
        rows = table.rows if self._txn is None else self._txn.visible(table)
        return list(rows.items())

    def _before_read(self) -> None:
        self._check_not_failed()
        if self.auto_refresh:
            self._replica.refresh()

    def _resolve(self, name: str) -> Table | None:
        committed = self._replica.tables.tables
        return committed.get(name) if self._txn is None else self._txn.resolve(name, committed)

    def _require(self, name: str) -> Table:
        table = self._resolve(name)
        if table is None:
            raise errors.undefined_table(name)
        return table

    # -- transactions ----------------------------------------------------------------------

    def begin(self) -> None:
        """BEGIN: start a transaction block."""
        if self._txn is not None:
            raise StorageError("there is already a transaction in progress", sqlstate="25001")
        self._txn = Transaction(explicit=True)

    def current_xid(self) -> int:
        """txid_current(): the transaction's xid, assigning one if it has none yet."""
        self._check_not_failed()
        if self._txn is not None and self._txn.xid is not None:
            return self._txn.xid
        if self._wal.state().in_recovery:
            raise StorageError("cannot assign TransactionIds during recovery", sqlstate="55000")
        xid = self._wal.allocate_xid()
        if self._txn is not None:
            self._txn.xid = xid
        return xid

    def commit(self) -> int | None:
        """COMMIT: returns the COMMIT record's LSN, or None if nothing was written.

        A transaction that failed is rolled back instead, as PostgreSQL turns COMMIT into
        ROLLBACK. Raises if another session committed a conflicting change first (the
        transaction is then rolled back).
        """
        txn, self._txn = self._txn, None
        if txn is None or txn.xid is None:
            return None
        if txn.failed:
            self._wal.append(RecordType.ABORT, txn.xid)
            return None
        with self._wal.locked() as insertion:
            self._replica.refresh()  # nobody else can write now: this is the final state
            conflict = txn.conflict(self._replica.tables.tables)
            if conflict is not None:
                insertion.append(RecordType.ABORT, txn.xid)
                raise conflict
            lsn = insertion.append(RecordType.COMMIT, txn.xid, {"time": time.time()})
        self._wal.flush()
        return lsn

    def rollback(self) -> None:
        """ROLLBACK: discard the transaction (an ABORT record if it wrote anything)."""
        txn, self._txn = self._txn, None
        if txn is not None and txn.xid is not None:
            self._wal.append(RecordType.ABORT, txn.xid)

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """BEGIN ... COMMIT, or ROLLBACK if the block raises."""
        self.begin()
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def _check_not_failed(self) -> None:
        if self._txn is not None and self._txn.failed:
            raise StorageError(
                "current transaction is aborted, commands ignored until end of transaction block",
                sqlstate="25P02",
            )

    def _statement(self, command: str, work: Callable[[Transaction], _Result]) -> _Result:
        """Run one write statement: in the open transaction, or in its own implicit one."""
        self._check_not_failed()
        if self._wal.state().in_recovery:
            raise errors.read_only(command)
        if self._txn is None:
            self._txn = Transaction(explicit=False)
        txn = self._txn
        try:
            self._replica.refresh()
            result = work(txn)
        except BaseException:
            if txn.explicit:
                txn.failed = True
            else:
                self.rollback()
            raise
        if not txn.explicit:
            self.commit()
        return result

    def _append(self, txn: Transaction, records: list[tuple[RecordType, bytes]]) -> list[int]:
        with self._wal.locked() as insertion:
            if txn.xid is None:
                txn.xid = insertion.allocate_xid()
            return [insertion.append(kind, txn.xid, payload) for kind, payload in records]

    # -- writing ---------------------------------------------------------------------------

    def create_table(
        self, name: str, columns: Sequence[tuple[str, str | ColumnType]], *, definition: dict[str, Any] | None = None,
    ) -> None:
        """CREATE TABLE name (column type, ...); `definition` (JSON-able) is kept with it."""
        def work(txn: Transaction) -> None:
            if self._resolve(name) is not None:
                raise errors.duplicate_table(name)
            typed = _typed_columns(columns)
            payload = encode_payload({"table": name, "columns": columns_to_json(typed), "definition": definition})
            [lsn] = self._append(txn, [(RecordType.CREATE_TABLE, payload)])
            txn.create(Table(name, typed, {}, relfilenode=lsn, definition=definition))
        self._statement("CREATE TABLE", work)

    def drop_table(self, name: str) -> None:
        """DROP TABLE name."""
        def work(txn: Transaction) -> None:
            table = self._require(name)
            self._append(txn, [(RecordType.DROP_TABLE, _payload(table, {}))])
            txn.drop(table)
        self._statement("DROP TABLE", work)

    def insert(self, name: str, rows: Sequence[Sequence[Any]], columns: Sequence[str] | None = None) -> int:
        """INSERT INTO name [(columns)] VALUES ...; returns the number of rows inserted."""
        def work(txn: Transaction) -> int:
            table = self._require(name)
            checked = [_check_row(table, row, columns) for row in rows]
            chunks = _chunks(table, [table.encode_row(row) for row in checked], "rows")
            lsns = self._append(txn, [(RecordType.INSERT, payload) for payload, _count in chunks])
            ids = [row_id for lsn, (_payload_, count) in zip(lsns, chunks) for row_id in row_ids(lsn, count)]
            txn.insert(table, dict(zip(ids, checked)))
            return len(checked)
        return self._statement("INSERT", work)

    def update(self, name: str, changes: Mapping[int, Sequence[Any]]) -> int:
        """UPDATE: give rows (by id, from scan()) all-new values; returns how many."""
        def work(txn: Transaction) -> int:
            table = self._require(name)
            visible = txn.visible(table)
            checked = {row_id: _check_row(table, row, None) for row_id, row in changes.items() if row_id in visible}
            stored = [[row_id, *table.encode_row(row)] for row_id, row in checked.items()]
            self._append(txn, [(RecordType.UPDATE, payload) for payload, _count in _chunks(table, stored, "rows")])
            txn.update(table, checked)
            return len(checked)
        return self._statement("UPDATE", work)

    def delete(self, name: str, ids: Collection[int]) -> int:
        """DELETE rows by id (from scan()); returns how many were there."""
        def work(txn: Transaction) -> int:
            table = self._require(name)
            visible = txn.visible(table)
            present = [row_id for row_id in ids if row_id in visible]
            self._append(txn, [(RecordType.DELETE, payload) for payload, _count in _chunks(table, present, "row_ids")])
            txn.delete(table, present)
            return len(present)
        return self._statement("DELETE", work)


def _typed_columns(columns: Sequence[tuple[str, str | ColumnType]]) -> tuple[Column, ...]:
    typed = []
    seen: set[str] = set()
    for column_name, kind in columns:
        if column_name in seen:
            raise StorageError(f'column "{column_name}" specified more than once', sqlstate="42701")
        seen.add(column_name)
        typed.append(Column(column_name, ColumnType.from_name(kind)))
    return tuple(typed)


def _check_row(table: Table, row: Sequence[Any], columns: Sequence[str] | None) -> Row:
    """Coerce one row to the table's types; missing columns become NULL."""
    targets = list(columns) if columns is not None else list(table.column_names)
    if len(row) > len(targets):
        raise StorageError("INSERT has more expressions than target columns", sqlstate="42601")
    positions = {column.name: index for index, column in enumerate(table.columns)}
    values: list[Any] = [None] * len(table.columns)
    for target, value in zip(targets, row):
        index = positions.get(target)
        if index is None:
            raise StorageError(f'column "{target}" of relation "{table.name}" does not exist', sqlstate="42703")
        values[index] = table.columns[index].type.coerce(value)
    return tuple(values)


def _payload(table: Table, extra: dict[str, Any]) -> bytes:
    return encode_payload({"table": table.name, "relfilenode": table.relfilenode, **extra})


def _chunks(table: Table, items: list[Any], key: str) -> list[tuple[bytes, int]]:
    """Payloads (and how many items each holds), split so no record outgrows a WAL segment."""
    payloads = []
    for start in range(0, len(items), ROWS_PER_RECORD):
        payloads.extend(_split(table, items[start:start + ROWS_PER_RECORD], key))
    return payloads


def _split(table: Table, chunk: list[Any], key: str) -> list[tuple[bytes, int]]:
    payload = _payload(table, {key: chunk})
    if len(payload) + 64 <= MAX_RECORD_SIZE:
        return [(payload, len(chunk))]
    if len(chunk) == 1:
        size = len(json.dumps(chunk[0]))
        raise StorageError(f"row is too big: size {size}, maximum size {MAX_RECORD_SIZE - 64}", sqlstate="54000")
    middle = len(chunk) // 2
    return _split(table, chunk[:middle], key) + _split(table, chunk[middle:], key)
