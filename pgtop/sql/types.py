"""The data types backends know: OIDs, names, text input/output and casts.

Values in Python: int (int2/int4/int8), Decimal (numeric), float (float4/float8), str (text,
varchar, name, unknown, pg_lsn, inet), bool, aware datetime in UTC (timestamptz), None (NULL).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import re
import struct
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pgtop.sql.errors import SqlError, invalid_input, out_of_range
from pgtop.sql.numeric import round_to_scale


@dataclass(frozen=True, slots=True)
class SqlType:
    name: str  # pg_type.typname, also the label a cast gives a column ("int4")
    oid: int
    size: int  # typlen
    display: str  # format_type(): what messages call it ("integer")
    category: str  # N numeric, S string, B boolean, D datetime, X other, U unknown, P pseudo
    rank: int = 0  # numeric promotion order: int2 < int4 < int8 < numeric < float4 < float8

    def __str__(self) -> str:
        return self.display


INT2 = SqlType("int2", 21, 2, "smallint", "N", 1)
INT4 = SqlType("int4", 23, 4, "integer", "N", 2)
INT8 = SqlType("int8", 20, 8, "bigint", "N", 3)
NUMERIC = SqlType("numeric", 1700, -1, "numeric", "N", 4)
FLOAT4 = SqlType("float4", 700, 4, "real", "N", 5)
FLOAT8 = SqlType("float8", 701, 8, "double precision", "N", 6)
TEXT = SqlType("text", 25, -1, "text", "S")
VARCHAR = SqlType("varchar", 1043, -1, "character varying", "S")
NAME = SqlType("name", 19, 64, "name", "S")
UNKNOWN = SqlType("unknown", 705, -2, "unknown", "U")
BOOL = SqlType("bool", 16, 1, "boolean", "B")
TIMESTAMPTZ = SqlType("timestamptz", 1184, 8, "timestamp with time zone", "D")
PG_LSN = SqlType("pg_lsn", 3220, 8, "pg_lsn", "X")
INET = SqlType("inet", 869, -1, "inet", "X")
VOID = SqlType("void", 2278, 4, "void", "P")

ALL_TYPES = (INT2, INT4, INT8, NUMERIC, FLOAT4, FLOAT8, TEXT, VARCHAR, NAME, UNKNOWN, BOOL,
             TIMESTAMPTZ, PG_LSN, INET, VOID)
BY_OID = {t.oid: t for t in ALL_TYPES}
BY_NAME = {t.name: t for t in ALL_TYPES}
# Type names as SQL spells them (one word; the parser joins "double precision" and friends).
TYPE_NAMES: dict[str, SqlType] = {
    **{t.name: t for t in ALL_TYPES if t not in (UNKNOWN, VOID)},
    "int": INT4, "integer": INT4, "smallint": INT2, "bigint": INT8, "decimal": NUMERIC,
    "real": FLOAT4, "float": FLOAT8, "double precision": FLOAT8, "character varying": VARCHAR,
    "boolean": BOOL, "timestamp with time zone": TIMESTAMPTZ,
}
INTEGER_LIMITS = {INT2: 2**15, INT4: 2**31, INT8: 2**63}
VARHDRSZ = 4
EPOCH_2000 = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


def varchar_typmod(length: int) -> int:
    return length + VARHDRSZ


def numeric_typmod(precision: int, scale: int) -> int:
    return ((precision << 16) | (scale & 0xFFFF)) + VARHDRSZ


def check_integer(value: int, typ: SqlType) -> int:
    limit = INTEGER_LIMITS[typ]
    if not -limit <= value < limit:
        raise out_of_range(typ.display)
    return value


def check_float(value: float, typ: SqlType = FLOAT8) -> float:
    if math.isinf(value):
        raise SqlError("22003", "value out of range: overflow")
    if typ is FLOAT4 and value != 0.0 and abs(value) < 1.17549435e-38:
        raise SqlError("22003", "value out of range: underflow")
    return value


# -- text input --------------------------------------------------------------------------

_INTEGER_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*\Z")
_NUMERIC_TEXT = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*\Z")
_SPECIAL_FLOATS = {"infinity": math.inf, "+infinity": math.inf, "-infinity": -math.inf,
                   "inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "nan": math.nan}
_TRUE = ("t", "tr", "tru", "true", "y", "ye", "yes", "on", "1")
_FALSE = ("f", "fa", "fal", "fals", "false", "n", "no", "of", "off", "0")
_TIMESTAMP = re.compile(
    r"\s*([0-9]{4,})-([0-9]{1,2})-([0-9]{1,2})"
    r"(?:[ T]+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6})[0-9]*)?)?)?"
    r"\s*(Z|UTC|GMT|[+-][0-9]{1,2}(?::?[0-9]{2})?)?\s*\Z",
    re.IGNORECASE,
)
_LSN = re.compile(r"\s*([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\s*\Z")


def parse_bool(text: str) -> bool | None:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def input_value(typ: SqlType, text: str, typmod: int = -1) -> Any:
    """The type's input function (int4in, numeric_in, ...): text to a value."""
    if typ in INTEGER_LIMITS:
        if not _INTEGER_TEXT.match(text):
            raise invalid_input(typ.display, text)
        value = int(text)
        if not -INTEGER_LIMITS[typ] <= value < INTEGER_LIMITS[typ]:
            raise SqlError("22003", f'value "{text}" is out of range for type {typ.display}')
        return value
    if typ is NUMERIC:
        return apply_typmod(NUMERIC, _numeric_in(text), typmod)
    if typ in (FLOAT4, FLOAT8):
        return _float_in(typ, text)
    if typ is BOOL:
        value = parse_bool(text)
        if value is None:
            raise invalid_input("boolean", text)
        return value
    if typ is TIMESTAMPTZ:
        return _timestamptz_in(text)
    if typ is PG_LSN:
        match = _LSN.match(text)
        if not match:
            raise invalid_input("pg_lsn", text)
        return f"{int(match.group(1), 16):X}/{int(match.group(2), 16):X}"
    if typ is INET:
        try:
            return str(ipaddress.ip_interface(text.strip())).removesuffix("/32").removesuffix("/128")
        except ValueError:
            raise invalid_input("inet", text) from None
    if typ is NAME:
        return text.encode()[:63].decode(errors="ignore")
    return apply_typmod(typ, text, typmod)


