"""Messages the supervisor thread posts to the dashboard."""

from __future__ import annotations

from textual.message import Message

from pgtop.runtime.snapshot import LogRecord, Snapshot


class SnapshotArrived(Message):
    """A new snapshot; only the latest one matters, so queued ones coalesce."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotArrived)


class LogArrived(Message):
    """One server log record; every one is shown, none is ever replaced."""

    def __init__(self, record: LogRecord) -> None:
        super().__init__()
        self.record = record
