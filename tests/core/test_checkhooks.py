"""Values that fuzzing pgtop.yaml against a running postmaster found accepted and deadly (a
bad log_timezone crashed every child that logged; a 400-digit number crashed the reload
itself), refused now as PostgreSQL 15 refuses them (messages checked against it)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgtop.common.timezones import time_zone_names
from pgtop.core import Config
from pgtop.core.checkhooks import check_datestyle
from pgtop.core.events import ConfigFileRead
from pgtop.core.guc import InvalidValue, apply_config_file, guc_name, parse_value
from pgtop.core.vocabulary import LogLevel

FILE = "pgtop.yaml"


ZONES = time_zone_names()  # what the runtime hands the core with every file it read


def _refusal(field: str, raw: object) -> tuple[str, str | None, str | None]:
    with pytest.raises(InvalidValue) as caught:
        parse_value(field, raw, ZONES)
    return caught.value.message, caught.value.hint, caught.value.detail


@pytest.mark.parametrize("field", ["log_timezone", "timezone"])
@pytest.mark.parametrize("raw", ["Nowhere/Nope", "", "Europe", "zone.tab", "../../etc/passwd", "/etc/localtime", "UTC+3"])
def test_an_unknown_time_zone_is_an_invalid_value(field: str, raw: str) -> None:
    # (PostgreSQL also takes POSIX specifications such as UTC+3; pgtop names zones only.)
    assert _refusal(field, raw) == (f'invalid value for parameter "{field}": "{raw}"', None, None)


@pytest.mark.parametrize(("raw", "zone"), [("europe/paris", "Europe/Paris"), ("utc", "UTC"), ("gmt", "GMT"),
                                           ("EST5EDT", "EST5EDT"), ("Asia/Kolkata", "Asia/Kolkata")])  # fmt: skip
def test_a_known_time_zone_comes_back_in_its_own_spelling(raw: str, zone: str) -> None:
    assert parse_value("log_timezone", raw, ZONES) == zone


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        ("nope", 'Unrecognized key word: "nope".'),
        ("sql, iso", 'Conflicting "datestyle" specifications.'),
        ("ISO MDY", "List syntax is invalid."),
        ("iso,,mdy", "List syntax is invalid."),
    ],
)
def test_a_bad_datestyle_is_an_invalid_value_with_postgresqls_detail(raw: str, detail: str) -> None:
    assert _refusal("datestyle", raw) == (f'invalid value for parameter "datestyle": "{raw}"', None, detail)


@pytest.mark.parametrize(("raw", "canonical"), [("German", "German, DMY"), ("mdy, german", "German, MDY"),
                                                ("iso, dmy", "ISO, DMY"), ("postgresql, euro", "Postgres, DMY"),
                                                ("", "ISO, MDY"), ("default", "ISO, MDY")])  # fmt: skip
def test_a_datestyle_comes_back_as_postgresql_shows_it(raw: str, canonical: str) -> None:
    assert check_datestyle(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("9" * 400, None),  # inf as a float: this was an OverflowError out of the reload
        ("9" * 400 + "min", None),
        ("99999999999min", "Value exceeds integer range."),
        (10**20, "Value exceeds integer range."),
        ("\u0661\u0662", None),  # Arabic-Indic digits are not digits to PostgreSQL
    ],
)
def test_a_number_out_of_any_integer_is_an_invalid_value(raw: object, hint: str | None) -> None:
    assert _refusal("statement_timeout", raw) == (f'invalid value for parameter "statement_timeout": "{raw}"', hint, None)


def test_a_number_with_an_exponent_is_read_as_postgresql_reads_it() -> None:
    assert parse_value("statement_timeout", "1.5e3") == 1500


def test_a_reload_with_a_bad_log_timezone_keeps_the_old_one_and_applies_the_rest() -> None:
    read = ConfigFileRead(FILE, {"log_timezone": ("Nowhere/Nope", 1), "datestyle": ("nope", 2),
                                 "statement_timeout": ("9" * 400, 3), "bgwriter_delay": (300, 4)})  # fmt: skip
    config, logs = apply_config_file(Config(), read, at_startup=False)
    assert (config.log_timezone, config.datestyle, config.statement_timeout, config.bgwriter_delay) == ("UTC", "ISO, MDY", 0, 300)
    assert [(log.message, log.detail) for log in logs] == [
        ('invalid value for parameter "log_timezone": "Nowhere/Nope"', None),
        ('invalid value for parameter "datestyle": "nope"', 'Unrecognized key word: "nope".'),
        (f'invalid value for parameter "statement_timeout": "{"9" * 400}"', None),
        ('parameter "bgwriter_delay" changed to "300"', None),
        (f'configuration file "{FILE}" contains errors; unaffected changes were applied', None),
    ]


_NAMES = st.sampled_from([guc_name(f.name) for f in dataclasses.fields(Config)] + ["pgtop.custom", "bogus"])
_RAW = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(["9" * 400, "9" * 400 + "kB", "1e308min", "-1e308", "5 parsecs", "europe/paris", "Nope/Nope",
                     "German", "iso,,mdy", "\u0661", "0x10", "  7  ms ", "on", "of"]),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_NAMES, _RAW, max_size=6), st.booleans())
def test_fuzz_any_values_are_taken_or_refused_and_what_is_taken_is_sound(values: dict, at_startup: bool) -> None:
    read = ConfigFileRead(FILE, {name: (raw, line) for line, (name, raw) in enumerate(values.items(), 1)}, time_zones=ZONES)
    config, logs = apply_config_file(Config(), read, at_startup=at_startup)
    for f in dataclasses.fields(Config):
        value, meta = getattr(config, f.name), f.metadata
        assert type(value).__name__ == f.type, (f.name, value)
        if meta.get("min") is not None:
            assert meta["min"] <= value <= meta["max"], (f.name, value)
        if meta.get("choices"):
            assert value in meta["choices"], (f.name, value)
        if f.name in ("timezone", "log_timezone", "datestyle"):
            assert parse_value(f.name, value, ZONES) == value, (f.name, value)  # canonical already
    assert at_startup or not logs or logs[-1].level == LogLevel.LOG
