"""The pmState banner: the PostgreSQL name of the state, large, and what it means.

Attached to a real server (`pgtop attach`), pmState is never seen, only inferred: the banner
says so, and from what (the names in `observed`: see `pgtop.attach.observed`)."""

from __future__ import annotations

from textual.content import Content
from textual.markup import escape
from textual.reactive import reactive
from textual.widget import Widget

from pgtop.attach.observed import pm_state_basis
from pgtop.core.vocabulary import PM_STATE_MEANING, PMState

PHASE = {
    **dict.fromkeys((PMState.INIT, PMState.STARTUP, PMState.RECOVERY), "-starting"),
    **dict.fromkeys((PMState.HOT_STANDBY, PMState.RUN), "-running"),
    **dict.fromkeys(
        (
            PMState.STOP_BACKENDS,
            PMState.WAIT_BACKENDS,
            PMState.SHUTDOWN,
            PMState.SHUTDOWN_2,
            PMState.WAIT_DEAD_END,
            PMState.NO_CHILDREN,
        ),
        "-stopping",
    ),
}


class PMStateBanner(Widget):
    """`PM_RUN` / "normal operation", coloured by phase, in the error colour while FatalError;
    attached, `PM_RUN inferred` / "normal operation" / "from the log, ps and postmaster.pid"."""

    DEFAULT_CSS = """
    PMStateBanner {
        height: 5;
        border: thick $primary;
        padding: 0 1;
        content-align: center middle;
        text-align: center;
        &.-running { border: thick $success; }
        &.-starting { border: thick $accent; }
        &.-stopping { border: thick $warning; }
        &.-fatal { border: thick $error; }
        &.-unknown { border: thick $panel; }
    }
    """

    pm_state: reactive[PMState | None] = reactive(None)
    """The postmaster's pmState, or None before the first snapshot."""

    fatal_error: reactive[bool] = reactive(False)
    """FatalError: a crash cycle is under way."""

    stopped: reactive[bool] = reactive(False)
    """The postmaster has exited."""

    observed: reactive[frozenset[str]] = reactive(frozenset())
    """Attach mode: the sources read right now (`Snapshot.observed`); empty for pgtop's own."""

    attached: reactive[bool] = reactive(False)
    """A real server watched from outside: pmState is inferred, even with nothing observed."""

    def render(self) -> Content:
        if self.pm_state is None:
            return Content.from_markup("[b]waiting for the first snapshot[/]")
        name = self.pm_state.pg_name
        meaning = PM_STATE_MEANING[self.pm_state]
        if self.stopped:
            meaning = "the postmaster has exited"
        if not (self.attached or self.observed):
            return Content.from_markup(f"[b]{name}[/]\n[$text-muted]{escape(meaning)}[/]")
        basis = pm_state_basis(self.observed)
        return Content.from_markup(
            f"[b]{name}[/] [$text-warning]inferred[/]\n[$text-muted]{escape(meaning)}[/]\n[$text-muted]{escape(basis)}[/]"
        )

    def watch_pm_state(self) -> None:
        self._restyle()

    def watch_fatal_error(self) -> None:
        self._restyle()

    def _restyle(self) -> None:
        phase = "-unknown" if self.pm_state is None else PHASE[self.pm_state]
        for name in ("-running", "-starting", "-stopping", "-unknown"):
            self.set_class(name == phase, name)
        self.set_class(self.fatal_error, "-fatal")
