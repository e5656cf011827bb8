"""The WAL receiver (walreceiver.c + libpqwalreceiver.c): streams WAL from primary_conninfo
into this standby's pg_wal, for the startup process to replay.

The connection is libpq's (host/hostaddr/port/user/password from a key=value or postgresql://
conninfo; TCP or a Unix socket directory; the first host that answers; the startup packet of a
replication connection, database "replication", replication=true; no SSL, as sslmode=disable;
trust, cleartext or md5 authentication), with libpq's error texts. `connect` and `Connection`
also serve `pgtop init --standby-of` (pgtop.runtime.basebackup), as libpq serves pg_basebackup.

Then, as WalReceiverMain: IDENTIFY_SYSTEM (the primary must be the same database system, on a
timeline not behind ours), the timeline history files we lack (TIMELINE_HISTORY),
START_REPLICATION from the start of the segment the startup process waits in, LOG "started
streaming WAL from primary at %X/%X on timeline %u", and the stream. Each XLogData message is
written to pg_wal (WalInsertion.write_raw; bytes this standby already has are left alone, so
the startup process never sees them change), then flushed; the startup process is woken
(SIGUSR1) and a status update ('r': written, flushed, replayed) goes back, as it does for a
keepalive that asks for one, and at least every wal_receiver_status_interval. Positions go to
the shared counters `walrcv_*` (pg_stat_wal_receiver) and the title says "walreceiver
streaming %X/%X".

Endings, with PostgreSQL's words; a FATAL exits 1, and the postmaster only clears the PID:
the startup process asks for a new walreceiver (see startup.py).
  could not connect to the primary server: %s
  could not receive database system identifier and timeline ID from the primary server: %s
  database system identifier differs between the primary and standby
  highest timeline %u of the primary is behind recovery timeline %u
  could not start WAL streaming: %s
  could not receive data from WAL stream: %s       (the primary's ERROR or FATAL, or EOF)
  LOG replication terminated by primary server + DETAIL End of WAL reached on timeline %u at
      %X/%X. (the primary shut down: "COPY 0"), then FATAL could not send end-of-streaming
      message to primary: ... no COPY in progress
  terminating walreceiver due to timeout            (nothing heard for wal_receiver_timeout)

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Self
from urllib.parse import unquote, urlsplit

from pgtop.children.context import ChildContext, Events
from pgtop.children.interrupt import (
    config_of,
    datadir_of,
    exit_if_postmaster_died,
    ignore_unused,
    reload_config,
)
from pgtop.children.startup import aux_pid
from pgtop.children.walsender import copy_data, standby_status
from pgtop.core.vocabulary import ChildKind, LogLevel
from pgtop.storage.controlfile import read_control_file
from pgtop.storage.errors import StorageError
from pgtop.storage.lsn import format_lsn, segment_of, segment_start
from pgtop.storage.timeline import history_file_name
from pgtop.storage.wal import Wal

DEFAULT_SOCKET_DIR = "/tmp"  # DEFAULT_PGSOCKET_DIR; pgtop's unix_socket_directories default
DEFAULT_PORT = "5432"
PROTOCOL_VERSION = 3 << 16
POLL = 0.05  # seconds between interrupt checks while waiting on the socket
STATUS_INTERVAL = 10.0  # wal_receiver_status_interval's default (pgtop has no such setting)
RECEIVER_TIMEOUT = 60.0  # wal_receiver_timeout's default
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


class Fatal(Exception):
    """ereport(FATAL) in the walreceiver: the message (and DETAIL) to log before exiting 1."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class WalReceiver:
    """WalReceiverMain: one connection, one stream, until something ends it."""

    def __init__(self, ctx: ChildContext) -> None:
        self.ctx = ctx
        self.datadir = datadir_of(ctx)
        self.wal: Wal | None = None
        self.timeline = 0
        self.written = self.flushed = self.latest_end = 0
        self.reported = (0, 0)
        self.last_receipt = self.last_status = time.monotonic()
        self.ping_sent = False

    def run(self) -> int:
        self._publish_added(walrcv_starts=1)  # WALRCV_STARTING is over: the startup process sees us
        try:
            with Wal(self.datadir) as self.wal:
                try:
                    return self._run()
                finally:
                    self.wal.flush()  # WalRcvDie: XLogWalRcvFlush
        except Fatal as fatal:
            self.ctx.log(LogLevel.FATAL, fatal.message, fatal.detail)
            return 1
        except StorageError as error:
            self.ctx.log(LogLevel.FATAL, error.message, error.detail, error.hint)
            return 1

    def interrupts(self) -> None:
        handle_interrupts(self.ctx, self.ctx.wait(0))

    def _run(self) -> int:
        assert self.wal is not None
        state = self.wal.state()
        self.timeline = state.timeline
        # RequestXLogStreaming(): from the start of the segment recovery waits in.
        start = segment_start(segment_of(state.replayed if state.in_recovery else state.insert))
        try:
            connection = connect(parse_conninfo(config_of(self.ctx).primary_conninfo), self.interrupts)
        except ConnectFailed as error:
            raise Fatal(f"could not connect to the primary server: {error}") from None
        with connection:
            self._identify(connection)
            self._start_streaming(connection, start)
            return self._receive(connection)

    # -- before streaming -------------------------------------------------------------------------

    def _identify(self, connection: Connection) -> None:
        try:
            result = connection.query("IDENTIFY_SYSTEM")
        except (ServerError, ConnectFailed) as error:
            raise Fatal("could not receive database system identifier and timeline ID from the primary "
                        f"server: {error}") from None
        if len(result.rows) != 1 or len(result.columns) < 3:
            raise Fatal("invalid response from primary server",
                        f"Could not identify system: got {len(result.rows)} rows and {len(result.columns)} "
                        "fields, expected 1 rows and 3 or more fields.")
        primary_id, primary_timeline = result.rows[0][0], int(result.rows[0][1] or 0)
        ours = str(read_control_file(self.datadir).system_identifier)
        if primary_id != ours:
            raise Fatal("database system identifier differs between the primary and standby",
                        f"The primary's identifier is {primary_id}, the standby's identifier is {ours}.")
        if primary_timeline < self.timeline:
            raise Fatal(f"highest timeline {primary_timeline} of the primary is behind recovery timeline {self.timeline}")
        self._fetch_histories(connection, primary_timeline)

    def _fetch_histories(self, connection: Connection, last: int) -> None:
        """WalRcvFetchTimeLineHistoryFiles(): the history files of our timeline up to the
        primary's that this standby lacks."""
        for timeline in range(max(self.timeline, 2), last + 1):
            path = os.path.join(self.datadir, "pg_wal", history_file_name(timeline))
            if os.path.exists(path):
                continue
            self.ctx.log(LogLevel.LOG, f"fetching timeline history file for timeline {timeline} from primary server")
            try:
                result = connection.query(f"TIMELINE_HISTORY {timeline}")
            except (ServerError, ConnectFailed) as error:
                raise Fatal(f"could not receive timeline history file from the primary server: {error}") from None
            content = (result.rows[0][1] or "") if result.rows else ""
            with open(f"{path}.tmp", "w") as history:
                history.write(content)
            os.replace(f"{path}.tmp", path)

    def _start_streaming(self, connection: Connection, start: int) -> None:
        try:
            connection.send_query(f"START_REPLICATION {format_lsn(start)} TIMELINE {self.timeline}")
            while (message := connection.message()) is not None and message[0] in (b"N", b"S"):
                pass
        except ConnectFailed as error:
            raise Fatal(f"could not start WAL streaming: {error}") from None
        kind, body = message  # type: ignore[misc]
        if kind == b"E":
            raise Fatal(f"could not start WAL streaming: {error_response_text(body)}")
        if kind != b"W":
            raise Fatal(f"could not start WAL streaming: unexpected message type \"{kind.decode('latin-1')}\"")
        self.written = self.flushed = start
        self.ctx.log(LogLevel.LOG, f"started streaming WAL from primary at {format_lsn(start)} on timeline {self.timeline}")
        self._publish(walrcv_receive_start_lsn=start)

    # -- the stream ----------------------------------------------------------------------------------

    def _receive(self, connection: Connection) -> int:
        while True:
            events = self.ctx.wait(self._next_wakeup(), readable=[connection])
            handle_interrupts(self.ctx, events)
            wrote = False
            try:
                while (message := connection.message(wait=False)) is not None:
                    self.last_receipt, self.ping_sent = time.monotonic(), False
                    wrote |= self._on_message(connection, *message)
            except ConnectionClosed as error:
                raise Fatal(f"could not receive data from WAL stream: {error}") from None
            except _EndOfStreaming as end:
                return self._end_of_streaming(connection, end.kind)
            if wrote:
                self._flush()
            self._send_status(connection, force=False)
            self._check_timeout(connection)

    def _next_wakeup(self) -> float:
        now = time.monotonic()
        wakeups = [self.last_status + STATUS_INTERVAL, self.last_receipt + RECEIVER_TIMEOUT]
        if not self.ping_sent:
            wakeups.append(self.last_receipt + RECEIVER_TIMEOUT / 2)
        return max(0.01, min(wakeups) - now)

    def _on_message(self, connection: Connection, kind: bytes, body: bytes) -> bool:
        """One message of the stream; True if WAL was written."""
        if kind == b"E":
            raise Fatal(f"could not receive data from WAL stream: {error_response_text(body)}")
        if kind in (b"C", b"c"):
            raise _EndOfStreaming(kind)
        if kind != b"d":
            return False  # NoticeResponse, ParameterStatus
        if body[:1] == b"w" and len(body) >= 25:
            start, self.latest_end, _sent_at = struct.unpack_from("!QQq", body, 1)
            self._write(start, body[25:])
            return True
        if body[:1] == b"k" and len(body) >= 18:
            self.latest_end, _sent_at, reply_requested = struct.unpack_from("!Qq?", body, 1)
            if reply_requested:
                self._send_status(connection, force=True)
            return False
        raise Fatal(f"invalid replication message type {body[0] if body else 0}")

    def _write(self, start: int, data: bytes) -> None:
        """XLogWalRcvWrite(): what this standby lacks goes to pg_wal; the rest it has."""
        assert self.wal is not None
        with self.wal.locked() as insertion:
            if not insertion.state.in_recovery:
                raise SystemExit(1)  # promoted meanwhile: nothing may be written any more
            have = min(len(data), max(0, insertion.state.insert - start))
            if have < len(data):
                insertion.write_raw(start + have, data[have:])
        self.written = start + len(data)

    def _flush(self) -> None:
        """XLogWalRcvFlush(): durable, published, the startup process woken."""
        assert self.wal is not None
        self.wal.flush()
        self.flushed = self.written
        self._publish(walrcv_written_lsn=self.written, walrcv_flushed_lsn=self.flushed,
                      walrcv_latest_end_lsn=self.latest_end, walrcv_last_msg_receipt_time=time.time())
        self.ctx.set_title(f"pgtop: walreceiver streaming {format_lsn(self.flushed)}")
        startup = aux_pid(self.ctx, ChildKind.STARTUP)
        if startup is not None:
            try:
                os.kill(startup, signal.SIGUSR1)  # WakeupRecovery()
            except ProcessLookupError:
                pass

    def _send_status(self, connection: Connection, *, force: bool, ping: bool = False) -> None:
        """XLogWalRcvSendReply(): when positions moved, when asked, or every status interval."""
        assert self.wal is not None
        now = time.monotonic()
        moved = (self.written, self.flushed) != self.reported
        if not (force or moved or now - self.last_status >= STATUS_INTERVAL):
            return
        replayed = self.wal.state().replayed
        connection.send(copy_data(standby_status(self.written, self.flushed, replayed, ping)))
        self.reported, self.last_status = (self.written, self.flushed), now

    def _check_timeout(self, connection: Connection) -> None:
        quiet = time.monotonic() - self.last_receipt
        if quiet >= RECEIVER_TIMEOUT:
            raise Fatal("terminating walreceiver due to timeout")
        if quiet >= RECEIVER_TIMEOUT / 2 and not self.ping_sent:
            self._send_status(connection, force=True, ping=True)
            self.ping_sent = True

    def _end_of_streaming(self, connection: Connection, ended_by: bytes) -> int:
        """The primary ended the COPY: "COPY 0" when it shut down, CopyDone at the end of
        its timeline. Either way this walreceiver is done; recovery asks for a new one."""
        if self.written != self.flushed:
            self._flush()
        self.ctx.log(LogLevel.LOG, "replication terminated by primary server",
                     f"End of WAL reached on timeline {self.timeline} at {format_lsn(self.flushed)}.")
        if ended_by == b"c":  # end of the primary's timeline: answer CopyDone, read its result
            try:
                connection.send(b"c" + struct.pack("!I", 4))
                connection.until_ready()
            except (ConnectFailed, ServerError) as error:
                raise Fatal(f"error while shutting down streaming COPY: {error}") from None
            return 0
        # "COPY 0": the primary shut down. libpq's PQgetResult() finds the connection closed,
        # and walrcv_endstreaming()'s CopyDone then fails: no COPY is in progress any more.
        lost = ""
        try:
            connection.until_ready()
        except ConnectionClosed as closed:
            lost = f"{closed}\n"
        except (ConnectFailed, ServerError):
            pass
        raise Fatal(f"could not send end-of-streaming message to primary: {lost}no COPY in progress")

    def _publish(self, **counters: object) -> None:
        if self.ctx.segment is not None:
            self.ctx.segment.update_counters(**counters)

    def _publish_added(self, **deltas: int) -> None:
        if self.ctx.segment is not None:
            self.ctx.segment.add_counters(**deltas)


class _EndOfStreaming(Exception):
    """The primary ended the COPY: with CommandComplete (b"C") or CopyDone (b"c")."""

    def __init__(self, kind: bytes) -> None:
        super().__init__(kind)
        self.kind = kind


def handle_interrupts(ctx: ChildContext, events: Events) -> None:
    """ProcessWalRcvInterrupts(), and the configuration reload of the main loop."""
    exit_if_postmaster_died(events)
    if signal.SIGTERM in events:
        ctx.log(LogLevel.FATAL, "terminating walreceiver process due to administrator command")
        raise SystemExit(1)
    if signal.SIGHUP in events:
        reload_config(ctx)


def main(ctx: ChildContext) -> int:
    ctx.handle(signal.SIGHUP, signal.SIGTERM)
    ctx.exit_on_sigquit()  # SignalHandlerForCrashExit: _exit(2), no message
    ignore_unused(ctx)
    return WalReceiver(ctx).run()
