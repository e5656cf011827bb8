"""The dashboard over a real PostgreSQL 15 (Textual's pilot): what is on screen, what the
keys do to the real server, read-only mode, and a user who is not the server's owner."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from collections.abc import Callable

from attach_helpers import (
    DEADLINE,
    Recorder,
    as_stranger,
    ps_children,
    same_process_alive,
    wait_until,
)
from rich.text import Text
from textual.widgets import Label

from pgtop.attach.command import attach_app
from pgtop.attach.proctable import process_start_time
from pgtop.attach.source import AttachSource, attach_source
from pgtop.ui.screens.confirm_screen import ConfirmScreen
from pgtop.ui.widgets.caption import Caption
from pgtop.ui.widgets.children_table import ChildrenTable
from pgtop.ui.widgets.pmstate_banner import PMStateBanner
from pgtop.ui.widgets.server_log import ServerLog
from pgtop.ui.widgets.status_line import StatusLine

SIZE = (180, 50)


def options(**given: object) -> argparse.Namespace:
    defaults = {"pgdata": None, "pid": None, "port": None, "host_dir": None, "log": None, "spawn": False, "readonly": False, "no_confirm": False, "theme": None}
    return argparse.Namespace(**{**defaults, **given})


def run_dashboard(source: AttachSource, args: argparse.Namespace, scenario: Callable) -> None:
    """The attach dashboard headless, fed by the real server, then the scenario."""
    app = attach_app(source, args, screenshot_dir="/tmp")

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            source.start(app)
            await scenario(pilot, app)

    try:
        asyncio.run(run())
    finally:
        source.stop()


async def until(pilot, what: str, condition: Callable[[], bool], timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not on screen within {timeout} s")
        await pilot.pause(0.02)


def caption(app) -> str:
    return str(app.query_one(Caption).render())


def banner(app) -> str:
    return str(app.query_one(PMStateBanner).render())


def logged(app, text: str) -> bool:
    return any(text in line for line in app.query_one(ServerLog).lines)


def rows(app) -> dict[str, dict[str, str]]:
    """The children table as shown: kind -> cells (one row per kind is enough here)."""
    table = app.query_one(ChildrenTable)
    shown = {}
    for key in table.rows:
        cells = {column: Text.from_markup(cell).plain for (column, _, _), cell in zip(table.COLUMNS, table.get_row(key.value))}
        if cells["status"] != "exited":
            shown[cells["kind"]] = cells
    return shown


def shown_pids(app) -> set[int]:
    table = app.query_one(ChildrenTable)
    cells = [table.get_row(key.value) for key in table.rows]
    return {int(row[1]) for row in cells if row[1] and Text.from_markup(row[2]).plain != "exited"}


def row_pid(app, kind: str) -> int | None:
    cells = rows(app).get(kind)
    return int(cells["pid"]) if cells and cells["pid"] else None


def select(app, kind: str) -> int:
    """Move the cursor to a child's row; its PID."""
    table = app.query_one(ChildrenTable)
    for key in table.rows:
        cells = table.get_row(key)
        if Text.from_markup(cells[0]).plain == kind and cells[2] == "running":
            table.move_cursor(row=table.get_row_index(key), animate=False)
            return int(cells[1])
    raise AssertionError(f"no running {kind} row")


async def confirm(pilot, app) -> str:
    await until(pilot, "the confirmation", lambda: isinstance(app.screen, ConfirmScreen))
    question = str(app.screen.query_one("#question", Label).render())
    await pilot.click("#confirm")
    return question


async def running(pilot, app, kinds=("checkpointer", "background writer", "walwriter")) -> None:
    await until(pilot, "PM_RUN with its children", lambda: banner(app).startswith("PM_RUN") and all(row_pid(app, k) for k in kinds))


def test_the_real_children_are_on_screen_and_quitting_leaves_the_server_running(server):
    postmaster = server.postmaster_pid()
    source = attach_source(options(pgdata=str(server.data_dir)))

    async def scenario(pilot, app) -> None:
        await running(pilot, app)
        ps = ps_children(postmaster)
        await until(pilot, "every child ps shows", lambda: shown_pids(app) == set(ps))
        for kind, cells in rows(app).items():
            if kind != "client backend":
                assert kind in ps[int(cells["pid"])]
        await until(pilot, "the facts seen", lambda: "seen: postmaster.pid, ps, log, pg_stat_activity; pmState inferred" in str(app.query_one(StatusLine).render()))
        await pilot.press("Q")
        await until(pilot, "leaving", lambda: not app.is_running)

    run_dashboard(source, options(), scenario)
    assert server.postmaster_pid() == postmaster, "quitting an attached dashboard must not stop the server"


