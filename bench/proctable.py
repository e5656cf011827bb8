"""The process table as a user sees it: a postmaster's children and their titles, from /proc.

Both servers are watched the same way, so their figures compare: the children of every
thread of the postmaster (/proc/PID/task/*/children) and each child's title (argv[0], what
`ps` shows). Reading it costs tens of microseconds, so it can be polled finely.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

AUXILIARY_KINDS = frozenset(
    {
        "checkpointer",
        "background writer",
        "walwriter",
        "autovacuum launcher",
        "stats collector",
        "logical replication launcher",
        "archiver",
        "logger",
        "startup",
    }
)
# pgtop's own helpers among the postmaster's children: neither auxiliary processes nor
# backends (the fork server, and the spare child it keeps forked ahead of need).
PGTOP_HELPERS = ("fork server", "spare process")
POLL_INTERVAL = 0.0002  # seconds between two looks at the process table

T = TypeVar("T")


def children_of(pid: int) -> list[int]:
    """The PIDs of `pid`'s children, whichever of its threads forked them."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as file:
                found.extend(int(child) for child in file.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def title_of(pid: int) -> str | None:
    """What `ps` shows for `pid` (argv[0] as the process set it), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            raw = file.read(256)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw.split(b"\0", 1)[0].decode(errors="replace").strip()


def titled_children(pid: int) -> dict[int, str]:
    """pid -> title of every child of `pid`."""
    titles = {}
    for child in children_of(pid):
        title = title_of(child)
        if title is not None:
            titles[child] = title
    return titles


def auxiliary_children(pid: int, prefix: str) -> dict[str, int]:
    """kind -> pid of the postmaster's auxiliary processes ("pgtop: walwriter" -> walwriter)."""
    kinds = {}
    for child, title in titled_children(pid).items():
        if title.startswith(prefix):
            kind = title[len(prefix) :].strip()
            if kind in AUXILIARY_KINDS:
                kinds[kind] = child
    return kinds


def is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def poll_until(check: Callable[[], T | None], timeout: float, interval: float = POLL_INTERVAL) -> T:
    """Call `check` until it returns something other than None; its value. Raises TimeoutError."""
    deadline = time.perf_counter() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.perf_counter() > deadline:
            raise TimeoutError(f"not within {timeout} s")
        time.sleep(interval)


def wait_for_death(pidfd: int, timeout: float) -> float:
    """Block on a pidfd until its process has exited; the perf_counter time it woke."""
    readable, _, _ = select.select([pidfd], [], [], timeout)
    woke = time.perf_counter()
    if not readable:
        raise TimeoutError(f"the process did not exit within {timeout} s")
    return woke
