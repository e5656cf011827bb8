"""End to end: the real `pgtop` in a real terminal (tmux), driven by keys, read off the screen.

Each test starts its own tmux server (`tmux -L <unique socket> -f /dev/null`) so it never
touches anyone else's, and kills it at the end; every process the screen ever showed is
checked to be gone (and killed if not, failing the test).
"""

from __future__ import annotations

import os
import re
import signal
import socket
from pathlib import Path

import pytest
from tmux_screen import (
    Terminal,
    alive,
    banner,
    caption,
    child_kinds,
    child_pid,
    needs_tmux,
    pgtop_command,
    wait_gone,
)

pytestmark = needs_tmux


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
    match = re.search(r"port 5432 is taken: created a new cluster on port (\d+)", screen.splitlines()[0])
    assert match is not None, screen
    port = int(match[1])
    assert port > 5432 and f"{default}  ·  port {port}" in screen.splitlines()[0]
    assert (default / "postmaster.pid").exists()
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # the postmaster listens on the port it said
    terminal.tmux("kill-session", "-t", "main")
    wait_gone(terminal, default)
    assert not (default / "postmaster.pid").exists()
