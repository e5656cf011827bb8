"""The WAL writer (walwriter.c): every wal_writer_delay it flushes the WAL backends wrote.

XLogBackgroundFlush: whatever lies between the last flush and the insert position (records of
transactions still running, or of anything not flushed by its writer) is fdatasync'ed, segment
by segment, and the flush position is published in shared memory next to the insert position,
so the dashboard shows both. A commit flushes its own WAL, so the walwriter usually finds that
the work is already done; fdatasync then costs next to nothing.

Signals, as PostgreSQL 14: SIGHUP reload; SIGTERM and SIGINT exit 0; SIGQUIT _exit(2); SIGUSR2
ignored. Postmaster death: exit 1.
"""

from __future__ import annotations

import os
import signal
import time

from pgtop.children.context import ChildContext
from pgtop.children.interrupt import (
    config_of,
    datadir_of,
    ignore_unused,
    wait_main_loop,
)
from pgtop.core.vocabulary import LogLevel
from pgtop.storage.errors import StorageError
from pgtop.storage.lsn import segment_of
from pgtop.storage.wal import InsertState, Wal, segment_path

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def flush_written_wal(datadir: str, state: InsertState, flushed: int) -> int:
    """fdatasync the segments holding WAL between `flushed` and the insert position; returns
    the new flush position. fdatasync through any descriptor flushes what every process
    wrote to that file."""
    if state.insert <= flushed:
        return state.insert
    for segno in range(segment_of(flushed), segment_of(max(state.insert - 1, flushed)) + 1):
        try:
            fd = os.open(segment_path(datadir, state.timeline, segno), os.O_RDONLY)
        except FileNotFoundError:
            continue  # removed by a checkpoint, or not created yet: nothing to flush
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)
    return state.insert


def main(ctx: ChildContext) -> int:
    ctx.handle(signal.SIGHUP, *SHUTDOWN_SIGNALS)
    ctx.exit_on_sigquit()  # SignalHandlerForCrashExit: _exit(2), no message
    ignore_unused(ctx)
    datadir = datadir_of(ctx)
    try:
        wal = Wal(datadir)
    except StorageError as error:
        ctx.log(LogLevel.FATAL, error.message, error.detail, error.hint)
        return 1
    with wal:
        flushed = wal.state().insert
        published = (-1, -1)
        next_round = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_round:
                state = wal.state()
                flushed = flush_written_wal(datadir, state, flushed)
                if (state.insert, flushed) != published and ctx.segment is not None:
                    ctx.segment.update_counters(wal_insert_lsn=state.insert, wal_flush_lsn=flushed)
                    published = (state.insert, flushed)
                next_round = now + config_of(ctx).wal_writer_delay / 1000.0
            events = wait_main_loop(ctx, next_round - time.monotonic())
            if events.signals & set(SHUTDOWN_SIGNALS):
                return 0
