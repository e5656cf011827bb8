"""In-memory implementations of Storage and Environment, for tests and for trying the engine
without a server. `MemoryDatabase` is shared by sessions (thread-safe); each session gets its
own `MemoryStorage`, whose changes apply at once and are undone if the transaction aborts."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from pgtop.sql.environment import ActivityRow, Row, SettingInfo, TableDef
from pgtop.sql.settings import standard_settings
from pgtop.wire.interrupts import Interrupts


@dataclass
class _Table:
    definition: TableDef
    rows: dict[int, Row] = field(default_factory=dict)


class MemoryDatabase:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tables: dict[str, _Table] = {}
        self._row_ids = itertools.count(1)
        self.commits = 0  # committed transactions, for tests that watch durability hooks

    def next_row_id(self) -> int:
        return next(self._row_ids)


class MemoryStorage:
    def __init__(self, database: MemoryDatabase | None = None) -> None:
        self.database = database or MemoryDatabase()
        self._undo: list[Callable[[], None]] = []

    def begin(self) -> None:
        self._undo = []

    def commit(self) -> None:
        self._undo = []
        with self.database.lock:
            self.database.commits += 1

    def abort(self) -> None:
        with self.database.lock:
            for undo in reversed(self._undo):
                undo()
        self._undo = []

    def get_table(self, name: str) -> TableDef | None:
        with self.database.lock:
            table = self.database.tables.get(name)
            return table.definition if table else None

    def create_table(self, table: TableDef) -> None:
        tables = self.database.tables
        with self.database.lock:
            tables[table.name] = _Table(table)
        self._undo.append(lambda: tables.pop(table.name, None))

    def drop_table(self, name: str) -> None:
        tables = self.database.tables
        with self.database.lock:
            dropped = tables.pop(name)
        self._undo.append(lambda: tables.__setitem__(name, dropped))

    def _rows(self, table: str) -> dict[int, Row]:
        return self.database.tables[table].rows

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        with self.database.lock:
            stored = self._rows(table)
            ids = []
            for row in rows:
                row_id = self.database.next_row_id()
                stored[row_id] = tuple(row)
                ids.append(row_id)
        self._undo.append(lambda: [stored.pop(i, None) for i in ids])

    def scan(self, table: str) -> Iterator[tuple[int, Row]]:
        with self.database.lock:
            snapshot = list(self._rows(table).items())
        return iter(snapshot)

    def update(self, table: str, rows: Mapping[int, Row]) -> None:
        with self.database.lock:
            stored = self._rows(table)
            old = {row_id: stored[row_id] for row_id in rows}
            stored.update({row_id: tuple(row) for row_id, row in rows.items()})
        self._undo.append(lambda: stored.update(old))

    def delete(self, table: str, row_ids: Collection[int]) -> None:
        with self.database.lock:
            stored = self._rows(table)
            old = {row_id: stored.pop(row_id) for row_id in row_ids}
        self._undo.append(lambda: stored.update(old))


class MemoryEnvironment:
    """An Environment with fixed answers, hooks for the rest, and an `Interrupts` to sleep on."""

    def __init__(
        self,
        pid: int = 4242,
        *,
        interrupts: Interrupts | None = None,
        settings: Mapping[str, SettingInfo] | None = None,
        in_recovery: bool = False,
        terminate: Callable[[int], bool] = lambda pid: False,
        cancel: Callable[[int], bool] = lambda pid: False,
        activity: Callable[[], Sequence[ActivityRow]] = lambda: (),
    ) -> None:
        self.pid = pid
        self.interrupts = interrupts
        self._settings = dict(settings) if settings is not None else standard_settings()
        self.recovery = in_recovery
        self._terminate, self._cancel, self._activity = terminate, cancel, activity
        self.started = dt.datetime.now(dt.timezone.utc)
        self.reloads = 0
        self.lsn = 0x1500000

    def backend_pid(self) -> int:
        return self.pid

    def version(self) -> str:
        return "PostgreSQL 14.13 (pgtop) on x86_64-pc-linux-gnu, compiled by Python, 64-bit"

    def postmaster_start_time(self) -> dt.datetime:
        return self.started

    def in_recovery(self) -> bool:
        return self.recovery

    def sleep(self, seconds: float) -> None:
        if self.interrupts is not None:
            self.interrupts.sleep(seconds)
        else:
            time.sleep(max(seconds, 0.0))

    def check_for_interrupts(self) -> None:
        if self.interrupts is not None:
            self.interrupts.check()

    def reload_config(self) -> bool:
        self.reloads += 1
        return True

    def terminate_backend(self, pid: int) -> bool:
        return self._terminate(pid)

    def cancel_backend(self, pid: int) -> bool:
        return self._cancel(pid)

    def current_wal_lsn(self) -> str:
        return f"{self.lsn >> 32:X}/{self.lsn & 0xFFFFFFFF:X}"

    def settings(self) -> Mapping[str, SettingInfo]:
        return self._settings

    def activity(self) -> Sequence[ActivityRow]:
        return self._activity()
