"""`pgtop serve --attach` in a real browser, over a real PostgreSQL 15 run as `postgres`:
every tab runs an attach viewer of its own, which shows the server's pmState as inferred and
its postmaster's PID; a viewer ends on SIGTERM and with serve; serve never stops a server it
did not make, and removes the throwaway cluster of `--spawn`."""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
from pathlib import Path

import psutil
import pytest
from test_serve import CHROMIUM, Browser, Serve, assert_ends, open_tab_viewer

from pgtop.attach.spawn import SERVER_USER, ThrowawayCluster, missing_binaries

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium package (apt-get install -y chromium): not installed"
)
pytest.importorskip("textual_serve", reason="needs textual-serve (pip install textual-serve)")

VIEWER = "pgtop.attach.command"  # in the command line of a tab's attach viewer
INFERRED = ["inferred", "from the log, ps and postmaster.pid"]


def _skip_without_postgresql() -> None:
    missing = missing_binaries()
    if missing:
        pytest.skip(f"PostgreSQL is not installed: {', '.join(missing)} not found")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"running as root but there is no `{SERVER_USER}` user to run the server as")


@pytest.fixture
def real_server():
    """A running PostgreSQL on a Unix socket of its own; stopped and deleted afterwards."""
    _skip_without_postgresql()
    cluster = ThrowawayCluster(settings={"listen_addresses": ""})
    try:
        cluster.initdb()
        cluster.start()
        yield cluster
    finally:
        cluster.close()
    assert not cluster.root.exists()


@pytest.fixture
def browser(tmp_path):
    started = Browser(tmp_path / "profile")
    yield started
    started.close()


def _argument(process: psutil.Process, flag: str) -> str:
    cmdline = process.cmdline()
    return cmdline[cmdline.index(flag) + 1]


def test_every_tab_runs_an_attach_viewer_that_ends_on_sigterm_and_with_serve(real_server, browser):
    postmaster = real_server.postmaster_pid()
    serve = Serve(real_server.data_dir, "--attach")
    try:
        first = open_tab_viewer(serve, browser, ["PM_RUN", str(postmaster), *INFERRED], VIEWER)
        second = open_tab_viewer(serve, browser, ["PM_RUN", str(postmaster), *INFERRED], VIEWER)
        for viewer in (first, second):
            assert viewer.ppid() == serve.process.pid, "serve's own child, not a shell's"
            assert _argument(viewer, "-D") == str(real_server.data_dir)
        first.send_signal(signal.SIGTERM)
        assert_ends([first], "an attach viewer sent SIGTERM")
        assert second.is_running(), "the other tab's viewer goes on"
        serve.process.kill()  # SIGKILL to serve alone
        assert_ends([second], "the attach viewer of a killed serve")
    finally:
        serve.stop()
    assert real_server.postmaster_pid() == postmaster, "serve must not stop a server it did not start"


def test_spawn_makes_one_throwaway_cluster_for_every_tab_and_removes_it(browser):
    _skip_without_postgresql()
    serve = Serve(None, "--attach", "--spawn")
    try:
        text = asyncio.run(browser.terminal_text(serve.url, ["PM_RUN", *INFERRED]))
        assert "normal operation" in text
        viewer = open_tab_viewer(serve, browser, ["PM_RUN", *INFERRED], VIEWER)
        data_dir = Path(_argument(viewer, "-D"))
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        assert str(postmaster) in text, "the first tab showed the same postmaster"
        family = [psutil.Process(postmaster), *psutil.Process(postmaster).children()]
        viewer.send_signal(signal.SIGTERM)
        assert_ends([viewer], "the tab's viewer")
        assert psutil.pid_exists(postmaster), "a tab never owns the cluster: its viewer leaves it running"
    finally:
        output = serve.stop()
    assert f"started a throwaway PostgreSQL cluster (PID {postmaster}) in {data_dir}" in output
    assert "the throwaway cluster stopped and was removed" in output
    assert not data_dir.parent.exists()
    assert_ends(family, "the throwaway cluster's processes")
