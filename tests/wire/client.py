"""A raw protocol client for the tests: build frontend messages byte by byte and read the
backend's answers as (type, fields) pairs a test can compare."""

from __future__ import annotations

import socket
import struct
from typing import Any

SSL_REQUEST = struct.pack("!II", 8, 80877103)
GSS_REQUEST = struct.pack("!II", 8, 80877104)


def startup_packet(params: dict[str, str] | None = None, version: int = 196608) -> bytes:
    params = {"user": "alice", "database": "shop"} if params is None else params
    body = struct.pack("!I", version) + b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
    return struct.pack("!I", len(body) + 4) + body


def cancel_packet(pid: int, key: int) -> bytes:
    return struct.pack("!IIII", 16, 80877102, pid, key & 0xFFFFFFFF)


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def query(text: str) -> bytes:
    return message(b"Q", text.encode() + b"\0")


def parse(name: str, text: str, types: tuple[int, ...] = ()) -> bytes:
    body = name.encode() + b"\0" + text.encode() + b"\0" + struct.pack("!H", len(types))
    return message(b"P", body + b"".join(struct.pack("!I", t) for t in types))


def bind(portal: str, statement: str, params: tuple[bytes | None, ...] = (), formats: tuple[int, ...] = (),
         result_formats: tuple[int, ...] = ()) -> bytes:
    body = portal.encode() + b"\0" + statement.encode() + b"\0"
    body += struct.pack("!H", len(formats)) + b"".join(struct.pack("!H", f) for f in formats)
    body += struct.pack("!H", len(params))
    for value in params:
        body += struct.pack("!i", -1) if value is None else struct.pack("!i", len(value)) + value
    body += struct.pack("!H", len(result_formats)) + b"".join(struct.pack("!H", f) for f in result_formats)
    return message(b"B", body)


def describe(kind: str, name: str) -> bytes:
    return message(b"D", kind.encode() + name.encode() + b"\0")


def execute(portal: str, max_rows: int = 0) -> bytes:
    return message(b"E", portal.encode() + b"\0" + struct.pack("!I", max_rows))


def close(kind: str, name: str) -> bytes:
    return message(b"C", kind.encode() + name.encode() + b"\0")


SYNC, FLUSH, TERMINATE = message(b"S"), message(b"H"), message(b"X")


def decode(kind: str, body: bytes) -> Any:
    """A readable form of one backend message."""
    if kind in "EN":
        return {chr(f[0]): f[1:].decode() for f in body.split(b"\0") if f}
    if kind == "T":
        count, pos, columns = struct.unpack("!h", body[:2])[0], 2, []
        for _ in range(count):
            end = body.index(b"\0", pos)
            name = body[pos:end].decode()
            _, _, oid, size, modifier, fmt = struct.unpack("!IhIhih", body[end + 1 : end + 19])
            columns.append((name, oid, fmt))
            pos = end + 19
        return columns
    if kind == "D":
        count, pos, values = struct.unpack("!h", body[:2])[0], 2, []
        for _ in range(count):
            (length,) = struct.unpack("!i", body[pos : pos + 4])
            pos += 4
            values.append(None if length < 0 else body[pos : pos + length])
            pos += max(length, 0)
        return tuple(v.decode() if v is not None else None for v in values)
    if kind in "CZ":
        return body.rstrip(b"\0").decode()
    if kind == "S":
        name, value, _ = body.split(b"\0")
        return (name.decode(), value.decode())
    if kind == "K":
        return struct.unpack("!iI", body)
    if kind == "t":
        count = struct.unpack("!h", body[:2])[0]
        return list(struct.unpack(f"!{count}I", body[2:]))
    if kind == "R":
        return struct.unpack("!i", body[:4])[0]
    return body


class RawClient:
    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buffer = b""

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self._buffer += data
        return bool(data)

    def read_byte(self) -> bytes:
        while not self._buffer:
            if not self._fill():
                return b""
        byte, self._buffer = self._buffer[:1], self._buffer[1:]
        return byte

    def read_message(self) -> tuple[str, Any] | None:
        """The next message, or None at EOF."""
        while len(self._buffer) < 5 or len(self._buffer) < 1 + struct.unpack("!I", self._buffer[1:5])[0]:
            if not self._fill():
                return None
        length = struct.unpack("!I", self._buffer[1:5])[0]
        kind, body = chr(self._buffer[0]), self._buffer[5 : 1 + length]
        self._buffer = self._buffer[1 + length :]
        return kind, decode(kind, body)

    def until(self, kind: str = "Z") -> list[tuple[str, Any]]:
        """Messages up to and including the next one of `kind` (or up to EOF)."""
        received = []
        while (item := self.read_message()) is not None:
            received.append(item)
            if item[0] == kind:
                break
        return received

    def rest(self) -> list[tuple[str, Any]]:
        """Everything until the server closes the connection."""
        received = []
        while (item := self.read_message()) is not None:
            received.append(item)
        return received

    def start(self, params: dict[str, str] | None = None) -> list[tuple[str, Any]]:
        self.send(startup_packet(params))
        return self.until("Z")

    def ask(self, *messages: bytes) -> list[tuple[str, Any]]:
        self.send(b"".join(messages))
        return self.until("Z")


def brief(received: list[tuple[str, Any]]) -> list[Any]:
    """Messages in a compact form: errors and notices as (type, severity, SQLSTATE, message)."""
    out: list[Any] = []
    for kind, value in received:
        if kind in "EN":
            out.append((kind, value.get("V"), value.get("C"), value.get("M")))
        elif kind in "123nsI":
            out.append(kind)
        else:
            out.append((kind, value))
    return out
