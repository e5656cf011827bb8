"""What the startup process's recovery reports to its caller, one event at a time."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pgtop.core.vocabulary import LogLevel
from pgtop.storage.checkpoint_log import CheckpointFlags, CheckpointResult
from pgtop.storage.lsn import format_lsn


@dataclass(frozen=True, slots=True)
class LogLine:
    """A server log line the startup process must write, with PostgreSQL's exact text."""

    message: str
    level: LogLevel = LogLevel.LOG
    detail: str | None = None
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class RedoProgress:
    """Where redo is: for the dashboard (snapshot's RecoveryProgress takes the LSN texts)."""

    redo_start: int
    replayed: int  # LSN of the last record replayed
    end: int  # end of the WAL known so far
    records_done: int
    records_total: int

    def lsn_texts(self) -> tuple[str, str, str]:
        return format_lsn(self.redo_start), format_lsn(self.replayed), format_lsn(self.end)


@dataclass(frozen=True, slots=True)
class RecoveryStarted:
    """Redo is about to begin. PostgreSQL 14 sends PMSIGNAL_RECOVERY_STARTED only when
    `archive` (archive recovery or standby); 15 sends it for every redo."""

    archive: bool


@dataclass(frozen=True, slots=True)
class ConsistentState:
    """Consistent in archive recovery: with hot_standby on, send PMSIGNAL_BEGIN_HOT_STANDBY."""

    lsn: int


@dataclass(frozen=True, slots=True)
class WaitingForWal:
    """A standby replayed all the WAL it has: PMSIGNAL_START_WALRECEIVER is the next step."""

    lsn: int


@dataclass(frozen=True, slots=True)
class EndOfStreaming:
    """Promotion while a walreceiver streams: stop it now (ShutdownWalRcv) and wait until it
    is gone; recovery then reads what it wrote to pg_wal, to the end, and finishes."""


class RecoveryMode(enum.Enum):
    NONE = "none"  # clean shutdown: no redo
    CRASH = "crash"
    ARCHIVE = "archive"  # recovery.signal
    STANDBY = "standby"  # standby.signal


@dataclass(frozen=True, slots=True)
class RecoveryOutcome:
    """How the startup process finished; it then exits 0."""

    mode: RecoveryMode
    end_of_wal: int
    timeline: int
    records_replayed: int
    promoted: bool
    checkpoint: CheckpointResult | None  # the end-of-recovery checkpoint it wrote itself
    request_checkpoint: CheckpointFlags | None  # what the checkpointer must do next (14: FORCE after promotion)


StartupEvent = LogLine | RedoProgress | RecoveryStarted | ConsistentState | WaitingForWal | EndOfStreaming
