"""`pgtop demo NAME` on screen: the presenter's controls (pause, resume, one step, restart),
the last-key overlay and the block-letter state banner, driven by Textual's pilot in a
process of its own (presenter_driver.py); and the real thing in a real terminal (tmux)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support.processes import living_in

HERE = Path(__file__).parent
TIMEOUT = 30.0


def test_pause_resume_step_restart_and_the_key_overlay(tmp_path):
    result = subprocess.run(
        [sys.executable, str(HERE / "presenter_driver.py"), str(HERE / "presenter.yaml")],
        capture_output=True, text=True, check=False, timeout=120, cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert result.stdout.strip() == "presenter checks held"
    assert not living_in(tmp_path)
    assert not list(tmp_path.glob("pgtop-demo-*"))


class Tmux:
    """A real terminal: a detached tmux session of its own server socket."""

    def __init__(self, socket: Path, command: list[str], cwd: Path) -> None:
        self.base = ["tmux", "-S", str(socket)]
        env = f"-u COLUMNS -u LINES TMPDIR={cwd}"  # under pytest they say 80x24: let the pane's size count
        subprocess.run([*self.base, "new-session", "-d", "-x", "160", "-y", "48", "-c", str(cwd), f"env {env} {' '.join(command)}"], check=True)

    def screen(self) -> str:
        result = subprocess.run([*self.base, "capture-pane", "-p"], capture_output=True, text=True, check=False)
        return result.stdout

    def wait_for(self, what: str, condition) -> str:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            screen = self.screen()
            if condition(screen):
                return screen
            time.sleep(0.1)  # polling the terminal, with a deadline
        raise AssertionError(f"not within {TIMEOUT} s: {what}; the screen:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", *keys], check=True)

    def alive(self) -> bool:
        return subprocess.run([*self.base, "has-session"], capture_output=True, check=False).returncode == 0

    def pane_pid(self) -> int:
        result = subprocess.run([*self.base, "display", "-p", "#{pane_pid}"], capture_output=True, text=True, check=True)
        return int(result.stdout)

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, check=False)


def _still_there(pid: int, directory: Path) -> str:
    """What keeps a pane open: the demo itself, or processes holding its terminal."""
    described = []
    for found in living_in(directory):
        try:
            process = psutil.Process(found)
            described.append(f"{found} {process.status()} {' '.join(process.cmdline())[:80]}")
        except psutil.Error:
            continue
    return f"demo {pid} alive: {psutil.pid_exists(pid)}; living in the test's directory: {described}"


def _ends(pid: int) -> bool:
    """Wait for the process to end; if it does not, kill it (the test then fails)."""
    try:
        psutil.Process(pid).wait(TIMEOUT)
    except psutil.NoSuchProcess:
        return True
    except psutil.TimeoutExpired:
        psutil.Process(pid).kill()
        return False
    return True


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real terminal")
def test_pgtop_demo_in_a_real_terminal(tmp_path):
    tmux = Tmux(tmp_path / "tmux.sock", [sys.executable, "-m", "pgtop.demo", "tour"], tmp_path)
    demo = tmux.pane_pid()
    try:
        banner = "█▀▀▄ █▄ ▄█      █▀▀▄ █  █ █▄ █"  # PM_RUN, readable from the back of the room
        screen = tmux.wait_for("the tour waits for the presenter", lambda s: "paused · space: resume" in s and banner in s)
        assert "Startup exited 0, so the reaper moves to PM_RUN" in screen
        tmux.keys("Space")
        screen = tmux.wait_for("the next pause", lambda s: "logical replication launcher: a background worker" in s and "paused" in s)
        assert "space  Pause or resume the script" in screen  # the overlay: the last key and its action
        tmux.keys("Q")
        deadline = time.monotonic() + TIMEOUT
        while tmux.alive() and time.monotonic() < deadline:
            time.sleep(0.1)  # waiting for the demo to stop its cluster and leave
        assert not tmux.alive(), f"Q should stop the cluster and leave; {_still_there(demo, tmp_path)}; the screen:\n{tmux.screen()}"
    finally:
        tmux.kill()
        ended = _ends(demo)
    assert ended and not living_in(tmp_path)
    assert not list(tmp_path.glob("pgtop-demo-*"))


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real terminal")
def test_losing_the_terminal_stops_the_demo_and_its_cluster(tmp_path):
    tmux = Tmux(tmp_path / "tmux.sock", [sys.executable, "-m", "pgtop.demo", "tour"], tmp_path)
    demo = tmux.pane_pid()
    try:
        tmux.wait_for("the tour's first pause", lambda s: "paused · space: resume" in s)
    finally:
        tmux.kill()  # the window closes: the terminal hangs up
    assert _ends(demo), "the demo outlived its terminal"
    assert not living_in(tmp_path)
    left = [str(path.relative_to(tmp_path)) for path in tmp_path.glob("pgtop-demo-*/**/*")]
    assert not list(tmp_path.glob("pgtop-demo-*")), f"the throwaway cluster is still there: {left[:20]}"
