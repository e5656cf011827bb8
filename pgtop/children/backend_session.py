"""A backend's PostgresMain: the session over the wire protocol, with the SQL engine over the
WAL-backed storage (spec §6, §4.4).

Signals, as PostgreSQL's backends answer them once the session runs: SIGTERM ends the session
with FATAL 57P01; SIGINT cancels the running statement (57014); SIGQUIT (quickdie) sends the
WARNING the postmaster's reason calls for and _exit(2)s.

Recovery, as RecoveryInProgress(): a backend forked during hot standby reads the shared WAL
state until recovery ends, so after a promotion the same session's next transaction may write
and pg_is_in_recovery() says false. A transaction already open then stays read-only until it
ends (XactReadOnly is set when a transaction starts), as checked on PostgreSQL 15.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence

from pgtop.children.backend_procs import CLIENT_BACKEND
from pgtop.children.context import ChildContext
from pgtop.common import proctitle
from pgtop.common.activity import BackendActivity
from pgtop.core.config import Config
from pgtop.core.vocabulary import LogLevel, QuitReason, log_level_outputs
from pgtop.sql import Engine, SettingInfo, settings_from_config
from pgtop.storage.database import Database
from pgtop.storage.lsn import format_lsn
from pgtop.storage.sqlstorage import WalStorage
from pgtop.storage.wal import Wal
from pgtop.wire import messages
from pgtop.wire.errors import (
    ADMIN_SHUTDOWN,
    CRASH_SHUTDOWN,
    IMMEDIATE_SHUTDOWN,
    UNEXPECTED_SIGQUIT,
    Diagnostic,
)
from pgtop.wire.interrupts import Interrupts
from pgtop.wire.session import Session
from pgtop.wire.startup import StartupMessage
from pgtop.wire.stream import MessageStream

QUIT_WARNINGS = {QuitReason.CRASH: CRASH_SHUTDOWN, QuitReason.STOP: IMMEDIATE_SHUTDOWN}


def run_session(
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
        on_log=lambda diagnostic, statement, context: _log_diagnostic(
            ctx, diagnostic, statement, context, engine.settings.get("log_min_error_statement")
        ),
    )
    # PostgresMain's handlers: they only set flags; the session acts at safe points.
    signal.signal(signal.SIGTERM, lambda *_: session.terminate(ADMIN_SHUTDOWN))
    signal.signal(signal.SIGINT, lambda *_: session.cancel())
    signal.signal(signal.SIGQUIT, lambda *_: _quickdie(ctx, sock))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the args carry the configuration
    ctx.unblock(signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
    activity.report("idle", "")
    ending = session.run()  # the session has logged how it ended
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
    """pgstat_report_activity() and the ps display. The row is this backend's own, and who
    the backend is was written by InitProcess: each report rewrites only the statement part
    (application name, state, query, state change), as PostgreSQL's backends write their
    own PgBackendStatus. Two reports per statement are most of a `SELECT 1`'s bookkeeping."""

    def __init__(
        self, ctx: ChildContext, startup: StartupMessage, title_host: str, application_name: Callable[[], str]
    ) -> None:
        self.ctx = ctx
        self.startup = startup
        self.title_host = title_host
        self.application_name = application_name  # SET application_name shows at once
        self.state: str | None = None
        self.query: str | None = None
        self.name = startup.application_name
        # The row's owner part (user, database, client address) is InitProcess's, written
        # before this session began (pgtop.children.backend_procs.init_process).
        self.entry = ctx.activity_entry if ctx.segment is not None else None

    def report(self, state: str, query: str) -> None:
        query = query[:1024]
        name = self.application_name() if state != "active" else self.name
        if state == self.state and query == self.query and name == self.name:
            return
        if self.entry is not None:
            self.ctx.segment.write_activity_status(self.entry, name, state, query, time.time())  # type: ignore[union-attr]
        if state != self.state:
            self.ctx.set_title(proctitle.backend_title(self.startup.user, self.startup.database, self.title_host, state))
        self.state, self.query, self.name = state, query, name


def _log_diagnostic(
    ctx: ChildContext, diagnostic: Diagnostic, statement: str | None, context: str | None, min_error_statement: str
) -> None:
    """A diagnostic of the session, in the server log as send_message_to_server_log writes
    it: " at character N" when it points into the query, then DETAIL, HINT, CONTEXT (pgtop's
    traceback of an internal error), and the statement being run on a STATEMENT line when
    the level reaches log_min_error_statement."""
    level = LogLevel.__members__.get(diagnostic.severity, LogLevel.ERROR)
    message = diagnostic.message
    if diagnostic.position:
        message += f" at character {diagnostic.position}"
    if statement is not None and not log_level_outputs(level, LogLevel[min_error_statement.upper()]):
        statement = None
    ctx.log(level, message, diagnostic.detail, diagnostic.hint, context=context, statement=statement)


_server_settings: tuple[Config, Mapping[str, SettingInfo]] | None = None


def server_settings(config: Config) -> Mapping[str, SettingInfo]:
    """settings_from_config, once per configuration. The configuration is one the fork
    server keeps (ForkServer shared values) and derives this from when it gets a new one
    (pgtop.children.backend.prepare_shared), so a backend finds it done, like the GUC
    values a PostgreSQL backend inherits by fork. Read only: the session reads it in place."""
    global _server_settings
    if _server_settings is None or _server_settings[0] is not config:
        _server_settings = (config, settings_from_config(config))
    return _server_settings[1]


class BackendEnvironment:
    """What the SQL engine asks of the backend it runs in."""

    def __init__(self, ctx: ChildContext, interrupts: Interrupts) -> None:
        self.ctx = ctx
        self.interrupts = interrupts
        self._settings = server_settings(ctx.args["config"])
        # LocalRecoveryInProgress: the postmaster's state at fork time. Recovery cannot start
        # again under a running backend, so once this is false it stays false.
        self._in_recovery = bool(ctx.args.get("in_recovery", False))
        self._wal: Wal | None = None  # opened at the first look at the shared WAL state

    def backend_pid(self) -> int:
        return self.ctx.pid

    def version(self) -> str:
        from pgtop import __version__

        return f"PostgreSQL 14.13 (pgtop {__version__}) on {os.uname().machine}-pc-linux-gnu, compiled by Python, 64-bit"

    def postmaster_start_time(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(float(self.ctx.args["postmaster_start"]), dt.UTC)

    def in_recovery(self) -> bool:
        """RecoveryInProgress(): while it may still be true, ask shared memory, so a session
        on a hot standby sees its promotion. The flag is the WAL insert state's, which the
        startup process clears in the lock hold that ends recovery (SharedRecoveryState)."""
        if self._in_recovery:
            self._in_recovery = self._shared_wal().state().in_recovery
        return self._in_recovery

    def _shared_wal(self) -> Wal:
        if self._wal is None:
            self._wal = Wal(self.ctx.args["datadir"])
        return self._wal

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
        return format_lsn(self._shared_wal().insert_lsn)

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
