"""A process's own copy of the committed tables: the last checkpoint image plus WAL redo.

Every process that needs the tables (a backend, the checkpointer, the startup process) keeps a
Replica: it loads the image pg_control points to, replays the WAL from the redo LSN, and later
`refresh()` replays only what was added since. Asking "anything new?" reads the shared insert
LSN from memory, so a refresh with nothing new costs no system call.
"""

from __future__ import annotations

from collections.abc import Iterator

from pgtop.storage.controlfile import ControlFile, read_control_file
from pgtop.storage.errors import WalError
from pgtop.storage.image import load_image
from pgtop.storage.lsn import format_lsn
from pgtop.storage.records import WalRecord
from pgtop.storage.tables import TableSet
from pgtop.storage.wal import Wal
from pgtop.storage.walreader import WalReader

_LOAD_ATTEMPTS = 5


class Replica:
    """Committed tables as of `position`, kept current by replaying the WAL."""

    def __init__(self, datadir: str, wal: Wal, control: ControlFile | None = None) -> None:
        self.datadir = datadir
        self.wal = wal
        self.tables = TableSet()
        self.next_xid = 0
        self.control = control or read_control_file(datadir)
        self.reader = self._open(self.control)

    @property
    def position(self) -> int:
        """The LSN up to which the WAL has been applied."""
        return self.reader.position

    def _open(self, control: ControlFile) -> WalReader:
        self.tables, self.next_xid = load_image(self.datadir, control.redo)
        timeline = self.wal.state().timeline if self.wal.state_is_valid() else control.timeline
        return WalReader(self.datadir, control.redo, timeline, system_identifier=control.system_identifier)

    def replay(self, limit: int | None = None) -> Iterator[WalRecord]:
        """Apply records up to `limit` (None: to the end of valid WAL), yielding each one."""
        while (record := self.reader.read_record(limit)) is not None:
            self.tables.apply(record)
            yield record

    def refresh(self) -> int:
        """Apply what other processes committed since the last call; returns records applied."""
        state = self.wal.state()
        end = state.visible_end
        if end <= self.reader.position and state.timeline == self.reader.timeline:
            return 0
        self.reader.follow_timeline(state.timeline)
        applied = sum(1 for _record in self.replay(end))
        if self.reader.position < end and self._stalled():
            return applied + self._reload()
        return applied

    def _stalled(self) -> bool:
        return self.reader.end_reason is not None or self.reader.missing_segment

    def _reload(self) -> int:
        """The WAL at our position is gone: a checkpoint removed or recycled it. Start again
        from the newest image; anything else is WAL corruption."""
        for _attempt in range(_LOAD_ATTEMPTS):
            control = read_control_file(self.datadir)
            if control.redo <= self.reader.position:
                break
            try:
                reader = self._open(control)
            except FileNotFoundError:
                continue  # that image was replaced meanwhile: read pg_control again
            self.reader.close()
            self.reader, self.control = reader, control
            end = self.wal.state().visible_end
            applied = sum(1 for _record in self.replay(end))
            if self.reader.position >= end or not self._stalled():
                return applied
        reason = self.reader.end_reason or "WAL segment missing"
        raise WalError(f"could not read WAL at {format_lsn(self.reader.position)}: {reason}")

    def close(self) -> None:
        self.reader.close()


def open_replica(datadir: str, wal: Wal) -> Replica:
    """A Replica brought up to the current end of WAL (retrying if a checkpoint races us)."""
    for _attempt in range(_LOAD_ATTEMPTS):
        try:
            replica = Replica(datadir, wal)
        except FileNotFoundError:
            continue
        replica.refresh()
        return replica
    raise WalError("could not load the table image named by pg_control")
