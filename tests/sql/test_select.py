"""SELECT of expressions: values, result column names and types, and the errors, each checked
against what PostgreSQL 15 answers to the same query."""

from __future__ import annotations

import time

import pytest

from pgtop.sql import MemoryEnvironment
from pgtop.wire import Interrupts, PgError

from .conftest import Sql

INT4, INT8, TEXT, BOOL, NUMERIC, FLOAT8, TIMESTAMPTZ, NAME, VOID, LSN, VARCHAR = (
    23, 20, 25, 16, 1700, 701, 1184, 19, 2278, 3220, 1043)


def test_select_1(sql) -> None:
    outcome = sql.run("SELECT 1")
    assert (outcome.names, outcome.oids, outcome.rows, outcome.tag) == (["?column?"], [INT4], [("1",)], "SELECT 1")


@pytest.mark.parametrize("query", ["select 1;", "  SeLeCt   1  ", "select 1 -- comment", "select /* a /* b */ */ 1"])
def test_keywords_comments_and_semicolons(sql, query) -> None:
    assert sql.rows(query) == [("1",)]


@pytest.mark.parametrize(
    ("expression", "value", "oid"),
    [
        ("2+3*4", "14", INT4),
        ("7/2", "3", INT4),
        ("-7/2", "-3", INT4),
        ("-7%3", "-1", INT4),
        ("7% -3", "1", INT4),
        ("7.0/2", "3.5000000000000000", NUMERIC),
        ("5 / 2.0", "2.5000000000000000", NUMERIC),
        ("1::numeric/3", "0.33333333333333333333", NUMERIC),
        ("7.5 % 2", "1.5", NUMERIC),
        ("2^3^2", "64", FLOAT8),
        ("-2^2", "4", FLOAT8),
        ("10 - -3", "13", INT4),
        ("+4", "4", INT4),
        ("-2147483648", "-2147483648", INT4),
        ("3000000000", "3000000000", INT8),
        ("9223372036854775808", "9223372036854775808", NUMERIC),
        ("1.50", "1.50", NUMERIC),
        (".5", "0.5", NUMERIC),
        ("1e3", "1000", NUMERIC),
        ("'a'||'b'", "ab", TEXT),
        ("'a' || 1 || true", "a1true", TEXT),
        ("true::text || false::varchar", "truefalse", TEXT),
        ("'a' || null", None, TEXT),
        ("'it''s'", "it's", TEXT),
        ("E'a\\tb'", "a\tb", TEXT),
        ("$$dollar$$ || $q$s$q$", "dollars", TEXT),
        ("null", None, TEXT),
        ("true", "t", BOOL),
        ("not true", "f", BOOL),
        ("1 = 1 and 1 <> 2", "t", BOOL),
        ("null = null", None, BOOL),
        ("null and false", "f", BOOL),
        ("null or true", "t", BOOL),
        ("1 < 1.5", "t", BOOL),
        ("'a' < 'b'", "t", BOOL),
        ("1 in (1, 2)", "t", BOOL),
        ("3 not in (1, 2)", "t", BOOL),
        ("2 between 1 and 3", "t", BOOL),
        ("'abc' like 'a%'", "t", BOOL),
        ("'ABC' ilike 'a_c'", "t", BOOL),
        ("null is null", "t", BOOL),
        ("1 is not null", "t", BOOL),
        ("coalesce(null, 1)", "1", INT4),
        ("nullif(1, 1)", None, INT4),
        ("case when 1 = 2 then 'a' else 'b' end", "b", TEXT),
        ("1::text", "1", TEXT),
        ("'5'::int", "5", INT4),
        ("' 1 '::int", "1", INT4),
        ("5::bigint", "5", INT8),
        ("'t'::bool", "t", BOOL),
        ("'of'::bool", "f", BOOL),
        ("1.5::int", "2", INT4),
        ("-2.5::int", "-3", INT4),
        ("2.5::float8::int", "2", INT4),
        ("'abc'::varchar(2)", "ab", VARCHAR),
        ("true::int", "1", INT4),
        ("2::bool", "t", BOOL),
        ("12::numeric(5,2)", "12.00", NUMERIC),
        ("1.005::numeric(5,2)", "1.01", NUMERIC),
        ("cast('5' as integer)", "5", INT4),
        ("1.5e-7::float8", "1.5e-07", FLOAT8),
        ("1e20::float8", "1e+20", FLOAT8),
        ("1e15::float8", "1e+15", FLOAT8),
        ("123456789012345678::float8", "1.2345678901234568e+17", FLOAT8),
        ("0.1::float8 + 0.2", "0.30000000000000004", FLOAT8),
        ("'-0'::float8", "-0", FLOAT8),
        ("'nan'::float8", "NaN", FLOAT8),
        ("'Infinity'::float8", "Infinity", FLOAT8),
        ("'2020-01-01 10:00:00+02'::timestamptz", "2020-01-01 08:00:00+00", TIMESTAMPTZ),
        ("timestamptz '2020-01-02'", "2020-01-02 00:00:00+00", TIMESTAMPTZ),
        ("abs(-3)", "3", INT4),
        ("round(2.567, 2)", "2.57", NUMERIC),
        # Wider than the default decimal context's 28 digits, as PostgreSQL 15 prints them.
        ("round(1e40)", "1" + "0" * 40, NUMERIC),
        ("1e40::numeric(50,2)", "1" + "0" * 40 + ".00", NUMERIC),
        ("upper('a') || lower('B')", "Ab", TEXT),
        ("length('abc')", "3", INT4),
        ("current_user", "alice", NAME),
        ("current_database()", "shop", NAME),
        ("current_catalog", "shop", NAME),
        ("current_schema", "public", NAME),
        ("pg_sleep(0)", "", VOID),
        ("pg_current_wal_lsn()", "0/1500000", LSN),
        ("pg_current_wal_lsn() > '0/0'", "t", BOOL),
        ("pg_is_in_recovery()", "f", BOOL),
        ("pg_backend_pid()", "4242", INT4),
        ("now() = current_timestamp", "t", BOOL),
        ("random() between 0 and 1", "t", BOOL),
        ("current_setting('server_version')", "14.13", TEXT),
        ("current_setting('nosuch', true)", None, TEXT),
        ("pg_reload_conf()", "t", BOOL),
    ],
)
def test_expression_values_and_types(sql, expression, value, oid) -> None:
    outcome = sql.run(f"select {expression}")
    assert outcome.rows == [(value,)]
    assert outcome.oids == [oid]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("select 1 as a, 'x' b, 2", ["a", "b", "?column?"]),
        ('select 1 as "Hello World", 2 "select"', ["Hello World", "select"]),
        ("select 1 as Abc, 2 as \"Abc\"", ["abc", "Abc"]),
        ("select 2 as select, 1 x, 3 as from", ["select", "x", "from"]),
        ("select 1::int, 'x'::varchar(3), now(), now()::text, version()", ["int4", "varchar", "now", "now", "version"]),
        ("select count(*), case when true then 1 end, coalesce(1, 2)", ["count", "case", "coalesce"]),
        ("select current_user, session_user, user, current_timestamp", ["current_user", "session_user", "user",
                                                                        "current_timestamp"]),
    ],
)
def test_column_names_as_postgresql_figures_them(sql, query, names) -> None:
    assert sql.run(query).names == names


