"""Runtime value helpers shared by every evaluator: rounding, dates, JSON rendering.

Input: Python values of the policy types (None is *missing*).
Output: the spec's results for `round`, `years_between`, `days_between`,
`date`, and JSON-ready values. Kept free of policy knowledge so the compiled
fast path can call exactly the same functions.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from decimal import ROUND_HALF_UP, Decimal, localcontext

MAX_EXACT_INT = 2**53
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


class ValueProblem(Exception):
    """A value the spec cannot represent (overflow, a malformed date string)."""


def parse_date(text: str) -> _dt.date:
    """`YYYY-MM-DD` -> date; anything else raises ValueProblem."""
    if not isinstance(text, str) or not _DATE_RE.fullmatch(text):
        raise ValueProblem(f'"{text}" is not a date in the form YYYY-MM-DD')
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        raise ValueProblem(f'"{text}" is not a real calendar date') from None


def round_half_away(value: float | int, digits: int) -> float:
    """Round at `digits` decimals (negative: tens, hundreds...), halves away from zero.

    Rounds the number's shortest decimal form (its repr), so round(2.675, 2)
    is 2.68 as an analyst computing by hand expects, not 2.67 as the binary
    double 2.67499999... would give.
    """
    exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if exact.as_tuple().exponent >= -digits:  # already has no more decimals than asked
        return check_number(float(value))
    if digits < -400:
        return 0.0
    with localcontext() as context:
        context.prec = 1000
        rounded = exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return check_number(float(rounded))


def years_between(start: _dt.date, end: _dt.date) -> int:
    """Whole years from start to end, as an age: a 29 February birthday counts from 1 March in common years."""
    if end < start:
        return -years_between(end, start)
    years = end.year - start.year
    if (end.month, end.day) < (start.month, start.day):
        years -= 1
    return years


def days_between(start: _dt.date, end: _dt.date) -> int:
    return (end - start).days


def check_number(value: float) -> float:
    if math.isinf(value) or math.isnan(value):
        raise ValueProblem("the result is too large to represent (number overflow)")
    return value


def check_int(value: int) -> int:
    if -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
        return value
    raise ValueProblem(f"the whole-number result {value} is outside the supported range of ±{MAX_EXACT_INT}")


def to_json(value):
    """A policy value as JSON: dates as YYYY-MM-DD, integral floats as integers, lists and records recursively."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if value.is_integer() and abs(value) <= MAX_EXACT_INT:
            return int(value)
        return value
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    raise TypeError(f"not a policy value: {value!r}")  # pragma: no cover
