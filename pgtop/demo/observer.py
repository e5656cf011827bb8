"""What a demo has seen so far: every snapshot's pmState, the latest snapshot, every server
log record and every message a demo client got, with a condition to wait on.

It is fed from the supervisor thread and the client threads; the player reads it. A `Mark`
taken before an action lets expectations look only at what came after that action.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pgtop.core.vocabulary import PMState
from pgtop.runtime.snapshot import LogRecord, Snapshot


@dataclass(frozen=True, slots=True)
class Mark:
    """Where the record stood when an action ran."""

    logs: int
    states: int
    client_messages: int
    snapshot: Snapshot | None


class Observer:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._latest: Snapshot | None = None
        self._states: list[PMState] = []
        self._logs: list[LogRecord] = []
        self._client_messages: list[str] = []
        self._serial = 0

    # -- fed by the supervisor and the clients ---------------------------------------------

    def snapshot(self, snapshot: Snapshot) -> None:
        with self._cond:
            if self._latest is None or snapshot.state is not self._latest.state:
                self._states.append(snapshot.state.pm_state)
            self._latest = snapshot
            self._changed()

    def log(self, record: LogRecord) -> None:
        with self._cond:
            self._logs.append(record)
            self._changed()

    def client_message(self, text: str) -> None:
        with self._cond:
            self._client_messages.append(text)
            self._changed()

    def _changed(self) -> None:
        self._serial += 1
        self._cond.notify_all()

    # -- read by the player ------------------------------------------------------------------

    @property
    def latest(self) -> Snapshot | None:
        with self._cond:
            return self._latest

    def mark(self) -> Mark:
        with self._cond:
            return Mark(len(self._logs), len(self._states), len(self._client_messages), self._latest)

    def logs_since(self, mark: Mark) -> list[LogRecord]:
        with self._cond:
            return self._logs[mark.logs :]

    def states_since(self, mark: Mark) -> list[PMState]:
        with self._cond:
            return self._states[mark.states :]

    def client_messages_since(self, mark: Mark) -> list[str]:
        with self._cond:
            return self._client_messages[mark.client_messages :]

    def wait_for_news(self, timeout: float) -> None:
        """Return when anything new arrives, or after `timeout` seconds."""
        with self._cond:
            serial = self._serial
            self._cond.wait_for(lambda: self._serial != serial, timeout=max(0.0, timeout))
