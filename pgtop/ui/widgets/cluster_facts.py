"""The postmaster's flags at a glance: FatalError, connsAllowed, PID, uptime.

Attached to a real server, each line also says whether it was observed or inferred: the
postmaster's PID and start time are seen, the children are seen in ps (when it can be read),
and the postmaster's own variables and exit code are only ever inferred.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from pgtop.attach.observed import CHILDREN
from pgtop.core.vocabulary import ConnsAllowed, StartupStatus
from pgtop.ui.rows import uptime

ALWAYS = "always"  # seen whenever attached: attaching needs the postmaster's PID and start time
INFERRED = None
# Per line: the source (a name in `observed`) it is seen in when attached; None: inferred.
SEEN_IN: dict[str, str | None] = {
    "PID": ALWAYS,
    "uptime": ALWAYS,
    "FatalError": INFERRED,
    "connsAllowed": INFERRED,
    "startup": INFERRED,
    "children": CHILDREN,
    "exit code": INFERRED,  # pgtop is not the postmaster's parent: its wait status is not ours
}


class FactLine(Widget):
    """One `name  value  tag` line of the panel, repainted only when its text changes."""

    DEFAULT_CSS = """
    FactLine {
        height: 1;
    }
    """

    text: reactive[str] = reactive("")
    """The line as markup."""

    def render(self) -> Content:
        return Content.from_markup(self.text)


class ClusterFacts(Widget):
    """A few `name  value` lines; FatalError in the error colour while it is true; attached,
    an `observed` or `inferred` tag after each value.

    Each line is a widget of its own: the uptime changes every second, and repainting one
    line costs a fraction of repainting the bordered panel (the idle dashboard's largest
    cost). The facts themselves repaint nothing: `_show` passes them on to the lines.
    """

    DEFAULT_CSS = """
    ClusterFacts {
        height: auto;
        border: round $panel;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    """

    fatal_error: reactive[bool] = reactive(False, init=False, repaint=False)
    """FatalError: recovering from a child crash."""

    conns_allowed: reactive[ConnsAllowed] = reactive(ConnsAllowed.ALL, init=False, repaint=False)
    """connsAllowed, the smart-shutdown sub-state."""

    startup_status: reactive[StartupStatus] = reactive(StartupStatus.NOT_RUNNING, init=False, repaint=False)
    """StartupStatus of the startup process."""

    postmaster_pid: reactive[int | None] = reactive(None, init=False, repaint=False)
    """The postmaster's PID."""

    child_count: reactive[int] = reactive(0, init=False, repaint=False)
    """How many children the postmaster has."""

    uptime: reactive[int | None] = reactive(None, init=False, repaint=False)
    """Whole seconds since the postmaster started."""

    exit_code: reactive[int | None] = reactive(None, init=False, repaint=False)
    """The postmaster's exit code, once it has exited."""

    observed: reactive[frozenset[str]] = reactive(frozenset(), init=False, repaint=False)
    """Attach mode: the sources read right now (`Snapshot.observed`); empty for pgtop's own."""

    attached: reactive[bool] = reactive(False, init=False, repaint=False)
    """A real server watched from outside: every line gets its tag, even with nothing observed."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._lines = [FactLine() for _ in SEEN_IN]  # the exit code's stays hidden until there is one

    def compose(self) -> ComposeResult:
        yield from self._lines

    def on_mount(self) -> None:
        self.border_title = "postmaster"
        self._show()

    def _show(self) -> None:
        """Bring the lines up to the facts (only a line whose text changed repaints)."""
        texts = self._markup_lines()
        for index, line in enumerate(self._lines):
            shown = index < len(texts)
            line.display = shown
            if shown:
                line.text = texts[index]

    watch_fatal_error = watch_conns_allowed = watch_startup_status = _show
    watch_postmaster_pid = watch_child_count = watch_uptime = watch_exit_code = _show
    watch_observed = watch_attached = _show

    def lines(self) -> list[str]:
        """The panel's lines as plain text."""
        return [Content.from_markup(text).plain for text in self._markup_lines()]

    def _markup_lines(self) -> list[str]:
        rows = self._rows()
        if not (self.attached or self.observed):
            return [f"[$text-muted]{name:<12}[/] {value}" for name, value in rows]
        width = max(Content.from_markup(value).cell_length for _, value in rows)
        lines = []
        for name, value in rows:
            padding = " " * (width - Content.from_markup(value).cell_length)
            lines.append(f"[$text-muted]{name:<12}[/] {value}{padding}  {self._tag(name)}")
        return lines

    def _rows(self) -> list[tuple[str, str]]:
        """(name, value as markup) for each line."""
        fatal = "[b $error]true[/]" if self.fatal_error else "false"
        rows = [
            ("PID", str(self.postmaster_pid) if self.postmaster_pid else "-"),
            ("uptime", uptime(self.uptime) if self.uptime is not None else "-"),
            ("FatalError", fatal),
            ("connsAllowed", self.conns_allowed.value),
            ("startup", self.startup_status.value),
            ("children", str(self.child_count)),
        ]
        if self.exit_code is not None:
            rows.append(("exit code", f"[b]{self.exit_code}[/]"))
        return rows

    def _tag(self, name: str) -> str:
        source = SEEN_IN[name]
        if source == ALWAYS or (source is not None and source in self.observed):
            return "[$text-success]observed[/]"
        return "[$text-warning]inferred[/]"
