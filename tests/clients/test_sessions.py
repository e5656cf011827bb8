"""psycopg 3 sessions against a real `pgtop run`: the simple and extended protocols, settings,
what pg_stat_activity and `ps` show, and one session acting on another."""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import socket

import psycopg
import pytest
from support.cluster import Cluster

from .helpers import Running, collect_notices, connect, process_title, wait_until


@pytest.mark.parametrize("tcp", [False, True], ids=["unix", "tcp"])
def test_simple_and_extended_protocol(cluster: Cluster, tcp: bool) -> None:
    with connect(cluster, tcp=tcp) as conn:
        # psycopg sends a query without parameters as a simple Query message ...
        assert conn.execute("select 1 + 1, 'two'").fetchone() == (2, "two")
        # ... and with parameters through Parse/Bind/Describe/Execute/Sync, text or binary.
        assert conn.execute("select %s::int * 2, %s::text", (21, "x")).fetchone() == (42, "x")
        assert conn.execute("select %s::int + 1", (1,), prepare=True).fetchone() == (2,)
        assert conn.execute("select %s::int + 1", (2,), prepare=True).fetchone() == (3,)
        with conn.cursor(binary=True) as cursor:
            assert cursor.execute("select %s::int, %s::bool", (7, True)).fetchone() == (7, True)
        with pytest.raises(psycopg.errors.SyntaxError) as error:
            conn.execute("selec 1")
        assert error.value.diag.sqlstate == "42601"
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("select * from no_such_table where a = %s", (1,))
        assert conn.execute("select 'still here'").fetchone() == ("still here",)


def test_parameter_status_show_and_set(cluster: Cluster) -> None:
    with connect(cluster, application_name="probe") as conn:
        assert conn.info.parameter_status("server_version") == "14.13"
        assert conn.info.parameter_status("application_name") == "probe"
        assert conn.info.parameter_status("integer_datetimes") == "on"
        assert conn.execute("show work_mem").fetchone() == ("4MB",)
        conn.execute("set work_mem = '64MB'")
        assert conn.execute("show work_mem").fetchone() == ("64MB",)
        assert conn.execute("select current_setting('port')").fetchone() == (str(cluster.port),)
        conn.execute("set application_name = 'renamed'")
        assert conn.info.parameter_status("application_name") == "renamed"
        names = conn.execute("select application_name from pg_stat_activity where pid = pg_backend_pid()").fetchall()
        assert names == [("renamed",)]
        with pytest.raises(psycopg.errors.CantChangeRuntimeParam):
            conn.execute("set port = 1")
    with connect(cluster) as conn:  # a SET lasts as long as its session
        assert conn.execute("show work_mem").fetchone() == ("4MB",)


def test_transactions_and_tables(cluster: Cluster) -> None:
    with connect(cluster) as conn:
        conn.execute("create table sessions_t (id int, name text)")
        with conn.transaction():
            conn.execute("insert into sessions_t values (%s, %s)", (1, "one"))
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
            conn.execute("insert into sessions_t values (2, 'two')")
            conn.execute("select 1/0")
        assert conn.execute("select * from sessions_t").fetchall() == [(1, "one")]
        assert conn.execute("select count(*) from sessions_t").fetchone() == (1,)


def test_each_session_draws_its_own_random_numbers(cluster: Cluster) -> None:
    # Backends are forked from one server: a generator they all copied would give each
    # the same numbers.
    draws = []
    for _ in range(2):
        with connect(cluster) as conn:
            draws.append(conn.execute("select random(), random()").fetchone())
    assert draws[0] != draws[1]
    assert all(0 <= x < 1 for pair in draws for x in pair)


def test_pg_stat_activity_and_ps_show_every_session(cluster: Cluster) -> None:
    with connect(cluster, application_name="local-one") as local, connect(cluster, tcp=True) as remote:
        local_pid, remote_pid = local.info.backend_pid, remote.info.backend_pid
        sleeper = Running(cluster, "select pg_sleep(30)")
        try:
            sql = (
                "select pid, state, query, application_name, client_addr, backend_type "
                "from pg_stat_activity where backend_type = 'client backend' order by pid"
            )
            by_pid = {row[0]: row[1:] for row in local.execute(sql).fetchall()}
            assert by_pid[local_pid][:3] == ("active", sql, "local-one")  # the statement itself
            assert by_pid[local_pid][3] is None  # a Unix socket has no client address
            assert by_pid[remote_pid][0] == "idle"
            assert by_pid[remote_pid][3] == ipaddress.ip_address("127.0.0.1")
            assert by_pid[sleeper.pid][:2] == ("active", "select pg_sleep(30)")
            auxiliaries = local.execute(
                "select backend_type from pg_stat_activity where backend_type <> 'client backend'"
            ).fetchall()
            assert ("checkpointer",) in auxiliaries and ("walwriter",) in auxiliaries

            assert process_title(local_pid) == "pgtop: postgres postgres [local] idle"
            assert re.fullmatch(r"pgtop: postgres postgres 127\.0\.0\.1\(\d+\) idle", process_title(remote_pid))
            assert process_title(sleeper.pid) == "pgtop: postgres postgres [local] active"
            local.execute("begin")
            assert process_title(local_pid) == "pgtop: postgres postgres [local] idle in transaction"
            local.execute("rollback")
        finally:
            local.execute("select pg_cancel_backend(%s)", (sleeper.pid,))
            sleeper.finish()


