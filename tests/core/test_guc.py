"""apply_config_file, PostgreSQL's ProcessConfigFile: what a reload (and the first read at
startup) changes and logs (spec §3.1)."""

from __future__ import annotations

import pytest

from pgtop.core import Config
from pgtop.core.actions import Log
from pgtop.core.events import ConfigFileRead
from pgtop.core.guc import apply_config_file
from pgtop.core.vocabulary import LogLevel

FILE = "postgresql.conf"
TIME_HINT = 'Valid units for this parameter are "us", "ms", "s", "min", "h", and "d".'
MEMORY_HINT = 'Valid units for this parameter are "B", "kB", "MB", "GB", and "TB".'


def reload(values: dict, config: Config | None = None, *, error: str | None = None):
    read = ConfigFileRead(FILE, {name: (raw, line) for line, (name, raw) in enumerate(values.items(), 1)}, error)
    return apply_config_file(config or Config(), read, at_startup=False)


def startup(values: dict):
    read = ConfigFileRead(FILE, {name: (raw, line) for line, (name, raw) in enumerate(values.items(), 1)})
    return apply_config_file(Config(), read, at_startup=True)


def messages(logs: list[Log]) -> list[str]:
    return [log.message for log in logs]


def test_guc_reload_change_is_applied_and_logged() -> None:
    config, logs = reload({"checkpoint_timeout": "10min"})
    assert config.checkpoint_timeout == 600
    assert messages(logs) == ['parameter "checkpoint_timeout" changed to "10min"']
    assert [log.level for log in logs] == [LogLevel.LOG]


def test_guc_reload_same_value_logs_nothing() -> None:
    config, logs = reload({"checkpoint_timeout": "5min", "autovacuum": "on"})
    assert config == Config()
    assert logs == []


def test_guc_reload_several_changes_all_logged() -> None:
    config, logs = reload({"autovacuum": "off", "checkpoint_timeout": "10min"})
    assert (config.autovacuum, config.checkpoint_timeout) == (False, 600)
    assert sorted(messages(logs)) == ['parameter "autovacuum" changed to "off"',
                                      'parameter "checkpoint_timeout" changed to "10min"']


def test_guc_reload_changes_logged_in_file_order_after_removals() -> None:
    # ProcessConfigFileInternal: removals first (table order), then the file's lines in order.
    before = Config(log_checkpoints=True)
    _, logs = reload({"statement_timeout": "1h", "autovacuum": "off"}, before)
    assert messages(logs) == [
        'parameter "log_checkpoints" removed from configuration file, reset to default',
        'parameter "statement_timeout" changed to "1h"',
        'parameter "autovacuum" changed to "off"',
    ]


def test_guc_reload_unknown_parameter_applies_nothing() -> None:
    read = ConfigFileRead(FILE, {"autovacuum": ("off", 3), "bogus_setting": ("1", 7)})
    config, logs = apply_config_file(Config(), read, at_startup=False)
    assert config == Config()
    assert messages(logs) == [
        f'unrecognized configuration parameter "bogus_setting" in file "{FILE}" line 7',
        f'configuration file "{FILE}" contains errors; no changes were applied',
    ]


def test_guc_reload_custom_parameters_with_a_dot_are_accepted() -> None:
    config, logs = reload({"myext.setting": "1", "autovacuum": "off"})
    assert config.autovacuum is False
    assert messages(logs) == ['parameter "autovacuum" changed to "off"']


def test_guc_reload_syntax_error_applies_nothing() -> None:
    error = f'syntax error in file "{FILE}" line 3, near token "="'
    config, logs = reload({"autovacuum": "off"}, error=error)
    assert config == Config()
    assert messages(logs) == [error, f'configuration file "{FILE}" contains errors; no changes were applied']


@pytest.mark.parametrize(
    ("name", "raw", "message", "hint"),
    [
        ("checkpoint_timeout", "5 parsecs", 'invalid value for parameter "checkpoint_timeout": "5 parsecs"', TIME_HINT),
        ("log_rotation_size", "10 furlongs", 'invalid value for parameter "log_rotation_size": "10 furlongs"', MEMORY_HINT),
        ("checkpoint_timeout", "lots", 'invalid value for parameter "checkpoint_timeout": "lots"', None),
        ("checkpoint_timeout", "10s", '10 s is outside the valid range for parameter "checkpoint_timeout" (30 .. 86400)', None),
        ("autovacuum", "maybe", 'parameter "autovacuum" requires a Boolean value', None),
        ("log_min_messages", "loud", 'invalid value for parameter "log_min_messages": "loud"',
         "Available values: debug5, debug4, debug3, debug2, debug1, info, notice, warning, error, log, fatal, panic."),
    ],
)
def test_guc_reload_bad_value_is_skipped_and_the_rest_applied(name, raw, message, hint) -> None:
    config, logs = reload({name: raw, "statement_timeout": "1h"})
    assert config.statement_timeout == 3_600_000
    assert getattr(config, name) == getattr(Config(), name)
    assert [(log.message, log.hint) for log in logs if log.message != 'parameter "statement_timeout" changed to "1h"'] == [
        (message, hint),
        (f'configuration file "{FILE}" contains errors; unaffected changes were applied', None),
    ]
    assert 'parameter "statement_timeout" changed to "1h"' in messages(logs)


