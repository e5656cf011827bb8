"""The postmaster's words: states, levels, child kinds, signals and exit statuses.

Names keep PostgreSQL's spelling (pmState, Shutdown, StartupStatus, CAC_*) so the code reads
side by side with postmaster.c and `spec/postmaster.md`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PMState(enum.IntEnum):
    """pmState (spec §1). Ordered: the postmaster compares with `<`."""

    INIT = 0
    STARTUP = 1
    RECOVERY = 2
    HOT_STANDBY = 3
    RUN = 4
    STOP_BACKENDS = 5
    WAIT_BACKENDS = 6
    SHUTDOWN = 7
    SHUTDOWN_2 = 8
    WAIT_DEAD_END = 9
    NO_CHILDREN = 10

    @property
    def pg_name(self) -> str:
        """The C name, e.g. ``PM_WAIT_BACKENDS``."""
        return f"PM_{self.name}"


PM_STATE_MEANING: dict[PMState, str] = {
    PMState.INIT: "initialising: config, lock file, shared memory, sockets",
    PMState.STARTUP: "waiting for the startup process (first start or crash recovery)",
    PMState.RECOVERY: "redo has started (archive recovery or standby)",
    PMState.HOT_STANDBY: "consistent standby: read-only connections accepted",
    PMState.RUN: "normal operation",
    PMState.STOP_BACKENDS: "sending the stop signals (transient)",
    PMState.WAIT_BACKENDS: "waiting for backends and auxiliary processes to exit",
    PMState.SHUTDOWN: "checkpointer is writing the shutdown checkpoint",
    PMState.SHUTDOWN_2: "archiver and walsenders do their last cycle",
    PMState.WAIT_DEAD_END: "waiting for dead-end children; no connections accepted",
    PMState.NO_CHILDREN: "everything but the logger is gone: exit or reinitialise",
}


class Shutdown(enum.IntEnum):
    """The Shutdown level (spec §0). It only ever goes up."""

    NO = 0
    SMART = 1
    FAST = 2
    IMMEDIATE = 3


class StartupStatus(enum.Enum):
    NOT_RUNNING = "not running"
    RUNNING = "running"
    SIGNALED = "signaled"  # the postmaster sent it SIGQUIT or SIGKILL
    CRASHED = "crashed"


class ConnsAllowed(enum.Enum):
    """PostgreSQL 14's smart-shutdown sub-state (spec §3.2)."""

    ALL = "ALLOW_ALL_CONNS"
    SUPERUSER = "ALLOW_SUPERUSER_CONNS"
    NONE = "ALLOW_NO_CONNS"


class ChildKind(enum.Enum):
    """Every kind of postmaster child (spec §2). The value is the backend type `ps` shows."""

    STARTUP = "startup"
    BGWRITER = "background writer"
    CHECKPOINTER = "checkpointer"
    WALWRITER = "walwriter"
    WALRECEIVER = "walreceiver"
    AUTOVAC_LAUNCHER = "autovacuum launcher"
    ARCHIVER = "archiver"
    STATS = "stats collector"
    SYSLOGGER = "logger"
    # BackendList kinds: several instances each.
    BACKEND = "client backend"
    WALSENDER = "walsender"
    AUTOVAC_WORKER = "autovacuum worker"
    BGWORKER = "background worker"

    @property
    def special(self) -> bool:
        """Tracked by a single PID variable in the postmaster (StartupPID, BgWriterPID...)."""
        return self in SPECIAL_KINDS


SPECIAL_KINDS = frozenset(
    {
        ChildKind.STARTUP,
        ChildKind.BGWRITER,
        ChildKind.CHECKPOINTER,
        ChildKind.WALWRITER,
        ChildKind.WALRECEIVER,
        ChildKind.AUTOVAC_LAUNCHER,
        ChildKind.ARCHIVER,
        ChildKind.STATS,
        ChildKind.SYSLOGGER,
    }
)

# The name LogChildExit uses for each kind (spec §7). Every BackendList kind except
# bgworkers is a "server process".
EXIT_NAME: dict[ChildKind, str] = {
    ChildKind.STARTUP: "startup process",
    ChildKind.BGWRITER: "background writer process",
    ChildKind.CHECKPOINTER: "checkpointer process",
    ChildKind.WALWRITER: "WAL writer process",
    ChildKind.WALRECEIVER: "WAL receiver process",
    ChildKind.AUTOVAC_LAUNCHER: "autovacuum launcher process",
    ChildKind.ARCHIVER: "archiver process",
    ChildKind.STATS: "statistics collector process",
    ChildKind.SYSLOGGER: "system logger process",
    ChildKind.BACKEND: "server process",
    ChildKind.WALSENDER: "server process",
    ChildKind.AUTOVAC_WORKER: "server process",
}

# "could not fork %s" texts (spec §7).
FORK_NAME: dict[ChildKind, str] = {
    ChildKind.STARTUP: "startup process",
    ChildKind.BGWRITER: "background writer process",
    ChildKind.CHECKPOINTER: "checkpointer process",
    ChildKind.WALWRITER: "WAL writer process",
    ChildKind.WALRECEIVER: "WAL receiver process",
    ChildKind.AUTOVAC_LAUNCHER: "autovacuum launcher process",
    ChildKind.AUTOVAC_WORKER: "autovacuum worker process",
    ChildKind.ARCHIVER: "archiver process",
    ChildKind.STATS: "statistics collector",
    ChildKind.SYSLOGGER: "system logger",
    ChildKind.BGWORKER: "worker process",
    ChildKind.BACKEND: "new process for connection",
    ChildKind.WALSENDER: "new process for connection",
}


