"""The logger (syslogger), for real: the log pipe into log files, rotation, current_logfiles."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from childtest import Postmaster, config, signal_mask, wait_for

from pgtop.children.syslogger import next_rotation_time
from pgtop.core.vocabulary import ChildKind, ExitStatus


class LogPipe:
    """The server log pipe the postmaster would hand over: the test writes, the logger reads."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    def write(self, text: str) -> None:
        os.write(self.write_fd, text.encode())

    def close_writer(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def close(self) -> None:
        self.close_writer()
        os.close(self.read_fd)


@pytest.fixture
def pipe() -> Iterator[LogPipe]:
    made = LogPipe()
    yield made
    made.close()


def start(postmaster: Postmaster, pipe: LogPipe, **settings: object) -> int:
    fds = {"logpipe": pipe.read_fd, "log": pipe.write_fd}  # the logger must shed the write end
    pid = postmaster.spawn(ChildKind.SYSLOGGER, config(log_min_messages="debug1", **settings), fds=fds)
    postmaster.wait_started(pid, "pgtop: logger")
    return pid


def current_logfile(datadir: str) -> Path:
    # The title is set before the first file is opened: wait for current_logfiles.
    wait_for(lambda: Path(datadir, "current_logfiles").exists(), "current_logfiles")
    text = Path(datadir, "current_logfiles").read_text()
    assert text.startswith("stderr log/") and text.endswith("\n")
    return Path(datadir, text.split(" ", 1)[1].rstrip("\n"))


def file_has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text()


def test_lines_from_the_pipe_go_to_the_log_file_until_every_writer_is_gone(postmaster: Postmaster, pipe: LogPipe) -> None:
    pid = start(postmaster, pipe)
    path = current_logfile(postmaster.datadir)
    assert re.fullmatch(r"postgresql-\d{4}-\d\d-\d\d_\d{6}\.log", path.name)  # the default log_filename
    assert path.parent == Path(postmaster.datadir, "log")
    ignored = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT}
    wait_for(lambda: ignored <= signal_mask(pid, "SigIgn"), f"PID {pid} to ignore {ignored}")
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        os.kill(pid, signum)  # it must live to log the others' last words
    pipe.write("2026-11-22 15:00:00.000 UTC [42] LOG:  database system is shut down\n")
    wait_for(lambda: file_has(path, "[42] LOG:  database system is shut down\n"), "the line in the file")
    pipe.close_writer()  # the postmaster and every child are gone
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)
    assert path.read_text().endswith(f"[{pid}] DEBUG:  logger shutting down\n")


def test_sigusr1_rotates_to_a_new_file(postmaster: Postmaster, pipe: LogPipe) -> None:
    pid = start(postmaster, pipe, log_filename="postgresql-%H%M%S-%f.log")  # %f: Python's, for a test
    first = current_logfile(postmaster.datadir)
    pipe.write("before rotation\n")
    wait_for(lambda: file_has(first, "before rotation"), "the first file")
    os.kill(pid, signal.SIGUSR1)  # pg_ctl logrotate, through the postmaster
    second = wait_for(lambda: (path := current_logfile(postmaster.datadir)) != first and path, "a new file")
    pipe.write("after rotation\n")
    wait_for(lambda: file_has(second, "after rotation"), "the second file")
    assert "after rotation" not in first.read_text()


def test_log_rotation_size_rotates_a_full_file(postmaster: Postmaster, pipe: LogPipe) -> None:
    start(postmaster, pipe, log_filename="postgresql-%H%M%S-%f.log", log_rotation_size=1)
    first = current_logfile(postmaster.datadir)
    pipe.write("x" * 1100 + "\n")
    wait_for(lambda: current_logfile(postmaster.datadir) != first, "a rotation past 1 kB")
    assert first.stat().st_size == 1101


def test_without_a_pipe_it_waits_for_the_postmasters_end(postmaster: Postmaster) -> None:
    pid = postmaster.spawn(ChildKind.SYSLOGGER, config())
    postmaster.log.wait_for(r"WARNING:  logger started without the log pipe")
    postmaster.die()
    assert postmaster.wait_exit(pid) == ExitStatus.exited(0)


def test_rotation_times_are_multiples_of_the_age_in_local_time() -> None:
    at = datetime(2026, 11, 22, 15, 40, 17, tzinfo=UTC).timestamp()
    hourly = config(log_rotation_age=60, log_timezone="UTC")
    assert next_rotation_time(hourly, at) == datetime(2026, 11, 22, 16, 0, tzinfo=UTC).timestamp()
    daily_in_kolkata = config(log_rotation_age=1440, log_timezone="Asia/Kolkata")  # UTC+05:30
    assert next_rotation_time(daily_in_kolkata, at) == datetime(2026, 11, 22, 18, 30, tzinfo=UTC).timestamp()
    assert next_rotation_time(config(log_rotation_age=0), at) is None


def test_a_log_file_that_cannot_be_opened_is_fatal_at_start(postmaster: Postmaster, pipe: LogPipe) -> None:
    Path(postmaster.datadir, "not-a-directory").write_text("")
    fds = {"logpipe": pipe.read_fd, "log": postmaster.log_write}  # the failure must reach someone
    pid = postmaster.spawn(ChildKind.SYSLOGGER, config(log_directory="not-a-directory"), fds=fds)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)
    postmaster.log.wait_for(r'FATAL:  could not open log file "not-a-directory/postgresql-[0-9_-]+\.log": ')
