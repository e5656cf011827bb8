"""Writing the WAL: segment files in pg_wal/, appended by many processes under one lock.

Theory of operation. The WAL is one byte stream; an LSN is a position in it. It is cut into
segment files of WAL_SEGMENT_SIZE bytes named like PostgreSQL's (timeline, log, seg). Each
segment starts with a 40-byte header (PostgreSQL's long page header: magic, timeline, the
segment's own start LSN, the system identifier) so a recycled or foreign file is recognised.
A record never spans two segments: when one does not fit, the writer first writes a SWITCH
record and continues in the next segment, as pg_switch_wal() does.

Processes share the insert position through a small state file, `pg_wal/.insert.lock`: the
insert LSN, the start of the last record (the next record's prev-link), the next xid, the
timeline and two flags (archiving, in recovery), with a CRC. Writers take an exclusive
`flock` on that file (released by the kernel if the holder is SIGKILLed), append, then
update the state; everyone maps the file, so "has anything new been written?" costs one
memory read, no system call. A record is written before the state that covers it, so a
reader that stops at the state's insert LSN never sees half a record.

Durability: `flush()` fdatasyncs the segments this process wrote; a commit calls it before
returning. After a crash the state may lag behind or run past valid WAL; recovery finds the
true end by reading records (CRC and prev-link) and calls `reset()`.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Self

from pgtop.storage.archive import notify_ready
from pgtop.storage.controlfile import fsync_directory
from pgtop.storage.errors import WalError
from pgtop.storage.lsn import (
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    WAL_SEGMENT_SIZE,
    align,
    format_lsn,
    segment_file_name,
    segment_of,
    segment_offset,
    segment_start,
)
from pgtop.storage.records import RecordType, encode_record
from pgtop.storage.timeline import write_history

STATE_FILE = os.path.join("pg_wal", ".insert.lock")
XLOG_PAGE_MAGIC = 0xD10D  # PostgreSQL 14's value
XLP_LONG_HEADER = 0x0002
BLCKSZ = 8192
SEGMENT_HEADER = struct.Struct("<HHIQIIQII")  # XLogLongPageHeaderData
assert SEGMENT_HEADER.size == SEGMENT_HEADER_SIZE
SWITCH_SIZE = align(RECORD_HEADER_SIZE)
MAX_RECORD_SIZE = WAL_SEGMENT_SIZE - SEGMENT_HEADER_SIZE - SWITCH_SIZE

_STATE = struct.Struct("<IIQQQQQIII")
_STATE_MAGIC = 0x70677761  # "pgwa"
_STATE_VERSION = 1
FLAG_ARCHIVING = 1
FLAG_IN_RECOVERY = 2


@dataclass(frozen=True, slots=True)
class InsertState:
    """The shared insert position and counters."""

    insert: int  # where the next record goes (CurrPos)
    prev: int  # start of the last record written: the next record's xl_prev
    next_xid: int
    system_identifier: int
    timeline: int
    flags: int = 0
    # During archive recovery: how far the startup process has replayed. Hot-standby readers
    # see no further (as in PostgreSQL) and restartpoints never go past it.
    replayed: int = 0

    @property
    def archiving(self) -> bool:
        return bool(self.flags & FLAG_ARCHIVING)

    @property
    def in_recovery(self) -> bool:
        """Set while the startup process runs archive recovery: WAL is read-only."""
        return bool(self.flags & FLAG_IN_RECOVERY)

    @property
    def visible_end(self) -> int:
        """How far readers may apply the WAL: the insert position, or in recovery the
        startup process's replay position."""
        return min(self.insert, self.replayed) if self.in_recovery else self.insert


def segment_header(timeline: int, segno: int, system_identifier: int) -> bytes:
    return SEGMENT_HEADER.pack(
        XLOG_PAGE_MAGIC, XLP_LONG_HEADER, timeline, segment_start(segno), 0, 0,
        system_identifier, WAL_SEGMENT_SIZE, BLCKSZ,
    )


