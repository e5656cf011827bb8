"""A walsender (walsender.c): the backend of a physical replication connection.

backend.py hands it the connection once pg_hba.conf let it in (replication=true in the
startup packet). As InitProcess and InitWalSender do, it first takes one of max_wal_senders
places (FATAL 53300 "number of requested standby connections exceeds max_wal_senders
(currently %d)"), then marks its PMChildFlags slot WALSENDER and raises
PMSIGNAL_ADVANCE_STATE_MACHINE: the postmaster relabels it and spares it until the shutdown
checkpoint is written.

Commands (repl_gram.y): IDENTIFY_SYSTEM, SHOW name, TIMELINE_HISTORY n, START_REPLICATION
[SLOT s] [PHYSICAL] X/X [TIMELINE n] and BASE_BACKUP (pgtop.runtime.basebackup). Any other
text is SQL, refused with 0A000 on a physical walsender; pgtop has no replication slots.

Streaming (WalSndLoop): CopyBothResponse, then XLogData ('w') of at most MAX_SEND_SIZE bytes
read from pg_wal up to the end of the WAL, keepalives ('k') once the standby has been quiet for
half of wal_sender_timeout, and the standby's status updates ('r') as they come. What was sent
and what the standby wrote, flushed and replayed go to the shared counters `walsnd_*` (the
last walsender to hear from its standby wins: the dashboard shows one standby).

Signals, as PostgreSQL 14's WalSndSignals: SIGTERM (die): FATAL 57P01 "terminating connection
due to administrator command", exit 1. SIGUSR2, sent after the shutdown checkpoint: send the
rest of the WAL, wait until the standby has flushed it, CommandComplete "COPY 0", exit 0; a
walsender that is not streaming leaves as for SIGTERM (HandleWalSndInitStopping). SIGINT
cancels the command (57014). SIGQUIT: _exit(2), silently. SIGHUP: nothing to reload. The
standby gone: LOG "unexpected EOF on standby connection", exit 0; no reply for
wal_sender_timeout: LOG "terminating walsender process due to replication timeout", exit 0.
"""

from __future__ import annotations

import re
import select
import signal
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

from pgtop.children.context import ChildContext, Events, WaitEvent
from pgtop.core.vocabulary import LogLevel, PMSignalReason
from pgtop.runtime import basebackup, proctitle
from pgtop.sql import settings_from_config
from pgtop.sql.settings import REPORTED
from pgtop.storage.controlfile import read_control_file
from pgtop.storage.lsn import format_lsn, parse_lsn, segment_file_name, segment_of
from pgtop.storage.timeline import history_file_name, read_history, timeline_of_segment
from pgtop.storage.wal import Wal
from pgtop.storage.walreader import read_raw
from pgtop.wire import messages
from pgtop.wire.errors import ADMIN_SHUTDOWN, Diagnostic, PgError, query_canceled
from pgtop.wire.startup import StartupMessage
from pgtop.wire.stream import ConnectionLost, MessageStream

WAL_SENDER_TIMEOUT = 60.0  # wal_sender_timeout's default (pgtop has no such setting)
MAX_SEND_SIZE = 16 * 8192  # XLOG_BLCKSZ * 16
WAL_POLL = 0.02  # seconds between looks at the end of WAL once everything was sent
COPY_CHUNK = 64 * 1024
MAX_COMMAND = 1 << 20
PG_EPOCH = 946_684_800  # 2000-01-01 in Unix time: the protocol's timestamps count from it
TEXT, INT4, INT8, OID = 25, 23, 20, 26
TOO_MANY = "number of requested standby connections exceeds max_wal_senders (currently {})"
SQL_REFUSED = PgError("0A000", "cannot execute SQL commands in WAL sender for physical replication")
COMMANDS = ("IDENTIFY_SYSTEM", "SHOW", "TIMELINE_HISTORY", "START_REPLICATION", "BASE_BACKUP",
            "CREATE_REPLICATION_SLOT", "DROP_REPLICATION_SLOT", "READ_REPLICATION_SLOT")


# -- the streaming messages (CopyData payloads), shared with the walreceiver ----------------


def pg_timestamp(now: float | None = None) -> int:
    """GetCurrentTimestamp(): microseconds since 2000-01-01."""
    return int(((time.time() if now is None else now) - PG_EPOCH) * 1_000_000)


