"""What every evaluator shares around the evaluation itself: the date and the result object.

Input: the caller's `as_of`, and the evaluator's outputs and trace. Output:
the evaluation date, and the result object of spec §6. (Named lists are in
`compiler/evaluate/lists.py`.)
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from compiler.values import ValueProblem, parse_date, to_json
from dsl.errors import EvaluationError


def resolve_as_of(as_of: _dt.date | str | None) -> _dt.date:
    """The evaluation date: `as_of` (a date or YYYY-MM-DD), else the current UTC date."""
    if as_of is None:
        return _dt.datetime.now(_dt.UTC).date()
    if isinstance(as_of, _dt.datetime):
        return as_of.date()
    if isinstance(as_of, _dt.date):
        return as_of
    try:
        return parse_date(as_of)
    except ValueProblem as exc:
        raise EvaluationError(f"as_of: {exc}", code="invalid_as_of") from None


_EXACT = float(2**53)


def _json_value(value: Any) -> Any:
    """`to_json` with the common scalars first (this runs for every output of every decision)."""
    kind = type(value)
    if kind is float:
        return int(value) if value.is_integer() and -_EXACT <= value <= _EXACT else value
    if kind is str or kind is int or kind is bool or value is None:
        return value
    return to_json(value)


def build_result(
    name: str, outputs: dict[str, Any], trace_entries: list[str], *, trace: bool, version: int | None
) -> dict[str, Any]:
    """The result object of spec §6."""
    result: dict[str, Any] = {"policy": name}
    if version is not None:
        result["version"] = version
    result["outputs"] = {key: _json_value(value) for key, value in outputs.items()}
    if trace:
        result["trace"] = list(trace_entries)
    return result
