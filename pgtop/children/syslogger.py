"""The system logger (syslogger.c): with logging_collector on, it reads the server log pipe
and writes every line into log_directory/log_filename, rotating the file.

The postmaster hands it the pipe's read end as fd "logpipe". It closes its own copy of the
write end (fd "log", and stdout/stderr, which point at the pipe) so that EOF comes once every
writer is gone; its own messages go straight into the current file. The file name is
log_filename formatted by strftime in log_timezone, at the scheduled time for a time-based
rotation and at the current time otherwise. Rotation: every log_rotation_age minutes (aligned
to multiples of it in local time), when the file reaches log_rotation_size kB, and on SIGUSR1
(pg_ctl logrotate, pg_rotate_logfile). `current_logfiles` in the data directory names the
file in use ("stderr log/postgresql-....log").

Signals, as PostgreSQL 14: SIGTERM, SIGINT and SIGQUIT ignored (it must log the others'
last words); SIGHUP reload (a new directory or name pattern rotates at once); SIGUSR1
rotate. It exits 0 at EOF on the pipe. PostgreSQL's logger ignores postmaster death and waits
for EOF; pgtop's gives the writers LAST_WORDS_GRACE after it, so it never lingers.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pgtop.children.context import ChildContext, WaitEvent
from pgtop.children.interrupt import config_of, datadir_of, ignore_unused, reload_config
from pgtop.core.config import Config
from pgtop.core.vocabulary import LogLevel

FD_LOGPIPE = "logpipe"
LOG_METAINFO_DATAFILE = "current_logfiles"
READ_SIZE = 65536
LAST_WORDS_GRACE = 0.1  # seconds of reading after the postmaster died


def log_zone(name: str) -> tzinfo:
    """log_timezone (already validated by the configuration; UTC if it is not known here)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def logfile_name(config: Config, at: float) -> str:
    """logfile_getname(): log_directory/strftime(log_filename), as current_logfiles shows it."""
    moment = datetime.fromtimestamp(at, log_zone(config.log_timezone))
    return os.path.join(config.log_directory, moment.strftime(config.log_filename))


def next_rotation_time(config: Config, now: float) -> float | None:
    """set_next_rotation_time(): the next multiple of log_rotation_age in local time."""
    if config.log_rotation_age <= 0:
        return None
    interval = config.log_rotation_age * 60
    offset = datetime.fromtimestamp(now, log_zone(config.log_timezone)).utcoffset()
    shift = int(offset.total_seconds()) if offset is not None else 0
    local = int(now) + shift
    return float(local - local % interval + interval - shift)


