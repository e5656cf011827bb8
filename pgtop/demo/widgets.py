"""The presenter's widgets: a state banner in block letters, the last key and what it did,
and the script panel with the audience caption and where the play stands."""

from __future__ import annotations

from textual.content import Content
from textual.markup import escape
from textual.reactive import reactive
from textual.widget import Widget

from pgtop.core.vocabulary import PM_STATE_MEANING, PMState, Shutdown
from pgtop.demo import font
from pgtop.ui.widgets.pmstate_banner import PHASE


class BigBanner(Widget):
    """The pmState in block letters, with what it means; FatalError and Shutdown beside it."""

    DEFAULT_CSS = """
    BigBanner {
        width: 1fr;
        height: 5;
        padding: 1 1 0 1;
        content-align: center top;
        text-align: center;
        color: $primary;
        &.-running { color: $success; }
        &.-starting { color: $accent; }
        &.-stopping { color: $warning; }
        &.-fatal { color: $error; }
    }
    """

    pm_state: reactive[PMState | None] = reactive(None)
    """The state shown, None before the first snapshot."""

    fatal_error: reactive[bool] = reactive(False)
    shutdown: reactive[Shutdown] = reactive(Shutdown.NO)
    exit_code: reactive[int | None] = reactive(None)
    """The postmaster's exit code once it has exited."""

    def render(self) -> Content:
        if self.pm_state is None:
            title, meaning = "WAITING", "waiting for the postmaster"
        elif self.exit_code is not None:
            title, meaning = f"EXITED {self.exit_code}", f"the postmaster exited with code {self.exit_code}"
        else:
            title, meaning = self.pm_state.pg_name, PM_STATE_MEANING[self.pm_state]
            notes = []
            if self.fatal_error:
                notes.append("FatalError: crash cycle")
            if self.shutdown is not Shutdown.NO:
                notes.append(f"{self.shutdown.name.lower()} shutdown")
            if notes:
                meaning = f"{meaning}  ·  {'  ·  '.join(notes)}"
        lines = font.render(title) if font.width(title) <= self.size.width - 2 else ["", title, ""]
        return Content.from_markup("[b]" + escape("\n".join(lines)) + f"[/]\n[$text-muted]{escape(meaning)}[/]")

    def watch_pm_state(self) -> None:
        self._restyle()

    def watch_fatal_error(self) -> None:
        self._restyle()

    def _restyle(self) -> None:
        phase = PHASE.get(self.pm_state) if self.pm_state is not None else None
        for name in ("-running", "-starting", "-stopping"):
            self.set_class(name == phase, name)
        self.set_class(self.fatal_error, "-fatal")


class KeyOverlay(Widget):
    """The last key pressed (by the presenter or the script) and the action it ran."""

    DEFAULT_CSS = """
    KeyOverlay {
        width: 48;
        height: 5;
        border: round $accent;
        border-title-color: $accent;
        padding: 0 1;
    }
    """

    key: reactive[str] = reactive("")
    """The key as shown ("k", "space"), or "script" for a scripted action."""

    action: reactive[str] = reactive("")
    """What the key is bound to."""

    result: reactive[str] = reactive("")
    """What happened: the dashboard's message after the key."""

    def on_mount(self) -> None:
        self.border_title = "last key"

    def render(self) -> Content:
        if not self.key:
            return Content.from_markup("[$text-muted]no key pressed yet[/]")
        head = f"[b reverse] {escape(self.key)} [/] [b]{escape(self.action)}[/]"
        return Content.from_markup(f"{head}\n{escape(self.result)}")

    def show(self, key: str, action: str, result: str = "") -> None:
        self.key, self.action, self.result = key, action, result


class ScriptPanel(Widget):
    """The caption for the audience, the step being played, and the presenter's keys."""

    DEFAULT_CSS = """
    ScriptPanel {
        height: 6;
        border: thick $accent;
        border-title-color: $accent;
        padding: 0 1;
        &.-failed { border: thick $error; border-title-color: $error; }
        &.-done { border: thick $success; border-title-color: $success; }
    }
    """

    caption: reactive[str] = reactive("")
    """The latest caption: it explains the rule in play."""

    progress: reactive[str] = reactive("")
    """Where the play stands: the step, its line, what it did or waits for."""

    playing: reactive[str] = reactive("playing")
    """playing, paused, failed or done."""

    def render(self) -> Content:
        caption = f"[b]{escape(self.caption)}[/]" if self.caption else "[$text-muted]no caption yet[/]"
        return Content.from_markup(f"{caption}\n\n[$text-muted]{escape(self.progress)}[/]")

    def watch_playing(self, playing: str) -> None:
        hints = {
            "playing": "▶ playing · space: pause · n: one step · R: restart",
            "paused": "‖ paused · space: resume · n: one step · R: restart",
            "failed": "✗ an expectation failed · space: go on · R: restart",
            "done": "✓ the end · R: play again · Q: quit",
        }
        self.border_title = hints.get(playing, playing)
        self.set_class(playing == "failed", "-failed")
        self.set_class(playing == "done", "-done")
