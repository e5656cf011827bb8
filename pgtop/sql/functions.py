"""Built-in functions: the scalar ones a backend offers, and the aggregates.

Each scalar function gets the runtime `Context` first (for the Environment, the session's
settings and the transaction's start time) and then its arguments, already converted to the
declared types. Strict functions return NULL for any NULL argument without being called.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pgtop.sql.errors import SqlError
from pgtop.sql.numeric import numeric_divide, round_to_scale
from pgtop.sql.types import (
    BOOL,
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
    check_integer,
)


@dataclass(frozen=True, slots=True)
class Builtin:
    name: str
    args: tuple[SqlType, ...]
    result: SqlType
    impl: Callable[..., Any]
    strict: bool = True


def _terminate(ctx: Any, pid: int, timeout: int = 0) -> bool:
    return _signal_backend(ctx, pid, ctx.env.terminate_backend)


def _cancel(ctx: Any, pid: int) -> bool:
    return _signal_backend(ctx, pid, ctx.env.cancel_backend)


def _signal_backend(ctx: Any, pid: int, send: Callable[[int], bool]) -> bool:
    if send(pid):
        return True
    ctx.warn("01000", f"PID {pid} is not a PostgreSQL backend process")
    return False


def _current_setting(ctx: Any, name: str, missing_ok: bool = False) -> str | None:
    try:
        return ctx.settings.get(name)
    except SqlError:
        if missing_ok:
            return None
        raise


def _set_config(ctx: Any, name: str, value: str, local: bool) -> str:
    ctx.settings.set(name, value, local=local)
    return ctx.settings.get(name)


_generators: dict[int, random.Random] = {}


def _generator() -> random.Random:
    """This process's own generator for random(), seeded from the system's randomness when
    it first asks, as a PostgreSQL backend seeds its own: backends are forked from one
    server, and a generator made before the fork would give all of them the same numbers."""
    pid = os.getpid()
    if (generator := _generators.get(pid)) is None:
        _generators.clear()
        generator = _generators[pid] = random.Random()
    return generator


def _sleep(ctx: Any, seconds: float) -> str:
    ctx.env.sleep(seconds)
    return ""


def _current_wal_lsn(ctx: Any) -> str:
    if ctx.env.in_recovery():
        raise SqlError("55000", "recovery is in progress",
                       hint="WAL control functions cannot be executed during recovery.")
    return ctx.env.current_wal_lsn()


def _abs(typ: SqlType) -> Callable[..., Any]:
    if typ in (INT4, INT8):
        return lambda ctx, x: check_integer(abs(x), typ)
    return lambda ctx, x: abs(x)


def _round(ctx: Any, value: Decimal, places: int = 0) -> Decimal:
    if not value.is_finite():
        return value
    return round_to_scale(value, places)


def _now(ctx: Any) -> dt.datetime:
    return ctx.transaction_start


_FUNCTIONS = [
    Builtin("version", (), TEXT, lambda ctx: ctx.env.version()),
    Builtin("now", (), TIMESTAMPTZ, _now),
    Builtin("transaction_timestamp", (), TIMESTAMPTZ, _now),
    Builtin("statement_timestamp", (), TIMESTAMPTZ, lambda ctx: ctx.statement_start),
    Builtin("clock_timestamp", (), TIMESTAMPTZ, lambda ctx: dt.datetime.now(dt.timezone.utc)),
    Builtin("current_setting", (TEXT,), TEXT, _current_setting),
    Builtin("current_setting", (TEXT, BOOL), TEXT, _current_setting),
    Builtin("set_config", (TEXT, TEXT, BOOL), TEXT, _set_config, strict=False),
    Builtin("pg_backend_pid", (), INT4, lambda ctx: ctx.env.backend_pid()),
    Builtin("pg_postmaster_start_time", (), TIMESTAMPTZ, lambda ctx: ctx.env.postmaster_start_time()),
    Builtin("pg_is_in_recovery", (), BOOL, lambda ctx: ctx.env.in_recovery()),
    Builtin("pg_sleep", (FLOAT8,), VOID, _sleep),
    Builtin("pg_reload_conf", (), BOOL, lambda ctx: ctx.env.reload_config()),
    Builtin("pg_terminate_backend", (INT4,), BOOL, _terminate),
    Builtin("pg_terminate_backend", (INT4, INT8), BOOL, _terminate),
    Builtin("pg_cancel_backend", (INT4,), BOOL, _cancel),
    Builtin("pg_current_wal_lsn", (), PG_LSN, _current_wal_lsn),
    Builtin("current_database", (), NAME, lambda ctx: ctx.database),
    Builtin("random", (), FLOAT8, lambda ctx: _generator().random()),
    Builtin("abs", (INT4,), INT4, _abs(INT4)),
    Builtin("abs", (INT8,), INT8, _abs(INT8)),
    Builtin("abs", (NUMERIC,), NUMERIC, _abs(NUMERIC)),
    Builtin("abs", (FLOAT8,), FLOAT8, _abs(FLOAT8)),
    Builtin("round", (NUMERIC,), NUMERIC, _round),
    Builtin("round", (NUMERIC, INT4), NUMERIC, _round),
    Builtin("round", (FLOAT8,), FLOAT8, lambda ctx, x: float(round(x))),
    Builtin("upper", (TEXT,), TEXT, lambda ctx, s: s.upper()),
    Builtin("lower", (TEXT,), TEXT, lambda ctx, s: s.lower()),
    Builtin("length", (TEXT,), INT4, lambda ctx, s: len(s)),
]
FUNCTIONS: dict[str, list[Builtin]] = {}
for _builtin in _FUNCTIONS:
    FUNCTIONS.setdefault(_builtin.name, []).append(_builtin)


# -- aggregates ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Aggregate:
    name: str
    result: Callable[[SqlType | None], SqlType]  # from the argument's type (None for count(*))
    compute: Callable[[SqlType | None, Sequence[Any]], Any]  # over the non-NULL inputs


def _extreme_type(typ: SqlType | None) -> SqlType:
    """min/max exist for text, not varchar or name: those come back as text."""
    assert typ is not None
    return TEXT if typ in (VARCHAR, NAME, UNKNOWN) else typ


def _sum_type(typ: SqlType | None) -> SqlType:
    return {INT2: INT8, INT4: INT8, INT8: NUMERIC}.get(typ, typ)  # type: ignore[arg-type]


def _sum(typ: SqlType | None, values: Sequence[Any]) -> Any:
    if not values:
        return None
    total = sum(values)
    if typ in (INT2, INT4):
        return check_integer(total, INT8)
    return Decimal(total) if typ is INT8 else total


def _avg(typ: SqlType | None, values: Sequence[Any]) -> Any:
    if not values:
        return None
    if typ is FLOAT8:
        return sum(values) / len(values)
    return numeric_divide(Decimal(sum(values)), Decimal(len(values)))


AGGREGATES: dict[str, Aggregate] = {
    "count": Aggregate("count", lambda typ: INT8, lambda typ, values: len(values)),
    "sum": Aggregate("sum", _sum_type, _sum),
    "min": Aggregate("min", lambda typ: _extreme_type(typ), lambda typ, values: min(values) if values else None),
    "max": Aggregate("max", lambda typ: _extreme_type(typ), lambda typ, values: max(values) if values else None),
    "avg": Aggregate("avg", lambda typ: FLOAT8 if typ is FLOAT8 else NUMERIC, _avg),
}
AGGREGATE_INPUTS = {"sum": "N", "avg": "N"}  # categories these accept (min/max/count: any)
