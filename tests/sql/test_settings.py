"""SHOW, SET, RESET and current_setting, with PostgreSQL's refusals, transactional SET, the
startup packet's settings, and the settings a pgtop server's Config provides."""

from __future__ import annotations

import pytest

from pgtop.core.config import Config
from pgtop.sql import MemoryEnvironment, SqlError, settings_from_config
from pgtop.wire.startup import StartupMessage

from .conftest import Sql


@pytest.fixture
def server() -> Sql:
    """A session on a server configured like pgtop's (every Config parameter)."""
    return Sql(MemoryEnvironment(settings=settings_from_config(Config())))


def test_show_names_the_column_after_the_parameter(sql) -> None:
    outcome = sql.run("SHOW TimeZone")
    assert (outcome.names, outcome.oids, outcome.rows, outcome.tag) == (["TimeZone"], [25], [("UTC",)], "SHOW")
    assert sql.run('show "TimeZone"').rows == [("UTC",)]
    assert sql.run("show time zone").names == ["TimeZone"]


def test_set_show_reset(sql) -> None:
    assert sql.run("set work_mem = '8MB'").tag == "SET"
    assert sql.value("show work_mem") == "8MB"
    assert sql.value("select current_setting('work_mem')") == "8MB"
    assert sql.run("reset work_mem").tag == "RESET"
    assert sql.value("show work_mem") == "4MB"
    sql.run("set search_path to a, b")
    assert sql.value("show search_path") == "a, b"
    sql.run("set search_path to default")
    assert sql.value("show search_path") == '"$user", public'
    assert sql.value("select set_config('work_mem', '1MB', false)") == "1MB"
    sql.run("reset all")
    assert sql.value("show work_mem") == "4MB"


def test_show_all(sql) -> None:
    outcome = sql.run("show all")
    assert outcome.names == ["name", "setting", "description"]
    assert ("server_version", "14.13", "Shows the server version.") in outcome.rows


@pytest.mark.parametrize(
    ("query", "sqlstate", "message", "hint"),
    [
        ("show nosuch", "42704", 'unrecognized configuration parameter "nosuch"', None),
        ("set nosuch = 1", "42704", 'unrecognized configuration parameter "nosuch"', None),
        ("set port = 1", "55P02", 'parameter "port" cannot be changed without restarting the server', None),
        ("set checkpoint_timeout = 100", "55P02", 'parameter "checkpoint_timeout" cannot be changed now', None),
        ("set server_version = '1'", "55P02", 'parameter "server_version" cannot be changed', None),
        ("set log_connections = on", "55P02", 'parameter "log_connections" cannot be set after connection start',
         None),
        ("set log_min_messages = 'x'", "22023", 'invalid value for parameter "log_min_messages": "x"',
         "Available values: debug5, debug4, debug3, debug2, debug1, info, notice, warning, error, log, fatal, panic."),
        ("set standard_conforming_strings = maybe", "22023",
         'parameter "standard_conforming_strings" requires a Boolean value', None),
        ("set statement_timeout = 'soon'", "22023", 'invalid value for parameter "statement_timeout": "soon"', None),
    ],
)
def test_refusals(server, query, sqlstate, message, hint) -> None:
    error = server.error(query)
    assert (error.sqlstate, error.message, error.hint) == (sqlstate, message, hint)


def test_only_utc_is_accepted_as_time_zone(sql) -> None:
    sql.run("set time zone 'Etc/UTC'")
    assert sql.value("show timezone") == "UTC"
    assert sql.error("set timezone = 'Europe/Paris'").sqlstate == "22023"


def test_set_is_undone_by_rollback_and_set_local_ends_with_the_transaction(sql) -> None:
    engine = sql.engine
    engine.begin()
    engine.settings.set("work_mem", "64MB")
    engine.rollback()
    assert sql.value("show work_mem") == "4MB"
    engine.begin()
    engine.settings.set("work_mem", "64MB", local=True)
    assert engine.settings.get("work_mem") == "64MB"
    engine.commit()
    assert sql.value("show work_mem") == "4MB"


def test_startup_settings_become_the_session_defaults() -> None:
    sql = Sql()
    sql.engine.start_session(StartupMessage("bob", "db", options="-c work_mem=16MB --search-path=x",
                                            parameters={"application_name": "report"}))
    assert sql.rows("select current_setting('work_mem'), current_setting('search_path'), "
                    "current_setting('application_name'), current_user") == [("16MB", "x", "report", "bob")]
    sql.run("set work_mem = '1MB'")
    sql.run("reset work_mem")
    assert sql.value("show work_mem") == "16MB"
    status = sql.engine.parameter_status()
    assert (status["application_name"], status["session_authorization"], status["is_superuser"]) == (
        "report", "bob", "on")


@pytest.mark.parametrize(
    ("parameters", "options", "sqlstate"),
    [({"nosuch": "1"}, "", "42704"), ({}, "-c port=1", "55P02"), ({}, "-X", "42601")],
)
def test_bad_startup_settings_are_refused(parameters, options, sqlstate) -> None:
    sql = Sql(MemoryEnvironment(settings=settings_from_config(Config())))
    with pytest.raises(SqlError if sqlstate != "42601" else Exception) as caught:
        sql.engine.start_session(StartupMessage("bob", "db", options=options, parameters=parameters))
    assert caught.value.sqlstate == sqlstate


def test_pgtop_config_is_shown_as_postgresql_shows_it(server) -> None:
    assert server.rows("select current_setting('authentication_timeout'), current_setting('port'), "
                       "current_setting('bgwriter_delay'), current_setting('log_rotation_size'), "
                       "current_setting('autovacuum'), current_setting('pgtop.redo_delay'), "
                       "current_setting('DateStyle')") == [("1min", "5432", "200ms", "10MB", "on", "0", "ISO, MDY")]
