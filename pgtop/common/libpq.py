"""libpq's client side, as much as pgtop's programs need: the walreceiver (libpqwalreceiver.c)
and `pgtop init --standby-of` (pgtop.runtime.basebackup, as libpq serves pg_basebackup).

The connection is libpq's (host/hostaddr/port/user/password from a key=value or postgresql://
conninfo; TCP or a Unix socket directory; the first host that answers; the startup packet of a
replication connection, database "replication", replication=true; no SSL, as sslmode=disable;
trust, cleartext or md5 authentication), with libpq's error texts. A `Connection` runs simple
queries (PQexec), reads COPY OUT data and hands out raw messages for the replication stream.
"""

from __future__ import annotations

import errno
import getpass
import hashlib
import os
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self
from urllib.parse import unquote, urlsplit

DEFAULT_SOCKET_DIR = "/tmp"  # DEFAULT_PGSOCKET_DIR; pgtop's unix_socket_directories default
DEFAULT_PORT = "5432"
PROTOCOL_VERSION = 3 << 16
POLL = 0.05  # seconds between interrupt checks while waiting on the socket
CLOSED_UNEXPECTEDLY = (
    "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n"
    "\tbefore or while processing the request."
)
Interrupts = Callable[[], None]


class ConnectFailed(Exception):
    """libpq's PQerrorMessage for a failed connection, without the final newline."""


class ConnectionClosed(ConnectFailed):
    """The server went away: libpq's "server closed the connection unexpectedly"."""

    def __init__(self, text: str = CLOSED_UNEXPECTEDLY) -> None:
        super().__init__(text)


class ServerError(Exception):
    """The server answered with an ErrorResponse: "ERROR:  message" (libpq's text)."""


@dataclass(frozen=True, slots=True)
class Target:
    """One address libpq would try, and how its messages name it."""

    family: socket.AddressFamily
    address: object  # (host, port) or a socket path
    described: str  # 'server at "localhost" (127.0.0.1), port 5432' or 'server on socket "..."'
    hint: str


@dataclass(frozen=True, slots=True)
class Result:
    """One result set: column names, rows of text (None for NULL), the command tag."""

    columns: list[str]
    rows: list[list[str | None]]
    tag: str


def parse_conninfo(conninfo: str) -> dict[str, str]:
    """PQconninfoParse() for the keywords the walreceiver uses; a URI or key=value pairs."""
    text = conninfo.strip()
    if text.startswith(("postgresql://", "postgres://")):
        return _parse_uri(text)
    options: dict[str, str] = {}
    index = 0
    while index < len(text):
        while index < len(text) and text[index].isspace():
            index += 1
        start = index
        while index < len(text) and text[index] not in "= \t\n":
            index += 1
        keyword = text[start:index]
        while index < len(text) and text[index].isspace():
            index += 1
        if not keyword or index >= len(text) or text[index] != "=":
            raise ConnectFailed(f'missing "=" after "{keyword}" in connection info string')
        index, value = _conninfo_value(text, index + 1)
        options[keyword] = value
    return options


def _conninfo_value(text: str, index: int) -> tuple[int, str]:
    while index < len(text) and text[index].isspace():
        index += 1
    quoted = index < len(text) and text[index] == "'"
    index += quoted
    value: list[str] = []
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            value.append(text[index + 1])
            index += 2
            continue
        if (quoted and char == "'") or (not quoted and char.isspace()):
            return index + 1, "".join(value)
        value.append(char)
        index += 1
    if quoted:
        raise ConnectFailed("unterminated quoted string in connection info string")
    return index, "".join(value)


def _parse_uri(text: str) -> dict[str, str]:
    parts = urlsplit(text)
    options = {k: unquote(v) for k, v in (p.split("=", 1) for p in parts.query.split("&") if "=" in p)}
    if parts.username:
        options.setdefault("user", unquote(parts.username))
    if parts.password:
        options.setdefault("password", unquote(parts.password))
    netloc = parts.netloc.rpartition("@")[2]
    host, colon, port = netloc.rpartition(":")
    if not colon or host.startswith("[") and not host.endswith("]"):
        host, port = netloc, ""  # no port, or a bare IPv6 address
    if host:
        options.setdefault("host", unquote(host.strip("[]")))
    if port:
        options.setdefault("port", port)
    return options


