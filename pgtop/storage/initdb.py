"""initdb's share of a new cluster: pg_control, the first WAL segment and an empty image."""

from __future__ import annotations

import os
import time

from pgtop.storage.controlfile import (
    ControlFile,
    DBState,
    control_path,
    write_control_file,
)
from pgtop.storage.errors import StorageError
from pgtop.storage.image import write_image
from pgtop.storage.lsn import FIRST_SEGMENT, FIRST_TIMELINE, segment_start
from pgtop.storage.records import RecordType
from pgtop.storage.tables import TableSet
from pgtop.storage.wal import InsertState, Wal

FIRST_NORMAL_XID = 3  # FirstNormalTransactionId


def new_system_identifier(now: float | None = None) -> int:
    """As BootStrapXLOG() makes it: seconds, microseconds and the PID, packed."""
    stamp = time.time() if now is None else now
    seconds, micros = int(stamp), int((stamp % 1) * 1_000_000)
    return (seconds << 32) | (micros << 12) | (os.getpid() & 0xFFF)


def create_cluster_storage(datadir: str, *, system_identifier: int | None = None) -> ControlFile:
    """Make global/, base/, pg_wal/archive_status/, the first segment holding a shutdown
    checkpoint, its (empty) table image and pg_control (state "shut down").

    The data directory may exist (the caller made it and wrote the config there); an existing
    pg_control is refused, so a cluster is never initialised twice.
    """
    if os.path.exists(control_path(datadir)):
        raise StorageError(f'file "{control_path(datadir)}" already exists', sqlstate="58P01")
    for directory in ("global", "base", os.path.join("pg_wal", "archive_status")):
        os.makedirs(os.path.join(datadir, directory), mode=0o700, exist_ok=True)
    sysid = new_system_identifier() if system_identifier is None else system_identifier
    now = time.time()
    with Wal(datadir, create=True) as wal:
        with wal.locked() as insertion:
            insertion.reset(InsertState(segment_start(FIRST_SEGMENT), 0, FIRST_NORMAL_XID, sysid, FIRST_TIMELINE))
            redo = insertion.start_segment()
            write_image(datadir, TableSet(), redo, FIRST_NORMAL_XID, None)
            payload = {"redo": redo, "timeline": FIRST_TIMELINE, "prev_timeline": FIRST_TIMELINE,
                       "next_xid": FIRST_NORMAL_XID, "time": now}
            checkpoint = insertion.append(RecordType.CHECKPOINT_SHUTDOWN, 0, payload)
        wal.flush()
    control = ControlFile(
        system_identifier=sysid, state=DBState.DB_SHUTDOWNED, time=now, checkpoint=checkpoint,
        redo=redo, timeline=FIRST_TIMELINE, prev_timeline=FIRST_TIMELINE, checkpoint_time=now,
        next_xid=FIRST_NORMAL_XID,
    )
    write_control_file(datadir, control)
    return control
