"""The WAL archiver (pgarch.c): runs archive_command for each completed segment marked .ready.

The command runs through /bin/sh in the data directory with %p = pg_wal/<segment> (relative,
as PostgreSQL gives it), %f = the segment's file name and %% = %. The shell stays in the
archiver's process group, so the postmaster's signal_child (which also signals the group) hits
it too; while it runs the archiver ignores SIGINT and SIGQUIT, as system() makes PostgreSQL's
do, and if the shell dies by a signal (or reports one, exit code > 125) the archiver logs the
failure as FATAL and exits 1, to be restarted.

A failure is logged and retried after a second, three times, then left until the next wake-up.
PostgreSQL's WAL writers set the archiver's latch when a segment is ready; pgtop's cannot, so
the archiver also looks at archive_status every ARCHIVE_STATUS_POLL and wakes for new .ready
files; otherwise it wakes every PGARCH_AUTOWAKE_INTERVAL (60 s).

Signals, as PostgreSQL 14: SIGUSR2 one last archiving cycle, then exit 0 (the postmaster sends
it after the shutdown checkpoint); SIGTERM only stops new archive commands, and the archiver
exits 60 s later (or at SIGUSR2); SIGHUP reload (a fixed archive_command applies at once);
SIGQUIT _exit(2); SIGINT ignored. Postmaster death: stop and exit 0, as pgarch_MainLoop does.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

from pgtop.children.context import ChildContext, Events, WaitEvent
from pgtop.children.interrupt import config_of, datadir_of, ignore_unused, reload_config
from pgtop.core.vocabulary import STRSIGNAL, LogLevel
from pgtop.storage.archive import mark_done, ready_segments

PGARCH_AUTOWAKE_INTERVAL = 60.0  # seconds between forced looks at archive_status
SIGTERM_GRACE = 60.0  # seconds the archiver lingers after SIGTERM before exiting anyway
NUM_ARCHIVE_RETRIES = 3
RETRY_PAUSE = 1.0
ARCHIVE_STATUS_POLL = 0.25  # pgtop: stands in for the latch a WAL writer would set
XLOGDIR = "pg_wal"


def archive_command_text(template: str, segment: str) -> str:
    """The command with %p, %f and %% replaced; any other % is copied as is."""
    out: list[str] = []
    index = 0
    while index < len(template):
        char = template[index]
        following = template[index + 1] if index + 1 < len(template) else ""
        if char == "%" and following in ("p", "f", "%"):
            out.append({"p": f"{XLOGDIR}/{segment}", "f": segment, "%": "%"}[following])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def failure_message(returncode: int) -> str:
    """The LOG/FATAL text for a failed command; `returncode` as subprocess reports it."""
    if returncode < 0:
        number = -returncode
        described = STRSIGNAL.get(number) or signal.strsignal(number) or "unknown signal"
        return f"archive command was terminated by signal {number}: {described}"
    return f"archive command failed with exit code {returncode}"


def is_fatal_failure(returncode: int) -> bool:
    """wait_result_is_any_signal(rc, true): a signal, or an exit code above 125 (the shell's
    "command not found" and "killed by signal N" codes)."""
    return returncode < 0 or returncode > 125


COMMAND_IGNORES = (signal.SIGINT, signal.SIGQUIT)  # what system() ignores while its child runs


def _reset_signals_for_command(mask: set[signal.Signals]) -> Callable[[], None]:
    """In the forked shell, before exec: default dispositions, as system() gives its child,
    then the archiver's own signal mask back; a SIGQUIT that came since the fork, held by
    the block, is delivered now (posix_spawn's sigdefault does the same for system())."""

    def reset() -> None:
        for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1,
                       signal.SIGUSR2, signal.SIGALRM):
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    return reset


