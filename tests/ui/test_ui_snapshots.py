"""Screenshots of the dashboard in its key states, compared with reviewed SVG baselines.

Regenerate after a deliberate change with `pytest tests/ui/test_ui_snapshots.py
--snapshot-update`, and look at every changed SVG before keeping it.
"""

from __future__ import annotations

import pytest
from ui_pilot import SIZE

from pgtop.core.vocabulary import LogLevel, Shutdown
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
