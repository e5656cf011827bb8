"""A base backup's contents: a consistent copy of a running cluster's data directory, as the
walsender sends it for BASE_BACKUP (basebackup.c's sendDir and do_pg_start_backup).

What a base backup holds (`take_base_backup`): the control file, the table image it names
(base/<redo LSN>/), the WAL from that image's redo point to the end of the WAL, the timeline
history files and pg_hba.conf, as one tar archive. It is collected under the checkpoint lock
(CheckpointLock), so no checkpoint can replace the image or remove a WAL segment meanwhile;
there is no forced checkpoint first (BASE_BACKUP's FAST and WAIT options change nothing): the
copy starts at the latest checkpoint. As do_pg_stop_backup does, the end of the backup is the
end of the WAL at that moment, and a segment switch follows, so the copied WAL ends with a
complete segment. The copy's pg_control carries that end as its minimum recovery point: its
startup process reports "consistent recovery state reached" only once it has replayed that
far (PostgreSQL reads the point from backup_label; pgtop has no backup_label, whose presence
means an exclusive backup to the postmaster). The WAL is always included (pgtop's startup
process cannot fetch its checkpoint record from the stream).

The receiving side, which unpacks the archive into a new standby's data directory, is
pgtop.runtime.basebackup (`pgtop init --standby-of`).
"""

from __future__ import annotations

import fcntl
import io
import os
import tarfile
import time
from dataclasses import dataclass

from pgtop.storage.controlfile import encode_control_file, read_control_file
from pgtop.storage.image import image_path
from pgtop.storage.lsn import (
    WAL_SEGMENT_SIZE,
    segment_file_name,
    segment_of,
    segment_start,
)
from pgtop.storage.timeline import read_history, timeline_of_segment
from pgtop.storage.wal import Wal
from pgtop.storage.walreader import read_raw

CHECKPOINT_LOCK = os.path.join("global", "pg_control.checkpoint.lock")  # as the checkpointer takes it


@dataclass(frozen=True, slots=True)
class Backup:
    """A base backup: where its WAL starts and ends, and the tar archive of its files."""

    start_lsn: int
    start_timeline: int
    end_lsn: int
    end_timeline: int
    archive: bytes


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
