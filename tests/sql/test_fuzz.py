"""Whatever text a client sends, the engine answers with a SqlError or a result, nothing else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgtop.sql import MemoryEnvironment, SqlError

from .conftest import Sql

WORDS = """select from where order by limit offset as and or not is null true false in between like
ilike case when then else end cast insert into values update set delete create table drop if exists
primary key varchar int bigint text numeric bool timestamptz show reset begin commit rollback start
transaction count sum min max avg coalesce nullif now version current_setting pg_sleep pg_backend_pid
pg_terminate_backend pg_cancel_backend pg_current_wal_lsn abs round upper length t a b pg_stat_activity
distinct returning all default local time zone deallocate""".split()
SYMBOLS = ["(", ")", ",", ";", "*", "+", "-", "/", "%", "^", "||", "=", "<>", "<", ">=", "::", ".", "$1", "'x'",
           "'1'", "''", "0", "1", "2147483647", "9223372036854775807", "1.5", "1e308", "-1", "\"q\"", "E'\\x41'",
           "$$d$$", "--", "/*", "*/"]


class QuietEnvironment(MemoryEnvironment):
    def sleep(self, seconds: float) -> None:
        """pg_sleep(1e9) would stall the run."""


def _session() -> Sql:
    sql = Sql(QuietEnvironment())
    sql.run("create table t (a int primary key, b varchar(3))")
    sql.run("insert into t values (1, 'x'), (2, null)")
    return sql


def _survives(sql: Sql, query: str) -> None:
    try:
        statements = sql.engine.parse(query)
    except SqlError:
        return
    for statement in statements:
        if statement.transaction_control is not None or statement.deallocate is not None:
            continue
        sql.engine.begin()
        try:
            prepared = sql.engine.analyze(statement, None)
            bound = sql.engine.bind(prepared, (), (), (0,) * len(prepared.columns or ()))
            sql.engine.execute(bound)
        except SqlError:
            sql.engine.rollback()
            continue
        sql.engine.commit()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(WORDS + SYMBOLS), max_size=24).map(" ".join))
def test_token_soup_only_raises_sql_errors(query: str) -> None:
    _survives(_session(), query)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_random_text_only_raises_sql_errors(query: str) -> None:
    _survives(_session(), query)


def test_deep_nesting_is_a_clean_error() -> None:
    sql = _session()
    error = sql.error("select " + "(" * 5000 + "1" + ")" * 5000)
    assert (error.sqlstate, error.message) == ("54001", "stack depth limit exceeded")
