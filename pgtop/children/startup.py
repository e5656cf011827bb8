"""The startup process (startup.c + StartupXLOG): recovery, then exit 0 so the postmaster
goes to PM_RUN.

pgtop.storage.recovery does the work and reports it as events; this program turns them into
what the postmaster sees: log lines, redo progress in shared memory (the dashboard's bar), the
pmsignals RECOVERY_STARTED (archive recovery or standby only, as in 14), BEGIN_HOT_STANDBY at
consistency when hot_standby is on, and START_WALRECEIVER while a standby waits for WAL and
has no walreceiver, re-asked every wal_retrieve_retry_interval.

Exit codes, as the reaper reads them: 0 recovery finished; 1 SIGTERM (a shutdown request;
StartupProcShutdownHandler, no message), postmaster death, or a FATAL error such as a corrupt
control file. A PANIC (e.g. no valid checkpoint record) aborts, as elog(PANIC) does: the
postmaster sees "terminated by signal 6: Aborted". recovery_target_action=shutdown (exit 3)
is not modelled: pgtop has no recovery targets.

Signals, as PostgreSQL 14: SIGHUP reload (redo_delay takes effect at once); SIGTERM exit 1;
SIGUSR2 promote (the postmaster sends it when the `promote` file exists); SIGQUIT _exit(2);
SIGINT ignored.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import time
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
from pgtop.core.vocabulary import ChildKind, LogLevel, PMSignalReason
from pgtop.storage.controlfile import read_control_file
from pgtop.storage.errors import StorageError
from pgtop.storage.lsn import segment_file_name, segment_of
from pgtop.storage.recovery import StartupRecovery
from pgtop.storage.startup_events import (
    ConsistentState,
    LogLine,
    RecoveryStarted,
    RedoProgress,
    StartupEvent,
    WaitingForWal,
)

PROGRESS_INTERVAL = 0.05  # seconds between progress reports: also how often signals are checked


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
        self.walreceiver_requested_at: float | None = None

    # -- interrupts (HandleStartupProcInterrupts) ----------------------------------------

    def sleep(self, seconds: float) -> None:
        """Recovery's pauses (redo_delay, waiting for WAL): interruptible, as WaitLatch is."""
        deadline = time.monotonic() + seconds
        while True:
            if self.handle_interrupts(self.ctx.wait(deadline - time.monotonic())):
                return  # a promote request wakes recovery up (WakeupRecovery)
            if time.monotonic() >= deadline:
                return

    def handle_interrupts(self, events: Events) -> bool:
        """Act on what a wait returned; True if a promotion was requested."""
        exit_if_postmaster_died(events)
        if signal.SIGTERM in events:
            raise SystemExit(1)  # shutdown_requested: proc_exit(1), nothing logged
        if signal.SIGHUP in events:
            config = reload_config(self.ctx)
            self.recovery.redo_delay = config.redo_delay / 1000.0
            self.recovery.log_checkpoints = config.log_checkpoints
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
                self.set_activity("waiting for", lsn)
                self.maybe_request_walreceiver()

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

    def set_activity(self, doing: str, lsn: int) -> None:
        """The ps display: "startup recovering 000000010000000000000003", as XLogFileRead sets it."""
        title = f"pgtop: startup {doing} {segment_file_name(self.timeline, segment_of(lsn))}"
        if title != self.title:
            self.title = title
            self.ctx.set_title(title)

    def maybe_request_walreceiver(self) -> None:
        """RequestXLogStreaming(): only with a primary_conninfo, only while no walreceiver
        runs, and at most once per wal_retrieve_retry_interval."""
        config = config_of(self.ctx)
        if not config.primary_conninfo or aux_pid(self.ctx, ChildKind.WALRECEIVER) is not None:
            return
        now = time.monotonic()
        interval = config.wal_retrieve_retry_interval / 1000.0
        if self.walreceiver_requested_at is None or now - self.walreceiver_requested_at >= interval:
            self.walreceiver_requested_at = now
            self.ctx.raise_pmsignal(PMSignalReason.START_WALRECEIVER)


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
    ctx.handle(signal.SIGHUP, signal.SIGTERM, signal.SIGUSR2)
    ctx.exit_on_sigquit()  # SignalHandlerForCrashExit: _exit(2), no message
    ignore_unused(ctx)
    return StartupProcess(ctx).run()
