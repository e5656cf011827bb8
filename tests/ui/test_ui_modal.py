"""Snapshots and log lines keep arriving while a dialog is open, and must not be lost."""

from __future__ import annotations

from ui_pilot import drive, wait_for

from pgtop.core.vocabulary import LogLevel, Shutdown
from pgtop.runtime.snapshot import LogRecord
from pgtop.ui import fake
from pgtop.ui.screens.confirm_screen import ConfirmScreen
from pgtop.ui.widgets.pmstate_banner import PMStateBanner
from pgtop.ui.widgets.server_log import ServerLog


def test_a_snapshot_that_arrives_under_a_confirmation_dialog_is_shown(make_app):
    app = make_app()

    async def scenario(pilot):
        app.post_snapshot(fake.snapshot_of(fake.running_state()))
        await pilot.pause()
        await pilot.press("k")  # the SIGKILL confirmation opens over the dashboard
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        app.post_snapshot(fake.snapshot_of(fake.shutdown_state(Shutdown.FAST)))
        app.post_log(LogRecord(fake.NOW, 4242, "postmaster", LogLevel.LOG, "received fast shutdown request",
                               text="... LOG:  received fast shutdown request"))
        banner = app.main_screen.query_one(PMStateBanner)
        await wait_for(pilot, lambda: banner.pm_state != fake.running_state().pm_state)
        log = app.main_screen.query_one(ServerLog)
        await wait_for(pilot, lambda: any(line.endswith("received fast shutdown request") for line in log.lines))
        assert isinstance(app.screen, ConfirmScreen), "the dialog is still open, untouched"

    drive(app, scenario)
