"""`pgtop view`: the dashboard attached to a real `pgtop run` in another process, through its
control socket. Keys reach the postmaster as real signals; leaving the viewer leaves the
cluster running; the viewer follows the cluster across a restart."""

from __future__ import annotations

import subprocess
import sys

import pytest
from ui_pilot import drive, wait_for

from pgtop.core.vocabulary import Sig
from pgtop.runtime.snapshot import CommandRefused
from pgtop.ui.remote import RemoteController, ViewerApp
from pgtop.ui.widgets.children_table import ChildrenTable
from pgtop.ui.widgets.cluster_facts import ClusterFacts
from pgtop.ui.widgets.pmstate_banner import PMStateBanner
from pgtop.ui.widgets.server_log import ServerLog

WAIT = 20.0


def _viewer(cluster) -> tuple[ViewerApp, RemoteController]:
    controller = RemoteController(cluster.datadir)
    app = ViewerApp(controller, confirm=False)
    controller.attach(app)
    return app, controller


def _banner(app: ViewerApp) -> str:
    return str(app.query_one(PMStateBanner).render())


def _logged(app: ViewerApp, text: str) -> bool:
    return any(text in line for line in app.query_one(ServerLog).lines)


def _select(app: ViewerApp, kind: str) -> str:
    """Put the cursor on the running child of this kind; its PID as shown."""
    table = app.query_one(ChildrenTable)
    for key in table.rows:
        cells = table.get_row(key)
        if cells[0] == kind and cells[2] == "running":
            table.move_cursor(row=table.get_row_index(key), animate=False)
            return cells[1]
    raise AssertionError(f"no running {kind} row")


def _row_pid(app: ViewerApp, kind: str) -> str | None:
    table = app.query_one(ChildrenTable)
    rows = [table.get_row(key) for key in table.rows]
    return next((cells[1] for cells in rows if cells[0] == kind and cells[2] == "running"), None)


def test_keys_in_the_viewer_signal_the_running_postmaster_and_quitting_leaves_it_running(make_cluster):
    cluster = make_cluster().start()
    app, controller = _viewer(cluster)

    async def scenario(pilot):
        await wait_for(pilot, lambda: _banner(app).startswith("PM_RUN") and _row_pid(app, "walwriter"), WAIT)
        assert app.query_one(ClusterFacts).postmaster_pid == cluster.pid
        await pilot.press("r")
        await wait_for(pilot, lambda: _logged(app, "received SIGHUP, reloading configuration files"), WAIT)
        old = _select(app, "walwriter")
        await pilot.press("k")
        await wait_for(pilot, lambda: _logged(app, f"WAL writer process (PID {old}) was terminated by signal 9: Killed"), WAIT)
        await wait_for(pilot, lambda: _banner(app).startswith("PM_RUN") and _row_pid(app, "walwriter") not in (None, old), WAIT)
        await pilot.press("Q")
        await wait_for(pilot, lambda: not app.is_running, WAIT)

    try:
        drive(app, scenario)
    finally:
        controller.close()
    assert cluster.status()["pm_state"] == "PM_RUN", "leaving a viewer must not stop the cluster"
    assert cluster.process.poll() is None


def test_the_viewer_follows_the_cluster_through_a_restart(make_cluster):
    cluster = make_cluster().start()
    first_pid = cluster.pid
    app, controller = _viewer(cluster)

    async def scenario(pilot):
        await wait_for(pilot, lambda: _banner(app).startswith("PM_RUN"), WAIT)
        await pilot.press("f")
        await wait_for(pilot, lambda: _logged(app, "the postmaster is gone"), WAIT)
        assert cluster.exit_code() == 0
        await pilot.press("S")  # the viewer does not run the cluster: it says how to start it
        await wait_for(pilot, lambda: _logged(app, "attached") and "pgtop run -D" in str(app.query_one("Caption").render()), WAIT)
        cluster.start()
        await wait_for(pilot, lambda: app.query_one(ClusterFacts).postmaster_pid == cluster.pid, WAIT)
        await wait_for(pilot, lambda: _banner(app).startswith("PM_RUN"), WAIT)
        assert cluster.pid != first_pid

    try:
        drive(app, scenario)
    finally:
        controller.close()


def test_child_signals_are_pinned_by_pid_and_start_time(make_cluster):
    cluster = make_cluster().start()
    controller = RemoteController(cluster.datadir)
    status = cluster.status()
    walwriter = next(c for c in status["children"] if c["kind"] == "walwriter")
    with pytest.raises(CommandRefused, match=r"is not the one shown any more \(its PID was reused\)"):
        controller.signal_child(walwriter["pid"], walwriter["start_time"] - 100, Sig.KILL)
    with pytest.raises(CommandRefused, match=f"process {cluster.pid} is not a child of this postmaster"):
        controller.signal_child(cluster.pid, 0.0, Sig.KILL)
    assert cluster.children()["walwriter"] == walwriter["pid"], "a refused signal must change nothing"
    with pytest.raises(CommandRefused, match="cannot promote: the server is not in standby mode"):
        controller.promote()
    controller.signal_child(walwriter["pid"], walwriter["start_time"], Sig.KILL)
    cluster.wait_for_log(rf"WAL writer process \(PID {walwriter['pid']}\) was terminated by signal 9")


def test_commands_without_a_running_cluster_are_refused_in_one_line(tmp_path):
    controller = RemoteController(tmp_path)
    with pytest.raises(CommandRefused, match=f"^no server running in {tmp_path}$"):
        controller.reload()
    with pytest.raises(CommandRefused, match="does not answer"):
        controller.signal_child(1, 0.0, Sig.TERM)


def _view(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pgtop.ui.serve", "view", *args], capture_output=True, text=True, check=False, timeout=30)


def test_view_refuses_a_directory_that_is_not_a_cluster(tmp_path):
    result = _view("-D", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr == f"pgtop view: {tmp_path} is not a pgtop data directory (no pgtop.yaml)\n"


def test_view_refuses_a_cluster_that_is_not_running(make_cluster):
    cluster = make_cluster()
    result = _view("-D", str(cluster.datadir))
    assert result.returncode == 1
    assert result.stderr == f"pgtop view: no server running in {cluster.datadir} (start one with: pgtop run -D {cluster.datadir})\n"
