"""Server log lines in PostgreSQL's stderr format, with log_line_prefix escapes.

The postmaster and every child format their lines with `format_log_line`, so a line looks the
same whoever wrote it: ``2024-05-01 12:00:00.123 UTC [4242] LOG:  message``, and DETAIL/HINT
lines repeat the prefix, as elog.c's send_message_to_server_log does.
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from dataclasses import dataclass
from functools import lru_cache

from pgtop.core.vocabulary import LogLevel

DEFAULT_LOG_LINE_PREFIX = "%m [%p] "

# One escape: optional padding (%-10u / %10u), then the letter (elog.c log_line_prefix).
_ESCAPE = re.compile(r"%(-?\d*)(.)", re.DOTALL)
# elog.c takes any width (and would try to allocate %999999999p on every line); pgtop caps
# it, so that a reload of a silly prefix cannot exhaust memory in every process that logs.
MAX_PADDING = 1000


@dataclass(frozen=True, slots=True)
class PrefixFields:
    """What log_line_prefix can show. `user` is None outside a client session (the
    postmaster and auxiliary processes), which empties %u %d %a %h %r and stops at %q."""

    pid: int
    backend_type: str
    now: float
    user: str | None = None
    database: str | None = None
    application_name: str | None = None
    remote_host: str | None = None
    remote_port: str | None = None
    session_start: float | None = None
    line_number: int | None = None
    sqlstate: str = "00000"
    timezone: str = "UTC"

    @property
    def in_session(self) -> bool:
        return self.user is not None


def level_name(level: LogLevel | str) -> str:
    """The level as elog.c prints it: every DEBUGn level is plain ``DEBUG``."""
    name = level.name if isinstance(level, LogLevel) else LogLevel[level.upper()].name
    return "DEBUG" if name.startswith("DEBUG") else name


@lru_cache(maxsize=16)
def _zone(name: str) -> datetime.tzinfo:
    if name.upper() in ("UTC", "GMT"):
        return datetime.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'invalid value for parameter "log_timezone": "{name}"') from None


def _timestamp(epoch: float, zone_name: str, *, millis: bool) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, _zone(zone_name))
    zone = "UTC" if moment.tzinfo is datetime.UTC else moment.strftime("%Z")
    text = (
        moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        if millis
        else moment.strftime("%Y-%m-%d %H:%M:%S")
    )
    return f"{text} {zone}"


def _session_value(fields: PrefixFields, value: str | None) -> str | None:
    """%u %d %a in a session: an empty value prints as [unknown]; outside, nothing."""
    if not fields.in_session:
        return None
    return value or "[unknown]"


def _remote(fields: PrefixFields, with_port: bool) -> str | None:
    if not fields.in_session or fields.remote_host is None:
        return None
    if with_port and fields.remote_port:
        return f"{fields.remote_host}({fields.remote_port})"
    return fields.remote_host


def _escape_value(letter: str, fields: PrefixFields) -> str | None:
    """The text of one escape, or None for "nothing here" (still padded)."""
    start = fields.session_start if fields.session_start is not None else fields.now
    match letter:
        case "m":
            return _timestamp(fields.now, fields.timezone, millis=True)
        case "t":
            return _timestamp(fields.now, fields.timezone, millis=False)
        case "n":
            return f"{fields.now:.3f}"
        case "p":
            return str(fields.pid)
        case "b":
            return fields.backend_type
        case "u":
            return _session_value(fields, fields.user)
        case "d":
            return _session_value(fields, fields.database)
        case "a":
            return _session_value(fields, fields.application_name)
        case "h":
            return _remote(fields, with_port=False)
        case "r":
            return _remote(fields, with_port=True)
        case "l":
            return str(fields.line_number) if fields.line_number is not None else None
        case "s":
            return _timestamp(start, fields.timezone, millis=False)
        case "c":
            return f"{int(start):x}.{fields.pid:x}"
        case "e":
            return fields.sqlstate
        case _:
            return None  # %i %v %x %Q and unknown letters: nothing to show in the model


def _padding(text: str) -> int:
    """The width of `%-10u` / `%10u`, capped at MAX_PADDING (without int() of a huge one)."""
    digits = text.lstrip("-").lstrip("0")
    if not digits:
        return 0
    width = MAX_PADDING if len(digits) > len(str(MAX_PADDING)) else min(int(digits), MAX_PADDING)
    return -width if text.startswith("-") else width


def format_prefix(prefix: str, fields: PrefixFields) -> str:
    """Expand log_line_prefix. Padding works as in elog.c: %-10u pads right, %10u left."""
    out: list[str] = []
    position = 0
    for escape in _ESCAPE.finditer(prefix):
        out.append(prefix[position : escape.start()])
        position = escape.end()
        padding_text, letter = escape.groups()
        if letter == "%":
            out.append("%")
            continue
        if letter == "q":
            if not fields.in_session:
                return "".join(out)
            continue
        padding = _padding(padding_text)
        value = _escape_value(letter, fields)
        if value is None:
            out.append(" " * abs(padding))
        elif padding < 0:
            out.append(value.ljust(-padding))
        else:
            out.append(value.rjust(padding))
    out.append(prefix[position:])
    return "".join(out)


def format_log_line(
    prefix: str,
    level: LogLevel | str,
    message: str,
    *,
    pid: int,
    backend_type: str,
    now: float,
    user: str | None = None,
    database: str | None = None,
    application_name: str | None = None,
    detail: str | None = None,
    hint: str | None = None,
    context: str | None = None,
    statement: str | None = None,
    remote_host: str | None = None,
    remote_port: str | None = None,
    session_start: float | None = None,
    line_number: int | None = None,
    sqlstate: str = "00000",
    timezone: str = "UTC",
) -> str:
    """One log entry as PostgreSQL writes it to stderr, without the final newline.

    DETAIL, HINT, CONTEXT and STATEMENT each get their own line with the same prefix, in
    that order (send_message_to_server_log).
    """
    fields = PrefixFields(
        pid=pid,
        backend_type=backend_type,
        now=now,
        user=user,
        database=database,
        application_name=application_name,
        remote_host=remote_host,
        remote_port=remote_port,
        session_start=session_start,
        line_number=line_number,
        sqlstate=sqlstate,
        timezone=timezone,
    )
    head = format_prefix(prefix, fields)
    lines = [f"{head}{level_name(level)}:  {_with_tabs(message)}"]
    if detail is not None:
        lines.append(f"{head}DETAIL:  {_with_tabs(detail)}")
    if hint is not None:
        lines.append(f"{head}HINT:  {_with_tabs(hint)}")
    if context is not None:
        lines.append(f"{head}CONTEXT:  {_with_tabs(context)}")
    if statement is not None:
        lines.append(f"{head}STATEMENT:  {_with_tabs(statement)}")
    return "\n".join(lines)


def _with_tabs(text: str) -> str:
    """append_with_tabs(): a text's own later lines start with a tab, as elog writes them."""
    return text.replace("\n", "\n\t")
