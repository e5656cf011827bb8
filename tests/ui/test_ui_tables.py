"""The children and backends tables: rows updated in place, exited and throttled rows, lineage."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from rich.text import Text
from textual.geometry import Region
from textual.renderables.styled import Styled
from textual.widget import Widget
from ui_pilot import drive, painted, wait_for

from pgtop.core.reaper import CRASH
from pgtop.core.state import Child, ExitRecord
from pgtop.core.vocabulary import ChildKind, ExitStatus, Shutdown
from pgtop.runtime.snapshot import ProcessStats
from pgtop.ui import fake
from pgtop.ui.widgets.backends_table import BackendsTable
from pgtop.ui.widgets.children_table import EXITED_LINGER, ChildrenTable
from pgtop.ui.widgets.cluster_facts import ClusterFacts


def row(table, key: str) -> dict[str, str]:
    """The row's cells by column key, as plain text: the columns shown."""
    cells = table.get_row(key)
    return {column.key.value: Text.from_markup(cell).plain for column, cell in zip(table.ordered_columns, cells)}


@contextmanager
def repaints() -> Iterator[list[tuple[Widget, tuple[Region, ...]]]]:
    """Every repaint asked for meanwhile, as (widget, regions); no regions: all of it."""
    asked: list[tuple[Widget, tuple[Region, ...]]] = []
    refresh = Widget.refresh

    def spy(widget: Widget, *regions: Region, **kwargs) -> Widget:
        asked.append((widget, regions))
        return refresh(widget, *regions, **kwargs)

    Widget.refresh = spy
    try:
        yield asked
    finally:
        Widget.refresh = refresh


def rows_by_kind(table) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for key in table.rows:
        cells = row(table, key.value)
        found.setdefault(cells["kind"], []).append(cells)
    return found


def test_500_children_are_updated_in_place_not_rebuilt(make_app):
    """The second snapshot changes every CPU figure, drops one backend and adds one: the
    table adds exactly one row, never clears, and the cursor stays on the same child."""
    app = make_app()
    state = fake.many_backends(fake.running_state(), 500)
    first = fake.snapshot_of(state)

    async def scenario(pilot):
        table = app.query_one(ChildrenTable)
        app.post_snapshot(first)
        await pilot.pause()
        assert table.row_count == len(state.children)
        table.move_cursor(row=300)
        selected = table.selected_key
        added, cleared = [], []
        table.add_row = lambda *cells, key=None, **kw: added.append(key) or type(table).add_row(table, *cells, key=key, **kw)
        table.clear = lambda *a, **kw: cleared.append(1)
        gone = next(c for c in state.children.values() if c.pid == 10003)
        newcomer = Child(9999, ChildKind.BACKEND, 20000, fake.NOW, fake.NOW + 0.001)
        children = {i: c for i, c in state.children.items() if i != gone.id} | {9999: newcomer}
        stats = {pid: ProcessStats(cpu_percent=12.5, rss=1 << 20) for pid in (c.pid for c in children.values())}
        with repaints() as repainted:
            app.post_snapshot(fake.snapshot_of(replace(state, children=children), stats=stats))
            await pilot.pause()
        assert added == ["9999"] and cleared == []
        of_table = [regions for widget, regions in repainted if widget is table]
        assert len(of_table) < 10, f"every row changed: {len(of_table)} repaints of the table, not one"
        assert table.selected_key == selected
        assert row(table, selected)["cpu"] == "12.5"
        assert row(table, str(gone.id))["status"] == "exited"

    drive(app, scenario)


def test_a_child_that_left_shows_exited_then_goes(make_app, clock):
    app = make_app()
    running = fake.running_state()
    crashed = fake.crash_cycle_state()

    async def scenario(pilot):
        table = app.query_one(ChildrenTable)
        app.post_snapshot(fake.snapshot_of(running))
        await pilot.pause()
        app.post_snapshot(fake.snapshot_of(crashed))
        await pilot.pause()
        walwriter = row(table, "3")
        assert (walwriter["status"], walwriter["last_exit"], walwriter["lineage"]) == (
            "exited", "SIGKILL", "crash, everyone restarts"
        )
        assert row(table, "1")["status"] == "stopping"
        clock.now += EXITED_LINGER
        app.post_snapshot(fake.snapshot_of(crashed))
        await pilot.pause()
        assert "3" not in [key.value for key in table.rows]

    drive(app, scenario)