def targets(options: dict[str, str]) -> list[Target]:
    """The addresses to try, in order, as libpq walks host (and hostaddr) lists."""
    port = options.get("port") or DEFAULT_PORT
    found: list[Target] = []
    for host in (options.get("host") or DEFAULT_SOCKET_DIR).split(","):
        host = host.strip() or DEFAULT_SOCKET_DIR
        if host.startswith("/"):
            path = os.path.join(host, f".s.PGSQL.{port}")
            found.append(Target(socket.AF_UNIX, path, f'server on socket "{path}"',
                                "Is the server running locally and accepting connections on that socket?"))
            continue
        address = options.get("hostaddr") or host
        try:
            infos = socket.getaddrinfo(address, int(port), type=socket.SOCK_STREAM)
        except (socket.gaierror, ValueError) as error:
            reason = error.strerror or str(error)
            raise ConnectFailed(f'could not translate host name "{host}" to address: {reason}') from None
        for family, _, _, _, sockaddr in infos:
            shown = f'"{host}"' if sockaddr[0] == host else f'"{host}" ({sockaddr[0]})'
            found.append(Target(family, sockaddr[:2], f"server at {shown}, port {port}",
                                "Is the server running on that host and accepting TCP/IP connections?"))
    return found


def connect(options: dict[str, str], interrupts: Interrupts = lambda: None) -> Connection:
    """PQconnectdb(): the first target that accepts us; ConnectFailed with libpq's text."""
    deadline = None
    if options.get("connect_timeout", "").strip().isdigit() and int(options["connect_timeout"]) > 0:
        deadline = time.monotonic() + max(2, int(options["connect_timeout"]))
    errors = []
    for target in targets(options):
        connection = Connection(socket.socket(target.family, socket.SOCK_STREAM), interrupts, deadline)
        try:
            connection.open(target.address)
        except OSError as error:
            connection.close()
            errors.append(f"connection to {target.described} failed: {error.strerror or error}\n\t{target.hint}")
            continue
        try:
            connection.start_session(options)
        except (ConnectFailed, ServerError) as error:
            connection.close()
            raise ConnectFailed(f"connection to {target.described} failed: {error}") from None
        connection.deadline = None
        return connection
    raise ConnectFailed("\n".join(errors) or "no host to connect to")


