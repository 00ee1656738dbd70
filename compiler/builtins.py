"""Built-in functions of spec §4: their type rules and their implementations.

Input: argument types (at check time) or argument values (at run time; None
is missing). Output: the result type, or a message saying which argument is
wrong; the result value. Every function but `coalesce` gives missing when an
argument is missing (spec §5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from compiler import types as T
from compiler.evaluate import messages
from compiler.types import Type
from compiler.values import ValueProblem, check_int, days_between, parse_date, round_half_away, years_between


class SignatureError(Exception):
    """The arguments do not fit the function; the message says how."""


@dataclass(frozen=True)
class Builtin:
    name: str
    usage: str
    result_type: Callable[[Sequence[Type]], Type]
    implementation: Callable[..., object]
    propagates_missing: bool = True


def _arity(args: Sequence[Type], low: int, high: int | None, usage: str) -> None:
    if len(args) < low or (high is not None and len(args) > high):
        raise SignatureError(f"wrong number of arguments; use {usage}")


def _numeric(args: Sequence[Type], usage: str, *, dates_ok: bool = False) -> Type:
    if all(a.is_numeric or a.is_error for a in args):
        return T.NUMBER if any(a.kind == "number" for a in args) else T.INT
    if dates_ok and all(a.kind in ("date", "error") for a in args):
        return T.DATE
    wanted = "numbers or dates" if dates_ok else "numbers"
    bad = next(a for a in args if not (a.is_numeric or a.is_error))
    raise SignatureError(f"{usage} takes {wanted}, not {bad}")


def _min_max_type(args):
    _arity(args, 1, None, "min(a, b, ...) / max(a, b, ...)")
    return _numeric(args, "min/max", dates_ok=True)


def _abs_type(args):
    _arity(args, 1, 1, "abs(x)")
    return _numeric(args, "abs(x)")


def _round_type(args):
    _arity(args, 2, 2, "round(x, n) where n is the number of decimals")
    _numeric(args[:1], "round(x, n)")
    if args[1].kind not in ("int", "error"):
        raise SignatureError(f"round(x, n) needs a whole number n of decimals, not {args[1]}")
    return T.NUMBER


def _floor_type(args):
    _arity(args, 1, 1, "floor(x) / ceil(x)")
    _numeric(args, "floor/ceil")
    return T.INT


def _clamp_type(args):
    _arity(args, 3, 3, "clamp(x, low, high)")
    return _numeric(args, "clamp(x, low, high)")


def _coalesce_type(args):
    _arity(args, 1, None, "coalesce(a, b, ...)")
    result = args[0]
    for arg in args[1:]:
        unified = T.unify(result, arg)
        if unified is None:
            raise SignatureError(f"coalesce needs arguments of one type; got {result} and {arg}")
        result = unified
    return result


def _dates_type(name):
    def rule(args):
        _arity(args, 2, 2, f"{name}(from_date, to_date)")
        for arg in args:
            if arg.kind not in ("date", "error"):
                raise SignatureError(f"{name} takes two dates, not {arg}")
        return T.INT

    return rule


def _len_type(args):
    _arity(args, 1, 1, "len(x)")
    if args[0].kind not in ("string", "list", "error"):
        raise SignatureError(f"len takes a string or a list, not {args[0]}")
    return T.INT


def _string_type(name, result):
    def rule(args):
        count = 1 if result is T.STRING else 2
        _arity(args, count, count, f"{name}(text)" if count == 1 else f"{name}(text, part)")
        for arg in args:
            if arg.kind not in ("string", "error"):
                raise SignatureError(f"{name} takes strings, not {arg}")
        return result

    return rule


def _top_type(args):
    _arity(args, 2, 2, "top(list, n)")
    if args[0].kind not in ("list", "error"):
        raise SignatureError(f"top takes a list first, not {args[0]}")
    if args[1].kind not in ("int", "error"):
        raise SignatureError(f"top(list, n) needs a whole number n, not {args[1]}")
    return args[0]


def _date_type(args):
    _arity(args, 1, 1, 'date("YYYY-MM-DD")')
    if args[0].kind not in ("string", "error"):
        raise SignatureError(f"date takes a string, not {args[0]}")
    return T.DATE


# ---------------------------------------------------------------- implementations


def _min(*values):
    return min(values)


def _max(*values):
    return max(values)


def _floor(value):
    return check_int(math.floor(value))


def _ceil(value):
    return check_int(math.ceil(value))


def _clamp(value, low, high):
    if low > high:
        raise ValueProblem(messages.clamp_bounds_inverted(low, high))
    return min(max(value, low), high)


def _coalesce(*values):
    return next((v for v in values if v is not None), None)


def _top(values, count):
    return list(values[: max(count, 0)])


def _date(text):
    return parse_date(text)


def _round(value, digits):
    return round_half_away(value, digits)


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        Builtin("min", "min(a, b, ...)", _min_max_type, _min),
        Builtin("max", "max(a, b, ...)", _min_max_type, _max),
        Builtin("abs", "abs(x)", _abs_type, abs),
        Builtin("round", "round(x, n)", _round_type, _round),
        Builtin("floor", "floor(x)", _floor_type, _floor),
        Builtin("ceil", "ceil(x)", _floor_type, _ceil),
        Builtin("clamp", "clamp(x, low, high)", _clamp_type, _clamp),
        Builtin("coalesce", "coalesce(a, b, ...)", _coalesce_type, _coalesce, propagates_missing=False),
        Builtin("days_between", "days_between(d1, d2)", _dates_type("days_between"), days_between),
        Builtin("years_between", "years_between(d1, d2)", _dates_type("years_between"), years_between),
        Builtin("len", "len(x)", _len_type, len),
        Builtin("lower", "lower(s)", _string_type("lower", T.STRING), str.lower),
        Builtin("upper", "upper(s)", _string_type("upper", T.STRING), str.upper),
        Builtin("contains", "contains(s, part)", _string_type("contains", T.BOOL), lambda s, part: part in s),
        Builtin("starts_with", "starts_with(s, prefix)", _string_type("starts_with", T.BOOL), str.startswith),
        Builtin("top", "top(list, n)", _top_type, _top),
        Builtin("date", 'date("YYYY-MM-DD")', _date_type, _date),
    )
}