def test_a_restarted_child_replaces_its_predecessor_and_shows_its_lineage(make_app):
    app = make_app()
    running = fake.running_state()
    restarted = fake.restarted(running, ChildKind.WALWRITER, 4518, ExitStatus.exited(0), "clean exit, restart this one", 0.0049)

    async def scenario(pilot):
        table = app.query_one(ChildrenTable)
        app.post_snapshot(fake.snapshot_of(running))
        await pilot.pause()
        app.post_snapshot(fake.snapshot_of(restarted))
        await pilot.pause()
        walwriters = rows_by_kind(table)["walwriter"]
        assert len(walwriters) == 1
        assert walwriters[0]["pid"] == "4518"
        assert walwriters[0]["restarts"] == "1"
        assert walwriters[0]["last_exit"] == "exit 0"
        assert walwriters[0]["lineage"] == "4245 → 4518, clean exit, restart this one, back in 4.9 ms"

    drive(app, scenario)


def test_a_narrow_table_gives_up_started_rss_and_cpu_for_the_lineage(make_app):
    """A crash restart's lineage is drawn in full at 160 columns, without the started
    column, and with every column at 200. At 120 (a presenter's large font) RSS and CPU% go
    as well, so that the PIDs and the verdict still show. The cursor stays on its child."""
    app = make_app()
    lineage = "4245 → 4518, crash, everyone restarts, back in 43.2 ms"
    restarted = fake.restarted(fake.running_state(), ChildKind.WALWRITER, 4518, ExitStatus.killed(9), CRASH, 0.0432)
    droppable = {"started", "rss", "cpu"}

    async def scenario(pilot):
        table = app.query_one(ChildrenTable)
        app.post_snapshot(fake.snapshot_of(restarted))
        await pilot.pause()
        walwriter = next(key.value for key in table.rows if row(table, key.value)["kind"] == "walwriter")
        table.move_cursor(row=table.get_row_index(walwriter), animate=False)
        for width, hidden, shown in (
            (160, {"started"}, lineage),
            (120, droppable, "4245 → 4518, crash, everyone restarts"),
            (200, set(), lineage),
            (160, {"started"}, lineage),
        ):
            await pilot.resize_terminal(width, 40)
            await wait_for(pilot, lambda hidden=hidden: droppable - row(table, walwriter).keys() == hidden)
            await pilot.pause()
            assert shown in painted(table)
            assert ("RSS" in painted(table)) == ("rss" not in hidden)
            assert table.selected_key == walwriter

    drive(app, scenario)


def test_throttled_children_count_down_between_snapshots(make_app, clock):
    app = make_app()

    async def scenario(pilot):
        table = app.query_one(ChildrenTable)
        app.post_snapshot(fake.snapshot_of(fake.throttled_state()))
        await pilot.pause()
        archiver = row(table, "throttled:archiver")
        assert (archiver["status"], archiver["next_start"], archiver["restarts"]) == ("throttled", "in 7 s", "2")
        launcher = row(table, "throttled:bgworker:logical replication launcher")
        assert (launcher["status"], launcher["next_start"]) == ("throttled", "in 3 s")
        clock.now += 2
        await wait_for(pilot, lambda: row(table, "throttled:archiver")["next_start"] == "in 5 s")
        assert row(table, "throttled:bgworker:logical replication launcher")["next_start"] == "in 1 s"

    drive(app, scenario)


def test_stats_collector_inside_its_60_s_throttle_is_throttled(make_app):
    app = make_app()
    state = fake.running_state()
    stats = state.special(ChildKind.STATS)
    record = ExitRecord("stats collector", ChildKind.STATS, stats.pid, ExitStatus.exited(1), fake.NOW - 1, "logged, restart this one")
    state = replace(
        state,
        children={i: c for i, c in state.children.items() if i != stats.id},
        last_pgstat_start_time=fake.NOW - 15,
        history=(record,),
    )

    async def scenario(pilot):
        app.post_snapshot(fake.snapshot_of(state))
        await pilot.pause()
        cells = row(app.query_one(ChildrenTable), "throttled:stats")
        assert (cells["status"], cells["next_start"], cells["last_exit"]) == ("throttled", "in 45 s", "exit 1")

    drive(app, scenario)


def test_a_child_without_pid_is_starting(make_app):
    app = make_app()
    state = fake.running_state()
    state = replace(state, children=state.children | {50: Child(50, ChildKind.ARCHIVER, None, fake.NOW)})

    async def scenario(pilot):
        app.post_snapshot(fake.snapshot_of(state))
        await pilot.pause()
        assert row(app.query_one(ChildrenTable), "50")["status"] == "starting"

    drive(app, scenario)


