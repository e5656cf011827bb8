"""The startup packet, byte for byte as PostgreSQL 15 answers it (each case was sent to a real
15.18 server with a raw socket; the expected bytes below are what it sent back)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from pgtop.wire import (
    CancelRequest,
    ConnectionLost,
    ProtocolViolation,
    StartupMessage,
    read_startup_packet,
)
from pgtop.wire.startup import violation_response

from .client import GSS_REQUEST, SSL_REQUEST, cancel_packet, startup_packet

MITM = "This could be either a client-software bug or evidence of an attempted man-in-the-middle attack."


class Connection:
    """A socketpair: the test writes as the client, read_startup_packet runs on the other end."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.client, self.server = socket.socketpair()
        self.client.settimeout(5)
        self.server.settimeout(5)
        self.future: Future = pool.submit(self._read)

    def _read(self) -> StartupMessage | CancelRequest:
        try:
            return read_startup_packet(self.server)
        except ProtocolViolation as violation:
            self.server.sendall(violation_response(violation))
            raise

    def send(self, data: bytes, then_close: bool = False) -> None:
        if data:
            self.client.sendall(data)
        if then_close:
            self.client.shutdown(socket.SHUT_WR)

    def outcome(self) -> StartupMessage | CancelRequest | BaseException:
        try:
            return self.future.result(timeout=5)
        except (ProtocolViolation, ConnectionLost) as error:
            return error

    def received(self) -> bytes:
        """What the client got, once read_startup_packet has finished."""
        self.future.exception(timeout=5)
        self.server.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := self.client.recv(4096):
            data += chunk
        return data

    def close(self) -> None:
        self.client.close()
        self.server.close()


@pytest.fixture
def connect() -> Iterator:
    pool = ThreadPoolExecutor(max_workers=4)
    made: list[Connection] = []

    def make() -> Connection:
        made.append(Connection(pool))
        return made[-1]

    yield make
    for connection in made:
        connection.close()
    pool.shutdown(wait=True)


def test_an_empty_connection_is_dropped_without_complaint(connect) -> None:
    conn = connect()
    conn.send(b"", then_close=True)
    assert isinstance(conn.outcome(), ConnectionLost)
    assert conn.received() == b""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\0\0\0", "incomplete startup packet"),
        (struct.pack("!I", 20) + b"\0\3\0\0", "incomplete startup packet"),
        (struct.pack("!I", 10004) + b"\0\3\0\0", "incomplete startup packet"),  # 10004 is still a valid length
        (struct.pack("!II", 7, 196608), "invalid length of startup packet"),
        (struct.pack("!I", 4), "invalid length of startup packet"),
        (struct.pack("!II", 10005, 196608), "invalid length of startup packet"),
        (struct.pack("!IIIII", 20, 80877102, 1, 2, 3), "invalid length of startup packet"),  # a 20-byte cancel
        (struct.pack("!III", 12, 80877102, 1), "invalid length of startup packet"),
    ],
)
def test_log_only_violations_send_nothing(connect, data, message) -> None:
    conn = connect()
    conn.send(data, then_close=True)
    outcome = conn.outcome()
    assert isinstance(outcome, ProtocolViolation)
    assert (outcome.sqlstate, outcome.message, outcome.send_to_client, outcome.severity) == (
        "08P01", message, False, "LOG")
    assert conn.received() == b""


def _fatal(sqlstate: str, message: str, detail: str | None = None, hint: str | None = None) -> bytes:
    fields = b"SFATAL\0VFATAL\0C" + sqlstate.encode() + b"\0M" + message.encode() + b"\0"
    if detail:
        fields += b"D" + detail.encode() + b"\0"
    if hint:
        fields += b"H" + hint.encode() + b"\0"
    return b"E" + struct.pack("!I", len(fields) + 5) + fields + b"\0"


@pytest.mark.parametrize(
    ("data", "sqlstate", "message", "reply"),
    [
        (startup_packet({"user": "u"}, version=2 << 16), "0A000",
         "unsupported frontend protocol 2.0: server supports 3.0 to 3.0",
         b"EFATAL:  unsupported frontend protocol 2.0: server supports 3.0 to 3.0\n\0"),
        (startup_packet({"user": "u"}, version=4 << 16), "0A000",
         "unsupported frontend protocol 4.0: server supports 3.0 to 3.0", None),
        (startup_packet({"database": "d"}), "28000", "no PostgreSQL user name specified in startup packet", None),
        (startup_packet({"user": ""}), "28000", "no PostgreSQL user name specified in startup packet", None),
        (struct.pack("!II", 9, 196608) + b"\0", "28000", "no PostgreSQL user name specified in startup packet", None),
        (struct.pack("!II", 17, 196608) + b"user\0pos\0x", "08P01",
         "invalid startup packet layout: expected terminator as last byte", None),
        (struct.pack("!II", 14, 196608) + b"user\0\0", "08P01",
         "invalid startup packet layout: expected terminator as last byte", None),
        (struct.pack("!II", 8, 196608), "08P01", "invalid startup packet layout: expected terminator as last byte",
         None),
    ],
)
def test_fatal_violations_answer_the_client(connect, data, sqlstate, message, reply) -> None:
    conn = connect()
    conn.send(data)
    outcome = conn.outcome()
    assert isinstance(outcome, ProtocolViolation)
    assert (outcome.sqlstate, outcome.message, outcome.send_to_client) == (sqlstate, message, True)
    received = conn.received().removeprefix(b"N")  # the answer to an SSLRequest comes first
    assert received == (reply or _fatal(sqlstate, message))


