"""Plays a scenario in the presenter's dashboard, as `pgtop demo NAME` does, and works its
controls with Textual's pilot: pause, resume, one step, restart, the last-key overlay, the
state banner. Run as a program (the supervisor takes this process's signals, so it cannot
live inside pytest): exit 0 when every check held, else a traceback.

    python presenter_driver.py SCENARIO.yaml
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from pgtop.runtime.signals import SignalCatcher, block_postmaster_signals

block_postmaster_signals()  # before any thread exists

from pgtop.demo.app import DemoApp
from pgtop.demo.loader import load_scenario
from pgtop.demo.observer import Observer
from pgtop.demo.stage import DemoController, ThrowawayCluster
from pgtop.demo.widgets import BigBanner, KeyOverlay, ScriptPanel
from pgtop.ui.widgets.children_table import ChildrenTable

TIMEOUT = 30.0


async def wait_for(pilot, what: str, condition) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {TIMEOUT} s: {what}")
        await pilot.pause(0.05)


def walwriter_pid(app: DemoApp) -> str | None:
    table = app.query_one(ChildrenTable)
    rows = [table.get_row(key) for key in table.rows]
    return next((cells[1] for cells in rows if cells[0] == "walwriter" and cells[2] == "running"), None)


async def play(app: DemoApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(ScriptPanel)
        overlay = app.query_one(KeyOverlay)
        await wait_for(pilot, "paused after the first caption", lambda: panel.playing == "paused" and panel.caption.startswith("First"))
        banner = str(app.query_one(BigBanner).render())
        assert "█▀▀▄ █▄ ▄█      █▀▀▄ █  █ █▄ █" in banner and "normal operation" in banner, banner
        assert "paused · space: resume" in str(panel.border_title)
        first_start = app.snapshot.state.started_at

        await pilot.press("r")  # the presenter's own key, while the script waits
        await wait_for(pilot, "the overlay shows r and what it did", lambda: overlay.key == "r" and "SIGHUP sent to postmaster" in overlay.result)
        assert overlay.action == "SIGHUP to the postmaster", overlay.action

        old_walwriter = walwriter_pid(app)
        await pilot.press("space")
        await wait_for(pilot, "the script pressed k on the walwriter", lambda: overlay.key == "k")
        assert overlay.action == "SIGKILL the selected child", overlay.action
        await wait_for(pilot, "k's result", lambda: f"SIGKILL sent to walwriter (PID {old_walwriter})" in overlay.result)
        await wait_for(pilot, "paused after the crash cycle", lambda: panel.playing == "paused" and panel.caption.startswith("Second"))
        assert walwriter_pid(app) not in (None, old_walwriter)

        await pilot.press("n")
        await wait_for(pilot, "one step: the third caption", lambda: panel.caption == "Third caption." and panel.playing == "paused")
        await pilot.press("n")
        await wait_for(pilot, "one more: the fourth", lambda: panel.caption == "Fourth caption." and panel.playing == "paused")
        await pilot.press("space")
        await wait_for(pilot, "the end", lambda: panel.playing == "done")
        assert "every expectation held" in panel.progress, panel.progress

        await pilot.press("R")
        await wait_for(pilot, "a fresh cluster", lambda: app.snapshot is not None and app.snapshot.state.started_at > first_start
                       and panel.playing == "paused" and panel.caption.startswith("First") and app.player.failures == []
                       and app.events[-1].kind == "paused" and any(e.text.startswith("restarting") for e in app.events))
        await pilot.press("Q")
        await wait_for(pilot, "quit", lambda: not app.is_running)


def main() -> int:
    scenario = load_scenario(Path(sys.argv[1]))
    observer = Observer()
    cluster = ThrowawayCluster(scenario.settings)
    controller = DemoController(cluster, observer)
    app = DemoApp(controller, observer, scenario, pace="stage")
    controller.app = app
    catcher = SignalCatcher(controller.deliver_signal)
    catcher.start()
    try:
        asyncio.run(play(app))
    finally:
        app.player.stop()
        controller.close()
        catcher.stop()
        cluster.remove()
    print("presenter checks held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
