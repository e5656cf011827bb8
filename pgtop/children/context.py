"""The child's toolkit: what every child program's `main(ctx)` receives.

A child is single-threaded. Its main loop waits with `ctx.wait(timeout)`, which returns on a
signal it asked to handle, on postmaster death, on a readable fd, or on timeout; signal
handlers only note the signal and wake the wait through a self-pipe (signal.set_wakeup_fd),
as PostgreSQL's latch does. Exit codes mean what they mean to the postmaster's reaper:
return 0 or 1 from `main`; a death by signal or another code is a crash.

A child starts with default signal dispositions, as after exec. PostgreSQL's children all
leave on SIGQUIT with _exit(2) (quickdie, SignalHandlerForCrashExit): call
`ctx.exit_on_sigquit()` for that, and `ctx.handle(...)` for the signals the loop acts on.

A child given a PMChildFlags slot (args["slot"]) has it marked ACTIVE before `main` runs, as
InitProcess does. Clean exit, as proc_exit does: when `main` returns (or raises, which counts
as FATAL, exit 1) the slot goes back to ASSIGNED and the activity row is cleared. A child
that dies by a signal or calls os._exit skips that, and the postmaster's dead-man switch
notices.
"""

from __future__ import annotations

import enum
import math
import os
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Self

from pgtop.common.logformat import DEFAULT_LOG_LINE_PREFIX, format_log_line
from pgtop.common.proctitle import kind_title, set_title
from pgtop.common.shmem import AUX_KINDS, Segment
from pgtop.common.shmem_records import ActivityRow
from pgtop.core.vocabulary import ChildKind, LogLevel, PMSignalReason, log_level_outputs

# Names of the fds a child can be given (ForkServer.spawn's `fds`).
FD_SHMEM = "shmem"
FD_CLIENT = "client"
FD_LOG = "log"
FD_DEATH = "death"  # always present: the fork server adds it


class WaitEvent(enum.Enum):
    """What ended a wait besides signals (PostgreSQL's WL_* results)."""

    TIMEOUT = "timeout"
    POSTMASTER_DEATH = "postmaster death"
    SOCKET_READABLE = "socket readable"


class Events(frozenset):
    """The events that ended a wait: `signal.Signals` members and WaitEvent values.
    `readable` holds the given fds (or objects with fileno()) that are readable."""

    readable: frozenset

    def __new__(cls, items: Iterable[object] = (), readable: Iterable[object] = ()) -> Self:
        events = super().__new__(cls, items)
        events.readable = frozenset(readable)
        return events

    @property
    def signals(self) -> frozenset[signal.Signals]:
        return frozenset(item for item in self if isinstance(item, signal.Signals))


def backend_type_of(kind: str, args: Mapping[str, object]) -> str:
    """``checkpointer`` -> "checkpointer", ``bgwriter`` -> "background writer": the
    ChildKind value when the kind names one, else args["backend_type"], else the kind
    (the function's name for a "module:function" kind)."""
    if isinstance(args.get("backend_type"), str):
        return str(args["backend_type"])
    member = ChildKind.__members__.get(kind.upper())
    return member.value if member else kind.rpartition(":")[2]


def child_title(kind: str, args: Mapping[str, object]) -> str:
    """What `ps` shows for a child from its first moments: ``pgtop: walwriter``."""
    return str(args.get("title") or kind_title(backend_type_of(kind, args)))


