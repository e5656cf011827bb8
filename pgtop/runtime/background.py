"""A `pgtop run` in a process of its own, owned by another pgtop (`pgtop serve`, the dashboard
with its standby, a demo's primary): started, waited for, stopped, and never left behind.

The owner cannot always stop it (a SIGKILL gives no chance), so the child is told, through
the environment, to arm PR_SET_PDEATHSIG itself: when the owner's process goes, the kernel
sends it SIGINT, a fast shutdown. Arming it in the child's own main thread, rather than in a
`preexec_fn`, keeps the fork safe in an owner that already runs threads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from pgtop.runtime.control import request

STOP_WITH_PARENT = "PGTOP_STOP_WITH_PARENT"  # the owner's PID, read (and removed) by `pgtop run`
READY_STATES = ("PM_RUN", "PM_HOT_STANDBY")
STOP_STEPS = ((signal.SIGINT, 60.0), (signal.SIGQUIT, 15.0), (signal.SIGKILL, 5.0))


def arm_stop_with_parent() -> bool:
    """In `pgtop run`, before anything starts: if an owner asked for it, a fast shutdown when
    the owner dies. False when the owner is already gone (then do not start at all)."""
    from pgtop.runtime.forkserver import set_parent_death_signal

    owner = os.environ.pop(STOP_WITH_PARENT, None)
    if owner is None:
        return True
    set_parent_death_signal(signal.SIGINT)
    return str(os.getppid()) == owner


class BackgroundCluster:
    """`pgtop run -D DIR`, its output in a log file (as `pg_ctl -l` keeps it)."""

    def __init__(self, datadir: Path, log_path: Path) -> None:
        self.datadir = datadir
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (from a thread that lives as long as this process: the death signal is
        tied to the thread that forked). Raises OSError."""
        self.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pgtop", "run", "-D", str(self.datadir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a Ctrl+C meant for the owner is the owner's to pass on
                env={**os.environ, STOP_WITH_PARENT: str(os.getpid())},
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> str | None:
        """None once it is in PM_RUN or PM_HOT_STANDBY; else why not, in one line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = self.process.returncode if self.process is not None else None
                return f"the postmaster exited with code {code}: {self.last_lines()}"
            if self.pm_state() in READY_STATES:
                return None
            time.sleep(0.1)  # polling the control socket, with a deadline
        return f"the postmaster did not reach PM_RUN within {timeout:g} s: {self.last_lines()}"

    def pm_state(self) -> str | None:
        try:
            status = request(self.datadir, {"op": "status"}, timeout=1.0).get("status") or {}
        except (OSError, ValueError):
            return None
        return status.get("pm_state")

    def last_lines(self, count: int = 3) -> str:
        try:
            with open(self.log_path, errors="replace") as log:
                return " / ".join(line.strip() for line in deque(log, count))
        except OSError:
            return "(no log)"

    def stop(self) -> int | None:
        """Fast shutdown, then immediate if it hangs, then SIGKILL; the exit code."""
        process = self.process
        if process is None:
            return None
        for sig, patience in STOP_STEPS:
            if process.poll() is not None:
                break
            process.send_signal(sig)
            try:
                process.wait(patience)
            except subprocess.TimeoutExpired:
                continue
        return process.poll()
