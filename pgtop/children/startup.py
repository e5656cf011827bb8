"""The startup process (startup.c + StartupXLOG): recovery, then exit 0 so the postmaster
goes to PM_RUN.

pgtop.storage.recovery does the work and reports it as events; this program turns them into
what the postmaster sees: log lines, redo progress in shared memory (the dashboard's bar), the
pmsignals RECOVERY_STARTED (archive recovery or standby only, as in 14), BEGIN_HOT_STANDBY at
consistency when hot_standby is on, and START_WALRECEIVER while a standby waits for WAL.

Where a standby's WAL comes from (WaitForWALToBecomeAvailable): first pg_wal, read to its
first invalid record; then the walreceiver (XLOG_FROM_STREAM), read only as far as it wrote.
When the walreceiver is gone (it died, or never started within wal_retrieve_retry_interval),
recovery goes back to reading pg_wal, which logs why it stopped ("invalid record length at
..."), and asks for a new walreceiver: at once if the last failure is older than
wal_retrieve_retry_interval, otherwise when that much time has passed since it (PostgreSQL's
last_fail_time), so a walreceiver that cannot connect is retried every interval. On promotion
the startup process stops the walreceiver (SIGTERM) and waits for it (ShutdownWalRcv).

Exit codes, as the reaper reads them: 0 recovery finished; 1 SIGTERM (a shutdown request;
StartupProcShutdownHandler, no message), postmaster death, or a FATAL error such as a corrupt
control file. A PANIC (e.g. no valid checkpoint record) aborts, as elog(PANIC) does: the
postmaster sees "terminated by signal 6: Aborted". recovery_target_action=shutdown (exit 3)
is not modelled: pgtop has no recovery targets.

Signals, as PostgreSQL 14: SIGHUP reload (redo_delay takes effect at once; a new
primary_conninfo stops the walreceiver, so that a new one connects there); SIGTERM exit 1;
SIGUSR2 promote (the postmaster sends it when the `promote` file exists); SIGUSR1 wakes a wait
for WAL (the walreceiver's WakeupRecovery); SIGQUIT _exit(2); SIGINT ignored.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import time
from collections.abc import Callable
from typing import NoReturn

from pgtop.children.context import ChildContext, Events
from pgtop.children.interrupt import (
    config_of,
    datadir_of,
    exit_if_postmaster_died,
    ignore_unused,
    reload_config,
)
from pgtop.children.stats import reset_stats_files
from pgtop.core.config import Config
from pgtop.core.vocabulary import ChildKind, LogLevel, PMSignalReason
from pgtop.storage.controlfile import read_control_file
from pgtop.storage.errors import StorageError
from pgtop.storage.lsn import segment_file_name, segment_of
from pgtop.storage.recovery import StartupRecovery
from pgtop.storage.startup_events import (
    ConsistentState,
    EndOfStreaming,
    LogLine,
    RecoveryStarted,
    RedoProgress,
    StartupEvent,
    WaitingForWal,
)

PROGRESS_INTERVAL = 0.05  # seconds between progress reports: also how often signals are checked
SHUTDOWN_POLL = 0.01  # seconds between looks at a walreceiver being stopped


class StartupProcess:
    """One run of the startup process: feeds recovery's events to the postmaster."""

    def __init__(self, ctx: ChildContext) -> None:
        self.ctx = ctx
        config = config_of(ctx)
        self.recovery = StartupRecovery(
            datadir_of(ctx), redo_delay_ms=config.redo_delay, log_checkpoints=config.log_checkpoints,
            archiving=config.archiving_active, log_timezone=config.log_timezone, sleep=self.sleep,
            progress_interval=PROGRESS_INTERVAL,
        )
        self.timeline = 1
        self.title = ""
        self.source = WalSource(ctx)
        self.waiting_for_wal = False  # the next sleep is a wait for WAL: SIGUSR1 ends it
        self.replayed_published = -1  # the replay position last put in shared memory

    # -- interrupts (HandleStartupProcInterrupts) ----------------------------------------

    def sleep(self, seconds: float) -> None:
        """Recovery's pauses (redo_delay, waiting for WAL): interruptible, as WaitLatch is."""
        deadline = time.monotonic() + seconds
        waiting_for_wal, self.waiting_for_wal = self.waiting_for_wal, False
        while True:
            events = self.ctx.wait(deadline - time.monotonic())
            if self.handle_interrupts(events):
                return  # a promote request wakes recovery up (WakeupRecovery)
            if (signal.SIGUSR1 in events and waiting_for_wal) or time.monotonic() >= deadline:
                return  # the walreceiver flushed new WAL (WakeupRecovery), or time is up

    def handle_interrupts(self, events: Events) -> bool:
        """Act on what a wait returned; True if a promotion was requested."""
        exit_if_postmaster_died(events)
        if signal.SIGTERM in events:
            raise SystemExit(1)  # shutdown_requested: proc_exit(1), nothing logged
        if signal.SIGHUP in events:
            before = config_of(self.ctx).primary_conninfo
            config = reload_config(self.ctx)
            self.recovery.redo_delay = config.redo_delay / 1000.0
            self.recovery.log_checkpoints = config.log_checkpoints
            if config.primary_conninfo != before:  # StartupRereadConfig(): restart the walreceiver
                signal_aux(self.ctx, ChildKind.WALRECEIVER, signal.SIGTERM)
        if signal.SIGUSR2 in events:
            self.recovery.request_promote()
            return True
        return False

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> int:
        with contextlib.suppress(StorageError):  # run() reports a bad control file itself
            self.timeline = read_control_file(datadir_of(self.ctx)).timeline
        try:
            with contextlib.closing(self.recovery.run()) as events:
                for event in events:
                    self.on_event(event)
                    self.handle_interrupts(self.ctx.wait(0))
        except StorageError as error:
            self.fail(error.level, error.message, error.detail, error.hint)
        finally:
            self.publish(replaying=False)
        return self.finish()

    def on_event(self, event: StartupEvent) -> None:
        ctx = self.ctx
        match event:
            case LogLine(message=message, level=level, detail=detail, hint=hint):
                if level >= LogLevel.FATAL:
                    self.fail(level, message, detail, hint)
                ctx.log(level, message, detail, hint)
            case RecoveryStarted(archive=archive):
                reset_stats_files(datadir_of(ctx))  # pgstat_reset_all(): stats may be wrong now
                if archive:
                    ctx.raise_pmsignal(PMSignalReason.RECOVERY_STARTED)
            case RedoProgress():
                self.publish(
                    replaying=True, redo_start_lsn=event.redo_start, replay_lsn=event.replayed,
                    recovery_end_lsn=event.end, records_replayed=event.records_done,
                    records_total=event.records_total,
                )
                self.set_activity("recovering", event.replayed)
            case ConsistentState():
                if config_of(ctx).hot_standby:
                    ctx.raise_pmsignal(PMSignalReason.BEGIN_HOT_STANDBY)
            case WaitingForWal(lsn=lsn):
                if lsn != self.replayed_published:  # caught up: pg_last_wal_replay_lsn() is here
                    self.publish(replay_lsn=lsn)
                    self.replayed_published = lsn
                if not (self.recovery.streaming and self.title == self.activity_title("recovering", lsn)):
                    self.set_activity("waiting for", lsn)  # streaming keeps "recovering" (XLogFileRead)
                self.recovery.streaming = self.source.streaming(config_of(ctx))
                self.waiting_for_wal = True
            case EndOfStreaming():
                self.source.shutdown(self.handle_interrupts)

    def finish(self) -> int:
        """Recovery is over: account for the end-of-recovery checkpoint, ask the checkpointer
        for the one a promotion needs (14: RequestCheckpoint(CHECKPOINT_FORCE)), exit 0."""
        outcome = self.recovery.outcome
        if outcome is None:  # a storage bug; run_program logs it as FATAL
            raise RuntimeError("recovery ended without an outcome")
        segment = self.ctx.segment
        if segment is not None:
            segment.update_counters(wal_insert_lsn=outcome.end_of_wal)
            if outcome.checkpoint is not None:
                segment.add_counters(checkpoints=1)
                segment.update_counters(last_checkpoint_time=outcome.checkpoint.time,
                                        last_checkpoint_lsn=outcome.checkpoint.lsn)
        if outcome.request_checkpoint is not None:
            signal_aux(self.ctx, ChildKind.CHECKPOINTER, signal.SIGINT)
        return 0

    def fail(self, level: LogLevel, message: str, detail: str | None, hint: str | None) -> NoReturn:
        """ereport(FATAL) exits 1; ereport(PANIC) aborts (SIGABRT, no core file)."""
        self.ctx.log(level, message, detail, hint)
        if level >= LogLevel.PANIC:
            self.publish(replaying=False)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            os.abort()
        raise SystemExit(1)

    # -- what the postmaster and the dashboard see -------------------------------------------

    def publish(self, **counters: object) -> None:
        if self.ctx.segment is not None:
            self.ctx.segment.update_counters(**counters)

    def activity_title(self, doing: str, lsn: int) -> str:
        return f"pgtop: startup {doing} {segment_file_name(self.timeline, segment_of(lsn))}"

    def set_activity(self, doing: str, lsn: int) -> None:
        """The ps display: "startup recovering 000000010000000000000003", as XLogFileRead sets it."""
        title = self.activity_title(doing, lsn)
        if title != self.title:
            self.title = title
            self.ctx.set_title(title)


