"""Idle CPU: the CPU time processes use while nobody asks them anything, as a percentage of
one core. All groups are measured over the same window, cut into slices that give the
median, min and max.

The time comes from /proc/PID/task/*/schedstat (nanoseconds on the CPU, every thread), not
from psutil's cpu_times, whose clock ticks (10 ms) are coarser than the goal: 0.1% of a core
over 10 s is one tick. psutil's figure over the whole window is kept as a cross-check.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psutil

PidSource = Callable[[], list[int]]


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """pid -> CPU seconds so far of its live threads (not its reaped children's)."""
    seconds = {}
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        total = 0
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as file:
                    total += int(file.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue
        seconds[pid] = total / 1e9
    return seconds


def psutil_cpu_seconds(pids: list[int]) -> dict[int, float]:
    """The same, from psutil's cpu_times (user + system, clock-tick resolution)."""
    seconds = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[pid] = times.user + times.system
    return seconds


def _used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[pid] - before[pid] for pid in after if pid in before)


def idle_cpu(groups: dict[str, PidSource], seconds: float, slices: int = 5) -> tuple[dict[str, list[float]], dict[str, float]]:
    """(name -> per-slice % of one core, name -> psutil's % over the whole window). A process
    that comes or goes within a slice (or the window) is left out of it."""
    samples: dict[str, list[float]] = {name: [] for name in groups}
    coarse_before = {name: psutil_cpu_seconds(source()) for name, source in groups.items()}
    window_start = time.perf_counter()
    step = seconds / slices
    for _ in range(slices):
        before = {name: cpu_seconds(source()) for name, source in groups.items()}
        started = time.perf_counter()
        time.sleep(step)  # the measurement itself: the processes are left alone this long
        wall = time.perf_counter() - started
        for name, source in groups.items():
            samples[name].append(_used(before[name], cpu_seconds(source())) / wall * 100)
    window = time.perf_counter() - window_start
    coarse = {
        name: _used(coarse_before[name], psutil_cpu_seconds(source())) / window * 100
        for name, source in groups.items()
    }
    return samples, coarse