class LogFiles:
    """The current log file and current_logfiles."""

    def __init__(self, datadir: str) -> None:
        self.datadir = datadir
        self.fd = -1
        self.name = ""
        self.size = 0

    def rotate(self, config: Config, at: float) -> None:
        """logfile_rotate(): open the file for `at` (appending), close the old one."""
        name = logfile_name(config, at)
        path = os.path.join(self.datadir, name)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.name, self.size = fd, name, os.fstat(fd).st_size
        self.write_metainfo()

    def write_metainfo(self) -> None:
        """update_metainfo_datafile(): through a temporary file, so readers see whole lines."""
        temp = os.path.join(self.datadir, LOG_METAINFO_DATAFILE + ".tmp")
        with open(temp, "w", encoding="utf-8") as file:
            file.write(f"stderr {self.name}\n")
        os.replace(temp, os.path.join(self.datadir, LOG_METAINFO_DATAFILE))

    def write(self, data: bytes) -> None:
        while data:
            written = os.write(self.fd, data)
            self.size += written
            data = data[written:]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Logger:
    """SysLoggerMain's loop."""

    def __init__(self, ctx: ChildContext, pipe: int) -> None:
        self.ctx = ctx
        self.pipe = pipe
        self.files = LogFiles(datadir_of(ctx))
        self.partial = b""  # the start of a line cut by a read: kept so no line spans two files
        self.next_rotation: float | None = None
        self.rotation_disabled = False

    def open_first_file(self) -> bool:
        """The first log file; a failure is FATAL (and still reaches the pipe's reader)."""
        config = config_of(self.ctx)
        try:
            self.files.rotate(config, time.time())
        except OSError as error:
            name = logfile_name(config, time.time())
            self.ctx.log(LogLevel.FATAL, f'could not open log file "{name}": {error.strerror}')
            return False
        self.ctx.log_fd = self.files.fd  # our own messages go straight into the file
        return True

    def run(self) -> int:
        config = config_of(self.ctx)
        self.next_rotation = next_rotation_time(config, time.time())
        give_up_at: float | None = None
        while True:
            events = self.ctx.wait(self.timeout(give_up_at), readable=[self.pipe])
            if WaitEvent.SOCKET_READABLE in events and not self.read_pipe():
                break  # EOF: every writer is gone
            if signal.SIGHUP in events:
                self.reload(config)
                config = config_of(self.ctx)
            self.maybe_rotate(config, force=signal.SIGUSR1 in events)
            if WaitEvent.POSTMASTER_DEATH in events and give_up_at is None:
                give_up_at = time.monotonic() + LAST_WORDS_GRACE
            if give_up_at is not None and time.monotonic() >= give_up_at:
                break
        self.files.write(self.partial)
        self.ctx.log(LogLevel.DEBUG1, "logger shutting down")
        self.files.close()
        return 0

    def timeout(self, give_up_at: float | None) -> float | None:
        waits = []
        if self.next_rotation is not None:
            waits.append(self.next_rotation - time.time())  # wall clock: rotation is by the clock
        if give_up_at is not None:
            waits.append(give_up_at - time.monotonic())
        return max(0.0, min(waits)) if waits else None

    def rotate(self, config: Config, at: float) -> None:
        """logfile_rotate(); if the new file cannot be opened, keep the old one and stop
        rotating automatically until the next reload, as PostgreSQL does."""
        try:
            self.files.rotate(config, at)
        except OSError as error:
            self.ctx.log(LogLevel.LOG, f'could not open log file "{logfile_name(config, at)}": {error.strerror}')
            self.ctx.log(LogLevel.LOG, "disabling automatic rotation (use SIGHUP to re-enable)")
            self.rotation_disabled = True
            return
        self.ctx.log_fd = self.files.fd

    def read_pipe(self) -> bool:
        """Copy what the pipe holds into the file; False at EOF."""
        try:
            data = os.read(self.pipe, READ_SIZE)
        except BlockingIOError:
            return True
        if not data:
            return False
        data = self.partial + data
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        self.files.write(data[:cut])
        return True

    def reload(self, old: Config) -> None:
        new = reload_config(self.ctx)
        moved = (new.log_directory, new.log_filename) != (old.log_directory, old.log_filename)
        if moved or self.rotation_disabled:
            self.rotation_disabled = False
            self.rotate(new, time.time())
        if new.log_rotation_age != old.log_rotation_age:
            self.next_rotation = next_rotation_time(new, time.time())

    def maybe_rotate(self, config: Config, *, force: bool) -> None:
        """Time-based, size-based or requested rotation (logfile_rotate's three reasons)."""
        now = time.time()
        automatic = not self.rotation_disabled
        if automatic and self.next_rotation is not None and now >= self.next_rotation:
            at = self.next_rotation
            self.next_rotation = next_rotation_time(config, now)
        elif force or (automatic and 0 < config.log_rotation_size * 1024 <= self.files.size):
            at = now
        else:
            return
        self.rotate(config, at)


def detach_from_log_pipe(ctx: ChildContext, pipe: int) -> None:
    """Close our copies of the pipe's write end: fd "log", and stdout/stderr (dup'ed to it)."""
    log_fd = ctx.fds.get("log")
    if log_fd is not None and log_fd not in (pipe, 0, 1, 2):
        os.close(log_fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def idle_without_pipe(ctx: ChildContext) -> int:
    """No pipe handed over (the postmaster reads the log itself): nothing to collect, so
    wait for the postmaster's end rather than exit and be restarted in a loop."""
    ctx.log(LogLevel.WARNING, "logger started without the log pipe; the postmaster writes the log itself")
    while WaitEvent.POSTMASTER_DEATH not in (events := ctx.wait(None)):
        if signal.SIGHUP in events:
            reload_config(ctx)
    return 0


def main(ctx: ChildContext) -> int:
    ctx.ignore(signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
    ctx.handle(signal.SIGHUP, signal.SIGUSR1)
    ignore_unused(ctx)
    pipe = ctx.fds.get(FD_LOGPIPE)
    if pipe is None:
        return idle_without_pipe(ctx)
    os.set_blocking(pipe, False)
    logger = Logger(ctx, pipe)
    if not logger.open_first_file():
        return 1
    detach_from_log_pipe(ctx, pipe)
    return logger.run()
