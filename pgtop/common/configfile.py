"""pgtop.yaml, the postgresql.conf analogue: read it, load it at startup, render the default.

The file is a YAML mapping of PostgreSQL parameter names to plain values. Reading never
raises: every problem becomes `ConfigFileRead.error`, one line in the form PostgreSQL logs
for a broken postgresql.conf ('syntax error in file "%s" line %u, near token "%s"'), so the
postmaster can log it and keep its old configuration (core/guc.py decides the rest).
"""

from __future__ import annotations

import re
from dataclasses import MISSING, Field, fields
from pathlib import Path
from typing import Any

import yaml

from pgtop.core.actions import Log
from pgtop.core.config import FIELD_GUC, Config, Context
from pgtop.core.events import ConfigFileRead
from pgtop.core.vocabulary import LogLevel

from .timezones import time_zone_names

CONFIG_FILE_NAME = "pgtop.yaml"

# YAML's own line breaks (yaml.reader counts exactly these), so our line numbers agree with
# the marks PyYAML reports.
_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
_TOKEN_MAX = 40


class ConfigError(Exception):
    """The configuration cannot be loaded at startup: the postmaster must not start.

    `message` is the FATAL line ('configuration file "%s" contains errors'); `logs` are the
    LOG lines that explain it and come first; `exit_code` is the postmaster's (2 when the
    file cannot be found, as PostgreSQL's SelectConfigFiles, 1 otherwise).
    """

    def __init__(self, message: str, *, logs: tuple[Log, ...] = (), exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.logs = logs
        self.exit_code = exit_code


# -- reading ------------------------------------------------------------------------------


def read_config_file(path: str | Path) -> ConfigFileRead:
    """Read and parse the file; problems become `error`, never exceptions."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return ConfigFileRead(name, error=f'could not open configuration file "{name}": {exc.strerror}')
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        bad = data[exc.start]
        return ConfigFileRead(
            name,
            error=f'invalid byte sequence for encoding "UTF8": 0x{bad:02x} in file "{name}" line {line}',
        )
    return parse_config_text(text, name)


def parse_config_text(text: str, path: str) -> ConfigFileRead:
    """Parse the text of a configuration file named `path` (used in the messages)."""
    try:
        # The reader checks every character as the loader is built, so build it in here.
        loader = yaml.SafeLoader(text)
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        return ConfigFileRead(path, error=_syntax_error(path, text, exc))
    except yaml.reader.ReaderError as exc:
        return ConfigFileRead(path, error=_reader_error(path, text, exc))
    except RecursionError:
        return ConfigFileRead(path, error=f'configuration file "{path}" is nested too deeply')
    except Exception as exc:  # noqa: BLE001 - a PyYAML bug must not take a reload down with it
        return ConfigFileRead(path, error=f'could not parse configuration file "{path}": {_first_line(exc)}')
    try:
        if root is None or (isinstance(root, yaml.ScalarNode) and root.tag.endswith(":null")):
            return ConfigFileRead(path)  # empty, only comments, or a bare "---"
        if not isinstance(root, yaml.MappingNode):
            what = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
            return ConfigFileRead(
                path,
                error=f'configuration file "{path}" must be a mapping of parameter names to values, not {what}',
            )
        return _read_mapping(loader, root, path)
    finally:
        loader.dispose()


def _read_mapping(loader: yaml.SafeLoader, root: yaml.MappingNode, path: str) -> ConfigFileRead:
    values: dict[str, tuple[Any, int]] = {}
    first_line: dict[str, int] = {}
    for key_node, value_node in root.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            return ConfigFileRead(path, error=f'invalid parameter name in file "{path}" line {line}: a name must be a plain word')
        name = key_node.value
        folded = name.lower()  # parameter names are case-insensitive in PostgreSQL
        if folded in first_line:
            return ConfigFileRead(
                path,
                error=f'parameter "{name}" is set twice in file "{path}": lines {first_line[folded]} and {line}',
            )
        first_line[folded] = line
        if isinstance(value_node, yaml.MappingNode):
            return ConfigFileRead(path, error=f'parameter "{name}" in file "{path}" line {line} has a nested mapping; expected a single value')
        if isinstance(value_node, yaml.SequenceNode):
            return ConfigFileRead(path, error=f'parameter "{name}" in file "{path}" line {line} has a list; expected a single value (write lists as one comma-separated string)')
        try:
            value = loader.construct_object(value_node, deep=True)
        except Exception as exc:  # noqa: BLE001 - explicit tags (!!int abc, !foo) raise anything
            return ConfigFileRead(path, error=f'invalid value for parameter "{name}" in file "{path}" line {line}: {_first_line(exc)}')
        if not isinstance(value, (str, int, float, type(None))):
            value = value_node.value  # dates, binary...: keep the text as written
        values[name] = (value, line)
    return ConfigFileRead(path, values=values, time_zones=time_zone_names())


def _syntax_error(path: str, text: str, exc: yaml.MarkedYAMLError) -> str:
    """PostgreSQL's wording, pointing at the token where YAML gave up."""
    lines = _LINE_BREAK.split(text)
    for mark in (exc.problem_mark, exc.context_mark):
        if mark is None:
            continue
        token = _token_at(lines, mark.line, mark.column)
        if token is not None:
            return f'syntax error in file "{path}" line {mark.line + 1}, near token "{token}"'
    # Nothing left where YAML stopped (it ran past the end of a line or of the file):
    # blame the last non-blank line at or before that point, as PostgreSQL does.
    mark = exc.problem_mark or exc.context_mark
    line = min(mark.line if mark else 0, len(lines) - 1)
    while line > 0 and not lines[line].strip():
        line -= 1
    return f'syntax error in file "{path}" line {line + 1}, near end of line'


def _reader_error(path: str, text: str, exc: yaml.reader.ReaderError) -> str:
    """A character YAML refuses (NUL, other control characters)."""
    line = len(_LINE_BREAK.findall(text[: max(exc.position, 0)])) + 1
    return f'syntax error in file "{path}" line {line}, near token "{_printable(chr(exc.character) if isinstance(exc.character, int) else str(exc.character))}"'


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return _printable(text.splitlines()[0]) if text else type(exc).__name__


def _token_at(lines: list[str], line: int, column: int) -> str | None:
    if line >= len(lines):
        return None
    rest = lines[line][column:].lstrip()
    if not rest:
        return None
    return _printable(rest.split()[0][:_TOKEN_MAX])


def _printable(token: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in token)


# -- startup ------------------------------------------------------------------------------


def load_config_at_startup(datadir: str | Path) -> Config:
    """Read `pgtop.yaml` in the data directory into a Config; any error is fatal.

    Raises ConfigError, whose `logs` hold the LOG lines to print before the FATAL message.
    """
    from pgtop.core import (
        guc,  # imported late: guc is the core's, and may change under us
    )

    path = Path(datadir).absolute() / CONFIG_FILE_NAME
    if not path.is_file():
        raise ConfigError(
            f'could not access the server configuration file "{path}": No such file or directory',
            exit_code=2,
        )
    read = read_config_file(path)
    config, logs = guc.apply_config_file(Config(), read, at_startup=True)
    fatal = [log for log in logs if log.level >= LogLevel.FATAL]
    if fatal or read.error is not None:
        others = tuple(log for log in logs if log.level < LogLevel.FATAL)
        if read.error is not None and not any(log.message == read.error for log in others):
            others = (Log(LogLevel.LOG, read.error),) + others
        message = fatal[0].message if fatal else f'configuration file "{path}" contains errors'
        raise ConfigError(message, logs=others)
    return config


# -- the default file ---------------------------------------------------------------------

SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("CONNECTIONS AND AUTHENTICATION", ("listen_addresses", "port", "max_connections",
     "superuser_reserved_connections", "unix_socket_directories", "authentication_timeout")),
    ("RESOURCE USAGE", ("bgwriter_delay", "max_worker_processes")),
    ("WRITE-AHEAD LOG", ("wal_level", "wal_writer_delay", "checkpoint_timeout", "archive_mode",
     "archive_command")),
    ("REPLICATION", ("max_wal_senders", "hot_standby", "primary_conninfo",
     "wal_retrieve_retry_interval", "max_logical_replication_workers")),
    ("REPORTING AND LOGGING", ("log_destination", "logging_collector", "log_directory",
     "log_filename", "log_rotation_age", "log_rotation_size", "log_min_messages",
     "log_min_error_statement", "log_checkpoints", "log_connections", "log_disconnections",
     "log_line_prefix", "log_timezone")),
    ("STATISTICS", ("track_counts",)),
    ("AUTOVACUUM", ("autovacuum", "autovacuum_max_workers", "autovacuum_naptime")),
    ("CLIENT CONNECTION DEFAULTS", ("statement_timeout", "datestyle", "timezone",
     "application_name")),
    ("ERROR HANDLING", ("restart_after_crash", "remove_temp_files_after_crash")),
    ("PGTOP MODEL", ("redo_delay",)),
)

