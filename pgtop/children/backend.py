"""A connection child: BackendInitialize, then PostgresMain (spec §6, §4.4).

The postmaster forks one for every accepted connection. It reads the startup packet under
authentication_timeout; answers SSL/GSS requests and cancel requests; a dead_end child only
reports the postmaster's verdict as a FATAL and exits 1. Otherwise, in PostgreSQL 14's order:
InitProcess takes one of max_connections PGPROCs ("sorry, too many clients already"),
pg_hba.conf decides (trust, reject, password, md5), InitPostgres checks the reserved slots,
and the session runs the wire protocol with the SQL engine over the WAL-backed storage.

Signals, as PostgreSQL's backends answer them: SIGTERM ends the session with FATAL 57P01;
SIGINT cancels the running statement (57014); SIGQUIT (quickdie) sends the WARNING the
postmaster's reason calls for and _exit(2)s. Before the session starts, SIGTERM and the
timeout exit 1 silently and SIGQUIT exits 2 silently.

Passwords: pgtop has no pg_authid, so password and md5 lines check against `global/pg_auth`,
the flat file PostgreSQL itself kept for the postmaster up to 9.0: one `"user" "password"`
pair per line, the password in clear or as its "md5..." hash. A user without a line has no
password, and password authentication fails for it, as for a role without one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shlex
import signal
import socket
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pgtop.children.context import ChildContext
from pgtop.core.connections import cancel_request_outcome, refusal
from pgtop.core.vocabulary import CAC, LogLevel, QuitReason
from pgtop.runtime import proctitle
from pgtop.runtime.hba import (
    HbaError,
    HbaMatch,
    HbaRules,
    Refusal,
    load_hba,
    refusal_message,
)
from pgtop.runtime.shmem import ActivityRow
from pgtop.runtime.snapshot import BackendActivity
from pgtop.sql import Engine, SettingInfo, settings_from_config
from pgtop.storage.database import Database
from pgtop.storage.lsn import format_lsn
from pgtop.storage.sqlstorage import WalStorage
from pgtop.wire import messages
from pgtop.wire.auth import (
    check_cleartext_password,
    check_md5_response,
    md5_password_hash,
    request_cleartext_password,
    request_md5_password,
)
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
from pgtop.wire.startup import (
    CancelRequest,
    StartupMessage,
    read_startup_packet,
    violation_response,
)
from pgtop.wire.stream import ConnectionLost, MessageStream, as_stream

QUIT_WARNINGS = {QuitReason.CRASH: CRASH_SHUTDOWN, QuitReason.STOP: IMMEDIATE_SHUTDOWN}
CLIENT_BACKEND = "client backend"
PASSWORD_FILE = os.path.join("global", "pg_auth")
TOO_MANY_CLIENTS = Diagnostic("FATAL", "53300", "sorry, too many clients already")
RESERVED_FOR_SUPERUSER = Diagnostic(
    "FATAL", "53300", "remaining connection slots are reserved for non-replication superuser connections"
)
# A timeout while the client authenticates goes to the log only (ClientAuthInProgress).
AUTH_TIMEOUT = Diagnostic("FATAL", "57014", "canceling authentication due to timeout")
# pgtop has no roles: every user is a superuser (README), so the reserved slots are everyone's.
AM_SUPERUSER = True


class _Timeout(Exception):
    pass


class _ClientGone(Exception):
    """The client hung up while authenticating: the backend ends quietly (exit 0)."""


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
    except (_Timeout, OSError):
        return 1
    finally:
        signal.alarm(0)
    if isinstance(packet, CancelRequest):
        return _cancel(ctx, packet)
    return _serve(ctx, sock, stream, packet)


def _timeout(*_: object) -> None:
    raise _Timeout()


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
        _signal_with_group(outcome.signal_pid, signal.SIGINT)
    elif outcome.log is not None:
        ctx.log(LogLevel.LOG, outcome.log)
    return 0


def _signal_with_group(pid: int, sig: int) -> None:
    """signal_child(): the backend and its process group. A backend leads its own group
    (setsid), so kill(-pid) alone reaches both; PostgreSQL's kill(pid) then kill(-pid) would
    deliver a second SIGINT that, arriving late, could cancel the client's next statement."""
    try:
        os.kill(-pid, sig)
    except ProcessLookupError:  # not a group leader (or gone): the process alone
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    except PermissionError:
        pass


