"""What the soak checks afterwards, and the postmaster's resources it samples along the way:
zombies, orphans, /dev/shm entries, stale socket and lock files, fd count and RSS."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.proctable import children_of, is_zombie

SHM_MARK = "memfd:pgtop.shm"
FLAT_WINDOW = 2  # samples at each end; 1 when there are fewer than 4
RSS_SLACK = 4 * 2**20  # bytes of RSS growth tolerated between the two windows (allocator noise)


@dataclass(frozen=True)
class ResourceSample:
    """The postmaster at a quiet moment (no client connected, every child running)."""

    at: float  # seconds since the soak began
    postmaster: int
    fds: int  # besides the pidfds: one per child, and the stats collector may be throttled
    rss: int
    segments: int  # distinct shared-memory segments held (mmap keeps a dup of the fd: count inodes)
    fd_kinds: tuple[str, ...] = field(default=(), repr=False)  # what those fds are ("socket", "pipe", a path): says what grew


def sample(pid: int, began: float) -> ResourceSample:
    process = psutil.Process(pid)
    # The fewest of a few looks: a status request on the control socket holds an fd briefly.
    looks = [_fds_after(pid, 0.02 * attempt) for attempt in range(3)]
    kinds, segments = min(looks, key=lambda look: len(look[0]))[0], looks[0][1]
    return ResourceSample(time.monotonic() - began, pid, len(kinds), process.memory_info().rss, segments, kinds)


def _fds_after(pid: int, delay: float) -> tuple[tuple[str, ...], int]:
    """(what each open fd that is not a pidfd is, distinct shared-memory segments)."""
    time.sleep(delay)
    kinds, segments = [], set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if SHM_MARK in target:
                segments.add(os.stat(f"/proc/{pid}/fd/{fd}").st_ino)
        except FileNotFoundError:
            continue
        if target != "anon_inode:[pidfd]":
            kinds.append(target.split(":[", 1)[0])  # socket:[4253559] -> socket
    return tuple(sorted(kinds)), len(segments)


def flatness(samples: list[ResourceSample]) -> tuple[bool, str]:
    """Compare the first and last windows of the longest-lived postmaster's quiet samples:
    a leak is when even the fewest fds (the least RSS) at the end exceed the most at the
    start. A one-off dip or spike (a spare child being replaced, a status request's
    connection) is not growth, and a median of two would count half of it."""
    by_postmaster: dict[int, list[ResourceSample]] = {}
    for item in samples:
        by_postmaster.setdefault(item.postmaster, []).append(item)
    series = max(by_postmaster.values(), key=lambda items: items[-1].at - items[0].at, default=[])
    if len(series) < 2:
        return False, f"too few quiet samples of one postmaster to compare ({len(series)})"
    window = FLAT_WINDOW if len(series) >= 2 * FLAT_WINDOW else 1
    start, end = series[:window], series[-window:]
    fds = (max(s.fds for s in start), min(s.fds for s in end))
    rss = (max(s.rss for s in start), min(s.rss for s in end))
    ok = fds[1] <= fds[0] and rss[1] <= rss[0] + RSS_SLACK
    detail = (
        f"postmaster {series[0].postmaster} over {series[-1].at - series[0].at:.0f} s, {len(series)} quiet samples: "
        f"fds besides pidfds {fds[0]:.0f} -> {fds[1]:.0f}, RSS {rss[0] / 2**20:.1f} -> {rss[1] / 2**20:.1f} MiB"
    )
    if fds[1] > fds[0]:
        detail += f"; fds per sample: {'; '.join(_fd_summary(item) for item in series)}"
    return ok, detail


def _fd_summary(item: ResourceSample) -> str:
    counts = Counter(item.fd_kinds)
    return f"{item.at:.0f} s " + ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items()))


def segment_leaks(samples: list[ResourceSample]) -> list[str]:
    return [f"postmaster {s.postmaster} held {s.segments} shared-memory segments at {s.at:.0f} s" for s in samples if s.segments != 1]


def lingering_zombies(postmaster: int, timeout: float = 3.0) -> list[int]:
    """The postmaster's children still zombies after `timeout` (a fresh one is only
    waiting for its reaper)."""
    deadline = time.monotonic() + timeout
    while True:
        zombies = [pid for pid in children_of(postmaster) if is_zombie(pid)]
        if not zombies or time.monotonic() > deadline:
            return zombies
        time.sleep(0.05)  # polling, with a deadline


def identify(pids: list[int]) -> dict[int, float]:
    """pid -> start time, so that a PID the kernel hands to someone else later is not
    mistaken for one of ours."""
    known = {}
    for pid in pids:
        try:
            known[pid] = psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            continue
    return known


def survivors(seen: dict[int, float], timeout: float = 5.0) -> tuple[list[int], list[int]]:
    """(still alive, zombies) among processes that should all be gone by now."""
    deadline = time.monotonic() + timeout
    while True:
        alive, zombies = [], []
        for pid, started in seen.items():
            try:
                process = psutil.Process(pid)
                if process.create_time() != started:
                    continue  # the PID was reused by another process
                status = process.status()
            except psutil.NoSuchProcess:
                continue
            (zombies if status == psutil.STATUS_ZOMBIE else alive).append(pid)
        if not (alive or zombies) or time.monotonic() > deadline:
            return alive, zombies
        time.sleep(0.05)  # polling, with a deadline


def shm_entries() -> set[str]:
    return set(os.listdir("/dev/shm"))


def shm_references(pids: list[int]) -> set[str]:
    """The /dev/shm entries these processes hold open or mapped. pgtop's segment is a memfd,
    which has no entry there, so this should stay empty; /dev/shm is shared with every
    other program on the machine, so only what our processes use can be blamed on them."""
    found: set[str] = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as maps:
                found.update(line.split()[-1] for line in maps if "/dev/shm/" in line)
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("/dev/shm/"):
                    found.add(target)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return {os.path.basename(path) for path in found}


def stale_files(datadir: Path, socket_dir: Path) -> list[str]:
    """Files a stopped cluster must not leave: sockets, their locks, the control socket,
    the pid file."""
    found = [str(path) for path in socket_dir.glob(".s.PGSQL.*")]
    found += [str(datadir / name) for name in ("pgtop.ctl", "postmaster.pid") if (datadir / name).exists()]
    return found
