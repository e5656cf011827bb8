"""The server log, each line coloured by its level, with bounded scrollback."""

from __future__ import annotations

import re
from typing import ClassVar

from rich.highlighter import Highlighter
from rich.text import Text
from textual.widgets import Log

from pgtop.runtime.snapshot import LogRecord
from pgtop.ui.rows import clock_time

SCROLLBACK = 10_000

LEVEL_TAG = re.compile(r"\b(DEBUG[1-5]|LOG|INFO|NOTICE|WARNING|ERROR|FATAL|PANIC|DETAIL|HINT|STATEMENT|CONTEXT):  ")
LEVEL_CLASS = {
    "PANIC": "error",
    "FATAL": "error",
    "ERROR": "error",
    "WARNING": "warning",
    "NOTICE": "notice",
    "INFO": "notice",
}


def record_text(record: LogRecord) -> str:
    """The record's lines as the server wrote them, or rebuilt from its fields."""
    if record.text:
        return record.text
    lines = [f"{clock_time(record.at)} [{record.pid}] {record.level.name}:  {record.message}"]
    if record.detail:
        lines.append(f"{clock_time(record.at)} [{record.pid}] DETAIL:  {record.detail}")
    if record.hint:
        lines.append(f"{clock_time(record.at)} [{record.pid}] HINT:  {record.hint}")
    return "\n".join(lines)


class _LevelHighlighter(Highlighter):
    """Styles a whole line with the log's component style for the line's level tag."""

    def __init__(self, log: ServerLog) -> None:
        self.log = log

    def highlight(self, text: Text) -> None:
        match = LEVEL_TAG.search(text.plain)
        if match is None:
            return
        tag = match.group(1)
        name = "muted" if tag.startswith("DEBUG") or tag in ("DETAIL", "HINT", "STATEMENT", "CONTEXT") else None
        name = LEVEL_CLASS.get(tag, name)
        if name is not None:
            text.stylize(self.log.get_component_rich_style(f"server-log--{name}"))


class ServerLog(Log):
    """Every log record, never dropped, in the theme's error / warning / muted colours.

    | Key | Description |
    | :- | :- |
    | up / down / pageup / pagedown | Scroll the log. |
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"server-log--error", "server-log--warning", "server-log--notice", "server-log--muted"}

    DEFAULT_CSS = """
    ServerLog {
        border: round $panel;
        border-title-color: $text-muted;
        & > .server-log--error { color: $error; text-style: bold; }
        & > .server-log--warning { color: $warning; }
        & > .server-log--notice { color: $text-primary; }
        & > .server-log--muted { color: $text-muted; }
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(highlight=True, max_lines=SCROLLBACK, **kwargs)
        self.highlighter = _LevelHighlighter(self)
        self._pending: list[str] = []

    def on_mount(self) -> None:
        self.border_title = "server log"

    def append(self, record: LogRecord) -> None:
        """Add one record's lines at the bottom (a burst of records is written in one go)."""
        if not self._pending:
            self.call_later(self._flush)
        self._pending.extend(record_text(record).splitlines())

    def _flush(self) -> None:
        lines, self._pending = self._pending, []
        self.write_lines(lines)
