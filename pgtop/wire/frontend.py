"""Parsers for the frontend messages a backend reads after startup (pqformat.c's pq_getmsg*)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pgtop.wire.errors import PgError

# Types whose bodies are small; anything longer is a broken client (PQ_SMALL_MESSAGE_LIMIT).
SMALL_MESSAGE_LIMIT = 10000
LARGE_MESSAGE_LIMIT = 0x3FFFFFFF - 1  # MaxAllocSize - 1
MAX_LENGTH: dict[str, int] = {
    "Q": LARGE_MESSAGE_LIMIT,
    "P": LARGE_MESSAGE_LIMIT,
    "B": LARGE_MESSAGE_LIMIT,
    "F": LARGE_MESSAGE_LIMIT,
    "d": LARGE_MESSAGE_LIMIT,
    "C": SMALL_MESSAGE_LIMIT,
    "D": SMALL_MESSAGE_LIMIT,
    "E": SMALL_MESSAGE_LIMIT,
    "H": SMALL_MESSAGE_LIMIT,
    "S": SMALL_MESSAGE_LIMIT,
    "X": SMALL_MESSAGE_LIMIT,
    "c": SMALL_MESSAGE_LIMIT,
    "f": SMALL_MESSAGE_LIMIT,
}
EXTENDED_TYPES = frozenset("PBCDEH")  # an error while handling these starts skip-till-Sync


class MessageReader:
    """Walks a message body; malformed content is an ERROR (08P01), as in pqformat.c."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def _take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.body):
            raise PgError("08P01", "insufficient data left in message")
        data = self.body[self.pos : self.pos + size]
        self.pos += size
        return data

    def int16(self) -> int:
        return struct.unpack("!h", self._take(2))[0]

    def uint16(self) -> int:
        return struct.unpack("!H", self._take(2))[0]

    def int32(self) -> int:
        return struct.unpack("!i", self._take(4))[0]

    def uint32(self) -> int:
        return struct.unpack("!I", self._take(4))[0]

    def byte(self) -> int:
        return self._take(1)[0]

    def raw(self, size: int) -> bytes:
        return self._take(size)

    def cstring(self) -> str:
        end = self.body.find(b"\0", self.pos)
        if end < 0:
            raise PgError("08P01", "invalid string in message")
        data = self.body[self.pos : end]
        self.pos = end + 1
        return data.decode("utf-8", errors="replace")

    def end(self) -> None:
        if self.pos != len(self.body):
            raise PgError("08P01", "invalid message format")


@dataclass(frozen=True, slots=True)
class Query:
    text: str


@dataclass(frozen=True, slots=True)
class Parse:
    statement: str
    query: str
    param_types: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Bind:
    portal: str
    statement: str
    param_formats: tuple[int, ...]
    params: tuple[bytes | None, ...]
    result_formats: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Describe:
    kind: str  # "S" statement or "P" portal
    name: str


@dataclass(frozen=True, slots=True)
class Execute:
    portal: str
    max_rows: int  # 0 = all


@dataclass(frozen=True, slots=True)
class Close:
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class Sync:
    pass


@dataclass(frozen=True, slots=True)
class Flush:
    pass


@dataclass(frozen=True, slots=True)
class Terminate:
    pass


@dataclass(frozen=True, slots=True)
class PasswordMessage:
    password: bytes  # without the terminating NUL


FrontendMessage = Query | Parse | Bind | Describe | Execute | Close | Sync | Flush | Terminate


def parse_query(body: bytes) -> Query:
    reader = MessageReader(body)
    text = reader.cstring()
    reader.end()
    return Query(text)


def parse_parse(body: bytes) -> Parse:
    reader = MessageReader(body)
    name, query = reader.cstring(), reader.cstring()
    count = reader.int16()
    types = tuple(reader.uint32() for _ in range(max(count, 0)))
    reader.end()
    return Parse(name, query, types)


def parse_bind(body: bytes) -> Bind:
    reader = MessageReader(body)
    portal, statement = reader.cstring(), reader.cstring()
    formats = tuple(reader.int16() for _ in range(max(reader.int16(), 0)))
    count = reader.int16()
    if formats and len(formats) != 1 and len(formats) != count:
        raise PgError("08P01", f"bind message has {len(formats)} parameter formats but {count} parameters")
    params: list[bytes | None] = []
    for _ in range(max(count, 0)):
        size = reader.int32()
        params.append(None if size == -1 else reader.raw(size))
    results = tuple(reader.int16() for _ in range(max(reader.int16(), 0)))
    reader.end()
    return Bind(portal, statement, formats, tuple(params), results)


def _kind_and_name(body: bytes, what: str) -> tuple[str, str]:
    reader = MessageReader(body)
    kind = reader.byte()
    name = reader.cstring()
    reader.end()
    if kind not in (ord("S"), ord("P")):
        raise PgError("08P01", f"invalid {what} message subtype {kind}")
    return chr(kind), name


def parse_describe(body: bytes) -> Describe:
    return Describe(*_kind_and_name(body, "DESCRIBE"))


def parse_close(body: bytes) -> Close:
    return Close(*_kind_and_name(body, "CLOSE"))


def parse_execute(body: bytes) -> Execute:
    reader = MessageReader(body)
    portal = reader.cstring()
    max_rows = reader.int32()
    reader.end()
    return Execute(portal, max_rows if max_rows > 0 else 0)


def parse_empty(kind: str, body: bytes) -> Sync | Flush | Terminate:
    MessageReader(body).end()
    return {"S": Sync, "H": Flush, "X": Terminate}[kind]()


def parse_password(body: bytes) -> PasswordMessage:
    reader = MessageReader(body)
    end = body.find(b"\0")
    if end < 0:
        raise PgError("08P01", "invalid string in message")
    reader.raw(end + 1)
    reader.end()
    return PasswordMessage(body[:end])


_PARSERS = {
    "Q": parse_query,
    "P": parse_parse,
    "B": parse_bind,
    "D": parse_describe,
    "E": parse_execute,
    "C": parse_close,
}


def parse_message(kind: str, body: bytes) -> FrontendMessage:
    """A typed frontend message from its type character and body. Raises PgError (08P01)
    for a malformed body; the caller has already rejected unknown types."""
    if kind in "SHX":
        return parse_empty(kind, body)
    return _PARSERS[kind](body)
