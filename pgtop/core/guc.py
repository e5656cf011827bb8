"""Configuration parameters: parse values and decide what a configuration file changes.

This is ProcessConfigFile's logic with PostgreSQL's messages: unknown names stop the whole
reload ("no changes were applied"), a bad value or a postmaster-context change is skipped and
reported ("unaffected changes were applied"), everything else takes effect and is logged as
'parameter "x" changed to "y"'. Values that code must understand later (time zones, DateStyle)
pass their check hook first (checkhooks.py), so a reload cannot hand a child a value it dies of. Parameters that disappear from the file go back to their
defaults. At startup, any error is fatal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import MISSING, Field, fields, replace
from typing import Any

from .actions import Log
from .checkhooks import CHECK_HOOKS, CheckFailed
from .config import FIELD_GUC, GUC_FIELD, Config, Context
from .events import ConfigFileRead
from .vocabulary import LogLevel

_FIELDS: dict[str, Field[Any]] = {f.name: f for f in fields(Config)}

TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "min": 60_000.0, "h": 3_600_000.0, "d": 86_400_000.0}
MEMORY_UNITS = {"B": 1 / 1024, "kB": 1.0, "MB": 1024.0, "GB": 1024.0**2, "TB": 1024.0**3}
TIME_HINT = 'Valid units for this parameter are "us", "ms", "s", "min", "h", and "d".'
MEMORY_HINT = 'Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".'
RANGE_HINT = "Value exceeds integer range."
INT_MAX = 2**31 - 1  # PostgreSQL's integer parameters are C ints


class InvalidValue(Exception):
    """A value that does not parse; carries PostgreSQL's message, hint and detail."""

    def __init__(self, message: str, hint: str | None = None, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail


def field_name(guc_name: str) -> str | None:
    """The Config field for a parameter name (case-insensitive), or None if unknown."""
    name = guc_name.strip().lower()
    name = GUC_FIELD.get(name, name)
    return name if name in _FIELDS else None


def guc_name(field: str) -> str:
    return FIELD_GUC.get(field, field)


def context_of(field: str) -> Context:
    return _FIELDS[field].metadata["context"]


def default_of(field: str) -> Any:
    f = _FIELDS[field]
    return f.default if f.default is not MISSING else None


def parse_value(field: str, raw: Any, time_zones: Collection[str] = frozenset()) -> Any:
    """Turn a value as written in the file (or by SET) into the field's type. `time_zones`:
    the tz database's names, for the timezone parameters (UTC and GMT need none)."""
    f = _FIELDS[field]
    meta = f.metadata
    name = guc_name(field)
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    if kind == "bool":
        return _parse_bool(name, raw)
    if kind == "int":
        value = _parse_int(name, raw, meta.get("unit"))
        low, high = meta.get("min"), meta.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            unit = f" {meta['unit']}" if meta.get("unit") else ""
            raise InvalidValue(
                f'{value}{unit} is outside the valid range for parameter "{name}" ({low} .. {high})'
            )
        return value
    if isinstance(raw, bool):
        text = "on" if raw else "off"  # YAML reads an unquoted on/off as a boolean
    else:
        text = "" if raw is None else str(raw)
    choices = meta.get("choices")
    if choices:
        lowered = text.lower()
        if lowered not in choices:
            raise InvalidValue(
                f'invalid value for parameter "{name}": "{text}"',
                f"Available values: {', '.join(choices)}.",
            )
        return lowered
    hook = CHECK_HOOKS.get(field)
    if hook is not None:
        try:
            return hook(text, time_zones)
        except CheckFailed as refused:
            raise InvalidValue(f'invalid value for parameter "{name}": "{text}"', detail=refused.detail) from None
    return text


def _parse_bool(name: str, raw: Any) -> bool:
    """parse_bool(): any prefix of true/false/yes/no, on/off (two letters at least), 1, 0."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "0"):
        return text == "1"
    if text:
        for word, value in (("true", True), ("false", False), ("yes", True), ("no", False)):
            if word.startswith(text):
                return value
        if len(text) >= 2 and "on".startswith(text):
            return True
        if len(text) >= 2 and "off".startswith(text):
            return False
    raise InvalidValue(f'parameter "{name}" requires a Boolean value')


# ASCII digits only: Python's \d and float() would also take "١٢" as 12.
_NUMBER_WITH_UNIT = re.compile(r"^\s*(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)\s*$")


def _parse_int(name: str, raw: Any, unit: str | None) -> int:
    """parse_int(): a number, with a unit if the parameter has one, within a C int."""
    if isinstance(raw, bool):
        raise InvalidValue(f'invalid value for parameter "{name}": "{raw}"')
    value = raw if isinstance(raw, int) else _scaled(name, str(raw), unit)
    if not -INT_MAX - 1 <= value <= INT_MAX:
        raise InvalidValue(f'invalid value for parameter "{name}": "{raw}"', RANGE_HINT)
    return value


def _scaled(name: str, text: str, unit: str | None) -> int:
    """A number written as text, converted to the parameter's unit and rounded."""
    match = _NUMBER_WITH_UNIT.match(text)
    if not match:
        raise InvalidValue(f'invalid value for parameter "{name}": "{text}"')
    number, suffix = float(match.group(1)), match.group(2)
    if suffix:
        table, hint = (TIME_UNITS, TIME_HINT) if unit in TIME_UNITS else (MEMORY_UNITS, MEMORY_HINT)
        if unit is None or suffix not in table:
            raise InvalidValue(f'invalid value for parameter "{name}": "{text}"', hint if unit else None)
        number = number * table[suffix] / table[unit]
    if not math.isfinite(number):  # "999...9" (400 digits) is inf as a float (strtod's ERANGE)
        raise InvalidValue(f'invalid value for parameter "{name}": "{text}"')
    return round(number)


def format_value(field: str, value: Any) -> str:
    """SHOW's form of a value: on/off for booleans, units for times and sizes."""
    if isinstance(value, bool):
        return "on" if value else "off"
    unit = _FIELDS[field].metadata.get("unit")
    if isinstance(value, int) and unit:
        return f"{value}{unit}"
    return str(value)


def apply_config_file(
    config: Config, read: ConfigFileRead, *, at_startup: bool
) -> tuple[Config, list[Log]]:
    """ProcessConfigFile(): the new configuration and the log lines it produces.

    At startup the caller treats a final FATAL line as fatal and keeps nothing.
    """
    path = read.path
    logs: list[Log] = []
    if read.error is not None:
        logs.append(Log(LogLevel.LOG, read.error))
        return config, logs + [_contains_errors(path, at_startup, applied=False)]

    # Phase 1: every name must be known (custom names with a dot are accepted silently).
    known: dict[str, tuple[Any, int, str]] = {}
    error = False
    for name, (raw, line) in read.values.items():
        field = field_name(name)
        if field is None:
            if "." in name:
                continue
            logs.append(
                Log(LogLevel.LOG, f'unrecognized configuration parameter "{name}" in file "{path}" line {line}')
            )
            error = True
            continue
        known[field] = (raw, line, name)
    if error:
        return config, logs + [_contains_errors(path, at_startup, applied=False)]

    # Phase 2: parameters no longer in the file go back to their defaults (table order).
    changes: dict[str, Any] = {}
    for field in _FIELDS:
        if field in known or getattr(config, field) == default_of(field):
            continue
        error |= _change(config, field, default_of(field), guc_name(field), None, at_startup, changes, logs)
    # Phase 3: apply the file's values in the order they are written.
    for field, (raw, _line, name) in known.items():
        try:
            value = parse_value(field, raw, read.time_zones)
        except InvalidValue as bad:
            logs.append(Log(LogLevel.LOG, bad.message, detail=bad.detail, hint=bad.hint))
            error = True
            continue
        shown = "" if raw is None else (format_value(field, raw) if isinstance(raw, bool) else str(raw))
        error |= _change(config, field, value, name, shown, at_startup, changes, logs)
    new_config = replace(config, **changes) if changes else config
    if error:
        if at_startup:
            return config, logs + [_contains_errors(path, at_startup, applied=False)]
        logs.append(_contains_errors(path, at_startup, applied=True))
    return new_config, logs


def _change(
    config: Config,
    field: str,
    value: Any,
    name: str,
    shown: str | None,
    at_startup: bool,
    changes: dict[str, Any],
    logs: list[Log],
) -> bool:
    """set_config_option() from the file: True if it was an error (a postmaster-context
    parameter that cannot change now)."""
    if value == getattr(config, field):
        return False
    if not at_startup and not context_of(field).reloadable:
        logs.append(Log(LogLevel.LOG, f'parameter "{name}" cannot be changed without restarting the server'))
        return True
    changes[field] = value
    if not at_startup:
        if shown is None:
            logs.append(Log(LogLevel.LOG, f'parameter "{name}" removed from configuration file, reset to default'))
        else:
            logs.append(Log(LogLevel.LOG, f'parameter "{name}" changed to "{shown}"'))
    return False


def _contains_errors(path: str, at_startup: bool, *, applied: bool) -> Log:
    if at_startup:
        return Log(LogLevel.FATAL, f'configuration file "{path}" contains errors')
    what = "unaffected changes were applied" if applied else "no changes were applied"
    return Log(LogLevel.LOG, f'configuration file "{path}" contains errors; {what}')


def config_from_settings(settings: Mapping[str, Any], time_zones: Collection[str] = frozenset()) -> Config:
    """A Config from plain name/value pairs (tests, demos); raises InvalidValue."""
    changes = {}
    for name, raw in settings.items():
        field = field_name(name)
        if field is None:
            raise InvalidValue(f'unrecognized configuration parameter "{name}"')
        changes[field] = parse_value(field, raw, time_zones)
    return Config(**changes)
