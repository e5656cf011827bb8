"""Check hooks for the text parameters whose values something must understand later, as
PostgreSQL's commands/variable.c: check_timezone, check_log_timezone, check_datestyle.

Without them a reload would accept `log_timezone: Nowhere/Nope`, and the next child to write
a log line would die of it, taking the cluster through a crash cycle and down. A hook either
returns the value in its canonical spelling ("europe/paris" -> "Europe/Paris", "iso" ->
"ISO, MDY") or raises ValueError with the DETAIL line PostgreSQL gives (or None).

The time zone database is the system's data: the runtime reads its names and hands them in
(ConfigFileRead.time_zones), so the core never touches the file system.
"""

from __future__ import annotations

from collections.abc import Callable, Collection


class CheckFailed(ValueError):
    """The value is refused; `detail` is PostgreSQL's GUC_check_errdetail, if any."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or "invalid value")
        self.detail = detail


# -- time zones ---------------------------------------------------------------------------


def check_timezone(text: str, zones: Collection[str]) -> str:
    """A zone of the tz database (`zones`), named in any case; its own spelling comes back."""
    name = text.strip()
    if name.upper() in ("UTC", "GMT"):
        return name.upper()  # always there, even without a tz database
    if name in zones:
        return name
    lowered = name.lower()
    spelled = next((zone for zone in zones if zone.lower() == lowered), None)
    if spelled is None:
        raise CheckFailed()
    return spelled


# -- DateStyle ----------------------------------------------------------------------------

_STYLES = (("iso", "ISO", False), ("sql", "SQL", False), ("postgres", "Postgres", True), ("german", "German", False))
_ORDERS = (("ymd", "YMD", False), ("dmy", "DMY", False), ("euro", "DMY", True), ("mdy", "MDY", False),
           ("us", "MDY", False), ("noneuro", "MDY", True))  # fmt: skip
DEFAULT_DATESTYLE = ("ISO", "MDY")


def _word(token: str, table: tuple[tuple[str, str, bool], ...]) -> str | None:
    """The canonical word for a token: exact, or by prefix where PostgreSQL compares only
    the first letters (pg_strncasecmp(tok, "POSTGRES", 8), "EURO" 4, "NONEURO" 7)."""
    for word, canonical, by_prefix in table:
        if token == word or (by_prefix and token.startswith(word)):
            return canonical
    return None


def check_datestyle(text: str) -> str:
    """A style and an order, comma-separated, either may be left out: "ISO, MDY".

    As PostgreSQL: GERMAN implies DMY unless an order was given; DEFAULT fills in what is
    not given yet; two different styles (or orders) conflict. Unlike PostgreSQL, what is left
    out comes from the default, not from the value in force (a file is read whole).
    """
    if not text.strip():
        return ", ".join(DEFAULT_DATESTYLE)
    style, order = DEFAULT_DATESTYLE
    have_style = have_order = conflict = False
    for raw in text.split(","):
        token = raw.strip().lower()  # SplitIdentifierString: unquoted words are downcased
        if not token or any(c.isspace() for c in token):
            raise CheckFailed("List syntax is invalid.")
        token_style, token_order = _word(token, _STYLES), _word(token, _ORDERS)
        if token_style is not None:
            conflict |= have_style and style != token_style
            style, have_style = token_style, True
            if token_style == "German" and not have_order:
                order = "DMY"
        elif token_order is not None:
            conflict |= have_order and order != token_order
            order, have_order = token_order, True
        elif token == "default":
            style = style if have_style else DEFAULT_DATESTYLE[0]
            order = order if have_order else DEFAULT_DATESTYLE[1]
        else:
            raise CheckFailed(f'Unrecognized key word: "{token}".')
    if conflict:
        raise CheckFailed('Conflicting "datestyle" specifications.')
    return f"{style}, {order}"


CHECK_HOOKS: dict[str, Callable[[str, Collection[str]], str]] = {  # (value, time zone names)
    "timezone": check_timezone,
    "log_timezone": check_timezone,
    "datestyle": lambda text, _zones: check_datestyle(text),
}
