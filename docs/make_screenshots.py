"""Screenshots of the real dashboard for the README, taken by its own screenshot action (key x).

    python docs/make_screenshots.py [--out DIR]     (default: docs/screenshots)

Each one is a real cluster on a throwaway data directory, driven as a user would:
  dashboard.svg    PM_RUN under a small client load (w), the backends busy
  crash-cycle.svg  a frozen checkpointer (z), a killed walwriter (k): PM_WAIT_BACKENDS,
                   FatalError, and the SIGKILL stopwatch counting down
  presenter.svg    `pgtop demo crash-recovery`, paused after the crash cycle
  standby.svg      `pgtop --with-standby`: the standby on screen, streaming, caught up
The test suite runs this script (tests/demo/test_screenshots.py), so the pictures cannot drift
from what the dashboard really shows.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from pgtop.runtime.signals import SignalCatcher, block_postmaster_signals

block_postmaster_signals()  # the supervisor runs in this process and takes its signals

from pgtop.core.vocabulary import PMState
from pgtop.demo.app import DemoApp
from pgtop.demo.command import demo_dir
from pgtop.demo.loader import load_scenario
from pgtop.demo.observer import Observer
from pgtop.demo.stage import DemoController, ThrowawayCluster
from pgtop.demo.widgets import ScriptPanel
from pgtop.ui.app import PgtopApp
from pgtop.ui.pair import PairApp, StandbyController
from pgtop.ui.widgets.backends_table import BackendsTable
from pgtop.ui.widgets.children_table import ChildrenTable

SIZE = (160, 48)
TIMEOUT = 30.0


async def wait_for(pilot, what: str, condition) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"make_screenshots: gave up waiting for {what}")
        await pilot.pause(0.05)


async def shoot(app: PgtopApp, pilot, out: Path, name: str) -> None:
    """Run what the screenshot key (x) runs, and give the file its README name. (Not the key
    itself: the presenter's overlay would show it.)"""
    before = set(out.glob("*.svg"))
    await app.run_action("screenshot")
    await wait_for(pilot, f"the {name} screenshot", lambda: set(out.glob("*.svg")) - before)
    (set(out.glob("*.svg")) - before).pop().replace(out / name)


def select(app: PgtopApp, kind: str) -> None:
    table = app.query_one(ChildrenTable)
    for key in table.rows:
        cells = table.get_row(key)
        if cells[0] == kind and cells[2] == "running":
            table.move_cursor(row=table.get_row_index(key), animate=False)
            return
    raise SystemExit(f"make_screenshots: no running {kind}")


def showing(table: BackendsTable | ChildrenTable, text: str) -> bool:
    return any(text in str(cell) for key in table.rows for cell in table.get_row(key))


def state(app: PgtopApp) -> PMState | None:
    return app.snapshot.state.pm_state if app.snapshot is not None else None


async def dashboard_shots(app: PgtopApp, out: Path) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, "PM_RUN", lambda: state(app) is PMState.RUN)
        await pilot.press("w")
        await wait_for(pilot, "busy backends", lambda: app.query_one(BackendsTable).row_count > 0)
        await wait_for(pilot, "the first stats round (CPU% and RSS)", lambda: showing(app.query_one(ChildrenTable), "MiB"))
        await wait_for(pilot, "an INSERT of the load on screen", lambda: showing(app.query_one(BackendsTable), "insert into demo_load"))
        await shoot(app, pilot, out, "dashboard.svg")
        await pilot.press("w")
        select(app, "checkpointer")
        await pilot.press("z")
        select(app, "walwriter")
        await pilot.press("k")
        await wait_for(pilot, "the crash cycle", lambda: state(app) is PMState.WAIT_BACKENDS)
        await pilot.pause(1.2)  # the stopwatch a little into its 5 s
        await shoot(app, pilot, out, "crash-cycle.svg")
        await wait_for(pilot, "the restart", lambda: state(app) is PMState.RUN)
        app.exit()


async def presenter_shot(app: DemoApp, out: Path) -> None:
    async with app.run_test(size=SIZE) as pilot:
        panel = app.query_one(ScriptPanel)
        await wait_for(pilot, "the first pause", lambda: panel.playing == "paused")
        await pilot.press("space")
        await wait_for(pilot, "the pause after the crash", lambda: panel.playing == "paused" and panel.caption.startswith("With every child gone"))
        await shoot(app, pilot, out, "presenter.svg")
        app.exit()


def caught_up(app: PairApp) -> bool:
    """Both sides have spoken (the primary has a reply, the standby a message) and the
    standby's replay is level with the primary's end of WAL."""
    primary, standby = app.latest["primary"], app.latest["standby"]
    if primary is None or standby is None or primary.replication is None or standby.replication is None:
        return False
    received = standby.replication
    return standby.state.pm_state is PMState.HOT_STANDBY and received.heard_at > 0 and received.replayed >= primary.replication.wal_end


async def standby_shot(app: PairApp, out: Path) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, "the standby", lambda: app.latest["standby"] is not None)
        await pilot.press("w")  # client load on the primary: WAL to stream
        await wait_for(pilot, "busy backends", lambda: app.query_one(BackendsTable).row_count > 0)
        await pilot.pause(1.0)
        await pilot.press("w")
        await pilot.press("2")
        await pilot.pause(1.5)  # its children's CPU and RSS columns get figures
        await wait_for(pilot, "the standby streaming and caught up", lambda: caught_up(app))
        await shoot(app, pilot, out, "standby.svg")
        app.exit()


def pair_app(controller: DemoController, out: Path) -> PairApp:
    standby = StandbyController(controller.cluster.root / "standby")
    return PairApp(controller, standby, confirm=False, screenshot_dir=out)


def run(make_app, shots, out: Path, scenario_settings=()) -> None:
    observer = Observer()
    cluster = ThrowawayCluster(scenario_settings)
    controller = DemoController(cluster, observer)
    app = make_app(controller, observer)
    controller.app = app
    catcher = SignalCatcher(controller.deliver_signal)
    catcher.start()
    try:
        if not isinstance(app, DemoApp):
            controller.launch()
        asyncio.run(shots(app, out))
    finally:
        if isinstance(app, DemoApp):
            app.player.stop()
        if isinstance(app, PairApp):
            app.standby.close()
        controller.close()
        catcher.stop()
        cluster.remove()


def main() -> int:
    parser = argparse.ArgumentParser(description="Screenshots of the dashboard for the README.")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "screenshots")
    out = parser.parse_args().out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    run(lambda c, o: PgtopApp(c, confirm=False, screenshot_dir=out), dashboard_shots, out)
    scenario = load_scenario(demo_dir() / "crash-recovery.yaml")
    run(lambda c, o: DemoApp(c, o, scenario, screenshot_dir=out), presenter_shot, out, scenario.settings)
    run(lambda c, o: pair_app(c, out), standby_shot, out)
    for name in ("dashboard.svg", "crash-cycle.svg", "presenter.svg", "standby.svg"):
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