class ChildContext:
    """What a child program gets: its arguments, shared memory, postmaster liveness,
    its client socket, its slot, logging, pmsignals and signal-driven waiting."""

    def __init__(
        self,
        kind: str,
        args: Mapping[str, object],
        fds: Mapping[str, int],
        postmaster_pid: int,
    ) -> None:
        self.kind = kind
        self.args = dict(args)
        self.fds = dict(fds)
        self.postmaster_pid = postmaster_pid
        self.pid = os.getpid()
        self.started_at = time.time()
        self.backend_type = backend_type_of(kind, args)
        self.death_fd: int = fds[FD_DEATH]
        self.log_fd: int = fds.get(FD_LOG, 2)
        self.segment: Segment | None = Segment.attach(fds[FD_SHMEM]) if FD_SHMEM in fds else None
        self.client: socket.socket | None = (
            socket.socket(fileno=fds[FD_CLIENT]) if FD_CLIENT in fds else None
        )
        self.slot: int | None = args.get("slot")  # type: ignore[assignment]
        # Session fields for log_line_prefix; a backend fills them in after authentication.
        self.user: str | None = None
        self.database: str | None = None
        self.application_name: str | None = None
        self.remote_host: str | None = args.get("remote")  # type: ignore[assignment]
        self._log_lines = 0
        self._pending: set[signal.Signals] = set()
        self._wake_read: int | None = None  # the self-pipe, made when a signal is handled

    # -- postmaster ---------------------------------------------------------------------

    def postmaster_alive(self) -> bool:
        """PostmasterIsAlive(): nobody writes the death pipe, so readable means EOF."""
        readable, _, _ = select.select([self.death_fd], [], [], 0)
        return not readable

    def raise_pmsignal(self, reason: PMSignalReason) -> None:
        """SendPostmasterSignal(): set the flag, then SIGUSR1 the postmaster."""
        if self.segment is None:
            raise RuntimeError("this child has no shared memory")
        self.segment.raise_pmsignal(reason)
        try:
            os.kill(self.postmaster_pid, signal.SIGUSR1)
        except ProcessLookupError:
            pass  # the postmaster is gone; the death pipe will tell the main loop

    # -- title, slot, activity ----------------------------------------------------------

    def set_title(self, title: str) -> None:
        set_title(title)

    @property
    def activity_entry(self) -> int | None:
        """This child's pg_stat_activity row: its slot's, or its special kind's."""
        if self.segment is None:
            return None
        if self.slot is not None:
            return self.slot
        member = ChildKind.__members__.get(self.kind.upper())
        return self.segment.aux_entry(member) if member in AUX_KINDS else None

    def report_activity(self, **changes: object) -> None:
        """pgstat_report_activity(): e.g. ``state="active", query="select 1"``."""
        entry = self.activity_entry
        if entry is None:
            return
        if "state" in changes and "state_change" not in changes:
            changes["state_change"] = time.time()
        self.segment.update_activity(entry, **changes)  # type: ignore[union-attr]

    def mark_active(self) -> None:
        if self.segment is not None and self.slot is not None:
            self.segment.mark_active(self.slot)

    def mark_walsender(self) -> None:
        if self.segment is not None and self.slot is not None:
            self.segment.mark_walsender(self.slot)

    def mark_inactive(self) -> None:
        if self.segment is not None and self.slot is not None:
            self.segment.mark_inactive(self.slot)

    # -- logging ------------------------------------------------------------------------

    def log(
        self,
        level: LogLevel | str,
        message: str,
        detail: str | None = None,
        hint: str | None = None,
        *,
        context: str | None = None,
        statement: str | None = None,
    ) -> None:
        """Write a server log entry in PostgreSQL's format to the log pipe (or stderr)."""
        level = level if isinstance(level, LogLevel) else LogLevel[level.upper()]
        threshold = LogLevel[str(self.args.get("log_min_messages", "warning")).upper()]
        if not log_level_outputs(level, threshold):
            return
        self._log_lines += 1
        text = format_log_line(
            str(self.args.get("log_line_prefix", DEFAULT_LOG_LINE_PREFIX)),
            level,
            message,
            pid=self.pid,
            backend_type=self.backend_type,
            now=time.time(),
            user=self.user,
            database=self.database,
            application_name=self.application_name,
            detail=detail,
            hint=hint,
            context=context,
            statement=statement,
            remote_host=self.remote_host,
            session_start=self.started_at,
            line_number=self._log_lines,
            timezone=str(self.args.get("log_timezone", "UTC")),
        )
        self._write_log(text + "\n")

    def _write_log(self, text: str) -> None:
        # One write per entry: pipe writes up to PIPE_BUF (4 KiB) are never interleaved.
        data = text.encode("utf-8", "replace")
        for fd in dict.fromkeys((self.log_fd, 2)):
            try:
                while data:
                    data = data[os.write(fd, data) :]
                return
            except OSError:
                continue  # the logger is gone: fall back to stderr, as elog does

    # -- signals and waiting ------------------------------------------------------------

    def handle(
        self, *signals: signal.Signals, callback: Callable[[signal.Signals], None] | None = None
    ) -> None:
        """Take these signals: each one is noted (and wakes `wait`); `callback`, if given,
        also runs at once in the main thread, e.g. quickdie's "tell the client and _exit(2)"."""
        if self._wake_read is None:
            self._wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        for signum in signals:
            signal.signal(signum, self._handler(signal.Signals(signum), callback))
        self.unblock(*signals)

    def _handler(
        self, signum: signal.Signals, callback: Callable[[signal.Signals], None] | None
    ) -> Callable[[int, object], None]:
        def note(_number: int, _frame: object) -> None:
            self._pending.add(signum)
            if callback is not None:
                callback(signum)

        return note

    def exit_on_sigquit(self, before_exit: Callable[[], None] | None = None) -> None:
        """SIGQUIT ends the child at once with _exit(2), no cleanup (quickdie); a backend
        passes `before_exit` to warn its client (see `segment.quit_reason()`)."""

        def quickdie(_number: int, _frame: object) -> None:
            try:
                if before_exit is not None:
                    before_exit()
            finally:
                os._exit(2)

        signal.signal(signal.SIGQUIT, quickdie)
        self.unblock(signal.SIGQUIT)

    def ignore(self, *signals: signal.Signals) -> None:
        for signum in signals:
            signal.signal(signum, signal.SIG_IGN)
        self.unblock(*signals)

    @staticmethod
    def unblock(*signals: signal.Signals) -> None:
        """Children are born with the postmaster's signals blocked; each is let in once
        the child has decided what to do with it (a pending one is delivered now)."""
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)

    def take_signals(self) -> frozenset[signal.Signals]:
        """The signals noted since the last wait, cleared."""
        taken = frozenset(self._pending)
        self._pending.difference_update(taken)
        return taken

    def wait(self, timeout: float | None, readable: Iterable[object] = ()) -> Events:
        """WaitLatch: return on a handled signal, postmaster death, a readable fd in
        `readable`, or after `timeout` seconds (None: no timeout)."""
        watched = list(readable)
        poller = select.poll()
        if self._wake_read is not None:
            poller.register(self._wake_read, select.POLLIN)
        poller.register(self.death_fd, select.POLLIN)
        for item in watched:
            poller.register(item, select.POLLIN)
        # Rounded up: a wait cut short by truncation would wake before the deadline and spin
        # on zero-timeout polls until it passes.
        wait_ms = None if timeout is None else max(0, math.ceil(timeout * 1000))
        ready = {fd for fd, _ in poller.poll(0 if self._pending else wait_ms)}
        self._drain_wakeups()
        ready_items = [item for item in watched if _fileno(item) in ready]
        events: set[object] = set(self.take_signals())
        if self.death_fd in ready:
            events.add(WaitEvent.POSTMASTER_DEATH)
        if ready_items:
            events.add(WaitEvent.SOCKET_READABLE)
        if not events:
            events.add(WaitEvent.TIMEOUT)
        return Events(events, ready_items)

    def _drain_wakeups(self) -> None:
        if self._wake_read is None:
            return
        try:
            while os.read(self._wake_read, 512):
                pass
        except BlockingIOError:
            pass

    # -- the end ------------------------------------------------------------------------

    def clean_exit(self) -> None:
        """proc_exit's shared-memory cleanup: PGPROC released, slot back to ASSIGNED,
        activity row cleared."""
        if self.segment is not None and self.slot is not None:
            self.segment.release_proc(self.slot)
        self.mark_inactive()
        entry = self.activity_entry
        if entry is not None:
            self.segment.clear_activity(entry)  # type: ignore[union-attr]


