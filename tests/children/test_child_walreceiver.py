"""The walreceiver, for real: libpq's connection errors, the replication startup packet, and
its end, against a closed port and a small fake primary."""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
from collections.abc import Iterator

import pytest
from childtest import Postmaster, config

from pgtop.common.libpq import parse_conninfo
from pgtop.core.vocabulary import ChildKind, ExitStatus


class FakePrimary:
    """Accepts one connection, reads the startup packet, answers with `reply`, keeps it open."""

    def __init__(self, reply: bytes) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.reply = reply
        self.startup: dict[str, str] = {}
        self.connection: socket.socket | None = None
        self.answered = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        self.connection = connection
        length = struct.unpack("!I", connection.recv(4, socket.MSG_WAITALL))[0]
        body = connection.recv(length - 4, socket.MSG_WAITALL)
        fields = body[4:].split(b"\0")
        self.startup = {k.decode(): v.decode() for k, v in zip(fields[::2], fields[1::2]) if k}
        connection.sendall(self.reply)
        self.answered.set()

    def hang_up(self) -> None:
        assert self.connection is not None
        self.connection.close()

    def close(self) -> None:
        self.listener.close()
        if self.connection is not None:
            self.connection.close()
        self.thread.join(2)


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


AUTH_OK_AND_READY = message(b"R", struct.pack("!I", 0)) + message(b"S", b"server_version\x0014.13\x00") + message(b"Z", b"I")
NO_HBA_ENTRY = message(b"E", b"SFATAL\x00C28000\x00Mno pg_hba.conf entry for replication connection from host "
                            b'"127.0.0.1", user "rep", no encryption\x00\x00')  # fmt: skip


@pytest.fixture
def primary(request: pytest.FixtureRequest) -> Iterator[FakePrimary]:
    fake = FakePrimary(request.param)
    yield fake
    fake.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_is_fatal_with_libpqs_words(postmaster: Postmaster) -> None:
    port = free_port()
    pid = postmaster.spawn(ChildKind.WALRECEIVER, config(primary_conninfo=f"host=127.0.0.1 port={port} user=rep"))
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)
    postmaster.log.wait_for(
        rf'FATAL:  could not connect to the primary server: connection to server at "127.0.0.1", port {port} failed: '
        "Connection refused$"
    )
    # libpq's own "\tIs the server ..." line, and elog's tab after the newline before it.
    postmaster.log.wait_for(r"^\t\tIs the server running on that host and accepting TCP/IP connections\?$")


def test_a_missing_unix_socket_is_fatal(postmaster: Postmaster, tmp_path) -> None:
    pid = postmaster.spawn(ChildKind.WALRECEIVER, config(primary_conninfo=f"host={tmp_path} port=5999"))
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)
    postmaster.log.wait_for(
        rf'FATAL:  could not connect to the primary server: connection to server on socket "{tmp_path}/.s.PGSQL.5999" '
        "failed: No such file or directory$"
    )


@pytest.mark.parametrize("primary", [NO_HBA_ENTRY], indirect=True)
def test_a_primary_that_refuses_the_replication_connection(postmaster: Postmaster, primary: FakePrimary) -> None:
    pid = postmaster.spawn(ChildKind.WALRECEIVER, config(primary_conninfo=f"host=127.0.0.1 port={primary.port} user=rep"))
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)
    assert primary.startup == {"user": "rep", "database": "replication", "replication": "true",
                               "application_name": "walreceiver"}  # fmt: skip
    postmaster.log.wait_for(
        rf'FATAL:  could not connect to the primary server: connection to server at "127.0.0.1", port {primary.port} '
        'failed: FATAL:  no pg_hba.conf entry for replication connection from host "127.0.0.1", user "rep", no encryption$'
    )


@pytest.mark.parametrize("primary", [AUTH_OK_AND_READY], indirect=True)
def test_connected_walreceiver_stops_on_sigterm_with_fatal(postmaster: Postmaster, primary: FakePrimary) -> None:
    pid = postmaster.spawn(ChildKind.WALRECEIVER, config(primary_conninfo=f"postgresql://rep@127.0.0.1:{primary.port}"))
    assert primary.answered.wait(2)
    postmaster.wait_started(pid, "pgtop: walreceiver")
    postmaster.assert_running(pid, 0.1)
    os.kill(pid, signal.SIGTERM)
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)
    postmaster.log.wait_for(r"FATAL:  terminating walreceiver process due to administrator command$")


@pytest.mark.parametrize("primary", [AUTH_OK_AND_READY], indirect=True)
def test_walreceiver_ends_when_the_primary_hangs_up(postmaster: Postmaster, primary: FakePrimary) -> None:
    pid = postmaster.spawn(ChildKind.WALRECEIVER, config(primary_conninfo=f"host=127.0.0.1 port={primary.port}"))
    assert primary.answered.wait(2)
    postmaster.wait_started(pid, "pgtop: walreceiver")
    primary.hang_up()
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)
    # It hung up before answering IDENTIFY_SYSTEM (PostgreSQL's words for that moment).
    postmaster.log.wait_for(r"FATAL:  could not receive database system identifier and timeline ID from the primary "
                            r"server: server closed the connection unexpectedly$")


def test_conninfo_in_both_forms() -> None:
    assert parse_conninfo(" host = db port=5433\tuser=rep ") == {"host": "db", "port": "5433", "user": "rep"}
    assert parse_conninfo(r"host=db password='a \'b\' c'") == {"host": "db", "password": "a 'b' c"}
    assert parse_conninfo("postgresql://rep:secret@[::1]:5433/x?application_name=s2") == {
        "user": "rep", "password": "secret", "host": "::1", "port": "5433", "application_name": "s2",
    }
    assert parse_conninfo("postgresql://%2Fvar%2Frun") == {"host": "/var/run"}


@pytest.mark.parametrize("bad", ["host", "host=db port", "password='open"])
def test_a_broken_conninfo_is_fatal_before_connecting(postmaster: Postmaster, bad: str) -> None:
    pid = postmaster.spawn(ChildKind.WALRECEIVER, config(primary_conninfo=bad))
    assert postmaster.wait_exit(pid) == ExitStatus.exited(1)
    postmaster.log.wait_for(r"FATAL:  could not connect to the primary server: (missing \"=\"|unterminated quoted)")
