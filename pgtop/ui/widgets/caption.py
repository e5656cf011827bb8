"""A one-line caption for messages to the user: refusals, notes, audience captions."""

from __future__ import annotations

from textual.content import Content
from textual.markup import escape
from textual.reactive import reactive
from textual.widget import Widget

SEVERITY_STYLE = {"information": "$text", "warning": "b $warning", "error": "b $error"}


class Caption(Widget):
    """The latest one-line message, styled by its severity."""

    DEFAULT_CSS = """
    Caption {
        height: 1;
        padding: 0 1;
        background: $boost;
    }
    """

    message: reactive[str] = reactive("")
    """The text shown."""

    severity: reactive[str] = reactive("information")
    """information, warning or error."""

    def render(self) -> Content:
        style = SEVERITY_STYLE.get(self.severity, "$text")
        return Content.from_markup(f"[{style}]{escape(self.message)}[/]")

    def say(self, message: str, severity: str = "information") -> None:
        """Show a message, replacing the previous one."""
        self.severity = severity
        self.message = message
