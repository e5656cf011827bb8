"""The background writer (bgwriter.c): every bgwriter_delay it cleans some dirty buffers.

pgtop has no shared buffer pool: table pages reach disk as checkpoint images. What the
bgwriter models is BgBufferSync's bookkeeping: the WAL written since its last round is the
amount of data backends dirtied, counted in 8 kB pages; each round "writes" at most
bgwriter_lru_maxpages of them, and the pages written go to the `buffers_written` counter
(pg_stat_bgwriter.buffers_clean), so a write load makes it visibly busy.

Signals, as PostgreSQL 14: SIGHUP reload; SIGTERM exit 0; SIGQUIT _exit(2); SIGINT and
SIGUSR2 ignored. Postmaster death: exit 1.
"""

from __future__ import annotations

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
from pgtop.storage.wal import BLCKSZ, Wal

BGWRITER_LRU_MAXPAGES = 100  # PostgreSQL's default bgwriter_lru_maxpages


class DirtyPages:
    """Pages dirtied since the last round, from the WAL insert position's advance."""

    def __init__(self, wal: Wal) -> None:
        self._wal = wal
        self._seen = wal.state().insert
        self.pending = 0

    def collect(self) -> None:
        insert = self._wal.state().insert
        if insert > self._seen:
            self.pending += -(-(insert - self._seen) // BLCKSZ)
        self._seen = insert  # a lower position (recovery reset the WAL end) counts as nothing

    def write_round(self, limit: int = BGWRITER_LRU_MAXPAGES) -> int:
        written = min(self.pending, limit)
        self.pending -= written
        return written


def main(ctx: ChildContext) -> int:
    ctx.handle(signal.SIGHUP, signal.SIGTERM)
    ctx.exit_on_sigquit()  # SignalHandlerForCrashExit: _exit(2), no message
    ignore_unused(ctx)
    try:
        wal = Wal(datadir_of(ctx))
    except StorageError as error:
        ctx.log(LogLevel.FATAL, error.message, error.detail, error.hint)
        return 1
    with wal:
        dirty = DirtyPages(wal)
        next_round = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_round:
                dirty.collect()
                written = dirty.write_round()
                if written and ctx.segment is not None:
                    ctx.segment.add_counters(buffers_written=written)
                next_round = now + config_of(ctx).bgwriter_delay / 1000.0
            events = wait_main_loop(ctx, next_round - time.monotonic())
            if signal.SIGTERM in events:
                return 0  # HandleMainLoopInterrupts: proc_exit(0)
