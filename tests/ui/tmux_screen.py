"""A real terminal for end-to-end tests: a tmux server of the test's own, read with
capture-pane, and what the dashboard's screen says (banner, child rows, dialogs, caption)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")

WIDTH, HEIGHT = 240, 50  # wide enough for whole log messages in the server log pane
DEADLINE = 30.0  # seconds; generous, as the suite may share two cores with much else
CHILD_ROW = re.compile(r"│ (?P<kind>[a-z][a-z ]*?)\s{2,}(?P<pid>\d+)\s+(?P<status>starting|running|stopping|exited)\b")
BANNER = re.compile(r"^█\s+(PM_[A-Z_0-9]+)\s+█", re.MULTILINE)
POSTMASTER_PID = re.compile(r"│ PID\s+(\d+)")
LOG_LINE = re.compile(r"│(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \w+ \[\d+\] [A-Z]+:  .*?)\s*│")


class Terminal:
    """One tmux server of our own with one session, read with capture-pane."""

    def __init__(self, workdir: Path) -> None:
        self.socket = f"pgtop-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.workdir = workdir
        self.seen: set[int] = set()  # every process of pgtop's we saw: on screen, or in ps
        self.log_seen: list[str] = []  # every server log line the screen showed
        self.pgtop_pid: int | None = None
        # Where tmux puts a -L socket; it leaves the file behind after kill-server.
        self.socket_path = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}" / self.socket

    def tmux(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args], check=False, capture_output=True, text=True, timeout=10
        )
        if check and result.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def start(self, command: str, env: dict[str, str] | None = None) -> None:
        """Open the session running `command` (a shell command line)."""
        subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", "new-session", "-d", "-s", "main",
             "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(self.workdir), command],
            check=True, timeout=10, env={**os.environ, **(env or {})},
        )

    def screen(self) -> str:
        text = self.tmux("capture-pane", "-p", "-t", "main", check=False)
        self.seen.update(int(match["pid"]) for match in CHILD_ROW.finditer(text))
        for match in LOG_LINE.finditer(text):
            if match[1] not in self.log_seen:
                self.log_seen.append(match[1])
        return text

    def logged(self, message: str) -> bool:
        """Whether the server log pane showed this message at some point."""
        return any(message in line for line in self.log_seen)

    def remember_processes(self) -> None:
        """pgtop's processes the screen does not show (the fork server)."""
        if self.pgtop_pid is not None and alive(self.pgtop_pid):
            self.seen.update(child.pid for child in psutil.Process(self.pgtop_pid).children(recursive=True))

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "main", *keys)

    def wait_for(self, what: str, condition: Callable[[str], object], timeout: float = DEADLINE) -> str:
        """Read the screen until `condition(screen)` holds; the screen it held on."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}\n--- screen ---\n{screen}")
            time.sleep(0.05)  # polling the screen, with a deadline

    # -- what the dashboard shows ------------------------------------------------------------

    def wait_running(self) -> str:
        """Until PM_RUN with a checkpointer PID; remembers the dashboard's PID."""
        screen = self.wait_for(
            "PM_RUN and a checkpointer PID", lambda s: banner(s) == "PM_RUN" and child_pid(s, "checkpointer") is not None
        )
        match = POSTMASTER_PID.search(screen)
        assert match is not None, screen
        self.pgtop_pid = int(match[1])
        self.remember_processes()
        return screen

    def confirmation(self) -> str:
        """The question of the confirmation dialog on screen."""
        screen = self.wait_for("a confirmation dialog", lambda s: "Cancel" in s and "?" in dialog_text(s))
        return dialog_text(screen)

    def close(self) -> list[int]:
        """Kill the tmux server (a terminal loss: pgtop shuts down); kill and return whatever
        of ours is still running after the deadline."""
        self.tmux("kill-server", check=False)
        self.socket_path.unlink(missing_ok=True)
        ours = [pid for pid in [*self.seen, self.pgtop_pid] if pid is not None]
        deadline = time.monotonic() + DEADLINE
        while any(alive(pid) for pid in ours) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the process table, with a deadline
        leftovers = [pid for pid in ours if alive(pid)]
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return leftovers


def banner(screen: str) -> str | None:
    """The pmState in the banner (top left, in a thick border)."""
    match = BANNER.search(screen)
    return match[1] if match else None


def child_pid(screen: str, kind: str) -> int | None:
    """The PID of the running child of this kind in the children table."""
    for match in CHILD_ROW.finditer(screen):
        if match["kind"] == kind and match["status"] == "running":
            return int(match["pid"])
    return None


def child_kinds(screen: str) -> list[str]:
    return [match["kind"] for match in CHILD_ROW.finditer(screen)]


DIALOG_LINE = re.compile(r"^.{10,}?█  (.*?)\s*█")  # inside the dialog's thick border, off the left edge


def dialog_text(screen: str) -> str:
    """The question of the dialog on screen (it may wrap over several lines)."""
    lines = [DIALOG_LINE.match(line) for line in screen.splitlines()]
    texts = [match[1] for match in lines if match and match[1].strip()]
    return " ".join(text for text in texts if "Cancel" not in text and not set(text) <= set("▔▁ "))


def caption(screen: str) -> str:
    """The caption, on the line just above the footer (a notification may cover its right end)."""
    lines = [line for line in screen.splitlines() if line.strip()]
    return re.split(r"\s{3,}", lines[-2].strip())[0]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(term: Terminal, datadir: Path, timeout: float = DEADLINE) -> None:
    """Until every process of this pgtop is gone, and nothing running names the data directory."""
    pids = [pid for pid in [term.pgtop_pid, *term.seen] if pid is not None]
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid in pids if alive(pid)] + mentioning(datadir)
        if not left:
            return
        assert time.monotonic() < deadline, f"still running: {left}"
        time.sleep(0.05)  # polling the process table, with a deadline


def mentioning(datadir: Path) -> list[int]:
    return [
        proc.pid
        for proc in psutil.process_iter(["cmdline"])
        if str(datadir) in " ".join(proc.info["cmdline"] or ()) and alive(proc.pid)
    ]


def pgtop_command(*args: str) -> str:
    return shlex.join([sys.executable, "-m", "pgtop", *args])
