"""Archive status files, as PostgreSQL keeps them: pg_wal/archive_status/<segment>.ready|.done.

A writer that completes a segment while archiving is on creates `.ready` (XLogArchiveNotify);
the archiver takes the oldest `.ready` segment, runs archive_command and renames the status
file to `.done` (pgarch_archiveDone); a checkpoint removes only `.done` segments while archiving
is on, and removes the status files with the segments (XLogArchiveCleanup).
"""

from __future__ import annotations

import os

from pgtop.storage.lsn import parse_segment_file_name

STATUS_DIR = os.path.join("pg_wal", "archive_status")


def status_dir(datadir: str) -> str:
    return os.path.join(datadir, STATUS_DIR)


def segment_path(datadir: str, name: str) -> str:
    """The %p of archive_command for segment `name` (absolute here; PostgreSQL gives pg_wal/<name>)."""
    return os.path.join(datadir, "pg_wal", name)


def notify_ready(datadir: str, name: str) -> None:
    """XLogArchiveNotify(): mark a completed segment ready for the archiver."""
    path = os.path.join(status_dir(datadir), name + ".ready")
    if not os.path.exists(os.path.join(status_dir(datadir), name + ".done")):
        with open(path, "w", encoding="ascii"):
            pass


def ready_segments(datadir: str) -> list[str]:
    """Segments waiting for the archiver, lowest file name first, as pgarch_readyXlog picks them."""
    names = []
    for entry in os.listdir(status_dir(datadir)):
        stem, _, suffix = entry.rpartition(".")
        if suffix == "ready" and parse_segment_file_name(stem) is not None:
            names.append(stem)
    return sorted(names)


def mark_done(datadir: str, name: str) -> None:
    """pgarch_archiveDone(): the segment is archived; a refused name raises ValueError."""
    if parse_segment_file_name(name) is None:
        raise ValueError(f'invalid WAL segment name "{name}"')
    ready = os.path.join(status_dir(datadir), name + ".ready")
    os.replace(ready, os.path.join(status_dir(datadir), name + ".done"))


def archive_state(datadir: str, name: str) -> str | None:
    """"ready", "done" or None (no status file)."""
    for state in ("done", "ready"):
        if os.path.exists(os.path.join(status_dir(datadir), f"{name}.{state}")):
            return state
    return None


def may_remove(datadir: str, name: str, archiving: bool) -> bool:
    """XLogArchiveCheckDone(): with archiving on, a segment goes only once archived.

    A completed segment with no status file at all gets a `.ready` now, as PostgreSQL does, so
    it is archived before it is removed.
    """
    if not archiving:
        return True
    state = archive_state(datadir, name)
    if state is None:
        notify_ready(datadir, name)
    return state == "done"


def cleanup_status(datadir: str, name: str) -> None:
    """XLogArchiveCleanup(): forget a removed segment's status files."""
    for state in ("done", "ready"):
        try:
            os.unlink(os.path.join(status_dir(datadir), f"{name}.{state}"))
        except FileNotFoundError:
            pass
