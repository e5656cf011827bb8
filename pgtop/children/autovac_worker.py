"""An autovacuum worker (autovacuum.c, AutoVacWorkerMain): processes the database the
launcher named, then exits 0.

Its job, in pgtop's storage: read every table of the committed state and count its rows,
showing "autovacuum: VACUUM ANALYZE public.<table>" in pg_stat_activity while it does, then
count the run in shared memory (what last_autovacuum would record).

Signals, as PostgreSQL 14: SIGTERM FATAL "terminating autovacuum process due to
administrator command", exit 1; SIGINT cancels the current table (ERROR "canceling
autovacuum task"), the worker moves on; SIGHUP reload; SIGQUIT _exit(2) with no message;
SIGUSR2 ignored. Postmaster death: exit 1.
"""

from __future__ import annotations

import signal

from pgtop.children.context import ChildContext
from pgtop.children.interrupt import (
    datadir_of,
    exit_if_postmaster_died,
    ignore_unused,
    reload_config,
)
from pgtop.core.vocabulary import LogLevel
from pgtop.storage.database import Database
from pgtop.storage.errors import StorageError

DEFAULT_DATABASE = "postgres"


class Canceled(Exception):
    """SIGINT while a table is being processed."""


def check_for_interrupts(ctx: ChildContext) -> None:
    """CHECK_FOR_INTERRUPTS(): die on SIGTERM or postmaster death, cancel on SIGINT."""
    events = ctx.wait(0)
    exit_if_postmaster_died(events)
    if signal.SIGHUP in events:
        reload_config(ctx)
    if signal.SIGTERM in events:
        ctx.log(LogLevel.FATAL, "terminating autovacuum process due to administrator command")
        raise SystemExit(1)
    if signal.SIGINT in events:
        raise Canceled


def vacuum_table(ctx: ChildContext, database: Database, table: str) -> int:
    """"VACUUM ANALYZE" one table: read it whole; returns its live rows."""
    ctx.report_activity(state="active", query=f"autovacuum: VACUUM ANALYZE public.{table}")
    check_for_interrupts(ctx)
    rows = len(database.rows(table))
    ctx.log(LogLevel.DEBUG2, f'"{table}": found 0 removable, {rows} nonremovable row versions')
    return rows


def do_autovacuum(ctx: ChildContext) -> None:
    with Database(datadir_of(ctx)) as database:
        for table in database.table_names():
            try:
                vacuum_table(ctx, database, table)
            except Canceled:
                ctx.log(LogLevel.ERROR, "canceling autovacuum task")
            except StorageError as error:  # dropped meanwhile: the next table
                ctx.log(LogLevel.DEBUG1, error.message)
            check_for_interrupts(ctx)
    ctx.report_activity(state="idle", query="")


def main(ctx: ChildContext) -> int:
    ctx.handle(signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
    ctx.exit_on_sigquit()  # SignalHandlerForCrashExit: _exit(2), no message
    ignore_unused(ctx)
    database = (ctx.segment.avworker_database() if ctx.segment is not None else None) or DEFAULT_DATABASE
    ctx.set_title(f"pgtop: autovacuum worker {database}")
    ctx.report_activity(database=database)
    ctx.log(LogLevel.DEBUG1, f'autovacuum: processing database "{database}"')
    try:
        check_for_interrupts(ctx)
        do_autovacuum(ctx)
    except Canceled:
        ctx.log(LogLevel.ERROR, "canceling autovacuum task")
    except StorageError as error:
        ctx.log(LogLevel.FATAL, error.message, error.detail, error.hint)
        return 1
    if ctx.segment is not None:
        ctx.segment.add_counters(autovacuum_runs=1)
    return 0
