"""pg_basebackup's analogue: a copy of a running pgtop cluster, taken over a replication
connection, that starts as its standby.

What a base backup holds (`take_base_backup`, run by the walsender for BASE_BACKUP): the
control file, the table image it names (base/<redo LSN>/), the WAL from that image's redo point
to the end of the WAL, the timeline history files and pg_hba.conf, as one tar archive. It is
collected under the checkpoint lock (CheckpointLock), so no checkpoint can replace the image
or remove a WAL segment meanwhile; there is no forced checkpoint first (BASE_BACKUP's FAST and
WAIT options change nothing): the copy starts at the latest checkpoint. As do_pg_stop_backup
does, the end of the backup is the end of the WAL at that moment, and a segment switch follows,
so the copied WAL ends with a complete segment. The copy's pg_control carries that end as its
minimum recovery point: its startup process reports "consistent recovery state reached" only
once it has replayed that far (PostgreSQL reads the point from backup_label; pgtop has no
backup_label, whose presence means an exclusive backup to the postmaster). The WAL is always
included (pgtop's startup process cannot fetch its checkpoint record from the stream).

The reply has PostgreSQL 14's shape: a result (start LSN, timeline), the tablespace list (one
row: the main one), a COPY OUT of the tar archive, a result (end LSN, timeline), then
CommandComplete "BASE_BACKUP".

`receive_base_backup(conninfo, datadir)` is the client (`pgtop init --standby-of`): it asks a
running primary for a backup and unpacks it into a data directory whose configuration, with
primary_conninfo, and standby.signal the caller (init_datadir) writes.
"""

from __future__ import annotations

import fcntl
import io
import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from pgtop.storage.controlfile import encode_control_file, read_control_file
from pgtop.storage.image import image_path
from pgtop.storage.lsn import (
    WAL_SEGMENT_SIZE,
    format_lsn,
    parse_lsn,
    segment_file_name,
    segment_of,
    segment_start,
)
from pgtop.storage.timeline import read_history, timeline_of_segment
from pgtop.storage.wal import Wal
from pgtop.storage.walreader import read_raw

CHECKPOINT_LOCK = os.path.join("global", "pg_control.checkpoint.lock")
LABEL = "pgtop base backup"
MADE_DIRECTORIES = ("global", "base", os.path.join("pg_wal", "archive_status"))


class BaseBackupError(Exception):
    """The backup could not be taken or received: one line, as pg_basebackup reports it."""


@dataclass(frozen=True, slots=True)
class Backup:
    """A base backup: where its WAL starts and ends, and the tar archive of its files."""

    start_lsn: int
    start_timeline: int
    end_lsn: int
    end_timeline: int
    archive: bytes


# -- the primary's side ----------------------------------------------------------------------------


def take_base_backup(datadir: str) -> Backup:
    """Collect a consistent copy of `datadir` (see the module docstring)."""
    lock = os.open(os.path.join(datadir, CHECKPOINT_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # no checkpoint may run while we copy
        return _collect(datadir)
    finally:
        os.close(lock)


def _collect(datadir: str) -> Backup:
    control = read_control_file(datadir)
    with Wal(datadir) as wal:
        state = wal.state()
        end = state.insert
        after = end if state.in_recovery else wal.switch_segment()  # RequestXLogSwitch()
        wal.flush()
    files: dict[str, bytes] = {
        "global/pg_control": encode_control_file(
            control.replace(min_recovery_point=end, min_recovery_point_timeline=state.timeline)),
    }
    image = image_path(datadir, control.redo)
    for name in sorted(os.listdir(image)):
        files[os.path.relpath(os.path.join(image, name), datadir)] = _read(os.path.join(image, name))
    history = read_history(datadir, state.timeline)
    for segno in range(segment_of(control.redo), segment_of(max(after - 1, control.redo)) + 1):
        timeline = timeline_of_segment(history, state.timeline, segno)
        data = read_raw(datadir, timeline, segment_start(segno), min(after, segment_start(segno + 1)))
        files[f"pg_wal/{segment_file_name(timeline, segno)}"] = data.ljust(WAL_SEGMENT_SIZE, b"\0")
    for name in sorted(os.listdir(os.path.join(datadir, "pg_wal"))):
        if name.endswith(".history"):
            files[f"pg_wal/{name}"] = _read(os.path.join(datadir, "pg_wal", name))
    files["pg_hba.conf"] = _read(os.path.join(datadir, "pg_hba.conf"))
    return Backup(control.redo, control.timeline, end, state.timeline, _tar(files))


def _read(path: str) -> bytes:
    with open(path, "rb") as source:
        return source.read()


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size, member.mode, member.mtime = len(data), 0o600, int(now)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


# -- the standby's side ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """What `receive_base_backup` got: the WAL range the standby must replay to be consistent."""

    system_identifier: str
    start_lsn: int
    end_lsn: int
    timeline: int


def receive_base_backup(conninfo: str, datadir: str | Path) -> Received:
    """BASE_BACKUP from the primary `conninfo` names, unpacked into `datadir` (which exists
    and holds no storage yet). Raises BaseBackupError with libpq's or the server's words."""
    from pgtop.children.walreceiver import (  # libpq, as pg_basebackup has it
        ConnectFailed,
        ServerError,
        connect,
        parse_conninfo,
    )

    try:
        with connect(parse_conninfo(conninfo)) as connection:
            identity = connection.query("IDENTIFY_SYSTEM")
            connection.send_query(f"BASE_BACKUP LABEL '{LABEL}' WAL FAST NOWAIT")
            start = connection.result()
            connection.result()  # the tablespaces: the main one only
            archive = connection.copy_out()
            end = connection.result()
            connection.result()  # CommandComplete "BASE_BACKUP"
            connection.until_ready()
    except ConnectFailed as error:
        raise BaseBackupError(str(error)) from None
    except ServerError as error:
        raise BaseBackupError(f"could not initiate base backup: {error}") from None
    _unpack(archive, Path(datadir))
    return Received(str(identity.rows[0][0]), parse_lsn(str(start.rows[0][0])),
                    parse_lsn(str(end.rows[0][0])), int(end.rows[0][1] or 1))


def _unpack(archive: bytes, datadir: Path) -> None:
    for directory in MADE_DIRECTORIES:
        (datadir / directory).mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as members:
            members.extractall(datadir, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise BaseBackupError(f"could not extract the base backup: {error}") from None


def describe(received: Received) -> str:
    """pg_basebackup -v's summary, in one line."""
    return (f"write-ahead log start point: {format_lsn(received.start_lsn)}, end point: "
            f"{format_lsn(received.end_lsn)} on timeline {received.timeline}")