def xlog_data(start: int, wal_end: int, data: bytes) -> bytes:
    return b"w" + struct.pack("!QQq", start, wal_end, pg_timestamp()) + data


def keepalive(wal_end: int, reply_requested: bool) -> bytes:
    return b"k" + struct.pack("!Qq?", wal_end, pg_timestamp(), reply_requested)


def standby_status(write: int, flush: int, apply: int, reply_requested: bool) -> bytes:
    return b"r" + struct.pack("!QQQq?", write, flush, apply, pg_timestamp(), reply_requested)


def copy_data(payload: bytes) -> bytes:
    return b"d" + struct.pack("!i", len(payload) + 4) + payload


COPY_DONE = b"c" + struct.pack("!i", 4)


# -- the replication grammar -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed replication command: its verb and arguments."""

    verb: str  # IDENTIFY_SYSTEM, ..., or SQL
    name: str = ""  # SHOW's parameter, a slot name
    lsn: int = 0
    timeline: int = 0
    logical: bool = False


_TOKEN = re.compile(
    r"\s*(?:(?P<lsn>[0-9A-Fa-f]+/[0-9A-Fa-f]+)|(?P<num>\d+)(?![\w/])|'(?P<str>(?:[^']|'')*)'"
    r'|"(?P<qid>(?:[^"]|"")*)"|(?P<word>[A-Za-z_][\w.]*)|(?P<punct>[(),;]))'
)
SYNTAX_ERROR = PgError("42601", "syntax error")


def tokens(text: str) -> list[tuple[str, str]]:
    """(kind, value) pairs: kinds lsn, num, str, word (upper-cased), ident, punct."""
    found, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise SYNTAX_ERROR
        kind = match.lastgroup or "punct"
        value = match.group(kind)
        if kind == "word":
            value = value.upper()
        elif kind == "str":
            value = value.replace("''", "'")
        elif kind == "qid":
            kind, value = "ident", value.replace('""', '"')
        found.append((kind, value))
        position = match.end()
    while found and found[-1] == ("punct", ";"):
        found.pop()
    return found


def parse_command(text: str) -> Command:
    """replication_yyparse(): a replication command, or SQL if the first word is none."""
    first = re.match(r"\s*([A-Za-z_]+)", text)
    if first is None or first.group(1).upper() not in COMMANDS:
        return Command("SQL")
    words = tokens(text)
    verb = words[0][1]
    rest = words[1:]
    if verb == "IDENTIFY_SYSTEM" and not rest:
        return Command(verb)
    if verb == "SHOW" and len(rest) == 1 and rest[0][0] in ("word", "ident"):
        return Command(verb, name=rest[0][1].lower() if rest[0][0] == "word" else rest[0][1])
    if verb == "TIMELINE_HISTORY" and len(rest) == 1 and rest[0][0] == "num":
        return Command(verb, timeline=int(rest[0][1]))
    if verb == "START_REPLICATION":
        return _start_replication(rest)
    if verb == "BASE_BACKUP":
        _base_backup_options(rest)
        return Command(verb)
    if verb in ("CREATE_REPLICATION_SLOT", "DROP_REPLICATION_SLOT", "READ_REPLICATION_SLOT") and rest:
        return Command(verb, name=rest[0][1].lower() if rest[0][0] == "word" else rest[0][1])
    raise SYNTAX_ERROR


def _start_replication(rest: list[tuple[str, str]]) -> Command:
    slot = ""
    if rest[:1] == [("word", "SLOT")] and len(rest) > 1:
        slot, rest = rest[1][1].lower() if rest[1][0] == "word" else rest[1][1], rest[2:]
    logical = rest[:1] == [("word", "LOGICAL")]
    if rest[:1] in ([("word", "PHYSICAL")], [("word", "LOGICAL")]):
        rest = rest[1:]
    if not rest or rest[0][0] != "lsn" or (logical and not slot):
        raise SYNTAX_ERROR
    lsn, rest, timeline = parse_lsn(rest[0][1]), rest[1:], 0
    if not logical and rest:
        if len(rest) != 2 or rest[0] != ("word", "TIMELINE") or rest[1][0] != "num":
            raise SYNTAX_ERROR
        timeline = int(rest[1][1])
        if timeline == 0:
            raise PgError("42601", "invalid timeline 0")
    return Command("START_REPLICATION", name=slot, lsn=lsn, timeline=timeline, logical=logical)


