"""Binary format (format code 1) for parameters and results, for the types that have a simple
one. Other types answer 0A000, which the protocol allows a server to do."""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal, localcontext
from typing import Any

from pgtop.sql.errors import SqlError
from pgtop.sql.numeric import NUMERIC_CONTEXT
from pgtop.sql.types import (
    BOOL,
    EPOCH_2000,
    FLOAT4,
    FLOAT8,
    INT2,
    INT4,
    INT8,
    NAME,
    NUMERIC,
    PG_LSN,
    TEXT,
    TIMESTAMPTZ,
    UNKNOWN,
    VARCHAR,
    VOID,
    SqlType,
)

_FIXED = {INT2: "!h", INT4: "!i", INT8: "!q", FLOAT4: "!f", FLOAT8: "!d"}
_TEXTUAL = (TEXT, VARCHAR, NAME, UNKNOWN)
_NUMERIC_SIGNS = {0x0000: 1, 0x4000: -1}


def decode_parameter(typ: SqlType, data: bytes, number: int) -> Any:
    """A binary parameter value; 22P03 when its bytes do not fit the type."""
    try:
        if typ in _FIXED:
            return struct.unpack(_FIXED[typ], data)[0]
        if typ is BOOL:
            if len(data) != 1:
                raise ValueError
            return data != b"\0"
        if typ in _TEXTUAL:
            return data.decode("utf-8")
        if typ is TIMESTAMPTZ:
            (micros,) = struct.unpack("!q", data)
            return EPOCH_2000 + dt.timedelta(microseconds=micros)
        if typ is NUMERIC:
            return _decode_numeric(data)
    except (struct.error, ValueError, UnicodeDecodeError, OverflowError):
        raise SqlError("22P03", f"incorrect binary data format in bind parameter {number}") from None
    raise SqlError("0A000", f"binary format is not supported for parameters of type {typ}")


def _decode_numeric(data: bytes) -> Decimal:
    count, weight, sign, scale = struct.unpack("!hhHh", data[:8])
    digits = struct.unpack(f"!{count}h", data[8:])
    if sign == 0xC000:
        return Decimal("NaN")
    if sign in (0xD000, 0xF000):
        return Decimal("Infinity" if sign == 0xD000 else "-Infinity")
    if sign not in _NUMERIC_SIGNS or any(not 0 <= d < 10000 for d in digits):
        raise ValueError("bad numeric")
    with localcontext(NUMERIC_CONTEXT):
        value = sum(Decimal(d).scaleb(4 * (weight - i)) for i, d in enumerate(digits))
        return (value * _NUMERIC_SIGNS[sign]).quantize(Decimal(1).scaleb(-scale))


def binary_supported(typ: SqlType) -> bool:
    return typ in _FIXED or typ in _TEXTUAL or typ in (BOOL, TIMESTAMPTZ, PG_LSN, VOID)


def encode_result(typ: SqlType, value: Any) -> bytes:
    if typ in _FIXED:
        return struct.pack(_FIXED[typ], value)
    if typ is BOOL:
        return b"\1" if value else b"\0"
    if typ in _TEXTUAL:
        return value.encode("utf-8")
    if typ is TIMESTAMPTZ:
        delta = value - EPOCH_2000
        return struct.pack("!q", (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds)
    if typ is PG_LSN:
        high, low = (int(part, 16) for part in value.split("/"))
        return struct.pack("!Q", (high << 32) | low)
    if typ is VOID:
        return b""
    raise SqlError("0A000", f"binary format is not supported for results of type {typ}")
