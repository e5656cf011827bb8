"""The demo cluster behind `python -m pgtop.ui.fake`, driven through the dashboard."""

from __future__ import annotations

from ui_pilot import drive, wait_for

from pgtop.ui.app import PgtopApp
from pgtop.ui.fake_cluster import FakeCluster
from pgtop.ui.widgets.children_table import ChildrenTable
from pgtop.ui.widgets.pmstate_banner import PMStateBanner
from pgtop.ui.widgets.server_log import ServerLog


def test_kill_a_walwriter_watch_the_crash_cycle_then_quit():
    cluster = FakeCluster(pace=0.2)
    app = PgtopApp(cluster, title_note="demo")
    cluster.sink = app

    def banner() -> str:
        return str(app.query_one(PMStateBanner).render())

    def walwriter() -> dict[str, str]:
        """The running walwriter's row as {column: text}, of the columns shown."""
        table = app.query_one(ChildrenTable)
        rows = [{c.key.value: cell for c, cell in zip(table.ordered_columns, table.get_row(key))} for key in table.rows]
        return next((cells for cells in rows if cells["kind"] == "walwriter" and cells["status"] == "running"), {})

    async def scenario(pilot):
        cluster.run()
        await wait_for(pilot, lambda: banner().startswith("PM_RUN") and walwriter())
        old_pid = walwriter()["pid"]
        log = app.query_one(ServerLog)
        table = app.query_one(ChildrenTable)
        row = next(i for i, key in enumerate(table.rows) if table.get_row(key)[0] == "walwriter")
        table.focus()
        table.move_cursor(row=row)
        await pilot.press("k", "y")
        await wait_for(pilot, lambda: banner().startswith("PM_RUN") and walwriter().get("pid", old_pid) != old_pid)
        assert any(line.endswith("terminating any other active server processes") for line in log.lines)
        cells = walwriter()
        assert cells["pid"] != old_pid and cells["restarts"] == "1" and cells["last_exit"] == "SIGKILL"
        assert cells["lineage"].startswith(f"{old_pid} → {cells['pid']}, crash, everyone restarts, back in ")
        await pilot.press("Q", "y")
        await wait_for(pilot, lambda: not app.is_running)

    try:
        drive(app, scenario)
    finally:
        cluster.close()
    assert not cluster.thread.is_alive()
