"""The streaming replication messages, CopyData payloads both ends build (walsender.c and
walreceiver.c): XLogData ('w'), the primary keepalive ('k') and the standby status update ('r').
"""

from __future__ import annotations

import struct
import time

PG_EPOCH = 946_684_800  # 2000-01-01 in Unix time: the protocol's timestamps count from it


def pg_timestamp(now: float | None = None) -> int:
    """GetCurrentTimestamp(): microseconds since 2000-01-01."""
    return int(((time.time() if now is None else now) - PG_EPOCH) * 1_000_000)


def xlog_data(start: int, wal_end: int, data: bytes) -> bytes:
    return b"w" + struct.pack("!QQq", start, wal_end, pg_timestamp()) + data


def keepalive(wal_end: int, reply_requested: bool) -> bytes:
    return b"k" + struct.pack("!Qq?", wal_end, pg_timestamp(), reply_requested)


def standby_status(write: int, flush: int, apply: int, reply_requested: bool) -> bytes:
    return b"r" + struct.pack("!QQQq?", write, flush, apply, pg_timestamp(), reply_requested)


def copy_data(payload: bytes) -> bytes:
    return b"d" + struct.pack("!i", len(payload) + 4) + payload


COPY_DONE = b"c" + struct.pack("!i", 4)
