"""pg_basebackup's analogue: a copy of a running pgtop cluster, taken over a replication
connection, that starts as its standby.

`receive_base_backup(conninfo, datadir)` is the client (`pgtop init --standby-of`): it asks a
running primary for a backup (BASE_BACKUP, answered by its walsender with what
pgtop.storage.basebackup collects) and unpacks it into a data directory whose configuration,
with primary_conninfo, and standby.signal the caller (init_datadir) writes.

The reply has PostgreSQL 14's shape: a result (start LSN, timeline), the tablespace list (one
row: the main one), a COPY OUT of the tar archive, a result (end LSN, timeline), then
CommandComplete "BASE_BACKUP".
"""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from pgtop.common.libpq import ConnectFailed, ServerError, connect, parse_conninfo
from pgtop.storage.lsn import format_lsn, parse_lsn

LABEL = "pgtop base backup"
MADE_DIRECTORIES = ("global", "base", os.path.join("pg_wal", "archive_status"))


class BaseBackupError(Exception):
    """The backup could not be taken or received: one line, as pg_basebackup reports it."""


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
