"""Input validation of spec §6: a raw record in, typed values out, every problem reported at once.

Input: the policy's `input:` fields and a record (a dict decoded from JSON,
or built by a caller). Output: a dict of Python values of the declared types
(ints, floats, bools, strings, dates, lists; None for a missing optional
field), or an `InputError` listing each field's problem. Values of `pii`
fields are never echoed in messages.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

from compiler.check.check_types import allowed_values, describe_constraint, value_allowed
from compiler.check.fold_constants import show_value
from compiler.values import MAX_EXACT_INT, ValueProblem, parse_date
from dsl import ast
from dsl.errors import FieldError, InputError

_JSON_TYPE_NAMES = {
    bool: "true/false",
    int: "a number",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def validate_input(fields: tuple[ast.Field, ...], record: Any, *, ignore_extra: bool = False) -> dict[str, Any]:
    """Check `record` against the declared fields; return the typed values or raise `InputError`."""
    return InputValidator(fields).validate(record, ignore_extra=ignore_extra)


class InputValidator:
    """The checks of one `input:` section, prepared once (constraints folded) and applied to many records."""

    def __init__(self, fields: tuple[ast.Field, ...]) -> None:
        self.fields = fields
        self.declared = frozenset(f.name for f in fields)
        # (name, type name, type ref, optional, pii, constraint) per field; plain numbers take a fast path.
        self.plans = [(f.name, f.type.name, f.type, f.optional, f.pii, allowed_values(f)) for f in fields]

    def validate(self, record: Any, *, ignore_extra: bool = False) -> dict[str, Any]:
        if type(record) is not dict and _is_pandas_row(record):
            record = pandas_row(record)
        if type(record) is not dict and not isinstance(record, dict):
            raise InputError([FieldError("", "not_an_object", f"the input must be a JSON object, not {_kind(record)}")])
        errors: list[FieldError] = []
        values: dict[str, Any] = {}
        for name, type_name, type_ref, optional, pii, constraint in self.plans:
            raw = record.get(name)
            if raw is None:
                if optional:
                    values[name] = None
                else:
                    what = "is null" if name in record else "is missing"
                    errors.append(FieldError(name, "required", f"required field {what}"))
                continue
            raw_type = type(raw)
            if type_name == "number" and (raw_type is float or raw_type is int) and -_BIG < raw < _BIG:
                value: Any = float(raw)  # the common case: a finite, modest number
            elif type_name == "int" and raw_type is int and -MAX_EXACT_INT <= raw <= MAX_EXACT_INT:
                value = raw
            elif type_name == "string" and raw_type is str:
                value = raw
            else:
                try:
                    value = convert_value(type_ref, raw, reveal=not pii)
                except _Invalid as exc:
                    errors.append(FieldError(name, exc.code, exc.message))
                    continue
            if constraint is not None and not value_allowed(constraint, value):
                shown = "the value" if pii else show_value(value)
                errors.append(
                    FieldError(
                        name, "not_allowed", f"{shown} is not allowed; it must be {describe_constraint(constraint)}"
                    )
                )
                continue
            values[name] = value
        if not ignore_extra:
            for key in record:
                if key not in self.declared:
                    errors.append(
                        FieldError(
                            str(key), "unknown_field", "unknown field (not declared in the policy's input section)"
                        )
                    )
        if errors:
            raise InputError(errors)
        return values


# Numbers below this magnitude convert to a double exactly enough to skip the slow checks (2**53).
_BIG = float(2**53)


class _Invalid(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def convert_value(type_ref: ast.TypeRef, raw: Any, *, reveal: bool = True) -> Any:
    """One JSON value -> the Python value of a declared type, or raise _Invalid.

    With reveal=False (a `pii` field) messages describe the value's kind but never show it.
    """
    if type_ref.name == "list":
        if not isinstance(raw, list):
            raise _Invalid(
                "wrong_type", f"expected a list of {type_ref.element or 'records'}, got {_kind(raw, reveal)}"
            )
        element = ast.TypeRef(type_ref.element or "string")
        converted = []
        for position, item in enumerate(raw):
            if item is None:
                raise _Invalid("wrong_type", f"item {position + 1} of the list is null")
            try:
                converted.append(convert_value(element, item, reveal=reveal))
            except _Invalid as exc:
                raise _Invalid(exc.code, f"item {position + 1} of the list: {exc.message}") from None
        return converted
    return _convert_scalar(type_ref.name, raw, reveal)


def _convert_scalar(type_name: str, raw: Any, reveal: bool) -> Any:
    if type_name == "bool":
        if isinstance(raw, bool):
            return raw
        raise _Invalid("wrong_type", f"expected true or false, got {_kind(raw, reveal)}")
    if type_name == "string":
        if isinstance(raw, str):
            return raw
        raise _Invalid("wrong_type", f"expected a string, got {_kind(raw, reveal)}")
    if type_name == "date":
        if isinstance(raw, _dt.date) and not isinstance(raw, _dt.datetime):
            return raw
        if not isinstance(raw, str):
            raise _Invalid("wrong_type", f'expected a date "YYYY-MM-DD", got {_kind(raw, reveal)}')
        try:
            return parse_date(raw)
        except ValueProblem as exc:
            raise _Invalid("bad_date", str(exc) if reveal else "not a valid date YYYY-MM-DD") from None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise _Invalid(
            "wrong_type", f"expected {'a whole number' if type_name == 'int' else 'a number'}, got {_kind(raw, reveal)}"
        )
    if isinstance(raw, float) and not math.isfinite(raw):
        raise _Invalid("not_finite", "NaN and Infinity are not numbers a policy can use")
    if type_name == "int":
        if isinstance(raw, float):
            if not raw.is_integer():
                raise _Invalid("not_integer", f"expected a whole number, got {_kind(raw, reveal)}")
            raw = int(raw)
        if abs(raw) > MAX_EXACT_INT:
            raise _Invalid("out_of_range", f"the number is too large (at most ±{MAX_EXACT_INT})")
        return raw
    # One rule for every number, however it is written (24, 2.4e1, 18446744073709551616): at most ±2**53.
    # Past it a double cannot hold every whole number, and rounding silently could change a decision.
    if abs(raw) > MAX_EXACT_INT:
        raise _Invalid("out_of_range", f"the number is too large (at most ±{MAX_EXACT_INT})")
    return float(raw)


def _kind(raw: Any, reveal: bool = True) -> str:
    if not reveal:
        return _JSON_TYPE_NAMES.get(type(raw), "a value")
    if isinstance(raw, str):
        return f'the string "{raw[:40]}"' + ("..." if len(raw) > 40 else "")
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, float)):
        return f"the number {raw!r}"
    return _JSON_TYPE_NAMES.get(type(raw), type(raw).__name__)


def _is_pandas_row(record: Any) -> bool:
    return type(record).__name__ == "Series" and type(record).__module__.startswith("pandas")


def pandas_row(row: Any) -> dict[str, Any]:
    """A pandas row (a Series) as a record, meaning what `evaluate_batch` makes of the same row of a DataFrame:
    NaN, NaT and None are missing values, numpy scalars their Python values, and a timestamp at midnight a
    date (any other time of day stays a timestamp, which a `date` field refuses)."""
    record: dict[str, Any] = {}
    for name, value in row.items():
        if value is None or (isinstance(value, float) and math.isnan(value)) or type(value).__name__ == "NaTType":
            record[name] = None
            continue
        if hasattr(value, "item") and type(value).__module__ == "numpy":
            value = value.item()
            if isinstance(value, float) and math.isnan(value):
                record[name] = None
                continue
        if isinstance(value, _dt.datetime):
            value = value.date() if value.time() == _dt.time() and value.tzinfo is None else value
        record[name] = value
    return record


def mask_pii(value: str) -> str:
    """Spec §3: all but the last 4 characters become `*`."""
    return "*" * max(len(value) - 4, 0) + value[-4:]
