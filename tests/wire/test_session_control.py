"""How sessions end and are interrupted: Terminate, garbage on the wire, a vanished client,
termination and cancel requests, and the activity a backend reports."""

from __future__ import annotations

import socket
import struct

from pgtop.wire import CRASH_SHUTDOWN, EndReason

from .client import RawClient, brief, cancel_packet, message, query


def _backend_of(server, client_pid: int):  # type: ignore[no-untyped-def]
    server.wait_for(lambda: client_pid in server.backends)
    return server.backends[client_pid]


def _start(server) -> tuple[RawClient, int, int]:
    client = RawClient(server.port)
    received = client.start()
    pid, key = received[-2][1]
    return client, pid, key


def test_terminate_ends_the_session_cleanly(server) -> None:
    client, _, _ = _start(server)
    with client:
        client.send(message(b"X"))
        assert client.rest() == []
    server.wait_for(lambda: server.endings)
    assert server.endings[-1].reason is EndReason.TERMINATE and server.endings[-1].exit_code == 0


def test_an_unknown_message_type_is_fatal(server) -> None:
    client, _, _ = _start(server)
    with client:
        client.send(b"\x01\0\0\0\x04")
        assert brief(client.rest()) == [("E", "FATAL", "08P01", "invalid frontend message type 1")]
    server.wait_for(lambda: server.endings)
    assert server.endings[-1].reason is EndReason.PROTOCOL_VIOLATION and server.endings[-1].exit_code == 1


def test_a_password_message_after_startup_is_fatal(server) -> None:
    client, _, _ = _start(server)
    with client:
        client.send(message(b"p", b"secret\0"))
        assert brief(client.rest()) == [("E", "FATAL", "08P01", "invalid frontend message type 112")]


def test_a_bad_message_length_closes_the_connection_and_is_only_logged(server) -> None:
    for count, garbage in enumerate((b"Q\0\0\0\x02", b"S" + struct.pack("!I", 20000)), start=1):
        client, pid, _ = _start(server)
        with client:
            client.send(garbage)
            assert client.rest() == []
        server.wait_for(lambda count=count: len(server.endings) == count)
        assert [d.message for p, d, _ in server.log if p == pid] == ["invalid message length"]
    assert [(e.reason, e.exit_code) for e in server.endings] == [(EndReason.PROTOCOL_VIOLATION, 0)] * 2
    assert server.alive


def test_a_client_that_vanishes_in_a_transaction_is_logged_and_rolled_back(server) -> None:
    client, pid, _ = _start(server)
    with client:
        client.ask(query("create table t (a int)"))
        client.ask(query("begin; insert into t values (1)"))
    server.wait_for(lambda: any(p == pid and d.severity == "LOG" for p, d, _ in server.log))
    assert [d.message for p, d, _ in server.log if p == pid] == [
        "unexpected EOF on client connection with an open transaction"]
    with RawClient(server.port) as other:
        other.start()
        assert brief(other.ask(query("select count(*) from t")))[1] == ("D", ("0",))


def test_pg_terminate_backend_ends_an_idle_session_with_57p01(server) -> None:
    victim, victim_pid, _ = _start(server)
    killer, _, _ = _start(server)
    with victim, killer:
        assert brief(killer.ask(query(f"select pg_terminate_backend({victim_pid})")))[1] == ("D", ("t",))
        assert brief(victim.rest()) == [
            ("E", "FATAL", "57P01", "terminating connection due to administrator command")]
    server.wait_for(lambda: any(e.reason is EndReason.TERMINATED for e in server.endings))


def test_termination_interrupts_a_running_statement(server) -> None:
    victim, victim_pid, _ = _start(server)
    with victim:
        victim.send(query("select pg_sleep(60)"))
        backend = _backend_of(server, victim_pid)
        server.wait_for(lambda: backend.state == "active")
        backend.session.terminate(CRASH_SHUTDOWN)
        received = victim.rest()
    assert brief(received) == [("N", "WARNING", "57P02", CRASH_SHUTDOWN.message)]
    assert received[0][1]["D"] == CRASH_SHUTDOWN.detail and received[0][1]["H"] == CRASH_SHUTDOWN.hint


def test_a_cancel_request_cancels_the_running_statement(server) -> None:
    victim, pid, key = _start(server)
    with victim:
        victim.send(query("select pg_sleep(60)"))
        backend = _backend_of(server, pid)
        server.wait_for(lambda: backend.state == "active")
        with socket.create_connection(("127.0.0.1", server.port)) as canceller:
            canceller.sendall(cancel_packet(pid, key + 1))  # a wrong key cancels nothing
            assert canceller.recv(1) == b""  # nothing is ever sent back
        server.wait_for(lambda: len(server.cancels) == 1)
        assert backend.state == "active" and not backend.session.interrupts.cancel_pending
        with socket.create_connection(("127.0.0.1", server.port)) as canceller:
            canceller.sendall(cancel_packet(pid, key))
            assert canceller.recv(1) == b""
        assert brief(victim.until("Z")) == [
            ("E", "ERROR", "57014", "canceling statement due to user request"), ("Z", "I")]
        assert brief(victim.ask(query("select 1")))[1] == ("D", ("1",))  # the session goes on


def test_a_cancel_while_idle_cancels_nothing(server) -> None:
    client, pid, key = _start(server)
    with client:
        with socket.create_connection(("127.0.0.1", server.port)) as canceller:
            canceller.sendall(cancel_packet(pid, key))
            assert canceller.recv(1) == b""
        server.wait_for(lambda: server.cancels)
        assert brief(client.ask(query("select 1")))[1] == ("D", ("1",))


def test_pg_stat_activity_shows_each_session(server) -> None:
    sleeper, sleeper_pid, _ = _start(server)
    observer, observer_pid, _ = _start(server)
    with sleeper, observer:
        sleeper.ask(query("begin"))
        rows = brief(observer.ask(query("select pid, state, query from pg_stat_activity order by pid")))
        assert ("D", (str(sleeper_pid), "idle in transaction", "begin")) in rows
        assert ("D", (str(observer_pid), "active", "select pid, state, query from pg_stat_activity order by pid")) in rows
