"""Helpers of the storage tests: recovery runs and worker processes (tests/storage/worker.py)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from pgtop.storage.recovery import StartupRecovery
from pgtop.storage.startup_events import LogLine, RecoveryOutcome, StartupEvent

WORKER = os.path.join(os.path.dirname(__file__), "worker.py")


def recover(datadir: str, **options) -> tuple[list[StartupEvent], RecoveryOutcome]:
    """Run the startup process's recovery to the end, with no real sleeping."""
    options.setdefault("sleep", lambda seconds: None)
    recovery = StartupRecovery(datadir, **options)
    events = list(recovery.run())
    assert recovery.outcome is not None
    return events, recovery.outcome


def messages(events: list[StartupEvent]) -> list[str]:
    return [event.message for event in events if isinstance(event, LogLine)]


class Worker:
    """A real process running tests/storage/worker.py; its stdout lines are its reports."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, WORKER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1,
        )
        self.lines: list[str] = []

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 20.0) -> str:
        """Read report lines until one matches; fail at the deadline or if the worker dies."""
        deadline = time.monotonic() + timeout
        stdout = self.process.stdout
        assert stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([stdout], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                break
            line = stdout.readline()
            if not line:
                raise AssertionError(f"worker exited: {self.process.wait()} {self.process.stderr.read()}")
            self.lines.append(line.strip())
            if predicate(line.strip()):
                return line.strip()
        raise AssertionError(f"no matching line from worker within {timeout} s; got {self.lines[-5:]}")

    def finish(self, timeout: float = 60.0) -> list[str]:
        """Wait for a normal exit and collect every report line."""
        out, err = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, err
        self.lines.extend(line.strip() for line in out.splitlines())
        return self.lines

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.lines.extend(line.strip() for line in self.process.stdout.read().splitlines())
