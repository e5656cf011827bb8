"""A miniature postmaster for the child programs' tests: a fork server, shared memory, a log
pipe the test reads, and the SIGUSR1s children send.

The test process plays the postmaster: the fork server makes every child the test's own
(CLONE_PARENT, or a double fork with the test as child subreaper), so the test reaps them with
waitpid and reads their true exit status. Closing the death pipe's write end plays the
postmaster's death. Every process, pipe and segment is cleaned up after each test.
"""

from __future__ import annotations

import os
import re
import select
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import psutil

from pgtop.common.shmem import Segment
from pgtop.common.shmem_records import Counters
from pgtop.core.actions import Spawn
from pgtop.core.config import Config
from pgtop.core.vocabulary import ChildKind, ExitStatus, PMSignalReason
from pgtop.runtime.childspec import spawn_request
from pgtop.runtime.forkserver import DeathPipe, ForkServer
from pgtop.runtime.procwatch import exit_status

PROGRAMS = [
    "startup", "checkpointer", "bgwriter", "walwriter", "walreceiver", "autovac_launcher",
    "autovac_worker", "archiver", "stats", "syslogger", "logical_launcher",
]
DEADLINE = 2.0  # seconds any awaited happening may take
LOGICAL_LAUNCHER = "logical replication launcher"


def wait_for(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> object:
    """Poll `condition` until it returns something true; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class LogReader:
    """The read end of the children's log pipe, line by line."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lines: list[str] = []
        self._partial = b""

    def _read_available(self, timeout: float) -> None:
        if select.select([self.fd], [], [], timeout)[0]:
            data = self._partial + os.read(self.fd, 65536)
            *complete, self._partial = data.split(b"\n")
            self.lines += [line.decode() for line in complete]

    def wait_for(self, pattern: str, timeout: float = DEADLINE) -> str:
        """The first line (read so far or later) that matches the regular expression."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if re.search(pattern, line):
                    return line
            left = deadline - time.monotonic()
            assert left > 0, f"no log line matching {pattern!r}; got:\n" + "\n".join(self.lines)
            self._read_available(left)

    def drain(self) -> list[str]:
        self._read_available(0)
        return self.lines


class Postmaster:
    """What a test drives: spawn a child as the supervisor would, signal it, reap it."""

    def __init__(self, datadir: str) -> None:
        self.datadir = datadir
        self.pmsignals: list[float] = []  # when each SIGUSR1 arrived
        self.raised: set[PMSignalReason] = set()
        self._previous_usr1 = signal.signal(signal.SIGUSR1, lambda *_: self.pmsignals.append(time.monotonic()))
        self.death = DeathPipe()
        self.server = ForkServer.start(PROGRAMS, death_pipe=self.death)
        self.segment = Segment.create(max_children=16)
        log_read, self.log_write = os.pipe()
        self.log = LogReader(log_read)
        self.children: set[int] = set()
        self.start_time = time.time()

    # -- spawning ------------------------------------------------------------------------

    def spawn(self, kind: ChildKind, config: Config | None = None, *, bgworker: str | None = None,
              slot: int | None = None, fds: dict[str, int] | None = None) -> int:  # fmt: skip
        """Spawn the program childspec names for `kind`, with the args it would give."""
        supervisor = SimpleNamespace(config=config or Config(), datadir=Path(self.datadir),
                                     start_time=self.start_time, state=None)  # fmt: skip
        program, args = spawn_request(supervisor, Spawn(1, kind, bgworker=bgworker), slot)  # type: ignore[arg-type]
        given = {"log": self.log_write, "shmem": self.segment.fd, **(fds or {})}
        pid = self.server.spawn(program, args, given)
        self.children.add(pid)
        return pid

    # -- observing -----------------------------------------------------------------------

    def wait_title(self, pid: int, title: str) -> None:
        wait_for(lambda: title_of(pid) == title, f"title {title!r} (is {title_of(pid)!r})")

    def wait_exit(self, pid: int, timeout: float = DEADLINE) -> ExitStatus:
        pidfd = os.pidfd_open(pid)
        try:
            assert select.select([pidfd], [], [], timeout)[0], f"PID {pid} did not exit within {timeout} s"
        finally:
            os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        self.children.discard(pid)
        return exit_status(status)

    def wait_catching(self, pid: int, *signals: signal.Signals) -> None:
        """Until the kernel says the child catches these signals: its handlers are in place."""
        wait_for(lambda: set(signals) <= signal_mask(pid, "SigCgt"), f"PID {pid} to catch {signals}")

    def wait_started(self, pid: int, title_start: str) -> None:
        """The program runs: its title is set and it catches SIGHUP (safe to signal now)."""
        wait_for(lambda: title_of(pid).startswith(title_start), f"title {title_start!r} (is {title_of(pid)!r})")
        self.wait_catching(pid, signal.SIGHUP)

    def assert_running(self, pid: int, for_seconds: float = 0.3) -> None:
        """A negative check has to wait a little: the child must not exit meanwhile."""
        pidfd = os.pidfd_open(pid)
        try:
            assert not select.select([pidfd], [], [], for_seconds)[0], f"PID {pid} exited"
        finally:
            os.close(pidfd)

    def counters(self) -> Counters:
        return self.segment.counters()

    def wait_counter(self, condition: Callable[[Counters], object], what: str) -> Counters:
        wait_for(lambda: condition(self.counters()), what)
        return self.counters()

    def wait_pmsignal(self, reason: PMSignalReason, timeout: float = DEADLINE) -> None:
        """Until a child raised `reason` (flag set, SIGUSR1 sent). The flags are read and
        cleared as the postmaster does, so a reason raised twice before a read counts once;
        waiting for it again needs a new raise."""

        def seen() -> bool:
            self.raised |= self.segment.take_pmsignals()
            return reason in self.raised and bool(self.pmsignals)

        wait_for(seen, f"pmsignal {reason.name}", timeout)
        self.raised.discard(reason)

    def take_pmsignals(self) -> set[PMSignalReason]:
        """Every reason raised and not yet waited for."""
        self.raised |= self.segment.take_pmsignals()
        taken, self.raised = self.raised, set()
        return taken

    # -- the end -------------------------------------------------------------------------

    def die(self) -> None:
        """The postmaster's death as children see it: EOF on the death pipe."""
        os.close(self.death.write_fd)
        self.death.write_fd = -1

    def close(self) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(pid, 0)
        self.server.stop()
        self.death.close()
        self.segment.destroy()
        os.close(self.log.fd)
        os.close(self.log_write)
        signal.signal(signal.SIGUSR1, self._previous_usr1)
        for orphan in psutil.Process().children():  # archive_command shells, say
            orphan.kill()
            orphan.wait(DEADLINE)


def title_of(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline()).strip()  # setproctitle pads with blanks
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return ""


def signal_mask(pid: int, field: str) -> set[int]:
    """The kernel's view of a process's signals: /proc/PID/status SigCgt (caught), SigIgn."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                bits = int(line.split()[1], 16)
                return {number for number in range(1, 65) if bits & (1 << (number - 1))}
    return set()


def config(**settings: object) -> Config:
    """A Config with some settings changed (the debug level makes DEBUG lines visible)."""
    return replace(Config(), **settings)
