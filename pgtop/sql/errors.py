"""The engine's error type and PostgreSQL's texts for the errors it raises."""

from __future__ import annotations

from pgtop.wire.errors import PgError


class SqlError(PgError):
    """An ERROR raised while parsing, analysing or running a statement. The engine raises
    nothing else for bad input."""


def syntax_error(near: str | None, position: int) -> SqlError:
    where = "at end of input" if near is None else f'at or near "{near}"'
    return SqlError("42601", f"syntax error {where}", position=position)


def not_supported(what: str, position: int | None = None) -> SqlError:
    return SqlError("0A000", f"{what} is not supported by pgtop", position=position)


def undefined_table(name: str, position: int | None = None) -> SqlError:
    return SqlError("42P01", f'relation "{name}" does not exist', position=position)


def undefined_column(name: str, position: int | None = None) -> SqlError:
    return SqlError("42703", f'column "{name}" does not exist', position=position)


def unrecognized_parameter(name: str) -> SqlError:
    return SqlError("42704", f'unrecognized configuration parameter "{name}"')


def division_by_zero() -> SqlError:
    return SqlError("22012", "division by zero")


def out_of_range(type_display: str) -> SqlError:
    return SqlError("22003", f"{type_display} out of range")


def invalid_input(type_display: str, text: str, position: int | None = None) -> SqlError:
    return SqlError("22P02", f'invalid input syntax for type {type_display}: "{text}"', position=position)


def read_only(command: str) -> SqlError:
    return SqlError("25006", f"cannot execute {command} in a read-only transaction")


NO_MATCH_HINT = (
    "No function matches the given name and argument types. You might need to add explicit type casts."
)
NO_OPERATOR_HINT = (
    "No operator matches the given name and argument types. You might need to add explicit type casts."
)
NO_UNARY_OPERATOR_HINT = (
    "No operator matches the given name and argument type. You might need to add an explicit type cast."
)
