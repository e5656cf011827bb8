"""A connection child: BackendInitialize, then PostgresMain (spec §6, §4.4).

The postmaster forks one for every accepted connection. It reads the startup packet under
authentication_timeout; answers SSL/GSS requests and cancel requests; a dead_end child only
reports the postmaster's verdict as a FATAL and exits 1. Otherwise, in PostgreSQL 14's order:
InitProcess takes one of max_connections PGPROCs ("sorry, too many clients already",
`backend_procs`), pg_hba.conf decides (trust, reject, password, md5: `backend_auth`),
InitPostgres checks the reserved slots, and the session runs the wire protocol with the SQL
engine over the WAL-backed storage (`backend_session`).

Before the session starts, SIGTERM and the timeout exit 1 silently and SIGQUIT exits 2
silently; the session's own answers to signals are in `backend_session`. The fork server
preloads this module and calls its `warm_up` (`backend_warmup`).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
from collections.abc import Mapping

from pgtop.children.backend_auth import (
    AUTH_TIMEOUT,
    AuthenticationTimeout,
    ClientGone,
    authenticate,
    on_alarm,
)
from pgtop.children.backend_procs import (
    RESERVED_FOR_SUPERUSER,
    TOO_MANY_CLIENTS,
    have_free_procs,
    init_process,
)
from pgtop.children.backend_session import run_session, server_settings
from pgtop.children.backend_warmup import warm_up
from pgtop.children.context import ChildContext
from pgtop.common import cancel_targets
from pgtop.core.config import Config
from pgtop.core.connections import cancel_request_outcome, refusal
from pgtop.core.vocabulary import CAC, LogLevel
from pgtop.wire import messages
from pgtop.wire.errors import Diagnostic, ProtocolViolation
from pgtop.wire.startup import (
    CancelRequest,
    StartupMessage,
    read_startup_packet,
    violation_response,
)
from pgtop.wire.stream import ConnectionLost, MessageStream, as_stream

__all__ = ["main", "prepare_shared", "warm_up"]

# pgtop has no roles: every user is a superuser (README), so the reserved slots are everyone's.
AM_SUPERUSER = True


def prepare_shared(shared: Mapping[str, object]) -> None:
    """In the fork server, when the postmaster shares a new configuration: derive the
    session's server settings from it once, for every backend forked from now on."""
    config = shared.get("config")
    if isinstance(config, Config):
        server_settings(config)


def main(ctx: ChildContext) -> int:
    sock = ctx.client
    assert sock is not None
    sock.setblocking(True)
    # BackendInitialize: until the session starts, SIGTERM and the timeout end us silently.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(1))
    signal.signal(signal.SIGQUIT, lambda *_: os._exit(2))
    signal.signal(signal.SIGALRM, on_alarm)
    ctx.unblock(signal.SIGTERM, signal.SIGQUIT)
    signal.alarm(int(ctx.args["config"].authentication_timeout))
    stream = as_stream(sock)  # one reader for the startup packet and the session
    try:
        packet = read_startup_packet(stream)
    except ProtocolViolation as violation:
        return _protocol_violation(ctx, sock, violation)
    except ConnectionLost:
        return 0  # an empty connection: dropped without a word
    except (AuthenticationTimeout, OSError):
        return 1
    finally:
        signal.alarm(0)
    if isinstance(packet, CancelRequest):
        return _cancel(ctx, packet)
    return _serve(ctx, sock, stream, packet)


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
    backends = cancel_targets.unpack(ctx.args.get("backends", b""))
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
    if not startup.replication and not init_process(ctx, startup, host):
        return _fatal(ctx, sock, TOO_MANY_CLIENTS)
    try:
        denied = authenticate(ctx, stream, startup, host)
    except ClientGone:
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
    if not AM_SUPERUSER and not have_free_procs(ctx, config.superuser_reserved_connections):
        return _fatal(ctx, sock, RESERVED_FOR_SUPERUSER)
    # CAC_SUPERUSER (14, smart shutdown during an exclusive backup) would refuse
    # non-superusers here; every pgtop user is a superuser, so it passes.
    title_host = f"{host}({port})" if host else "[local]"
    return run_session(ctx, sock, stream, startup, title_host)


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
