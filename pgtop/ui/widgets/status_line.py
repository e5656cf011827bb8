"""The top line: which cluster, and the modes that change what keys do."""

from __future__ import annotations

from textual.content import Content
from textual.markup import escape
from textual.reactive import reactive
from textual.widget import Widget


class StatusLine(Widget):
    """`pgtop · data dir · port` on the left; "confirmations OFF" and "read-only" flags."""

    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $foreground;
    }
    """

    data_dir: reactive[str] = reactive("")
    """The cluster's data directory."""

    port: reactive[int | None] = reactive(None)
    """The port the postmaster listens on."""

    confirm: reactive[bool] = reactive(True)
    """Destructive keys ask first."""

    readonly: reactive[bool] = reactive(False)
    """Keys send nothing."""

    note: reactive[str | None] = reactive(None)
    """A note from whoever started the dashboard (attach target, port change...)."""

    def render(self) -> Content:
        parts = ["[b]pgtop[/]"]
        if self.data_dir:
            parts.append(escape(self.data_dir))
        if self.port is not None:
            parts.append(f"port {self.port}")
        if self.note:
            parts.append(f"[$text-muted]{escape(self.note)}[/]")
        if not self.confirm:
            parts.append("[b reverse $warning] confirmations OFF [/]")
        if self.readonly:
            parts.append("[b reverse $accent] read-only [/]")
        return Content.from_markup("  ·  ".join(parts))
