"""The records in shared memory: dashboard counters and activity rows, packed and read consistently.

Records that several fields make up (activity rows, counters, the worker request) are read
and written with PostgreSQL's st_changecount protocol: the writer makes the count odd, writes,
makes it even; a reader retries until it sees the same even count before and after copying.
The segment that holds them, and the locks around them, are pgtop.common.shmem.

This relies on x86-64's ordered stores; a weakly ordered CPU would need memory barriers that
pure Python cannot issue.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import struct
import time
from dataclasses import dataclass, field

from pgtop.common.activity import BackendActivity, RecoveryProgress

QUERY_BYTES = 1024  # track_activity_query_size, terminating NUL included
_U32 = struct.Struct("<I")
COUNT_SIZE = 8  # the change count (uint32) padded so the payload stays aligned
# An activity row in two parts. The first is set when the row is taken: pid, cancel key,
# backend type, user, database, client address, backend start. The second is what
# pgstat_report_activity() changes at every statement: application name, state, query,
# state change. Its owner rewrites the second part alone (`pack_activity_status`).
_ACTIVITY_FIXED = "iI32s64s64s64sd"
_ACTIVITY_STATUS = "64s32s1024sd"
ACTIVITY_STRUCT = struct.Struct("<" + _ACTIVITY_FIXED + _ACTIVITY_STATUS)
ACTIVITY_STATUS_STRUCT = struct.Struct("<" + _ACTIVITY_STATUS)
ACTIVITY_STATUS_OFFSET = struct.calcsize("<" + _ACTIVITY_FIXED)
_READ_PATIENCE = 0.1  # seconds a reader waits for a writer that stopped mid-row (it died)


def format_lsn(lsn: int) -> str:
    """An LSN as PostgreSQL prints it (%X/%X): ``0/1A2B3C``."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def _counter(fmt: str, default: object = 0) -> object:
    return field(default=default, metadata={"fmt": fmt})


@dataclass(frozen=True, slots=True)
class Counters:
    """The counters the dashboard shows. LSNs are uint64; times are epoch seconds."""

    wal_insert_lsn: int = _counter("Q")
    wal_flush_lsn: int = _counter("Q")
    checkpoints: int = _counter("Q")
    last_checkpoint_time: float = _counter("d", 0.0)
    last_checkpoint_lsn: int = _counter("Q")
    buffers_written: int = _counter("Q")  # bgwriter
    archived_count: int = _counter("Q")
    failed_count: int = _counter("Q")
    last_archived_wal: str = _counter("32s", "")
    last_archived_time: float = _counter("d", 0.0)
    last_failed_wal: str = _counter("32s", "")
    last_failed_time: float = _counter("d", 0.0)
    autovacuum_runs: int = _counter("Q")
    redo_start_lsn: int = _counter("Q")
    replay_lsn: int = _counter("Q")
    recovery_end_lsn: int = _counter("Q")
    records_replayed: int = _counter("Q")
    records_total: int = _counter("Q")
    replaying: bool = _counter("?", False)
    stats_messages: int = _counter("Q")
    xact_commit: int = _counter("Q")
    xact_rollback: int = _counter("Q")
    # A standby's walreceiver (pg_stat_wal_receiver): where streaming started, what it has
    # written and flushed, the primary's end of WAL as last reported, when it last heard.
    walrcv_starts: int = _counter("Q")  # walreceivers started: the startup process tells a new one from none
    walrcv_receive_start_lsn: int = _counter("Q")
    walrcv_written_lsn: int = _counter("Q")
    walrcv_flushed_lsn: int = _counter("Q")
    walrcv_latest_end_lsn: int = _counter("Q")
    walrcv_last_msg_receipt_time: float = _counter("d", 0.0)
    # A primary's walsender (pg_stat_replication), the last one that heard from its standby:
    # what it sent, and the standby's written, flushed and replayed positions.
    walsnd_sent_lsn: int = _counter("Q")
    walsnd_write_lsn: int = _counter("Q")
    walsnd_flush_lsn: int = _counter("Q")
    walsnd_replay_lsn: int = _counter("Q")
    walsnd_reply_time: float = _counter("d", 0.0)

    def recovery_progress(self) -> RecoveryProgress | None:
        """What the startup process published, for the snapshot, while it replays WAL."""
        if not self.replaying:
            return None
        return RecoveryProgress(
            redo_start=format_lsn(self.redo_start_lsn),
            replayed=format_lsn(self.replay_lsn),
            end=format_lsn(self.recovery_end_lsn),
            records_done=self.records_replayed,
            records_total=self.records_total,
        )


