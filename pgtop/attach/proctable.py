"""The postmaster's children in the process table, their deaths by pidfd, their load.

The children come from /proc/<pid>/task/<pid>/children (one small read; the postmaster is
single-threaded), with psutil's full scan as the fallback. Each child gets a pidfd, which
becomes readable the moment it exits, whoever its parent is: deaths wake the watcher at
once and never need polling. Start times are the kernel's (10 ms resolution).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from pgtop.attach.model import SeenProcess
from pgtop.attach.titles import parse_title, title_text
from pgtop.runtime.snapshot import ProcessStats

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The wall-clock time of boot, measured once so that a process's start time reads the same
# every time (the start tick counts on CLOCK_BOOTTIME).
BOOT_EPOCH = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


def process_start_time(pid: int) -> float:
    """When a process started, in wall-clock seconds, to the kernel's tick (10 ms).

    psutil adds the start tick to the boot time in whole seconds (btime), which can put
    a start up to a second early; measuring back from CLOCK_BOOTTIME (the clock the start
    tick counts on) keeps "back in 12 ms" and "started before the crash" true.
    Raises ProcessLookupError if the process is gone.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    ticks = int(data[data.rindex(b")") + 2 :].split()[19])  # field 22, starttime
    return BOOT_EPOCH + ticks / CLOCK_TICKS


@dataclass(slots=True)
class _Known:
    process: psutil.Process
    started_at: float
    pidfd: int | None


class ProcessTable:
    """One postmaster's children, each with a pidfd for its death."""

    def __init__(self, postmaster_pid: int, on_unwatch: Callable[[int], object] = lambda pidfd: None) -> None:
        self.postmaster_pid = postmaster_pid
        self.postmaster = psutil.Process(postmaster_pid)
        self.postmaster_pidfd: int | None = os.pidfd_open(postmaster_pid)
        self._on_unwatch = on_unwatch  # told before a pidfd is closed (and its number reused)
        self._known: dict[int, _Known] = {}

    def pidfds(self) -> dict[int, int]:
        """pidfd -> pid of every child being watched."""
        return {known.pidfd: pid for pid, known in self._known.items() if known.pidfd is not None}

    def forget(self, pid: int) -> None:
        """A child is gone: close its pidfd (its PID may be reused from now on)."""
        known = self._known.pop(pid, None)
        if known is not None and known.pidfd is not None:
            self._on_unwatch(known.pidfd)
            os.close(known.pidfd)

    def scan(self) -> dict[int, SeenProcess]:
        """The children alive now, with their current titles."""
        seen: dict[int, SeenProcess] = {}
        for pid in self._child_pids():
            known = self._known.get(pid) or self._learn(pid)
            if known is None:
                continue
            try:
                title = title_text(known.process.cmdline())
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                self.forget(pid)
                continue
            except psutil.AccessDenied:
                title = ""
            if not title:
                continue  # exiting right now (its memory is gone): its pidfd will say so
            seen[pid] = SeenProcess(pid, known.started_at, parse_title(title))
        for gone in set(self._known) - set(seen):
            if self._known[gone].pidfd is None:
                self.forget(gone)
        return seen

    def _child_pids(self) -> list[int]:
        path = f"/proc/{self.postmaster_pid}/task/{self.postmaster_pid}/children"
        try:
            with open(path) as children:
                return [int(pid) for pid in children.read().split()]
        except OSError:
            try:
                return [child.pid for child in self.postmaster.children()]
            except psutil.Error:
                return []

    def _learn(self, pid: int) -> _Known | None:
        try:
            process = psutil.Process(pid)
            if process.ppid() != self.postmaster_pid or process.status() == psutil.STATUS_ZOMBIE:
                return None
            started_at = process_start_time(pid)
        except (psutil.Error, ProcessLookupError):
            return None
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        except OSError:
            pidfd = None  # no pidfd: the next scan notices the death instead
        known = self._known[pid] = _Known(process, started_at, pidfd)
        return known

    def postmaster_alive(self) -> bool:
        try:
            return self.postmaster.is_running() and self.postmaster.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def stats(self) -> dict[int, ProcessStats]:
        """CPU% since the last call and RSS of the postmaster and every child."""
        found: dict[int, ProcessStats] = {}
        processes = [(self.postmaster_pid, self.postmaster)] + [(pid, k.process) for pid, k in self._known.items()]
        for pid, process in processes:
            try:
                with process.oneshot():
                    found[pid] = ProcessStats(process.cpu_percent(None), process.memory_info().rss)
            except psutil.Error:
                continue
        return found

    def close(self) -> None:
        for pid in list(self._known):
            self.forget(pid)
        if self.postmaster_pidfd is not None:
            self._on_unwatch(self.postmaster_pidfd)
            os.close(self.postmaster_pidfd)
            self.postmaster_pidfd = None
