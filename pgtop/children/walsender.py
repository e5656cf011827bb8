"""A walsender (walsender.c): the backend of a physical replication connection.

backend.py hands it the connection once pg_hba.conf let it in (replication=true in the
startup packet). As InitProcess and InitWalSender do, it first takes one of max_wal_senders
places (FATAL 53300 "number of requested standby connections exceeds max_wal_senders
(currently %d)"), then marks its PMChildFlags slot WALSENDER and raises
PMSIGNAL_ADVANCE_STATE_MACHINE: the postmaster relabels it and spares it until the shutdown
checkpoint is written.

Commands (walsender_grammar.py): IDENTIFY_SYSTEM, SHOW name, TIMELINE_HISTORY n,
START_REPLICATION [SLOT s] [PHYSICAL] X/X [TIMELINE n] and BASE_BACKUP (the copy is
pgtop.storage.basebackup's). Any other text is SQL, refused with 0A000 on a physical
walsender; pgtop has no replication slots. START_REPLICATION streams WAL until the standby or
a shutdown ends it (walsender_streaming.py).

Signals, as PostgreSQL 14's WalSndSignals: SIGTERM (die): FATAL 57P01 "terminating connection
due to administrator command", exit 1. SIGUSR2, sent after the shutdown checkpoint: send the
rest of the WAL, wait until the standby has flushed it, CommandComplete "COPY 0", exit 0; a
walsender that is not streaming leaves as for SIGTERM (HandleWalSndInitStopping). SIGINT
cancels the command (57014). SIGQUIT: _exit(2), silently. SIGHUP: nothing to reload. How
streaming ends otherwise (the standby gone, wal_sender_timeout): see walsender_streaming.py.
"""

from __future__ import annotations

import signal
import socket
import struct

from pgtop.children.context import ChildContext, Events, WaitEvent
from pgtop.children.replication_messages import COPY_DONE, copy_data
from pgtop.children.walsender_grammar import Command, parse_command
from pgtop.children.walsender_streaming import (
    MAX_COMMAND,
    Finished,
    Streamer,
    Terminated,
)
from pgtop.common import proctitle
from pgtop.core.vocabulary import LogLevel, PMSignalReason
from pgtop.sql import settings_from_config
from pgtop.sql.settings import REPORTED
from pgtop.storage.basebackup import take_base_backup
from pgtop.storage.controlfile import read_control_file
from pgtop.storage.lsn import format_lsn
from pgtop.storage.timeline import history_file_name, read_history
from pgtop.storage.wal import Wal
from pgtop.wire import messages
from pgtop.wire.errors import ADMIN_SHUTDOWN, Diagnostic, PgError, query_canceled
from pgtop.wire.startup import StartupMessage
from pgtop.wire.stream import ConnectionLost, MessageStream

COPY_CHUNK = 64 * 1024
TEXT, INT4, INT8, OID = 25, 23, 20, 26
TOO_MANY = "number of requested standby connections exceeds max_wal_senders (currently {})"
SQL_REFUSED = PgError("0A000", "cannot execute SQL commands in WAL sender for physical replication")


# -- result sets -------------------------------------------------------------------------------


def result_rows(columns: list[tuple[str, int]], rows: list[list[bytes | None]]) -> bytes:
    """RowDescription and DataRows (the caller sends the CommandComplete)."""
    description = messages.row_description([messages.Column(name, oid) for name, oid in columns])
    return description + b"".join(messages.data_row(row) for row in rows)


def _text(value: object) -> bytes:
    return str(value).encode()


# -- the walsender -------------------------------------------------------------------------------


