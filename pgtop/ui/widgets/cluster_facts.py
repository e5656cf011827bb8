"""The postmaster's flags at a glance: FatalError, connsAllowed, PID, uptime."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from pgtop.core.vocabulary import ConnsAllowed, StartupStatus
from pgtop.ui.rows import uptime


class ClusterFacts(Widget):
    """A few `name  value` lines; FatalError in the error colour while it is true."""

    DEFAULT_CSS = """
    ClusterFacts {
        height: auto;
        border: round $panel;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    """

    fatal_error: reactive[bool] = reactive(False)
    """FatalError: recovering from a child crash."""

    conns_allowed: reactive[ConnsAllowed] = reactive(ConnsAllowed.ALL)
    """connsAllowed, the smart-shutdown sub-state."""

    startup_status: reactive[StartupStatus] = reactive(StartupStatus.NOT_RUNNING)
    """StartupStatus of the startup process."""

    postmaster_pid: reactive[int | None] = reactive(None)
    """The postmaster's PID."""

    child_count: reactive[int] = reactive(0)
    """How many children the postmaster has."""

    uptime: reactive[float | None] = reactive(None)
    """Seconds since the postmaster started."""

    exit_code: reactive[int | None] = reactive(None)
    """The postmaster's exit code, once it has exited."""

    def on_mount(self) -> None:
        self.border_title = "postmaster"

    def render(self) -> Content:
        fatal = "[b $error]true[/]" if self.fatal_error else "false"
        pid = str(self.postmaster_pid) if self.postmaster_pid else "-"
        up = uptime(self.uptime) if self.uptime is not None else "-"
        lines = [
            f"[$text-muted]PID         [/] {pid}",
            f"[$text-muted]uptime      [/] {up}",
            f"[$text-muted]FatalError  [/] {fatal}",
            f"[$text-muted]connsAllowed[/] {self.conns_allowed.value}",
            f"[$text-muted]startup     [/] {self.startup_status.value}",
            f"[$text-muted]children    [/] {self.child_count}",
        ]
        if self.exit_code is not None:
            lines.append(f"[$text-muted]exit code   [/] [b]{self.exit_code}[/]")
        return Content.from_markup("\n".join(lines))
