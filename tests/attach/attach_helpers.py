"""Helpers for the attach tests: a recording viewer, deadlines, and a process that is not
the server's owner."""

from __future__ import annotations

import ctypes
import os
import pickle
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import psutil

from pgtop.attach.proctable import process_start_time
from pgtop.runtime.snapshot import LogRecord, Snapshot

NOBODY = 65534
DEADLINE = 15.0


class Recorder:
    """A viewer that keeps every snapshot and log record, and waits for conditions."""

    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.logs: list[LogRecord] = []
        self._changed = threading.Condition()

    def post_snapshot(self, snapshot: Snapshot) -> None:
        with self._changed:
            self.snapshots.append(snapshot)
            self._changed.notify_all()

    def post_log(self, record: LogRecord) -> None:
        with self._changed:
            self.logs.append(record)
            self._changed.notify_all()

    @property
    def latest(self) -> Snapshot:
        return self.snapshots[-1]

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    state = self.snapshots[-1].state.pm_state.name if self.snapshots else "no snapshot"
                    raise AssertionError(f"{what}: not seen within {timeout} s (last pmState {state})")
                self._changed.wait(remaining)

    def saw_log(self, text: str) -> bool:
        return any(text in record.text for record in self.logs)

    def pm_states(self) -> list[str]:
        """Every pmState the snapshots went through, repeats folded."""
        states: list[str] = []
        for snapshot in self.snapshots:
            name = snapshot.state.pm_state.name
            if not states or states[-1] != name:
                states.append(name)
        return states


def children_by_kind(snapshot: Snapshot) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for child in snapshot.state.children.values():
        found.setdefault(child.bgworker or child.kind.value, []).append(child.pid)
    return found


def ps_children(postmaster_pid: int) -> dict[int, str]:
    """What `ps` says: each living child's PID and title."""
    titles = {}
    for child in psutil.Process(postmaster_pid).children():
        try:
            titles[child.pid] = " ".join(p for p in child.cmdline() if p)
        except psutil.NoSuchProcess:  # gone, or a zombie the postmaster has not reaped yet
            continue
    return {pid: title for pid, title in titles.items() if title}


def pid_of(snapshot: Snapshot, kind: str) -> int:
    pids = children_by_kind(snapshot).get(kind, [])
    assert len(pids) == 1, f"expected one {kind}, got {pids}"
    return pids[0]


def same_process_alive(pid: int, started_at: float) -> bool:
    """Still that process (not a new one that got its PID), and not a zombie waiting for
    init to reap it."""
    try:
        return process_start_time(pid) == started_at and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (ProcessLookupError, psutil.NoSuchProcess):
        return False


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.02)  # polling with a deadline, not a fixed sleep


def as_stranger(work: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Run `work` in a forked child whose real and effective user are `nobody`, so the
    kernel refuses its signals to the server; returns what `work` returned.

    The saved user ID stays root and the filesystem user ID is set back to root, because
    the interpreter's own files (under /root) must stay readable for lazy imports; signal
    permission only looks at the real and effective IDs (kill(2)).
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        try:
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, 0)
            os.setresuid(NOBODY, NOBODY, 0)
            ctypes.CDLL(None, use_errno=True).setfsuid(0)
            outcome: tuple[str, Any] = ("ok", work())
        except BaseException:  # noqa: BLE001 - everything goes back to the test
            outcome = ("error", traceback.format_exc())
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(pickle.dumps(outcome))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    kind, value = pickle.loads(data)
    if kind == "error":
        raise AssertionError(f"in the stranger's process:\n{value}")
    return value