def test_guc_reload_postmaster_parameter_needs_a_restart() -> None:
    config, logs = reload({"max_connections": "200", "autovacuum": "off"})
    assert (config.max_connections, config.autovacuum) == (100, False)
    assert messages(logs) == [
        'parameter "max_connections" cannot be changed without restarting the server',
        'parameter "autovacuum" changed to "off"',
        f'configuration file "{FILE}" contains errors; unaffected changes were applied',
    ]


def test_guc_reload_postmaster_parameter_with_its_current_value_is_fine() -> None:
    config, logs = reload({"max_connections": "100"})
    assert (config, logs) == (Config(), [])


def test_guc_reload_removed_parameter_goes_back_to_its_default() -> None:
    config, logs = reload({}, Config(checkpoint_timeout=600))
    assert config.checkpoint_timeout == 300
    assert messages(logs) == ['parameter "checkpoint_timeout" removed from configuration file, reset to default']


def test_guc_reload_removed_postmaster_parameter_needs_a_restart() -> None:
    config, logs = reload({}, Config(max_connections=50))
    assert config.max_connections == 50
    assert messages(logs) == [
        'parameter "max_connections" cannot be changed without restarting the server',
        f'configuration file "{FILE}" contains errors; unaffected changes were applied',
    ]


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("checkpoint_timeout", "5min", 300),  # unit s
        ("checkpoint_timeout", "1h", 3600),
        ("checkpoint_timeout", "120", 120),  # no unit: the parameter's own
        ("wal_writer_delay", "100ms", 100),  # unit ms
        ("bgwriter_delay", "1s", 1000),
        ("statement_timeout", "1h", 3_600_000),
        ("statement_timeout", "1d", 86_400_000),
        ("log_rotation_age", "1h", 60),  # unit min
        ("log_rotation_size", "10MB", 10240),  # unit kB
        ("log_rotation_size", "1GB", 1024 * 1024),
    ],
)
def test_guc_units(name, raw, value) -> None:
    config, logs = reload({name: raw})
    assert getattr(config, name) == value
    if value != getattr(Config(), name):
        assert messages(logs) == [f'parameter "{name}" changed to "{raw}"']


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("on", True), ("off", False), ("true", True), ("false", False), ("yes", True), ("no", False),
        ("1", True), ("0", False), ("t", True), ("tr", True), ("f", False), ("fal", False),
        ("y", True), ("ye", True), ("n", False), ("of", False), ("ON", True), ("Off", False), ("TRUE", True),
    ],
)
def test_guc_booleans_and_their_prefixes(raw, value) -> None:
    config, logs = reload({"log_checkpoints": raw})
    assert config.log_checkpoints is value
    assert messages(logs) == ([f'parameter "log_checkpoints" changed to "{raw}"'] if value else [])


@pytest.mark.parametrize("raw", ["o", "yess", "2", "onn", "", "offf"])
def test_guc_bad_booleans(raw) -> None:
    config, logs = reload({"log_checkpoints": raw})
    assert config.log_checkpoints is False
    assert messages(logs)[0] == 'parameter "log_checkpoints" requires a Boolean value'


def test_guc_startup_applies_everything_silently() -> None:
    config, logs = startup({"max_connections": "50", "checkpoint_timeout": "10min", "logging_collector": "on"})
    assert (config.max_connections, config.checkpoint_timeout, config.logging_collector) == (50, 600, True)
    assert logs == []


@pytest.mark.parametrize(
    ("values", "first"),
    [
        ({"bogus": "1"}, f'unrecognized configuration parameter "bogus" in file "{FILE}" line 2'),
        ({"checkpoint_timeout": "5 parsecs"}, 'invalid value for parameter "checkpoint_timeout": "5 parsecs"'),
        ({"autovacuum": "perhaps"}, 'parameter "autovacuum" requires a Boolean value'),
    ],
)
def test_guc_startup_errors_are_fatal(values, first) -> None:
    config, logs = startup({"max_connections": "50", **values})
    assert config == Config()  # nothing is kept
    assert messages(logs) == [first, f'configuration file "{FILE}" contains errors']
    assert logs[-1].level == LogLevel.FATAL
