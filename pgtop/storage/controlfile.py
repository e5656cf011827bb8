"""global/pg_control: the cluster's state, last checkpoint and timeline, written atomically.

A fixed binary layout with a CRC-32 at the end, padded to 8192 bytes as PostgreSQL pads
PG_CONTROL_FILE_SIZE. Reading it fails with PostgreSQL's own texts: a missing file is "could not
find the database system" (postmaster exit 2), a short file is a PANIC "could not read file",
a bad checksum is FATAL "incorrect checksum in control file".
"""

from __future__ import annotations

import dataclasses
import enum
import fcntl
import os
import struct
import time
import zlib
from dataclasses import dataclass

from pgtop.core.vocabulary import LogLevel
from pgtop.storage.errors import ControlFileError, ControlFileMissing
from pgtop.storage.lsn import (
    WAL_SEGMENT_SIZE,
    format_lsn,
    segment_file_name,
    segment_of,
)

PG_CONTROL_VERSION = 1300  # PostgreSQL 14's value
CATALOG_VERSION_NO = 202107181  # PostgreSQL 14's catalog version
PG_CONTROL_FILE_SIZE = 8192
CONTROL_FILE = os.path.join("global", "pg_control")

_LAYOUT = struct.Struct("<QIIIdQQIIdQQIII")  # every field of ControlFile, then the CRC
_BODY_SIZE = _LAYOUT.size - 4


class DBState(enum.IntEnum):
    """DBState of pg_control.h, in PostgreSQL's order."""

    DB_STARTUP = 0
    DB_SHUTDOWNED = 1
    DB_SHUTDOWNED_IN_RECOVERY = 2
    DB_SHUTDOWNING = 3
    DB_IN_CRASH_RECOVERY = 4
    DB_IN_ARCHIVE_RECOVERY = 5
    DB_IN_PRODUCTION = 6

    @property
    def display_name(self) -> str:
        """What pg_controldata prints as "Database cluster state"."""
        return _DISPLAY[self]


_DISPLAY = {
    DBState.DB_STARTUP: "starting up",
    DBState.DB_SHUTDOWNED: "shut down",
    DBState.DB_SHUTDOWNED_IN_RECOVERY: "shut down in recovery",
    DBState.DB_SHUTDOWNING: "shutting down",
    DBState.DB_IN_CRASH_RECOVERY: "in crash recovery",
    DBState.DB_IN_ARCHIVE_RECOVERY: "in archive recovery",
    DBState.DB_IN_PRODUCTION: "in production",
}


@dataclass(frozen=True, slots=True)
class ControlFile:
    """ControlFileData, reduced to what pgtop's storage uses. Times are epoch seconds."""

    system_identifier: int
    state: DBState
    time: float  # last update ("pg_control last modified", "last known up at")
    checkpoint: int  # LSN of the latest checkpoint record
    redo: int  # its REDO location: replay starts here, the table image is as of here
    timeline: int
    prev_timeline: int
    checkpoint_time: float
    next_xid: int
    min_recovery_point: int = 0
    min_recovery_point_timeline: int = 0

    def replace(self, **changes: object) -> ControlFile:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def describe(self) -> list[tuple[str, str]]:
        """pg_controldata's lines (label, value) for the fields pgtop keeps."""
        return [
            ("pg_control version number", str(PG_CONTROL_VERSION)),
            ("Catalog version number", str(CATALOG_VERSION_NO)),
            ("Database system identifier", str(self.system_identifier)),
            ("Database cluster state", self.state.display_name),
            ("pg_control last modified", _ctime(self.time)),
            ("Latest checkpoint location", format_lsn(self.checkpoint)),
            ("Latest checkpoint's REDO location", format_lsn(self.redo)),
            ("Latest checkpoint's REDO WAL file", segment_file_name(self.timeline, segment_of(self.redo))),
            ("Latest checkpoint's TimeLineID", str(self.timeline)),
            ("Latest checkpoint's PrevTimeLineID", str(self.prev_timeline)),
            ("Latest checkpoint's NextXID", f"0:{self.next_xid}"),
            ("Time of latest checkpoint", _ctime(self.checkpoint_time)),
            ("Minimum recovery ending location", format_lsn(self.min_recovery_point)),
            ("Min recovery ending loc's timeline", str(self.min_recovery_point_timeline)),
            ("Bytes per WAL segment", str(WAL_SEGMENT_SIZE)),
        ]