class WalSender:
    """One replication connection, from the handshake to its exit code."""

    def __init__(self, ctx: ChildContext, sock: socket.socket, stream: MessageStream, startup: StartupMessage) -> None:
        self.ctx = ctx
        self.sock = sock
        self.stream = stream
        self.startup = startup
        self.config = ctx.args["config"]
        self.datadir = str(ctx.args["datadir"])
        remote = ctx.args.get("remote") or "[local]"
        host, _, port = remote.rpartition(":")
        self.host = f"{host}({port})" if remote != "[local]" else "[local]"  # as the ps display has it
        self.streaming = False  # replication_active

    # -- start and end ---------------------------------------------------------------------

    def run(self) -> int:
        ctx = self.ctx
        ctx.backend_type = "walsender"
        ctx.report_activity(backend_type="walsender", user=self.startup.user,
                            application_name=self.startup.application_name or "")
        if not self._take_walsender_place():
            return self._fatal(Diagnostic("FATAL", "53300", TOO_MANY.format(self.config.max_wal_senders)))
        ctx.raise_pmsignal(PMSignalReason.ADVANCE_STATE_MACHINE)
        ctx.handle(signal.SIGTERM, signal.SIGUSR2, signal.SIGINT, signal.SIGHUP)
        ctx.exit_on_sigquit()  # the walsender keeps InitPostmasterChild's crash exit
        try:
            self._handshake()
            while True:
                self._serve_one()
        except Terminated as end:
            return self._fatal(end.diagnostic)
        except Finished:
            return 0
        except ConnectionLost:
            return 0  # EOF between commands: PostgreSQL logs it at DEBUG1 only

    def _take_walsender_place(self) -> bool:
        """InitProcess() from the walsenders' own free list of max_wal_senders PGPROCs."""
        segment, slot = self.ctx.segment, self.ctx.slot
        if segment is None or slot is None:
            return True  # no shared memory (a test harness)
        with segment.proc_lock():
            if len(segment.walsender_slots() - {slot}) >= self.config.max_wal_senders:
                return False
            self.ctx.mark_walsender()  # MarkPostmasterChildWalSender()
        return True

    def _fatal(self, diagnostic: Diagnostic) -> int:
        """ereport(FATAL): to the client (after what is queued for it) and the log; exit 1."""
        try:
            self.stream.send(messages.error_response(diagnostic))
            self.stream.flush()
        except ConnectionLost:
            pass
        self.ctx.log(LogLevel.FATAL, diagnostic.message, diagnostic.detail, diagnostic.hint)
        return 1

    def _handshake(self) -> None:
        settings = settings_from_config(self.config)
        reported = {name: settings[name].value for name in REPORTED if name in settings}
        with Wal(self.datadir) as wal:
            in_recovery = wal.state().in_recovery
        reported.update(application_name=self.startup.application_name or "", is_superuser="on",
                        session_authorization=self.startup.user, client_encoding="UTF8",
                        in_hot_standby="on" if in_recovery else "off")
        self.stream.send(messages.authentication_ok())
        self.stream.send(messages.parameter_statuses(reported))
        self.stream.send(messages.backend_key_data(self.ctx.pid, int(self.ctx.args.get("cancel_key", 0) or 0)))

    # -- the command loop (PostgresMain for a walsender) -------------------------------------

    def _serve_one(self) -> None:
        self.stream.send(messages.ready_for_query("I"))
        self._activity("idle", "")
        self.stream.flush()
        kind, body = self._read_command()
        if kind == "X":
            raise Finished()
        if kind != "Q":
            self._error(PgError("08P01", "extended query protocol not supported in a replication connection"))
            return
        text = body.rstrip(b"\0").decode("utf-8", "replace")
        self._activity("active", text)
        try:
            self._execute(parse_command(text))
        except PgError as error:
            self._error(error)

    def _read_command(self) -> tuple[str, bytes]:
        """Wait for the next message, acting on signals meanwhile."""
        while not self.stream.has_buffered_data():
            events = self.ctx.wait(None, readable=[self.sock])
            self.interrupts(events)
            if WaitEvent.SOCKET_READABLE in events:
                break
        return self.stream.read_message(MAX_COMMAND)

    def interrupts(self, events: Events) -> None:
        """CHECK_FOR_INTERRUPTS() for a walsender."""
        if WaitEvent.POSTMASTER_DEATH in events:
            raise SystemExit(1)
        if signal.SIGTERM in events or (signal.SIGUSR2 in events and not self.streaming):
            raise Terminated(ADMIN_SHUTDOWN)
        if signal.SIGINT in events:
            raise query_canceled()

    def _error(self, error: PgError) -> None:
        """An ERROR: to the client and the log; the walsender goes back to its command loop."""
        self.stream.send(messages.error_response(error.diagnostic))
        self.ctx.log(LogLevel.ERROR, error.message, error.detail, error.hint)

    def _activity(self, state: str, query: str) -> None:
        self.ctx.report_activity(state=state, query=query[:1024])
        self.set_title("idle" if state == "idle" else query.split(" ", 1)[0])

    def set_title(self, doing: str) -> None:
        self.ctx.set_title(f"{proctitle.TITLE_PREFIX}walsender {self.startup.user} {self.host} {doing}")

    def _execute(self, command: Command) -> None:
        verb = command.verb
        if verb == "SQL":
            raise SQL_REFUSED
        if verb == "IDENTIFY_SYSTEM":
            self._identify_system()
        elif verb == "SHOW":
            self._show(command.name)
        elif verb == "TIMELINE_HISTORY":
            self._timeline_history(command.timeline)
        elif verb == "START_REPLICATION":
            if command.name:
                raise PgError("42704", f'replication slot "{command.name}" does not exist')
            self._start_replication(command.lsn, command.timeline)
            return
        elif verb == "BASE_BACKUP":
            self._base_backup()
        else:
            raise PgError("0A000", "replication slots are not supported by pgtop")
        self.stream.send(messages.command_complete(verb))

    # -- the commands --------------------------------------------------------------------------

    def _identify_system(self) -> None:
        control = read_control_file(self.datadir)
        with Wal(self.datadir) as wal:
            state = wal.state()
        columns = [("systemid", TEXT), ("timeline", INT4), ("xlogpos", TEXT), ("dbname", TEXT)]
        row = [_text(control.system_identifier), _text(state.timeline), _text(format_lsn(state.insert)), None]
        self.stream.send(result_rows(columns, [row]))

    def _show(self, name: str) -> None:
        settings = {key.lower(): info for key, info in settings_from_config(self.config).items()}
        info = settings.get(name.lower())
        if info is None:
            raise PgError("42704", f'unrecognized configuration parameter "{name}"')
        self.stream.send(result_rows([(info.name, TEXT)], [[_text(info.value)]]))

    def _timeline_history(self, timeline: int) -> None:
        name = history_file_name(timeline)
        self.stream.send(messages.row_description([messages.Column("filename", TEXT), messages.Column("content", TEXT)]))
        try:
            with open(f"{self.datadir}/pg_wal/{name}", "rb") as history:
                content = history.read()
        except FileNotFoundError:
            raise PgError("58P01", f'could not open file "pg_wal/{name}": No such file or directory') from None
        self.stream.send(messages.data_row([name.encode(), content]))

    def _base_backup(self) -> None:
        self.set_title("sending backup")
        backup = take_base_backup(self.datadir)
        selected = messages.command_complete("SELECT")
        self.stream.send(result_rows([("recptr", TEXT), ("tli", INT8)],
                                     [[_text(format_lsn(backup.start_lsn)), _text(backup.start_timeline)]]) + selected)
        self.stream.send(result_rows([("spcoid", OID), ("spclocation", TEXT), ("size", INT8)], [[None, None, None]]) + selected)
        self.stream.send(b"H" + struct.pack("!ibh", 7, 0, 0))  # CopyOutResponse, text, 0 columns
        for offset in range(0, len(backup.archive), COPY_CHUNK):
            self.interrupts(self.ctx.wait(0))
            self.stream.send(copy_data(backup.archive[offset:offset + COPY_CHUNK]))
        self.stream.send(COPY_DONE)
        self.stream.send(result_rows([("recptr", TEXT), ("tli", INT8)],
                                     [[_text(format_lsn(backup.end_lsn)), _text(backup.end_timeline)]]) + selected)

    def _start_replication(self, start: int, timeline: int) -> None:
        with Wal(self.datadir) as wal:
            current = wal.state().timeline
        if timeline and timeline != current:
            known = {switch.timeline for switch in read_history(self.datadir, current)}
            if timeline not in known:
                raise PgError("XX000", f"requested timeline {timeline} is not in this server's history")
            # pgtop streams only the current timeline: a standby on an older one must follow
            # the new timeline itself (the end-of-timeline reply is not modelled).
            raise PgError("0A000", f"streaming timeline {timeline}, not the current {current}, is not supported by pgtop")
        self.stream.send(b"W" + struct.pack("!ibh", 7, 0, 0))  # CopyBothResponse
        self.stream.flush()
        Streamer(self, start, current).run()
        self.stream.send(messages.command_complete("START_STREAMING"))


def run_walsender(ctx: ChildContext, sock: socket.socket, stream: MessageStream, startup: StartupMessage) -> int:
    """The walsender's life after authentication; returns the exit code."""
    return WalSender(ctx, sock, stream, startup).run()