def test_one_session_cancels_and_terminates_another(cluster: Cluster) -> None:
    sleeper = Running(cluster, "select pg_sleep(30)")
    with connect(cluster) as admin:
        assert admin.execute("select pg_cancel_backend(%s)", (sleeper.pid,)).fetchone() == (True,)
        sleeper.finish()
        assert sleeper.sqlstate == "57014"
        assert str(sleeper.error) == "canceling statement due to user request"

        victim = Running(cluster, "select pg_sleep(30)")
        mark = len(cluster.lines)
        assert admin.execute("select pg_terminate_backend(%s)", (victim.pid,)).fetchone() == (True,)
        victim.finish()
        assert victim.sqlstate == "57P01"
        assert str(victim.error).startswith("terminating connection due to administrator command")
        cluster.wait_for_log(rf"\[{victim.pid}\] FATAL:  terminating connection due to administrator command", after=mark)

        notices = collect_notices(admin)
        assert admin.execute("select pg_terminate_backend(%s)", (cluster.pid,)).fetchone() == (False,)
        assert notices[0].severity == "WARNING"
        assert notices[0].message == f"PID {cluster.pid} is not a PostgreSQL backend process"
        assert admin.execute("select 1").fetchone() == (1,)


def test_pg_reload_conf_reloads_the_postmaster(cluster: Cluster) -> None:
    mark = len(cluster.lines)
    with connect(cluster) as conn:
        assert conn.execute("select pg_reload_conf()").fetchone() == (True,)
    cluster.wait_for_log("received SIGHUP, reloading configuration files", after=mark)
    wait_until(lambda: cluster.status()["pm_state"] == "PM_RUN")


def test_a_session_started_after_a_reload_shows_the_new_values(cluster: Cluster) -> None:
    with connect(cluster) as conn:
        assert conn.execute("show checkpoint_timeout").fetchone() == ("5min",)
    cluster.configure(checkpoint_timeout="7min")
    mark = len(cluster.lines)
    try:
        cluster.signal(signal.SIGHUP)
        cluster.wait_for_log('parameter "checkpoint_timeout" changed to "7min"', after=mark)
        with connect(cluster) as conn:
            assert conn.execute("show checkpoint_timeout").fetchone() == ("7min",)
    finally:
        cluster.configure(checkpoint_timeout="5min")
        mark = len(cluster.lines)
        cluster.signal(signal.SIGHUP)
        cluster.wait_for_log('parameter "checkpoint_timeout" changed to "5min"', after=mark)


def test_log_connections_and_disconnections(cluster: Cluster) -> None:
    cluster.configure(log_connections=True, log_disconnections=True)
    mark = len(cluster.lines)
    cluster.signal(signal.SIGHUP)
    cluster.wait_for_log("received SIGHUP", after=mark)
    try:
        with connect(cluster, tcp=True, application_name="logged") as conn:
            pid, port = conn.info.backend_pid, _client_port(conn)
        at = cluster.wait_for_log(re.escape(f"[{pid}] LOG:  connection received: host=127.0.0.1 port={port}"), after=mark)
        cluster.wait_for_log(
            re.escape(f"[{pid}] LOG:  connection authorized: user=postgres database=postgres application_name=logged"),
            after=at,
        )
        cluster.wait_for_log(
            rf"\[{pid}\] LOG:  disconnection: session time: 0:00:\d\d\.\d{{3}} user=postgres database=postgres "
            rf"host=127\.0\.0\.1 port={port}$",
            after=at,
        )
    finally:
        cluster.configure(log_connections=False, log_disconnections=False)
        mark = len(cluster.lines)
        cluster.signal(signal.SIGHUP)
        cluster.wait_for_log("received SIGHUP", after=mark)


def _client_port(conn: psycopg.Connection) -> int:
    """The client's own port of a TCP connection (what the server calls the remote port)."""
    with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
        return sock.getsockname()[1]


def test_an_error_is_logged_with_its_position_and_statement_and_a_fatal_once(cluster: Cluster) -> None:
    """As PostgreSQL 15 logs them (log_min_error_statement = error, the default): the ERROR
    says where in the query it is, and a STATEMENT line follows; SET log_min_error_statement
    = fatal leaves the statement out. A FATAL at connection start is logged once."""
    mark = len(cluster.lines)
    with connect(cluster) as conn:
        pid = conn.info.backend_pid
        for text in ("selec 1", "set log_min_error_statement = fatal", "selec 2", "reset log_min_error_statement"):
            try:
                conn.execute(text)
            except psycopg.errors.SyntaxError:
                pass
        with pytest.raises(psycopg.errors.UndefinedFunction):
            conn.execute("select nosuchfn()")
    with pytest.raises(psycopg.OperationalError, match='unrecognized configuration parameter "nosuch"'):
        connect(cluster, options="-c nosuch=1")
    with connect(cluster) as conn, pytest.raises(psycopg.errors.SyntaxError):
        conn.execute("selec 3")  # the last line we wait for
    cluster.wait_for_log(re.escape("STATEMENT:  selec 3"), after=mark)
    mine = [line.split(f"[{pid}] ", 1)[1] for line in cluster.lines[mark:] if f"[{pid}] " in line]
    assert mine == [
        'ERROR:  syntax error at or near "selec" at character 1',
        "STATEMENT:  selec 1",
        'ERROR:  syntax error at or near "selec" at character 1',
        "ERROR:  function nosuchfn() does not exist at character 8",
        "HINT:  No function matches the given name and argument types. You might need to add explicit type casts.",
        "STATEMENT:  select nosuchfn()",
    ]
    fatal = [line for line in cluster.lines[mark:] if 'FATAL:  unrecognized configuration parameter "nosuch"' in line]
    assert len(fatal) == 1, fatal
