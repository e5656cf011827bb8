"""Every key that acts on the cluster, pressed in the dashboard against the real postmaster.

Each test plays one scenario in a fresh interpreter wired exactly as `pgtop -D DIR` wires
itself (`build_dashboard` and `supervised`): the postmaster's signals blocked before any
thread exists and taken by one thread, the supervisor in a background thread, the app
headless under Textual's pilot. That cannot be done inside pytest's own process: it has
threads and signal handlers of its own, and the keys send real signals to the process
(SIGHUP, SIGINT...) while the children send it SIGUSR1. The scenario asserts what the
screen shows, with deadlines; its traceback comes back as the test's failure.

Run one scenario by hand: python tests/ui/test_real_supervisor.py SCENARIO DATADIR
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Label

from pgtop.core.vocabulary import Shutdown
from pgtop.ui.app import PgtopApp
from pgtop.ui.launch import DashboardController, build_dashboard, supervised
from pgtop.ui.screens.confirm_screen import ConfirmScreen
from pgtop.ui.widgets.caption import Caption
from pgtop.ui.widgets.children_table import ChildrenTable
from pgtop.ui.widgets.pmstate_banner import PMStateBanner
from pgtop.ui.widgets.server_log import ServerLog
from pgtop.ui.widgets.shutdown_ladder import ShutdownLadder

SIZE = (160, 48)
DEADLINE = 20.0  # seconds; generous, as the suite may share two cores with much else
SCENARIO_TIMEOUT = 90.0
AUXILIARY = ("background writer", "checkpointer", "walwriter")


# -- the dashboard as the user sees it -------------------------------------------------------


class Dashboard:
    """The running app, read and driven the way a user would."""

    def __init__(self, app: PgtopApp, pilot: Pilot, controller: DashboardController) -> None:
        self.app = app
        self.pilot = pilot
        self.controller = controller
        self.log_widget = app.query_one(ServerLog)

    @property
    def postmaster_pid(self) -> int:
        return os.getpid()  # the supervisor runs in this process, as in `pgtop -D`

    async def until(self, what: str, condition: Callable[[], object], timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout} s: {what}\n--- screen ---\n{self.screen()}")
            await self.pilot.pause(0.02)

    # -- reading ---------------------------------------------------------------------------

    def screen(self) -> str:
        """The whole screen as text (what Textual's own screenshot export renders)."""
        width, height = self.app.size
        console = Console(width=width, height=height, file=io.StringIO(), record=True, legacy_windows=False)
        console.print(self.app.screen._compositor.render_update(full=True, screen_stack=self.app._background_screens))
        return console.export_text()

    def banner(self) -> str:
        return str(self.app.query_one(PMStateBanner).render())

    def caption(self) -> str:
        return str(self.app.query_one(Caption).render())

    def ladder(self) -> str:
        return str(self.app.query_one(ShutdownLadder).render())

    def log_lines(self) -> list[str]:
        return list(self.log_widget.lines)

    def logged(self, pattern: str) -> bool:
        return any(re.search(pattern, line) for line in self.log_lines())

    def children(self) -> list[dict[str, str]]:
        """The children table's rows, top to bottom, as {column: text} of the columns shown."""
        table = self.app.query_one(ChildrenTable)
        return [
            {column.key.value: str(cell) for column, cell in zip(table.ordered_columns, table.get_row(row.key))}
            for row in table.ordered_rows
        ]

    def pid_of(self, kind: str) -> int | None:
        """The PID shown for the running child of this kind."""
        for row in self.children():
            if row["kind"] == kind and row["status"] == "running" and row["pid"]:
                return int(row["pid"])
        return None

    def row_of(self, kind: str) -> dict[str, str]:
        return next(row for row in self.children() if row["kind"] == kind and row["status"] != "exited")

    def running(self) -> bool:
        return self.banner().startswith("PM_RUN\n") and all(self.pid_of(kind) for kind in AUXILIARY)

    def stopped(self) -> bool:
        return self.banner().endswith("the postmaster has exited")

    # -- acting ----------------------------------------------------------------------------

    async def press(self, *keys: str) -> None:
        await self.pilot.press(*keys)

    async def select(self, kind: str) -> int:
        """Move the cursor to the running child of this kind with the arrow keys; its PID."""
        table = self.app.query_one(ChildrenTable)
        for _ in range(40):
            row = table.selected_row
            if row is not None and row.kind_label == kind and row.status == "running":
                return row.pid
            kinds = [r["kind"] for r in self.children()]
            down = kind in kinds and kinds.index(kind) > table.cursor_row
            await self.press("down" if down else "up")
        raise AssertionError(f"could not select {kind}\n{self.screen()}")

    async def confirm(self) -> str:
        """Answer the confirmation dialog the way a keyboard user does (Tab from the focused
        Cancel to the confirm button, Enter); return its question."""
        await self.until("a confirmation dialog", lambda: isinstance(self.app.screen, ConfirmScreen))
        question = str(self.app.screen.query_one("#question", Label).render())
        assert self.app.screen.focused is not None and self.app.screen.focused.id == "cancel", "Cancel is not the default"
        await self.press("tab", "enter")
        await self.until("the dialog closed", lambda: not isinstance(self.app.screen, ConfirmScreen))
        return question


# -- the scenarios (each runs in its own interpreter) ----------------------------------------

Scenario = Callable[[Dashboard], Awaitable[None]]


async def reload_then_promote_refused(dash: Dashboard) -> None:
    pids = {kind: dash.pid_of(kind) for kind in AUXILIARY}
    await dash.press("r")
    assert dash.caption() == f"reload requested: SIGHUP sent to postmaster {dash.postmaster_pid}"
    await dash.until("the reload in the server log", lambda: dash.logged(r"LOG:  received SIGHUP, reloading configuration files"))
    assert dash.running() and {kind: dash.pid_of(kind) for kind in AUXILIARY} == pids, "a reload restarted something"

    await dash.press("p")
    question = await dash.confirm()
    assert question == f"Promote the standby (postmaster PID {dash.postmaster_pid}) to a primary?"
    refusal = "cannot promote: the server is not in standby mode"
    await dash.until("the refusal", lambda: dash.caption() == refusal and refusal in dash.screen())
    assert not (dash.controller.datadir / "promote").exists()
    assert dash.running()


async def kill_checkpointer(dash: Dashboard) -> None:
    old = await dash.select("checkpointer")
    walwriter = dash.pid_of("walwriter")
    await dash.press("k")
    assert await dash.confirm() == f"Send SIGKILL to checkpointer (PID {old})?"
    await dash.until("the caption", lambda: dash.caption() == f"SIGKILL sent to checkpointer (PID {old})")
    await dash.until(
        "the crash in the server log",
        lambda: dash.logged(rf"LOG:  checkpointer process \(PID {old}\) was terminated by signal 9: Killed"),
    )
    await dash.until("PM_RUN with a new checkpointer", lambda: dash.running() and dash.pid_of("checkpointer") not in (None, old))
    new = dash.pid_of("checkpointer")
    row = dash.row_of("checkpointer")
    assert row["last_exit"] == "SIGKILL" and row["restarts"] == "1", row
    assert row["lineage"].startswith(f"{old} → {new}, crash, everyone restarts, back in "), row
    assert dash.pid_of("walwriter") != walwriter, "a crash restarts everyone"
    assert dash.logged("LOG:  all server processes terminated; reinitializing")


async def term_walwriter(dash: Dashboard) -> None:
    old = await dash.select("walwriter")
    checkpointer = dash.pid_of("checkpointer")
    await dash.press("t")
    assert await dash.confirm() == f"Send SIGTERM to walwriter (PID {old})?"
    await dash.until("a new walwriter", lambda: dash.pid_of("walwriter") not in (None, old))
    new = dash.pid_of("walwriter")
    row = dash.row_of("walwriter")
    assert row["lineage"].startswith(f"{old} → {new}, clean exit, restart this one, back in "), row
    assert row["last_exit"] == "exit 0", row
    assert dash.pid_of("checkpointer") == checkpointer, "a clean exit restarts that child only"
    assert dash.banner().startswith("PM_RUN\n") and not dash.logged("reinitializing")


async def quit_bgwriter(dash: Dashboard) -> None:
    old = await dash.select("background writer")
    checkpointer = dash.pid_of("checkpointer")
    await dash.press("q")
    assert await dash.confirm() == f"Send SIGQUIT to background writer (PID {old})?"
    await dash.until(
        "the crash in the server log",
        lambda: dash.logged(rf"LOG:  background writer process \(PID {old}\) exited with exit code 2"),
    )
    await dash.until("PM_RUN with a new checkpointer", lambda: dash.running() and dash.pid_of("checkpointer") != checkpointer)
    new = dash.pid_of("background writer")
    assert dash.row_of("background writer")["lineage"].startswith(f"{old} → {new}, crash, everyone restarts")


async def freeze_fast_refusals_thaw_start(dash: Dashboard) -> None:
    frozen = await dash.select("checkpointer")
    await dash.press("z")
    assert await dash.confirm() == f"Send SIGSTOP to checkpointer (PID {frozen})?"
    await dash.until("the checkpointer stopped", lambda: psutil.Process(frozen).status() == psutil.STATUS_STOPPED)

    await dash.press("f")
    assert await dash.confirm() == f"Send SIGINT (fast shutdown) to the postmaster (PID {dash.postmaster_pid})?"
    await dash.until("the request in the server log", lambda: dash.logged("LOG:  received fast shutdown request"))
    # The frozen checkpointer cannot write the shutdown checkpoint: the shutdown waits for it.
    await dash.until("PM_SHUTDOWN", lambda: dash.banner().startswith("PM_SHUTDOWN\n"))
    assert dash.app.query_one(ShutdownLadder).level is Shutdown.FAST
    assert dash.row_of("checkpointer")["status"] == "stopping"
    # The replication launcher exited 1 on the shutdown's SIGTERM; it will not be restarted.
    await dash.until("the launcher gone", lambda: "logical replication launcher" not in [r["kind"] for r in dash.children()])
    assert "throttled" not in [row["status"] for row in dash.children()]

    for key, weaker in (("s", "smart"), ("f", "fast")):
        await dash.press(key)
        refusal = f"{weaker} shutdown ignored: a fast shutdown is already under way"
        assert not isinstance(dash.app.screen, ConfirmScreen), "a refused request must not ask"
        # In the caption and in a notification (which wraps it): on screen twice.
        await dash.until(f"the refusal of {weaker}", lambda refusal=refusal: dash.screen().count(refusal[:40]) == 2)
        assert dash.caption() == refusal

    await dash.press("c")  # SIGCONT asks nothing
    await dash.until("the caption", lambda: dash.caption() == f"SIGCONT sent to checkpointer (PID {frozen})")
    await dash.until("the postmaster exited", dash.stopped)
    assert dash.logged("LOG:  database system is shut down")
    assert not (dash.controller.datadir / "postmaster.pid").exists()

    await dash.press("S")
    await dash.until("postmaster started", lambda: dash.caption() == "postmaster started")
    await dash.until("PM_RUN again", dash.running)
    assert dash.pid_of("checkpointer") != frozen


async def smart_start_immediate_escalation(dash: Dashboard) -> None:
    await dash.press("S")
    await dash.until("the refusal", lambda: dash.caption() == "start ignored: the cluster is running")
    await dash.press("s")
    assert await dash.confirm() == f"Send SIGTERM (smart shutdown) to the postmaster (PID {dash.postmaster_pid})?"
    await dash.until("the postmaster exited", dash.stopped)
    assert dash.logged("LOG:  received smart shutdown request")
    await dash.press("i")
    await dash.until("the refusal", lambda: dash.caption() == "immediate shutdown ignored: the cluster is not running")

    await dash.press("S")
    await dash.until("PM_RUN again", dash.running)
    frozen = await dash.select("background writer")
    await dash.press("z")
    await dash.confirm()
    await dash.until("the bgwriter stopped", lambda: psutil.Process(frozen).status() == psutil.STATUS_STOPPED)
    await dash.press("i")
    assert await dash.confirm() == f"Send SIGQUIT (immediate shutdown) to the postmaster (PID {dash.postmaster_pid})?"
    # A stopped process cannot act on SIGQUIT: the postmaster's stopwatch runs.
    await dash.until("the SIGKILL countdown", lambda: "SIGKILL escalation in" in dash.ladder())
    assert dash.app.query_one(ShutdownLadder).level is Shutdown.IMMEDIATE
    await dash.press("f")
    await dash.until("the refusal", lambda: dash.caption() == "fast shutdown ignored: an immediate shutdown is already under way")
    await dash.until("the escalation", lambda: dash.logged("LOG:  issuing SIGKILL to recalcitrant children"), timeout=DEADLINE + 5)
    await dash.until("the postmaster exited", dash.stopped)
    assert not psutil.pid_exists(frozen) or psutil.Process(frozen).status() == psutil.STATUS_ZOMBIE


async def quit_key(dash: Dashboard) -> None:
    await dash.press("Q")
    question = await dash.confirm()
    assert question == f"Stop the cluster with a fast shutdown (SIGINT to postmaster PID {dash.postmaster_pid}) and quit?"
    deadline = time.monotonic() + DEADLINE
    while dash.app.is_running:  # the pilot cannot pause an app that has left
        assert time.monotonic() < deadline, f"the dashboard did not leave\n{dash.screen()}"
        await asyncio.sleep(0.02)
    assert dash.controller.supervisor is not None and dash.controller.supervisor.exit_code == 0
    assert dash.logged("LOG:  received fast shutdown request")
    assert dash.logged("LOG:  database system is shut down")


SCENARIOS: dict[str, Scenario] = {
    scenario.__name__: scenario
    for scenario in (
        reload_then_promote_refused,
        kill_checkpointer,
        term_walwriter,
        quit_bgwriter,
        freeze_fast_refusals_thaw_start,
        smart_start_immediate_escalation,
        quit_key,
    )
}


def play(name: str, datadir: Path) -> None:
    """In a fresh interpreter: the dashboard on `datadir`, wired as `pgtop -D` does it."""
    from pgtop.runtime.signals import block_postmaster_signals

    assert threading.active_count() == 1, "signals must be blocked before any thread exists"
    block_postmaster_signals()
    args = argparse.Namespace(pgdata=str(datadir), no_confirm=False, readonly=False, theme=None)
    app, controller = build_dashboard(args)

    async def run() -> None:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            dash = Dashboard(app, pilot, controller)
            try:
                await dash.until("PM_RUN with every auxiliary process", dash.running)
                await SCENARIOS[name](dash)
            except BaseException:
                traceback.print_exc()  # now: the shutdown that follows may take a while
                sys.stderr.flush()
                raise

    try:
        with supervised(controller):
            try:
                asyncio.run(run())
            finally:
                for child in psutil.Process().children(recursive=True):
                    try:
                        child.resume()  # a scenario that failed may have left one stopped
                    except psutil.NoSuchProcess:
                        pass
    except AssertionError:
        sys.exit(1)  # its traceback is printed already
    # `supervised` ended with a fast shutdown if the scenario left the cluster running.
    assert controller.supervisor is not None and controller.supervisor.exit_code is not None
    assert not (datadir / "postmaster.pid").exists(), "postmaster.pid left behind"
    leftovers = psutil.Process().children(recursive=True)
    assert not leftovers, f"processes left behind: {leftovers}"


# -- the tests -------------------------------------------------------------------------------


def run_scenario(scenario: Scenario, make_cluster) -> None:
    cluster = make_cluster()  # only its data directory: the dashboard runs the postmaster
    process = subprocess.Popen(
        [sys.executable, __file__, scenario.__name__, str(cluster.datadir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).parent,
    )
    try:
        output, _ = process.communicate(timeout=SCENARIO_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()  # its children follow it (the postmaster-death pipe)
        output, _ = process.communicate()
        raise AssertionError(f"{scenario.__name__} did not finish in {SCENARIO_TIMEOUT} s:\n{output[-6000:]}") from None
    assert process.returncode == 0, f"{scenario.__name__} failed:\n{output[-6000:]}"
    assert not (cluster.datadir / "postmaster.pid").exists()


def test_r_reloads_and_p_is_refused_on_a_primary(make_cluster):
    run_scenario(reload_then_promote_refused, make_cluster)


def test_k_kills_the_checkpointer_and_the_crash_cycle_brings_a_new_one(make_cluster):
    run_scenario(kill_checkpointer, make_cluster)


def test_t_terminates_the_walwriter_which_alone_comes_back(make_cluster):
    run_scenario(term_walwriter, make_cluster)


def test_q_quits_the_bgwriter_and_everyone_restarts(make_cluster):
    run_scenario(quit_bgwriter, make_cluster)


def test_z_f_s_c_S_freeze_fast_refusals_thaw_and_start_again(make_cluster):
    run_scenario(freeze_fast_refusals_thaw_start, make_cluster)


def test_s_S_i_smart_start_again_and_the_sigkill_escalation(make_cluster):
    run_scenario(smart_start_immediate_escalation, make_cluster)


def test_Q_shuts_down_and_leaves(make_cluster):
    run_scenario(quit_key, make_cluster)


if __name__ == "__main__":
    play(sys.argv[1], Path(sys.argv[2]))
