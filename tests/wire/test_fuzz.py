"""Fuzzed startup packets and message streams: every connection ends with a well-formed answer
(or none) and a closed socket, and the server keeps serving."""

from __future__ import annotations

import socket
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.processes import send_and_drain

from .client import RawClient, message, query, startup_packet

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CODES = [196608, 196609, 131072, 262144, 80877102, 80877103, 80877104, 0, 0xFFFFFFFF]


def _exchange(port: int, data: bytes) -> bytes:
    """Send `data`, half-close, and read until the server closes (it must, within 10 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return send_and_drain(sock, data)


def _messages(data: bytes) -> list[tuple[str, bytes]]:
    """Split a backend byte stream into messages, failing on bad framing."""
    out = []
    while data:
        assert len(data) >= 5, data
        length = struct.unpack("!I", data[1:5])[0]
        assert 4 <= length <= len(data) - 1, data
        out.append((chr(data[0]), data[5 : 1 + length]))
        data = data[1 + length :]
    return out


def _check_answer(data: bytes) -> None:
    while data[:1] in (b"N",) and (len(data) == 1 or data[1:2] in (b"N", b"E", b"R", b"v")):
        data = data[1:]  # answers to SSL/GSS encryption requests
    if data.startswith(b"EFATAL:  "):  # protocol 2's error format
        assert data.endswith(b"\n\0")
        return
    messages = _messages(data)
    for index, (kind, body) in enumerate(messages):
        assert kind in "RSKZEIv12tTDCnNs3", kind
        if kind == "E" and b"SFATAL\0" in body:
            assert index == len(messages) - 1, "a FATAL must be the last message"


structured_startup = st.builds(
    lambda length, code, body: struct.pack("!II", length, code) + body,
    st.integers(min_value=0, max_value=12000), st.sampled_from(CODES), st.binary(max_size=40),
)


@FUZZ
@given(st.one_of(st.binary(max_size=64), structured_startup,
                 st.builds(lambda p: startup_packet(p), st.dictionaries(
                     st.sampled_from(["user", "database", "options", "replication", "application_name", "_pq_.x", "x"]),
                     st.text(max_size=8).filter(lambda s: "\0" not in s), max_size=4))))
def test_fuzzed_startup_packets(server, data: bytes) -> None:
    _check_answer(_exchange(server.port, data))
    assert server.alive


frontend_message = st.one_of(
    st.builds(lambda kind, body: message(kind, body), st.sampled_from([b"Q", b"P", b"B", b"D", b"E", b"C", b"H", b"S",
                                                                       b"F", b"d", b"c", b"f", b"p", b"Z", b"\0"]),
              st.binary(max_size=30)),
    st.sampled_from([query("select 1"), query("begin"), query("select 1/0"), query("rollback"), query(""),
                     message(b"S"), message(b"H"), message(b"P", b"\0select $1\0\0\0"),
                     message(b"B", b"\0\0\0\0\0\1\0\0\0\1x\0\0"), message(b"E", b"\0\0\0\0\0")]),
    st.binary(min_size=1, max_size=12),
)


@FUZZ
@given(st.lists(frontend_message, max_size=8))
def test_fuzzed_message_streams(server, stream: list[bytes]) -> None:
    with RawClient(server.port) as client:
        client.start()
        client.send(b"".join(stream) + message(b"S"))
        client.sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := client.sock.recv(65536):
            received += chunk
    _check_answer(client._buffer + received)
    assert server.alive
    with RawClient(server.port) as probe:  # and it still serves
        probe.start()
        assert probe.ask(query("select 1"))[-1] == ("Z", "I")
