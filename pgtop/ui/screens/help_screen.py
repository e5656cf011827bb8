"""The help screen: every key the dashboard answers to, as currently mapped."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widgets import Static

INTRO = (
    "Keys go to the selected child row or to the postmaster. Destructive ones ask first "
    "unless confirmations are off; in read-only mode nothing is sent. ctrl+p opens the "
    "command palette with the same commands."
)


class HelpScreen(ModalScreen[None]):
    """A table of key / what it does.

    | Key | Description |
    | :- | :- |
    | escape / ? / q | Close. |
    """

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        background: $background 60%;
        #help {
            width: 76;
            height: auto;
            max-height: 90%;
            border: thick $primary;
            border-title-color: $primary;
            background: $surface;
            padding: 1 2;
        }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self, keys: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        lines = [f"[$text-muted]{escape(INTRO)}[/]", ""]
        width = max((len(key) for key, _ in self.keys), default=1)
        lines += [f"[b $accent]{escape(key.ljust(width))}[/]  {escape(text)}" for key, text in self.keys]
        with VerticalScroll(id="help") as scroll:
            scroll.border_title = "pgtop keys"
            yield Static(Content.from_markup("\n".join(lines)))
