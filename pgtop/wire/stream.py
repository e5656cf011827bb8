"""A buffered reader and writer of protocol messages over a blocking socket (pqcomm.c's job)."""

from __future__ import annotations

import select
import struct
from typing import Protocol

from pgtop.wire.errors import ProtocolViolation

RECV_SIZE = 8192  # pqcomm's PQ_RECV_BUFFER_SIZE: what one recv may bring in
FLUSH_AT = 8192  # send once this much output is queued (PQ_SEND_BUFFER_SIZE)


class SocketLike(Protocol):
    def recv(self, size: int, /) -> bytes: ...

    def sendall(self, data: bytes, /) -> None: ...


class Wakeup(Protocol):
    """Something that can interrupt a blocking read: see `pgtop.wire.interrupts.Interrupts`."""

    def fileno(self) -> int: ...

    def on_wakeup(self) -> None:
        """Called when fileno() became readable; may raise to abandon the read."""
        ...


class ConnectionLost(Exception):
    """The peer closed the connection. `partial` says it happened in the middle of a message
    (after some of its bytes), which PostgreSQL logs; a clean EOF between messages it does not."""

    def __init__(self, partial: bool = False, where: str = "") -> None:
        super().__init__(where or "connection closed by peer")
        self.partial = partial
        self.where = where


class MessageStream:
    """Reads exact byte counts and framed messages, and queues output until `flush()`.

    Reads block in recv(); when a `wakeup` is attached, they wait in select() on the socket and
    the wakeup's fd together, so a signal handler can end a session that sits idle.
    """

    def __init__(self, sock: SocketLike, wakeup: Wakeup | None = None) -> None:
        self.sock = sock
        self.wakeup = wakeup
        self._in = bytearray()
        self._pos = 0
        self._out: list[bytes] = []
        self._out_size = 0

    # -- input --------------------------------------------------------------------------

    def has_buffered_data(self) -> bool:
        """pq_buffer_has_data(): bytes already received but not consumed."""
        return self._pos < len(self._in)

    def _fill(self) -> bool:
        """Receive more bytes; False at EOF."""
        if self._pos:
            del self._in[: self._pos]
            self._pos = 0
        if self.wakeup is not None:
            self._wait_readable(self.wakeup)
        try:
            data = self.sock.recv(RECV_SIZE)
        except OSError as error:  # reset by peer, or the caller's timeout
            raise ConnectionLost(partial=self.has_buffered_data(), where=str(error)) from error
        if not data:
            return False
        self._in += data
        return True

    def _wait_readable(self, wakeup: Wakeup) -> None:
        sock_fd, wake_fd = self.sock.fileno(), wakeup.fileno()  # type: ignore[attr-defined]
        while True:
            readable, _, _ = select.select([sock_fd, wake_fd], [], [])
            if wake_fd in readable:
                wakeup.on_wakeup()
            if sock_fd in readable:
                return

    def read_exact(self, size: int) -> bytes:
        """Exactly `size` bytes. Raises ConnectionLost(partial=bool) at EOF."""
        while len(self._in) - self._pos < size:
            had_some = len(self._in) - self._pos > 0
            if not self._fill():
                raise ConnectionLost(partial=had_some)
        data = bytes(self._in[self._pos : self._pos + size])
        self._pos += size
        return data

    def read_available_or_eof(self) -> bytes:
        """At least one byte, or b"" at a clean EOF."""
        if not self.has_buffered_data() and not self._fill():
            return b""
        return self.read_exact(1)

    def read_message(self, max_length: int) -> tuple[str, bytes]:
        """One typed message: (type character, body). Mirrors pq_getbyte + pq_getmessage."""
        first = self.read_available_or_eof()
        if not first:
            raise ConnectionLost(partial=False)
        return chr(first[0]), self.read_body(max_length)

    def read_body(self, max_length: int) -> bytes:
        """The length word and body of a message whose type byte was already read."""
        try:
            header = self.read_exact(4)
        except ConnectionLost:
            raise ConnectionLost(partial=True, where="unexpected EOF within message length word") from None
        (length,) = struct.unpack("!i", header)
        if length < 4 or length > max_length:
            raise ProtocolViolation("08P01", "invalid message length", send_to_client=False)
        try:
            return self.read_exact(length - 4)
        except ConnectionLost:
            raise ConnectionLost(partial=True, where="incomplete message from client") from None

    # -- output -------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue `data`; it leaves at the next flush() (or when the queue is large)."""
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        try:
            self.sock.sendall(data)
        except OSError as error:  # broken pipe: the client is gone
            raise ConnectionLost(where=str(error)) from error

    def discard_output(self) -> None:
        self._out.clear()
        self._out_size = 0


def as_stream(conn: SocketLike | MessageStream) -> MessageStream:
    return conn if isinstance(conn, MessageStream) else MessageStream(conn)
