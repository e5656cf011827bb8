"""Checkpoints and restartpoints: image the tables, log the checkpoint, update pg_control.

CreateCheckPoint() in miniature. The redo point is the insert position when the checkpoint
starts; the image written to base/ is the committed state (and in-flight transactions) as of
exactly that point; then the checkpoint record goes into the WAL, is flushed, and pg_control
names it. Old WAL segments before the redo point's segment are recycled or removed (kept
while archiving is on and they are not yet archived). A shutdown or end-of-recovery
checkpoint holds the insert lock throughout, so its redo point is its own record, as in
PostgreSQL. During archive recovery the same call makes a restartpoint: an image at the
replay position, no WAL written.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable

from pgtop.storage.checkpoint_log import (
    CheckpointFlags,
    CheckpointResult,
    flags_for_kind,
)
from pgtop.storage.controlfile import DBState, read_control_file, update_control_file
from pgtop.storage.image import ImageWriteStats, remove_images_except, write_image
from pgtop.storage.lsn import WAL_SEGMENT_SIZE, segment_offset
from pgtop.storage.records import RecordType
from pgtop.storage.replica import Replica, open_replica
from pgtop.storage.segments import prealloc_segment, remove_old_segments
from pgtop.storage.wal import Wal, WalInsertion

SMALL_RECORD = 1024  # room kept for a checkpoint record so its LSN is known in advance
_SHUTDOWN_LIKE = CheckpointFlags.IS_SHUTDOWN | CheckpointFlags.END_OF_RECOVERY


class Checkpointer:
    """The checkpointer's state across checkpoints: its replica and the distance estimate."""

    def __init__(self, datadir: str, *, archiving: bool | None = None, replica: Replica | None = None) -> None:
        """`archiving` None: as the WAL state says (the startup process sets it from
        archive_mode and wal_level at the end of recovery)."""
        self.datadir = datadir
        self.archiving = archiving
        self._own_wal = replica is None
        self._wal = Wal(datadir) if replica is None else replica.wal
        self._replica = replica
        self._distance_estimate = 0.0  # CheckPointDistanceEstimate, bytes

    def close(self) -> None:
        if self._replica is not None and self._own_wal:
            self._replica.close()
        if self._own_wal:
            self._wal.close()

    def _replica_now(self) -> Replica:
        if self._replica is None:
            self._replica = open_replica(self.datadir, self._wal)
        return self._replica

    def checkpoint(
        self, flags: CheckpointFlags, *, on_start: Callable[[str], None] | None = None,
    ) -> CheckpointResult | None:
        """Run one checkpoint (or restartpoint); None if skipped because nothing happened.

        `on_start` receives "checkpoint starting: ..." before the work, so the caller can log
        it at the right moment (log_checkpoints).
        """
        lock_fd = os.open(os.path.join(self.datadir, "global", "pg_control.checkpoint.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)  # CheckpointLock: one checkpoint at a time
            if self._wal.state().in_recovery:
                return self._restartpoint(flags, on_start)
            return self._checkpoint(flags, on_start)
        finally:
            os.close(lock_fd)

    def _checkpoint(self, flags: CheckpointFlags, on_start: Callable[[str], None] | None) -> CheckpointResult | None:
        control = read_control_file(self.datadir)
        state = self._wal.state()
        shutdown = bool(flags & _SHUTDOWN_LIKE)
        if not shutdown and not flags & CheckpointFlags.FORCE and state.prev == control.checkpoint:
            return None  # nothing was written since the last checkpoint: skip it silently
        started = time.monotonic()
        if on_start is not None:
            on_start(CheckpointResult.starting_text(flags, restartpoint=False))
        if shutdown:
            update_control_file(self.datadir, state=DBState.DB_SHUTDOWNING)
        replica = self._replica_now()
        with self._wal.locked() as insertion:
            redo = self._prepare_redo_point(insertion, replica)
            if shutdown:
                replica.tables.discard_in_flight()
                stats = self._write_image(replica, redo, control.redo, insertion.state.next_xid)
                lsn = self._log_checkpoint(insertion, RecordType.CHECKPOINT_SHUTDOWN, redo)
        if not shutdown:
            stats = self._write_image(replica, redo, control.redo, self._wal.state().next_xid)
            with self._wal.locked() as insertion:
                lsn = self._log_checkpoint(insertion, RecordType.CHECKPOINT_ONLINE, redo)
        self._wal.flush()
        now = time.time()
        final = self._wal.state()
        changes = {"state": DBState.DB_SHUTDOWNED} if shutdown else {}
        update_control_file(
            self.datadir, now=now, checkpoint=lsn, redo=redo, checkpoint_time=now,
            next_xid=final.next_xid, timeline=final.timeline, prev_timeline=final.timeline, **changes,
        )
        remove_images_except(self.datadir, redo)
        return self._finish(flags, False, lsn, redo, control.redo, stats, started, final.insert)

    def _prepare_redo_point(self, insertion: WalInsertion, replica: Replica) -> int:
        """Where the checkpoint record will go if written now, with the replica caught up to it."""
        if WAL_SEGMENT_SIZE - segment_offset(insertion.state.insert) < SMALL_RECORD:
            insertion.switch()
        insertion.start_segment()
        replica.refresh()
        return insertion.state.insert

    def _log_checkpoint(self, insertion: WalInsertion, kind: RecordType, redo: int) -> int:
        state = insertion.state
        payload = {
            "redo": redo, "timeline": state.timeline, "prev_timeline": state.timeline,
            "next_xid": state.next_xid, "time": time.time(),
        }
        return insertion.append(kind, 0, payload)

    def _write_image(self, replica: Replica, redo: int, previous: int, next_xid: int) -> ImageWriteStats:
        return write_image(self.datadir, replica.tables, redo, next_xid, previous)

    def _restartpoint(self, flags: CheckpointFlags, on_start: Callable[[str], None] | None) -> CheckpointResult | None:
        """CreateRestartPoint(): image the replay position; no WAL is written in recovery."""
        control = read_control_file(self.datadir)
        replica = self._replica_now()
        replica.refresh()
        redo = replica.position
        shutdown = bool(flags & _SHUTDOWN_LIKE)
        if redo == control.redo and not shutdown:
            return None  # "skipping restartpoint, already performed at %X/%X" (DEBUG2)
        started = time.monotonic()
        if on_start is not None:
            on_start(CheckpointResult.starting_text(flags, restartpoint=True))
        stats = self._write_image(replica, redo, control.redo, max(self._wal.state().next_xid, replica.tables.max_xid + 1))
        checkpoint = replica.tables.last_checkpoint or control.checkpoint
        changes = {"state": DBState.DB_SHUTDOWNED_IN_RECOVERY} if shutdown else {}
        now = time.time()
        update_control_file(
            self.datadir, now=now, checkpoint=checkpoint, redo=redo, checkpoint_time=now,
            min_recovery_point=redo, min_recovery_point_timeline=self._wal.state().timeline, **changes,
        )
        remove_images_except(self.datadir, redo)
        return self._finish(flags, True, checkpoint, redo, control.redo, stats, started, redo)

    def _finish(
        self, flags: CheckpointFlags, restartpoint: bool, lsn: int, redo: int, prior_redo: int,
        stats: ImageWriteStats, started: float, insert: int,
    ) -> CheckpointResult:
        keep_from = min(redo, lsn)
        state = self._wal.state()
        archiving = state.archiving if self.archiving is None else self.archiving
        removed, recycled = remove_old_segments(self.datadir, state, keep_from, archiving)
        added = prealloc_segment(self.datadir, self._wal.state())
        distance = max(redo - prior_redo, 0)
        if self._distance_estimate < distance:
            self._distance_estimate = float(distance)
        else:  # UpdateCheckPointDistanceEstimate()
            self._distance_estimate = 0.90 * self._distance_estimate + 0.10 * distance
        return CheckpointResult(
            flags=flags, restartpoint=restartpoint, lsn=lsn, redo=redo, buffers=stats.buffers,
            wal_added=added, wal_removed=removed, wal_recycled=recycled,
            write_seconds=stats.write_seconds, sync_seconds=stats.sync_seconds,
            total_seconds=time.monotonic() - started, sync_files=stats.sync_files,
            longest_sync=stats.longest_sync,
            average_sync=stats.total_sync / stats.sync_files if stats.sync_files else 0.0,
            distance_kb=int(distance / 1024), estimate_kb=int(self._distance_estimate / 1024),
            time=time.time(),
        )


def checkpoint(
    datadir: str, kind: str = "online", *, archiving: bool | None = None,
    on_start: Callable[[str], None] | None = None,
) -> CheckpointResult | None:
    """One-shot checkpoint: kind is 'shutdown', 'end-of-recovery', 'online' (CHECKPOINT
    command: immediate force wait) or 'time' (checkpoint_timeout; skipped when idle)."""
    checkpointer = Checkpointer(datadir, archiving=archiving)
    try:
        return checkpointer.checkpoint(flags_for_kind(kind), on_start=on_start)
    finally:
        checkpointer.close()