def _serve(ctx: ChildContext, sock: socket.socket, stream: MessageStream, startup: StartupMessage) -> int:
    config = ctx.args["config"]
    remote = ctx.args.get("remote") or "[local]"
    host, _, port = remote.rpartition(":") if remote != "[local]" else (None, "", "")
    ctx.remote_host = host or "[local]"  # %h in log_line_prefix: the address alone
    ctx.user, ctx.database = startup.user, startup.database
    ctx.application_name = startup.application_name
    if config.log_connections:
        ctx.log(LogLevel.LOG, f"connection received: host={host or '[local]'}" + (f" port={port}" if host else ""))
    # The postmaster's verdict: a dead_end child says it and leaves.
    verdict = refusal(CAC(ctx.args.get("cac", "ok")), bool(ctx.args.get("hot_standby", True)))
    if verdict is not None:
        return _fatal(ctx, sock, Diagnostic("FATAL", verdict.sqlstate, verdict.message, verdict.detail))
    if not startup.replication and not _init_process(ctx, startup, host):
        return _fatal(ctx, sock, TOO_MANY_CLIENTS)
    try:
        denied = _authenticate(ctx, stream, startup, host)
    except _ClientGone:
        return 0
    except ProtocolViolation as violation:
        return _protocol_violation(ctx, sock, violation)
    if denied is not None:
        return _fatal(ctx, sock, denied, log_only=denied is AUTH_TIMEOUT)
    if config.log_connections:
        ctx.log(LogLevel.LOG, _authorized_line(startup))
    if startup.replication:
        # A walsender starts as a normal backend and becomes one here (spec §2.1).
        from pgtop.children.walsender import run_walsender

        return run_walsender(ctx, sock, stream, startup)
    if not AM_SUPERUSER and not _have_free_procs(ctx, config.superuser_reserved_connections):
        return _fatal(ctx, sock, RESERVED_FOR_SUPERUSER)
    # CAC_SUPERUSER (14, smart shutdown during an exclusive backup) would refuse
    # non-superusers here; every pgtop user is a superuser, so it passes.
    title_host = f"{host}({port})" if host else "[local]"
    return _run_session(ctx, sock, stream, startup, title_host)


# -- PGPROCs: max_connections of them, counted in shared memory -----------------------------


def _procs_in_use(ctx: ChildContext) -> int:
    """Client backends other than this one that hold a PGPROC: their activity row names a
    user (set when the PGPROC is taken). Walsenders draw from their own pool."""
    segment = ctx.segment
    assert segment is not None
    walsenders = segment.walsender_slots()
    return sum(
        1
        for entry, row in segment.activity_entries().items()
        if entry <= segment.max_children
        and entry != ctx.slot
        and entry not in walsenders
        and row.backend_type == CLIENT_BACKEND
        and row.user
    )


def _init_process(ctx: ChildContext, startup: StartupMessage, host: str | None) -> bool:
    """InitProcess(): take a PGPROC from the client backends' free list, False if none is
    left. The count and the take happen under one lock, as under ProcStructLock."""
    segment = ctx.segment
    if segment is None or ctx.slot is None:
        return True  # no shared memory (a test harness): nothing to count
    with segment.proc_lock():
        if _procs_in_use(ctx) >= ctx.args["config"].max_connections:
            return False
        ctx.report_activity(
            user=startup.user,
            database=startup.database,
            application_name=startup.application_name,
            client_addr=host,
        )
    return True


def _have_free_procs(ctx: ChildContext, wanted: int) -> bool:
    """HaveNFreeProcs(): at least `wanted` PGPROCs are still free."""
    if ctx.segment is None or ctx.slot is None or wanted <= 0:
        return True
    with ctx.segment.proc_lock():
        # This backend's own PGPROC is in use too.
        return ctx.args["config"].max_connections - _procs_in_use(ctx) - 1 >= wanted


