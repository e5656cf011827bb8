"""The startup packet, read as PostgreSQL 15's ProcessStartupPacket reads it (spec §6).

`read_startup_packet` answers SSL and GSSAPI encryption requests with 'N', and returns a
`StartupMessage` or a `CancelRequest`, or raises:

- `ConnectionLost`: the client left without sending a byte (or after the encryption answer):
  PostgreSQL logs nothing;
- `ProtocolViolation`: with `send_to_client` True the caller sends `violation_response(e)` and
  the FATAL also goes to the server log; with False it is only logged (as LOG). Either way the
  connection ends.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pgtop.wire.errors import ProtocolViolation
from pgtop.wire.messages import (
    PROTOCOL_LATEST,
    error_response,
    legacy_error_response,
    negotiate_protocol_version,
)
from pgtop.wire.stream import ConnectionLost, MessageStream, SocketLike, as_stream

MAX_STARTUP_PACKET_LENGTH = 10000
CANCEL_REQUEST_CODE = (1234 << 16) | 5678
NEGOTIATE_SSL_CODE = (1234 << 16) | 5679
NEGOTIATE_GSS_CODE = (1234 << 16) | 5680
CANCEL_REQUEST_LENGTH = 16
NAMEDATALEN = 64
PROTOCOL_EARLIEST = 3 << 16


@dataclass(frozen=True, slots=True)
class StartupMessage:
    """A v3 StartupMessage. `parameters` holds every other name/value pair in packet order
    (application_name included): PostgreSQL applies them as settings after authentication."""

    user: str
    database: str
    options: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    replication: str | None = None  # None, "true" (physical walsender) or "database"
    protocol: tuple[int, int] = (3, 0)

    @property
    def application_name(self) -> str:
        return self.parameters.get("application_name", "")


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """A 16-byte CancelRequest: the target backend's PID and the key its BackendKeyData gave."""

    pid: int
    key: int


def violation_response(violation: ProtocolViolation) -> bytes:
    """What to send the client for `violation` (nothing when it is log-only)."""
    if not violation.send_to_client:
        return b""
    if violation.legacy_protocol:
        return legacy_error_response(violation.diagnostic)
    return error_response(violation.diagnostic)


def read_startup_packet(conn: SocketLike | MessageStream) -> StartupMessage | CancelRequest:
    """Read and check the startup packet (see the module docstring for what it raises)."""
    stream = as_stream(conn)
    ssl_done = gss_done = False
    while True:
        version, body = _read_packet(stream, quiet=ssl_done or gss_done)
        if version == CANCEL_REQUEST_CODE:
            if len(body) != CANCEL_REQUEST_LENGTH - 8:
                raise ProtocolViolation("08P01", "invalid length of startup packet", False)
            pid, key = struct.unpack("!iI", body)
            return CancelRequest(pid, key)
        if version == NEGOTIATE_SSL_CODE and not ssl_done:
            _refuse_encryption(stream, "SSL request")
            ssl_done = True
            continue
        if version == NEGOTIATE_GSS_CODE and not gss_done:
            _refuse_encryption(stream, "GSSAPI encryption request")
            gss_done = True
            continue
        return _startup_message(stream, version, body)


def _read_packet(stream: MessageStream, quiet: bool) -> tuple[int, bytes]:
    """The length word and body of one packet: (protocol code, rest of body)."""
    first = stream.read_available_or_eof()
    if not first:
        raise ConnectionLost()  # no data at all: port scanners and monitors do this
    try:
        rest = stream.read_exact(3)
    except ConnectionLost:
        if quiet:
            raise
        raise ProtocolViolation("08P01", "incomplete startup packet", False) from None
    length = struct.unpack("!I", first + rest)[0] - 4
    if length < 4 or length > MAX_STARTUP_PACKET_LENGTH:
        raise ProtocolViolation("08P01", "invalid length of startup packet", False)
    try:
        body = stream.read_exact(length)
    except ConnectionLost:
        raise ProtocolViolation("08P01", "incomplete startup packet", False) from None
    return struct.unpack("!I", body[:4])[0], body[4:]


def _refuse_encryption(stream: MessageStream, what: str) -> None:
    """pgtop has neither SSL nor GSSAPI: answer 'N', as a server built without them does."""
    stream.send(b"N")
    stream.flush()
    if stream.has_buffered_data():
        raise ProtocolViolation(
            "08P01",
            f"received unencrypted data after {what}",
            True,
            detail=(
                "This could be either a client-software bug or evidence of an attempted "
                "man-in-the-middle attack."
            ),
        )


