"""The WAL receiver (walreceiver.c + libpqwalreceiver.c): streams WAL from primary_conninfo
into this standby's pg_wal, for the startup process to replay.

The connection is libpq's (pgtop.common.libpq, which `pgtop init --standby-of` shares). Then,
as WalReceiverMain: IDENTIFY_SYSTEM (the primary must be the same database system, on a
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

import os
import signal
import struct
import time

from pgtop.children.context import ChildContext, Events
from pgtop.children.interrupt import (
    config_of,
    datadir_of,
    exit_if_postmaster_died,
    ignore_unused,
    reload_config,
)
from pgtop.children.replication_messages import copy_data, standby_status
from pgtop.children.startup import aux_pid
from pgtop.common.libpq import (
    ConnectFailed,
    Connection,
    ConnectionClosed,
    ServerError,
    connect,
    error_response_text,
    parse_conninfo,
)
from pgtop.core.vocabulary import ChildKind, LogLevel
from pgtop.storage.controlfile import read_control_file
from pgtop.storage.errors import StorageError
from pgtop.storage.lsn import format_lsn, segment_of, segment_start
from pgtop.storage.timeline import history_file_name
from pgtop.storage.wal import Wal

STATUS_INTERVAL = 10.0  # wal_receiver_status_interval's default (pgtop has no such setting)
RECEIVER_TIMEOUT = 60.0  # wal_receiver_timeout's default


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