def segment_path(datadir: str, timeline: int, segno: int) -> str:
    return os.path.join(datadir, "pg_wal", segment_file_name(timeline, segno))


class Wal:
    """One process's handle on the cluster's WAL. Not thread-safe: one per thread."""

    def __init__(self, datadir: str, *, create: bool = False) -> None:
        self.datadir = datadir
        path = os.path.join(datadir, STATE_FILE)
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        try:
            self._state_fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            raise WalError(f'could not open file "{STATE_FILE}": No such file or directory') from None
        if os.fstat(self._state_fd).st_size < mmap.PAGESIZE:
            os.ftruncate(self._state_fd, mmap.PAGESIZE)
        self._map = mmap.mmap(self._state_fd, mmap.PAGESIZE)
        self._fds: dict[tuple[int, int], int] = {}
        self._dirty: set[tuple[int, int]] = set()
        self._locked = False

    # -- the shared state ------------------------------------------------------------------

    def state(self) -> InsertState:
        """The current insert state, read without a lock (a torn read fails its CRC: retry)."""
        for _attempt in range(10_000):
            state = self._decode_state()
            if state is not None:
                return state
        raise WalError(f'WAL insert state in "{STATE_FILE}" is corrupt')

    def state_is_valid(self) -> bool:
        return self._decode_state() is not None

    def _decode_state(self) -> InsertState | None:
        raw = self._map[: _STATE.size]
        magic, version, insert, prev, next_xid, sysid, replayed, timeline, flags, crc = _STATE.unpack(raw)
        if magic != _STATE_MAGIC or version != _STATE_VERSION or zlib.crc32(raw[:-4]) != crc:
            return None
        return InsertState(insert, prev, next_xid, sysid, timeline, flags, replayed)

    def _store_state(self, state: InsertState) -> None:
        body = _STATE.pack(
            _STATE_MAGIC, _STATE_VERSION, state.insert, state.prev, state.next_xid,
            state.system_identifier, state.replayed, state.timeline, state.flags, 0,
        )[:-4]
        self._map[: _STATE.size] = body + struct.pack("<I", zlib.crc32(body))

    @property
    def insert_lsn(self) -> int:
        return self.state().insert

    # -- the lock --------------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[WalInsertion]:
        """Hold the insert lock: appends, xid allocation and resets happen inside."""
        if self._locked:
            raise WalError("WAL insert lock is already held by this handle")
        fcntl.flock(self._state_fd, fcntl.LOCK_EX)
        self._locked = True
        try:
            yield WalInsertion(self)
        finally:
            self._locked = False
            fcntl.flock(self._state_fd, fcntl.LOCK_UN)

    # -- conveniences that take the lock themselves ----------------------------------------

    def append(self, kind: RecordType, xid: int = 0, data: dict[str, Any] | bytes | None = None) -> int:
        """Append one record; returns its LSN. Not durable until flush()."""
        with self.locked() as insertion:
            return insertion.append(kind, xid, data)

    def allocate_xid(self) -> int:
        with self.locked() as insertion:
            return insertion.allocate_xid()

    def switch_segment(self) -> int:
        """pg_switch_wal(): finish the current segment; returns the new insert LSN."""
        with self.locked() as insertion:
            return insertion.switch()

    def set_flags(self, *, archiving: bool | None = None, in_recovery: bool | None = None) -> None:
        with self.locked() as insertion:
            insertion.set_flags(archiving=archiving, in_recovery=in_recovery)

    def set_replayed(self, lsn: int) -> None:
        """The startup process publishes its replay position (see InsertState.replayed)."""
        with self.locked() as insertion:
            insertion.restore(replace(insertion.state, replayed=lsn))

    # -- durability ------------------------------------------------------------------------

    def flush(self) -> None:
        """XLogFlush(): make everything this process wrote durable."""
        for key in sorted(self._dirty):
            os.fdatasync(self._fds[key])
        self._dirty.clear()
        current = segment_of(self.state().insert)
        for key in [key for key in self._fds if key[1] < current]:
            os.close(self._fds.pop(key))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._dirty.clear()
        self._map.close()
        os.close(self._state_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- segment files ---------------------------------------------------------------------

    def _segment_fd(self, timeline: int, segno: int) -> int:
        key = (timeline, segno)
        fd = self._fds.get(key)
        if fd is None:
            try:
                fd = os.open(segment_path(self.datadir, timeline, segno), os.O_RDWR)
            except FileNotFoundError:
                name = segment_file_name(timeline, segno)
                raise WalError(f'could not open file "pg_wal/{name}": No such file or directory') from None
            self._fds[key] = fd
        return fd

    def _init_segment(self, timeline: int, segno: int, system_identifier: int, prefix: bytes = b"") -> int:
        """XLogFileInit(): a fresh, zero-filled (sparse) segment with its header.

        An existing file (recycled, or stale after a crash) is emptied first, so nothing of its
        old contents can be read as records of the new segment.
        """
        path = segment_path(self.datadir, timeline, segno)
        existed = os.path.exists(path)
        old = self._fds.pop((timeline, segno), None)
        if old is not None:
            os.close(old)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(fd, 0)
        os.ftruncate(fd, WAL_SEGMENT_SIZE)
        os.pwrite(fd, segment_header(timeline, segno, system_identifier) + prefix[SEGMENT_HEADER_SIZE:], 0)
        self._fds[(timeline, segno)] = fd
        self._dirty.add((timeline, segno))
        if not existed:
            fsync_directory(os.path.dirname(path))
        return fd

    def _write(self, timeline: int, lsn: int, data: bytes) -> None:
        segno = segment_of(lsn)
        os.pwrite(self._segment_fd(timeline, segno), data, segment_offset(lsn))
        self._dirty.add((timeline, segno))

    def _segment_completed(self, state: InsertState, segno: int) -> None:
        if state.archiving:
            notify_ready(self.datadir, segment_file_name(state.timeline, segno))


class WalInsertion:
    """What may be done while holding the insert lock (see Wal.locked)."""

    def __init__(self, wal: Wal) -> None:
        self._wal = wal
        # Under the lock nobody is writing the state, so one read is the truth: None means
        # the state file is new or damaged and only reset() may be called.
        self._state = wal._decode_state()

    @property
    def state(self) -> InsertState:
        if self._state is None:
            raise WalError(f'WAL insert state in "{STATE_FILE}" is corrupt')
        return self._state

    def _commit_state(self, state: InsertState) -> None:
        self._state = state
        self._wal._store_state(state)

    def allocate_xid(self) -> int:
        xid = self.state.next_xid
        self._commit_state(replace(self.state, next_xid=xid + 1))
        return xid

    def append(self, kind: RecordType, xid: int = 0, data: dict[str, Any] | bytes | None = None) -> int:
        """XLogInsert(): write one record at the insert position; returns its LSN."""
        if self.state.in_recovery:
            raise WalError("cannot make new WAL entries during recovery", sqlstate="55000")
        position = self._start_segment_if_needed(self.state.insert)
        raw = encode_record(kind, xid, data, self.state.prev)
        size = align(len(raw))
        if size > MAX_RECORD_SIZE:
            raise WalError(f"WAL record of {len(raw)} bytes is too big (at most {MAX_RECORD_SIZE})")
        end = segment_start(segment_of(position) + 1)
        if kind is not RecordType.SWITCH and position + size != end and position + size + SWITCH_SIZE > end:
            self.switch()
            return self.append(kind, xid, data)
        self._wal._write(self.state.timeline, position, raw)
        after = end if kind is RecordType.SWITCH else position + size
        self._commit_state(replace(self.state, insert=after, prev=position))
        if after == end:
            self._wal._segment_completed(self.state, segment_of(position))
        return position

    def start_segment(self) -> int:
        """If the insert position is at a segment boundary, start that segment (write its
        header) now; returns the insert position, which is then exactly where the next
        small record will go."""
        return self._start_segment_if_needed(self.state.insert)

    def _start_segment_if_needed(self, position: int) -> int:
        if segment_offset(position) != 0:
            return position
        self._wal._init_segment(self.state.timeline, segment_of(position), self.state.system_identifier)
        position += SEGMENT_HEADER_SIZE
        self._commit_state(replace(self.state, insert=position))
        return position

    def switch(self) -> int:
        """Write a SWITCH record unless the segment is untouched; returns the new insert LSN."""
        offset = segment_offset(self.state.insert)
        if offset in (0, SEGMENT_HEADER_SIZE) and self._segment_is_fresh():
            return self.state.insert
        self.append(RecordType.SWITCH)
        return self.state.insert

    def _segment_is_fresh(self) -> bool:
        return self.state.prev < segment_start(segment_of(self.state.insert))

    def set_flags(self, *, archiving: bool | None = None, in_recovery: bool | None = None) -> None:
        flags = self.state.flags
        for flag, value in ((FLAG_ARCHIVING, archiving), (FLAG_IN_RECOVERY, in_recovery)):
            if value is not None:
                flags = (flags | flag) if value else (flags & ~flag)
        self._commit_state(replace(self.state, flags=flags))

    def reset(self, state: InsertState) -> None:
        """Recovery found the end of valid WAL: insert there next; zero the segment's tail.

        Anything after the end (a torn record, a killed writer's half-written bytes) is
        erased, so it can never be read as if it were a record.
        """
        offset = segment_offset(state.insert)
        if offset:
            fd = self._wal._segment_fd(state.timeline, segment_of(state.insert))
            os.ftruncate(fd, offset)
            os.ftruncate(fd, WAL_SEGMENT_SIZE)
            os.fsync(fd)
        self._commit_state(state)

    def restore(self, state: InsertState) -> None:
        """Set the state without touching any segment (a standby's provisional position)."""
        self._commit_state(state)

    def begin_timeline(self, new_timeline: int, reason: str = "no recovery target specified") -> None:
        """Start a new timeline at the insert position (promotion, end of archive recovery).

        As PostgreSQL does: write the history file, then make the new timeline's first segment
        a copy of the old one up to the switchpoint, and insert on the new timeline from there.
        """
        switchpoint = self.state.insert
        old = self.state.timeline
        write_history(self._wal.datadir, new_timeline, old, switchpoint, reason)
        segno, offset = segment_of(switchpoint), segment_offset(switchpoint)
        if offset:
            prefix = os.pread(self._wal._segment_fd(old, segno), offset, 0)
            self._wal._init_segment(new_timeline, segno, self.state.system_identifier, prefix)
        self._commit_state(replace(self.state, timeline=new_timeline))

    def write_raw(self, lsn: int, data: bytes) -> int:
        """A walreceiver's write: bytes of a primary's WAL (headers included) at `lsn`.

        `lsn` may go back (a walreceiver restarts streaming at a segment start) but may not
        leave a gap. The insert LSN becomes the end of the bytes, so readers on this standby
        see the complete records among them. Returns the new insert LSN.
        """
        if lsn > self.state.insert:
            raise WalError(f"WAL data at {format_lsn(lsn)} leaves a gap after {format_lsn(self.state.insert)}")
        while data:
            room = WAL_SEGMENT_SIZE - segment_offset(lsn)
            chunk, data = data[:room], data[room:]
            if segment_offset(lsn) == 0:
                self._wal._init_segment(self.state.timeline, segment_of(lsn), self.state.system_identifier, chunk)
            else:
                self._wal._write(self.state.timeline, lsn, chunk)
            lsn += len(chunk)
            self._commit_state(replace(self.state, insert=lsn))
        return lsn