# -- ClientAuthentication ---------------------------------------------------------------


def _authenticate(
    ctx: ChildContext, stream: MessageStream, startup: StartupMessage, host: str | None
) -> Diagnostic | None:
    """ClientAuthentication(): pg_hba.conf decides; password methods ask the client.

    The rules are the postmaster's, as loaded at start or at the last good reload (a broken
    file on SIGHUP keeps the old ones); only a child spawned without them reads the file."""
    rules = ctx.args.get("hba")
    if not isinstance(rules, HbaRules):
        try:
            rules = load_hba(Path(ctx.args["datadir"]) / "pg_hba.conf")
        except HbaError:
            return Diagnostic("FATAL", "28000", "could not load pg_hba.conf")
    conn_type = "local" if host is None else "host"
    replication = bool(startup.replication) and startup.replication != "database"
    match = rules.match(conn_type, startup.database, startup.user, host, replication)
    refused = Refusal.for_match(match)
    if refused is None and match is not None and match.method != "trust":
        return _password_exchange(ctx, stream, startup, host, match)
    if refused is None:
        return None
    text = refusal_message(refused, host=host, user=startup.user, database=startup.database, replication=replication)
    return Diagnostic("FATAL", refused.sqlstate, text)  # no DETAIL: PostgreSQL gives none here


def _password_exchange(
    ctx: ChildContext, stream: MessageStream, startup: StartupMessage, host: str | None, match: HbaMatch
) -> Diagnostic | None:
    """CheckPasswordAuth / CheckMD5Auth under authentication_timeout. A client that hangs
    up to ask its user for the password (psql does) ends the backend silently; one that
    sends something else than a password breaks the protocol (ProtocolViolation)."""
    user = startup.user
    stored = _stored_password(ctx, user)
    signal.alarm(int(ctx.args["config"].authentication_timeout))
    try:
        if match.method == "password":
            ok = _cleartext_matches(user, stored, request_cleartext_password(stream))
        elif match.method == "md5":
            salt, response = request_md5_password(stream)
            ok = stored is not None and check_md5_response(user, stored, salt, response)
        else:
            return Diagnostic("FATAL", "28000", f'authentication method "{match.method}" is not supported by pgtop')
    except _Timeout:
        return AUTH_TIMEOUT
    except (ConnectionLost, OSError):
        raise _ClientGone() from None  # PostgreSQL logs nothing for a client that left here
    finally:
        signal.alarm(0)
    if ok:
        return None
    # auth_failed(): the reason and the matching line are errdetail_log, for the log only.
    why = f'User "{user}" has no password assigned.' if stored is None else f'Password does not match for user "{user}".'
    text = refusal_message(Refusal.PASSWORD_FAILED, host=host, user=user, database=startup.database)
    return Diagnostic("FATAL", "28P01", text, f"{why}\n{match.detail}")


def _cleartext_matches(user: str, stored: str | None, response: str) -> bool:
    """A cleartext password against the stored one, which may be its "md5..." hash."""
    if stored is None:
        return False
    if stored.startswith("md5") and len(stored) == 35:
        return check_cleartext_password(stored, md5_password_hash(user, response))
    return check_cleartext_password(stored, response)


def _stored_password(ctx: ChildContext, user: str) -> str | None:
    """The user's password from global/pg_auth, or None (no file, no line: no password)."""
    try:
        text = (Path(ctx.args["datadir"]) / PASSWORD_FILE).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue  # an unbalanced quote: that line names nobody
        if len(words) >= 2 and words[0] == user:
            return words[1]
    return None


def _authorized_line(startup: StartupMessage) -> str:
    line = f"connection authorized: user={startup.user} database={startup.database}"
    return line + (f" application_name={startup.application_name}" if startup.application_name else "")


