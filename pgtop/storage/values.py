"""Column types: checking values, PostgreSQL's text input and output, and their WAL encoding.

Values are Python objects: int (integer, bigint), str (text), bool (boolean), Decimal
(numeric), an aware datetime (timestamp with time zone); None is NULL. A str given for another
type is read with that type's input function, as PostgreSQL reads an untyped literal, so
`insert("t", [("42", "t")])` works. Errors carry PostgreSQL's texts and SQLSTATEs.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from pgtop.storage.errors import StorageError
from pgtop.storage.lsn import utc_offset_text

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TRUE = ("t", "true", "y", "yes", "on", "1")
_FALSE = ("f", "false", "n", "no", "off", "0")


class ColumnType(enum.Enum):
    """The types a pgtop table column may have; the value is PostgreSQL's format_type name."""

    INTEGER = "integer"
    BIGINT = "bigint"
    TEXT = "text"
    BOOLEAN = "boolean"
    NUMERIC = "numeric"
    TIMESTAMPTZ = "timestamp with time zone"

    @classmethod
    def from_name(cls, name: str | ColumnType) -> ColumnType:
        """Accepts PostgreSQL's spellings: int, int4, integer, int8, bool, timestamptz, ..."""
        if isinstance(name, ColumnType):
            return name
        found = _ALIASES.get(" ".join(name.lower().split()))
        if found is None:
            raise StorageError(f'type "{name}" does not exist', sqlstate="42704")
        return found

    @property
    def oid(self) -> int:
        """pg_type oid, for RowDescription on the wire."""
        return _OIDS[self]

    @property
    def typname(self) -> str:
        return _TYPNAMES[self]

    def coerce(self, value: Any) -> Any:
        """The stored form of `value`, or a StorageError as PostgreSQL would raise it."""
        if value is None:
            return None
        if isinstance(value, str) and self is not ColumnType.TEXT:
            return self.parse(value)
        return _COERCE[self](self, value)

    def parse(self, text: str) -> Any:
        """The type's input function (text form from a client or a literal)."""
        return _PARSE[self](self, text)

    def output(self, value: Any) -> str | None:
        """The type's output function: the text a client receives (None stays NULL)."""
        if value is None:
            return None
        if self is ColumnType.BOOLEAN:
            return "t" if value else "f"
        if self is ColumnType.NUMERIC:
            return format(value, "f") if value.is_finite() else str(value)
        if self is ColumnType.TIMESTAMPTZ:
            return _timestamptz_output(value)
        return str(value)

    def encode(self, value: Any) -> Any:
        """JSON form for the WAL and table files."""
        if value is None or self in (ColumnType.INTEGER, ColumnType.BIGINT, ColumnType.TEXT, ColumnType.BOOLEAN):
            return value
        if self is ColumnType.NUMERIC:
            return str(value)
        return (value - _EPOCH) // timedelta(microseconds=1)

    def decode(self, stored: Any) -> Any:
        if stored is None or self in (ColumnType.INTEGER, ColumnType.BIGINT, ColumnType.TEXT, ColumnType.BOOLEAN):
            return stored
        if self is ColumnType.NUMERIC:
            return Decimal(stored)
        return _EPOCH + timedelta(microseconds=stored)


def _invalid(kind: ColumnType, text: str) -> StorageError:
    return StorageError(f'invalid input syntax for type {kind.value}: "{text}"', sqlstate="22P02")


def _mismatch(kind: ColumnType, value: Any) -> StorageError:
    return StorageError(
        f"value of type {type(value).__name__} cannot be stored in a column of type {kind.value}",
        sqlstate="42804",
    )


def _check_integer(kind: ColumnType, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, Decimal) and value == value.to_integral_value():
            value = int(value)
        else:
            raise _mismatch(kind, value)
    bits = 31 if kind is ColumnType.INTEGER else 63
    if not -(1 << bits) <= value < (1 << bits):
        raise StorageError(f"{kind.value} out of range", sqlstate="22003")
    return value


