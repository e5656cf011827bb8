"""Session settings (guc.c's job, cut down): SHOW, SET, RESET, current_setting, and the values
reported to the client in ParameterStatus.

The server's values come from the Environment; a session overlays the startup packet's values,
then SET. A SET inside a transaction that rolls back is undone; SET LOCAL lasts until the
transaction ends.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

from pgtop.core.config import FIELD_GUC, Config
from pgtop.sql.environment import SettingInfo
from pgtop.sql.errors import SqlError, unrecognized_parameter
from pgtop.sql.types import parse_bool

# GUC_REPORT settings: sent as ParameterStatus at startup and whenever they change.
REPORTED = ("application_name", "client_encoding", "DateStyle", "default_transaction_read_only",
            "in_hot_standby", "integer_datetimes", "IntervalStyle", "is_superuser",
            "server_encoding", "server_version", "session_authorization",
            "standard_conforming_strings", "TimeZone")
_CONTEXT_REFUSAL = {
    "internal": 'parameter "{}" cannot be changed',
    "postmaster": 'parameter "{}" cannot be changed without restarting the server',
    "sighup": 'parameter "{}" cannot be changed now',
    "superuser-backend": 'parameter "{}" cannot be set after connection start',
    "backend": 'parameter "{}" cannot be set after connection start',
}
_UTC_NAMES = ("utc", "etc/utc", "gmt", "etc/gmt", "z", "zulu", "universal", "uct", "0", "+00", "00:00")
_UTF8_NAMES = ("utf8", "utf-8", "unicode")
_INTEGER_SETTING = re.compile(r"\s*-?\d+\s*(ms|s|min|h|d|kb|mb|gb|tb|b)?\s*\Z", re.IGNORECASE)


def standard_settings(server_version: str = "14.13") -> dict[str, SettingInfo]:
    """The settings every backend has besides the server's configuration file."""
    fixed = [
        ("server_version", server_version, "internal", "Shows the server version."),
        ("server_version_num", _version_num(server_version), "internal", "Shows the server version as an integer."),
        ("server_encoding", "UTF8", "internal", "Shows the server (database) character set encoding."),
        ("integer_datetimes", "on", "internal", "Shows whether datetimes are integer based."),
        ("in_hot_standby", "off", "internal", "Shows whether hot standby is currently active."),
        ("application_name", "", "user", "Sets the application name to be reported in statistics and logs."),
        ("client_encoding", "UTF8", "user", "Sets the client's character set encoding."),
        ("DateStyle", "ISO, MDY", "user", "Sets the display format for date and time values."),
        ("IntervalStyle", "postgres", "user", "Sets the display format for interval values."),
        ("TimeZone", "UTC", "user", "Sets the time zone for displaying and interpreting time stamps."),
        ("standard_conforming_strings", "on", "user", "Causes '...' strings to treat backslashes literally."),
        ("default_transaction_read_only", "off", "user", "Sets the default read-only status of new transactions."),
        ("transaction_isolation", "read committed", "user", "Sets the current transaction's isolation level."),
        ("search_path", '"$user", public', "user", "Sets the schema search order for names that are not schema-qualified."),
        ("extra_float_digits", "1", "user", "Sets the number of digits displayed for floating-point values."),
        ("work_mem", "4MB", "user", "Sets the maximum memory to be used for query workspaces."),
        ("client_min_messages", "notice", "user", "Sets the message levels that are sent to the client."),
        ("lock_timeout", "0", "user", "Sets the maximum allowed duration of any wait for a lock."),
        ("idle_in_transaction_session_timeout", "0", "user", "Sets the maximum allowed idle time between queries, when in a transaction."),
    ]
    kinds = {"integer_datetimes": "bool", "standard_conforming_strings": "bool",
             "default_transaction_read_only": "bool", "in_hot_standby": "bool", "extra_float_digits": "integer"}
    return {name.lower(): SettingInfo(name, value, context, doc, kinds.get(name, "string"))
            for name, value, context, doc in fixed}


def _version_num(version: str) -> str:
    numbers = re.findall(r"\d+", version)
    major = int(numbers[0]) if numbers else 14
    minor = int(numbers[1]) if len(numbers) > 1 else 0
    return str(major * 10000 + minor)


def settings_from_config(config: Config, server_version: str = "14.13") -> dict[str, SettingInfo]:
    """The Environment's settings for a pgtop server: its Config plus the standard ones."""
    settings = standard_settings(server_version)
    for field in dataclasses.fields(config):
        name = FIELD_GUC.get(field.name, field.name)
        if field.name == "timezone":
            name = "TimeZone"
        elif field.name == "datestyle":
            name = "DateStyle"
        value = getattr(config, field.name)
        meta = field.metadata
        kind = "bool" if isinstance(value, bool) else "integer" if isinstance(value, int) else (
            "enum" if meta.get("choices") else "string")
        settings[name.lower()] = SettingInfo(
            name, format_setting(value, meta.get("unit")), meta["context"].value, meta["doc"], kind,
            tuple(meta.get("choices") or ()),
        )
    return settings