def _fatal(ctx: ChildContext, sock: socket.socket, diagnostic: Diagnostic, *, log_only: bool = False) -> int:
    """ereport(FATAL): to the client and to the server log, then exit 1. An authentication
    failure's DETAIL is errdetail_log (the log only); a timeout while the client
    authenticates is not sent at all (ClientAuthInProgress)."""
    if not log_only:
        to_client = dataclasses.replace(diagnostic, detail=None) if diagnostic.sqlstate == "28P01" else diagnostic
        try:
            sock.sendall(messages.error_response(to_client))
        except OSError:
            pass
    ctx.log(LogLevel.FATAL, diagnostic.message, diagnostic.detail, diagnostic.hint)
    return 1


# -- PostgresMain -------------------------------------------------------------------------


def _run_session(
    ctx: ChildContext, sock: socket.socket, stream: MessageStream, startup: StartupMessage, title_host: str
) -> int:
    interrupts = Interrupts()
    environment = BackendEnvironment(ctx, interrupts)
    engine = Engine(environment, SessionStorage(ctx.args["datadir"]))
    activity = ActivityReporter(ctx, startup, title_host, lambda: engine.settings.get("application_name"))
    session = Session(
        stream,
        startup,
        pid=ctx.pid,
        secret_key=int(ctx.args.get("cancel_key", 0)),
        parameters={},
        executor=engine,
        interrupts=interrupts,
        on_activity=activity.report,
        on_log=lambda diagnostic, statement: _log_diagnostic(ctx, diagnostic, statement),
    )
    # PostgresMain's handlers: they only set flags; the session acts at safe points.
    signal.signal(signal.SIGTERM, lambda *_: session.terminate(ADMIN_SHUTDOWN))
    signal.signal(signal.SIGINT, lambda *_: session.cancel())
    signal.signal(signal.SIGQUIT, lambda *_: _quickdie(ctx, sock))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the args carry the configuration
    ctx.unblock(signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
    activity.report("idle", "")
    ending = session.run()
    if ending.diagnostic is not None and ending.diagnostic.severity in ("FATAL", "LOG"):
        diag = ending.diagnostic
        ctx.log(LogLevel[diag.severity], diag.message, diag.detail, diag.hint)
    if ctx.args["config"].log_disconnections:
        ctx.log(LogLevel.LOG, _disconnection_line(ctx, startup, title_host))
    return ending.exit_code


def _disconnection_line(ctx: ChildContext, startup: StartupMessage, title_host: str) -> str:
    elapsed = time.time() - ctx.started_at
    hours, rest = divmod(elapsed, 3600)
    minutes, seconds = divmod(rest, 60)
    host, _, port = title_host.partition("(")
    where = f" host={host}" + (f" port={port.rstrip(')')}" if port else "")
    return (
        f"disconnection: session time: {int(hours)}:{int(minutes):02d}:{seconds:06.3f} "
        f"user={startup.user} database={startup.database}{where}"
    )


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


class ActivityReporter:
    """pgstat_report_activity() and the ps display. The row is this backend's own, so it
    keeps a copy and writes it whole when something changes (no read-modify-write: two
    rewrites per statement are most of a `SELECT 1`'s bookkeeping)."""

    def __init__(
        self, ctx: ChildContext, startup: StartupMessage, title_host: str, application_name: Callable[[], str]
    ) -> None:
        self.ctx = ctx
        self.startup = startup
        self.title_host = title_host
        self.application_name = application_name  # SET application_name shows at once
        self.state: str | None = None
        self.query: str | None = None
        self.entry = ctx.activity_entry
        row = ctx.segment.read_activity(self.entry) if ctx.segment is not None and self.entry is not None else None
        self.row = row or ActivityRow(pid=ctx.pid, backend_type=CLIENT_BACKEND, user=startup.user,
                                      database=startup.database, application_name=startup.application_name)  # fmt: skip

    def report(self, state: str, query: str) -> None:
        query = query[:1024]
        row = self.row
        name = self.application_name() if state != "active" else row.application_name
        if state == self.state and query == self.query and name == row.application_name:
            return
        self.row = ActivityRow(
            pid=row.pid, backend_type=row.backend_type, user=row.user, database=row.database,
            application_name=name, client_addr=row.client_addr, state=state, query=query,
            backend_start=row.backend_start, state_change=time.time(), cancel_key=row.cancel_key,
        )  # fmt: skip
        if self.ctx.segment is not None and self.entry is not None:
            self.ctx.segment.write_activity(self.entry, self.row)
        if state != self.state:
            self.ctx.set_title(proctitle.backend_title(self.startup.user, self.startup.database, self.title_host, state))
        self.state, self.query = state, query


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
        return dt.datetime.fromtimestamp(float(self.ctx.args["postmaster_start"]), dt.UTC)

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
        known = {row.pid for row in self.activity() if row.backend_type == CLIENT_BACKEND}
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


class SessionStorage(WalStorage):
    """The session's WalStorage, whose Database opens at the first statement that reads or
    writes a table: a session of `SELECT 1`s never loads the tables or reads the WAL, which
    is most of what a short connection would otherwise spend."""

    def __init__(self, datadir: str) -> None:  # WalStorage's database comes later
        self._datadir = datadir
        self._database: Database | None = None
        self._block_open = False  # begin() came before the database was needed

    @property
    def database(self) -> Database:  # type: ignore[override]
        if self._database is None:
            self._database = Database(self._datadir)
            if self._block_open:
                self._database.begin()
        return self._database

    def begin(self) -> None:
        if self._database is None:
            self._block_open = True
        else:
            super().begin()

    def commit(self) -> None:
        if self._database is None:
            self._block_open = False
        else:
            super().commit()

    def abort(self) -> None:
        if self._database is None:
            self._block_open = False
        else:
            super().abort()


# -- warming the fork server up ---------------------------------------------------------------

_WARM_HBA = "local all all trust\nhost all all 127.0.0.1/32 md5\n"


def warm_up() -> None:
    """Run a short session against memory, once, in the fork server (before it freezes its
    heap): regular expressions compile, lazy imports happen and the interpreter specializes
    the session's bytecode there, so a backend starts with all of it instead of redoing it
    for every connection. Nothing here touches the data directory or signals."""
    from pgtop.core.config import Config
    from pgtop.runtime.hba import parse_hba_text
    from pgtop.runtime.shmem import Segment
    from pgtop.sql import MemoryEnvironment, MemoryStorage

    rules = parse_hba_text(_WARM_HBA, "warm-up")
    rules.match("local", "postgres", "postgres")
    rules.match("host", "postgres", "postgres", "127.0.0.1")
    with Segment.create(2) as segment, segment.proc_lock():
        segment.write_activity(1, ActivityRow(pid=os.getpid(), backend_type=CLIENT_BACKEND))
        segment.update_activity(1, state="idle", query="", user="warm-up")
        segment.activity_entries()
    client, server = socket.socketpair()
    with client, server:
        client.sendall(_packet(b"", struct.pack("!i", 196608) + b"user\0warm-up\0database\0warm-up\0\0"))
        startup = read_startup_packet(server)
        assert isinstance(startup, StartupMessage)
        client.sendall(b"".join(_query(text) for text in ("select 1", "begin", "show work_mem", "commit", "selec 1"))
                       + _packet(b"P", b"\0select $1::int\0\0\0") + _packet(b"B", b"\0\0\0\0\0\1\0\0\0\0011\0\0")
                       + _packet(b"D", b"P\0") + _packet(b"E", b"\0\0\0\0\0") + _packet(b"S") + _packet(b"X"))  # fmt: skip
        interrupts = Interrupts()
        environment = MemoryEnvironment(interrupts=interrupts, settings=settings_from_config(Config()))
        engine = Engine(environment, MemoryStorage())
        Session(server, startup, pid=os.getpid(), secret_key=0, parameters={}, executor=engine,
                interrupts=interrupts).run()  # fmt: skip
        interrupts.close()
        messages.error_response(TOO_MANY_CLIENTS)


def _packet(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _query(text: str) -> bytes:
    return _packet(b"Q", text.encode() + b"\0")