_UNIT_WORDS = {"ms": "milliseconds", "s": "seconds", "min": "minutes", "kB": "kB"}
_COMMENT_COLUMN = 40

_HEADER = """\
# -----------------------------
# pgtop configuration file
# -----------------------------
#
# The postgresql.conf of a pgtop cluster, written in YAML:
#
#   name: value
#
# One parameter per line; "#" starts a comment.  Quote strings that YAML would
# otherwise read as something else ('*', '', '%m [%p] ', 'off' for a string
# parameter).  Booleans are on/off.  Times and sizes are numbers in the unit
# shown, or strings with a unit as in PostgreSQL ('5min', '200ms', '10MB').
#
# The commented-out settings shown in this file represent the default values.
# Re-commenting a setting is NOT sufficient to revert it to the default value;
# you need to reload the server.
#
# This file is read on server startup and when the server receives a SIGHUP
# signal.  If you edit the file on a running system, you have to SIGHUP the
# server for the changes to take effect, run "pgtop ctl reload", or press the
# reload key in the dashboard.  Some parameters, which are marked below,
# require a server shutdown and restart to take effect.
#
# Each comment gives the unit, the allowed values, when the parameter may change
# (postmaster: restart; sighup: reload; superuser, user: also per session) and
# what the parameter does.
"""


