"""The startup process's work: read pg_control, replay the WAL, end recovery (StartupXLOG).

`StartupRecovery(datadir, ...).run()` is a generator of events (startup_events.py): the log
lines in PostgreSQL 14's order and wording, redo progress, and the moments the postmaster must
hear about (RecoveryStarted, ConsistentState, WaitingForWal). The caller writes the lines,
publishes the progress, sends the pmsignals, and may stop iterating at any point (SIGTERM,
SIGQUIT): nothing is left half-done that the next recovery cannot redo. When the generator
is exhausted, `outcome` says how recovery ended and the startup process exits 0.

Sequences (checked against a real server, see tests/storage/test_recovery.py):
  clean:   "database system was shut down at %s"
  crash:   "database system was interrupted; last known up at %s",
           "database system was not properly shut down; automatic recovery in progress",
           "redo starts at %X/%X", ["invalid record length at %X/%X: wanted 24, got 0"],
           "redo done at %X/%X system usage: CPU: ..." (or "redo is not required"),
           then the end-of-recovery checkpoint, which 14's startup process writes itself.
  standby: "... shut down in recovery at %s", "entering standby mode", "consistent recovery
           state reached at %X/%X", "redo starts at %X/%X", ... on promotion "received promote
           request", "redo done at ...", "last completed transaction was at log time %s",
           "selected new timeline ID: %u", "archive recovery complete".
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

from pgtop.core.vocabulary import LogLevel
from pgtop.storage.checkpoint import Checkpointer
from pgtop.storage.checkpoint_log import CheckpointFlags, CheckpointResult
from pgtop.storage.controlfile import (
    ControlFile,
    DBState,
    read_control_file,
    update_control_file,
)
from pgtop.storage.errors import RecoveryError, WalError
from pgtop.storage.lsn import format_lsn, segment_of, str_time, timestamptz_text
from pgtop.storage.records import RecordType, WalRecord
from pgtop.storage.replica import Replica
from pgtop.storage.startup_events import (
    ConsistentState,
    EndOfStreaming,
    LogLine,
    RecoveryMode,
    RecoveryOutcome,
    RecoveryStarted,
    RedoProgress,
    StartupEvent,
    WaitingForWal,
)
from pgtop.storage.timeline import newest_timeline, read_history, timeline_of_segment
from pgtop.storage.wal import InsertState, Wal
from pgtop.storage.walreader import WalReader, read_record_at

STANDBY_SIGNAL = "standby.signal"
RECOVERY_SIGNAL = "recovery.signal"
PROMOTE_SIGNAL = "promote"


def state_lines(control: ControlFile, log_timezone: str = "UTC") -> list[LogLine]:
    """The first thing StartupXLOG logs: what pg_control says about the last shutdown."""
    at = str_time(control.time, log_timezone)
    state = control.state
    if state is DBState.DB_SHUTDOWNED:
        return [LogLine(f"database system was shut down at {at}")]
    if state is DBState.DB_SHUTDOWNED_IN_RECOVERY:
        return [LogLine(f"database system was shut down in recovery at {at}")]
    if state is DBState.DB_SHUTDOWNING:
        return [LogLine(f"database system shutdown was interrupted; last known up at {at}")]
    if state is DBState.DB_IN_CRASH_RECOVERY:
        return [LogLine(
            f"database system was interrupted while in recovery at {at}",
            hint="This probably means that some data is corrupted and you will have to use the last backup for recovery.",
        )]
    if state is DBState.DB_IN_ARCHIVE_RECOVERY:
        return [LogLine(
            f"database system was interrupted while in recovery at log time {str_time(control.checkpoint_time, log_timezone)}",
            hint="If this has occurred more than once some data might be corrupted and you might need to choose an earlier recovery target.",
        )]
    if state is DBState.DB_IN_PRODUCTION:
        return [LogLine(f"database system was interrupted; last known up at {at}")]
    return [LogLine("control file contains invalid database cluster state", level=LogLevel.FATAL)]


def usage_text(cpu_start: resource.struct_rusage, wall_start: float) -> str:
    """pg_rusage_show(): "CPU: user: 0.00 s, system: 0.00 s, elapsed: 0.01 s"."""
    now = resource.getrusage(resource.RUSAGE_SELF)

    def two(seconds: float) -> str:
        centis = int(max(seconds, 0.0) * 100)
        return f"{centis // 100}.{centis % 100:02d}"

    return (
        f"CPU: user: {two(now.ru_utime - cpu_start.ru_utime)} s, "
        f"system: {two(now.ru_stime - cpu_start.ru_stime)} s, "
        f"elapsed: {two(time.monotonic() - wall_start)} s"
    )


class StartupRecovery:
    """One run of the startup process's recovery. See the module docstring."""

    def __init__(
        self, datadir: str, *, redo_delay_ms: int = 0, log_checkpoints: bool = False,
        archiving: bool = False, log_timezone: str = "UTC", sleep: Callable[[float], None] = time.sleep,
        progress_interval: float = 0.25, standby_poll_interval: float = 0.2,
    ) -> None:
        self.datadir = datadir
        self.redo_delay = redo_delay_ms / 1000.0
        self.log_checkpoints = log_checkpoints
        self.archiving = archiving
        self.log_timezone = log_timezone
        self.sleep = sleep
        self.progress_interval = progress_interval
        self.standby_poll_interval = standby_poll_interval
        self.outcome: RecoveryOutcome | None = None
        self.consistent = False
        # Set by the startup process while a walreceiver streams (XLOG_FROM_STREAM): a standby
        # then reads only up to what the walreceiver wrote (its flushedUpto); otherwise it
        # reads pg_wal to the first invalid record, and says why it stopped.
        self.streaming = False
        self._promote_requested = False
        self._promoting = False
        self._records_done = 0
        self._records_total = 0
        self._last_progress = 0.0
        self._scan_end = 0
        self._last_reason: str | None = None
        self._checkpoint_end = 0

    def request_promote(self) -> None:
        """The startup process's SIGUSR2 handler: promote once the WAL at hand is replayed."""
        self._promote_requested = True

    # -- the whole run ---------------------------------------------------------------------

    def run(self) -> Iterator[StartupEvent]:
        control = read_control_file(self.datadir)  # ControlFileError: the caller logs it and exits 1
        yield from state_lines(control, self.log_timezone)
        mode = self._requested_mode()
        if mode is RecoveryMode.STANDBY:
            yield LogLine("entering standby mode")
        elif mode is RecoveryMode.ARCHIVE:
            yield LogLine("starting archive recovery")
        wal = Wal(self.datadir, create=True)
        replica: Replica | None = None
        try:
            replica = self._open_replica(control, wal)
            yield from self._recover(control, wal, replica, mode)
        finally:
            if replica is not None:
                replica.close()
            wal.close()

    def _requested_mode(self) -> RecoveryMode:
        if os.path.exists(os.path.join(self.datadir, STANDBY_SIGNAL)):
            return RecoveryMode.STANDBY
        if os.path.exists(os.path.join(self.datadir, RECOVERY_SIGNAL)):
            return RecoveryMode.ARCHIVE
        return RecoveryMode.NONE

    def _open_replica(self, control: ControlFile, wal: Wal) -> Replica:
        """ReadCheckpointRecord() then the image the checkpoint wrote."""
        history = read_history(self.datadir, control.timeline)
        timeline = timeline_of_segment(history, control.timeline, segment_of(control.checkpoint))
        record = read_record_at(self.datadir, control.checkpoint, timeline)
        if record is None or not record.type.is_checkpoint:
            raise RecoveryError("could not locate a valid checkpoint record", level=LogLevel.PANIC)
        self._checkpoint_end = record.end
        try:
            replica = Replica(self.datadir, wal, control)
        except FileNotFoundError:
            raise RecoveryError("could not locate a valid checkpoint record", level=LogLevel.PANIC,
                                detail=f"The table image for redo point {format_lsn(control.redo)} is missing.") from None
        # The shared state can be a step ahead of pg_control: a promotion that crashed before
        # its pg_control update already inserts on the new timeline.
        state_timeline = wal.state().timeline if wal.state_is_valid() else 0
        replica.reader.follow_timeline(max(control.timeline, state_timeline))
        if control.redo == control.checkpoint:
            next(replica.replay(), None)  # the shutdown checkpoint record itself: nothing to redo
        return replica

    def _recover(self, control: ControlFile, wal: Wal, replica: Replica, mode: RecoveryMode) -> Iterator[StartupEvent]:
        in_recovery = (mode is not RecoveryMode.NONE or control.state is not DBState.DB_SHUTDOWNED
                       or control.redo < control.checkpoint)
        if not in_recovery:
            self._finish_clean(control, wal, replica)
            return
        if mode is RecoveryMode.NONE:
            mode = RecoveryMode.CRASH
            yield LogLine("database system was not properly shut down; automatic recovery in progress")
            update_control_file(self.datadir, state=DBState.DB_IN_CRASH_RECOVERY)
        else:
            minimum = max(control.min_recovery_point, control.redo)
            update_control_file(self.datadir, state=DBState.DB_IN_ARCHIVE_RECOVERY,
                                min_recovery_point=minimum, min_recovery_point_timeline=control.timeline)
            self._advance_insert_position(control, wal, replica, in_recovery=True)
        replayed = yield from self._redo(control, wal, replica, mode)
        yield from self._end_recovery(control, wal, replica, mode, replayed)

    # -- redo ------------------------------------------------------------------------------

    def _redo(self, control: ControlFile, wal: Wal, replica: Replica, mode: RecoveryMode) -> Iterator[StartupEvent]:
        """The main redo apply loop; returns the last record replayed (None: redo not required)."""
        archive = mode in (RecoveryMode.ARCHIVE, RecoveryMode.STANDBY)
        yield RecoveryStarted(archive=archive)
        minimum = max(control.min_recovery_point, control.redo)
        if archive:  # the image at the redo point may already be consistent
            yield from self._check_consistency(max(self._checkpoint_end, replica.position), minimum, wal, replica)
        redo_start = replica.position
        self._records_total = self._count_remaining(replica)
        cpu_start, wall_start = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        last: WalRecord | None = None
        while True:
            limit = wal.state().insert if mode is RecoveryMode.STANDBY and self.streaming else None
            record = replica.reader.read_record(limit)
            if record is None:
                yield from self._end_of_wal_lines(replica)
                if mode is not RecoveryMode.STANDBY:
                    break
                if (yield from self._promotion_requested()):
                    if not self.streaming:
                        break
                    yield EndOfStreaming()  # the walreceiver is gone when this returns
                    self.streaming = False
                    continue  # replay what it wrote last, to the end of pg_wal
                yield from self._wait_for_wal(control, wal, replica)
                continue
            replica.tables.apply(record)
            if last is None:
                yield LogLine(f"redo starts at {format_lsn(record.lsn)}")
            last = record
            self._records_done += 1
            if self.redo_delay:
                self.sleep(self.redo_delay)
            if (yield from self._maybe_progress(redo_start, record, force=False)) and archive:
                wal.set_replayed(replica.position)  # hot-standby readers may now see this far
            if archive:
                yield from self._check_consistency(record.end, minimum, wal, replica)
        if last is None:
            yield LogLine("redo is not required")
            return None
        yield from self._maybe_progress(redo_start, last, force=True)
        yield LogLine(f"redo done at {format_lsn(last.lsn)} system usage: {usage_text(cpu_start, wall_start)}")
        if archive and replica.tables.last_commit_time is not None:
            when = timestamptz_text(replica.tables.last_commit_time, self.log_timezone)
            yield LogLine(f"last completed transaction was at log time {when}")
        return last

    def _end_of_wal_lines(self, replica: Replica) -> Iterator[StartupEvent]:
        reason = replica.reader.end_reason
        if reason is not None and reason != self._last_reason:
            self._last_reason = reason
            yield LogLine(reason)

    def _promotion_requested(self) -> Iterator[StartupEvent]:
        """CheckForStandbyTrigger(): a promote request (signal and/or the promote file)."""
        if self._promoting:
            return True
        path = os.path.join(self.datadir, PROMOTE_SIGNAL)
        if not (self._promote_requested or os.path.exists(path)):
            return False
        self._promoting = True
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        yield LogLine("received promote request")
        return True

    def _advance_insert_position(self, control: ControlFile, wal: Wal, replica: Replica, *, in_recovery: bool) -> None:
        """A standby's insert position is where its walreceiver continues: never behind what
        was replayed. Nothing is erased: the walreceiver may be writing right there."""
        with wal.locked() as insertion:
            try:
                current: InsertState | None = insertion.state
            except WalError:
                current = None
            if current is None or current.insert < replica.reader.position:
                current = self._end_of_wal_state(control, wal, replica)
            insertion.restore(replace(current, replayed=replica.reader.position))
            insertion.set_flags(archiving=self.archiving, in_recovery=in_recovery)

    def _wait_for_wal(self, control: ControlFile, wal: Wal, replica: Replica) -> Iterator[StartupEvent]:
        self._advance_insert_position(control, wal, replica, in_recovery=True)
        yield WaitingForWal(replica.reader.position)
        self.sleep(self.standby_poll_interval)
        self._records_total = self._records_done + self._count_remaining(replica)

    def _count_remaining(self, replica: Replica) -> int:
        """Pre-scan: how many valid records lie ahead (for records_total)."""
        reader = WalReader(self.datadir, replica.reader.position, replica.reader.timeline, prev=replica.reader.prev)
        count = 0
        try:
            while reader.read_record() is not None:
                count += 1
        finally:
            reader.close()
        self._scan_end = reader.position
        return count

    def _maybe_progress(self, redo_start: int, record: WalRecord, *, force: bool) -> Iterator[StartupEvent]:
        """Report progress at most every progress_interval; returns whether it did."""
        now = time.monotonic()
        if not (force or now - self._last_progress >= self.progress_interval or self.redo_delay >= self.progress_interval):
            return False
        self._last_progress = now
        yield RedoProgress(redo_start, record.lsn, max(self._scan_end, record.end),
                           self._records_done, max(self._records_total, self._records_done))
        return True

    def _check_consistency(self, replayed_end: int, minimum: int, wal: Wal, replica: Replica) -> Iterator[StartupEvent]:
        """CheckRecoveryConsistency(): archive recovery is consistent past minRecoveryPoint.
        Hot-standby readers see everything replayed so far before anyone hears of it."""
        if not self.consistent and replayed_end >= minimum:
            self.consistent = True
            wal.set_replayed(replica.position)
            yield LogLine(f"consistent recovery state reached at {format_lsn(replayed_end)}")
            yield ConsistentState(replayed_end)

    # -- the end ---------------------------------------------------------------------------

    def _end_of_wal_state(self, control: ControlFile, wal: Wal, replica: Replica) -> InsertState:
        """The true end of WAL becomes the insert position; the next xid is past every xid seen."""
        old = wal.state() if wal.state_is_valid() else None
        next_xid = max(control.next_xid, replica.next_xid, replica.tables.max_xid + 1, old.next_xid if old else 0)
        flags = old.flags if old else 0
        return InsertState(replica.reader.position, replica.reader.prev or control.checkpoint, next_xid,
                           control.system_identifier, replica.reader.timeline, flags, replica.reader.position)

    def _finish_clean(self, control: ControlFile, wal: Wal, replica: Replica) -> None:
        with wal.locked() as insertion:
            insertion.reset(self._end_of_wal_state(control, wal, replica))
            insertion.set_flags(archiving=self.archiving, in_recovery=False)
            state = insertion.state
        update_control_file(self.datadir, state=DBState.DB_IN_PRODUCTION, next_xid=state.next_xid)
        self.outcome = RecoveryOutcome(RecoveryMode.NONE, state.insert, state.timeline, 0, False, None, None)

    def _end_recovery(
        self, control: ControlFile, wal: Wal, replica: Replica, mode: RecoveryMode, last: WalRecord | None,
    ) -> Iterator[StartupEvent]:
        replica.tables.discard_in_flight()  # their backends died with the crash
        end = self._end_of_wal_state(control, wal, replica)
        if mode is RecoveryMode.CRASH:
            with wal.locked() as insertion:
                insertion.reset(end)
                insertion.set_flags(archiving=self.archiving, in_recovery=False)
        else:
            yield from self._new_timeline(control, wal, end)
        result: CheckpointResult | None = None
        if mode is not RecoveryMode.STANDBY:
            result = yield from self._end_of_recovery_checkpoint(replica, mode)
        timeline = wal.state().timeline
        update_control_file(self.datadir, state=DBState.DB_IN_PRODUCTION, timeline=timeline,
                            min_recovery_point=0, min_recovery_point_timeline=0)
        promoted = mode is RecoveryMode.STANDBY
        # 14 after a promotion: the startup process only asks the checkpointer (CHECKPOINT_FORCE)
        request = CheckpointFlags.FORCE if promoted else None
        self.outcome = RecoveryOutcome(mode, wal.state().insert, timeline, self._records_done, promoted, result, request)

    def _end_of_recovery_checkpoint(self, replica: Replica, mode: RecoveryMode) -> Iterator[StartupEvent]:
        """14's crash recovery: CreateCheckPoint(END_OF_RECOVERY | IMMEDIATE) in this process
        (archive recovery asks the checkpointer to WAIT for it; done here too)."""
        flags = CheckpointFlags.END_OF_RECOVERY | CheckpointFlags.IMMEDIATE
        if mode is RecoveryMode.ARCHIVE:
            flags |= CheckpointFlags.WAIT
        if self.log_checkpoints:
            yield LogLine(CheckpointResult.starting_text(flags))
        result = Checkpointer(self.datadir, archiving=self.archiving, replica=replica).checkpoint(flags)
        if self.log_checkpoints and result is not None:
            yield LogLine(result.complete_message)
        return result

    def _new_timeline(self, control: ControlFile, wal: Wal, end: InsertState) -> Iterator[StartupEvent]:
        """End of archive recovery: a new timeline, END_OF_RECOVERY on it, signal files gone.

        One hold of the insert lock, so no hot-standby backend can write between the end of
        recovery and the first record of the new timeline.
        """
        new = newest_timeline(self.datadir, max(end.timeline, control.timeline)) + 1
        yield LogLine(f"selected new timeline ID: {new}")
        with wal.locked() as insertion:
            insertion.reset(end)
            insertion.begin_timeline(new)
            insertion.set_flags(archiving=self.archiving, in_recovery=False)
            insertion.append(RecordType.END_OF_RECOVERY, 0,
                             {"timeline": new, "prev_timeline": end.timeline, "time": time.time()})
        wal.flush()
        for name in (RECOVERY_SIGNAL, STANDBY_SIGNAL):
            try:
                os.unlink(os.path.join(self.datadir, name))
            except FileNotFoundError:
                pass
        yield LogLine("archive recovery complete")
