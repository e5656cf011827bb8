"""Respawn and crash-cycle timings, measured the same way on both servers.

clean-exit respawn: kill -TERM of the walwriter, until a process titled "<prefix>walwriter"
    with a new PID is among the postmaster's children (its code has run far enough to set
    its title). Polled every 0.2 ms.
crash cycle: kill -9 of the walwriter, until "database system is ready to accept
    connections" has been logged and every expected auxiliary process is back with a new PID.
death-to-noticed: in the same kill -9 trials, the bench holds a pidfd on the victim and
    blocks on it in the main thread, so it wakes the moment the process is dead; a reader
    thread (SCHED_FIFO, servers.LogTail) stamps the postmaster's "(PID n) was terminated by
    signal 9" line when it arrives on the pipe. The difference is the postmaster's time from the death to handling it, plus
    the pipe write and the reader's wakeup (an upper bound). The %m timestamp of that line
    minus the wall-clock time of the kill is kept too, at its millisecond resolution.
"""

from __future__ import annotations

import datetime
import os
import signal
import time
from dataclasses import dataclass, field

from bench.proctable import poll_until, wait_for_death
from bench.servers import READY, Server

VICTIM = "walwriter"
SETTLE = 0.05  # seconds left between trials so the previous one's stragglers are done


def clean_exit_respawn(server: Server, kind: str = VICTIM) -> tuple[float, float]:
    """One trial: (ms from kill -TERM to the new process running, ms of that until the old
    one was dead: its own exit, before the postmaster can do anything)."""
    old = server.wait_settled()[kind]
    pidfd = os.pidfd_open(old)
    try:
        began = time.perf_counter()
        os.kill(old, signal.SIGTERM)
        died = wait_for_death(pidfd, 10)  # no new one can appear before this anyway
    finally:
        os.close(pidfd)

    def replaced() -> float | None:
        pid = server.aux().get(kind)
        return time.perf_counter() if pid is not None and pid != old else None

    elapsed = (poll_until(replaced, 10) - began) * 1000
    time.sleep(SETTLE)
    return elapsed, (died - began) * 1000


@dataclass
class CrashTimes:
    """Per-trial milliseconds of the kill -9 trials."""

    cycle: list[float] = field(default_factory=list)
    noticed: list[float] = field(default_factory=list)
    stamped: list[float] = field(default_factory=list)
    syncing: list[float] = field(default_factory=list)  # "was interrupted" → "automatic recovery in progress"

    def add(self, server: Server, kind: str = VICTIM, timeout: float = 30.0) -> None:
        """One kill -9 trial of `kind`."""
        assert server.log is not None
        mark = server.log.mark()
        cycle, noticed, stamped = crash_cycle(server, server.wait_settled()[kind], timeout)
        interrupted = server.log.find("database system was interrupted", mark)
        recovering = server.log.find("automatic recovery in progress", mark)
        if interrupted and recovering:
            self.syncing.append((recovering[0] - interrupted[0]) * 1000)
        self.cycle.append(cycle)
        self.noticed.append(noticed)
        self.stamped.append(stamped)
        time.sleep(SETTLE)


def crash_cycle(server: Server, victim: int, timeout: float = 30.0) -> tuple[float, float, float]:
    """kill -9 `victim`: (ms to ready with every child back, ms death-to-noticed by pidfd and
    pipe, ms kill-to-noticed by the log line's %m timestamp)."""
    assert server.log is not None
    old = set(server.aux().values())
    mark = server.log.mark()
    pidfd = os.pidfd_open(victim)
    try:
        killed_wall = time.time()
        began = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        died = wait_for_death(pidfd, 10)
    finally:
        os.close(pidfd)

    def all_back() -> float | None:
        aux = server.aux()
        fresh = server.expected_aux <= aux.keys() and not old & set(aux.values())
        return time.perf_counter() if fresh else None

    # The death's log line comes first, before any child is started again, so it is waited
    # for first: the log's reader thread stamps a line only once it holds the GIL, and the
    # process-table polling below would hold it most of the time.
    noticed, line = server.log.wait_for(rf"\(PID {victim}\) was terminated by signal 9", after=mark, timeout=timeout)
    children_back = poll_until(all_back, timeout, 0.0005)
    ready, _ = server.log.wait_for(READY, after=mark, timeout=timeout)
    cycle = (max(children_back, ready) - began) * 1000
    return cycle, (noticed - died) * 1000, (log_time(line) - killed_wall) * 1000


def log_time(line: str) -> float:
    """The epoch seconds of a line's %m prefix ("2024-05-01 12:00:00.123 UTC")."""
    stamp = " ".join(line.split(" ", 2)[:2])
    moment = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=datetime.UTC)
    return moment.timestamp()