def _fileno(item: object) -> int:
    return item if isinstance(item, int) else item.fileno()  # type: ignore[attr-defined]


def start_child(
    program: Callable[[ChildContext], int],
    kind: str,
    args: Mapping[str, object],
    fds: Mapping[str, int],
    postmaster_pid: int,
    *,
    session_leader: bool = False,
) -> int:
    """InitPostmasterChild, then the program: called in the freshly forked child, whose
    parent is already the postmaster. Returns the exit code. Signal dispositions and mask
    are already the defaults: the fork server reset its own once, and forks copy them.
    `session_leader`: setsid() was done already (a spare does it while it waits)."""
    if not session_leader:
        os.setsid()  # signal_child's kill(-pid) reaches this child and its own scripts only
    _keep_only_fds(fds)
    try:
        return run_program(program, kind, args, fds, postmaster_pid)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass


def _keep_only_fds(fds: Mapping[str, int]) -> None:
    """stdout and stderr to the log pipe if given; every fd the child was not given closed,
    and the given ones kept from scripts it runs. stdin is the fork server's, /dev/null."""
    if FD_LOG in fds:
        os.dup2(fds[FD_LOG], 1)
        os.dup2(fds[FD_LOG], 2)
    keep = sorted({0, 1, 2, *fds.values()})
    for low, high in zip(keep, [*keep[1:], os.sysconf("SC_OPEN_MAX")]):
        if low + 1 < high:  # an empty range makes close_range fail, and Python then loops
            os.closerange(low + 1, high)
    for fd in fds.values():
        os.set_inheritable(fd, False)


def run_program(
    program: Callable[[ChildContext], int],
    kind: str,
    args: Mapping[str, object],
    fds: Mapping[str, int],
    postmaster_pid: int,
) -> int:
    """Set the title, build the context, run the program, clean up; return its exit code.
    The title comes first, as AuxiliaryProcessMain's init_ps_display comes before BaseInit:
    `ps` says what the process is from its first moments."""
    set_title(child_title(kind, args))
    ctx = ChildContext(kind, args, fds, postmaster_pid)
    entry = ctx.activity_entry
    if entry is not None:
        ctx.segment.write_activity(
            entry,
            ActivityRow(  # type: ignore[union-attr]
                pid=ctx.pid,
                backend_type=ctx.backend_type,
                backend_start=ctx.started_at,
                client_addr=None if ctx.remote_host in (None, "[local]") else ctx.remote_host,
                cancel_key=int(args.get("cancel_key", 0) or 0),
            ),
        )
    ctx.mark_active()
    try:
        code = program(ctx)
    except SystemExit as end:
        code = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
    except BaseException as error:  # noqa: BLE001 - a program bug: FATAL, like elog(FATAL)
        ctx.log(LogLevel.FATAL, f"{type(error).__name__}: {error}")
        traceback.print_exc()
        code = 1
    ctx.clean_exit()
    return code if isinstance(code, int) else 0