class Sig(enum.IntEnum):
    """Linux signal numbers. The core names signals without importing `signal`."""

    HUP = 1
    INT = 2
    QUIT = 3
    ILL = 4
    TRAP = 5
    ABRT = 6
    BUS = 7
    FPE = 8
    KILL = 9
    USR1 = 10
    SEGV = 11
    USR2 = 12
    PIPE = 13
    ALRM = 14
    TERM = 15
    CHLD = 17
    CONT = 18
    STOP = 19
    TSTP = 20


# strsignal(3) texts for the signals a child is likely to die of (glibc).
STRSIGNAL: dict[int, str] = {
    1: "Hangup",
    2: "Interrupt",
    3: "Quit",
    4: "Illegal instruction",
    5: "Trace/breakpoint trap",
    6: "Aborted",
    7: "Bus error",
    8: "Floating point exception",
    9: "Killed",
    10: "User defined signal 1",
    11: "Segmentation fault",
    12: "User defined signal 2",
    13: "Broken pipe",
    14: "Alarm clock",
    15: "Terminated",
    24: "CPU time limit exceeded",
    25: "File size limit exceeded",
}

# signal_child() also signals the child's process group for these (spec §4.1).
GROUP_SIGNALS = frozenset({Sig.INT, Sig.TERM, Sig.QUIT, Sig.STOP, Sig.KILL})


@dataclass(frozen=True, slots=True)
class ExitStatus:
    """How a child ended: an exit code, or the signal that killed it (never both)."""

    code: int | None = None
    signal: int | None = None

    def __post_init__(self) -> None:
        if (self.code is None) == (self.signal is None):
            raise ValueError("an exit status is either a code or a signal")

    @classmethod
    def exited(cls, code: int) -> ExitStatus:
        return cls(code=code)

    @classmethod
    def killed(cls, signal: int) -> ExitStatus:
        return cls(signal=signal)

    @property
    def is_0(self) -> bool:
        """EXIT_STATUS_0: a death by signal is never 0 or 1."""
        return self.code == 0

    @property
    def is_1(self) -> bool:
        return self.code == 1

    @property
    def is_3(self) -> bool:
        return self.code == 3

    def describe(self) -> str:
        """Short form for the dashboard: ``exit 0`` or ``SIGKILL``."""
        if self.code is not None:
            return f"exit {self.code}"
        try:
            return f"SIG{Sig(self.signal).name}"
        except ValueError:
            return f"signal {self.signal}"


class LogLevel(enum.IntEnum):
    """Server log levels with elog.h's numbers. For the server log LOG ranks between ERROR
    and FATAL (is_log_level_output); `log_level_outputs` below applies that rule."""

    DEBUG5 = 10
    DEBUG4 = 11
    DEBUG3 = 12
    DEBUG2 = 13
    DEBUG1 = 14
    LOG = 15
    INFO = 17
    NOTICE = 18
    WARNING = 19
    ERROR = 21
    FATAL = 22
    PANIC = 23


def log_level_outputs(level: LogLevel, log_min_messages: LogLevel) -> bool:
    """is_log_level_output(): does a message at `level` reach the server log?"""
    if level == LogLevel.LOG:
        return log_min_messages <= LogLevel.ERROR or log_min_messages == LogLevel.LOG
    if log_min_messages == LogLevel.LOG:
        return level >= LogLevel.FATAL
    return level >= log_min_messages


class PMSignalReason(enum.Enum):
    """The SIGUSR1 reasons, in the order sigusr1_handler processes them (spec §3.3)."""

    RECOVERY_STARTED = 0
    BEGIN_HOT_STANDBY = 1
    BACKGROUND_WORKER_CHANGE = 2
    ROTATE_LOGFILE = 3
    START_AUTOVAC_LAUNCHER = 4
    START_AUTOVAC_WORKER = 5
    START_WALRECEIVER = 6
    ADVANCE_STATE_MACHINE = 7


class CAC(enum.Enum):
    """canAcceptConnections verdicts (spec §6)."""

    OK = "ok"
    STARTUP = "startup"
    SHUTDOWN = "shutdown"
    RECOVERY = "recovery"
    NOTCONSISTENT = "notconsistent"
    TOOMANY = "toomany"
    SUPERUSER = "superuser"


class BgWorkerStartTime(enum.Enum):
    """bgw_start_time (spec §2.3)."""

    POSTMASTER_START = "postmaster start"
    CONSISTENT_STATE = "consistent state"
    RECOVERY_FINISHED = "recovery finished"


BGW_NEVER_RESTART = -1


class QuitReason(enum.Enum):
    """What a SIGQUIT'd backend tells its client (spec §4.4)."""

    CRASH = "crash"
    STOP = "stop"


class PidStatus(enum.Enum):
    """Line 8 of postmaster.pid (spec §9): always 8 characters."""

    STARTING = "starting"
    STOPPING = "stopping"
    READY = "ready   "
    STANDBY = "standby "
