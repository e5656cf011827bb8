"""The autovacuum launcher (autovacuum.c, AutoVacLauncherMain): asks the postmaster for a
worker every autovacuum_naptime per database.

To ask, it names the database in shared memory and raises START_AUTOVAC_WORKER. If the
postmaster cannot fork the worker it sets the worker-failed flag and sends SIGUSR2; the
launcher then asks again a second later. At most autovacuum_max_workers workers run at once
(counted in pg_stat_activity). Started while autovacuum is off (START_AUTOVAC_LAUNCHER, for
xid wraparound), it asks for one worker and exits 0 at once, as PostgreSQL's emergency mode;
a reload that turns autovacuum off ends it the same way.

Signals, as PostgreSQL 14: SIGTERM "autovacuum launcher shutting down" (DEBUG1), exit 0;
SIGUSR2 a worker ended or could not be forked; SIGHUP reload; SIGQUIT _exit(2); SIGINT
ignored (statement cancel: it runs no statements). Postmaster death: exit 1.
"""

from __future__ import annotations

import signal
import time

from pgtop.children.context import ChildContext
from pgtop.children.interrupt import config_of, ignore_unused, wait_main_loop
from pgtop.core.vocabulary import ChildKind, LogLevel, PMSignalReason

# pgtop's cluster has one database; PostgreSQL visits each database with statistics in turn.
DATABASES = ("postgres",)
FORK_FAILED_RETRY = 1.0  # seconds: the pg_usleep(1000000L) before asking again


def running_workers(ctx: ChildContext) -> int:
    if ctx.segment is None:
        return 0
    kind = ChildKind.AUTOVAC_WORKER.value
    return sum(1 for row in ctx.segment.activity() if row.backend_type == kind)


def request_worker(ctx: ChildContext, database: str) -> None:
    """do_start_worker(): name the database, then SendPostmasterSignal(START_AUTOVAC_WORKER)."""
    if ctx.segment is None:
        return
    ctx.segment.set_avworker_database(database)
    ctx.raise_pmsignal(PMSignalReason.START_AUTOVAC_WORKER)


def shut_down(ctx: ChildContext) -> int:
    """AutoVacLauncherShutdown()."""
    ctx.log(LogLevel.DEBUG1, "autovacuum launcher shutting down")
    return 0


def main(ctx: ChildContext) -> int:
    ctx.handle(signal.SIGHUP, signal.SIGTERM, signal.SIGUSR2)
    ctx.exit_on_sigquit()  # SignalHandlerForCrashExit: _exit(2), no message
    ignore_unused(ctx)
    ctx.log(LogLevel.DEBUG1, "autovacuum launcher started")
    if not config_of(ctx).autovacuum_active:
        request_worker(ctx, DATABASES[0])  # emergency mode: one worker, then go away
        return 0
    turn = 0
    next_worker = time.monotonic() + config_of(ctx).autovacuum_naptime / len(DATABASES)
    retry_at: float | None = None
    while True:
        wake = min(next_worker, retry_at) if retry_at is not None else next_worker
        events = wait_main_loop(ctx, wake - time.monotonic())
        if signal.SIGTERM in events:
            return shut_down(ctx)
        config = config_of(ctx)
        if signal.SIGHUP in events and not config.autovacuum_active:
            return shut_down(ctx)
        now = time.monotonic()
        if signal.SIGUSR2 in events and ctx.segment is not None and ctx.segment.take_avworker_failed():
            retry_at = now + FORK_FAILED_RETRY  # the request is still in shared memory
        if retry_at is not None and now >= retry_at:
            retry_at = None
            ctx.raise_pmsignal(PMSignalReason.START_AUTOVAC_WORKER)
        if now >= next_worker:
            if running_workers(ctx) < config.autovacuum_max_workers:
                request_worker(ctx, DATABASES[turn % len(DATABASES)])
                turn += 1
            next_worker = now + config.autovacuum_naptime / len(DATABASES)
