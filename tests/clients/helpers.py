"""Client-side tools for the tests: raw protocol sockets, a statement running in the
background, and an interactive psql on a pseudo-terminal. Every wait has a deadline."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from support.cluster import Cluster

DEADLINE = 15.0
CANCEL_REQUEST_CODE = (1234 << 16) | 5678


def wait_until(predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.02)  # polling a condition, with a deadline


def connect(cluster: Cluster, *, tcp: bool = False, **params: Any) -> psycopg.Connection:
    return psycopg.connect(cluster.conninfo(tcp=tcp, **params), autocommit=True)


def process_title(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        return cmdline.read().replace(b"\0", b" ").decode().strip()


# -- the raw protocol -----------------------------------------------------------------------


def startup_packet(user: str = "postgres", database: str = "postgres", **params: str) -> bytes:
    pairs = {"user": user, "database": database, **params}
    body = struct.pack("!i", 196608) + b"".join(f"{k}\0{v}\0".encode() for k, v in pairs.items()) + b"\0"
    return struct.pack("!i", len(body) + 4) + body


def cancel_packet(pid: int, key: int) -> bytes:
    return struct.pack("!iiiI", 16, CANCEL_REQUEST_CODE, pid, key)


def raw_socket(cluster: Cluster, *, tcp: bool = False, timeout: float = DEADLINE) -> socket.socket:
    if tcp:
        sock = socket.create_connection(("127.0.0.1", cluster.port), timeout=timeout)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(str(cluster.socket_dir / f".s.PGSQL.{cluster.port}"))
    return sock


def read_until_closed(sock: socket.socket, timeout: float = DEADLINE) -> bytes:
    """Everything the server sends until it closes the connection (or resets it)."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def messages(data: bytes) -> list[tuple[str, bytes]]:
    """Split a byte stream from the server into (type, body) messages."""
    out, pos = [], 0
    while pos + 5 <= len(data):
        kind = chr(data[pos])
        (length,) = struct.unpack("!i", data[pos + 1 : pos + 5])
        out.append((kind, data[pos + 5 : pos + 1 + length]))
        pos += 1 + length
    return out


def fields(body: bytes) -> dict[str, str]:
    """The fields of an ErrorResponse or NoticeResponse: {"S": "FATAL", "C": "57P03", ...}."""
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode()
    return out


def refusal(data: bytes) -> dict[str, str]:
    """The one ErrorResponse of a refused connection, as its fields."""
    errors = [fields(body) for kind, body in messages(data) if kind == "E"]
    assert len(errors) == 1, f"expected one ErrorResponse, got {messages(data)!r}"
    return errors[0]


def session_key(data: bytes) -> tuple[int, int]:
    """(pid, secret key) from a BackendKeyData in `data`."""
    for kind, body in messages(data):
        if kind == "K":
            return struct.unpack("!iI", body)
    raise AssertionError(f"no BackendKeyData in {messages(data)!r}")


def read_until_ready(sock: socket.socket, timeout: float = DEADLINE) -> bytes:
    """Read until a ReadyForQuery arrives (or the server closes)."""
    sock.settimeout(timeout)
    data = b""
    while not any(kind == "Z" for kind, _ in messages(data)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@dataclass(frozen=True)
class Notice:
    """A NoticeResponse as psycopg saw it (its Diagnostic lives only during the callback)."""

    severity: str | None
    sqlstate: str | None
    message: str | None
    detail: str | None
    hint: str | None


def collect_notices(conn: psycopg.Connection) -> list[Notice]:
    """Every notice `conn` receives from now on, in order."""
    notices: list[Notice] = []

    def note(diag: psycopg.errors.Diagnostic) -> None:
        notices.append(Notice(diag.severity, diag.sqlstate, diag.message_primary, diag.message_detail, diag.message_hint))

    conn.add_notice_handler(note)
    return notices


# -- a statement running while the test acts ---------------------------------------------


@dataclass
class Running:
    """`sql` running on its own connection in a thread: what it returned or raised, and the
    notices (WARNINGs) the server sent it."""

    cluster: Cluster
    sql: str
    tcp: bool = False
    notices: list[Notice] = field(default_factory=list)
    error: BaseException | None = None
    rows: list[Any] | None = None

    def __post_init__(self) -> None:
        self.conn = connect(self.cluster, tcp=self.tcp)
        self.notices = collect_notices(self.conn)
        self.pid = self.conn.info.backend_pid
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_until(lambda: process_title(self.pid).endswith(" active"), what=f"backend {self.pid} active")

    def _run(self) -> None:
        try:
            self.rows = self.conn.execute(self.sql).fetchall()
        except BaseException as error:  # noqa: BLE001 - the test looks at it
            self.error = error

    def finish(self, timeout: float = DEADLINE) -> Running:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"{self.sql!r} still running after {timeout} s"
        self.conn.close()
        return self

    @property
    def sqlstate(self) -> str | None:
        return getattr(self.error, "sqlstate", None)


# -- psql on a terminal ---------------------------------------------------------------------


class InteractivePsql:
    """psql with a pseudo-terminal as its controlling terminal, as a person would run it:
    `expect` waits for output, `send` types, `interrupt` is Ctrl-C."""

    def __init__(self, cluster: Cluster, *, tcp: bool = False) -> None:
        env = cluster.client_env(tcp=tcp, TERM="dumb", PAGER="cat", COLUMNS="200")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: exec at once (no Python code runs after the fork)
            os.execvpe("psql", ["psql", "-X"], env)
        self.output = ""
        self._seen = 0

    def expect(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        """Wait for `pattern` in the output after what the last expect consumed."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.output, self._seen)
            if found:
                self._seen = found.end()
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise AssertionError(f"psql did not print {pattern!r}; it printed:\n{self.output}")

    def _read(self, timeout: float) -> bool:
        readable, _, _ = select.select([self.fd], [], [], timeout)
        if not readable:
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: psql exited and the terminal is gone
            return False
        self.output += chunk.decode(errors="replace").replace("\r\n", "\n")
        return bool(chunk)

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def interrupt(self) -> None:
        self.send("\x03")  # the terminal turns it into SIGINT for psql

    def close(self, timeout: float = DEADLINE) -> int:
        """\\q, then the exit status (SIGKILL if psql does not leave in time)."""
        try:
            self.send("\\q\n")
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read(0.05)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"psql did not exit; it printed:\n{self.output}")