def render_default_config(port: int, *, primary_conninfo: str | None = None) -> str:
    """The commented pgtop.yaml that `pgtop init` writes: every parameter, `port` set.

    `primary_conninfo` is set too when the cluster is created as a standby.
    """
    settings: dict[str, Any] = {"port": port}
    if primary_conninfo is not None:
        settings["primary_conninfo"] = primary_conninfo
    by_name = {f.name: f for f in fields(Config)}
    placed = {name for _, names in SECTIONS for name in names}
    sections = list(SECTIONS)
    leftovers = tuple(name for name in by_name if name not in placed)
    if leftovers:  # a parameter added to Config without a section still appears
        sections.append(("CUSTOMIZED OPTIONS", leftovers))
    out = [_HEADER]
    for title, names in sections:
        out.append(f"\n\n#{'-' * 78}\n# {title}\n#{'-' * 78}\n\n")
        for name in names:
            out.append(_render_parameter(by_name[name], settings))
    return "".join(out)


def _render_parameter(f: Field[Any], settings: dict[str, Any]) -> str:
    name = FIELD_GUC.get(f.name, f.name)
    default = f.default if f.default is not MISSING else None
    if f.name in settings:
        entry = f"{name}: {_yaml_scalar(settings[f.name])}"
    else:
        entry = f"#{name}: {_yaml_scalar(default)}"
    comments = [_describe(f)]
    if f.metadata["context"] is Context.POSTMASTER:
        comments.append("(change requires restart)")
    pad = " " * max(_COMMENT_COLUMN - len(entry), 1)
    lines = [f"{entry}{pad}# {comments[0]}"]
    lines += [f"{' ' * _COMMENT_COLUMN}# {text}" for text in comments[1:]]
    return "\n".join(lines) + "\n"


def _describe(f: Field[Any]) -> str:
    meta = f.metadata
    parts = []
    if meta.get("unit"):
        parts.append(_UNIT_WORDS.get(meta["unit"], meta["unit"]))
    if meta.get("min") is not None and meta.get("max") is not None:
        parts.append(f"{meta['min']}-{meta['max']}")
    if meta.get("choices"):
        parts.append(", ".join(meta["choices"]))
    context: Context = meta["context"]
    prefix = "; ".join(parts)
    doc = meta["doc"]
    if context is Context.POSTMASTER:
        return f"{prefix}; {doc}" if prefix else doc
    return f"{prefix}; {context.value}: {doc}" if prefix else f"{context.value}: {doc}"


def _yaml_scalar(value: Any) -> str:
    """A value as YAML reads it back unchanged; booleans in PostgreSQL's on/off."""
    if isinstance(value, bool):
        return "on" if value else "off"
    dumped = yaml.safe_dump(value, default_flow_style=True, width=10_000)
    return dumped.removesuffix("\n").removesuffix("\n...").strip()

