"""End to end: the real `pgtop` in a real terminal (tmux), driven by keys, read off the screen.

Each test starts its own tmux server (`tmux -L <unique socket> -f /dev/null`) so it never
touches anyone else's, and kills it at the end; every process the screen ever showed is
checked to be gone (and killed if not, failing the test).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")

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


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path)
    yield term
    leftovers = term.close()
    assert not leftovers, f"processes left behind (killed now): {leftovers}"


@pytest.fixture
def datadir(make_cluster) -> Path:
    """A data directory with its own port and socket directory, and a log file collector
    (the dashboard has no stderr: the log file says what happened after the screen went)."""
    cluster = make_cluster(logging_collector=True)
    return cluster.datadir


def server_log(datadir: Path) -> str:
    return "".join(path.read_text() for path in sorted((datadir / "log").glob("*.log")))


# -- the tests -------------------------------------------------------------------------------


def select_child(term: Terminal, kind: str, key: str, signal_name: str) -> int:
    """Move to the child with the arrow keys and press `key`; stop at its confirmation dialog
    (asked about the right child, or cancelled and tried again). Its PID."""
    for _ in range(10):
        screen = term.screen()
        kinds = child_kinds(screen)
        term.keys(*["Up"] * 12, *["Down"] * kinds.index(kind), key)
        question = term.confirmation()
        pid = child_pid(term.screen(), kind)
        if question == f"Send {signal_name} to {kind} (PID {pid})?":
            return pid
        term.keys("Escape")  # the rows moved under the cursor (a row leaving): again
        term.wait_for("the dialog closed", lambda s: "Cancel" not in s)
    raise AssertionError(f"could not select {kind}\n{term.screen()}")


def test_kill_the_checkpointer_with_the_keys_then_quit(terminal, datadir):
    terminal.start(pgtop_command("-D", str(datadir)) + "; echo pgtop exited with status $?; sleep 60")
    terminal.wait_running()
    pgtop = terminal.pgtop_pid

    old = select_child(terminal, "checkpointer", "k", "SIGKILL")
    terminal.keys("Enter")  # Cancel has the focus: Enter sends nothing
    screen = terminal.wait_for("the cancellation", lambda s: caption(s) == "cancelled: nothing sent")
    assert child_pid(screen, "checkpointer") == old

    old = select_child(terminal, "checkpointer", "k", "SIGKILL")
    terminal.keys("Tab", "Enter")
    screen = terminal.wait_for(
        "the crash cycle over: PM_RUN and a new checkpointer",
        lambda s: banner(s) == "PM_RUN" and child_pid(s, "checkpointer") not in (None, old),
    )
    new = child_pid(screen, "checkpointer")
    assert f"{old} → {new}, crash, everyone restarts, back in " in screen, screen
    assert terminal.logged(f"LOG:  checkpointer process (PID {old}) was terminated by signal 9: Killed")
    assert terminal.logged("LOG:  all server processes terminated; reinitializing")
    assert not alive(old)
    terminal.remember_processes()

    os.kill(pgtop, signal.SIGHUP)  # as `kill -HUP` in another terminal: a reload
    screen = terminal.wait_for("the reload", lambda s: terminal.logged("LOG:  received SIGHUP, reloading configuration files"))
    assert banner(screen) == "PM_RUN" and child_pid(screen, "checkpointer") == new and alive(pgtop), screen

    terminal.keys("Q")
    assert terminal.confirmation() == f"Stop the cluster with a fast shutdown (SIGINT to postmaster PID {pgtop}) and quit?"
    terminal.keys("Tab", "Enter")
    terminal.wait_for("pgtop exited", lambda s: "pgtop exited with status 0" in s)
    terminal.tmux("kill-session", "-t", "main")  # the shell that ran it, which names the data directory
    wait_gone(terminal, datadir)
    assert not (datadir / "postmaster.pid").exists()
    log = server_log(datadir)
    assert "received fast shutdown request" in log and "database system is shut down" in log


@pytest.mark.parametrize("shell", [False, True], ids=["pgtop-leads-the-session", "in-an-interactive-shell"])
def test_losing_the_terminal_is_a_fast_shutdown(terminal, datadir, shell):
    """tmux kill-session hangs up the terminal. Without a shell the kernel's SIGHUP reaches
    pgtop (SI_KERNEL); in an interactive shell, the shell relays it with kill() (SI_USER)."""
    command = pgtop_command("-D", str(datadir))
    if shell:
        terminal.start("bash --norc --noprofile -i")
        terminal.wait_for("a shell prompt", lambda s: s.strip())
        terminal.keys(command, "Enter")
    else:
        terminal.start("exec " + command)
    terminal.wait_running()
    terminal.tmux("kill-session", "-t", "main")
    wait_gone(terminal, datadir)
    assert not (datadir / "postmaster.pid").exists()
    log = server_log(datadir)
    assert "received fast shutdown request" in log, log
    assert "database system is shut down" in log
    assert "reloading configuration files" not in log


def test_readonly_sends_nothing_and_both_modes_are_marked(terminal, datadir):
    terminal.start(pgtop_command("-D", str(datadir), "--readonly", "--no-confirm"))
    screen = terminal.wait_running()
    assert "confirmations OFF" in screen.splitlines()[0] and "read-only" in screen.splitlines()[0]
    before = {kind: child_pid(screen, kind) for kind in ("checkpointer", "walwriter", "background writer")}
    for keys in (["Down", "Down", "k"], ["z"], ["r"], ["f"], ["i"]):
        terminal.keys("x")  # a screenshot, so that each answer below is a new caption
        terminal.wait_for("the screenshot", lambda s: caption(s).startswith("screenshot saved to "))
        terminal.keys(*keys)
        terminal.wait_for(f"the read-only answer to {keys[-1]}", lambda s: caption(s) == "read-only: nothing sent")
    screen = terminal.wait_for("nothing happened", lambda s: banner(s) == "PM_RUN")
    assert {kind: child_pid(screen, kind) for kind in before} == before
    assert "received" not in screen and "terminated by signal" not in screen
    assert "Cancel" not in screen


def test_the_default_cluster_takes_the_next_free_port(terminal, tmp_path):
    """`pgtop` with no -D: a cluster is created in the per-user data directory; with 5432
    taken (held here if nobody else has it), the next free port, said on screen."""
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_DATA_HOME": str(home / "data")}
    default = home / "data" / "pgtop" / "default"
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 5432))
    except OSError:
        holder.close()  # someone else has it: taken all the same
    try:
        terminal.start(pgtop_command(), env)
        screen = terminal.wait_running()
    finally:
        holder.close()
    match = re.search(rf"port 5432 is taken: created a cluster in {re.escape(str(default))} on port (\d+)", screen)
    assert match is not None, screen
    port = int(match[1])
    assert port > 5432 and f"port {port}" in screen.splitlines()[0]
    assert (default / "postmaster.pid").exists()
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # the postmaster listens on the port it said
    terminal.tmux("kill-session", "-t", "main")
    wait_gone(terminal, default)
    assert not (default / "postmaster.pid").exists()