@pytest.mark.parametrize(("first", "second", "code"), [(SSL_REQUEST, SSL_REQUEST, "5679"),
                                                        (GSS_REQUEST, GSS_REQUEST, "5680")])
def test_a_second_encryption_request_is_an_unknown_protocol(connect, first, second, code) -> None:
    conn = connect()
    conn.send(first)
    assert conn.client.recv(1) == b"N"
    conn.send(second)
    message = f"unsupported frontend protocol 1234.{code}: server supports 3.0 to 3.0"
    assert isinstance(conn.outcome(), ProtocolViolation)
    assert conn.received() == _fatal("0A000", message)


def test_bad_replication_value_is_fatal_with_postgresql_hint(connect) -> None:
    conn = connect()
    conn.send(startup_packet({"user": "u", "replication": "maybe"}))
    assert isinstance(conn.outcome(), ProtocolViolation)
    hint = 'Valid values are: "false", 0, "true", 1, "database".'
    assert conn.received() == _fatal("22023", 'invalid value for parameter "replication": "maybe"', hint=hint)


@pytest.mark.parametrize(("request_bytes", "what"), [(SSL_REQUEST, "SSL request"),
                                                     (GSS_REQUEST, "GSSAPI encryption request")])
def test_unencrypted_data_right_after_an_encryption_request(connect, request_bytes, what) -> None:
    conn = connect()
    conn.send(request_bytes + startup_packet())
    outcome = conn.outcome()
    assert isinstance(outcome, ProtocolViolation) and outcome.detail == MITM
    assert conn.received() == b"N" + _fatal("08P01", f"received unencrypted data after {what}", detail=MITM)


def test_ssl_and_gss_requests_are_answered_n_then_startup_proceeds(connect) -> None:
    conn = connect()
    conn.send(SSL_REQUEST)
    assert conn.client.recv(1) == b"N"
    conn.send(GSS_REQUEST)
    assert conn.client.recv(1) == b"N"
    conn.send(startup_packet({"user": "bob"}))
    assert conn.outcome() == StartupMessage("bob", "bob")


def test_a_client_that_leaves_after_the_ssl_answer_is_not_logged(connect) -> None:
    conn = connect()
    conn.send(SSL_REQUEST + b"")
    assert conn.client.recv(1) == b"N"
    conn.send(b"\0\0", then_close=True)
    assert isinstance(conn.outcome(), ConnectionLost)


def test_cancel_request_is_returned_to_the_caller(connect) -> None:
    conn = connect()
    conn.send(cancel_packet(4242, 0xDEADBEEF))
    assert conn.outcome() == CancelRequest(4242, 0xDEADBEEF)
    assert conn.received() == b""


def test_startup_message_fields(connect) -> None:
    conn = connect()
    conn.send(startup_packet({"user": "alice", "database": "shop", "application_name": "psql",
                              "options": "-c work_mem=8MB", "client_encoding": "UTF8", "replication": "database"}))
    assert conn.outcome() == StartupMessage(
        "alice", "shop", "-c work_mem=8MB", {"application_name": "psql", "client_encoding": "UTF8"}, "database")


def test_physical_replication_connects_to_no_database(connect) -> None:
    conn = connect()
    conn.send(startup_packet({"user": "alice", "replication": "yes"}))
    outcome = conn.outcome()
    assert (outcome.database, outcome.replication) == ("", "true")


def test_a_newer_minor_version_gets_negotiate_protocol_version(connect) -> None:
    conn = connect()
    conn.send(startup_packet({"user": "u", "_pq_.compression": "on"}, version=(3 << 16) | 1))
    assert conn.outcome().protocol == (3, 1)
    # PostgreSQL 15 sent exactly this (with no _pq_ option: count 0, no names).
    assert conn.received() == b"v\0\0\0\x1d\0\3\0\0\0\0\0\1_pq_.compression\0"
