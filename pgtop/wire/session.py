"""One client session after the startup packet: the handshake, then the command loop of
PostgresMain (simple and extended query protocol, transaction status, Terminate).

`Session.run()` never raises: every ending (Terminate, the client gone, a FATAL, a
termination request) comes back as an `Ending` the backend can log and turn into an exit code.
"""

from __future__ import annotations

import enum
import socket
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pgtop.wire import messages
from pgtop.wire.errors import Diagnostic, PgError, ProtocolViolation, SessionTerminated
from pgtop.wire.executor import Executor
from pgtop.wire.extended import ExtendedQuery, runs_in_session
from pgtop.wire.frontend import (
    EXTENDED_TYPES,
    MAX_LENGTH,
    Bind,
    Parse,
    Query,
    parse_message,
)
from pgtop.wire.interrupts import Interrupts
from pgtop.wire.startup import StartupMessage
from pgtop.wire.stream import ConnectionLost, MessageStream, SocketLike, as_stream
from pgtop.wire.transaction import TransactionBlock

ActivityHook = Callable[[str, str], None]  # (state, query): "active", "idle", ...
# (what to log, the statement being run or None, CONTEXT or None: pgtop's own traceback of
# an internal error)
LogHook = Callable[[Diagnostic, "str | None", "str | None"], None]


class EndReason(enum.Enum):
    TERMINATE = "client sent Terminate"
    CLIENT_GONE = "client closed the connection"
    PROTOCOL_VIOLATION = "client broke the protocol"
    FATAL = "session ended with a FATAL error"
    TERMINATED = "backend was told to end the session"


@dataclass(frozen=True, slots=True)
class Ending:
    """How a session ended. `diagnostic` is what was sent to the client last (a FATAL, or
    quickdie's WARNING), or the log-only complaint (severity LOG/DEBUG1) for a lost client."""

    reason: EndReason
    diagnostic: Diagnostic | None = None

    @property
    def exit_code(self) -> int:
        """What a backend exits with: 1 after a FATAL, as ereport(FATAL) does, else 0 (a
        log-only protocol violation ends like EOF). quickdie's _exit(2) is the backend's own."""
        return 1 if self.diagnostic is not None and self.diagnostic.severity == "FATAL" else 0


_IDLE_STATES = {"I": "idle", "T": "idle in transaction", "E": "idle in transaction (aborted)"}


class _ClientTerminated(Exception):
    pass


def _no_delay(sock: object) -> None:
    """TCP_NODELAY, as PostgreSQL sets it: replies go out whole at flush, so Nagle's
    algorithm would only add a delayed-ACK wait to every round trip."""
    family = getattr(sock, "family", None)
    if family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
        except OSError:
            pass


def _internal_error(error: Exception) -> PgError:
    return PgError("XX000", f"internal error: {type(error).__name__}: {error}")


