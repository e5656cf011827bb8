"""Storage failures, each carrying PostgreSQL's message text, SQLSTATE and log level."""

from __future__ import annotations

from pgtop.core.vocabulary import LogLevel


class StorageError(Exception):
    """A failure a client or the server log can show as is: one-line message, SQLSTATE, level."""

    def __init__(
        self,
        message: str,
        *,
        sqlstate: str = "XX000",
        level: LogLevel = LogLevel.ERROR,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.level = level
        self.detail = detail
        self.hint = hint


class ControlFileError(StorageError):
    """global/pg_control is unreadable: the postmaster cannot start (exit 1)."""

    exit_code = 1


class ControlFileMissing(ControlFileError):
    """No global/pg_control: PostgreSQL's checkControlFile() message; the postmaster exits 2.

    `str(error)` is the first line; `stderr_text(progname)` is the three lines PostgreSQL
    writes to stderr.
    """

    exit_code = 2

    def __init__(self, datadir: str, path: str, reason: str) -> None:
        super().__init__("could not find the database system", level=LogLevel.FATAL)
        self.datadir = datadir
        self.path = path
        self.reason = reason

    def stderr_text(self, progname: str = "pgtop") -> str:
        return (
            f"{progname}: could not find the database system\n"
            f'Expected to find it in the directory "{self.datadir}",\n'
            f'but could not open file "{self.path}": {self.reason}\n'
        )


class WalError(StorageError):
    """The WAL cannot be read or written where it must be."""


class RecoveryError(StorageError):
    """The startup process cannot recover: it logs this (PANIC/FATAL) and exits 1."""


def undefined_table(name: str) -> StorageError:
    return StorageError(f'relation "{name}" does not exist', sqlstate="42P01")


def duplicate_table(name: str) -> StorageError:
    return StorageError(f'relation "{name}" already exists', sqlstate="42P07")


def read_only(command: str) -> StorageError:
    return StorageError(f"cannot execute {command} in a read-only transaction", sqlstate="25006")
