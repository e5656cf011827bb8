"""The dashboard (`pgtop -D DIR`) in a tmux of its own, read as a user reads it: the screen.

key to screen: select the walwriter row, press the SIGTERM key, and time from the confirming
key press ("y" in the dialog, when the signal is really sent) to the first capture of the
pane that shows a walwriter with a new PID. A capture costs a few milliseconds (a tmux
client process), which bounds the resolution.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

from bench.proctable import auxiliary_children, children_of, poll_until
from bench.servers import free_port

WIDTH, HEIGHT = 200, 50
DIALOG = re.compile(r"Send SIGTERM to (.+?) \(PID (\d+)\)\?")
QUIT_TIMEOUT = 30.0
QUIT_QUESTION = "and quit?"


def walwriter_pid_on_screen(screen: str) -> set[int]:
    return {int(pid) for pid in re.findall(r"│ walwriter\s+(\d+)\s", screen)}


class Dashboard:
    """`pgtop -D DIR` on a new data directory, in a detached tmux session on its own server."""

    def __init__(self) -> None:
        from pgtop.runtime.datadir import init_datadir

        self.work = Path(tempfile.mkdtemp(prefix="pgtop-bench-dashboard-", dir="/tmp"))
        self.datadir = self.work / "data"
        init_datadir(self.datadir, port=free_port())
        with open(self.datadir / "pgtop.yaml", "a") as config:
            config.write(f"unix_socket_directories: '{self.work}'\n")
        self.tmux = ["tmux", "-S", str(self.work / "tmux.sock"), "-f", "/dev/null"]  # goes with the directory
        self.pid = 0
        self.leftover_note: str | None = None
        try:
            command = f"exec {sys.executable} -m pgtop -D {self.datadir}"
            subprocess.run([*self.tmux, "new-session", "-d", "-s", "bench", "-x", str(WIDTH), "-y", str(HEIGHT), command], check=True)
            self.pid = int(self._tmux("display-message", "-p", "-t", "bench", "#{pane_pid}").strip())
            poll_until(lambda: True if walwriter_pid_on_screen(self.screen()) and "PM_RUN" in self.screen() else None, 60, 0.05)
        except BaseException:
            self.close()
            raise

    def _tmux(self, *args: str) -> str:
        return subprocess.run([*self.tmux, *args], check=True, capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "bench")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "bench", *keys)

    def pids(self) -> list[int]:
        return [self.pid]

    def children(self) -> list[int]:
        return children_of(self.pid)

    def _select_walwriter(self) -> int:
        """Open the SIGTERM dialog on the walwriter row; its PID."""
        for move in [None] + ["Down"] * 7 + ["Up"] * 14:
            if move:
                self.keys(move)
            kind, pid = self._open_dialog("t", _dialog)
            if kind == "walwriter":
                return pid
            self.keys("n")
            poll_until(lambda: None if _dialog(self.screen()) else True, 10, 0.01)
        raise RuntimeError("could not select the walwriter row")

    def _open_dialog(self, key: str, parse):  # type: ignore[no-untyped-def]
        """Press `key` until its dialog shows (a key sent while the app is still busy
        mounting can be lost); what `parse` read from the screen."""
        for _ in range(5):
            self.keys(key)
            try:
                return poll_until(lambda: parse(self.screen()), 3, 0.01)
            except TimeoutError:
                continue
        raise RuntimeError(f"the dashboard did not answer the {key!r} key")

    def key_to_screen(self) -> tuple[float, float | None]:
        """One trial: ms from the confirming key press to the new walwriter PID on screen,
        and to the new walwriter in the process table (where the rest of the time goes)."""
        old = self._select_walwriter()
        in_table: list[float] = []
        began = time.perf_counter()
        self.keys("y")

        def new_pid_shown() -> float | None:
            if not in_table and auxiliary_children(self.pid, "pgtop: ").get("walwriter", old) != old:
                in_table.append(time.perf_counter())
            shown = walwriter_pid_on_screen(self.screen())
            return time.perf_counter() if shown - {old} else None

        elapsed = (poll_until(new_pid_shown, 20, 0.001) - began) * 1000
        poll_until(lambda: None if old in walwriter_pid_on_screen(self.screen()) else True, 20, 0.02)
        return elapsed, (in_table[0] - began) * 1000 if in_table else None

    def close(self) -> None:
        """Quit as a user does (Q, then confirm), wait for the process to leave; if it does
        not, end the tmux session, and as a last resort SIGKILL it (and say so)."""
        if self.pid and _alive(self.pid):
            try:
                self._open_dialog("Q", lambda screen: True if QUIT_QUESTION in screen else None)
                self.keys("y")
            except (subprocess.CalledProcessError, RuntimeError):
                pass
            if not _wait_gone(self.pid, QUIT_TIMEOUT):
                self.leftover_note = f"the dashboard (PID {self.pid}) did not exit after Q + y within {QUIT_TIMEOUT:.0f} s"
        subprocess.run([*self.tmux, "kill-server"], capture_output=True, check=False)
        if self.pid and _alive(self.pid) and not _wait_gone(self.pid, 10):
            self.leftover_note = (self.leftover_note or "") + "; still running after tmux kill-server: SIGKILLed"
            for pid in [self.pid, *children_of(self.pid)]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _dialog(screen: str) -> tuple[str, int] | None:
    match = DIALOG.search(screen)
    return (match.group(1), int(match.group(2))) if match else None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    try:
        poll_until(lambda: None if _alive(pid) else True, timeout, 0.05)
    except TimeoutError:
        return False
    return True
