"""A client session opened on a hot standby, kept open across the standby's promotion
(issue #6). As PostgreSQL 15 does (checked on a real primary/standby pair): the session's next
transaction may write, pg_is_in_recovery() says false at once, in_hot_standby is reported off
at the next ReadyForQuery, and a transaction already open during the promotion stays read-only
(25006) until it ends."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import psycopg
import pytest
from standby_support import Standby, connect

DEADLINE = 20.0
READ_ONLY = "cannot execute INSERT in a read-only transaction"


@pytest.fixture
def primary(make_cluster: Any) -> Any:
    cluster = make_cluster().start()
    with connect(cluster) as session:
        session.execute("create table t (a int)")
        session.execute("insert into t values (1)")  # in the base backup
    return cluster


@pytest.fixture
def standby(primary: Any, make_standby: Any) -> Standby:
    return make_standby(primary).start_standby()


def promote(standby: Standby) -> None:
    """`pgtop ctl promote`, then wait until the postmaster runs as a primary."""
    promoted = subprocess.run([sys.executable, "-m", "pgtop", "ctl", "-D", str(standby.datadir), "promote"],
                              check=True, capture_output=True, text=True, timeout=DEADLINE)
    assert promoted.stdout == "server signaled to promote\n"
    standby.wait_for(lambda s: s["pm_state"] == "PM_RUN", timeout=DEADLINE)


def refused_insert(session: psycopg.Connection, value: int) -> psycopg.Error:
    with pytest.raises(psycopg.Error) as refused:
        session.execute("insert into t values (%s)", (value,))
    return refused.value


def test_a_session_opened_on_the_hot_standby_writes_after_the_promotion(standby: Standby) -> None:
    with connect(standby) as session:
        assert session.info.parameter_status("in_hot_standby") == "on"
        error = refused_insert(session, 2)
        assert (error.sqlstate, str(error)) == ("25006", READ_ONLY)
        promote(standby)
        # The same session, no reconnect.
        assert session.execute("select pg_is_in_recovery()").fetchall() == [(False,)]
        assert session.info.parameter_status("in_hot_standby") == "off"
        session.execute("insert into t values (2)")
        assert session.execute("select a from t order by a").fetchall() == [(1,), (2,)]
    with connect(standby) as other:
        assert other.execute("select a from t order by a").fetchall() == [(1,), (2,)]


def test_a_transaction_open_across_the_promotion_stays_read_only_until_it_ends(standby: Standby) -> None:
    with connect(standby) as session:
        session.execute("begin")
        assert session.execute("select count(*) from t").fetchall() == [(1,)]
        promote(standby)
        # RecoveryInProgress() is read live, but the transaction began read-only.
        assert session.execute("select pg_is_in_recovery()").fetchall() == [(False,)]
        error = refused_insert(session, 2)
        assert (error.sqlstate, str(error)) == ("25006", READ_ONLY)
        session.execute("rollback")
        session.execute("insert into t values (3)")  # the next transaction writes
    with connect(standby) as other:
        assert other.execute("select a from t order by a").fetchall() == [(1,), (3,)]
