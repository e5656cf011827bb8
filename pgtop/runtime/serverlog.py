"""The server log as the postmaster sees it: its own lines and every child's.

Children write finished lines to the log pipe (their stderr too); the supervisor reads the
pipe, so every line reaches stderr (or the log file the logger child writes) and every
viewer, in the order written and without loss. The postmaster formats its own lines with the
same `format_log_line` the children use.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable

from pgtop.common.logformat import format_log_line
from pgtop.core.actions import Log
from pgtop.core.config import Config
from pgtop.core.vocabulary import LogLevel, log_level_outputs
from pgtop.runtime.snapshot import LogRecord

LogSink = Callable[[LogRecord], None]

# "... [1234] LOG:  message": the pid in brackets and the level before two spaces.
_LINE = re.compile(r"\[(?P<pid>\d+)\][^:]*?\b(?P<level>DEBUG|INFO|NOTICE|WARNING|ERROR|LOG|FATAL|PANIC|DETAIL|HINT|STATEMENT|CONTEXT):  (?P<message>.*)$")
_LEVELS = {"DEBUG": LogLevel.DEBUG1, **{level.name: level for level in LogLevel}}
MAX_PARTIAL = 64 * 1024
RECENT_RECORDS = 1000


def parse_line(text: str) -> LogRecord:
    """A LogRecord from a formatted line (the level and pid are read back from it)."""
    match = _LINE.search(text)
    if match is None:
        return LogRecord(at=time.time(), pid=0, backend_type="", level=LogLevel.LOG, message=text, text=text)
    word = match.group("level")
    level = _LEVELS.get(word, LogLevel.LOG)  # DETAIL/HINT/... lines keep LOG colouring
    return LogRecord(
        at=time.time(),
        pid=int(match.group("pid")),
        backend_type="",
        level=level,
        message=match.group("message"),
        text=text,
    )


class ServerLog:
    """Writes the postmaster's lines, relays the children's, and feeds the viewers.

    With logging_collector on, output goes to the logger's pipe instead of stderr once the
    first logger runs, as PostgreSQL redirects its stderr; lines wait in a backlog while no
    logger reads (a dead logger loses nothing: its successor gets them).
    """

    def __init__(self, config: Config, pid: int, *, stderr_fd: int | None = 2) -> None:
        self.config = config
        self.pid = pid
        self.stderr_fd = stderr_fd
        self.sinks: list[LogSink] = []
        self._partial = b""
        self.collector_fd: int | None = None
        self.backlog = bytearray()
        self.recent: deque[LogRecord] = deque(maxlen=RECENT_RECORDS)  # for late viewers

    def redirect_to_collector(self, fd: int) -> None:
        """SysLogger_Start()'s redirection, done once, when the first logger starts."""
        if self.collector_fd is not None:
            return
        self.write(LogLevel.LOG, "redirecting log output to logging collector process",
                   hint=f'Future log output will appear in directory "{self.config.log_directory}".')
        self.collector_fd = fd

    def flush_backlog(self) -> bool:
        """Write what the logger's pipe takes now; True while something is left."""
        if self.collector_fd is None or not self.backlog:
            return False
        try:
            written = os.write(self.collector_fd, self.backlog)
        except BlockingIOError:
            return True
        except OSError:
            return True  # no logger right now: keep the lines for the next one
        del self.backlog[:written]
        return bool(self.backlog)

    def postmaster(self, action: Log) -> None:
        """One of the postmaster's own lines, if log_min_messages lets it through."""
        self.write(action.level, action.message, action.detail, action.hint)

    def write(
        self,
        level: LogLevel,
        message: str,
        detail: str | None = None,
        hint: str | None = None,
        *,
        context: str | None = None,
    ) -> None:
        if not log_level_outputs(level, LogLevel[self.config.log_min_messages.upper()]):
            return
        now = time.time()
        text = format_log_line(
            self.config.log_line_prefix,
            level,
            message,
            pid=self.pid,
            backend_type="postmaster",
            now=now,
            detail=detail,
            hint=hint,
            context=context,
            timezone=self.config.log_timezone,
        )
        self._output(text)
        self._deliver(LogRecord(now, self.pid, "postmaster", level, message, detail, hint, text))

    def _deliver(self, record: LogRecord) -> None:
        self.recent.append(record)
        for sink in list(self.sinks):
            sink(record)

    def write_startup_failure(self, error: object) -> None:
        """A postmaster that could not start: the LOG lines that explain it, then FATAL."""
        for line in getattr(error, "logs", ()):
            self.postmaster(line)
        self.write(
            LogLevel.FATAL,
            getattr(error, "message", str(error)),
            getattr(error, "detail", None),
            getattr(error, "hint", None),
        )

    def feed_pipe(self, data: bytes) -> None:
        """Bytes read from the children's log pipe: relay each complete line."""
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        if len(self._partial) > MAX_PARTIAL:  # a child that never ends its line
            lines.append(self._partial)
            self._partial = b""
        for raw in lines:
            text = raw.decode("utf-8", "replace")
            self._output(text)
            self._deliver(parse_line(text))

    def _output(self, text: str) -> None:
        payload = (text + "\n").encode("utf-8", "replace")
        if self.collector_fd is not None:
            self.backlog += payload
            self.flush_backlog()
            return
        if self.stderr_fd is None:
            return
        try:
            while payload:
                written = os.write(self.stderr_fd, payload)
                payload = payload[written:]
        except OSError:
            self.stderr_fd = None  # stderr is gone (a closed terminal): keep going