class Connection:
    """A PGconn: framed messages over a non-blocking socket. Every wait calls `interrupts`
    (which may raise: a SIGTERM ends the walreceiver there) and checks connect_timeout."""

    def __init__(self, sock: socket.socket, interrupts: Interrupts, deadline: float | None = None) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self.interrupts = interrupts
        self.deadline = deadline
        self._in = bytearray()

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        """PQfinish(): Terminate ('X') if the socket takes it at once, then close."""
        try:
            self.sock.send(b"X" + struct.pack("!I", 4))
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self) -> None:
        self.interrupts()
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise ConnectFailed("timeout expired")

    # -- bytes ----------------------------------------------------------------------------------

    def open(self, address: object) -> None:
        code = self.sock.connect_ex(address)  # type: ignore[arg-type]
        while code == errno.EINPROGRESS:  # EAGAIN (a full Unix socket backlog) fails, as in libpq
            self._check()
            if select.select([], [self.sock], [], POLL)[1]:
                code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, os.strerror(code))

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view):]
            except BlockingIOError:
                self._check()
                select.select([], [self.sock], [], POLL)
            except (BrokenPipeError, ConnectionResetError):
                raise ConnectionClosed() from None  # pqsecure_raw_write's words for EPIPE
            except OSError as error:
                raise ConnectFailed(f"could not send data to server: {error.strerror}") from None

    def message(self, *, wait: bool = True) -> tuple[bytes, bytes] | None:
        """The next message (type byte, body); None if `wait` is false and none is complete."""
        while True:
            if len(self._in) >= 5:
                length = struct.unpack_from("!I", self._in, 1)[0]
                if len(self._in) >= 1 + length:
                    kind, body = bytes(self._in[:1]), bytes(self._in[5 : 1 + length])
                    del self._in[: 1 + length]
                    return kind, body
            if not self._fill(wait):
                return None

    def _fill(self, wait: bool) -> bool:
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except BlockingIOError:
                if not wait:
                    return False
                self._check()
                select.select([self.sock], [], [], POLL)
                continue
            except ConnectionResetError:
                raise ConnectionClosed() from None  # pqsecure_raw_read's words for ECONNRESET
            except OSError as error:
                raise ConnectionClosed(f"could not receive data from server: {error.strerror}") from None
            if not chunk:
                raise ConnectionClosed()
            self._in += chunk
            return True

    # -- the protocol ---------------------------------------------------------------------------

    def start_session(self, options: dict[str, str]) -> None:
        """The startup packet of a physical replication connection, then authentication."""
        user = options.get("user") or getpass.getuser()
        params = {"user": user, "database": "replication", "replication": "true",
                  "application_name": options.get("application_name") or "walreceiver"}
        body = struct.pack("!I", PROTOCOL_VERSION) + b"".join(
            k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
        self.send(struct.pack("!I", len(body) + 4) + body)
        while True:
            kind, payload = self.message()  # type: ignore[misc]
            if kind == b"E":
                raise ConnectFailed(error_response_text(payload))
            if kind == b"R":
                self._authenticate(user, options.get("password"), payload)
            elif kind == b"Z":
                return  # ReadyForQuery: connected (ParameterStatus, BackendKeyData ignored)

    def _authenticate(self, user: str, password: str | None, payload: bytes) -> None:
        (code,) = struct.unpack_from("!I", payload)
        if code == 0:
            return
        if code not in (3, 5):
            raise ConnectFailed(f"authentication method {code} not supported")
        if password is None:
            raise ConnectFailed("fe_sendauth: no password supplied")
        if code == 5:
            inner = hashlib.md5((password + user).encode()).hexdigest()
            password = "md5" + hashlib.md5(inner.encode() + payload[4:8]).hexdigest()
        data = password.encode() + b"\0"
        self.send(b"p" + struct.pack("!I", len(data) + 4) + data)

    def query(self, text: str) -> Result:
        """PQexec() of a command with one result set; ServerError for an ErrorResponse."""
        self.send_query(text)
        result = self.result()
        self.until_ready()
        return result

    def send_query(self, text: str) -> None:
        data = text.encode() + b"\0"
        self.send(b"Q" + struct.pack("!I", len(data) + 4) + data)

    def result(self) -> Result:
        """The next result set, up to its CommandComplete."""
        columns: list[str] = []
        rows: list[list[str | None]] = []
        while True:
            kind, body = self.message()  # type: ignore[misc]
            if kind == b"T":
                columns = _column_names(body)
            elif kind == b"D":
                rows.append(_row_values(body))
            elif kind == b"C":
                return Result(columns, rows, body.rstrip(b"\0").decode())
            elif kind == b"E":
                self._skip_to_ready()
                raise ServerError(error_response_text(body))

    def until_ready(self) -> None:
        while (message := self.message()) is not None and message[0] != b"Z":
            if message[0] == b"E":
                self._skip_to_ready()
                raise ServerError(error_response_text(message[1]))

    def _skip_to_ready(self) -> None:
        try:
            while (message := self.message()) is not None and message[0] != b"Z":
                pass
        except ConnectionClosed:
            pass  # a FATAL closes the connection instead

    def copy_out(self) -> bytes:
        """A COPY OUT's data: CopyOutResponse, CopyData..., CopyDone."""
        parts: list[bytes] = []
        while True:
            kind, body = self.message()  # type: ignore[misc]
            if kind == b"d":
                parts.append(body)
            elif kind == b"c":
                return b"".join(parts)
            elif kind == b"E":
                self._skip_to_ready()
                raise ServerError(error_response_text(body))


def _column_names(body: bytes) -> list[str]:
    (count,) = struct.unpack_from("!h", body)
    names, offset = [], 2
    for _ in range(count):
        end = body.index(b"\0", offset)
        names.append(body[offset:end].decode())
        offset = end + 1 + 18  # table oid, column, type oid, size, modifier, format
    return names


def _row_values(body: bytes) -> list[str | None]:
    (count,) = struct.unpack_from("!h", body)
    values: list[str | None] = []
    offset = 2
    for _ in range(count):
        (length,) = struct.unpack_from("!i", body, offset)
        offset += 4
        if length < 0:
            values.append(None)
            continue
        values.append(body[offset : offset + length].decode("utf-8", "replace"))
        offset += length
    return values


def error_response_text(payload: bytes) -> str:
    """libpq's text for an ErrorResponse: "FATAL:  message" (+ DETAIL/HINT lines)."""
    fields = {}
    for item in payload.split(b"\0"):
        if item:
            fields[item[:1]] = item[1:].decode("utf-8", "replace")
    text = f"{fields.get(b'S', 'FATAL')}:  {fields.get(b'M', '')}"
    for code, label in ((b"D", "DETAIL"), (b"H", "HINT")):
        if code in fields:
            text += f"\n{label}:  {fields[code]}"
    return text
