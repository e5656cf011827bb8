"""Screenshots of the dashboard in its key states, compared with reviewed SVG baselines.

Regenerate after a deliberate change with `pytest tests/ui/test_ui_snapshots.py
--snapshot-update`, and look at every changed SVG before keeping it.
"""

from __future__ import annotations

import pytest
from ui_pilot import SIZE

from pgtop.core.reaper import CRASH
from pgtop.core.vocabulary import ChildKind, ExitStatus, LogLevel, Shutdown
from pgtop.ui import fake

LOG = (
    (LogLevel.LOG, "database system is ready to accept connections", None),
    (LogLevel.DEBUG1, "forked new backend, pid=4303 socket=9", None),
    (LogLevel.WARNING, "archive_mode enabled, yet archiving is not configured", None),
    (LogLevel.LOG, "WAL writer process (PID 4245) was terminated by signal 9: Killed", None),
    (LogLevel.FATAL, "terminating connection due to administrator command", "sent by the postmaster"),
)


def scene(make_app, *snapshots, **options):
    """An app showing these snapshots in order (each one drawn before the next arrives)."""
    app = make_app(**options)
    for level, message, detail in LOG:
        app.post_log(fake.log_record(level, message, detail=detail))

    async def run_before(pilot):
        for snapshot in snapshots:
            app.post_snapshot(snapshot)
            await pilot.pause()

    return app, run_before


def test_running(snap_compare, make_app):
    app, run_before = scene(make_app, fake.snapshot_of(fake.running_state()))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_crash_cycle(snap_compare, make_app):
    app, run_before = scene(
        make_app, fake.snapshot_of(fake.running_state()), fake.snapshot_of(fake.crash_cycle_state())
    )
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


@pytest.mark.parametrize("size", [(80, 24), (120, 36)], ids=["80x24", "120x36"])
def test_restart_on_narrow_terminals(snap_compare, make_app, size):
    """A default terminal and a presenter's large font: no panel squeezed to nothing, and
    at 120 columns the lineage of the restart readable."""
    running = fake.running_state()
    restarted = fake.restarted(running, ChildKind.WALWRITER, 4518, ExitStatus.killed(9), CRASH, 0.0432)
    app, run_before = scene(make_app, fake.snapshot_of(running), fake.snapshot_of(restarted))
    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("level", [Shutdown.SMART, Shutdown.FAST, Shutdown.IMMEDIATE], ids=lambda level: level.name.lower())
def test_shutdown(snap_compare, make_app, level):
    app, run_before = scene(
        make_app, fake.snapshot_of(fake.running_state()), fake.snapshot_of(fake.shutdown_state(level))
    )
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_throttled_children(snap_compare, make_app):
    app, run_before = scene(make_app, fake.snapshot_of(fake.throttled_state()))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_crash_recovery_progress(snap_compare, make_app):
    app, run_before = scene(make_app, fake.snapshot_of(fake.recovery_state(), recovery=fake.RECOVERY))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_stopped(snap_compare, make_app):
    app, run_before = scene(make_app, fake.snapshot_of(fake.stopped_state()))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_kill_confirmation(snap_compare, make_app):
    app, run_before = scene(make_app, fake.snapshot_of(fake.running_state()))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before, press=["down", "down", "k"])


def test_help_screen(snap_compare, make_app):
    app, run_before = scene(make_app, fake.snapshot_of(fake.running_state()))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before, press=["question_mark"])


def test_readonly_and_no_confirm_are_marked(snap_compare, make_app):
    app, run_before = scene(
        make_app, fake.snapshot_of(fake.running_state()), readonly=True, confirm=False,
        title_note="port 5432 taken, using 5433",
    )
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before, press=["r"])


@pytest.mark.parametrize("theme", ["pgtop-light", "pgtop-high-contrast", "textual-light"])
def test_themes(snap_compare, make_app, theme):
    app, run_before = scene(make_app, fake.snapshot_of(fake.crash_cycle_state()), theme=theme)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
