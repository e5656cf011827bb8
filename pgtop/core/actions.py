"""Actions: what the postmaster model tells the runtime to do, in the imperative.

The runtime executes them in order. A Spawn is answered by a ChildStarted or ForkFailed
event before any other event is fed to the model; a SignalChild may name a child spawned
earlier in the same list, so the runtime resolves `child_id` to a process itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .vocabulary import CAC, ChildKind, LogLevel, PidStatus, QuitReason, Sig


@dataclass(frozen=True, slots=True)
class Spawn:
    """Fork a child. Backends carry the accepted connection, the CAC verdict (a dead_end
    child only reports it) and the cancel key; bgworkers carry their registered name."""

    child_id: int
    kind: ChildKind
    connection_id: int | None = None
    cac: CAC | None = None
    cancel_key: int = 0
    dead_end: bool = False
    bgworker: str | None = None


@dataclass(frozen=True, slots=True)
class SignalChild:
    """signal_child(): `group` also signals the child's process group (spec §4.1)."""

    child_id: int
    signal: Sig
    group: bool = False


@dataclass(frozen=True, slots=True)
class Log:
    """A line of the postmaster's own server log."""

    level: LogLevel
    message: str
    detail: str | None = None
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class WritePidStatus:
    """Rewrite line 8 of postmaster.pid."""

    status: PidStatus


@dataclass(frozen=True, slots=True)
class SetQuitReason:
    """SetQuitSignalReason(): what SIGQUIT'd backends will tell their clients."""

    reason: QuitReason


@dataclass(frozen=True, slots=True)
class OpenListenSockets:
    """Create the TCP and Unix listen sockets ("listening on ..." lines)."""


@dataclass(frozen=True, slots=True)
class ResetSharedMemory:
    """Crash reinit (T11): remove temp files if asked, destroy and recreate shared memory,
    re-read pg_control. Rewrites line 7 of postmaster.pid."""

    remove_temp_files: bool


@dataclass(frozen=True, slots=True)
class ReadConfigFile:
    """Re-read the configuration file and answer with ConfigFileRead."""


@dataclass(frozen=True, slots=True)
class ReloadHba:
    """Reload pg_hba.conf; on failure log "pg_hba.conf was not reloaded" and keep the old."""


@dataclass(frozen=True, slots=True)
class RemoveDataFile:
    """Delete a signal file in the data directory (`logrotate`)."""

    name: str


@dataclass(frozen=True, slots=True)
class ReportAutovacWorkerFailed:
    """Tell the autovacuum launcher that the worker it asked for could not start."""


@dataclass(frozen=True, slots=True)
class CheckLockFile:
    """RecheckDataDirLockFile(): if the lock file is gone or not ours, log it and SIGQUIT
    ourselves ("performing immediate shutdown because data directory lock file is invalid")."""


@dataclass(frozen=True, slots=True)
class TouchSocketFiles:
    """Touch the socket and lock files so /tmp cleaners leave them alone."""


@dataclass(frozen=True, slots=True)
class CancelBackup:
    """CancelBackup(): rename backup_label to backup_label.old (14, T8)."""


@dataclass(frozen=True, slots=True)
class Exit:
    """ExitPostmaster(code): remove the lock file and sockets, then exit."""

    code: int


Action = Union[
    Spawn,
    SignalChild,
    Log,
    WritePidStatus,
    SetQuitReason,
    OpenListenSockets,
    ResetSharedMemory,
    ReadConfigFile,
    ReloadHba,
    RemoveDataFile,
    ReportAutovacWorkerFailed,
    CheckLockFile,
    TouchSocketFiles,
    CancelBackup,
    Exit,
]
