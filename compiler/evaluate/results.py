"""What every evaluator shares around the evaluation itself: the date, the named lists, the result object.

Input: the caller's `as_of`, `lists` and the evaluator's outputs and trace.
Output: the evaluation date, the lists as frozen sets of typed members (or
the errors of spec §6), and the result object of spec §6.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from typing import Any

from compiler.evaluate.validate_input import convert_value
from compiler.values import ValueProblem, parse_date, to_json
from dsl import ast
from dsl.errors import EvaluationError, FieldError, InputError


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
        raise EvaluationError(f"as_of: {exc}") from None


class PreparedLists(dict):
    """Named lists already checked and frozen for one policy; pass it as `lists=` to skip the work per call."""


def prepare_lists(store_lists: Mapping[str, str], lists: Mapping[str, Iterable[Any]] | None) -> PreparedLists:
    """Check and freeze the members of every store list; all must be supplied (an empty list is fine)."""
    if isinstance(lists, PreparedLists):
        return lists
    supplied = PreparedLists()
    for name, members in (lists or {}).items():
        if name not in store_lists:
            known = ", ".join(store_lists) or "none"
            raise EvaluationError(f"the policy has no list '{name}' to supply (its lists: {known})")
        supplied[name] = frozenset(_list_members(name, store_lists[name], members))
    missing = [name for name in store_lists if name not in supplied]
    if missing:
        names = ", ".join(f"'{name}'" for name in missing)
        raise EvaluationError(f"the members of list {names} were not supplied; supply them (an empty list is allowed)")
    return supplied


def _list_members(name: str, element: str, members: Iterable[Any]) -> list[Any]:
    if isinstance(members, (str, bytes, Mapping)):
        raise InputError([FieldError(f"lists.{name}", "wrong_type", "expected a list of members")])
    converted, errors = [], []
    for position, member in enumerate(members, start=1):
        try:
            converted.append(convert_value(ast.TypeRef(element), member))
        except ValueError as exc:
            errors.append(FieldError(f"lists.{name}", "wrong_type", f"member {position}: {exc}"))
    if errors:
        raise InputError(errors[:20])
    return converted


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
