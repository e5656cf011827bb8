"""`pgtop --with-standby`: a primary and its streaming standby in one dashboard.

Each cluster has a postmaster of its own, as in PostgreSQL: the primary's supervisor runs in
this process (as for `pgtop`), the standby is a `pgtop run` that this dashboard starts in a
process of its own and follows through its control socket. Two postmasters in one process
could not be told apart by `kill` or `pgtop ctl` (one PID for both); two processes can.

The standby is made on the first run with a base backup of the primary once the primary
accepts connections (`pgtop init --standby-of`), in DIR-standby unless `--standby-dir` says
otherwise. `1` and `2` switch the cluster on screen, and every key acts on that one; the strip
at the top shows both, and the standby's replay lag. Q stops both; if this process dies, the
standby gets a fast shutdown from the kernel (see pgtop.runtime.background).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.widgets import ContentSwitcher, Footer

from pgtop.core.config import Config
from pgtop.core.vocabulary import PMState
from pgtop.runtime.background import BackgroundCluster
from pgtop.runtime.datadir import DataDirError, find_free_port, init_datadir
from pgtop.runtime.snapshot import CommandRefused, LogRecord, ShutdownMode, Snapshot
from pgtop.ui.app import PgtopApp
from pgtop.ui.launch import DashboardController
from pgtop.ui.messages import LogArrived, SnapshotArrived
from pgtop.ui.remote import RemoteController
from pgtop.ui.widgets.caption import Caption
from pgtop.ui.widgets.cluster_pane import ClusterPane
from pgtop.ui.widgets.replication_strip import ROLES, ReplicationStrip
from pgtop.ui.widgets.status_line import StatusLine

STANDBY_LOG = "pgtop-standby.log"  # the standby's `pgtop run` output, under log/ in its directory
READY_TIMEOUT = 60.0


def standby_dir_for(primary: Path) -> Path:
    return primary.with_name(f"{primary.name}-standby")


class StandbyController(RemoteController):
    """The standby: a `pgtop run` this dashboard made, starts and stops, followed like a
    viewer follows one (commands as pg_ctl sends them)."""

    def __init__(self, datadir: Path) -> None:
        super().__init__(datadir)
        self.cluster = BackgroundCluster(datadir, datadir / "log" / STANDBY_LOG)

    def prepare(self, primary_port: int, socket_dirs: str) -> str | None:
        """Make the standby with a base backup of the running primary, unless it exists; its
        Unix sockets go where the primary's go. Blocking (seconds). What was done, or None.
        Raises DataDirError."""
        if (self.datadir / "pgtop.yaml").exists():
            return None
        port = find_free_port(primary_port + 1, socket_dirs.split(",")[0].strip())
        init_datadir(self.datadir, port=port, standby_of=f"host=127.0.0.1 port={primary_port}")
        if socket_dirs != Config().unix_socket_directories:
            with (self.datadir / "pgtop.yaml").open("a") as config:
                config.write(f"unix_socket_directories: {json.dumps(socket_dirs)}  # as the primary's\n")
        return f"standby made in {self.datadir} (port {port}) from a base backup of the primary"

    def launch(self) -> None:
        """Start its postmaster: call from the main thread (the death signal is tied to the
        thread that forks)."""
        self.cluster.start()

    def start(self) -> str:
        if self.cluster.running:
            raise CommandRefused("the standby is already running")
        try:
            self.launch()
        except OSError as error:
            raise CommandRefused(f"could not start the standby: {error.strerror}") from None
        return "standby started"

    @property
    def stopped(self) -> bool:
        return not self.cluster.running

    def close(self) -> None:
        """Stop following, then stop its postmaster (fast, then harder)."""
        super().close()
        self.cluster.stop()


class _StandbySink:
    """What the standby's stream feeds: the dashboard, tagged as the standby's."""

    def __init__(self, app: PairApp) -> None:
        self.app = app

    def post_snapshot(self, snapshot: Snapshot) -> None:
        self.app.post_message(SnapshotArrived(snapshot, "standby"))

    def post_log(self, record: LogRecord) -> None:
        self.app.post_message(LogArrived(record, "standby"))


class PairApp(PgtopApp):
    """The dashboard over a primary and its standby; the keys act on the one on screen."""

    CSS = """
    PairApp ContentSwitcher { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        *PgtopApp.BINDINGS,
        Binding("1", "show('primary')", "Primary", id="show-primary", tooltip="Show the primary: the keys act on it"),
        Binding("2", "show('standby')", "Standby", id="show-standby", tooltip="Show the standby: the keys act on it"),
    ]

    def __init__(self, primary: DashboardController, standby: StandbyController, **options) -> None:
        super().__init__(primary, **options)
        self.controllers = {"primary": primary, "standby": standby}
        self.primary = primary
        self.standby = standby
        self.latest: dict[str, Snapshot | None] = dict.fromkeys(ROLES)
        self.active = "primary"
        self._primary_ready = asyncio.Event()

    def compose(self) -> ComposeResult:
        yield StatusLine()
        yield ReplicationStrip()
        with ContentSwitcher(initial="primary"):
            for role in ROLES:
                yield ClusterPane(id=role)
        yield Caption()
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(ReplicationStrip).note = "waiting for the primary to accept connections"
        self.run_worker(self._bring_up_standby(), group="standby", exit_on_error=False)

    async def _bring_up_standby(self) -> None:
        """A base backup needs a running primary; then the standby's postmaster starts."""
        await self._primary_ready.wait()
        strip = self.query_one(ReplicationStrip)
        strip.note = "making the standby: base backup of the primary"
        primary = self.primary.supervisor
        assert primary is not None
        try:
            made = await asyncio.to_thread(self.standby.prepare, primary.config.port, primary.config.unix_socket_directories)
        except DataDirError as error:
            strip.note = f"no standby: {error.message}"
            self.say(f"no standby: {error.message}", "error")
            return
        if self.quitting:
            return  # Q came during the base backup: nothing to start
        if made:
            self.say(made)
        strip.note = "starting the standby"
        try:
            self.standby.launch()  # here, on the main thread: see StandbyController.launch
        except OSError as error:
            strip.note = f"the standby did not start: {error.strerror}"
            self.say(strip.note, "error")
            return
        self.standby.attach(_StandbySink(self))
        reason = await asyncio.to_thread(self.standby.cluster.wait_ready, READY_TIMEOUT)
        if reason is not None:
            strip.note = f"the standby did not start: {reason}"
            self.say(strip.note, "error")

    # -- two clusters ------------------------------------------------------------------------

    @property
    def pane(self) -> ClusterPane:
        return self.pane_of(self.active)

    def pane_of(self, role: str) -> ClusterPane:
        return self.main_screen.query_one(f"#{role}", ClusterPane)

    def on_snapshot_arrived(self, message: SnapshotArrived) -> None:
        message.prevent_default()  # not PgtopApp's handler: it knows one cluster only
        role = message.origin or "primary"
        try:
            self.show_snapshot(role, message.snapshot)
        except NoMatches:  # not mounted yet
            self.call_after_refresh(self.post_message, SnapshotArrived(message.snapshot, message.origin))

    def on_log_arrived(self, message: LogArrived) -> None:
        message.prevent_default()
        try:
            self.pane_of(message.origin or "primary").append_log(message.record)
        except NoMatches:
            self.call_after_refresh(self.post_message, LogArrived(message.record, message.origin))

    def show_snapshot(self, role: str, snapshot: Snapshot) -> None:
        self.latest[role] = snapshot
        now = self.clock()
        self.pane_of(role).apply(snapshot, now)
        strip = self.main_screen.query_one(ReplicationStrip)
        setattr(strip, role, snapshot)
        strip.now = now
        if role == "primary" and snapshot.state.pm_state is PMState.RUN:
            self._primary_ready.set()
        if role == self.active:
            self._show_active()
        if self.quitting and self._all_stopped():
            self.finish_quit()

    def _show_active(self) -> None:
        self.controller = self.controllers[self.active]
        self.snapshot = self.latest[self.active]
        status = self.main_screen.query_one(StatusLine)
        status.data_dir = self.snapshot.data_dir if self.snapshot is not None else str(self.standby.datadir)
        status.port = self.snapshot.port if self.snapshot is not None else None

    def action_show(self, role: str) -> None:
        self.active = role
        self.main_screen.query_one(ContentSwitcher).current = role
        self.main_screen.query_one(ReplicationStrip).active = role
        self._show_active()
        self.pane.children_table.focus()
        self.say(f"showing the {role}: the keys act on it")

    def _tick(self) -> None:
        now = self.clock()
        try:
            for role, snapshot in self.latest.items():
                if snapshot is not None:
                    self.pane_of(role).tick(snapshot.state, now)
            self.main_screen.query_one(ReplicationStrip).now = now
        except NoMatches:
            pass  # quitting

    # -- quitting: both clusters -------------------------------------------------------------

    def action_quit(self) -> None:
        if self.readonly or self.quitting or self._all_stopped():  # read-only: leave (both stop)
            self.finish_quit()
            return
        self.ask("Stop the primary and the standby (fast shutdown) and quit?", "Shut down both and quit", self._begin_quit)

    def _begin_quit(self) -> None:
        self.quitting = True
        for role, controller in self.controllers.items():
            snapshot = self.latest[role]
            if snapshot is not None and snapshot.state.exit_code is None:
                self.send("", lambda controller=controller: controller.shutdown(ShutdownMode.FAST))
        self.say("fast shutdown of both requested: quitting once they are down (Q again to leave now)")
        if self._all_stopped():
            self.finish_quit()

    def _all_stopped(self) -> bool:
        """Both postmasters have exited (or never ran); close() then waits for the processes."""
        primary, standby = self.latest["primary"], self.latest["standby"]
        primary_down = primary is None or primary.state.exit_code is not None
        standby_down = self.standby.stopped or (standby is not None and standby.state.exit_code is not None)
        return primary_down and standby_down

    def finish_quit(self) -> None:
        if not self.closing:
            self.closing = True
            self.say("waiting for both clusters to stop")
            self.run_worker(self._close_both_then_exit(), group="quit")

    async def _close_both_then_exit(self) -> None:
        await asyncio.gather(*(asyncio.to_thread(c.close) for c in self.controllers.values()))
        self.exit()


def pair_app(controller: DashboardController, args: argparse.Namespace, **options) -> PairApp:
    """The pair dashboard for `pgtop --with-standby [--standby-dir DIR]`."""
    standby_dir = Path(args.standby_dir) if args.standby_dir else standby_dir_for(controller.datadir)
    standby = StandbyController(standby_dir.absolute())
    controller.add_cleanup(standby.close)  # its postmaster stops with ours
    return PairApp(controller, standby, **options)
