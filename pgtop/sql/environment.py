"""What the engine needs from the backend it runs in: an `Environment` (the process, the
server, the other backends) and a `Storage` (the tables, and transaction hooks so the backend
can WAL-log changes and flush at commit)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

Row = tuple[str | None, ...]  # a stored row: each value in its type's text form, None for NULL


@dataclass(frozen=True, slots=True)
class ColumnDef:
    name: str
    type_name: str  # pg_type name: int4, int8, int2, text, varchar, bool, numeric, float8, timestamptz
    type_modifier: int = -1  # varchar(n) -> n + 4; numeric(p, s) -> ((p << 16) | s) + 4
    not_null: bool = False


@dataclass(frozen=True, slots=True)
class TableDef:
    name: str
    columns: tuple[ColumnDef, ...]
    primary_key: tuple[str, ...] = ()


class Storage(Protocol):
    """Tables and their rows. Calls arrive inside a transaction the engine opened with
    `begin()`; `commit()` must make the changes durable before it returns; `abort()` undoes
    them. Table definitions change transactionally too (CREATE TABLE rolls back)."""

    def begin(self) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...

    def get_table(self, name: str) -> TableDef | None: ...

    def create_table(self, table: TableDef) -> None: ...

    def drop_table(self, name: str) -> None: ...

    def insert(self, table: str, rows: Sequence[Row]) -> None: ...

    def scan(self, table: str) -> Iterable[tuple[int, Row]]:
        """Every visible row with a row id that stays valid until the transaction ends."""
        ...

    def update(self, table: str, rows: Mapping[int, Row]) -> None: ...

    def delete(self, table: str, row_ids: Collection[int]) -> None: ...


@dataclass(frozen=True, slots=True)
class SettingInfo:
    """A server setting as the backend sees it. `context` is pg_settings.context (internal,
    postmaster, sighup, superuser-backend, backend, superuser, user); `kind` one of string,
    bool, integer, real, enum (with `choices`)."""

    name: str  # as PostgreSQL spells it: "TimeZone", "work_mem"
    value: str
    context: str = "user"
    description: str = ""
    kind: str = "string"
    choices: tuple[str, ...] = ()


class ActivityRow(Protocol):
    """One backend as pg_stat_activity shows it (`pgtop.common.activity.BackendActivity` has
    these fields; the engine only reads them, so it need not import them)."""

    pid: int
    backend_type: str
    user: str
    database: str
    application_name: str
    client_addr: str | None
    state: str
    query: str
    backend_start: float  # epoch seconds
    state_change: float


class Environment(Protocol):
    def backend_pid(self) -> int: ...

    def version(self) -> str:
        """version(): "PostgreSQL 14.13 (pgtop 0.1.0) on x86_64-pc-linux-gnu, ..."."""
        ...

    def postmaster_start_time(self) -> dt.datetime: ...

    def in_recovery(self) -> bool:
        """pg_is_in_recovery(); writes are refused with 25006 while it is true."""
        ...

    def sleep(self, seconds: float) -> None:
        """pg_sleep(): must return early by raising when the backend is cancelled (PgError
        57014) or told to terminate (SessionTerminated): `Interrupts.sleep` does both."""
        ...

    def check_for_interrupts(self) -> None:
        """Called between rows of long scans; raises as `sleep` does."""
        ...

    def reload_config(self) -> bool:
        """pg_reload_conf(): signal the postmaster with SIGHUP."""
        ...

    def terminate_backend(self, pid: int) -> bool:
        """pg_terminate_backend(): False when `pid` is not a backend."""
        ...

    def cancel_backend(self, pid: int) -> bool: ...

    def current_wal_lsn(self) -> str:
        """pg_current_wal_lsn() as "X/X"."""
        ...

    def settings(self) -> Mapping[str, SettingInfo]:
        """The server's settings keyed by lower-case name (see `pgtop.sql.settings`)."""
        ...

    def activity(self) -> Sequence[ActivityRow]:
        """The rows of pg_stat_activity."""
        ...
