"""WAL positions: LSN text, segment arithmetic, segment file names and PostgreSQL's time texts."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

# A small segment (PostgreSQL's default is 16 MiB) so that a demo fills segments quickly and
# the archiver has completed segments to archive.
WAL_SEGMENT_SIZE = 1 << 20
SEGMENTS_PER_XLOGID = 0x1_0000_0000 // WAL_SEGMENT_SIZE
# Sizes kept equal to PostgreSQL's so LSNs look familiar: the first record of a segment sits
# at offset 0x28 (SizeOfXLogLongPHD) and a record header is 24 bytes (SizeOfXLogRecord).
SEGMENT_HEADER_SIZE = 40
RECORD_HEADER_SIZE = 24
ALIGNMENT = 8  # MAXALIGN
FIRST_SEGMENT = 1  # initdb starts the WAL in segment 1, as PostgreSQL does
FIRST_TIMELINE = 1
INVALID_LSN = 0

_LSN_TEXT = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
_SEGMENT_NAME = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")


def format_lsn(lsn: int) -> str:
    """%X/%X, as PostgreSQL prints an LSN: high 32 bits / low 32 bits, no padding."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """Read "0/1A2B3C8" back; a malformed text raises ValueError with pg_lsn's message."""
    match = _LSN_TEXT.match(text.strip())
    if match is None:
        raise ValueError(f'invalid input syntax for type pg_lsn: "{text}"')
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def align(length: int) -> int:
    return (length + ALIGNMENT - 1) & ~(ALIGNMENT - 1)


def segment_of(lsn: int) -> int:
    return lsn // WAL_SEGMENT_SIZE


def segment_start(segno: int) -> int:
    return segno * WAL_SEGMENT_SIZE


def segment_offset(lsn: int) -> int:
    return lsn % WAL_SEGMENT_SIZE


def segment_file_name(timeline: int, segno: int) -> str:
    """XLogFileName(): 24 hex digits, timeline, "log" (high part) and segment."""
    return f"{timeline:08X}{segno // SEGMENTS_PER_XLOGID:08X}{segno % SEGMENTS_PER_XLOGID:08X}"


def parse_segment_file_name(name: str) -> tuple[int, int] | None:
    """(timeline, segno) of a WAL segment file name, or None for any other file."""
    match = _SEGMENT_NAME.match(name)
    if match is None:
        return None
    timeline, log, seg = (int(part, 16) for part in match.groups())
    if seg >= SEGMENTS_PER_XLOGID:
        return None
    return timeline, log * SEGMENTS_PER_XLOGID + seg


def str_time(epoch: float, log_timezone: str = "UTC") -> str:
    """str_time(): "2026-11-22 15:23:32 UTC", the form of "last known up at %s"."""
    moment = datetime.fromtimestamp(epoch, ZoneInfo(log_timezone))
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def timestamptz_text(epoch: float, log_timezone: str = "UTC") -> str:
    """timestamptz_to_str(): "2026-11-22 15:28:43.068376+00" (fraction without trailing zeros)."""
    moment = datetime.fromtimestamp(epoch, ZoneInfo(log_timezone))
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + utc_offset_text(moment)


def utc_offset_text(moment: datetime) -> str:
    """PostgreSQL's offset form: +00, +05:30, -03."""
    offset = moment.utcoffset() or datetime.now(UTC).utcoffset()
    assert offset is not None
    seconds = int(offset.total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}{hours:02d}"
    if minutes or seconds:
        text += f":{minutes:02d}"
    if seconds:
        text += f":{seconds:02d}"
    return text
