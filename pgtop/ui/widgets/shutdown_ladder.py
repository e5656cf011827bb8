"""The Shutdown level as a ladder, and the SIGKILL stopwatch while it runs."""

from __future__ import annotations

import math

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from pgtop.core.vocabulary import Shutdown

STEP_STYLE = {
    Shutdown.NO: "b reverse $success",
    Shutdown.SMART: "b reverse $accent",
    Shutdown.FAST: "b reverse $warning",
    Shutdown.IMMEDIATE: "b reverse $error",
}


class ShutdownLadder(Widget):
    """`No ▸ Smart ▸ Fast ▸ Immediate` with the current level lit; below it, while
    AbortStartTime is set, the seconds left before "issuing SIGKILL to recalcitrant children".
    """

    DEFAULT_CSS = """
    ShutdownLadder {
        height: 4;
        border: round $panel;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    """

    level: reactive[Shutdown] = reactive(Shutdown.NO)
    """The Shutdown level; it only goes up."""

    sigkill_in: reactive[float | None] = reactive(None)
    """Seconds until the SIGKILL escalation, or None when the stopwatch is not running."""

    def on_mount(self) -> None:
        self.border_title = "Shutdown"

    def render(self) -> Content:
        steps = []
        for level in Shutdown:
            name = level.name.capitalize()
            style = STEP_STYLE[level] if level == self.level else "$text-muted"
            steps.append(f"[{style}] {name} [/]")
        ladder = "[$text-muted]▸[/]".join(steps)
        return Content.from_markup(f"{ladder}\n{self._stopwatch()}")

    def _stopwatch(self) -> str:
        if self.sigkill_in is None:
            return ""
        if self.sigkill_in <= 0:
            return "[b $error]SIGKILL escalation: due now[/]"
        return f"[b $error]SIGKILL escalation in {math.ceil(self.sigkill_in)} s[/]"
