"""500 idle backends: open them with a raw-socket client (a StartupMessage, then read to
ReadyForQuery), measure each backend's USS, then kill -9 one and time the crash cycle until
"ready to accept connections" with every auxiliary process back.

The client is a few lines of the v3 protocol rather than psycopg so the bench process itself
stays small and the 500 connections open in one pass: every startup packet is sent first
(connect() blocks while the listen backlog is full, so the server sets the pace), then each
answer is read.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass, field

import psutil

from bench.proctable import poll_until
from bench.respawn import crash_cycle
from bench.servers import Server

PROTOCOL_V3 = 196608
CONNECT_TIMEOUT = 120.0


def startup_packet(user: str = "postgres", database: str = "postgres") -> bytes:
    body = struct.pack("!I", PROTOCOL_V3) + b"".join(
        key.encode() + b"\0" + value.encode() + b"\0"
        for key, value in (("user", user), ("database", database), ("application_name", "pgtop-bench"))
    ) + b"\0"
    return message(b"", body)  # a startup packet has no type byte


def message(kind: bytes, body: bytes = b"") -> bytes:
    """A frontend message: its type byte, its length (itself included), its body."""
    return kind + struct.pack("!I", len(body) + 4) + body


def read_until_ready(sock: socket.socket) -> None:
    """Read messages until ReadyForQuery ('Z'); an ErrorResponse ('E') raises."""
    buffer = b""
    while True:
        while len(buffer) >= 5:
            kind, length = buffer[:1], struct.unpack("!I", buffer[1:5])[0]
            if len(buffer) < 1 + length:
                break
            payload, buffer = buffer[5 : 1 + length], buffer[1 + length :]
            if kind == b"Z":
                return
            if kind == b"E":
                fields = {part[:1].decode(): part[1:].decode(errors="replace") for part in payload.split(b"\0") if part}
                raise ConnectionError(f"{fields.get('S', 'ERROR')}: {fields.get('M', '?')} ({fields.get('C', '?')})")
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection during startup")
        buffer += chunk


def open_idle_connections(server: Server, count: int) -> list[socket.socket]:
    """`count` idle sessions over the Unix socket; closes them all if one fails."""
    path = os.path.join(server.socket_dir, f".s.PGSQL.{server.port}")
    packet = startup_packet()
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(path)
            sock.sendall(packet)
        for sock in sockets:
            read_until_ready(sock)
    except BaseException:
        close_all(sockets)
        raise
    return sockets


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def uss_mib(pids: list[int]) -> list[float]:
    """Unique set size (memory only this process holds) of each process, in MiB."""
    sizes = []
    for pid in pids:
        try:
            sizes.append(psutil.Process(pid).memory_full_info().uss / 2**20)
        except psutil.NoSuchProcess:
            continue
    return sizes


@dataclass
class ManyBackends:
    """Per-trial results for one server."""

    cycle: list[float] = field(default_factory=list)  # ms
    uss: list[float] = field(default_factory=list)  # MiB per backend, every backend of every trial
    open_seconds: list[float] = field(default_factory=list)

    def add(self, server: Server, count: int) -> None:
        """One trial: open `count` sessions, measure USS, kill -9 one backend, time the cycle."""
        began = time.perf_counter()
        sockets = open_idle_connections(server, count)
        try:
            self.open_seconds.append(time.perf_counter() - began)
            backends = poll_until(lambda: _enough(server.backends(), count), 30, 0.05)
            self.uss.extend(uss_mib(backends))
            cycle, _, _ = crash_cycle(server, backends[len(backends) // 2], timeout=60)
            self.cycle.append(cycle)
        finally:
            close_all(sockets)
        poll_until(lambda: None if server.backends() else True, 60, 0.05)  # every backend gone


def _enough(backends: list[int], count: int) -> list[int] | None:
    return backends if len(backends) >= count else None


