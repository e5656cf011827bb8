"""The statistics collector (PostgreSQL 14's pgstat.c, PgstatCollectorMain).

Backends add what they report (commits, rollbacks) straight to shared-memory counters, so
the collector has no UDP socket to read (one could be a Unix datagram socketpair later).
What it keeps is the files: at start it reads the permanent stats file `pg_stat/global.stat`
left by the last clean shutdown, adds it to the counters and deletes it (the counters are
now authoritative); while it runs it rewrites the temporary file `pg_stat_tmp/global.stat`
when the counters changed, at most every PGSTAT_STAT_INTERVAL; at the end it writes the
permanent file again. Recovery deletes both (pgstat_reset_all), so statistics survive a
clean restart but not a crash.

Signals, as PostgreSQL 14: SIGQUIT means "shut down": write the permanent file, exit 0
(the postmaster sends it after the shutdown checkpoint, and in a crash cycle); SIGHUP reload;
SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 ignored. Postmaster death: write the file, exit 0.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

from pgtop.children.context import ChildContext, WaitEvent
from pgtop.children.interrupt import datadir_of, ignore_unused, reload_config
from pgtop.common.shmem import Segment
from pgtop.common.shmem_records import Counters
from pgtop.core.vocabulary import LogLevel

STAT_DIR = "pg_stat"  # PGSTAT_STAT_PERMANENT_DIRECTORY
STAT_TMP_DIR = "pg_stat_tmp"  # stats_temp_directory's default
STAT_FILE = "global.stat"
PGSTAT_FILE_FORMAT_ID = 0x01A5BCA2  # PostgreSQL 14's
PGSTAT_STAT_INTERVAL = 0.5  # seconds: the least time between two writes of the temporary file

# The counters a stats file keeps: pg_stat_bgwriter, pg_stat_archiver, pg_stat_database's
# transaction counts, autovacuum runs. WAL positions and recovery progress are not statistics.
KEPT_COUNTERS = (
    "checkpoints", "buffers_written", "archived_count", "failed_count", "last_archived_wal",
    "last_archived_time", "last_failed_wal", "last_failed_time", "autovacuum_runs",
    "stats_messages", "xact_commit", "xact_rollback",
)


def stats_file_content(counters: Counters, now: float) -> dict[str, Any]:
    return {
        "format_id": PGSTAT_FILE_FORMAT_ID,
        "stats_timestamp": now,
        "counters": {name: getattr(counters, name) for name in KEPT_COUNTERS},
    }


def write_stats_file(directory: str, content: dict[str, Any]) -> None:
    """Write global.stat through a temporary name, so a reader never sees half a file."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    final = os.path.join(directory, STAT_FILE)
    temp = os.path.join(directory, "global.tmp")
    with open(temp, "w", encoding="utf-8") as file:
        json.dump(content, file)
    os.replace(temp, final)


def read_stats_file(path: str) -> dict[str, Any] | None:
    """The counters of a stats file; None if it is missing, unreadable or of another format
    (PostgreSQL then starts from zero too, with "corrupted statistics file" at LOG)."""
    try:
        with open(path, encoding="utf-8") as file:
            content = json.load(file)
    except (OSError, ValueError):
        return None
    if not isinstance(content, dict) or content.get("format_id") != PGSTAT_FILE_FORMAT_ID:
        return None
    counters = content.get("counters")
    return {k: v for k, v in counters.items() if k in KEPT_COUNTERS} if isinstance(counters, dict) else None


def reset_stats_files(datadir: str) -> None:
    """pgstat_reset_all(): remove the permanent and temporary stats files."""
    for directory in (STAT_DIR, STAT_TMP_DIR):
        path = os.path.join(datadir, directory)
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            continue
        for name in names:
            if name.endswith((".stat", ".tmp")):
                try:
                    os.unlink(os.path.join(path, name))
                except FileNotFoundError:
                    pass


def restore_counters(segment: Segment, saved: dict[str, Any]) -> None:
    """Add the saved statistics to the live counters (other processes may have counted
    already, so numbers are added, not set)."""
    zero = Counters()
    numbers = {k: v for k, v in saved.items() if type(getattr(zero, k)) is int and type(v) is int}
    others = {k: v for k, v in saved.items() if type(getattr(zero, k)) in (str, float) and k not in numbers}
    try:
        if numbers:
            segment.add_counters(**numbers)
        if others:
            segment.update_counters(**others)
    except (ValueError, TypeError):
        pass  # a hand-edited file: ignore it, as a corrupted one


class Collector:
    """The collector's files for one run."""

    def __init__(self, ctx: ChildContext) -> None:
        self.ctx = ctx
        self.datadir = datadir_of(ctx)
        self.written: Counters | None = None
        self.written_at = 0.0

    def load_permanent_file(self) -> None:
        path = os.path.join(self.datadir, STAT_DIR, STAT_FILE)
        saved = read_stats_file(path)
        if saved is None and os.path.exists(path):
            self.ctx.log(LogLevel.LOG, f'corrupted statistics file "{os.path.join(STAT_DIR, STAT_FILE)}"')
        if saved and self.ctx.segment is not None:
            restore_counters(self.ctx.segment, saved)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def write_temporary_file(self) -> None:
        """Rewrite pg_stat_tmp/global.stat if the counters changed since the last time."""
        if self.ctx.segment is None:
            return
        counters = self.ctx.segment.counters()
        kept = [getattr(counters, name) for name in KEPT_COUNTERS]
        if self.written is not None and kept == [getattr(self.written, name) for name in KEPT_COUNTERS]:
            return
        write_stats_file(os.path.join(self.datadir, STAT_TMP_DIR), stats_file_content(counters, time.time()))
        self.written, self.written_at = counters, time.monotonic()

    def write_permanent_file(self) -> None:
        """pgstat_write_statsfiles(permanent=true): the file the next start reads; the
        temporary one goes."""
        counters = self.ctx.segment.counters() if self.ctx.segment is not None else Counters()
        write_stats_file(os.path.join(self.datadir, STAT_DIR), stats_file_content(counters, time.time()))
        try:
            os.unlink(os.path.join(self.datadir, STAT_TMP_DIR, STAT_FILE))
        except FileNotFoundError:
            pass


def main(ctx: ChildContext) -> int:
    ctx.handle(signal.SIGHUP, signal.SIGQUIT)
    ctx.ignore(signal.SIGTERM)
    ignore_unused(ctx)
    collector = Collector(ctx)
    collector.load_permanent_file()
    while True:
        events = ctx.wait(PGSTAT_STAT_INTERVAL)
        if signal.SIGQUIT in events or WaitEvent.POSTMASTER_DEATH in events:
            break  # ShutdownRequestPending, or the emergency bailout
        if signal.SIGHUP in events:
            reload_config(ctx)
        if time.monotonic() - collector.written_at >= PGSTAT_STAT_INTERVAL:
            collector.write_temporary_file()
    collector.write_permanent_file()
    return 0