def test_k_on_the_checkpointer_shows_the_crash_cycle_and_the_new_pids(server):
    source = attach_source(options(pgdata=str(server.data_dir)))
    recorder = Recorder()
    source.watcher.subscribe(recorder.post_snapshot)

    async def scenario(pilot, app) -> None:
        await running(pilot, app)
        old = select(app, "checkpointer")
        await pilot.press("k")
        assert await confirm(pilot, app) == f"Send SIGKILL to checkpointer (PID {old})?"
        await until(pilot, "the crash in the log", lambda: logged(app, f"checkpointer process (PID {old}) was terminated by signal 9: Killed"))
        await until(pilot, "a new checkpointer in PM_RUN", lambda: banner(app).startswith("PM_RUN") and row_pid(app, "checkpointer") not in (None, old))
        new = row_pid(app, "checkpointer")
        await until(pilot, "the lineage", lambda: rows(app)["checkpointer"]["lineage"].startswith(f"{old} → {new}, crash, everyone restarts, back in"))
        assert rows(app)["checkpointer"]["last_exit"] == "SIGKILL"

    run_dashboard(source, options(), scenario)
    assert recorder.pm_states() == ["RUN", "WAIT_BACKENDS", "WAIT_DEAD_END", "NO_CHILDREN", "STARTUP", "RUN"]


def test_reload_and_fast_shutdown_from_the_keys_reach_the_real_server(server):
    source = attach_source(options(pgdata=str(server.data_dir)))
    postmaster = server.postmaster_pid()
    started_at = process_start_time(postmaster)

    async def scenario(pilot, app) -> None:
        await running(pilot, app)
        await pilot.press("r")
        assert caption(app) == f"reload requested: SIGHUP sent to postmaster {postmaster}"
        await until(pilot, "the reload in the log", lambda: logged(app, "LOG:  received SIGHUP, reloading configuration files"))
        await pilot.press("f")
        assert await confirm(pilot, app) == f"Send SIGINT (fast shutdown) to the postmaster (PID {postmaster})?"
        await until(pilot, "the postmaster's exit", lambda: "the postmaster has exited" in banner(app))
        assert logged(app, "LOG:  received fast shutdown request") and logged(app, "LOG:  database system is shut down")

    run_dashboard(source, options(), scenario)
    assert server.postmaster_pid() is None
    wait_until(lambda: not same_process_alive(postmaster, started_at), "the postmaster's end", timeout=5)


def test_readonly_refuses_every_command_and_sends_nothing(server):
    source = attach_source(options(pgdata=str(server.data_dir)))
    postmaster = server.postmaster_pid()

    async def scenario(pilot, app) -> None:
        await running(pilot, app)
        for key in ("f", "i", "r"):
            await pilot.press(key)
            assert caption(app) == "read-only: nothing sent"
            assert not isinstance(app.screen, ConfirmScreen)
        select(app, "checkpointer")
        await pilot.press("k")
        assert caption(app) == "read-only: nothing sent"
        # A SIGHUP of our own: the server logs it only if no shutdown was requested before.
        os.kill(postmaster, signal.SIGHUP)
        await until(pilot, "our own reload", lambda: logged(app, "received SIGHUP, reloading configuration files"))
        assert not logged(app, "shutdown request") and banner(app).startswith("PM_RUN")

    run_dashboard(source, options(readonly=True), scenario)
    assert server.postmaster_pid() == postmaster


def test_a_user_who_is_not_the_owner_sees_why_on_screen(server):
    postmaster = server.postmaster_pid()

    def dashboard_as_stranger() -> list[str]:
        said: list[str] = []
        source = attach_source(options(pid=postmaster))

        async def scenario(pilot, app) -> None:
            await running(pilot, app)
            await pilot.press("r")
            said.append(caption(app))
            checkpointer = select(app, "checkpointer")
            await pilot.press("k")
            await confirm(pilot, app)
            await until(pilot, "the refusal", lambda: str(checkpointer) in caption(app))
            said.append(caption(app))

        run_dashboard(source, options(), scenario)
        return said

    checkpointer = next(pid for pid, title in ps_children(postmaster).items() if "checkpointer" in title)
    assert as_stranger(dashboard_as_stranger) == [
        f"not allowed to signal process {postmaster}: run pgtop as the server's owner (postgres)",
        f"not allowed to signal process {checkpointer}: run pgtop as the server's owner (postgres)",
    ]
    assert checkpointer in ps_children(postmaster), "nothing was sent"
