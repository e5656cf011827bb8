"""WAL segment files as a set: listing them, and what a checkpoint removes, recycles and adds."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pgtop.storage.archive import cleanup_status, may_remove
from pgtop.storage.lsn import (
    WAL_SEGMENT_SIZE,
    parse_segment_file_name,
    segment_of,
    segment_offset,
)
from pgtop.storage.wal import InsertState, segment_path

# How many future segments a checkpoint keeps ready by recycling old ones (PostgreSQL derives
# this from min_wal_size and the checkpoint distance; a constant is enough for the model).
MAX_FUTURE_SEGMENTS = 2


@dataclass(frozen=True, slots=True, order=True)
class Segment:
    segno: int
    timeline: int
    name: str


def list_segments(datadir: str) -> list[Segment]:
    """Every WAL segment file in pg_wal, in WAL order."""
    found = []
    for name in os.listdir(os.path.join(datadir, "pg_wal")):
        parsed = parse_segment_file_name(name)
        if parsed is not None:
            found.append(Segment(parsed[1], parsed[0], name))
    return sorted(found)


def completed_segments(datadir: str, state: InsertState) -> list[Segment]:
    """Segments wholly before the insert position: full, never written again."""
    current = segment_of(state.insert)
    return [segment for segment in list_segments(datadir) if segment.segno < current]


def remove_old_segments(datadir: str, state: InsertState, keep_from: int, archiving: bool) -> tuple[int, int]:
    """RemoveOldXlogFiles(): segments before `keep_from`'s segment go, unless archiving still
    needs them; the first few become future segments (recycled), the rest are unlinked.
    Returns (removed, recycled)."""
    cutoff = segment_of(keep_from)
    future = {s.segno for s in list_segments(datadir) if s.timeline == state.timeline and s.segno > segment_of(state.insert)}
    next_free = segment_of(state.insert) + 1
    removed = recycled = 0
    for segment in list_segments(datadir):
        if segment.segno >= cutoff or not may_remove(datadir, segment.name, archiving):
            continue
        while next_free in future:
            next_free += 1
        old_path = os.path.join(datadir, "pg_wal", segment.name)
        if len(future) < MAX_FUTURE_SEGMENTS:
            os.rename(old_path, segment_path(datadir, state.timeline, next_free))
            future.add(next_free)
            recycled += 1
        else:
            os.unlink(old_path)
            removed += 1
        cleanup_status(datadir, segment.name)
    return removed, recycled


def prealloc_segment(datadir: str, state: InsertState) -> int:
    """PreallocXlogFiles(): past 75% of the current segment, create the next one (zero-filled,
    no header: the writer initialises it when it gets there). Returns files added."""
    if segment_offset(state.insert) < WAL_SEGMENT_SIZE * 3 // 4:
        return 0
    path = segment_path(datadir, state.timeline, segment_of(state.insert) + 1)
    if os.path.exists(path):
        return 0
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, WAL_SEGMENT_SIZE)
    finally:
        os.close(fd)
    return 1
