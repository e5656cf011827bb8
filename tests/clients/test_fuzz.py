"""Fuzzed startup packets and message streams against the REAL postmaster: every connection
gets a clean answer (messages that frame correctly, a FATAL only last) or a plain close, and
afterwards the postmaster is still in PM_RUN with the same auxiliary processes: nothing a
client sends can crash anything but its own backend, and that one only cleanly."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.cluster import Cluster
from support.processes import send_and_drain

from .helpers import messages, raw_socket, read_until_ready, startup_packet

FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
# Protocol 3.0 and 3.1, 2.0, 4.0, cancel, SSL and GSS requests, and nonsense.
CODES = [196608, 196609, 131072, 262144, 80877102, 80877103, 80877104, 0, 0xFFFFFFFF]
BACKEND_TYPES = set("RSKZEINTDCnst123v")


@pytest.fixture(scope="module")
def fuzzed(cluster: Cluster) -> Iterator[Cluster]:
    """The shared cluster; at the end, the same auxiliary PIDs and no crash in its log."""
    before = cluster.children()
    mark = len(cluster.lines)
    yield cluster
    status = cluster.wait_for(lambda s: not cluster.backend_pids(s))
    assert status["pm_state"] == "PM_RUN"
    assert cluster.children(status) == before
    log = cluster.messages()[mark:]
    assert not [line for line in log if "terminated by signal" in line or "exited with exit code" in line]
    assert not [line for line in log if "internal error" in line or "Traceback" in line]


def exchange(cluster: Cluster, data: bytes, *, tcp: bool) -> bytes:
    """Send `data`, half-close, read until the server closes (it must, within 15 s)."""
    with raw_socket(cluster, tcp=tcp) as sock:
        return send_and_drain(sock, data)


def check_answer(data: bytes) -> None:
    """Framed backend messages (after any 'N' answers to encryption requests, or one
    protocol-2 error), of known types, with a FATAL only as the last one."""
    while data[:1] == b"N" and (len(data) == 1 or data[1:2] in (b"N", b"E", b"R", b"v")):
        data = data[1:]
    if data.startswith(b"EFATAL:  "):  # protocol 2's error format, for a protocol 2 client
        assert data.endswith(b"\n\0")
        return
    pos, framed = 0, []
    while pos < len(data):
        assert len(data) - pos >= 5, data[pos:]
        (length,) = struct.unpack("!I", data[pos + 1 : pos + 5])
        assert 4 <= length <= len(data) - pos - 1, data[pos:]
        framed.append((chr(data[pos]), data[pos + 5 : pos + 1 + length]))
        pos += 1 + length
    for index, (kind, body) in enumerate(framed):
        assert kind in BACKEND_TYPES, (kind, body)
        if kind == "E" and b"SFATAL\0" in body:
            assert index == len(framed) - 1, "a FATAL must be the last message"


structured_startup = st.builds(
    lambda length, code, body: struct.pack("!II", length, code) + body,
    st.integers(min_value=0, max_value=12000), st.sampled_from(CODES), st.binary(max_size=40),
)
named_startup = st.builds(
    lambda params: startup_packet(**params),
    st.dictionaries(st.sampled_from(["user", "database", "options", "application_name", "_pq_.x", "x"]),
                    st.text(max_size=8).filter(lambda s: "\0" not in s), max_size=4),
)  # fmt: skip


@FUZZ
@given(data=st.one_of(st.binary(max_size=64), structured_startup, named_startup), tcp=st.booleans())
def test_fuzzed_startup_packets(fuzzed: Cluster, data: bytes, tcp: bool) -> None:
    check_answer(exchange(fuzzed, data, tcp=tcp))


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def query(text: str) -> bytes:
    return message(b"Q", text.encode() + b"\0")


frontend_message = st.one_of(
    st.builds(message, st.sampled_from([b"Q", b"P", b"B", b"D", b"E", b"C", b"H", b"S", b"F", b"d", b"c", b"f",
                                        b"p", b"Z", b"\0"]), st.binary(max_size=30)),
    st.sampled_from([query("select 1"), query("begin"), query("select 1/0"), query("rollback"), query(""),
                     query("show all"), message(b"S"), message(b"H"), message(b"P", b"\0select $1\0\0\0"),
                     message(b"B", b"\0\0\0\0\0\1\0\0\0\1x\0\0"), message(b"E", b"\0\0\0\0\0")]),
    st.binary(min_size=1, max_size=12),
)  # fmt: skip


@FUZZ
@given(stream=st.lists(frontend_message, max_size=8))
def test_fuzzed_message_streams(fuzzed: Cluster, stream: list[bytes]) -> None:
    with raw_socket(fuzzed) as sock:
        sock.sendall(startup_packet())
        greeting = read_until_ready(sock)
        assert [kind for kind, _ in messages(greeting)][-2:] == ["K", "Z"]
        received = send_and_drain(sock, b"".join(stream) + message(b"S"))
    check_answer(received)
