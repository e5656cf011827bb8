"""psycopg 3 against the test server: simple and extended protocol, parameters of every
common Python type, transactions, errors with their SQLSTATE, cancel."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import psycopg
import pytest


def _connect(server, **kwargs) -> psycopg.Connection:  # type: ignore[no-untyped-def]
    return psycopg.connect(host="127.0.0.1", port=server.port, user="alice", dbname="shop", connect_timeout=10,
                           **kwargs)


def test_simple_and_extended_queries(server) -> None:
    with _connect(server, autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("select %s::int + 1, %s, %s", [41, "x", None]).fetchone() == (42, "x", None)
        assert conn.execute("select %s, %s, %s, %s", [2**40, 1.5, True, 10**30]).fetchone() == (
            2**40, 1.5, True, Decimal(10**30))
        assert conn.execute("select %s::numeric * 2", [Decimal("1.25")]).fetchone() == (Decimal("2.50"),)
        now = conn.execute("select now()").fetchone()[0]
        assert isinstance(now, dt.datetime) and now.tzinfo is not None
        assert conn.info.parameter_status("server_version") == "14.13"
        assert conn.info.server_version == 140013


def test_psycopg_sees_postgresql_sqlstates(server) -> None:
    with _connect(server, autocommit=True) as conn:
        for statement, sqlstate, error_class in [
            ("select 1/0", "22012", psycopg.errors.DivisionByZero),
            ("selec 1", "42601", psycopg.errors.SyntaxError),
            ("select * from nosuch", "42P01", psycopg.errors.UndefinedTable),
            ("select nocol", "42703", psycopg.errors.UndefinedColumn),
            ("select foo()", "42883", psycopg.errors.UndefinedFunction),
            ("show nosuch", "42704", psycopg.errors.UndefinedObject),
            ("vacuum", "0A000", psycopg.errors.FeatureNotSupported),
        ]:
            with pytest.raises(error_class) as caught:
                conn.execute(statement)
            assert caught.value.sqlstate == sqlstate
        assert conn.execute("select 'still here'").fetchone() == ("still here",)


def test_tables_and_transactions(server) -> None:
    with _connect(server) as conn:
        conn.execute("create table items (id int primary key, name text)")
        with conn.cursor() as cur:
            cur.executemany("insert into items values (%s, %s)", [(1, "a"), (2, "b")])
        conn.commit()
        assert conn.execute("select * from items order by id").fetchall() == [(1, "a"), (2, "b")]
        conn.commit()  # (a transaction() block inside an open one would need SAVEPOINT)
        with pytest.raises(psycopg.errors.UniqueViolation):
            with conn.transaction():
                conn.execute("insert into items values (3, 'c')")
                conn.execute("insert into items values (1, 'dup')")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("select count(*) from items").fetchone() == (2,)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("select 1/0")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("select 1")
        conn.rollback()  # psycopg also sends DEALLOCATE ALL here
        assert conn.execute("select count(*) from items").fetchone() == (2,)
        row = conn.execute("insert into items values (%s, %s) returning id, name", [5, "e"]).fetchone()
        assert row == (5, "e")
        conn.commit()


def test_binary_results_of_simple_types(server) -> None:
    with _connect(server, autocommit=True) as conn:
        cur = conn.cursor(binary=True)
        assert cur.execute("select 1, 'x', true, 1.5::float8, 3000000000").fetchone() == (1, "x", True, 1.5, 3000000000)


def test_cancel_from_another_thread(server) -> None:
    with _connect(server, autocommit=True) as conn:
        pid = conn.info.backend_pid
        server.wait_for(lambda: pid in server.backends)
        backend = server.backends[pid]

        def cancel_when_running() -> None:
            server.wait_for(lambda: backend.state == "active", timeout=10)
            # cancel_safe: the legacy cancel() keeps the GIL while libpq waits for the server,
            # which here is a thread of this very process.
            conn.cancel_safe(timeout=10)

        thread = threading.Thread(target=cancel_when_running)
        thread.start()
        with pytest.raises(psycopg.errors.QueryCanceled) as caught:
            conn.execute("select pg_sleep(60)")
        thread.join(10)
        assert caught.value.sqlstate == "57014"
        assert str(caught.value).startswith("canceling statement due to user request")
        assert conn.execute("select 1").fetchone() == (1,)


def test_terminated_connection_reports_admin_shutdown(server) -> None:
    with _connect(server, autocommit=True) as victim, _connect(server, autocommit=True) as killer:
        assert killer.execute("select pg_terminate_backend(%s)", [victim.info.backend_pid]).fetchone() == (True,)
        # The idle victim's FATAL comes on its own. A query sent before its session has
        # ended can meet a reset connection (closed with the query unread) and then the
        # client never reads the message, with PostgreSQL too.
        server.wait_for(lambda: victim.info.backend_pid not in server.backends)
        with pytest.raises(psycopg.OperationalError) as caught:
            victim.execute("select 1")
        assert "terminating connection due to administrator command" in str(caught.value)
