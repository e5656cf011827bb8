"""The supervisor's sink: snapshots and log records posted from another thread."""

from __future__ import annotations

import threading
from dataclasses import replace

from ui_pilot import drive, wait_for

from pgtop.core.vocabulary import LogLevel, PMState
from pgtop.ui import fake
from pgtop.ui.messages import LogArrived, SnapshotArrived
from pgtop.ui.widgets.pmstate_banner import PMStateBanner
from pgtop.ui.widgets.server_log import SCROLLBACK, ServerLog


def banner(app) -> str:
    return str(app.query_one(PMStateBanner).render())


def test_snapshots_replace_each_other_log_records_never_do():
    snapshot = fake.snapshot_of(fake.running_state())
    record = fake.log_record(LogLevel.LOG, "x")
    assert SnapshotArrived(snapshot).can_replace(SnapshotArrived(snapshot))
    assert not SnapshotArrived(snapshot).can_replace(LogArrived(record))
    assert not LogArrived(record).can_replace(LogArrived(record))
    assert not LogArrived(record).can_replace(SnapshotArrived(snapshot))


def test_a_burst_of_snapshots_ends_on_the_last_one(make_app):
    app = make_app()
    states = [replace(fake.running_state(), pm_state=state) for state in PMState]

    async def scenario(pilot):
        applied = []
        original = app.apply_snapshot
        app.apply_snapshot = lambda snapshot: applied.append(snapshot) or original(snapshot)
        for state in states:
            app.post_snapshot(fake.snapshot_of(state))
        await pilot.pause()
        assert banner(app).startswith("PM_NO_CHILDREN")
        assert len(applied) < len(states)

    drive(app, scenario)


def test_every_log_record_from_a_thread_arrives_in_order(make_app):
    app = make_app()
    count = 3000

    def supervisor():
        for n in range(count):
            app.post_log(fake.log_record(LogLevel.LOG, f"line {n}"))
            if n % 100 == 0:
                app.post_snapshot(fake.snapshot_of(fake.running_state()))

    async def scenario(pilot):
        log = app.query_one(ServerLog)
        thread = threading.Thread(target=supervisor)
        thread.start()
        await wait_for(pilot, lambda: log.line_count >= count, timeout=20)
        thread.join()
        assert [line.rsplit(" ", 1)[1] for line in log.lines] == [str(n) for n in range(count)]
        assert banner(app).startswith("PM_RUN")

    drive(app, scenario)


def test_scrollback_is_bounded(make_app):
    app = make_app()

    async def scenario(pilot):
        log = app.query_one(ServerLog)
        for n in range(SCROLLBACK + 50):
            log.append(fake.log_record(LogLevel.LOG, f"line {n}"))
        await pilot.pause()
        assert log.line_count == SCROLLBACK
        assert log.lines[-1].endswith(f"line {SCROLLBACK + 49}")

    drive(app, scenario)


def test_records_with_detail_are_written_line_by_line(make_app):
    app = make_app()
    record = replace(fake.log_record(LogLevel.FATAL, "boom"), text="", detail="why", hint="what now")

    async def scenario(pilot):
        app.post_log(record)
        await pilot.pause()
        lines = app.query_one(ServerLog).lines
        assert [line.split("] ", 1)[1] for line in lines] == ["FATAL:  boom", "DETAIL:  why", "HINT:  what now"]

    drive(app, scenario)


def test_posts_before_the_app_runs_are_kept(make_app):
    app = make_app()
    app.post_log(fake.log_record(LogLevel.LOG, "early bird"))
    app.post_snapshot(fake.snapshot_of(fake.crash_cycle_state()))

    async def scenario(pilot):
        await wait_for(pilot, lambda: banner(app).startswith("PM_WAIT_BACKENDS"))
        assert app.query_one(ServerLog).lines[-1].endswith("early bird")

    drive(app, scenario)
