"""Reading the WAL back: records in order from an LSN, stopping cleanly at the end.

The end of WAL is wherever the next record is not valid: a zero or short length, a wrong
prev-link, a CRC mismatch, a segment that is missing or whose header belongs to another
segment (a recycled file). `end_reason` then holds the line PostgreSQL logs for it, such as
"invalid record length at 0/152E798: wanted 24, got 0"; it is None when the reader simply
reached the limit it was given or a missing segment (PostgreSQL is silent about those).
"""

from __future__ import annotations

import os

from pgtop.storage.lsn import (
    RECORD_HEADER_SIZE,
    SEGMENT_HEADER_SIZE,
    WAL_SEGMENT_SIZE,
    format_lsn,
    segment_file_name,
    segment_of,
    segment_offset,
    segment_start,
)
from pgtop.storage.records import HEADER, RecordType, WalRecord, record_crc, record_type
from pgtop.storage.timeline import TimelineSwitch, read_history, timeline_of_segment
from pgtop.storage.wal import SEGMENT_HEADER, XLOG_PAGE_MAGIC, segment_path


class WalReader:
    """Reads records sequentially, one segment buffer at a time.

    `read_record(limit)` returns the next record, or None at the end; it can be called again
    later to continue once more WAL exists (a standby, a backend tailing the WAL).
    """

    def __init__(
        self, datadir: str, start: int, timeline: int, *,
        prev: int | None = None, system_identifier: int | None = None,
    ) -> None:
        self.datadir = datadir
        self.position = start  # where the next record should start
        self.prev = prev  # LSN of the last record read: the next one's expected xl_prev
        self.system_identifier = system_identifier
        self.end_reason: str | None = None
        self.missing_segment = False
        self._timeline = timeline
        self._history: tuple[TimelineSwitch, ...] = read_history(datadir, timeline)
        self._segno = -1
        self._fd: int | None = None
        self._buffer = b""
        self._buffer_start = 0  # LSN of the buffer's first byte

    @property
    def timeline(self) -> int:
        return self._timeline

    def follow_timeline(self, timeline: int) -> None:
        """The WAL moved to a new timeline (promotion): read its segments from now on."""
        if timeline != self._timeline:
            self._timeline = timeline
            self._history = read_history(self.datadir, timeline)
            self._close_segment()

    def close(self) -> None:
        self._close_segment()

    def _close_segment(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._segno = -1
        self._buffer = b""

    def read_record(self, limit: int | None = None) -> WalRecord | None:
        """The next valid record before `limit` (None: no limit), or None at the end."""
        self.end_reason = None
        self.missing_segment = False
        if limit is not None and self.position >= limit:
            return None
        if not self._enter_segment():
            return None
        record = self._parse(limit)
        if record is None:
            return None
        self.prev = record.lsn
        self.position = record.next_lsn
        if record.type is RecordType.SWITCH:
            self.position = segment_start(segment_of(record.lsn) + 1)
        return record

    def _enter_segment(self) -> bool:
        """Open the segment holding `position`; at a segment start, check and skip its header."""
        segno = segment_of(self.position)
        if segno != self._segno:
            self._close_segment()
            timeline = timeline_of_segment(self._history, self._timeline, segno)
            try:
                self._fd = os.open(segment_path(self.datadir, timeline, segno), os.O_RDONLY)
            except FileNotFoundError:
                self.missing_segment = True
                return False
            self._segno = segno
            reason = self._check_segment_header(timeline, segno)
            if reason is not None:
                self.end_reason = reason
                self._close_segment()
                return False
        if segment_offset(self.position) == 0:
            self.position += SEGMENT_HEADER_SIZE
        return True

    def _check_segment_header(self, timeline: int, segno: int) -> str | None:
        assert self._fd is not None
        raw = os.pread(self._fd, SEGMENT_HEADER_SIZE, 0)
        name = segment_file_name(timeline, segno)
        if len(raw) < SEGMENT_HEADER_SIZE:
            return f"invalid magic number 0000 in log segment {name}, offset 0"
        magic, _info, _tli, address, _rem, _pad, sysid, _size, _blcksz = SEGMENT_HEADER.unpack(raw)
        if magic != XLOG_PAGE_MAGIC:
            return f"invalid magic number {magic:04X} in log segment {name}, offset 0"
        if address != segment_start(segno):
            return f"unexpected pageaddr {format_lsn(address)} in log segment {name}, offset 0"
        if self.system_identifier is not None and sysid != self.system_identifier:
            return (
                "WAL file is from different database system: WAL file database system identifier "
                f"is {sysid}, pg_control database system identifier is {self.system_identifier}"
            )
        return None

    def _bytes(self, lsn: int, length: int, limit: int | None) -> bytes:
        """`length` bytes at `lsn` (fewer if the file or the limit ends first)."""
        offset = lsn - self._buffer_start
        if offset < 0 or offset + length > len(self._buffer):
            end = segment_start(self._segno + 1)
            if limit is not None:
                end = min(end, limit)
            assert self._fd is not None
            self._buffer = os.pread(self._fd, max(end - lsn, length), segment_offset(lsn))
            self._buffer_start = lsn
            offset = 0
        return self._buffer[offset: offset + length]

    def _parse(self, limit: int | None) -> WalRecord | None:
        lsn = self.position
        at = format_lsn(lsn)
        if limit is not None and lsn + RECORD_HEADER_SIZE > limit:
            return None
        header = self._bytes(lsn, RECORD_HEADER_SIZE, limit)
        if len(header) < RECORD_HEADER_SIZE:
            return self._end(f"invalid record length at {at}: wanted {RECORD_HEADER_SIZE}, got 0")
        total, xid, prev, info, rmid, _pad, crc = HEADER.unpack(header)
        if total < RECORD_HEADER_SIZE:
            return self._end(f"invalid record length at {at}: wanted {RECORD_HEADER_SIZE}, got {total}")
        if segment_offset(lsn) + total > WAL_SEGMENT_SIZE:
            return self._end(f"record length {total} at {at} too long")
        if limit is not None and lsn + total > limit:
            return None  # not all written yet
        kind = record_type(rmid, info)
        if kind is None:
            return self._end(f"invalid resource manager ID {rmid} at {at}")
        if self.prev is not None and prev != self.prev:
            return self._end(f"record with incorrect prev-link {format_lsn(prev)} at {at}")
        raw = self._bytes(lsn, total, limit)
        payload = raw[RECORD_HEADER_SIZE:]
        if len(raw) < total or record_crc(header, payload) != crc:
            return self._end(f"incorrect resource manager data checksum in record at {at}")
        return WalRecord(lsn, lsn + total, prev, kind, xid, payload)

    def _end(self, reason: str) -> None:
        self.end_reason = reason
        self._buffer = b""  # re-read from the file next time: the bytes may still change


def read_record_at(datadir: str, lsn: int, timeline: int) -> WalRecord | None:
    """ReadCheckpointRecord()'s read: the one record at `lsn`, without a prev-link check."""
    reader = WalReader(datadir, lsn, timeline)
    try:
        return reader.read_record()
    finally:
        reader.close()


def read_raw(datadir: str, timeline: int, start: int, limit: int) -> bytes:
    """A walsender's read: WAL bytes from `start` up to `limit` (at most to the segment's end)."""
    end = min(limit, segment_start(segment_of(start) + 1))
    if end <= start:
        return b""
    fd = os.open(segment_path(datadir, timeline, segment_of(start)), os.O_RDONLY)
    try:
        return os.pread(fd, end - start, segment_offset(start))
    finally:
        os.close(fd)