class Session:
    def __init__(
        self,
        conn: SocketLike | MessageStream,
        startup: StartupMessage,
        *,
        pid: int,
        secret_key: int,
        parameters: Mapping[str, str],
        executor: Executor,
        interrupts: Interrupts | None = None,
        on_activity: ActivityHook | None = None,
        on_log: LogHook | None = None,
    ) -> None:
        self.stream = as_stream(conn)
        _no_delay(self.stream.sock)
        self.startup = startup
        self.pid = pid
        self.secret_key = secret_key
        self.parameters = dict(parameters)
        self.executor = executor
        self.interrupts = interrupts or Interrupts()
        self._owns_interrupts = interrupts is None
        self.stream.wakeup = self.interrupts
        self._on_activity = on_activity
        self._on_log = on_log
        self._reported: dict[str, str] = {}
        self._reported_from: Mapping[str, str] | None = None  # the mapping _reported last matched
        self._query = ""  # the last statement text, for pg_stat_activity
        self._statement: str | None = None  # the one being run (debug_query_string), for the log
        self.xact = TransactionBlock(executor, on_end=self._transaction_ended)
        self.extended = ExtendedQuery(executor, self.xact, self.stream.send, self._active, self.interrupts.check)
        self._ignore_till_sync = False

    # -- the backend's hooks --------------------------------------------------------------

    def terminate(self, diagnostic: Diagnostic) -> None:
        """End the session with `diagnostic` at the next safe point (signal-handler safe)."""
        self.interrupts.request_termination(diagnostic)

    def cancel(self) -> None:
        """Cancel the running statement, if any (signal-handler safe)."""
        self.interrupts.request_cancel()

    # -- running ----------------------------------------------------------------------------

    def run(self) -> Ending:
        try:
            refused = self._handshake()
            if refused is not None:
                return Ending(EndReason.FATAL, refused)
            self._command_loop()
        except _ClientTerminated:
            return Ending(EndReason.TERMINATE)
        except ConnectionLost as lost:
            return Ending(EndReason.CLIENT_GONE, self._lost_client(lost))
        except SessionTerminated as terminated:
            self._log(terminated.diagnostic)
            self._send_final(terminated.diagnostic)
            return Ending(EndReason.TERMINATED, terminated.diagnostic)
        except ProtocolViolation as violation:
            if violation.send_to_client:
                self._send_final(violation.diagnostic)
            self._log(violation.diagnostic)
            return Ending(EndReason.PROTOCOL_VIOLATION, violation.diagnostic)
        except PgError as error:  # a FATAL raised by the executor
            self._send_final(error.diagnostic)
            self._log(error.diagnostic)
            return Ending(EndReason.FATAL, error.diagnostic)
        except Exception as error:  # noqa: BLE001 - a bug must end this session, not the backend
            diagnostic = Diagnostic("FATAL", "XX000", f"internal error: {type(error).__name__}: {error}")
            self._log(diagnostic, traceback.format_exc())
            self._send_final(diagnostic)
            return Ending(EndReason.FATAL, diagnostic)
        finally:
            self.xact.abandon()
            if self._owns_interrupts:
                self.interrupts.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _handshake(self) -> Diagnostic | None:
        """AuthenticationOk, the session's settings, BackendKeyData; the FATAL if refused."""
        self.stream.send(messages.authentication_ok())
        try:
            self.executor.start_session(self.startup)
        except PgError as error:
            fatal = Diagnostic("FATAL", error.sqlstate, error.message, error.detail, error.hint)
            self._send_final(fatal)
            self._log(fatal)
            return fatal
        self._reported = {**self.parameters, **self.executor.parameter_status()}
        self.stream.send(messages.parameter_statuses(self._reported))
        self.stream.send(messages.backend_key_data(self.pid, self.secret_key))
        return None

    def _command_loop(self) -> None:
        send_ready = True
        while True:
            if send_ready and not self._ignore_till_sync:
                self._ready_for_query()
            kind, body = self._read_command()
            if self._ignore_till_sync and kind not in "SX":
                send_ready = False
                continue
            send_ready = self._dispatch(kind, body)

    def _read_command(self) -> tuple[str, bytes]:
        if not self.stream.has_buffered_data():
            self.stream.flush()  # only before we would wait: pipelined messages share a packet
        self.interrupts.reading_command = True
        self.interrupts.cancel_pending = False  # a cancel while idle cancels nothing
        try:
            self.interrupts.check()
            first = self.stream.read_available_or_eof()
            if not first:
                raise ConnectionLost()
            kind = chr(first[0])
            if kind not in MAX_LENGTH:
                raise ProtocolViolation("08P01", f"invalid frontend message type {first[0]}", True)
            body = self.stream.read_body(MAX_LENGTH[kind])
            # Python runs a signal handler after the system call it interrupted returns: a
            # cancel that arrived while we waited is handled now, while still idle, so it
            # cannot fail the command just read.
            self.interrupts.check()
            return kind, body
        finally:
            self.interrupts.reading_command = False

    def _dispatch(self, kind: str, body: bytes) -> bool:
        """Handle one message; True when a ReadyForQuery is due next."""
        try:
            if kind == "X":
                raise _ClientTerminated()
            if kind in "dcf":
                return False  # COPY messages after a failed COPY: ignored, as the protocol says
            if kind == "F":
                raise PgError("0A000", "fastpath function calls are not supported")
            message = parse_message(kind, body)
            if isinstance(message, Query):
                self._simple_query(message.text)
                return True
            if kind == "S":
                self._ignore_till_sync = False
                self.xact.finish_command()
                return True
            if kind == "H":
                self.stream.flush()
                return False
            self._statement = self._statement_of(message)
            if kind == "E":
                self.interrupts.start_statement(self.executor.statement_timeout())
                try:
                    self.extended.execute(message)  # type: ignore[arg-type]
                finally:
                    self.interrupts.end_statement()
                return False
            handler = {"P": self.extended.parse, "B": self.extended.bind, "D": self.extended.describe,
                       "C": self.extended.close}[kind]
            handler(message)  # type: ignore[operator]
            return False
        except (_ClientTerminated, ConnectionLost, SessionTerminated, ProtocolViolation):
            raise
        except Exception as error:  # noqa: BLE001
            self._statement_failed(error)
            if kind in EXTENDED_TYPES:
                self._ignore_till_sync = True
                return False
            return True

    def _simple_query(self, text: str) -> None:
        self._active(text)
        try:
            statements = self.executor.parse(text)
        except (SessionTerminated, ConnectionLost):
            raise
        except Exception as error:  # noqa: BLE001
            self._statement_failed(error)
            return
        if not statements:
            self.stream.send(messages.empty_query_response())
            return
        for parsed in statements:
            try:
                self._run_simple(parsed)
            except (SessionTerminated, ConnectionLost):
                raise
            except Exception as error:  # noqa: BLE001 - the rest of the string is skipped
                self._statement_failed(error)
                return
        try:
            self.xact.finish_command()
        except PgError as error:
            self._statement_failed(error)

    def _run_simple(self, parsed) -> None:  # type: ignore[no-untyped-def]
        """One statement of a simple query; statement_timeout applies to each (PostgreSQL 13
        and later)."""
        self.interrupts.start_statement(self.executor.statement_timeout())
        try:
            self._run_one(parsed)
        finally:
            self.interrupts.end_statement()

    def _run_one(self, parsed) -> None:  # type: ignore[no-untyped-def]
        send = self.stream.send
        self.interrupts.check()
        self.xact.check_not_aborted(parsed)
        if runs_in_session(parsed):
            self.extended.run_in_session(parsed)
            return
        self.xact.start_statement()
        prepared = self.executor.analyze(parsed, None)
        columns = prepared.columns
        bound = self.executor.bind(prepared, (), (), (0,) * len(columns or ()))
        result = self.executor.execute(bound)
        for notice in result.notices:
            send(messages.notice_response(notice))
        if result.columns is not None:
            send(messages.row_description(result.columns))
            for row in result.rows:
                send(messages.data_row(row))
        send(messages.command_complete(result.tag))

    def _statement_failed(self, error: Exception) -> None:
        """Report an ERROR and abort the transaction, as PostgresMain's error recovery does."""
        if isinstance(error, PgError):
            if error.severity in ("FATAL", "PANIC"):
                raise error
            diagnostic, trace = error.diagnostic, None
        else:
            diagnostic, trace = _internal_error(error).diagnostic, traceback.format_exc()
        self.stream.send(messages.error_response(diagnostic))
        self._log(diagnostic, trace)
        self.xact.on_error()

    def _statement_of(self, message: object) -> str | None:
        """debug_query_string for an extended-protocol message: Parse's query, the source
        text of the statement Bind names; Execute sets it from its portal (`_active`)."""
        if isinstance(message, Parse):
            return message.query
        if isinstance(message, Bind) and (prepared := self.extended.statements.get(message.statement)) is not None:
            return prepared.text
        return None

    def _ready_for_query(self) -> None:
        self._statement = None
        current = self.executor.parameter_status()
        if current is not self._reported_from:
            for name, value in current.items():
                if self._reported.get(name) != value:
                    self._reported[name] = value
                    self.stream.send(messages.parameter_status(name, value))
            self._reported_from = current
        status = self.xact.status
        self._activity(_IDLE_STATES[status])
        self.stream.send(messages.ready_for_query(status))

    # -- helpers ----------------------------------------------------------------------------

    def _transaction_ended(self) -> None:
        if hasattr(self, "extended"):
            self.extended.drop_portals()

    def _active(self, query: str) -> None:
        self._query = self._statement = query
        self._activity("active")

    def _activity(self, state: str) -> None:
        if self._on_activity is not None:
            self._on_activity(state, self._query)

    def _log(self, diagnostic: Diagnostic, trace: str | None = None) -> None:
        if self._on_log is not None:
            self._on_log(diagnostic, self._statement, trace.rstrip() if trace else None)

    def _send_final(self, diagnostic: Diagnostic) -> None:
        """Send the last message of the session; a client already gone is no error. A WARNING
        (quickdie's) travels as NoticeResponse, as PostgreSQL sends it."""
        is_error = diagnostic.severity in ("FATAL", "PANIC", "ERROR")
        build = messages.error_response if is_error else messages.notice_response
        try:
            self.stream.send(build(diagnostic))
            self.stream.flush()
        except ConnectionLost:
            pass

    def _lost_client(self, lost: ConnectionLost) -> Diagnostic | None:
        """PostgreSQL's complaint about a client that vanished (log only)."""
        if lost.partial:
            diagnostic = Diagnostic("LOG", "08P01", lost.where or "incomplete message from client")
        elif self.xact.status != "I":
            diagnostic = Diagnostic("LOG", "08006", "unexpected EOF on client connection with an open transaction")
        else:
            diagnostic = Diagnostic("DEBUG1", "08003", "unexpected EOF on client connection")
        self._log(diagnostic)
        return diagnostic