def _startup_message(stream: MessageStream, version: int, body: bytes) -> StartupMessage:
    major, minor = version >> 16, version & 0xFFFF
    if not (PROTOCOL_EARLIEST >> 16) <= major <= (PROTOCOL_LATEST >> 16):
        raise ProtocolViolation(
            "0A000",
            f"unsupported frontend protocol {major}.{minor}: server supports "
            f"{PROTOCOL_EARLIEST >> 16}.0 to {PROTOCOL_LATEST >> 16}.{PROTOCOL_LATEST & 0xFFFF}",
            True,
            legacy_protocol=major < 3,
        )
    pairs, terminated = _split_pairs(body)
    special = {"user": "", "database": "", "options": ""}
    replication: str | None = None
    parameters: dict[str, str] = {}
    unrecognized: list[str] = []
    for name, value in pairs:
        if name in special:
            special[name] = value
        elif name == "replication":
            replication = _replication_mode(value)
        elif name.startswith("_pq_."):  # reserved for protocol options; none exist yet
            unrecognized.append(name)
        else:
            parameters[name] = value  # a setting, applied after authentication
    if not terminated:
        raise ProtocolViolation(
            "08P01", "invalid startup packet layout: expected terminator as last byte", True
        )
    if minor > (PROTOCOL_LATEST & 0xFFFF) or unrecognized:
        stream.send(negotiate_protocol_version(PROTOCOL_LATEST & 0xFFFF, unrecognized))
        stream.flush()
    if not special["user"]:
        raise ProtocolViolation("28000", "no PostgreSQL user name specified in startup packet", True)
    user = _truncate_name(special["user"])
    database = _truncate_name(special["database"] or user)
    if replication == "true":
        database = ""  # a physical walsender is not connected to a database
    return StartupMessage(user, database, special["options"], parameters, replication, (major, minor))


def _split_pairs(body: bytes) -> tuple[list[tuple[str, str]], bool]:
    """Name/value pairs, and whether the packet ends with exactly one terminator byte.
    Mirrors the C loop, including its quirks with a missing value."""
    padded = body + b"\0"  # the C code zero-fills one byte past the packet
    pairs: list[tuple[str, str]] = []
    offset, length = 0, len(body)
    while offset < length:
        name_end = padded.index(b"\0", offset)
        if name_end == offset:
            break  # the terminator
        value_offset = name_end + 1
        if value_offset >= length:
            break  # missing value: complained about below
        value_end = padded.index(b"\0", value_offset)
        pairs.append((_text(padded[offset:name_end]), _text(padded[value_offset:value_end])))
        offset = value_end + 1
    return pairs, offset == length - 1


def _replication_mode(value: str) -> str | None:
    if value == "database":
        return "database"
    lowered = value.strip().lower()
    if lowered in ("1", "t", "tr", "tru", "true", "y", "ye", "yes", "on"):
        return "true"
    if lowered in ("0", "f", "fa", "fal", "fals", "false", "n", "no", "of", "off"):
        return None
    raise ProtocolViolation(
        "22023",
        f'invalid value for parameter "replication": "{value}"',
        True,
        hint='Valid values are: "false", 0, "true", 1, "database".',
    )


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _truncate_name(name: str) -> str:
    encoded = name.encode("utf-8")
    if len(encoded) < NAMEDATALEN:
        return name
    return encoded[: NAMEDATALEN - 1].decode("utf-8", errors="ignore")


def split_options(options: str) -> list[tuple[str, str]]:
    """The settings in a startup packet's `options` ("-c name=value", "--name=value"), split
    as pg_split_opts does (whitespace separates, backslash escapes). Raises ProtocolViolation
    (42601) for any other switch, as the backend would."""
    words = _split_words(options)
    settings: list[tuple[str, str]] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word == "-c" and index + 1 < len(words):
            index += 1
            assignment = words[index]
        elif word.startswith(("-c", "--")) and len(word) > 2:
            assignment = word[2:]
        else:
            raise ProtocolViolation(
                "42601",
                f"invalid command-line argument for server process: {word}",
                True,
                hint='Try "postgres --help" for more information.',
            )
        name, equals, value = assignment.partition("=")
        if not equals:
            raise ProtocolViolation("42601", f"--{name} requires a value", True)
        settings.append((name.replace("-", "_"), value))
        index += 1
    return settings


def _split_words(options: str) -> list[str]:
    words: list[str] = []
    current: list[str] = []
    escaped = False
    for char in options:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        words.append("".join(current))
    return words