def _numeric_in(text: str) -> Decimal:
    lowered = text.strip().lower()
    if lowered == "nan":
        return Decimal("NaN")
    if lowered in _SPECIAL_FLOATS:
        return Decimal("-Infinity" if lowered.startswith("-") else "Infinity")
    if not _NUMERIC_TEXT.match(text):
        raise invalid_input("numeric", text)
    value = Decimal(text.strip())
    if value and not -16383 <= value.adjusted() < 131072:
        raise SqlError("22003", "value overflows numeric format")
    return value


def _float_in(typ: SqlType, text: str) -> float:
    lowered = text.strip().lower()
    if lowered in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[lowered]
    if not _NUMERIC_TEXT.match(text):
        raise invalid_input(typ.display, text)
    value = float(text)
    if math.isinf(value) or (typ is FLOAT4 and abs(value) > 3.4028235e38):
        raise SqlError("22003", f'"{text.strip()}" is out of range for type {typ.display}')
    return value


def _timestamptz_in(text: str) -> dt.datetime:
    lowered = text.strip().lower()
    if lowered == "now":
        return dt.datetime.now(dt.timezone.utc)
    if lowered == "epoch":
        return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    match = _TIMESTAMP.match(text)
    if not match:
        raise SqlError("22007", f'invalid input syntax for type timestamp with time zone: "{text}"')
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        value = dt.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
            int((fraction or "0").ljust(6, "0")), tzinfo=_zone(zone),
        )
    except (ValueError, OverflowError):
        raise SqlError("22008", f'date/time field value out of range: "{text}"') from None
    return value.astimezone(dt.timezone.utc)


def _zone(zone: str | None) -> dt.timezone:
    if zone is None or zone.upper() in ("Z", "UTC", "GMT"):
        return dt.timezone.utc
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours, minutes = (digits[:-2], digits[-2:]) if len(digits) > 2 else (digits, "0")
    return dt.timezone(sign * dt.timedelta(hours=int(hours), minutes=int(minutes)))


def apply_typmod(typ: SqlType, value: Any, typmod: int, explicit: bool = True) -> Any:
    """Length and precision limits: varchar(n) truncates on a cast and fails on assignment;
    numeric(p,s) rounds to s and fails past p digits."""
    if value is None or typmod < VARHDRSZ:
        return value
    if typ is VARCHAR:
        limit = typmod - VARHDRSZ
        if len(value) > limit:
            if not explicit and value[limit:].strip(" "):
                raise SqlError("22001", f"value too long for type character varying({limit})")
            return value[:limit]
        return value
    if typ is NUMERIC and value.is_finite():
        precision, scale = (typmod - VARHDRSZ) >> 16, (typmod - VARHDRSZ) & 0xFFFF
        value = round_to_scale(value, scale)
        if value != 0 and value.adjusted() >= precision - scale:
            raise SqlError(
                "22003",
                "numeric field overflow",
                detail=f"A field with precision {precision}, scale {scale} must round to an "
                f"absolute value less than {'1' if precision == scale else '10^' + str(precision - scale)}.",
            )
    return value


