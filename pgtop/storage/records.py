"""WAL records: their types, the 24-byte header, the payload and the CRC.

Layout, the same size as PostgreSQL's XLogRecord: xl_tot_len (u32), xl_xid (u32), xl_prev (u64,
the start of the previous record), xl_info (u8), xl_rmid (u8), padding (u16), xl_crc (u32), then
the payload (JSON). The CRC-32 (zlib.crc32) covers the header with xl_crc zeroed and the payload.
A record starts on an 8-byte boundary; xl_tot_len excludes the alignment padding.
"""

from __future__ import annotations

import enum
import json
import struct
import zlib
from typing import Any

from pgtop.storage.lsn import RECORD_HEADER_SIZE, align, format_lsn

HEADER = struct.Struct("<IIQBBHI")
assert HEADER.size == RECORD_HEADER_SIZE


class ResourceManager(enum.IntEnum):
    """The rmgr ids PostgreSQL uses for the same kinds of records (pg_waldump's "rmgr")."""

    XLOG = 0
    Transaction = 1
    Storage = 2
    Heap = 10


class RecordType(enum.IntEnum):
    """(rmid << 8) | xl_info, with PostgreSQL's info values where one exists."""

    CHECKPOINT_SHUTDOWN = 0x0000
    CHECKPOINT_ONLINE = 0x0010
    SWITCH = 0x0040
    END_OF_RECOVERY = 0x0090
    COMMIT = 0x0100
    ABORT = 0x0120
    CREATE_TABLE = 0x0210
    DROP_TABLE = 0x0220
    INSERT = 0x0A00
    DELETE = 0x0A10
    UPDATE = 0x0A20

    @property
    def rmgr(self) -> ResourceManager:
        return ResourceManager(self >> 8)

    @property
    def info(self) -> int:
        return self & 0xFF

    @property
    def transactional(self) -> bool:
        """Buffered per xid until its COMMIT (applied) or ABORT (discarded)."""
        return self.rmgr in (ResourceManager.Storage, ResourceManager.Heap)

    @property
    def is_checkpoint(self) -> bool:
        return self in (RecordType.CHECKPOINT_SHUTDOWN, RecordType.CHECKPOINT_ONLINE)


_TYPES = {(t.rmgr, t.info): t for t in RecordType}


def record_type(rmid: int, info: int) -> RecordType | None:
    try:
        return _TYPES.get((ResourceManager(rmid), info))
    except ValueError:
        return None


def encode_payload(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def encode_record(kind: RecordType, xid: int, data: dict[str, Any] | bytes | None, prev: int) -> bytes:
    """Header + payload (a dict, or one already encoded), unaligned: the writer pads it."""
    if data is None:
        payload = b""
    else:
        payload = data if isinstance(data, bytes) else encode_payload(data)
    total = RECORD_HEADER_SIZE + len(payload)
    header = HEADER.pack(total, xid, prev, kind.info, kind.rmgr, 0, 0)
    crc = zlib.crc32(payload, zlib.crc32(header))
    return HEADER.pack(total, xid, prev, kind.info, kind.rmgr, 0, crc) + payload


def record_crc(header: bytes, payload: bytes) -> int:
    """The CRC a record must carry: header with xl_crc zeroed, then the payload."""
    return zlib.crc32(payload, zlib.crc32(header[:-4] + b"\0\0\0\0"))


class WalRecord:
    """A record as read back: where it is, what it is, and its payload (decoded on demand)."""

    __slots__ = ("_data", "end", "lsn", "payload", "prev", "type", "xid")

    def __init__(self, lsn: int, end: int, prev: int, kind: RecordType, xid: int, payload: bytes) -> None:
        self.lsn = lsn
        self.end = end  # first byte after the record (EndRecPtr before alignment)
        self.prev = prev
        self.type = kind
        self.xid = xid
        self.payload = payload
        self._data: dict[str, Any] | None = None

    @property
    def next_lsn(self) -> int:
        return align(self.end)

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = json.loads(self.payload) if self.payload else {}
        return self._data

    def describe(self) -> str:
        """One pg_waldump-like line, for logs and the dashboard."""
        detail = ""
        if self.type.transactional:
            detail = f" {self.data.get('table', '')}"
            if "rows" in self.data or "row_ids" in self.data:
                detail += f" rows {len(self.data.get('rows', self.data.get('row_ids', ())))}"
        elif self.type.is_checkpoint:
            detail = f" redo {format_lsn(self.data.get('redo', 0))}; tli {self.data.get('timeline')}"
        return (
            f"rmgr: {self.type.rmgr.name:<11} len (rec/tot): {self.end - self.lsn:6d}/{align(self.end) - self.lsn:6d}, "
            f"tx: {self.xid:10d}, lsn: {format_lsn(self.lsn)}, prev {format_lsn(self.prev)}, "
            f"desc: {self.type.name}{detail}"
        )

    def __repr__(self) -> str:
        return f"WalRecord({self.type.name}, xid={self.xid}, lsn={format_lsn(self.lsn)})"
