"""The eleven pmStates as a compact flow, with the current one lit."""

from __future__ import annotations

from textual.content import Content
from textual.markup import escape
from textual.reactive import reactive
from textual.widget import Widget

from pgtop.core.state import Transition
from pgtop.core.vocabulary import PMState

S = PMState
# Each line: pieces of plain text and states. The left column runs down to RUN, the right
# column continues from STOP_BACKENDS, and NO_CHILDREN loops back to STARTUP (crash reinit).
DIAGRAM: tuple[tuple[str | PMState, ...], ...] = (
    (S.INIT, "              ┌▶ ", S.STOP_BACKENDS),
    (S.STARTUP, " ◀──────┐  │  ", S.WAIT_BACKENDS),
    (S.RECOVERY, "       │  │  ", S.SHUTDOWN),
    (S.HOT_STANDBY, "    │  │  ", S.SHUTDOWN_2),
    (S.RUN, " ───────────┼──┘  ", S.WAIT_DEAD_END),
    ("               └──── ", S.NO_CHILDREN),
)


class StateDiagram(Widget):
    """INIT → … → RUN → STOP_BACKENDS → … → NO_CHILDREN ↺ STARTUP, the current state lit
    and the state before the last transition underlined, with that transition's rule."""

    DEFAULT_CSS = """
    StateDiagram {
        height: auto;
        border: round $panel;
        border-title-color: $text-muted;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    pm_state: reactive[PMState | None] = reactive(None)
    """The state to light."""

    last_transition: reactive[Transition | None] = reactive(None)
    """The last pmState change and the rule that made it."""

    def on_mount(self) -> None:
        self.border_title = "pmState"

    def render(self) -> Content:
        lines = ["".join(self._piece(piece) for piece in line) for line in DIAGRAM]
        lines.append(self._transition())
        return Content.from_markup("\n".join(lines))

    def _piece(self, piece: str | PMState) -> str:
        if not isinstance(piece, PMState):
            return f"[$text-muted]{piece}[/]"
        before = self.last_transition.before if self.last_transition else None
        if piece == self.pm_state:
            return f"[b reverse $accent]{piece.name}[/]"
        if piece == before:
            return f"[u $warning]{piece.name}[/]"
        return piece.name

    def _transition(self) -> str:
        transition = self.last_transition
        if transition is None:
            return "[$text-muted]no transition yet[/]"
        arrow = f"{transition.before.pg_name} → {transition.after.pg_name}"
        return f"[$warning]{arrow}[/]\n[$text-muted]{escape(transition.rule)}[/]"
