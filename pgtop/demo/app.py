"""`pgtop demo NAME` on screen: the dashboard plus the presenter's view, driven by a player.

| Key | Description |
| :- | :- |
| space | Pause / resume the script. |
| n | Play one step, then pause. |
| R | Restart the scenario on a fresh cluster. |

Every dashboard key still works (without confirmations: this is a stage). The script's keys
go through the dashboard exactly as the presenter's do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, TypeVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Footer

from pgtop.demo.observer import Observer
from pgtop.demo.player import Player, PlayerEvent
from pgtop.demo.scenario import Scenario
from pgtop.demo.stage import DemoController
from pgtop.demo.widgets import BigBanner, KeyOverlay, ScriptPanel
from pgtop.runtime.snapshot import LogRecord, Snapshot
from pgtop.ui.app import PgtopApp
from pgtop.ui.widgets.children_table import ChildrenTable

WidgetType = TypeVar("WidgetType", bound=Widget)
UI_DIR = Path(__file__).resolve().parent.parent / "ui"
REPORT_MARKS = {"caption": "  caption: ", "action": "  → ", "passed": "✓ ", "failed": "✗ ", "skipped": "- ", "context": "   | ", "finished": "== "}
RESULT_WINDOW = 2.0  # seconds after a key in which the dashboard's message is its result


class PlayerMessage(Message):
    def __init__(self, event: PlayerEvent) -> None:
        super().__init__()
        self.event = event


class PressKey(Message):
    def __init__(self, key: str, child_id: int | None) -> None:
        super().__init__()
        self.key = key
        self.child_id = child_id


class DemoApp(PgtopApp):
    """The dashboard with a state banner, the last key, and the script's captions."""

    CSS_PATH: ClassVar[list[Path]] = [UI_DIR / "app.tcss"]  # the dashboard's own layout
    CSS = """
    #presenter { height: 5; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        *PgtopApp.BINDINGS,
        Binding("space", "toggle_pause", "Pause/resume", id="demo-pause", priority=True, tooltip="Pause or resume the script"),
        Binding("n", "step_once", "Step", id="demo-step", priority=True, tooltip="Play one step of the script, then pause"),
        Binding("R", "restart_scenario", "Restart", id="demo-restart", priority=True, tooltip="Restart the scenario on a fresh cluster"),
    ]

    def __init__(
        self,
        controller: DemoController,
        observer: Observer,
        scenario: Scenario,
        *,
        pace: str = "stage",
        report: Callable[[str], None] | None = None,
        **options,
    ) -> None:
        options.setdefault("confirm", False)
        options.setdefault("title_note", f"demo: {scenario.name}")
        super().__init__(controller, **options)
        self.observer = observer
        self.scenario = scenario
        self.pace = pace
        self.player = Player(scenario, controller, observer, self, pace=pace)
        self.events: list[PlayerEvent] = []
        self.report = report
        self._key_at = 0.0

    # -- taps: the player sees everything the dashboard is sent -----------------------------

    def post_snapshot(self, snapshot: Snapshot) -> None:
        self.observer.snapshot(snapshot)
        super().post_snapshot(snapshot)

    def post_log(self, record: LogRecord) -> None:
        self.observer.log(record)
        super().post_log(record)

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="presenter"):
            yield BigBanner()
            yield KeyOverlay()
        for widget in super().compose():
            if isinstance(widget, Footer):
                yield ScriptPanel()
            yield widget

    def on_mount(self) -> None:
        panel = self._dashboard(ScriptPanel)
        panel.progress = f"{self.scenario.name}: {self.scenario.summary}"
        panel.playing = "playing"
        self.player.start()

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        super().apply_snapshot(snapshot)
        banner = self._dashboard(BigBanner)
        state = snapshot.state
        banner.pm_state = state.pm_state
        banner.fatal_error = state.fatal_error
        banner.shutdown = state.shutdown
        banner.exit_code = state.exit_code

    def _dashboard(self, widget_type: type[WidgetType]) -> WidgetType:
        """A widget of the dashboard's own screen, even while a dialog or help is on top."""
        return self.screen_stack[0].query_one(widget_type)

    # -- what the player asks of the dashboard (called from its thread) ---------------------

    def player_event(self, event: PlayerEvent) -> None:
        self.post_message(PlayerMessage(event))

    def press(self, key: str, child_id: int | None) -> None:
        self.post_message(PressKey(key, child_id))

    def on_press_key(self, message: PressKey) -> None:
        if message.child_id is not None:
            latest = self.observer.latest
            if latest is not None and latest is not self.snapshot:
                self.apply_snapshot(latest)  # the row the script means must be there
            table = self._dashboard(ChildrenTable)
            row = str(message.child_id)
            if row in table.rows:
                table.move_cursor(row=table.get_row_index(row), animate=False)
        self.simulate_key(message.key)

    def on_player_message(self, message: PlayerMessage) -> None:
        event = message.event
        self.events.append(event)
        if self.report is not None and event.kind in REPORT_MARKS:
            self.report(f"{REPORT_MARKS[event.kind]}{event.text}")
        panel = self._dashboard(ScriptPanel)
        total = len(self.scenario.steps)
        where = f"step {event.index + 1}/{total} · line {event.line}" if event.index >= 0 else ""
        if event.kind == "caption":
            panel.caption = event.text
        elif event.kind in ("step", "passed", "skipped"):
            panel.progress = f"{where} · {event.text}"
        elif event.kind == "failed":
            panel.progress = f"✗ {event.text}"
            panel.playing = "failed"
        elif event.kind == "action":
            self._dashboard(KeyOverlay).show("script", event.text)
        elif event.kind in ("paused", "playing"):
            if panel.playing != "failed" or event.kind == "playing":
                panel.playing = event.kind
        elif event.kind == "finished":
            panel.progress = event.text
            panel.playing = "done" if event.ok else "failed"
            if self.pace == "headless":
                self.exit(return_code=0 if event.ok else 1)

    # -- the overlay: every key and what it did -----------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded:
            active = self.active_bindings.get(event.key)
            if active is not None:
                binding = active.binding
                self._dashboard(KeyOverlay).show(self.get_key_display(binding), binding.tooltip or binding.description)
                self._key_at = time.monotonic()
        await super().on_event(event)

    def say(self, message: str, severity: str = "information") -> None:
        super().say(message, severity)
        if time.monotonic() - self._key_at < RESULT_WINDOW:
            self._dashboard(KeyOverlay).result = message

    # -- the presenter's keys ------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        self.player.toggle_pause()

    def action_step_once(self) -> None:
        self.player.step_once()

    def action_restart_scenario(self) -> None:
        self._dashboard(ScriptPanel).caption = ""
        self.player.restart()
