"""Checkpoints: the log texts, pg_control, table images, and what happens to old WAL."""

from __future__ import annotations

import os
import re

from pgtop.storage import archive
from pgtop.storage.checkpoint import Checkpointer, checkpoint
from pgtop.storage.checkpoint_log import (
    CheckpointFlags,
    CheckpointResult,
    flags_for_kind,
)
from pgtop.storage.controlfile import DBState, read_control_file
from pgtop.storage.database import Database
from pgtop.storage.lsn import segment_file_name, segment_of
from pgtop.storage.records import RecordType
from pgtop.storage.segments import list_segments
from pgtop.storage.wal import Wal
from pgtop.storage.walreader import read_record_at

COMPLETE = re.compile(
    r"checkpoint complete: wrote \d+ buffers \(\d+\.\d%\); \d+ WAL file\(s\) added, \d+ removed, \d+ recycled; "
    r"write=\d+\.\d{3} s, sync=\d+\.\d{3} s, total=\d+\.\d{3} s; sync files=\d+, longest=\d+\.\d{3} s, "
    r"average=\d+\.\d{3} s; distance=\d+ kB, estimate=\d+ kB"
)


def fill(datadir: str, megabytes: int) -> None:
    """Commit about `megabytes` MB of rows."""
    with Database(datadir) as session:
        if not session.has_table("t"):
            session.create_table("t", [("id", "int"), ("pad", "text")])
        for _ in range(megabytes * 2):
            session.insert("t", [(i, "p" * 500) for i in range(1000)])


def test_starting_texts_are_postgresql_flag_words():
    assert CheckpointResult.starting_text(flags_for_kind("shutdown")) == "checkpoint starting: shutdown immediate"
    assert CheckpointResult.starting_text(flags_for_kind("time")) == "checkpoint starting: time"
    assert CheckpointResult.starting_text(flags_for_kind("online")) == "checkpoint starting: immediate force wait"
    assert CheckpointResult.starting_text(flags_for_kind("end-of-recovery")) == "checkpoint starting: end-of-recovery immediate"
    assert CheckpointResult.starting_text(flags_for_kind("force")) == "checkpoint starting: force"
    assert CheckpointResult.starting_text(CheckpointFlags.IS_SHUTDOWN | CheckpointFlags.IMMEDIATE, restartpoint=True) == (
        "restartpoint starting: shutdown immediate")


def test_shutdown_checkpoint_is_its_own_redo_point(running):
    started: list[str] = []
    result = checkpoint(running, "shutdown", on_start=started.append)
    assert started == ["checkpoint starting: shutdown immediate"]
    assert COMPLETE.fullmatch(result.complete_message)
    control = read_control_file(running)
    assert control.state is DBState.DB_SHUTDOWNED
    assert control.checkpoint == control.redo == result.lsn
    record = read_record_at(running, control.checkpoint, 1)
    assert record.type is RecordType.CHECKPOINT_SHUTDOWN and record.data["redo"] == control.redo


def test_online_checkpoint_keeps_the_state_and_writes_an_image(running):
    fill(running, 1)
    result = checkpoint(running, "online")
    control = read_control_file(running)
    assert control.state is DBState.DB_IN_PRODUCTION
    assert control.redo <= control.checkpoint == result.lsn
    assert os.listdir(os.path.join(running, "base")) == [f"{control.redo:016X}"]
    assert result.buffers > 0 and result.distance_kb > 500


def test_an_unchanged_table_is_linked_not_rewritten(running):
    fill(running, 1)
    checkpoint(running, "online")
    with Database(running) as session:
        session.create_table("u", [("id", "int")])
        session.insert("u", [(1,)])
    result = checkpoint(running, "online")
    assert result.buffers == 1  # table u's one block; t's file is a hard link to the previous image's


def test_time_checkpoint_is_skipped_when_nothing_happened(running):
    checkpointer = Checkpointer(running)
    try:
        assert checkpointer.checkpoint(flags_for_kind("online")) is not None
        assert checkpointer.checkpoint(flags_for_kind("time")) is None
        fill(running, 1)
        assert checkpointer.checkpoint(flags_for_kind("time")) is not None
    finally:
        checkpointer.close()


def test_distance_estimate_follows_updatecheckpointdistanceestimate(running):
    checkpointer = Checkpointer(running)
    try:
        fill(running, 1)
        prior_redo = read_control_file(running).redo
        first = checkpointer.checkpoint(flags_for_kind("online"))
        second = checkpointer.checkpoint(flags_for_kind("online"))
    finally:
        checkpointer.close()
    distance = first.redo - prior_redo
    assert first.distance_kb == first.estimate_kb == int(distance / 1024)
    smaller = second.redo - first.redo  # only the first checkpoint's record
    assert second.distance_kb == 0
    assert second.estimate_kb == int((0.90 * distance + 0.10 * smaller) / 1024)


def test_old_segments_are_recycled_or_removed(running):
    fill(running, 4)
    before = {s.name for s in list_segments(running)}
    result = checkpoint(running, "online")
    redo_segment = segment_of(result.redo)
    assert result.wal_removed + result.wal_recycled == len([s for s in before if int(s[-8:], 16) < redo_segment])
    assert result.wal_removed + result.wal_recycled >= 3
    remaining = list_segments(running)
    assert min(s.segno for s in remaining) == redo_segment
    assert len([s for s in remaining if s.segno > segment_of(result.lsn)]) == result.wal_recycled + result.wal_added


def test_archiving_keeps_segments_until_the_archiver_marks_them_done(running):
    with Wal(running) as wal:
        wal.set_flags(archiving=True)
    fill(running, 3)
    ready = archive.ready_segments(running)
    assert ready and ready[0] == segment_file_name(1, 1)
    checkpoint(running, "online")  # archiving as the WAL state says
    assert {s.name for s in list_segments(running)} >= set(ready)  # none removed
    for name in ready:
        archive.mark_done(running, name)
        assert archive.archive_state(running, name) == "done"
    assert archive.ready_segments(running) == []
    fill(running, 1)  # something new, so the checkpoint is not a no-op
    checkpoint(running, "online", archiving=True)
    names = {s.name for s in list_segments(running)}
    assert not names & set(ready)
    assert all(archive.archive_state(running, name) is None for name in ready)  # status files cleaned