# -- text output -------------------------------------------------------------------------


def output_value(typ: SqlType, value: Any) -> str:
    """The type's output function: a value as PostgreSQL prints it."""
    if typ is BOOL:
        return "t" if value else "f"
    if typ in (FLOAT4, FLOAT8):
        return format_float(value, 6 if typ is FLOAT4 else 15)
    if typ is NUMERIC:
        return _numeric_out(value)
    if typ is TIMESTAMPTZ:
        return format_timestamptz(value)
    if typ is VOID:
        return ""
    return str(value)


def _numeric_out(value: Decimal) -> str:
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "-Infinity" if value < 0 else "Infinity"
    text = format(value, "f")
    return "0" if text in ("-0",) else text


def format_float(value: float, digits: int = 15) -> str:
    """float8out with extra_float_digits=1: the shortest text that reads back exactly, in
    %e form outside 1e-4 <= |x| < 10^digits."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    shortest = repr(value) if digits == 15 else _shortest_float4(value)
    mantissa = Decimal(shortest)
    sign, digit_tuple, exponent = mantissa.as_tuple()
    digit_text = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    decimal_exponent = len(digit_tuple) + int(exponent) - 1
    prefix = "-" if sign else ""
    if -4 <= decimal_exponent < digits:
        return prefix + format(abs(mantissa).normalize(), "f")
    rest = digit_text[1:]
    body = digit_text[0] + ("." + rest if rest else "")
    return f"{prefix}{body}e{'-' if decimal_exponent < 0 else '+'}{abs(decimal_exponent):02d}"


def _shortest_float4(value: float) -> str:
    """The fewest significant digits that read back as the same single-precision float."""
    target = struct.pack("!f", value)
    for precision in range(1, 10):
        text = f"{value:.{precision}g}"
        if struct.pack("!f", float(text)) == target:
            return text
    return repr(value)


def format_timestamptz(value: dt.datetime) -> str:
    value = value.astimezone(dt.timezone.utc)
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value:%H:%M:%S}"
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "+00"


# -- casts ---------------------------------------------------------------------------------

# (from, to) pairs that need a conversion function beyond I/O; absent pairs between
# different non-string types cannot be cast (42846).
NUMERIC_TYPES = (INT2, INT4, INT8, NUMERIC, FLOAT4, FLOAT8)
STRING_TYPES = (TEXT, VARCHAR, NAME, UNKNOWN)


def can_cast(source: SqlType, target: SqlType) -> bool:
    if source == target or source in STRING_TYPES or target in STRING_TYPES:
        return True
    if source in NUMERIC_TYPES and target in NUMERIC_TYPES:
        return True
    return {source, target} == {INT4, BOOL}


def cast_value(value: Any, source: SqlType, target: SqlType, typmod: int = -1, explicit: bool = True) -> Any:
    """Convert a non-NULL value; `can_cast(source, target)` must hold."""
    if value is None:
        return None
    if source == target:
        return apply_typmod(target, value, typmod, explicit)
    if source in STRING_TYPES:
        return input_value(target, value, typmod) if target not in (VARCHAR,) else apply_typmod(
            VARCHAR, value, typmod, explicit)
    if target in STRING_TYPES:
        return apply_typmod(target, input_value(target, as_text(source, value)), typmod, explicit)
    if target is BOOL:
        return value != 0
    if source is BOOL:
        return int(value)
    return _numeric_cast(value, source, target, typmod)


def as_text(typ: SqlType, value: Any) -> str:
    """A value cast to text: the output function's text, except that booleans spell it out."""
    if typ is BOOL:
        return "true" if value else "false"
    return value if typ in STRING_TYPES else output_value(typ, value)


def _numeric_cast(value: Any, source: SqlType, target: SqlType, typmod: int) -> Any:
    if target in INTEGER_LIMITS:
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise SqlError("0A000", f"cannot convert {_numeric_out(value)} to {target.display}")
            value = int(value.to_integral_value(rounding=ROUND_HALF_UP))  # any width, unlike quantize
        elif isinstance(value, float):
            if math.isnan(value) or math.isinf(value):
                raise out_of_range(target.display)
            value = int(round(value))  # rint(): halves go to even, as in C
        return check_integer(int(value), target)
    if target is NUMERIC:
        if isinstance(value, float):
            if math.isnan(value):
                return Decimal("NaN")
            value = Decimal(format(value, ".15g")) if math.isfinite(value) else Decimal(value)
        return apply_typmod(NUMERIC, Decimal(value), typmod)
    return check_float(float(value), target)