def _parse_integer(kind: ColumnType, text: str) -> int:
    try:
        if "_" in text:  # Python reads 1_000, PostgreSQL 14 does not
            raise ValueError(text)
        value = int(text.strip())
    except ValueError:
        raise _invalid(kind, text) from None
    return _check_integer(kind, value)


def _check_text(kind: ColumnType, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal, str)):
        return str(value)
    if isinstance(value, datetime):
        return _timestamptz_output(value)
    raise _mismatch(kind, value)


def _check_boolean(kind: ColumnType, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _mismatch(kind, value)
    return value


def _parse_boolean(kind: ColumnType, text: str) -> bool:
    word = text.strip().lower()
    # boolin accepts any unique prefix of true/false/yes/no, and on/off from two letters
    if word and any(full.startswith(word) for full in ("true", "yes")) or word in ("on", "1"):
        return True
    if word and any(full.startswith(word) for full in ("false", "no")) or word in ("of", "off", "0"):
        return False
    raise _invalid(kind, text)


def _check_numeric(kind: ColumnType, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, float)):
        raise _mismatch(kind, value)
    return Decimal(str(value)) if isinstance(value, float) else Decimal(value)


def _parse_numeric(kind: ColumnType, text: str) -> Decimal:
    try:
        if "_" in text:
            raise InvalidOperation(text)
        value = Decimal(text.strip())
    except InvalidOperation:
        raise _invalid(kind, text) from None
    if value.is_snan():
        raise _invalid(kind, text)
    return value


def _check_timestamptz(kind: ColumnType, value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise _mismatch(kind, value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # the session TimeZone, UTC by default
    return value.astimezone(UTC)


def _parse_timestamptz(kind: ColumnType, text: str) -> datetime:
    cleaned = text.strip()
    if cleaned.upper().endswith(" UTC"):
        cleaned = cleaned[:-4] + "+00:00"
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError:
        raise _invalid(kind, text) from None
    return _check_timestamptz(kind, value)


def _timestamptz_output(value: datetime) -> str:
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + utc_offset_text(value)


_ALIASES = {
    "integer": ColumnType.INTEGER, "int": ColumnType.INTEGER, "int4": ColumnType.INTEGER,
    "bigint": ColumnType.BIGINT, "int8": ColumnType.BIGINT,
    "text": ColumnType.TEXT,
    "boolean": ColumnType.BOOLEAN, "bool": ColumnType.BOOLEAN,
    "numeric": ColumnType.NUMERIC, "decimal": ColumnType.NUMERIC,
    "timestamptz": ColumnType.TIMESTAMPTZ, "timestamp with time zone": ColumnType.TIMESTAMPTZ,
}
_OIDS = {
    ColumnType.INTEGER: 23, ColumnType.BIGINT: 20, ColumnType.TEXT: 25,
    ColumnType.BOOLEAN: 16, ColumnType.NUMERIC: 1700, ColumnType.TIMESTAMPTZ: 1184,
}
_TYPNAMES = {
    ColumnType.INTEGER: "int4", ColumnType.BIGINT: "int8", ColumnType.TEXT: "text",
    ColumnType.BOOLEAN: "bool", ColumnType.NUMERIC: "numeric", ColumnType.TIMESTAMPTZ: "timestamptz",
}
_COERCE = {
    ColumnType.INTEGER: _check_integer, ColumnType.BIGINT: _check_integer,
    ColumnType.TEXT: _check_text, ColumnType.BOOLEAN: _check_boolean,
    ColumnType.NUMERIC: _check_numeric, ColumnType.TIMESTAMPTZ: _check_timestamptz,
}
_PARSE = {
    ColumnType.INTEGER: _parse_integer, ColumnType.BIGINT: _parse_integer,
    ColumnType.TEXT: lambda kind, text: text, ColumnType.BOOLEAN: _parse_boolean,
    ColumnType.NUMERIC: _parse_numeric, ColumnType.TIMESTAMPTZ: _parse_timestamptz,
}
