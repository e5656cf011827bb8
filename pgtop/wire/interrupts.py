"""Interrupt flags a signal handler raises and a session acts on at safe points.

PostgreSQL's handlers only set QueryCancelPending / ProcDiePending and the backend acts at
CHECK_FOR_INTERRUPTS(). Here a handler (or another thread) calls `request_cancel()` or
`request_termination(diagnostic)`; both only set a field and write one byte to a pipe, which is
safe in a signal handler. The session checks the flags between statements and while it waits
for the client (the pipe wakes its select()); long statements call `check()` or `sleep()`.
"""

from __future__ import annotations

import os
import select
import time

from pgtop.wire.errors import Diagnostic, SessionTerminated, query_canceled


class Interrupts:
    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self.cancel_pending = False
        self.termination: Diagnostic | None = None
        self.reading_command = False  # DoingCommandRead: a cancel now is ignored
        self.statement_deadline: float | None = None  # time.monotonic() when statement_timeout fires

    # -- raised by handlers ---------------------------------------------------------------

    def request_cancel(self) -> None:
        """SIGINT: the running statement fails with 57014."""
        self.cancel_pending = True
        self._wake()

    def request_termination(self, diagnostic: Diagnostic) -> None:
        """End the session, sending `diagnostic` (FATAL 57P01 for SIGTERM, quickdie's
        WARNING for SIGQUIT) at the next safe point, idle or not. The first request wins."""
        if self.termination is None:
            self.termination = diagnostic
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._write_fd, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wakeup is already pending) or closed

    # -- acted on by the session ----------------------------------------------------------

    def start_statement(self, timeout: float) -> None:
        """enable_statement_timeout(): the statement starting now may run `timeout` seconds
        (0: no limit). A deadline checked at the same safe points as a cancel, rather than
        PostgreSQL's SIGALRM, so that sessions run in threads (the tests' server) keep it too."""
        self.statement_deadline = time.monotonic() + timeout if timeout > 0 else None

    def end_statement(self) -> None:
        self.statement_deadline = None

    def check(self) -> None:
        """CHECK_FOR_INTERRUPTS(): raise SessionTerminated or the cancel error if one is due."""
        if self.termination is not None:
            raise SessionTerminated(self.termination)
        if self.cancel_pending:
            self.cancel_pending = False
            if not self.reading_command:
                raise query_canceled()
        if self.statement_deadline is not None and time.monotonic() >= self.statement_deadline:
            self.statement_deadline = None
            raise query_canceled("statement timeout")

    def sleep(self, seconds: float) -> None:
        """pg_sleep: wait `seconds`, but raise as `check()` does the moment an interrupt comes."""
        deadline = time.monotonic() + (seconds if seconds > 0 else 0.0)  # NaN and negatives: no wait
        while True:
            self.check()
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return
            # select() takes no timeout beyond time_t: wait in slices for very long sleeps.
            wait = min(remaining, 3600.0)
            if self.statement_deadline is not None:
                wait = min(wait, max(0.0, self.statement_deadline - now))
            readable, _, _ = select.select([self._read_fd], [], [], wait)
            if readable:
                self._drain()

    def fileno(self) -> int:
        return self._read_fd

    def on_wakeup(self) -> None:
        """Called by MessageStream when the pipe woke a blocking read."""
        self._drain()
        self.check()

    def _drain(self) -> None:
        try:
            while os.read(self._read_fd, 512):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