_LEGACY_OPTIONS = {"LABEL": "str", "PROGRESS": None, "FAST": None, "WAL": None, "NOWAIT": None,
                   "MAX_RATE": "num", "TABLESPACE_MAP": None, "NOVERIFY_CHECKSUMS": None,
                   "MANIFEST": "str", "MANIFEST_CHECKSUMS": "str"}
_OPTIONS = {"label", "progress", "checkpoint", "wal", "wait", "max_rate", "tablespace_map",
            "verify_checksums", "manifest", "manifest_checksums", "target", "compression"}


def _base_backup_options(rest: list[tuple[str, str]]) -> None:
    """14's "LABEL 'x' WAL FAST ..." or 15's "(LABEL 'x', WAL, CHECKPOINT 'fast')". pgtop's
    backup is the same whatever they say (see pgtop.runtime.basebackup)."""
    if rest[:1] == [("punct", "(")]:
        if rest[-1:] != [("punct", ")")]:
            raise SYNTAX_ERROR
        for option in _split_commas(rest[1:-1]):
            if not option or option[0][0] not in ("word", "ident") or len(option) > 2:
                raise SYNTAX_ERROR
            if option[0][1].lower() not in _OPTIONS:
                raise PgError("42601", f'unrecognized base backup option: "{option[0][1].lower()}"')
        return
    index = 0
    while index < len(rest):
        kind, value = rest[index]
        if kind != "word" or value not in _LEGACY_OPTIONS:
            raise SYNTAX_ERROR
        wanted = _LEGACY_OPTIONS[value]
        if wanted is not None:
            index += 1
            if index >= len(rest) or rest[index][0] != wanted:
                raise SYNTAX_ERROR
        index += 1


