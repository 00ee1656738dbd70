"""JSON text -> the values an input record is made of, strictly: what the CLI and the HTTP API decode with.

Input: bytes of one JSON document. Output: its value, with every integer
exact (never rounded to a double on the way in, so the input validator sees
18446744073709551616 as the whole number it is and refuses it as it refuses
any number past ±2**53), or a `JsonInputError` that says what and where: a
syntax error at its line and column, NaN or Infinity, or a key that appears
twice in one object (last-wins would silently drop a value). A UTF-8 byte
order mark at the start is accepted, as in policy and list files.

One pass in the common case: orjson decodes (and checks the syntax), then a
walk of the result proves it is what the strict decoder would return — no key
was dropped (every colon of the text is accounted for by a key or by a
character of a string) and no number could have been an integer past 64 bits
(orjson turns those into floats). A document the walk cannot vouch for is
decoded again by the standard library, which finds the duplicate key by name
and keeps every integer exact.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from dsl.errors import DecideError

_BOM = b"\xef\xbb\xbf"


class JsonInputError(DecideError):
    """A JSON document that cannot be taken as input; `line` and `column` are 1-based (0 when unknown)."""

    def __init__(self, message: str, line: int = 0, column: int = 0, code: str = "invalid_json") -> None:
        self.message, self.line, self.column, self.code = message, line, column, code
        super().__init__(f"{line}:{column}: {message}" if line else message)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _constant(name: str) -> Any:
    raise ValueError(name)


def strip_bom(data: bytes) -> bytes:
    return data[len(_BOM) :] if data.startswith(_BOM) else data


_INEXACT_FLOAT = float(2**63)  # orjson keeps integers exact up to 2**64; a float this large may have been one


def _vouched(value: Any, data: bytes) -> bool:
    """Whether orjson's `value` of `data` is what the strict decoder returns: no duplicate key, no big integer.

    Every colon outside a string follows a key, so the text's colons are its keys plus the colons inside its
    strings. A dropped duplicate key takes a colon (and its value's strings) out of the decoded value, so the
    decoded keys and string colons fall short of the text's colons exactly when a key appeared twice — unless a
    colon was written as an escape (``\\u003a``), which is left to the strict decoder.
    """
    if b"\\u003" in data:
        return False
    accounted = 0
    pending: list[Any] = [[value]]  # containers whose members are still to be checked
    while pending:
        container = pending.pop()
        if type(container) is dict:
            accounted += len(container)
            names = "".join(container)  # one search over all the keys: a colon in a key is rare
            if ":" in names:
                accounted += names.count(":")
            members = container.values()
        else:
            members = container
        for member in members:
            kind = type(member)
            if kind is str:
                if ":" in member:
                    accounted += member.count(":")
            elif kind is dict or kind is list:
                pending.append(member)
            elif kind is float and not -_INEXACT_FLOAT < member < _INEXACT_FLOAT:
                return False
    return accounted == data.count(b":")


def loads(data: bytes) -> Any:
    """Decode one JSON document strictly (see the module docstring)."""
    data = strip_bom(data)
    try:
        value = orjson.loads(data)  # the fast, strict syntax check, with precise positions
    except orjson.JSONDecodeError as exc:
        rest = data[exc.pos : exc.pos + 9]
        hint = ""
        if rest.lstrip(b"-").startswith((b"NaN", b"Infinity")):
            hint = " (NaN and Infinity are not valid JSON numbers)"
        elif "infinity" in exc.msg:
            hint = " (the number is too large)"
        raise JsonInputError(f"invalid JSON: {exc.msg}{hint}", exc.lineno, exc.colno) from None
    if _vouched(value, data):
        return value
    try:
        return json.loads(data, object_pairs_hook=_object, parse_constant=_constant)
    except _DuplicateKey as exc:
        raise JsonInputError(
            f'the key "{exc.key}" appears more than once in one object (which value is meant?)',
            code="duplicate_key",
        ) from None
    except (ValueError, RecursionError) as exc:  # orjson accepted it, so this is only ever a nesting limit
        raise JsonInputError(f"invalid JSON: {exc}") from None
