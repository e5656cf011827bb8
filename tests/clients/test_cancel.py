"""Cancel requests (spec §6) against a real `pgtop run`: a 16-byte packet on a new connection
that the postmaster's child checks against its fork-time copy of BackendList."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest
from support.cluster import Cluster

from .helpers import (
    Running,
    cancel_packet,
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
