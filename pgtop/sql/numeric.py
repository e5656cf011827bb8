"""Arithmetic as PostgreSQL does it: integer overflow checks, C-style division, and numeric's
result scales (select_div_scale) so that 1/3.0 prints like PostgreSQL's."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation, localcontext

from pgtop.sql.errors import SqlError, division_by_zero

NUMERIC_MIN_SIG_DIGITS = 16
NUMERIC_MAX_DISPLAY_SCALE = 1000
DEC_DIGITS = 4  # numeric stores base-10000 digits
NUMERIC_CONTEXT = Context(prec=2 * NUMERIC_MAX_DISPLAY_SCALE + 100, Emax=999999, Emin=-999999)


def display_scale(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _weight_and_first_digit(value: Decimal) -> tuple[int, int]:
    """The weight of the leading base-10000 digit, and that digit."""
    if value == 0:
        return 0, 0
    weight = value.copy_abs().adjusted() // DEC_DIGITS
    with localcontext(NUMERIC_CONTEXT):
        first = int(value.copy_abs().scaleb(-DEC_DIGITS * weight))
    return weight, first


def select_div_scale(dividend: Decimal, divisor: Decimal) -> int:
    weight1, first1 = _weight_and_first_digit(dividend)
    weight2, first2 = _weight_and_first_digit(divisor)
    quotient_weight = weight1 - weight2 - (1 if first1 <= first2 else 0)
    scale = NUMERIC_MIN_SIG_DIGITS - quotient_weight * DEC_DIGITS
    scale = max(scale, display_scale(dividend), display_scale(divisor), 0)
    return min(scale, NUMERIC_MAX_DISPLAY_SCALE)


def round_to_scale(value: Decimal, scale: int) -> Decimal:
    """`value` rounded half away from zero to `scale` digits after the point, however wide
    (the default decimal context holds only 28 digits)."""
    with localcontext(NUMERIC_CONTEXT):
        return value.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)


def numeric_divide(dividend: Decimal, divisor: Decimal) -> Decimal:
    if divisor == 0:
        raise division_by_zero()
    if not (dividend.is_finite() and divisor.is_finite()):
        with localcontext(NUMERIC_CONTEXT):
            return dividend / divisor
    scale = select_div_scale(dividend, divisor)
    with localcontext(NUMERIC_CONTEXT):
        return round_to_scale(dividend / divisor, scale)


NUMERIC_MAX_WEIGHT_DIGITS = 131072  # digits before the decimal point numeric can hold


def check_numeric(value: Decimal) -> Decimal:
    if value.is_finite() and value and value.adjusted() >= NUMERIC_MAX_WEIGHT_DIGITS:
        raise SqlError("22003", "value overflows numeric format")
    return value


def numeric_op(op: str, left: Decimal, right: Decimal) -> Decimal:
    try:
        return check_numeric(_numeric_op(op, left, right))
    except (ArithmeticError, ValueError):  # decimal's Overflow, InvalidOperation
        raise SqlError("22003", "value overflows numeric format") from None


def _numeric_op(op: str, left: Decimal, right: Decimal) -> Decimal:
    with localcontext(NUMERIC_CONTEXT):
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if op == "/":
            return numeric_divide(left, right)
        if op == "%":
            if right == 0:
                raise division_by_zero()
            return left % right  # the sign follows the dividend, as in PostgreSQL
        return numeric_power(left, right)


def numeric_power(base: Decimal, exponent: Decimal) -> Decimal:
    _check_power(float(base), float(exponent))
    if base and abs(float(exponent) * math.log10(abs(float(base)) or 1e-300)) > NUMERIC_MAX_WEIGHT_DIGITS:
        raise SqlError("22003", "value overflows numeric format")
    with localcontext(NUMERIC_CONTEXT):
        try:
            result = base**exponent
        except InvalidOperation:
            raise SqlError("2201F", "invalid argument for power function") from None
    scale = NUMERIC_MIN_SIG_DIGITS - (result.adjusted() if result else 0)
    scale = max(scale, display_scale(base), display_scale(exponent), 0)
    return round_to_scale(result, min(scale, NUMERIC_MAX_DISPLAY_SCALE))


def _check_power(base: float, exponent: float) -> None:
    if base == 0 and exponent < 0:
        raise SqlError("2201F", "zero raised to a negative power is undefined")
    if base < 0 and exponent != math.floor(exponent):
        raise SqlError("2201F", "a negative number raised to a non-integer power yields a complex result")


def integer_op(op: str, left: int, right: int) -> int:
    """+ - * / % on integers (the caller checks the result's range)."""
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0:
        raise division_by_zero()
    quotient = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)
    return quotient if op == "/" else left - right * quotient


def float_op(op: str, left: float, right: float) -> float:
    if op == "+":
        result = left + right
    elif op == "-":
        result = left - right
    elif op == "*":
        result = left * right
    elif op == "/":
        if right == 0:
            raise division_by_zero()
        result = left / right
    else:
        _check_power(left, right)
        try:
            result = math.pow(left, right)
        except OverflowError:
            result = math.inf
    if math.isinf(result) and not (math.isinf(left) or math.isinf(right)):
        raise SqlError("22003", "value out of range: overflow")
    return result
