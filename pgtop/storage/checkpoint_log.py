"""What a checkpoint reports: its flags and the "checkpoint starting/complete" log texts."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from pgtop.storage.image import SHARED_BUFFERS
from pgtop.storage.lsn import format_lsn


class CheckpointFlags(enum.Flag):
    """CHECKPOINT_* request flags, in the order LogCheckpointStart prints them."""

    IS_SHUTDOWN = enum.auto()
    END_OF_RECOVERY = enum.auto()
    IMMEDIATE = enum.auto()
    FORCE = enum.auto()
    WAIT = enum.auto()
    CAUSE_XLOG = enum.auto()
    CAUSE_TIME = enum.auto()
    FLUSH_ALL = enum.auto()


_FLAG_WORDS = (
    (CheckpointFlags.IS_SHUTDOWN, " shutdown"),
    (CheckpointFlags.END_OF_RECOVERY, " end-of-recovery"),
    (CheckpointFlags.IMMEDIATE, " immediate"),
    (CheckpointFlags.FORCE, " force"),
    (CheckpointFlags.WAIT, " wait"),
    (CheckpointFlags.CAUSE_XLOG, " wal"),
    (CheckpointFlags.CAUSE_TIME, " time"),
    (CheckpointFlags.FLUSH_ALL, " flush-all"),
)

_KINDS = {
    # the shutdown checkpoint the checkpointer writes on SIGUSR2
    "shutdown": CheckpointFlags.IS_SHUTDOWN | CheckpointFlags.IMMEDIATE,
    # 14's crash recovery: the startup process itself, CreateCheckPoint(END_OF_RECOVERY | IMMEDIATE)
    "end-of-recovery": CheckpointFlags.END_OF_RECOVERY | CheckpointFlags.IMMEDIATE,
    # the CHECKPOINT command
    "online": CheckpointFlags.IMMEDIATE | CheckpointFlags.FORCE | CheckpointFlags.WAIT,
    # checkpoint_timeout elapsed
    "time": CheckpointFlags.CAUSE_TIME,
    # max_wal_size reached
    "wal": CheckpointFlags.CAUSE_XLOG,
    # after a promotion (14: RequestCheckpoint(CHECKPOINT_FORCE))
    "force": CheckpointFlags.FORCE,
}


def flags_for_kind(kind: str) -> CheckpointFlags:
    try:
        return _KINDS[kind]
    except KeyError:
        raise ValueError(f'unknown checkpoint kind "{kind}" (one of {", ".join(_KINDS)})') from None


@dataclass(frozen=True, slots=True)
class CheckpointResult:
    """The figures of LogCheckpointEnd, plus where the checkpoint is."""

    flags: CheckpointFlags
    restartpoint: bool
    lsn: int  # the checkpoint record (for a restartpoint: the last checkpoint record replayed)
    redo: int
    buffers: int
    wal_added: int
    wal_removed: int
    wal_recycled: int
    write_seconds: float
    sync_seconds: float
    total_seconds: float
    sync_files: int
    longest_sync: float
    average_sync: float
    distance_kb: int
    estimate_kb: int
    time: float

    @staticmethod
    def starting_text(flags: CheckpointFlags, restartpoint: bool = False) -> str:
        """LogCheckpointStart: "checkpoint starting: shutdown immediate"."""
        words = "".join(word for flag, word in _FLAG_WORDS if flag in flags)
        return f"{'restartpoint' if restartpoint else 'checkpoint'} starting:{words}"

    @property
    def starting_message(self) -> str:
        return self.starting_text(self.flags, self.restartpoint)

    @property
    def complete_message(self) -> str:
        """LogCheckpointEnd: "checkpoint complete: wrote 38 buffers (0.2%); ..."."""
        return (
            f"{'restartpoint' if self.restartpoint else 'checkpoint'} complete: "
            f"wrote {self.buffers} buffers ({100.0 * self.buffers / SHARED_BUFFERS:.1f}%); "
            f"{self.wal_added} WAL file(s) added, {self.wal_removed} removed, {self.wal_recycled} recycled; "
            f"write={_seconds(self.write_seconds)} s, sync={_seconds(self.sync_seconds)} s, "
            f"total={_seconds(self.total_seconds)} s; sync files={self.sync_files}, "
            f"longest={_seconds(self.longest_sync)} s, average={_seconds(self.average_sync)} s; "
            f"distance={self.distance_kb} kB, estimate={self.estimate_kb} kB"
        )

    @property
    def restart_point_message(self) -> str | None:
        """"recovery restart point at %X/%X" (restartpoints only; LOG with log_checkpoints)."""
        return f"recovery restart point at {format_lsn(self.redo)}" if self.restartpoint else None


def _seconds(value: float) -> str:
    # PostgreSQL prints %ld.%03d from whole milliseconds, rounding up (see LogCheckpointEnd)
    msecs = int(value * 1000 + 0.999)
    return f"{msecs // 1000}.{msecs % 1000:03d}"