def test_every_child_is_stopping_during_a_shutdown(make_app):
    app = make_app()

    async def scenario(pilot):
        app.post_snapshot(fake.snapshot_of(fake.shutdown_state(Shutdown.SMART)))
        await pilot.pause()
        table = app.query_one(ChildrenTable)
        assert {row(table, key.value)["status"] for key in table.rows} == {"stopping"}

    drive(app, scenario)


def test_backends_show_activity_and_keep_markup_literal(make_app):
    app = make_app()
    snapshot = fake.snapshot_of(fake.running_state())
    first = snapshot.activity[0]
    snapshot = replace(snapshot, activity=(replace(first, query="SELECT a[1] FROM   t"),) + snapshot.activity[1:])

    async def scenario(pilot):
        app.post_snapshot(snapshot)
        await pilot.pause()
        table = app.query_one(BackendsTable)
        assert table.row_count == 3
        cells = row(table, "4301")
        assert (cells["user"], cells["state"], cells["query"]) == ("alice", "active", "SELECT a[1] FROM t")

    drive(app, scenario)


def test_an_idle_dashboard_animates_nothing(make_app):
    """Between snapshots only the one-second clock may repaint: a widget refreshing itself on
    a timer (the hidden recovery panel's indeterminate bar did, 15 times a second) costs an
    idle dashboard most of its CPU."""
    app = make_app()

    async def scenario(pilot):
        app.post_snapshot(fake.snapshot_of(fake.running_state()))
        await pilot.pause()
        animated = [type(widget).__name__ for widget in app.screen.walk_children() if widget.auto_refresh is not None]
        assert animated == []

    drive(app, scenario)


def test_a_new_figure_renders_one_cell_not_the_whole_table(make_app):
    """Every stats round changes a few CPU% and RSS cells; repainting must cost those cells
    and their row's line (DataTable alone re-renders every visible cell through Rich on any
    update and repaints every line), and the new figure must be what the screen shows."""
    app = make_app()
    state = fake.running_state()
    first = fake.snapshot_of(state)

    async def scenario(pilot):
        table = app.query_one(ChildrenTable)
        app.post_snapshot(first)
        await pilot.pause()
        whole = Region(0, 0, table.size.width, table.size.height)
        table.render_lines(whole)
        rendered = []  # the cells that go through Rich: DataTable renders each with the app's console
        console_render = app.console.render_lines

        def render_lines(renderable, *args, **kwargs):
            if isinstance(renderable, Styled):  # a cell (inside, Rich renders its padding)
                rendered.append(renderable.renderable.renderable)
            return console_render(renderable, *args, **kwargs)

        app.console.render_lines = render_lines
        walwriter = next(c for c in state.children.values() if c.kind is ChildKind.WALWRITER)
        stats = dict(first.stats) | {walwriter.pid: ProcessStats(cpu_percent=42.5, rss=first.stats[walwriter.pid].rss)}
        with repaints() as repainted:
            app.post_snapshot(replace(first, stats=stats))
            await pilot.pause()
        of_table = [regions for widget, regions in repainted if widget is table]
        assert of_table and all(len(regions) == 1 and regions[0].height == 1 for regions in of_table), of_table
        lines = [strip.text for strip in table.render_lines(whole)]
        assert [text.plain for text in rendered] == ["42.5"]
        assert any(str(walwriter.pid) in line and "42.5" in line for line in lines), lines

    drive(app, scenario)


def test_a_second_of_uptime_repaints_one_line(make_app, clock):
    """The uptime clock is the only thing an idle dashboard changes every second: its tick
    repaints the uptime line alone, not the bordered facts panel around it."""
    app = make_app()

    async def scenario(pilot):
        app.post_snapshot(fake.snapshot_of(fake.running_state()))
        await pilot.pause()
        facts = app.query_one(ClusterFacts)
        before = facts.lines()
        with repaints() as repainted:
            clock.now += 1
            app.pane.tick(app.snapshot.state, clock())
        after = facts.lines()
        changed = [(old, new) for old, new in zip(before, after) if old != new]
        assert len(changed) == 1 and changed[0][1].startswith("uptime"), changed
        assert [type(widget).__name__ for widget, _ in repainted] == ["FactLine"]

    drive(app, scenario)