class WalSource:
    """Whether a standby's WAL comes from a walreceiver now, and when to ask for one.

    States: not streaming (reading pg_wal); requested (the postmaster was asked and the
    walreceiver has not shown up yet); streaming (it runs). See the module docstring."""

    def __init__(self, ctx: ChildContext) -> None:
        self.ctx = ctx
        self.requested_at: float | None = None  # when START_WALRECEIVER was sent
        self.starts_before = 0  # the walreceivers started before that request
        self.seen = False  # the requested walreceiver started (it may have ended since)
        self.last_fail: float | None = None  # last_fail_time: when streaming last failed
        self.retry_at = 0.0  # when the next request may go out

    def streaming(self, config: Config) -> bool:
        """Called while recovery waits for WAL: True while WAL is to be read from a
        walreceiver (requested or running), False to read pg_wal (a new request may follow
        at the next wait)."""
        now = time.monotonic()
        interval = config.wal_retrieve_retry_interval / 1000.0
        if self.requested_at is not None:
            running = aux_pid(self.ctx, ChildKind.WALRECEIVER) is not None
            self.seen = self.seen or running or self._starts() != self.starts_before
            if running or (not self.seen and now - self.requested_at < interval):
                return True  # streaming, or WALRCV_STARTING: the postmaster is forking it
            # It is gone: read pg_wal first, then ask again, at once unless the previous
            # failure was less than an interval ago.
            recent = self.last_fail is not None and now - self.last_fail < interval
            self.retry_at = self.last_fail + interval if recent else now  # type: ignore[operator]
            self.requested_at, self.last_fail = None, self.retry_at
            return False
        if not config.primary_conninfo or now < self.retry_at:
            return False
        self.requested_at, self.seen, self.starts_before = now, False, self._starts()
        self.ctx.raise_pmsignal(PMSignalReason.START_WALRECEIVER)  # RequestXLogStreaming()
        return True

    def _starts(self) -> int:
        segment = self.ctx.segment
        return segment.counters().walrcv_starts if segment is not None else 0

    def shutdown(self, handle_interrupts: Callable[[Events], bool]) -> None:
        """ShutdownWalRcv(): SIGTERM the walreceiver and wait until it is gone."""
        self.requested_at = None
        while (pid := aux_pid(self.ctx, ChildKind.WALRECEIVER)) is not None and _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            handle_interrupts(self.ctx.wait(SHUTDOWN_POLL))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def aux_pid(ctx: ChildContext, kind: ChildKind) -> int | None:
    """The PID of a running auxiliary process, from its pg_stat_activity row."""
    if ctx.segment is None:
        return None
    row = ctx.segment.read_activity(ctx.segment.aux_entry(kind))
    return row.pid if row is not None else None


def signal_aux(ctx: ChildContext, kind: ChildKind, signum: signal.Signals) -> None:
    pid = aux_pid(ctx, kind)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def main(ctx: ChildContext) -> int:
    ctx.handle(signal.SIGHUP, signal.SIGTERM, signal.SIGUSR2, signal.SIGUSR1)  # SIGUSR1: the latch
    ctx.exit_on_sigquit()  # SignalHandlerForCrashExit: _exit(2), no message
    ignore_unused(ctx)
    return StartupProcess(ctx).run()
