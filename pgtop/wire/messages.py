"""Builders for every backend message pgtop sends (protocol 3.0), as ready-to-send bytes."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pgtop.wire.errors import Diagnostic

PROTOCOL_LATEST = 3 << 16  # PG_PROTOCOL_LATEST: 3.0


def _message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def _cstring(text: str) -> bytes:
    # A NUL inside would end the string early and desynchronise the client.
    return text.replace("\0", "").encode("utf-8") + b"\0"


def authentication_ok() -> bytes:
    return _message(b"R", struct.pack("!i", 0))


def authentication_cleartext_password() -> bytes:
    return _message(b"R", struct.pack("!i", 3))


def authentication_md5_password(salt: bytes) -> bytes:
    if len(salt) != 4:
        raise ValueError("an MD5 salt is 4 bytes")
    return _message(b"R", struct.pack("!i", 5) + salt)


def parameter_status(name: str, value: str) -> bytes:
    return _message(b"S", _cstring(name) + _cstring(value))


def backend_key_data(pid: int, secret_key: int) -> bytes:
    return _message(b"K", struct.pack("!iI", pid, secret_key & 0xFFFFFFFF))


_READY_FOR_QUERY = {status: _message(b"Z", status.encode()) for status in "ITE"}


def ready_for_query(transaction_status: str) -> bytes:
    """`transaction_status`: I (idle), T (in a transaction block), E (failed block)."""
    message = _READY_FOR_QUERY.get(transaction_status)
    if message is None:
        raise ValueError(f"transaction status must be I, T or E, not {transaction_status!r}")
    return message


@dataclass(frozen=True, slots=True)
class Column:
    """One RowDescription field. `type_size` and `type_modifier` as pg_attribute has them."""

    name: str
    type_oid: int
    type_size: int = -1
    type_modifier: int = -1
    table_oid: int = 0
    column_number: int = 0


def row_description(columns: Sequence[Column], formats: Sequence[int] = ()) -> bytes:
    """`formats` holds one format code per column (0 text, 1 binary); empty means all text."""
    parts = [struct.pack("!h", len(columns))]
    for index, column in enumerate(columns):
        fmt = formats[index] if formats else 0
        parts.append(
            _cstring(column.name)
            + struct.pack(
                "!ihihih",
                column.table_oid,
                column.column_number,
                column.type_oid,
                column.type_size,
                column.type_modifier,
                fmt,
            )
        )
    return _message(b"T", b"".join(parts))


def data_row(values: Sequence[bytes | None]) -> bytes:
    parts = [struct.pack("!h", len(values))]
    for value in values:
        if value is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            parts.append(struct.pack("!i", len(value)) + value)
    return _message(b"D", b"".join(parts))


def command_complete(tag: str) -> bytes:
    return _message(b"C", _cstring(tag))


def empty_query_response() -> bytes:
    return _message(b"I")


def _fields(diagnostic: Diagnostic) -> bytes:
    pairs: list[tuple[bytes, str | None]] = [
        (b"S", diagnostic.severity),
        (b"V", diagnostic.severity),
        (b"C", diagnostic.sqlstate),
        (b"M", diagnostic.message),
        (b"D", diagnostic.detail),
        (b"H", diagnostic.hint),
        (b"P", None if diagnostic.position is None else str(diagnostic.position)),
    ]
    return b"".join(code + _cstring(value) for code, value in pairs if value is not None) + b"\0"


def error_response(diagnostic: Diagnostic) -> bytes:
    return _message(b"E", _fields(diagnostic))


def notice_response(diagnostic: Diagnostic) -> bytes:
    return _message(b"N", _fields(diagnostic))


def legacy_error_response(diagnostic: Diagnostic) -> bytes:
    """Protocol 2's error: 'E', then "FATAL:  message\\n" as one C string, no length word.
    PostgreSQL answers this way when the client asked for protocol 2."""
    return b"E" + _cstring(f"{diagnostic.severity}:  {diagnostic.message}\n")


def parse_complete() -> bytes:
    return _message(b"1")


def bind_complete() -> bytes:
    return _message(b"2")


def close_complete() -> bytes:
    return _message(b"3")


def no_data() -> bytes:
    return _message(b"n")


def portal_suspended() -> bytes:
    return _message(b"s")


def parameter_description(type_oids: Sequence[int]) -> bytes:
    return _message(b"t", struct.pack(f"!h{len(type_oids)}I", len(type_oids), *type_oids))


def negotiate_protocol_version(newest_minor_supported: int, unrecognized: Iterable[str]) -> bytes:
    names = list(unrecognized)
    body = struct.pack("!ii", (3 << 16) | newest_minor_supported, len(names))
    return _message(b"v", body + b"".join(_cstring(name) for name in names))


def parameter_statuses(parameters: Mapping[str, str]) -> bytes:
    """All ParameterStatus messages, in PostgreSQL's order (GUC names sorted case-insensitively)."""
    return b"".join(parameter_status(k, parameters[k]) for k in sorted(parameters, key=str.lower))