def test_select_with_no_targets_returns_one_empty_row(sql) -> None:
    outcome = sql.run("select")
    assert (outcome.names, outcome.rows, outcome.tag) == ([], [()], "SELECT 1")


def test_version_and_start_time_come_from_the_environment(sql) -> None:
    assert sql.value("select version()").startswith("PostgreSQL 14.13 (pgtop)")
    started = sql.env.started.strftime("%Y-%m-%d %H:%M:%S")
    assert sql.value("select pg_postmaster_start_time()").startswith(started)


@pytest.mark.parametrize(
    ("query", "sqlstate", "message", "position"),
    [
        ("selec 1", "42601", 'syntax error at or near "selec"', 1),
        ("select 1 +", "42601", "syntax error at end of input", 11),
        ("select (1", "42601", "syntax error at end of input", 10),
        ("select 1)", "42601", 'syntax error at or near ")"', 9),
        ("select 1 'x'", "42601", "syntax error at or near \"'x'\"", 10),
        ("select 1 < 2 < 3", "42601", 'syntax error at or near "<"', 14),
        ("select 'abc", "42601", "unterminated quoted string at or near \"'abc\"", 8),
        ('select "abc', "42601", 'unterminated quoted identifier at or near ""abc"', 8),
        ('select ""', "42601", 'zero-length delimited identifier at or near """"', 8),
        ("select 1 /* x", "42601", 'unterminated /* comment at or near "/* x"', 10),
        ("select 123abc", "42601", 'trailing junk after numeric literal at or near "123abc"', 8),
        ("select *", "42601", "SELECT * with no tables specified is not valid", 8),
        ("select nocol", "42703", 'column "nocol" does not exist', 8),
        ("select * from nosuch", "42P01", 'relation "nosuch" does not exist', 15),
        ("select foo()", "42883", "function foo() does not exist", 8),
        ("select foo(1, 'a')", "42883", "function foo(integer, unknown) does not exist", 8),
        ("select 'a' + 1", "22P02", 'invalid input syntax for type integer: "a"', 8),
        ("select 'a'::text + 1", "42883", "operator does not exist: text + integer", 18),
        ("select true + 1", "42883", "operator does not exist: boolean + integer", 13),
        ("select -true", "42883", "operator does not exist: - boolean", 8),
        ("select 7 %- 3", "42883", "operator does not exist: integer %- integer", 10),
        ("select not 1", "42804", "argument of NOT must be type boolean, not type integer", 12),
        ("select 1 and true", "42804", "argument of AND must be type boolean, not type integer", 8),
        ("select 1 + 1 and true", "42804", "argument of AND must be type boolean, not type integer", 8),
        ("select 'x'::bool", "22P02", 'invalid input syntax for type boolean: "x"', 8),
        ("select ''::int", "22P02", 'invalid input syntax for type integer: ""', 8),
        ("select 1::foo", "42704", 'type "foo" does not exist', 11),
        ("select $1", "42P02", "there is no parameter $1", 8),
        ("select 1/0", "22012", "division by zero", None),
        ("select 1.0/0", "22012", "division by zero", None),
        ("select 5 % 0", "22012", "division by zero", None),
        ("select 1.0::float8/0", "22012", "division by zero", None),
        ("select 2147483647 + 1", "22003", "integer out of range", None),
        ("select 9223372036854775807 + 1", "22003", "bigint out of range", None),
        ("select 2147483648::int", "22003", "integer out of range", None),
        # Wider than the default decimal context's 28 digits (found by the token-soup fuzz).
        ("select 1e308::int", "22003", "integer out of range", None),
        ("select limit 1e308", "22003", "bigint out of range", None),
        ("select 1e308::float8 * 10", "22003", "value out of range: overflow", None),
        ("select 123456::numeric(3,0)", "22003", "numeric field overflow", None),
        ("select current_setting('nosuch')", "42704", 'unrecognized configuration parameter "nosuch"', None),
        ("vacuum", "0A000", "VACUUM is not supported by pgtop", 1),
        ("select 1 from t, u", "0A000", "JOIN is not supported by pgtop", 16),
        ("select 1 from t join u on true", "0A000", "JOIN is not supported by pgtop", 17),
        ("select 1 from t group by a", "0A000", "GROUP BY is not supported by pgtop", 17),
    ],
)
def test_errors_have_postgresql_sqlstate_text_and_position(sql, query, sqlstate, message, position) -> None:
    error = sql.error(query)
    assert (error.sqlstate, error.message) == (sqlstate, message)
    assert error.position == position


