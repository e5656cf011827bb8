"""A connection child: BackendInitialize, then PostgresMain (spec §6, §4.4).

The postmaster forks one for every accepted connection. It reads the startup packet under
authentication_timeout; answers SSL/GSS requests and cancel requests; a dead_end child only
reports the postmaster's verdict as a FATAL and exits 1; otherwise pg_hba.conf decides, and the
session runs the wire protocol with the SQL engine over the WAL-backed storage.

Signals, as PostgreSQL's backends answer them: SIGTERM ends the session with FATAL 57P01;
SIGINT cancels the running statement (57014); SIGQUIT (quickdie) sends the WARNING the
postmaster's reason calls for and _exit(2)s. Before the session starts, SIGTERM and the
timeout exit 1 silently and SIGQUIT exits 2 silently.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

from pgtop.children.context import ChildContext
from pgtop.core.connections import cancel_request_outcome, refusal
from pgtop.core.vocabulary import CAC, LogLevel, QuitReason
from pgtop.runtime import proctitle
from pgtop.runtime.hba import HbaError, Refusal, load_hba, refusal_message
from pgtop.runtime.snapshot import BackendActivity
from pgtop.sql import Engine, SettingInfo, settings_from_config
from pgtop.storage.database import Database
from pgtop.storage.lsn import format_lsn
from pgtop.storage.sqlstorage import WalStorage
from pgtop.wire import messages
from pgtop.wire.errors import (
    ADMIN_SHUTDOWN,
    CRASH_SHUTDOWN,
    IMMEDIATE_SHUTDOWN,
    UNEXPECTED_SIGQUIT,
    Diagnostic,
    ProtocolViolation,
)
from pgtop.wire.interrupts import Interrupts
from pgtop.wire.session import Session
from pgtop.wire.startup import CancelRequest, StartupMessage, read_startup_packet, violation_response
from pgtop.wire.stream import ConnectionLost, MessageStream, as_stream

QUIT_WARNINGS = {QuitReason.CRASH: CRASH_SHUTDOWN, QuitReason.STOP: IMMEDIATE_SHUTDOWN}


class _StartupTimeout(Exception):
    pass


def main(ctx: ChildContext) -> int:
    sock = ctx.client
    assert sock is not None
    sock.setblocking(True)
    # BackendInitialize: until the session starts, SIGTERM and the timeout end us silently.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(1))
    signal.signal(signal.SIGQUIT, lambda *_: os._exit(2))
    signal.signal(signal.SIGALRM, _timeout)
    ctx.unblock(signal.SIGTERM, signal.SIGQUIT)
    signal.alarm(int(ctx.args["config"].authentication_timeout))
    stream = as_stream(sock)  # one reader for the startup packet and the session
    try:
        packet = read_startup_packet(stream)
    except ProtocolViolation as violation:
        return _protocol_violation(ctx, sock, violation)
    except ConnectionLost:
        return 0  # an empty connection: dropped without a word
    except (_StartupTimeout, OSError):
        return 1
    finally:
        signal.alarm(0)
    if isinstance(packet, CancelRequest):
        return _cancel(ctx, packet)
    return _serve(ctx, sock, stream, packet)


def _timeout(*_: object) -> None:
    raise _StartupTimeout()


def _protocol_violation(ctx: ChildContext, sock: socket.socket, violation: ProtocolViolation) -> int:
    """Malformed input ends this connection only, with spec §6's message: a FATAL to the
    client and the log (exit 1), or a COMMERROR that only the log sees (exit 0)."""
    diagnostic = violation.diagnostic
    if violation.send_to_client:
        try:
            sock.sendall(violation_response(violation))
        except OSError:
            pass
        ctx.log(LogLevel.FATAL, diagnostic.message, diagnostic.detail, diagnostic.hint)
        return 1
    ctx.log(LogLevel.LOG, diagnostic.message, diagnostic.detail, diagnostic.hint)
    return 0


def _cancel(ctx: ChildContext, request: CancelRequest) -> int:
    """processCancelRequest(): search the fork-time BackendList copy; never answer."""
    backends = [(int(pid), int(key)) for pid, key in ctx.args.get("backends", [])]
    outcome = cancel_request_outcome(backends, request.pid, request.key)
    if outcome.signal_pid is not None:
        ctx.log(LogLevel.DEBUG2, f"processing cancel request: sending SIGINT to process {outcome.signal_pid}")
        for target in (outcome.signal_pid, -outcome.signal_pid):
            try:
                os.kill(target, signal.SIGINT)
            except OSError:
                pass
    elif outcome.log is not None:
        ctx.log(LogLevel.LOG, outcome.log)
    return 0


def _serve(ctx: ChildContext, sock: socket.socket, stream: MessageStream, startup: StartupMessage) -> int:
    config = ctx.args["config"]
    ctx.user, ctx.database = startup.user, startup.database
    ctx.application_name = startup.application_name
    remote = ctx.args.get("remote") or "[local]"
    host = None if remote == "[local]" else remote.rsplit(":", 1)[0]
    if config.log_connections:
        ctx.log(LogLevel.LOG, f"connection received: host={host or '[local]'}" + (f" port={remote.rsplit(':', 1)[1]}" if host else ""))
    # The postmaster's verdict: a dead_end child says it and leaves.
    verdict = refusal(CAC(ctx.args.get("cac", "ok")), bool(ctx.args.get("hot_standby", True)))
    if verdict is not None:
        return _fatal(ctx, sock, Diagnostic("FATAL", verdict.sqlstate, verdict.message, verdict.detail))
    denied = _authenticate(ctx, startup, host)
    if denied is not None:
        return _fatal(ctx, sock, denied)
    if startup.replication:
        # A walsender starts as a normal backend and becomes one here (spec §2.1).
        from pgtop.children.walsender import run_walsender

        return run_walsender(ctx, sock, stream, startup)
    # CAC_SUPERUSER (14, smart shutdown during an exclusive backup) would refuse
    # non-superusers here; pgtop has no roles and every user is a superuser, so it passes.
    return _run_session(ctx, sock, stream, startup, remote)


def _authenticate(ctx: ChildContext, startup: StartupMessage, host: str | None) -> Diagnostic | None:
    """ClientAuthentication(): pg_hba.conf decides (trust, reject; password methods)."""
    try:
        rules = load_hba(Path(ctx.args["datadir"]) / "pg_hba.conf")
    except HbaError:
        return Diagnostic("FATAL", "28000", "could not load pg_hba.conf")
    conn_type = "local" if host is None else "host"
    match = rules.match(conn_type, startup.database, startup.user, host, bool(startup.replication))
    refused = Refusal.for_match(match)
    if refused is None:
        return None
    text = refusal_message(refused, host=host, user=startup.user, database=startup.database, replication=bool(startup.replication))
    detail = match.detail if match is not None else None
    return Diagnostic("FATAL", refused.sqlstate, text, detail)


def _fatal(ctx: ChildContext, sock: socket.socket, diagnostic: Diagnostic) -> int:
    """ereport(FATAL): to the client and to the server log, then exit 1."""
    try:
        sock.sendall(messages.error_response(diagnostic))
    except OSError:
        pass
    ctx.log(LogLevel.FATAL, diagnostic.message, diagnostic.detail, diagnostic.hint)
    return 1


def _run_session(
    ctx: ChildContext, sock: socket.socket, stream: MessageStream, startup: StartupMessage, remote: str
) -> int:
    interrupts = Interrupts()
    environment = BackendEnvironment(ctx, interrupts)
    database = Database(ctx.args["datadir"])
    engine = Engine(environment, WalStorage(database))
    session = Session(
        stream,
        startup,
        pid=ctx.pid,
        secret_key=int(ctx.args.get("cancel_key", 0)),
        parameters={},
        executor=engine,
        interrupts=interrupts,
        on_activity=lambda state, query: _report(ctx, startup, remote, state, query),
        on_log=lambda diagnostic, statement: _log_diagnostic(ctx, diagnostic, statement),
    )
    # PostgresMain's handlers: they only set flags; the session acts at safe points.
    signal.signal(signal.SIGTERM, lambda *_: session.terminate(ADMIN_SHUTDOWN))
    signal.signal(signal.SIGINT, lambda *_: session.cancel())
    signal.signal(signal.SIGQUIT, lambda *_: _quickdie(ctx, sock))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the args carry the configuration
    ctx.unblock(signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
    _report(ctx, startup, remote, "idle", "")
    ending = session.run()
    if ending.diagnostic is not None and ending.diagnostic.severity in ("FATAL", "LOG"):
        diag = ending.diagnostic
        ctx.log(LogLevel[diag.severity], diag.message, diag.detail, diag.hint)
    return ending.exit_code


def _quickdie(ctx: ChildContext, sock: socket.socket) -> None:
    """SIGQUIT: tell the client why (not the server log), then _exit(2) at once."""
    reason = ctx.segment.quit_reason() if ctx.segment is not None else None
    warning = QUIT_WARNINGS.get(reason, UNEXPECTED_SIGQUIT) if reason else UNEXPECTED_SIGQUIT
    try:
        sock.setblocking(False)
        sock.send(messages.notice_response(warning))
    except OSError:
        pass
    if warning is UNEXPECTED_SIGQUIT:
        ctx.log(LogLevel.WARNING, warning.message)
    os._exit(2)


def _report(ctx: ChildContext, startup: StartupMessage, remote: str, state: str, query: str) -> None:
    """pgstat_report_activity() and the ps display."""
    ctx.report_activity(
        state=state,
        query=query[:1024],
        user=startup.user,
        database=startup.database,
        application_name=startup.application_name,
    )
    host = remote.rsplit(":", 1)[0] if remote != "[local]" else "[local]"
    ctx.set_title(proctitle.backend_title(startup.user, startup.database, host, state))


def _log_diagnostic(ctx: ChildContext, diagnostic: Diagnostic, statement: str | None) -> None:
    """An error the session reports: to the server log, as elog does (STATEMENT omitted)."""
    level = LogLevel.__members__.get(diagnostic.severity, LogLevel.ERROR)
    ctx.log(level, diagnostic.message, diagnostic.detail, diagnostic.hint)


class BackendEnvironment:
    """What the SQL engine asks of the backend it runs in."""

    def __init__(self, ctx: ChildContext, interrupts: Interrupts) -> None:
        self.ctx = ctx
        self.interrupts = interrupts
        self._settings = settings_from_config(ctx.args["config"])

    def backend_pid(self) -> int:
        return self.ctx.pid

    def version(self) -> str:
        from pgtop import __version__

        return f"PostgreSQL 14.13 (pgtop {__version__}) on {os.uname().machine}-pc-linux-gnu, compiled by Python, 64-bit"

    def postmaster_start_time(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(float(self.ctx.args["postmaster_start"]), dt.timezone.utc)

    def in_recovery(self) -> bool:
        return bool(self.ctx.args.get("in_recovery", False))

    def sleep(self, seconds: float) -> None:
        self.interrupts.sleep(seconds)

    def check_for_interrupts(self) -> None:
        self.interrupts.check()

    def reload_config(self) -> bool:
        os.kill(self.ctx.postmaster_pid, signal.SIGHUP)
        return True

    def _signal_backend(self, pid: int, sig: int) -> bool:
        known = {row.pid for row in self.activity() if row.backend_type == "client backend"}
        if pid not in known:
            return False  # the engine sends the client PostgreSQL's WARNING
        os.kill(pid, sig)
        return True

    def terminate_backend(self, pid: int) -> bool:
        return self._signal_backend(pid, signal.SIGTERM)

    def cancel_backend(self, pid: int) -> bool:
        return self._signal_backend(pid, signal.SIGINT)

    def current_wal_lsn(self) -> str:
        from pgtop.storage.wal import Wal

        return format_lsn(Wal(self.ctx.args["datadir"]).insert_lsn)

    def settings(self) -> Mapping[str, SettingInfo]:
        return self._settings

    def activity(self) -> Sequence[BackendActivity]:
        if self.ctx.segment is None:
            return ()
        return tuple(row.as_backend_activity() for row in self.ctx.segment.activity())
