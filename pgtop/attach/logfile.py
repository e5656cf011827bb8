"""Following a real server's log file: where it is, its new lines, and each line as a record.

The log is found, in order, from `--log FILE`; from `current_logfiles` in the data
directory (logging_collector=on: the file the logger writes now, re-checked as it rotates);
or from the postmaster's own stderr when that is a regular file (`pg_ctl -l FILE`, the
default way to start PostgreSQL 15 by hand). Lines are read as they are completed; a file
that was rotated, truncated or replaced is followed from its start.
"""

from __future__ import annotations

import datetime
import os
import re
import time
from pathlib import Path

from pgtop.runtime.serverlog import parse_line
from pgtop.runtime.snapshot import LogRecord

BACKLOG_BYTES = 64 * 1024  # how far back the log is read at attach time
MAX_PARTIAL = 64 * 1024
READ_CHUNK = 256 * 1024

# %m (or %t) at the start of log_line_prefix: "2026-11-22 16:20:17.106 UTC".
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) ([A-Za-z][\w+-]*)")
_UTC_NAMES = frozenset({"UTC", "GMT", "Z", "UCT"})


def log_time(text: str) -> float | None:
    """The epoch time of a line stamped in UTC or in this machine's zone, else None."""
    match = _TIMESTAMP.match(text)
    if match is None:
        return None
    stamp, zone = match.groups()
    try:
        moment = datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if zone in _UTC_NAMES:
        return moment.replace(tzinfo=datetime.UTC).timestamp()
    if zone in time.tzname:
        return moment.timestamp()  # naive: this machine's local time
    return None


def parse_log_line(text: str, received_at: float) -> LogRecord:
    """One line as a record: level and PID as the server wrote them, the time from its
    prefix when it can be read (else when it was received)."""
    record = parse_line(text)
    at = log_time(text)
    return LogRecord(
        at=at if at is not None else received_at,
        pid=record.pid,
        backend_type=record.backend_type,
        level=record.level,
        message=record.message,
        text=text,
    )


def current_logfile(data_dir: Path) -> Path | None:
    """The stderr log the logging collector writes now (csvlog/jsonlog as a last resort)."""
    try:
        lines = (data_dir / "current_logfiles").read_text().splitlines()
    except OSError:
        return None
    entries = dict(line.split(" ", 1) for line in lines if " " in line)
    for format_name in ("stderr", "csvlog", "jsonlog"):
        if format_name in entries:
            path = Path(entries[format_name])
            return path if path.is_absolute() else data_dir / path
    return None


def stderr_file(postmaster_pid: int) -> Path | None:
    """The file the postmaster's stderr goes to, if it is a regular file (pg_ctl -l)."""
    try:
        target = os.readlink(f"/proc/{postmaster_pid}/fd/2")
    except OSError:
        return None
    path = Path(target)
    return path if path.is_absolute() and path.is_file() else None


class LogFollower:
    """The new complete lines of the server log, read without blocking."""

    def __init__(self, *, explicit: Path | None, data_dir: Path | None, postmaster_pid: int) -> None:
        self.explicit = explicit
        self.data_dir = data_dir
        self.postmaster_pid = postmaster_pid
        self.path: Path | None = None
        self.how = ""  # where the path came from, for the status line
        self.problem: str | None = None  # why no log is followed
        self._file = None
        self._identity: tuple[int, int] | None = None
        self._partial = b""
        self._leftover: list[str] = []

    def locate(self) -> Path | None:
        """Find the file to follow (again: the collector may have rotated to a new one)."""
        if self.explicit is not None:
            return self._choose(self.explicit, "--log")
        if self.data_dir is not None:
            collected = current_logfile(self.data_dir)
            if collected is not None:
                return self._choose(collected, "current_logfiles")
        found = stderr_file(self.postmaster_pid)
        if found is not None:
            return self._choose(found, "the postmaster's stderr")
        self.problem = "no log file found (use --log FILE)"
        return None

    def _choose(self, path: Path, how: str) -> Path | None:
        rotated = self.path is not None and path != self.path
        if path != self.path:
            self._leftover += self.poll()  # the old file's last lines come first
            self._close()
            self.path, self.how = path, how
        # At attach the past is read as the backlog; a file rotated to is read whole.
        if self._file is None and not self._open(from_end=not rotated):
            return None
        self.problem = None
        return path

    def _open(self, *, from_end: bool) -> bool:
        assert self.path is not None
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - kept open while following
        except OSError as error:
            self.problem = f"cannot read the log {self.path}: {error.strerror}"
            return False
        info = os.fstat(handle.fileno())
        self._file, self._identity, self._partial = handle, (info.st_dev, info.st_ino), b""
        if from_end:
            handle.seek(0, os.SEEK_END)
        return True

    def backlog(self, limit: int = BACKLOG_BYTES) -> list[str]:
        """The last lines written before we attached (the first, cut, line is dropped)."""
        if self._file is None:
            return []
        end = self._file.seek(0, os.SEEK_END)
        start = max(0, end - limit)
        self._file.seek(start)
        data = self._file.read(end - start)
        self._file.seek(end)
        lines = data.split(b"\n")
        if start > 0:
            lines = lines[1:]
        if lines and lines[-1]:
            self._partial = lines[-1]
        return [line.decode(errors="replace") for line in lines[:-1]]

    def poll(self) -> list[str]:
        """Complete lines written since the last call."""
        leftover, self._leftover = self._leftover, []
        if self._file is None:
            return leftover
        if self._replaced():
            self._close()
            if not self._open(from_end=False):
                return leftover
        data = self._file.read(READ_CHUNK)
        if not data:
            return leftover
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > MAX_PARTIAL:  # a runaway line: show it cut rather than hold it
            lines.append(self._partial)
            self._partial = b""
        return leftover + [line.decode(errors="replace") for line in lines]

    def _replaced(self) -> bool:
        """Rotated away, replaced, or truncated under us."""
        try:
            info = os.stat(self.path)  # type: ignore[arg-type]
        except OSError:
            return False  # gone for now: keep reading what we have open
        if (info.st_dev, info.st_ino) != self._identity:
            return True
        return info.st_size < self._file.tell()  # type: ignore[union-attr]

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self._identity = None
        self._partial = b""

    def close(self) -> None:
        self._close()

