"""The WAL receiver (walreceiver.c + libpqwalreceiver): connects to primary_conninfo as a
physical replication client.

What works today: the connection, as libpq makes it (host/hostaddr/port/user/password from a
key=value or postgresql:// conninfo; TCP or a Unix socket directory; the first host that
answers), the startup packet of a replication connection (database "replication",
replication=true; no SSL, as sslmode=disable) and trust, cleartext or md5 authentication
(checked against a real PostgreSQL 15 primary). Any failure is PostgreSQL's
FATAL 'could not connect to the primary server: %s' with libpq's text, then exit 1; the
postmaster clears the PID and the startup process asks again after
wal_retrieve_retry_interval.

TODO(issue 6, replication transport): after connecting, IDENTIFY_SYSTEM (check the system
identifier and timeline), START_REPLICATION at the startup process's position, write the
CopyData 'w' messages with pgtop.storage's WalInsertion.write_raw, send standby status
updates, and only then log "started streaming WAL from primary at %X/%X on timeline %u" and
set the title to "walreceiver streaming %X/%X". Until then the walreceiver holds the
connection idle and ends when the primary closes it.

Signals, as PostgreSQL 14: SIGTERM FATAL "terminating walreceiver process due to
administrator command", exit 1; SIGHUP reload; SIGQUIT _exit(2); SIGINT, SIGUSR1 and SIGUSR2
ignored. Postmaster death: exit 1.
"""

from __future__ import annotations

import errno
import getpass
import hashlib
import os
import select
import signal
import socket
import struct
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from pgtop.children.context import ChildContext, Events, WaitEvent
from pgtop.children.interrupt import (
    config_of,
    exit_if_postmaster_died,
    ignore_unused,
    wait_main_loop,
)
from pgtop.core.vocabulary import LogLevel

DEFAULT_SOCKET_DIR = "/tmp"  # DEFAULT_PGSOCKET_DIR; pgtop's unix_socket_directories default
DEFAULT_PORT = "5432"
PROTOCOL_VERSION = 3 << 16
CONNECT_POLL = 0.05  # seconds between interrupt checks while connecting
CLOSED_UNEXPECTEDLY = (
    "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n"
    "\tbefore or while processing the request."
)


class ConnectFailed(Exception):
    """libpq's PQerrorMessage for a failed connection, without the final newline."""


@dataclass(frozen=True, slots=True)
class Target:
    """One address libpq would try, and how its messages name it."""

    family: socket.AddressFamily
    address: object  # (host, port) or a socket path
    described: str  # 'server at "localhost" (127.0.0.1), port 5432' or 'server on socket "..."'
    hint: str


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


class Connector:
    """PQconnectPoll's job, interruptible: a SIGTERM or the postmaster's death ends it."""

    def __init__(self, ctx: ChildContext, options: dict[str, str]) -> None:
        self.ctx = ctx
        self.options = options
        self.deadline = None
        if options.get("connect_timeout", "").strip().isdigit() and int(options["connect_timeout"]) > 0:
            self.deadline = time.monotonic() + max(2, int(options["connect_timeout"]))

    def connect(self) -> socket.socket:
        errors = []
        for target in targets(self.options):
            try:
                sock = self._open(target)
            except OSError as error:
                errors.append(f"connection to {target.described} failed: {error.strerror or error}\n\t{target.hint}")
                continue
            try:
                self._start_session(sock)
            except ConnectFailed as error:
                sock.close()
                raise ConnectFailed(f"connection to {target.described} failed: {error}") from None
            return sock
        raise ConnectFailed("\n".join(errors) or "no host to connect to")

    def _open(self, target: Target) -> socket.socket:
        sock = socket.socket(target.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(target.address)  # type: ignore[arg-type]
        while code == errno.EINPROGRESS:  # EAGAIN (a full Unix socket backlog) fails, as in libpq
            self.interrupts()
            _, writable, _ = select.select([], [sock], [], CONNECT_POLL)
            if writable:
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            sock.close()
            raise OSError(code, os.strerror(code))
        return sock

    def interrupts(self) -> None:
        handle_interrupts(self.ctx, self.ctx.wait(0))
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise ConnectFailed("timeout expired")

    def _start_session(self, sock: socket.socket) -> None:
        """The startup packet of a physical replication connection, then authentication."""
        user = self.options.get("user") or getpass.getuser()
        params = {"user": user, "database": "replication", "replication": "true",
                  "application_name": self.options.get("application_name") or "walreceiver"}
        body = struct.pack("!I", PROTOCOL_VERSION) + b"".join(
            k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
        self._send(sock, struct.pack("!I", len(body) + 4) + body)
        while True:
            kind, payload = self._receive(sock)
            if kind == b"E":
                raise ConnectFailed(error_response_text(payload))
            if kind == b"R":
                self._authenticate(sock, user, payload)
            elif kind == b"Z":
                return  # ReadyForQuery: connected (ParameterStatus, BackendKeyData ignored)

    def _authenticate(self, sock: socket.socket, user: str, payload: bytes) -> None:
        (code,) = struct.unpack_from("!I", payload)
        password = self.options.get("password")
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
        self._send(sock, b"p" + struct.pack("!I", len(data) + 4) + data)

    def _send(self, sock: socket.socket, data: bytes) -> None:
        while data:
            try:
                data = data[sock.send(data):]
            except BlockingIOError:
                self.interrupts()
                select.select([], [sock], [], CONNECT_POLL)

    def _receive(self, sock: socket.socket) -> tuple[bytes, bytes]:
        header = self._read(sock, 5)
        kind, length = header[:1], struct.unpack("!I", header[1:])[0]
        return kind, self._read(sock, length - 4)

    def _read(self, sock: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            self.interrupts()
            if not select.select([sock], [], [], CONNECT_POLL)[0]:
                continue
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise ConnectFailed(CLOSED_UNEXPECTEDLY)
            data += chunk
        return data


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


def handle_interrupts(ctx: ChildContext, events: Events) -> None:
    """ProcessWalRcvInterrupts()."""
    exit_if_postmaster_died(events)
    if signal.SIGTERM in events:
        ctx.log(LogLevel.FATAL, "terminating walreceiver process due to administrator command")
        raise SystemExit(1)


def main(ctx: ChildContext) -> int:
    ctx.handle(signal.SIGHUP, signal.SIGTERM)
    ctx.exit_on_sigquit()  # SignalHandlerForCrashExit: _exit(2), no message
    ignore_unused(ctx)
    try:
        connection = Connector(ctx, parse_conninfo(config_of(ctx).primary_conninfo)).connect()
    except ConnectFailed as error:
        ctx.log(LogLevel.FATAL, f"could not connect to the primary server: {error}")
        return 1
    with connection:
        while True:  # TODO(issue 6): stream; for now hold the connection until it ends
            events = wait_main_loop(ctx, None, readable=[connection])
            handle_interrupts(ctx, events)
            if WaitEvent.SOCKET_READABLE in events and not connection.recv(8192):
                ctx.log(LogLevel.FATAL, f"could not receive data from WAL stream: {CLOSED_UNEXPECTEDLY}")
                return 1