def format_setting(value: object, unit: str | None = None) -> str:
    """A value as SHOW prints it: booleans on/off, sizes and times in the largest exact unit."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int) and unit and value:
        return _with_unit(value, unit)
    return str(value)


_TIME_UNITS = [("ms", 1), ("s", 1000), ("min", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
_SIZE_UNITS = [("kB", 1), ("MB", 1024), ("GB", 1024**2), ("TB", 1024**3)]


def _with_unit(value: int, unit: str) -> str:
    for units in (_TIME_UNITS, _SIZE_UNITS):
        scale = dict(units)
        if unit in scale:
            base = value * scale[unit]
            best = max((u for u in units if base % u[1] == 0), key=lambda u: u[1])
            return f"{base // best[1]}{best[0]}"
    return f"{value}{unit}"


class Settings:
    def __init__(self, server: Mapping[str, SettingInfo]) -> None:
        # Read only and not copied: a backend's is the fork server's, shared copy-on-write
        # (backend_session.server_settings), and a copy would write to every entry's page.
        self._server = server
        self._session_defaults: dict[str, str] = {}  # from the startup packet
        self._values: dict[str, str] = {}  # SET
        self._local: dict[str, str] = {}  # SET LOCAL
        self._saved: dict[str, str] | None = None  # _values when the transaction began
        self._reported: dict[str, str] | None = None  # reported() without overrides, until a change

    def info(self, name: str) -> SettingInfo:
        info = self._server.get(name.lower())
        if info is None:
            raise unrecognized_parameter(name)
        return info

    def get(self, name: str) -> str:
        key = self.info(name).name.lower()
        for layer in (self._local, self._values, self._session_defaults):
            if key in layer:
                return layer[key]
        return self._server[key].value

    def apply_startup(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Settings from the startup packet; errors are FATAL there (the caller says so)."""
        for name, value in pairs:
            info = self.info(name)
            if info.context in ("internal", "postmaster", "sighup"):
                raise SqlError("55P02", _CONTEXT_REFUSAL[info.context].format(info.name))
            self._session_defaults[info.name.lower()] = self._validate(info, value)
            self._reported = None

    def set(self, name: str, value: str | None, local: bool = False) -> None:
        """SET name = value (None: DEFAULT); SET LOCAL lasts until the transaction ends."""
        info = self.info(name)
        if info.context in _CONTEXT_REFUSAL:
            raise SqlError("55P02", _CONTEXT_REFUSAL[info.context].format(info.name))
        key = info.name.lower()
        self._reported = None
        if local:
            default = self._session_defaults.get(key, info.value)
            self._local[key] = default if value is None else self._validate(info, value)
            return
        self._local.pop(key, None)
        if value is None:
            self._values.pop(key, None)
        else:
            self._values[key] = self._validate(info, value)

    def reset(self, name: str | None) -> None:
        if name is None:
            self._values.clear()
            self._local.clear()
            self._reported = None
            return
        self.set(name, None)

    def all(self) -> list[SettingInfo]:
        return sorted((dataclasses.replace(i, value=self.get(i.name)) for i in self._server.values()),
                      key=lambda i: i.name.lower())

    def reported_base(self) -> Mapping[str, str]:
        """The GUC_REPORT settings' values: the same mapping until one may have changed."""
        if self._reported is None:
            self._reported = {n: self.get(n) for n in REPORTED if n.lower() in self._server}
        return self._reported

    # -- transactions -----------------------------------------------------------------------

    def begin(self) -> None:
        self._saved = dict(self._values)

    def commit(self) -> None:
        self._saved = None
        if self._local:
            self._local.clear()
            self._reported = None

    def rollback(self) -> None:
        if self._saved is not None:
            self._values = self._saved
        self._saved = None
        self._local.clear()
        self._reported = None

    # -- validation -------------------------------------------------------------------------

    def _validate(self, info: SettingInfo, value: str) -> str:
        invalid = SqlError("22023", f'invalid value for parameter "{info.name}": "{value}"')
        if info.kind == "bool":
            parsed = parse_bool(value)
            if parsed is None:
                raise SqlError("22023", f'parameter "{info.name}" requires a Boolean value')
            return "on" if parsed else "off"
        if info.kind == "integer" and not _INTEGER_SETTING.match(value):
            raise invalid
        if info.kind == "enum" and info.choices:
            for choice in info.choices:
                if choice.lower() == value.strip().lower():
                    return choice
            raise SqlError("22023", invalid.message, hint=f"Available values: {', '.join(info.choices)}.")
        if info.name == "TimeZone":
            if value.strip().lower() not in _UTC_NAMES:
                raise SqlError("22023", invalid.message, hint="pgtop shows every time stamp in UTC.")
            return "UTC"
        if info.name == "client_encoding":
            if value.strip().lower() not in _UTF8_NAMES:
                raise SqlError("22023", invalid.message, hint="pgtop speaks UTF8 only.")
            return "UTF8"
        return value