def _ctime(epoch: float) -> str:
    return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(epoch))


def control_path(datadir: str) -> str:
    return os.path.join(datadir, CONTROL_FILE)


def encode_control_file(control: ControlFile) -> bytes:
    body = _LAYOUT.pack(
        control.system_identifier, PG_CONTROL_VERSION, CATALOG_VERSION_NO, int(control.state),
        control.time, control.checkpoint, control.redo, control.timeline, control.prev_timeline,
        control.checkpoint_time, control.next_xid, control.min_recovery_point,
        control.min_recovery_point_timeline, WAL_SEGMENT_SIZE, 0,
    )[:_BODY_SIZE]
    crc = zlib.crc32(body)
    return (body + struct.pack("<I", crc)).ljust(PG_CONTROL_FILE_SIZE, b"\0")


def decode_control_file(data: bytes) -> ControlFile:
    """Parse the file's bytes; raises ControlFileError with PostgreSQL's texts."""
    if len(data) < _LAYOUT.size:
        raise ControlFileError(
            f'could not read file "{CONTROL_FILE}": read {len(data)} of {_LAYOUT.size}',
            level=LogLevel.PANIC,
        )
    fields = _LAYOUT.unpack_from(data)
    (sysid, version, _catalog, state, updated, checkpoint, redo, timeline, prev_timeline,
     checkpoint_time, next_xid, min_recovery, min_recovery_tli, segment_size, crc) = fields
    if version != PG_CONTROL_VERSION:
        raise ControlFileError(
            "database files are incompatible with server",
            level=LogLevel.FATAL,
            detail=(f"The database cluster was initialized with PG_CONTROL_VERSION {version} "
                    f"(0x{version:08x}), but the server was compiled with PG_CONTROL_VERSION "
                    f"{PG_CONTROL_VERSION} (0x{PG_CONTROL_VERSION:08x})."),
            hint="It looks like you need to initdb.",
        )
    if zlib.crc32(data[:_BODY_SIZE]) != crc:
        raise ControlFileError("incorrect checksum in control file", level=LogLevel.FATAL)
    if segment_size != WAL_SEGMENT_SIZE or state not in DBState._value2member_map_:
        raise ControlFileError("control file contains invalid database cluster state", level=LogLevel.FATAL)
    return ControlFile(
        system_identifier=sysid, state=DBState(state), time=updated, checkpoint=checkpoint,
        redo=redo, timeline=timeline, prev_timeline=prev_timeline, checkpoint_time=checkpoint_time,
        next_xid=next_xid, min_recovery_point=min_recovery, min_recovery_point_timeline=min_recovery_tli,
    )


def read_control_file(datadir: str) -> ControlFile:
    path = control_path(datadir)
    try:
        with open(path, "rb") as file:
            data = file.read(PG_CONTROL_FILE_SIZE)
    except OSError as error:
        raise ControlFileMissing(datadir, path, error.strerror or str(error)) from None
    return decode_control_file(data)


def write_control_file(datadir: str, control: ControlFile) -> None:
    """Write temp, fsync, rename, fsync the directory: a reader sees the old or the new file."""
    path = control_path(datadir)
    temp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, encode_control_file(control))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    fsync_directory(os.path.dirname(path))


def update_control_file(datadir: str, now: float | None = None, **changes: object) -> ControlFile:
    """Read, change some fields, stamp the time (UpdateControlFile), write back.

    Under an exclusive lock (PostgreSQL's ControlFileLock) because the startup process and
    the checkpointer both update the file during archive recovery.
    """
    lock_fd = os.open(control_path(datadir) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        stamp = time.time() if now is None else now
        control = read_control_file(datadir).replace(time=stamp, **changes)
        write_control_file(datadir, control)
        return control
    finally:
        os.close(lock_fd)  # closing the descriptor releases the lock


def fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
