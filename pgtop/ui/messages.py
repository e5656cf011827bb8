"""Messages the supervisor thread posts to the dashboard."""

from __future__ import annotations

from textual.message import Message

from pgtop.runtime.snapshot import LogRecord, Snapshot


class SnapshotArrived(Message):
    """A new snapshot; only the latest one of each cluster matters, so queued ones coalesce.
    `origin` names the cluster when a dashboard shows more than one ("" is the main one)."""

    def __init__(self, snapshot: Snapshot, origin: str = "") -> None:
        super().__init__()
        self.snapshot = snapshot
        self.origin = origin

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotArrived) and message.origin == self.origin


class LogArrived(Message):
    """One server log record; every one is shown, none is ever replaced."""

    def __init__(self, record: LogRecord, origin: str = "") -> None:
        super().__init__()
        self.record = record
        self.origin = origin
