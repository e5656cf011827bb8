"""A walsender streaming WAL (WalSndLoop and XLogSendPhysical), for one START_REPLICATION.

CopyBothResponse (sent by walsender.py), then XLogData ('w') of at most MAX_SEND_SIZE bytes
read from pg_wal up to the end of the WAL, keepalives ('k') once the standby has been quiet for
half of wal_sender_timeout, and the standby's status updates ('r') as they come. What was sent
and what the standby wrote, flushed and replayed go to the shared counters `walsnd_*` (the
last walsender to hear from its standby wins: the dashboard shows one standby).

Endings: SIGUSR2 (after the shutdown checkpoint) sends the rest of the WAL, waits until the
standby has flushed it, then CommandComplete "COPY 0" and exit 0. The standby gone: LOG
"unexpected EOF on standby connection", exit 0; no reply for wal_sender_timeout: LOG
"terminating walsender process due to replication timeout", exit 0.
"""

from __future__ import annotations

import select
import signal
import socket
import struct
import time
from typing import TYPE_CHECKING, NoReturn

from pgtop.children.replication_messages import (
    COPY_DONE,
    copy_data,
    keepalive,
    xlog_data,
)
from pgtop.core.vocabulary import LogLevel
from pgtop.storage.lsn import format_lsn, segment_file_name, segment_of
from pgtop.storage.timeline import read_history, timeline_of_segment
from pgtop.storage.wal import Wal
from pgtop.storage.walreader import read_raw
from pgtop.wire import messages
from pgtop.wire.errors import Diagnostic, PgError
from pgtop.wire.stream import ConnectionLost

if TYPE_CHECKING:
    from pgtop.children.walsender import WalSender

WAL_SENDER_TIMEOUT = 60.0  # wal_sender_timeout's default (pgtop has no such setting)
MAX_SEND_SIZE = 16 * 8192  # XLOG_BLCKSZ * 16
WAL_POLL = 0.02  # seconds between looks at the end of WAL once everything was sent
MAX_COMMAND = 1 << 20  # the longest message a walsender reads, streaming or not


class Terminated(Exception):
    """die(): leave with this FATAL."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


class Finished(Exception):
    """proc_exit(0): the standby left, timed out, or shutdown is done."""


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
                raise Finished()
            else:
                raise Terminated(Diagnostic("FATAL", "08P01", f'invalid standby message type "{kind}"'))
        if received:
            self.last_reply = time.monotonic()
            self.waiting_for_ping = False

    def _gone(self) -> NoReturn:
        self.ctx.log(LogLevel.LOG, "unexpected EOF on standby connection")
        raise Finished()

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
            raise Finished()

    def _done(self) -> None:
        """WalSndDone(): once the standby has flushed everything, "COPY 0" and exit 0."""
        replicated = self.flush or self.write
        if replicated >= self.sent:
            self.stream.send(messages.command_complete("COPY 0"))
            try:
                self.stream.flush()
            except ConnectionLost:
                pass
            raise Finished()
        if not self.waiting_for_ping:
            self.stream.send(copy_data(keepalive(self.sent, True)))
            self.waiting_for_ping = True

    def _check_timeout(self) -> None:
        """WalSndCheckTimeOut() and WalSndKeepaliveIfNecessary()."""
        quiet = time.monotonic() - self.last_reply
        if quiet >= WAL_SENDER_TIMEOUT:
            self.ctx.log(LogLevel.LOG, "terminating walsender process due to replication timeout")
            raise Finished()
        if quiet >= WAL_SENDER_TIMEOUT / 2 and not self.waiting_for_ping:
            self.stream.send(copy_data(keepalive(self.sent, True)))
            self.stream.flush()
            self.waiting_for_ping = True


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])

