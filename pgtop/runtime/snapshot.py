"""What the supervisor publishes to viewers, and what viewers may ask of it.

A `Snapshot` is immutable: the core's `State` plus what only the runtime knows (real PIDs
of the postmaster, per-process CPU and memory, backend activity read from shared memory,
recovery progress). Log records travel separately and are never coalesced. The rows the
children publish (BackendActivity, RecoveryProgress) are defined in pgtop.common.activity,
which the children may import; viewers keep importing them from here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from pgtop.common.activity import BackendActivity, RecoveryProgress
from pgtop.core.state import State
from pgtop.core.vocabulary import LogLevel, Sig


@dataclass(frozen=True, slots=True)
class ProcessStats:
    """psutil figures for one process."""

    cpu_percent: float
    rss: int  # bytes


@dataclass(frozen=True, slots=True)
class ReplicationProgress:
    """Streaming replication as one side sees it: a primary's walsender (pg_stat_replication)
    or a standby's walreceiver and startup process (pg_stat_wal_receiver, replay). LSNs are
    byte positions; `heard_at` is when the other side last spoke (wall clock, 0: never)."""

    role: str  # "primary" or "standby"
    streaming: bool  # a walsender (primary) or walreceiver (standby) runs now
    wal_end: int  # the primary's end of WAL: its own flush position, or as last reported to the standby
    flushed: int  # WAL the standby has made durable
    replayed: int  # WAL the standby has applied
    heard_at: float

    @property
    def lag_bytes(self) -> int:
        """How far the standby's replay is behind the primary's end of WAL."""
        return max(0, self.wal_end - self.replayed)


@dataclass(frozen=True, slots=True)
class Snapshot:
    state: State
    postmaster_pid: int
    data_dir: str
    port: int
    at: float  # wall clock, seconds
    stats: dict[int, ProcessStats] = field(default_factory=dict)
    activity: tuple[BackendActivity, ...] = ()
    recovery: RecoveryProgress | None = None
    standby_of: str | None = None
    replication: ReplicationProgress | None = None
    observed: frozenset[str] = frozenset()  # attach mode: which facts were seen, not inferred (pgtop.attach.observed)


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One server log line: the structured fields and the formatted text."""

    at: float
    pid: int
    backend_type: str
    level: LogLevel
    message: str
    detail: str | None = None
    hint: str | None = None
    text: str = ""  # the line(s) exactly as written to the log


class ShutdownMode(enum.Enum):
    SMART = "smart"
    FAST = "fast"
    IMMEDIATE = "immediate"

    @property
    def signal(self) -> Sig:
        return {ShutdownMode.SMART: Sig.TERM, ShutdownMode.FAST: Sig.INT, ShutdownMode.IMMEDIATE: Sig.QUIT}[self]


class CommandRefused(Exception):
    """A command could not be carried out; the message is one line for the user."""


class Controller(Protocol):
    """What a viewer (the dashboard, `pgtop ctl`, a demo) can ask of a cluster.

    Every command ends up as a real signal to a real process, so a key press and a `kill`
    typed in another terminal take the same path.
    """

    def reload(self) -> None: ...

    def shutdown(self, mode: ShutdownMode) -> None: ...

    def signal_child(self, pid: int, started_at: float, signal: Sig) -> None:
        """Signal a child, pinned by PID and start time so a reused PID is never hit."""
        ...

    def promote(self) -> None: ...

    def logrotate(self) -> None: ...

    def start(self) -> None:
        """Start the cluster again after it shut down."""
        ...