_COUNTER_FIELDS = dataclasses.fields(Counters)
COUNTER_NAMES = frozenset(f.name for f in _COUNTER_FIELDS)
COUNTERS_STRUCT = struct.Struct("<" + "".join(f.metadata["fmt"] for f in _COUNTER_FIELDS))


@dataclass(frozen=True, slots=True)
class ActivityRow:
    """One backend status entry (PgBackendStatus); `client_addr` None means none."""

    pid: int
    backend_type: str
    user: str = ""
    database: str = ""
    application_name: str = ""
    client_addr: str | None = None
    state: str = ""
    query: str = ""
    backend_start: float = 0.0
    state_change: float = 0.0
    cancel_key: int = 0

    def as_backend_activity(self) -> BackendActivity:
        """The snapshot's row (everything but the cancel key)."""
        names = (f.name for f in dataclasses.fields(BackendActivity))
        return BackendActivity(**{name: getattr(self, name) for name in names})


def encode_text(text: str, size: int) -> bytes:
    """UTF-8, cut to leave room for a NUL without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) < size:
        return raw
    return raw[: size - 1].decode("utf-8", "ignore").encode("utf-8")


def decode_text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def pack_activity(row: ActivityRow) -> bytes:
    return ACTIVITY_STRUCT.pack(
        row.pid, row.cancel_key & 0xFFFFFFFF, encode_text(row.backend_type, 32), encode_text(row.user, 64),
        encode_text(row.database, 64), encode_text(row.client_addr or "", 64), row.backend_start,
        encode_text(row.application_name, 64), encode_text(row.state, 32),
        encode_text(row.query, QUERY_BYTES), row.state_change,
    )  # fmt: skip


def pack_activity_status(application_name: str, state: str, query: str, state_change: float) -> bytes:
    """The part of a row that pgstat_report_activity() changes, to write at ACTIVITY_STATUS_OFFSET."""
    return ACTIVITY_STATUS_STRUCT.pack(
        encode_text(application_name, 64), encode_text(state, 32), encode_text(query, QUERY_BYTES), state_change
    )


def unpack_activity(raw: bytes) -> ActivityRow:
    pid, key, btype, user, db, addr, start, app, state, query, change = ACTIVITY_STRUCT.unpack(raw)
    return ActivityRow(
        pid=pid, backend_type=decode_text(btype), user=decode_text(user), database=decode_text(db),
        application_name=decode_text(app), client_addr=decode_text(addr) or None,
        state=decode_text(state), query=decode_text(query), backend_start=start,
        state_change=change, cancel_key=key,
    )  # fmt: skip


def pack_counters(counters: Counters) -> bytes:
    values = [getattr(counters, f.name) for f in _COUNTER_FIELDS]
    return COUNTERS_STRUCT.pack(*(encode_text(v, 32) if isinstance(v, str) else v for v in values))


def unpack_counters(raw: bytes) -> Counters:
    values = COUNTERS_STRUCT.unpack(raw)
    return Counters(*(decode_text(v) if isinstance(v, bytes) else v for v in values))


# -- the change count (st_changecount) ------------------------------------------------------


def write_record(memory: mmap.mmap, offset: int, payload: bytes, at: int = 0) -> None:
    """Write `payload` at `at` in the record after the change count at `offset`, the count
    odd meanwhile."""
    count = _U32.unpack_from(memory, offset)[0]
    # Odd while writing. A count left odd by a writer that died moves on to the next odd.
    writing = ((count + 1) | 1) & 0xFFFFFFFF
    _U32.pack_into(memory, offset, writing)
    start = offset + COUNT_SIZE + at
    memory[start : start + len(payload)] = payload
    _U32.pack_into(memory, offset, (writing + 1) & 0xFFFFFFFF)


def read_record(memory: mmap.mmap, offset: int, size: int) -> bytes | None:
    """A consistent copy, or None if a writer stopped half-way (it died mid-write)."""
    start = offset + COUNT_SIZE
    deadline = None
    while True:
        before = _U32.unpack_from(memory, offset)[0]
        if before % 2 == 0:
            payload = memory[start : start + size]
            if _U32.unpack_from(memory, offset)[0] == before:
                return payload
        now = time.monotonic()
        deadline = deadline or now + _READ_PATIENCE
        if now >= deadline:
            return None
        os.sched_yield()
