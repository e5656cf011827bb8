"""Operators: which one applies to a pair of types (func_select_candidate, cut down) and what
it computes, with PostgreSQL's NULL rules and error texts."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pgtop.sql.compiled import Compiled, Context, Params, coerce, implicitly_coercible
from pgtop.sql.errors import NO_OPERATOR_HINT, NO_UNARY_OPERATOR_HINT, SqlError
from pgtop.sql.numeric import float_op, integer_op, numeric_op
from pgtop.sql.types import (
    BOOL,
    FLOAT4,
    FLOAT8,
    INTEGER_LIMITS,
    NUMERIC,
    NUMERIC_TYPES,
    PG_LSN,
    STRING_TYPES,
    TEXT,
    UNKNOWN,
    SqlType,
    as_text,
    check_integer,
)

ARITHMETIC = frozenset("+-*/%^")
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "<>": operator.ne, "<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge,
}


def no_operator(left: SqlType | None, op: str, right: SqlType, position: int) -> SqlError:
    if left is None:
        return SqlError("42883", f"operator does not exist: {op} {right}", hint=NO_UNARY_OPERATOR_HINT,
                        position=position)
    return SqlError("42883", f"operator does not exist: {left} {op} {right}", hint=NO_OPERATOR_HINT,
                    position=position)


def not_unique(text: str, position: int) -> SqlError:
    return SqlError("42725", f"operator is not unique: {text}",
                    hint="Could not choose a best candidate operator. You might need to add explicit type casts.",
                    position=position)


def unify_unknowns(left: Compiled, right: Compiled, params: Params) -> tuple[Compiled, Compiled]:
    """An unknown literal or parameter takes the type of the other side."""
    if left.type is UNKNOWN and right.type is not UNKNOWN:
        left = coerce(left, right.type, params)
    elif right.type is UNKNOWN and left.type is not UNKNOWN:
        right = coerce(right, left.type, params)
    return left, right


def _strict2(fn: Callable[[Any, Any], Any], left: Compiled, right: Compiled) -> Callable[[Context], Any]:
    lfn, rfn = left.fn, right.fn

    def run(ctx: Context) -> Any:
        a = lfn(ctx)
        if a is None:
            return None
        b = rfn(ctx)
        return None if b is None else fn(a, b)

    return run


def _result(fn: Callable[[Context], Any], typ: SqlType, left: Compiled, right: Compiled, position: int) -> Compiled:
    folded = left.literal and right.literal
    compiled = Compiled(typ, fn, min(left.position, position))  # exprLocation: the leftmost part
    if folded:
        try:
            value = fn(Context(None))
        except SqlError:
            return compiled  # "1/0" fails when it runs, not while it is prepared
        compiled.value, compiled.literal = value, True
        compiled.fn = lambda ctx: value
    return compiled


def arithmetic(op: str, left: Compiled, right: Compiled, params: Params, position: int) -> Compiled:
    if left.type is UNKNOWN and right.type is UNKNOWN:
        raise not_unique(f"unknown {op} unknown", position)
    left, right = unify_unknowns(left, right, params)
    if left.type not in NUMERIC_TYPES or right.type not in NUMERIC_TYPES:
        raise no_operator(left.type, op, right.type, position)
    typ = max(left.type, right.type, key=lambda t: t.rank)
    if op == "^":  # there is no integer ^: integers go to double precision
        typ = NUMERIC if typ is NUMERIC else FLOAT8
    if op == "%" and typ in (FLOAT4, FLOAT8):
        raise no_operator(left.type, op, right.type, position)
    left, right = coerce(left, typ, params), coerce(right, typ, params)
    if typ in INTEGER_LIMITS:
        compute: Callable[[Any, Any], Any] = lambda a, b: check_integer(integer_op(op, a, b), typ)  # noqa: E731
    elif typ is NUMERIC:
        compute = lambda a, b: numeric_op(op, a, b)  # noqa: E731
    else:
        compute = lambda a, b: float_op(op, a, b)  # noqa: E731
    return _result(_strict2(compute, left, right), typ, left, right, position)


def negate(op: str, operand: Compiled, position: int) -> Compiled:
    if operand.type is UNKNOWN:
        raise not_unique(f"{op} unknown", position)
    if operand.type not in NUMERIC_TYPES:
        raise no_operator(None, op, operand.type, position)
    if op == "+":
        return operand
    typ, fn = operand.type, operand.fn

    def run(ctx: Context) -> Any:
        value = fn(ctx)
        if value is None:
            return None
        return check_integer(-value, typ) if typ in INTEGER_LIMITS else -value

    return Compiled(typ, run, position)


def _comparison_key(typ: SqlType) -> Callable[[Any], Any] | None:
    if typ is PG_LSN:
        return lambda lsn: tuple(int(part, 16) for part in lsn.split("/"))
    return None


def compare(op: str, left: Compiled, right: Compiled, params: Params, position: int) -> Compiled:
    if left.type is UNKNOWN and right.type is UNKNOWN:
        left, right = coerce(left, TEXT, params), coerce(right, TEXT, params)
    left, right = unify_unknowns(left, right, params)
    lt, rt = left.type, right.type
    numeric = lt in NUMERIC_TYPES and rt in NUMERIC_TYPES
    strings = lt in STRING_TYPES and rt in STRING_TYPES
    if not (numeric or strings or lt == rt) or lt.category == "P":
        raise no_operator(lt, op, rt, position)
    test, key = COMPARISONS[op], _comparison_key(lt)
    compute = (lambda a, b: test(key(a), key(b))) if key else test  # type: ignore[misc]
    return _result(_strict2(compute, left, right), BOOL, left, right, position)


def concatenate(left: Compiled, right: Compiled, position: int) -> Compiled:
    if left.type not in STRING_TYPES and right.type not in STRING_TYPES:
        raise no_operator(left.type, "||", right.type, position)
    lt, rt = left.type, right.type
    return _result(_strict2(lambda a, b: as_text(lt, a) + as_text(rt, b), left, right), TEXT, left, right, position)


def like(left: Compiled, pattern: Compiled, params: Params, negated: bool, case_insensitive: bool,
         position: int) -> Compiled:
    name = "~~*" if case_insensitive else "~~"
    for side in (left, pattern):
        if side.type not in STRING_TYPES:
            raise no_operator(left.type, "!" + name if negated else name, pattern.type, position)
    left, pattern = coerce(left, TEXT, params), coerce(pattern, TEXT, params)

    def matches(value: str, pat: str) -> bool:
        return (_like_regex(pat, case_insensitive).fullmatch(value) is not None) != negated

    return _result(_strict2(matches, left, pattern), BOOL, left, pattern, position)


@lru_cache(maxsize=256)
def _like_regex(pattern: str, case_insensitive: bool) -> re.Pattern[str]:
    parts, escaped = [], False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    if escaped:
        raise SqlError("22025", "LIKE pattern must not end with escape character")
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if case_insensitive else 0))


def common_type(items: list[Compiled], what: str) -> SqlType:
    """select_common_type(): the type CASE, COALESCE and IN lists convert their values to."""
    known = [c.type for c in items if c.type is not UNKNOWN]
    if not known:
        return TEXT
    result = known[0]
    for typ in known[1:]:
        if typ == result:
            continue
        if implicitly_coercible(result, typ):
            result = typ
        elif not implicitly_coercible(typ, result):
            raise SqlError("42804", f"{what} types {result} and {typ} cannot be matched",
                           position=next(c.position for c in items if c.type == typ))
    return result


def three_valued(op: str, values: list[Any]) -> bool | None:
    """SQL's AND / OR over booleans that may be NULL."""
    decisive = op == "OR"
    if decisive in values:
        return decisive
    return None if None in values else not decisive


def boolean_argument(compiled: Compiled, params: Params, what: str) -> Compiled:
    """An argument of AND, OR, NOT or WHERE: boolean, or an unknown made boolean."""
    if compiled.type is UNKNOWN:
        return coerce(compiled, BOOL, params)
    if compiled.type is not BOOL:
        raise SqlError("42804", f"argument of {what} must be type boolean, not type {compiled.type}",
                       position=compiled.position)
    return compiled