def _split_commas(items: list[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    current: list[tuple[str, str]] = []
    for item in items:
        if item == ("punct", ","):
            yield current
            current = []
        else:
            current.append(item)
    yield current


# -- result sets -------------------------------------------------------------------------------


def result_rows(columns: list[tuple[str, int]], rows: list[list[bytes | None]]) -> bytes:
    """RowDescription and DataRows (the caller sends the CommandComplete)."""
    description = messages.row_description([messages.Column(name, oid) for name, oid in columns])
    return description + b"".join(messages.data_row(row) for row in rows)


def _text(value: object) -> bytes:
    return str(value).encode()


# -- the walsender -------------------------------------------------------------------------------


class _Terminated(Exception):
    """die(): leave with this FATAL."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


class _Finished(Exception):
    """proc_exit(0) while streaming: the standby left, timed out, or shutdown is done."""


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
        except _Terminated as end:
            return self._fatal(end.diagnostic)
        except _Finished:
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
            raise _Finished()
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
            raise _Terminated(ADMIN_SHUTDOWN)
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
        backup = basebackup.take_base_backup(self.datadir)
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


class Streamer:
    """WalSndLoop + XLogSendPhysical for one START_REPLICATION."""

    def __init__(self, sender: WalSender, start: int, timeline: int) -> None:
        self.sender = sender
        self.ctx = sender.ctx
        self.stream = sender.stream
        self.sent = start
        self.timeline = timeline
        self.history = read_history(sender.datadir, timeline)
        self.write = self.flush = self.apply = 0
        self.last_reply = time.monotonic()
        self.waiting_for_ping = False
        self.done_sending = self.done_receiving = False
        self.stopping = False  # got_SIGUSR2

    def run(self) -> None:
        sender = self.sender
        with Wal(sender.datadir) as wal:
            self.wal = wal
            end = wal.state().insert
            if end < self.sent:
                raise PgError("XX000", f"requested starting point {format_lsn(self.sent)} is ahead of the WAL "
                                       f"flush position of this server {format_lsn(end)}")
            sender.streaming = True
            try:
                self._loop()
            finally:
                sender.streaming = False

    def _loop(self) -> None:
        caught_up = False
        while True:
            # PostgreSQL's backends wake walsenders when they flush WAL (WalSndWakeup); pgtop's
            # do not, so a caught-up walsender looks at the end of WAL every WAL_POLL seconds.
            events = self.ctx.wait(WAL_POLL if caught_up else 0, readable=[self.sender.sock])
            if signal.SIGUSR2 in events:
                self.stopping = True
            self.sender.interrupts(events)
            self._replies()
            if self.done_receiving and self.done_sending:
                return
            caught_up = self._send_some()
            self.stream.flush()
            if caught_up and self.stopping:
                self._done()
            self._check_timeout()

    def _send_some(self) -> bool:
        """XLogSendPhysical(): one XLogData message; True when caught up."""
        if self.done_sending:
            return True
        end = self.wal.state().insert
        if end <= self.sent:
            return True
        limit = min(end, self.sent + MAX_SEND_SIZE)
        segno = segment_of(self.sent)
        file_timeline = timeline_of_segment(self.history, self.timeline, segno)
        try:
            data = read_raw(self.sender.datadir, file_timeline, self.sent, limit)
        except FileNotFoundError:
            name = segment_file_name(file_timeline, segno)
            raise PgError("58P01", f"requested WAL segment {name} has already been removed") from None
        self.stream.send(copy_data(xlog_data(self.sent, end, data)))
        self.sent += len(data)
        if self.ctx.segment is not None:
            self.ctx.segment.update_counters(walsnd_sent_lsn=self.sent)
        self.sender.set_title(f"streaming {format_lsn(self.sent)}")
        return self.sent >= end

    def _replies(self) -> None:
        """ProcessRepliesIfAny(): every message the standby sent, without blocking."""
        received = False
        while self.stream.has_buffered_data() or _readable(self.sender.sock):
            try:
                kind, body = self.stream.read_message(MAX_COMMAND)
            except ConnectionLost:
                self._gone()
            received = True
            if kind == "d":
                self._standby_message(body)
            elif kind == "c":
                if not self.done_sending:
                    self.stream.send(COPY_DONE)
                    self.done_sending = True
                self.done_receiving = True
            elif kind == "X":
                raise _Finished()
            else:
                raise _Terminated(Diagnostic("FATAL", "08P01", f'invalid standby message type "{kind}"'))
        if received:
            self.last_reply = time.monotonic()
            self.waiting_for_ping = False

    def _gone(self) -> NoReturn:
        self.ctx.log(LogLevel.LOG, "unexpected EOF on standby connection")
        raise _Finished()

    def _standby_message(self, body: bytes) -> None:
        if body[:1] == b"r" and len(body) >= 34:
            self.write, self.flush, self.apply, _sent_at, requested = struct.unpack("!QQQq?", body[1:34])
            if self.ctx.segment is not None:
                self.ctx.segment.update_counters(walsnd_write_lsn=self.write, walsnd_flush_lsn=self.flush,
                                                 walsnd_replay_lsn=self.apply, walsnd_reply_time=time.time())
            if requested:
                self.stream.send(copy_data(keepalive(self.wal.state().insert, False)))
        elif body[:1] != b"h":  # hot standby feedback: pgtop has no xmin horizon to hold back
            self.ctx.log(LogLevel.LOG, f'unexpected message type "{body[:1].decode("latin-1")}"')
            raise _Finished()

    def _done(self) -> None:
        """WalSndDone(): once the standby has flushed everything, "COPY 0" and exit 0."""
        replicated = self.flush or self.write
        if replicated >= self.sent:
            self.stream.send(messages.command_complete("COPY 0"))
            try:
                self.stream.flush()
            except ConnectionLost:
                pass
            raise _Finished()
        if not self.waiting_for_ping:
            self.stream.send(copy_data(keepalive(self.sent, True)))
            self.waiting_for_ping = True

    def _check_timeout(self) -> None:
        """WalSndCheckTimeOut() and WalSndKeepaliveIfNecessary()."""
        quiet = time.monotonic() - self.last_reply
        if quiet >= WAL_SENDER_TIMEOUT:
            self.ctx.log(LogLevel.LOG, "terminating walsender process due to replication timeout")
            raise _Finished()
        if quiet >= WAL_SENDER_TIMEOUT / 2 and not self.waiting_for_ping:
            self.stream.send(copy_data(keepalive(self.sent, True)))
            self.stream.flush()
            self.waiting_for_ping = True


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def run_walsender(ctx: ChildContext, sock: socket.socket, stream: MessageStream, startup: StartupMessage) -> int:
    """The walsender's life after authentication; returns the exit code."""
    return WalSender(ctx, sock, stream, startup).run()