class Archiver:
    """pgarch_MainLoop and pgarch_ArchiverCopyLoop."""

    def __init__(self, ctx: ChildContext) -> None:
        self.ctx = ctx
        self.datadir = datadir_of(ctx)
        self.ready_to_stop = False
        self.sigterm_at: float | None = None
        self.postmaster_died = False
        self.seen: frozenset[str] = frozenset()

    # -- signals -------------------------------------------------------------------------

    def take(self, events: Events) -> None:
        if WaitEvent.POSTMASTER_DEATH in events:
            self.postmaster_died = True
        if signal.SIGHUP in events:
            reload_config(self.ctx)
        if signal.SIGTERM in events and self.sigterm_at is None:
            self.sigterm_at = time.monotonic()
        if signal.SIGUSR2 in events:
            self.ready_to_stop = True

    # -- main loop -----------------------------------------------------------------------

    def run(self) -> int:
        while True:
            time_to_stop = self.ready_to_stop
            if self.sigterm_at is not None and time.monotonic() - self.sigterm_at >= SIGTERM_GRACE:
                break
            self.copy_loop()
            if time_to_stop or self.postmaster_died:
                break
            self.sleep()
            if self.postmaster_died:
                break
        return 0

    def sleep(self) -> None:
        """Until a signal, new .ready files, or PGARCH_AUTOWAKE_INTERVAL (the latch's wait)."""
        deadline = time.monotonic() + PGARCH_AUTOWAKE_INTERVAL
        if self.sigterm_at is not None:
            deadline = min(deadline, self.sigterm_at + SIGTERM_GRACE)
        while True:
            remaining = deadline - time.monotonic()
            events = self.ctx.wait(min(ARCHIVE_STATUS_POLL, max(remaining, 0.0)))
            self.take(events)
            if events.signals or self.postmaster_died or remaining <= 0:
                return
            if not set(self.ready()) <= self.seen:
                return

    def ready(self) -> list[str]:
        try:
            return ready_segments(self.datadir)
        except FileNotFoundError:
            return []

    def copy_loop(self) -> None:
        """Archive every .ready segment, oldest first, until done or told to stop."""
        self.seen = frozenset(self.ready())
        while (segment := next(iter(self.ready()), None)) is not None:
            failures = 0
            while True:
                # No new command after SIGTERM (init would kill it) or once the postmaster
                # is gone (a new archiver may be running).
                self.take(self.ctx.wait(0))
                if self.sigterm_at is not None or self.postmaster_died:
                    return
                command = config_of(self.ctx).archive_command
                if not command:
                    self.ctx.log(LogLevel.WARNING, "archive_mode enabled, yet archive_command is not set")
                    return
                if self.archive(segment, command):
                    break
                failures += 1
                if failures >= NUM_ARCHIVE_RETRIES:
                    self.ctx.log(LogLevel.WARNING, f'archiving write-ahead log file "{segment}" failed too many '
                                                   "times, will try again later")
                    return
                self.take(self.ctx.wait(RETRY_PAUSE))

    # -- one segment -----------------------------------------------------------------------

    def archive(self, segment: str, template: str) -> bool:
        """pgarch_archiveXlog + pgarch_archiveDone; True if archived."""
        command = archive_command_text(template, segment)
        self.set_activity(f"archiving {segment}")
        self.ctx.log(LogLevel.DEBUG3, f'executing archive command "{command}"')
        returncode = self.run_command(command)
        if returncode != 0:
            fatal = is_fatal_failure(returncode)
            level = LogLevel.FATAL if fatal else LogLevel.LOG
            self.ctx.log(level, failure_message(returncode), f"The failed archive command was: {command}")
            self.count(failed=segment)
            self.set_activity(f"failed on {segment}")
            if fatal:
                raise SystemExit(1)
            return False
        self.ctx.log(LogLevel.DEBUG1, f'archived write-ahead log file "{segment}"')
        try:
            mark_done(self.datadir, segment)
        except OSError as error:
            ready = f"{XLOGDIR}/archive_status/{segment}.ready"
            self.ctx.log(LogLevel.WARNING, f'could not rename file "{ready}": {error.strerror}')
        self.count(archived=segment)
        self.set_activity(f"last was {segment}")
        return True

    def run_command(self, command: str) -> int:
        """system(): /bin/sh -c, in the data directory, in our process group; SIGINT and
        SIGQUIT ignored here meanwhile (the group signal reaches the shell instead)."""
        previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in COMMAND_IGNORES}
        # Blocked as well across the fork: the shell inherits SIG_IGN until it resets its
        # dispositions, and a group SIGQUIT in that window would be lost, not kill it.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, COMMAND_IGNORES)
        try:
            completed = subprocess.run(
                ["/bin/sh", "-c", command], cwd=self.datadir, stdin=subprocess.DEVNULL,
                preexec_fn=_reset_signals_for_command(mask), check=False,
            )
            return completed.returncode
        except OSError as error:
            self.ctx.log(LogLevel.LOG, f"could not execute archive command: {error.strerror}")
            return 127
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # one held meanwhile meets SIG_IGN: dropped
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def count(self, *, archived: str | None = None, failed: str | None = None) -> None:
        """pgstat_send_archiver(): pg_stat_archiver's counters."""
        segment = self.ctx.segment
        if segment is None:
            return
        now = time.time()
        if archived is not None:
            segment.add_counters(archived_count=1)
            segment.update_counters(last_archived_wal=archived, last_archived_time=now)
        if failed is not None:
            segment.add_counters(failed_count=1)
            segment.update_counters(last_failed_wal=failed, last_failed_time=now)

    def set_activity(self, activity: str) -> None:
        self.ctx.set_title(f"pgtop: archiver {activity}")


def main(ctx: ChildContext) -> int:
    ctx.handle(signal.SIGHUP, signal.SIGTERM, signal.SIGUSR2)
    ctx.exit_on_sigquit()  # SignalHandlerForCrashExit: _exit(2), no message
    ignore_unused(ctx)
    return Archiver(ctx).run()
