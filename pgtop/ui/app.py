"""The pgtop dashboard: renders snapshots from the supervisor, turns keys into commands."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer

from pgtop.core.vocabulary import Shutdown
from pgtop.runtime.snapshot import Controller, LogRecord, ShutdownMode, Snapshot
from pgtop.ui.commands import PgtopCommands
from pgtop.ui.control import ClusterCommands
from pgtop.ui.messages import LogArrived, SnapshotArrived
from pgtop.ui.themes import DEFAULT_THEME, load_themes
from pgtop.ui.widgets.caption import Caption
from pgtop.ui.widgets.children_table import ChildrenTable
from pgtop.ui.widgets.cluster_pane import ClusterPane
from pgtop.ui.widgets.status_line import StatusLine

OVERVIEW_WIDTH = 116  # the banner's 40 columns, the facts' 36 ("connsAllowed ALLOW_ALL_CONNS"), the diagram's 40


class PgtopApp(ClusterCommands, App[None]):
    """The dashboard.

    | Key | Description |
    | :- | :- |
    | r | Reload: SIGHUP to the postmaster. |
    | s / f / i | Smart / fast / immediate shutdown. |
    | S | Start the cluster again after it stopped. |
    | k / t / q | SIGKILL / SIGTERM / SIGQUIT the selected child. |
    | z / c | SIGSTOP / SIGCONT the selected child. |
    | p | Promote the standby. |
    | w | Toggle a small client load. |
    | o | Open a client session. |
    | T | Next theme. |
    | x | Save an SVG screenshot. |
    | ? | Help. |
    | Q | Quit: fast shutdown, then leave once the cluster is down. |

    The supervisor thread calls `post_snapshot` and `post_log`; both only post a message,
    so they never block that thread. Snapshots coalesce; log records never do.
    """

    CSS_PATH = str(Path(__file__).with_name("app.tcss"))  # absolute: subclasses live elsewhere
    TITLE = "pgtop"
    # The overview's three panels (banner, facts, state diagram) need this many columns;
    # a narrower screen is "-narrow", and app.tcss leaves the diagram out there.
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (OVERVIEW_WIDTH, "-wide")]
    COMMANDS = App.COMMANDS | {PgtopCommands}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reload", "Reload", id="reload", tooltip="SIGHUP to the postmaster"),
        Binding("s", "shutdown('smart')", "Smart", id="shutdown-smart", tooltip="Smart shutdown (SIGTERM)"),
        Binding("f", "shutdown('fast')", "Fast", id="shutdown-fast", tooltip="Fast shutdown (SIGINT)"),
        Binding("i", "shutdown('immediate')", "Immediate", id="shutdown-immediate", tooltip="Immediate shutdown (SIGQUIT)"),
        Binding("S", "start", "Start", id="start", show=False, tooltip="Start the cluster again after it stopped"),
        Binding("k", "signal_child('KILL')", "Kill", id="kill-child", tooltip="SIGKILL the selected child"),
        Binding("t", "signal_child('TERM')", "Term", id="term-child", tooltip="SIGTERM the selected child"),
        Binding("q", "signal_child('QUIT')", "Quit child", id="quit-child", tooltip="SIGQUIT the selected child"),
        Binding("z", "signal_child('STOP')", "Freeze", id="stop-child", show=False, tooltip="SIGSTOP the selected child"),
        Binding("c", "signal_child('CONT')", "Thaw", id="cont-child", show=False, tooltip="SIGCONT the selected child"),
        Binding("p", "promote", "Promote", id="promote", show=False, tooltip="Promote the standby"),
        Binding("w", "load_toggle", "Load", id="client-load", show=False, tooltip="Toggle a small client load"),
        Binding("o", "open_session", "Session", id="open-session", show=False, tooltip="Open a client session"),
        Binding("T", "cycle_theme", "Theme", id="cycle-theme", show=False, tooltip="Switch to the next theme"),
        Binding("x", "screenshot", "Screenshot", id="screenshot", show=False, tooltip="Save an SVG screenshot"),
        Binding("question_mark", "help", "Help", id="help", key_display="?", tooltip="Show every key"),
        Binding("Q", "quit", "Quit", id="quit", tooltip="Fast shutdown, then leave"),
    ]

    def __init__(
        self,
        controller: Controller,
        *,
        confirm: bool = True,
        readonly: bool = False,
        theme: str | None = None,
        title_note: str | None = None,
        clock: Callable[[], float] = time.time,
        screenshot_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.controller = controller
        self.confirm = confirm
        self.readonly = readonly
        self.title_note = title_note
        self.clock = clock
        self.screenshot_dir = Path(screenshot_dir) if screenshot_dir is not None else Path.cwd()
        self.snapshot: Snapshot | None = None
        self.quitting = False
        self.closing = False
        self._sink_lock = threading.Lock()
        self._sink_open = False
        self._early_snapshot: Snapshot | None = None
        self._early_logs: list[LogRecord] = []
        for pgtop_theme in load_themes():
            self.register_theme(pgtop_theme)
        self.theme = self._choose_theme(theme)

    def _choose_theme(self, theme: str | None) -> str:
        if theme is None:
            return DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
        if theme not in self.available_themes:
            raise ValueError(f"unknown theme {theme!r}; choose one of: {', '.join(self.theme_names())}")
        return theme

    # -- the sink the supervisor thread calls -----------------------------------------

    def post_snapshot(self, snapshot: Snapshot) -> None:
        """Thread-safe: show this snapshot (a newer one may replace it before it is drawn)."""
        with self._sink_lock:
            if not self._sink_open:
                self._early_snapshot = snapshot
                return
        self.post_message(SnapshotArrived(snapshot))

    def post_log(self, record: LogRecord) -> None:
        """Thread-safe: append this record to the server log; records are never dropped."""
        with self._sink_lock:
            if not self._sink_open:
                self._early_logs.append(record)
                return
        self.post_message(LogArrived(record))

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusLine()
        yield ClusterPane()
        yield Caption()
        yield Footer()

    def on_resize(self, event: events.Resize) -> None:
        """A narrow terminal gets the compact footer without the palette's hint (ctrl+p still
        opens it, and the help screen says so), so that "? Help" and "Q Quit" still fit at
        80 columns."""
        narrow = event.size.width < OVERVIEW_WIDTH
        try:
            footer = self.main_screen.query_one(Footer)
        except NoMatches:
            return  # not composed yet, or being torn down
        footer.compact = narrow
        if footer.show_command_palette == narrow:
            footer.show_command_palette = not narrow
            footer.refresh(recompose=True)  # the hint is composed in, not drawn

    def on_mount(self) -> None:
        status = self.query_one(StatusLine)
        status.confirm = self.confirm
        status.readonly = self.readonly
        status.note = self.title_note
        if self.title_note:
            self.query_one(Caption).say(self.title_note)
        self.query_one(ChildrenTable).focus()
        self.set_interval(1.0, self._tick)
        with self._sink_lock:
            self._sink_open = True
            for record in self._early_logs:
                self.post_message(LogArrived(record))
            if self._early_snapshot is not None:
                self.post_message(SnapshotArrived(self._early_snapshot))
            self._early_logs.clear()
            self._early_snapshot = None

    # -- snapshots and log records ---------------------------------------------------------

    @property
    def main_screen(self) -> Screen:
        """The dashboard's own screen, even while a dialog or the help screen is on top."""
        if not self.screen_stack:  # starting, or already gone: nothing to update
            raise NoMatches("the dashboard's screen is not mounted")
        return self.screen_stack[0]

    @property
    def pane(self) -> ClusterPane:
        """The cluster the keys act on."""
        return self.main_screen.query_one(ClusterPane)

    def on_snapshot_arrived(self, message: SnapshotArrived) -> None:
        try:
            self.apply_snapshot(message.snapshot)
        except NoMatches:  # the dashboard is not mounted yet: show it once it is
            self.call_after_refresh(self.post_message, SnapshotArrived(message.snapshot))

    def on_log_arrived(self, message: LogArrived) -> None:
        try:
            self.pane.append_log(message.record)
        except NoMatches:
            self.call_after_refresh(self.post_message, LogArrived(message.record))

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Bring every widget up to this snapshot."""
        self.snapshot = snapshot
        self.pane.apply(snapshot, self.clock())
        status = self.main_screen.query_one(StatusLine)
        status.data_dir = snapshot.data_dir
        status.port = snapshot.port
        if self.quitting and snapshot.state.exit_code is not None:
            self.finish_quit()

    def _tick(self) -> None:
        if self.snapshot is None:
            return
        try:
            self.pane.tick(self.snapshot.state, self.clock())
        except NoMatches:
            pass  # the dashboard is being torn down (quitting): nothing to refresh

    # -- messages to the user ----------------------------------------------------------------

    def say(self, message: str, severity: str = "information") -> None:
        """Show a one-line message in the caption line; warnings and errors also pop up."""
        self.main_screen.query_one(Caption).say(message, severity)
        if severity != "information":
            self.notify(message, severity=severity, markup=False)

    # -- keys that only touch the dashboard ------------------------------------------------

    def action_cycle_theme(self) -> None:
        names = self.theme_names()
        index = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(index + 1) % len(names)]
        self.say(f"theme: {self.theme}")

    def theme_names(self) -> list[str]:
        """pgtop's own themes first, then Textual's built-in ones."""
        names = sorted(self.available_themes, key=lambda name: (name != DEFAULT_THEME, name))
        return sorted(names, key=lambda name: not name.startswith("pgtop-"))

    def action_screenshot(self) -> None:
        try:
            path = self.save_screenshot(path=str(self.screenshot_dir))
        except OSError as error:
            self.say(f"screenshot not saved: {error.strerror}: {self.screenshot_dir}", "error")
            return
        self.say(f"screenshot saved to {path}")

    def action_help(self) -> None:
        from pgtop.ui.screens.help_screen import HelpScreen

        self.push_screen(HelpScreen(self.key_table()))

    def key_table(self) -> list[tuple[str, str]]:
        """(key as shown, what it does) for every dashboard binding, as currently mapped."""
        return [(self.key_of(binding), binding.tooltip or binding.description) for binding in self.BINDINGS]

    def key_of(self, binding: Binding) -> str:
        """The key that runs this binding now, after any keymap, as the footer shows it."""
        key = self._keymap.get(binding.id, binding.key)  # Textual keeps the keymap private
        return self.get_key_display(dataclasses.replace(binding, key=key.split(",")[0].strip()))

    # -- quitting --------------------------------------------------------------------------

    def action_quit(self) -> None:
        state = self.snapshot.state if self.snapshot is not None else None
        if self.readonly or state is None or state.exit_code is not None or self.quitting:
            self.finish_quit()
            return
        question = (
            f"Stop the cluster with a fast shutdown (SIGINT to postmaster PID "
            f"{self.snapshot.postmaster_pid}) and quit?"
        )
        self.ask(question, "Shut down and quit", self._begin_quit)

    def _begin_quit(self) -> None:
        self.quitting = True
        if self.snapshot.state.shutdown >= Shutdown.FAST:
            self.say("quitting once the cluster is down (Q again to leave now)")
        elif self.send("", lambda: self.controller.shutdown(ShutdownMode.FAST)):
            self.say("fast shutdown requested: quitting once the cluster is down (Q again to leave now)")

    def finish_quit(self) -> None:
        """Leave: close the controller first if it has a `close()`."""
        close = getattr(self.controller, "close", None)
        if close is None or self.readonly:
            self.exit()
        elif not self.closing:
            self.closing = True
            self.say("waiting for the cluster to stop")
            self.run_worker(self._close_then_exit(close), group="quit")

    async def _close_then_exit(self, close: Callable[[], object]) -> None:
        await asyncio.to_thread(close)
        self.exit()
