"""pgtop.yaml: reading with line numbers, PostgreSQL-style errors, the default file, startup."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgtop.common.configfile import (
    CONFIG_FILE_NAME,
    ConfigError,
    load_config_at_startup,
    parse_config_text,
    read_config_file,
    render_default_config,
)
from pgtop.core.config import FIELD_GUC, Config, Context
from pgtop.core.vocabulary import LogLevel


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / CONFIG_FILE_NAME
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


# -- reading ------------------------------------------------------------------------------


def test_values_keep_their_line_numbers_and_raw_form(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# a comment\n"
        "port: 5433\n"
        "\n"
        "checkpoint_timeout: 5min   # a unit string stays a string\n"
        "autovacuum: off\n"
        "archive_mode: 'on'\n"
        "listen_addresses: '*'\n"
        "archive_command:\n",
    )
    read = read_config_file(path)
    assert read.error is None
    assert read.path == str(path)
    assert dict(read.values) == {
        "port": (5433, 2),
        "checkpoint_timeout": ("5min", 4),
        "autovacuum": (False, 5),
        "archive_mode": ("on", 6),
        "listen_addresses": ("*", 7),
        "archive_command": (None, 8),
    }


@pytest.mark.parametrize("text", ["", "# only a comment\n\n", "---\n"])
def test_an_empty_file_sets_nothing(tmp_path: Path, text: str) -> None:
    read = read_config_file(write(tmp_path, text))
    assert read.error is None and dict(read.values) == {}


@pytest.mark.parametrize(
    ("text", "line", "near"),
    [
        ("port: 5\nwork_mem: : 5\n", 2, 'near token ":"'),
        ("port: 5\nlisten_addresses: *\n", 2, 'near token "*"'),
        ("port: 5\nfoo bar baz\n", 2, 'near token "foo"'),
        ("archive_command: 'cp %p\n", 1, "near token \"'cp\""),
        ("port: 5\n  autovacuum: on\n", 2, 'near token ":"'),
        ("port: 5\nlisten_addresses: {\n", 2, "near end of line"),
        ("port: 5\n---\nport: 6\n", 2, 'near token "---"'),
        ("port: 5\nlog_line_prefix: `x\n", 2, 'near token "`x"'),
        ("port: 5\nbad: \x00\n", 2, 'near token "\\x00"'),
    ],
)
def test_syntax_errors_read_like_postgresql(tmp_path: Path, text: str, line: int, near: str) -> None:
    path = write(tmp_path, text)
    read = read_config_file(path)
    assert read.error == f'syntax error in file "{path}" line {line}, {near}'
    assert dict(read.values) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- port\n- 5\n", 'configuration file "{path}" must be a mapping of parameter names to values, not a list'),
        ("port\n", 'configuration file "{path}" must be a mapping of parameter names to values, not a single value'),
        ("port: 5\nmax_connections: 3\nPort: 6\n", 'parameter "Port" is set twice in file "{path}": lines 1 and 3'),
        ("port: 5\nlog:\n  level: 3\n", 'parameter "log" in file "{path}" line 2 has a nested mapping; expected a single value'),
        ("listen_addresses: [a, b]\n", 'parameter "listen_addresses" in file "{path}" line 1 has a list; expected a single value (write lists as one comma-separated string)'),
        ("? [a, b]\n: 1\n", 'invalid parameter name in file "{path}" line 1: a name must be a plain word'),
        ("port: !!int five\n", "invalid value for parameter \"port\" in file \"{path}\" line 1: invalid literal for int() with base 10: 'five'"),
        ("port: !custom 5\n", "invalid value for parameter \"port\" in file \"{path}\" line 1: could not determine a constructor for the tag '!custom'"),
    ],
)
def test_structural_errors_have_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    read = read_config_file(path)
    assert read.error == message.format(path=path)
    assert dict(read.values) == {}


def test_a_missing_file_and_bad_bytes_are_errors_not_exceptions(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert read_config_file(missing).error == f'could not open configuration file "{missing}": No such file or directory'
    path = write(tmp_path, b"port: 5\nlisten_addresses: \xff\n")
    assert read_config_file(path).error == f'invalid byte sequence for encoding "UTF8": 0xff in file "{path}" line 2'


def test_dates_and_binary_keep_the_text_as_written(tmp_path: Path) -> None:
    read = read_config_file(write(tmp_path, "timezone: 2001-01-01\napplication_name: !!binary aGk=\n"))
    assert dict(read.values) == {"timezone": ("2001-01-01", 1), "application_name": ("aGk=", 2)}


def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, "port: " + "[" * 20000)
    assert read_config_file(path).error == f'configuration file "{path}" is nested too deeply'


_yaml_alphabet = st.sampled_from(list("ab: \n\t'\"[]{}-?&*!|>#%@,.\\=0\x00\x85\u2028") + ["port", "on", "---", "..."])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=60), st.lists(_yaml_alphabet, max_size=40).map("".join)))
def test_fuzz_text_never_raises_and_errors_are_one_line(text: str) -> None:
    read = parse_config_text(text, "/data/pgtop.yaml")
    if read.error is not None:
        assert "\n" not in read.error and read.error
        assert dict(read.values) == {}
    for name, (value, line) in read.values.items():
        assert isinstance(name, str) and line >= 1
        assert value is None or isinstance(value, (str, int, float))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=60))
def test_fuzz_bytes_never_raise(tmp_path: Path, data: bytes) -> None:
    read = read_config_file(write(tmp_path, data))
    assert read.error is None or "\n" not in read.error


# -- the default file ---------------------------------------------------------------------


def _uncommented(text: str) -> str:
    """Every parameter line of the default file with its leading '#' removed."""
    return re.sub(r"^#(?=[a-z][a-z_.]*: )", "", text, flags=re.MULTILINE)


def test_default_file_lists_every_parameter_with_its_default() -> None:
    text = render_default_config(5432)
    read = parse_config_text(_uncommented(text), "x")
    assert read.error is None
    written = {name: value for name, (value, _line) in read.values.items()}
    expected = {FIELD_GUC.get(f.name, f.name): f.default for f in dataclasses.fields(Config)}
    assert written == expected


def test_default_file_sets_only_the_port_and_marks_restart_parameters() -> None:
    text = render_default_config(6543)
    read = parse_config_text(text, "x")
    assert {name: value for name, (value, _line) in read.values.items()} == {"port": 6543}
    lines = text.splitlines()
    for f in dataclasses.fields(Config):
        name = FIELD_GUC.get(f.name, f.name)
        index = next(i for i, line in enumerate(lines) if re.match(rf"#?{re.escape(name)}: ", line))
        needs_restart = index + 1 < len(lines) and lines[index + 1].strip() == "# (change requires restart)"
        assert needs_restart == (f.metadata["context"] is Context.POSTMASTER), name
        if f.metadata["context"] is not Context.POSTMASTER:
            assert f"{f.metadata['context'].value}: " in lines[index], name
    for title in ("CONNECTIONS AND AUTHENTICATION", "RESOURCE USAGE", "WRITE-AHEAD LOG", "REPLICATION",
                  "REPORTING AND LOGGING", "AUTOVACUUM", "CLIENT CONNECTION DEFAULTS", "PGTOP MODEL"):
        assert f"# {title}\n" in text
    assert "CUSTOMIZED OPTIONS" not in text  # every parameter has its section


def test_loading_the_default_file_gives_the_default_config(tmp_path: Path) -> None:
    write(tmp_path, render_default_config(6543))
    assert load_config_at_startup(tmp_path) == dataclasses.replace(Config(), port=6543)
    write(tmp_path, _uncommented(render_default_config(5432)))
    assert load_config_at_startup(tmp_path) == Config()


def test_a_standby_default_file_carries_primary_conninfo(tmp_path: Path) -> None:
    write(tmp_path, render_default_config(5433, primary_conninfo="host=/tmp port=5432"))
    config = load_config_at_startup(tmp_path)
    assert (config.port, config.primary_conninfo) == (5433, "host=/tmp port=5432")


# -- startup ------------------------------------------------------------------------------


def test_startup_with_a_syntax_error_is_fatal(tmp_path: Path) -> None:
    path = write(tmp_path, "port: 5433\nmax_connections: : 5\n")
    with pytest.raises(ConfigError) as caught:
        load_config_at_startup(tmp_path)
    assert str(caught.value) == f'configuration file "{path}" contains errors'
    assert caught.value.exit_code == 1
    assert [(log.level, log.message) for log in caught.value.logs] == [
        (LogLevel.LOG, f'syntax error in file "{path}" line 2, near token ":"')
    ]


def test_startup_with_a_bad_value_is_fatal(tmp_path: Path) -> None:
    path = write(tmp_path, "max_connections: lots\n")
    with pytest.raises(ConfigError) as caught:
        load_config_at_startup(tmp_path)
    assert caught.value.message == f'configuration file "{path}" contains errors'
    assert [log.message for log in caught.value.logs] == ['invalid value for parameter "max_connections": "lots"']


def test_startup_without_a_config_file_exits_2(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_at_startup(tmp_path)
    assert caught.value.message == (
        f'could not access the server configuration file "{tmp_path / CONFIG_FILE_NAME}": No such file or directory'
    )
    assert caught.value.exit_code == 2