def test_unknown_function_carries_postgresql_hint(sql) -> None:
    assert sql.error("select foo()").hint == (
        "No function matches the given name and argument types. You might need to add explicit type casts."
    )


def test_a_multi_statement_string_is_parsed_whole_before_anything_runs(sql) -> None:
    with pytest.raises(Exception) as caught:
        sql.engine.parse("select 1; selec 2")
    assert caught.value.position == 11


def test_terminate_and_cancel_of_an_unknown_pid_warn_and_return_false(sql) -> None:
    outcome = sql.run("select pg_terminate_backend(99999), pg_cancel_backend(99999)")
    assert outcome.rows == [("f", "f")]
    assert outcome.notices == [("WARNING", "01000", "PID 99999 is not a PostgreSQL backend process")] * 2


def test_terminate_and_cancel_reach_the_environment() -> None:
    signalled: list[tuple[str, int]] = []
    env = MemoryEnvironment(terminate=lambda pid: signalled.append(("terminate", pid)) or True,
                            cancel=lambda pid: signalled.append(("cancel", pid)) or True)
    sql = Sql(env)
    assert sql.rows("select pg_terminate_backend(17), pg_cancel_backend(18)") == [("t", "t")]
    assert signalled == [("terminate", 17), ("cancel", 18)]


def test_pg_sleep_sleeps_in_the_environment() -> None:
    interrupts = Interrupts()
    try:
        sql = Sql(MemoryEnvironment(interrupts=interrupts))
        interrupts.request_cancel()
        started = time.monotonic()
        with pytest.raises(PgError) as caught:
            sql.run("select pg_sleep(30)")
        assert (caught.value.sqlstate, caught.value.message) == ("57014", "canceling statement due to user request")
        assert time.monotonic() - started < 5
    finally:
        interrupts.close()


def test_pg_current_wal_lsn_is_refused_during_recovery() -> None:
    error = Sql(MemoryEnvironment(in_recovery=True)).error("select pg_current_wal_lsn()")
    assert (error.sqlstate, error.message, error.hint) == (
        "55000", "recovery is in progress", "WAL control functions cannot be executed during recovery.")


def test_parameters_take_their_types_from_parse_or_from_use(sql) -> None:
    engine = sql.engine
    statement = engine.parse("select $1::int + 1, $2, $3 || 'x'")[0]
    prepared = engine.analyze(statement, (0, 20, 0))
    assert prepared.param_types == (23, 20, 25)
    engine.begin()
    bound = engine.bind(prepared, (b"41", b"9", None), (), ())  # no format codes: all text
    result = engine.execute(bound)
    engine.commit()
    assert [c.type_oid for c in result.columns] == [23, 20, 25]
    assert result.rows == [[b"42", b"9", None]]


def test_a_parameter_that_is_never_typed_is_an_error(sql) -> None:
    with pytest.raises(Exception) as caught:
        sql.engine.analyze(sql.engine.parse("select $2")[0], ())
    assert (caught.value.sqlstate, caught.value.message) == ("42P18", "could not determine data type of parameter $1")
