"""`pgtop --with-standby` in a real terminal: a primary and the standby it streams to, in one
dashboard; rows written on the primary reach the standby, the keys act on the cluster on
screen (promotion), Q stops both, and a killed dashboard leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest
from tmux_screen import Terminal, alive, banner, needs_tmux, pgtop_command, wait_gone

PRIMARY_LINE = re.compile(r"primary\s+(PM_[A-Z_]+)\s+· PID (\d+) · port (\d+) · walsender \d+ · WAL (\S+)")
pytestmark = needs_tmux

STANDBY_LINE = re.compile(
    r"standby\s+(PM_[A-Z_]+)\s+· PID (\d+) · port (\d+) · walreceiver \d+ · flushed (\S+) · replayed (\S+) · replay lag (\d+ B|[\d.]+ \w+)"
)


def strip(screen: str) -> tuple[re.Match[str] | None, re.Match[str] | None]:
    return PRIMARY_LINE.search(screen), STANDBY_LINE.search(screen)


def streaming(screen: str) -> bool:
    """Both up, the standby in hot standby and caught up with the primary's WAL."""
    primary, standby = strip(screen)
    return bool(
        primary and standby and primary[1] == "PM_RUN" and standby[1] == "PM_HOT_STANDBY"
        and standby[6] == "0 B" and standby[5] == primary[4]
    )


def connect(socket_dir: Path, port: int) -> psycopg.Connection:
    return psycopg.connect(host=str(socket_dir), port=port, user="postgres", dbname="postgres", autocommit=True, connect_timeout=10)


@pytest.fixture
def primary(make_cluster):
    return make_cluster()


def start_pair(terminal: Terminal, primary, standby_dir: Path) -> tuple[int, int, int]:
    """The dashboard with its standby, streaming; (dashboard PID, standby postmaster PID, standby port)."""
    terminal.start(pgtop_command("-D", str(primary.datadir), "--with-standby", "--standby-dir", str(standby_dir), "--no-confirm"))
    screen = terminal.wait_for("the standby streaming, caught up", streaming, timeout=60)
    primary_line, standby_line = strip(screen)
    terminal.pgtop_pid = int(primary_line[2])
    standby_pid = int(standby_line[2])
    terminal.seen.add(standby_pid)
    terminal.remember_processes()
    terminal.seen.update(child.pid for child in psutil.Process(standby_pid).children(recursive=True))
    return terminal.pgtop_pid, standby_pid, int(standby_line[3])


def test_rows_reach_the_standby_promotion_from_the_keys_and_q_stops_both(terminal, primary, tmp_path):
    standby_dir = tmp_path / "standby"
    _, standby_pid, standby_port = start_pair(terminal, primary, standby_dir)
    before = strip(terminal.screen())[0][4]

    with connect(primary.socket_dir, primary.port) as conn:
        conn.execute("create table shipped (n int)")
        for n in range(50):
            conn.execute("insert into shipped values (%s)", (n,))
    screen = terminal.wait_for("the standby replayed the new WAL", lambda s: streaming(s) and strip(s)[0][4] != before)
    assert strip(screen)[1][5] == strip(screen)[0][4]  # replayed == the primary's WAL
    with connect(primary.socket_dir, standby_port) as conn:  # the standby's socket is beside the primary's
        assert conn.execute("select count(*) from shipped").fetchone() == (50,)
        assert conn.execute("select pg_is_in_recovery()").fetchone() == (True,)

    terminal.keys("2")
    screen = terminal.wait_for("the standby on screen", lambda s: banner(s) == "PM_HOT_STANDBY" and str(standby_dir) in s)
    assert "▶ standby" in screen
    terminal.keys("p")
    terminal.wait_for("the standby promoted", lambda s: banner(s) == "PM_RUN" and "not a standby any more (promoted)" in s)
    with connect(primary.socket_dir, standby_port) as conn:
        conn.execute("insert into shipped values (51)")
        assert conn.execute("select count(*) from shipped").fetchone() == (51,)

    terminal.keys("Q")
    wait_gone(terminal, primary.datadir, timeout=60)
    assert not alive(standby_pid)
    assert "received fast shutdown request" in (standby_dir / "log" / "pgtop-standby.log").read_text()


def test_a_killed_dashboard_leaves_no_standby_behind(terminal, primary, tmp_path):
    standby_dir = tmp_path / "standby"
    dashboard, _, _ = start_pair(terminal, primary, standby_dir)
    os.kill(dashboard, signal.SIGKILL)  # no chance to stop anything itself
    wait_gone(terminal, standby_dir, timeout=60)
    wait_gone(terminal, primary.datadir, timeout=60)
    log = (standby_dir / "log" / "pgtop-standby.log").read_text()
    assert "received fast shutdown request" in log  # the kernel's death signal: SIGINT


def test_standby_dir_without_with_standby_is_a_usage_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pgtop", "-D", str(tmp_path / "p"), "--standby-dir", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == "pgtop: error: --standby-dir needs --with-standby"
    assert not (tmp_path / "p").exists() and not (tmp_path / "s").exists()
