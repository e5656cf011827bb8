"""The background writer and the WAL writer, for real: their rounds show in shared memory."""

from __future__ import annotations

import os
import signal

from childtest import Postmaster, config

from pgtop.core.vocabulary import ChildKind, ExitStatus
from pgtop.storage.database import Database
from pgtop.storage.wal import Wal


def test_bgwriter_cleans_the_pages_backends_dirty(postmaster: Postmaster) -> None:
    pid = postmaster.spawn(ChildKind.BGWRITER, config(bgwriter_delay=10))
    postmaster.wait_started(pid, "pgtop: background writer")
    assert postmaster.counters().buffers_written == 0
    with Database(postmaster.datadir) as database:
        database.create_table("t", [("a", "int"), ("b", "text")])
        database.insert("t", [(i, "x" * 100) for i in range(300)])  # ~40 kB of WAL
    counters = postmaster.wait_counter(lambda c: c.buffers_written >= 4, "buffers written")
    assert counters.buffers_written <= 8
    os.kill(pid, signal.SIGTERM)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)


def test_walwriter_flushes_what_an_open_transaction_wrote(postmaster: Postmaster) -> None:
    pid = postmaster.spawn(ChildKind.WALWRITER, config(wal_writer_delay=10))
    postmaster.wait_started(pid, "pgtop: walwriter")
    with Database(postmaster.datadir) as database:
        database.begin()
        database.create_table("t", [("a", "int")])  # WAL written, not flushed: no commit yet
        with Wal(postmaster.datadir) as wal:
            written = wal.state().insert
        counters = postmaster.wait_counter(lambda c: c.wal_flush_lsn == written, "the flush LSN")
        assert counters.wal_insert_lsn == written
        database.rollback()
    os.kill(pid, signal.SIGTERM)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
