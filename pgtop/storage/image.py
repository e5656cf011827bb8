"""Checkpoint images on disk: base/<redo LSN>/, one file per table and a manifest.

A checkpoint writes the TableSet as of its redo LSN into a new directory (temp name, fsync
every file, rename), so the image pg_control points to is never overwritten: a crash in the
middle of a checkpoint leaves the previous image, and pg_control still names it. A table
that has not changed since the previous image is hard-linked, not rewritten, which is what
"wrote N buffers" counts (8 kB blocks of rewritten files).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any

from pgtop.storage.controlfile import fsync_directory
from pgtop.storage.tables import Table, TableSet, columns_from_json, columns_to_json

MANIFEST = "image.json"
BLOCK_SIZE = 8192
SHARED_BUFFERS = 16384  # 128 MB in 8 kB buffers: the denominator of "wrote %d buffers (%.1f%%)"


@dataclass(frozen=True, slots=True)
class ImageWriteStats:
    """What CheckPointGuts would report: buffers written, files synced and how long it took."""

    buffers: int
    write_seconds: float
    sync_seconds: float
    sync_files: int
    longest_sync: float
    total_sync: float


def image_name(lsn: int) -> str:
    return f"{lsn:016X}"


def image_path(datadir: str, lsn: int) -> str:
    return os.path.join(datadir, "base", image_name(lsn))


def _table_file(table: Table) -> str:
    return f"{table.relfilenode:X}"


def write_image(datadir: str, tables: TableSet, lsn: int, next_xid: int, previous: int | None) -> ImageWriteStats:
    """Write the image for `lsn`; unchanged tables are linked from the image at `previous`.

    If an image for `lsn` exists already: when it is the one pg_control names (`previous`),
    it stays (readers may be loading it, and redo is deterministic: same LSN, same state);
    otherwise it is a leftover of an interrupted checkpoint and is replaced.
    """
    final = image_path(datadir, lsn)
    temp = f"{final}.tmp.{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    os.mkdir(temp)
    old = _manifest_tables(datadir, previous)
    started = time.monotonic()
    written: list[str] = []
    buffers = 0
    for table in tables.tables.values():
        name = _table_file(table)
        before = old.get(table.name)
        if before and before["relfilenode"] == table.relfilenode and before["changed_at"] == table.changed_at:
            os.link(os.path.join(image_path(datadir, previous or 0), name), os.path.join(temp, name))
            continue
        size = _write_rows(os.path.join(temp, name), table)
        written.append(name)
        buffers += -(-size // BLOCK_SIZE)
    _write_manifest(temp, tables, lsn, next_xid)
    written.append(MANIFEST)
    write_seconds = time.monotonic() - started
    syncs = [_fsync_file(os.path.join(temp, name)) for name in written]
    fsync_directory(temp)
    if os.path.exists(final) and lsn == previous:
        shutil.rmtree(temp)
    else:
        if os.path.exists(final):
            os.rename(final, f"{final}.old.{os.getpid()}")  # removed with the other old images
        os.rename(temp, final)
    fsync_directory(os.path.dirname(final))
    return ImageWriteStats(
        buffers=buffers, write_seconds=write_seconds, sync_seconds=sum(syncs),
        sync_files=len(syncs), longest_sync=max(syncs, default=0.0), total_sync=sum(syncs),
    )


def _write_rows(path: str, table: Table) -> int:
    with open(path, "w", encoding="utf-8") as file:
        for row_id, row in table.rows.items():
            file.write(json.dumps([row_id, *table.encode_row(row)], separators=(",", ":")))
            file.write("\n")
        return file.tell()


def _write_manifest(directory: str, tables: TableSet, lsn: int, next_xid: int) -> None:
    manifest = {
        "lsn": lsn,
        "next_xid": next_xid,
        "max_xid": tables.max_xid,
        "last_commit_time": tables.last_commit_time,
        "last_checkpoint": tables.last_checkpoint,
        "tables": [
            {
                "name": table.name, "relfilenode": table.relfilenode, "changed_at": table.changed_at,
                "columns": columns_to_json(table.columns), "file": _table_file(table), "rows": len(table.rows),
                "definition": table.definition,
            }
            for table in tables.tables.values()
        ],
        "pending": {str(xid): records for xid, records in tables.pending.items()},
    }
    with open(os.path.join(directory, MANIFEST), "w", encoding="utf-8") as file:
        json.dump(manifest, file, separators=(",", ":"))


def _fsync_file(path: str) -> float:
    started = time.monotonic()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.monotonic() - started


def _manifest_tables(datadir: str, lsn: int | None) -> dict[str, dict[str, Any]]:
    if lsn is None:
        return {}
    try:
        manifest = read_manifest(datadir, lsn)
    except FileNotFoundError:
        return {}
    return {entry["name"]: entry for entry in manifest["tables"]}


def read_manifest(datadir: str, lsn: int) -> dict[str, Any]:
    with open(os.path.join(image_path(datadir, lsn), MANIFEST), encoding="utf-8") as file:
        manifest: dict[str, Any] = json.load(file)
        return manifest


def load_image(datadir: str, lsn: int) -> tuple[TableSet, int]:
    """The TableSet saved at `lsn` and the next xid then. FileNotFoundError if it is gone."""
    manifest = read_manifest(datadir, lsn)
    tables = TableSet()
    directory = image_path(datadir, lsn)
    for entry in manifest["tables"]:
        table = Table(
            entry["name"], columns_from_json(entry["columns"]), {},
            relfilenode=entry["relfilenode"], changed_at=entry["changed_at"], definition=entry["definition"],
        )
        with open(os.path.join(directory, entry["file"]), encoding="utf-8") as file:
            for line in file:
                row_id, *values = json.loads(line)
                table.rows[row_id] = table.decode_row(values)
        tables.tables[table.name] = table
    tables.pending = {int(xid): [tuple(r) for r in records] for xid, records in manifest["pending"].items()}  # type: ignore[misc]
    tables.max_xid = manifest["max_xid"]
    tables.last_commit_time = manifest["last_commit_time"]
    tables.last_checkpoint = manifest["last_checkpoint"]
    return tables, manifest["next_xid"]


def remove_images_except(datadir: str, keep: int) -> int:
    """Drop every image but `keep` (older ones, and leftovers of interrupted checkpoints)."""
    removed = 0
    base = os.path.join(datadir, "base")
    for name in os.listdir(base):
        if name != image_name(keep):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            removed += 1
    return removed
