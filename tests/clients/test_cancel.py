"""Cancel requests (spec §6) against a real `pgtop run`: a 16-byte packet on a new connection
that the postmaster's child checks against its fork-time copy of BackendList."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from support.cluster import Cluster

from .helpers import (
    Running,
    cancel_packet,
    connect,
    process_title,
    raw_socket,
    read_until_closed,
    read_until_ready,
    session_key,
    startup_packet,
    wait_until,
)


@pytest.mark.parametrize("tcp", [False, True], ids=["unix", "tcp"])
def test_psycopg_cancels_a_sleep(cluster: Cluster, tcp: bool) -> None:
    sleeper = Running(cluster, "select pg_sleep(30)", tcp=tcp)
    sleeper.conn.cancel()  # libpq's PQcancel: a CancelRequest on a new connection
    sleeper.finish()
    assert sleeper.sqlstate == "57014"
    assert str(sleeper.error) == "canceling statement due to user request"


def test_statement_timeout_cancels_a_statement_that_runs_too_long(cluster: Cluster) -> None:
    """SET statement_timeout, then a statement longer than it: 57014 "canceling statement due
    to statement timeout", in psql (the simple protocol), in psycopg (the extended one) and in
    the server log, with the statement."""
    mark = len(cluster.lines)
    done = subprocess.run(
        ["psql", "-c", "set statement_timeout = '300ms'", "-c", "select pg_sleep(30)"],
        capture_output=True, text=True, timeout=25, env=cluster.client_env(), check=False,
    )  # fmt: skip
    assert "ERROR:  canceling statement due to statement timeout" in done.stderr
    cluster.wait_for_log(re.escape("STATEMENT:  select pg_sleep(30)"), after=mark)
    with connect(cluster) as conn:
        conn.execute("set statement_timeout = 300")  # no unit: milliseconds
        with pytest.raises(psycopg.errors.QueryCanceled, match="^canceling statement due to statement timeout$"):
            conn.execute("select pg_sleep(%s)", [30])
        assert conn.execute("select 'the session goes on'").fetchone() == ("the session goes on",)


def test_statement_timeout_applies_to_each_statement_of_a_query_string(cluster: Cluster) -> None:
    """As in PostgreSQL 13 and later: two sleeps of 0.6 s in one simple query, under a 1 s
    statement_timeout, both finish."""
    done = subprocess.run(
        ["psql", "-Atc", "set statement_timeout = '1s'; select pg_sleep(0.6); select pg_sleep(0.6); select 'both'"],
        capture_output=True, text=True, timeout=25, env=cluster.client_env(), check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.split() == ["SET", "both"], done.stderr


@pytest.fixture
def session(cluster: Cluster) -> Iterator[tuple[socket.socket, int, int]]:
    """A raw protocol session: the socket, and the PID and secret key of its backend."""
    sock = raw_socket(cluster)
    sock.sendall(startup_packet())
    pid, key = session_key(read_until_ready(sock))
    yield sock, pid, key
    sock.close()


def test_a_cancel_hits_the_running_statement_only(cluster: Cluster, session: tuple[socket.socket, int, int]) -> None:
    sock, pid, key = session
    for _ in range(10):  # a late second SIGINT used to cancel the next statement, sometimes
        sock.sendall(query("select pg_sleep(30)"))
        wait_until(lambda: process_title(pid).endswith(" active"), what=f"backend {pid} active")
        send_cancel(cluster, pid, key, tcp=True)
        assert b"canceling statement due to user request" in read_until_ready(sock)
        # The very next statement runs to its end: one request cancels one statement.
        sock.sendall(query("select 'next'"))
        reply = read_until_ready(sock)
        assert b"next" in reply and b"canceling" not in reply


def test_a_wrong_key_or_an_unknown_pid_only_logs(cluster: Cluster, session: tuple[socket.socket, int, int]) -> None:
    sock, pid, key = session
    mark = len(cluster.lines)
    send_cancel(cluster, pid, key ^ 1)
    cluster.wait_for_log(re.escape(f"LOG:  wrong key in cancel request for process {pid}"), after=mark)
    unknown = 4194304 + 17  # above any pid_max: no process has it
    send_cancel(cluster, unknown, key)
    cluster.wait_for_log(re.escape(f"LOG:  PID {unknown} in cancel request did not match any process"), after=mark)
    sock.sendall(query("select pg_sleep(0.2), 'untouched'"))
    reply = read_until_ready(sock)
    assert b"untouched" in reply and b"canceling" not in reply


def query(text: str) -> bytes:
    body = text.encode() + b"\0"
    return b"Q" + (len(body) + 4).to_bytes(4, "big") + body


def send_cancel(cluster: Cluster, pid: int, key: int, *, tcp: bool = False) -> None:
    """A CancelRequest: the server never answers, it only closes."""
    sock = raw_socket(cluster, tcp=tcp)
    sock.sendall(cancel_packet(pid, key))
    assert read_until_closed(sock) == b""
    sock.close()
