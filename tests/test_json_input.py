"""`compiler.evaluate.json_input.loads` against an independent strict decoder.

The oracle is the standard library's decoder with a hook that refuses a repeated key and keeps every integer
exact: whatever `loads` takes its one-pass orjson path or falls back, it must return exactly the oracle's value
(types included: an integer never becomes a float) or refuse exactly the documents the oracle refuses. The
documents are generated (hypothesis) to hit what the one-pass path must catch: keys repeated at any depth,
colons inside keys and values, a colon written as an escape, integers past 64 bits of either sign.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.evaluate.json_input import JsonInputError, loads


class _Repeated(ValueError):
    pass


def _refuse_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise _Repeated
    return dict(pairs)


def _oracle(data: bytes) -> Any:
    """The strict value of `data`, or _Repeated."""
    return json.loads(data, object_pairs_hook=_refuse_repeats)


def _same(left: Any, right: Any) -> bool:
    """Equal values of equal types all the way down (1 and 1.0 differ; so do True and 1)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(_same(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    return left == right


def _check(data: bytes) -> None:
    try:
        expected = _oracle(data)
    except _Repeated:
        with pytest.raises(JsonInputError) as raised:
            loads(data)
        assert raised.value.code == "duplicate_key", raised.value
        return
    assert _same(loads(data), expected), (data, loads(data), expected)


# Text pieces written out by hand (not json.dumps of a dict, which cannot hold a repeated key).
_KEYS = st.sampled_from(["a", "b", "a:b", ":", "c::", "\\u003a", "a\\u003Ab", "\\u0041", '\\"x:\\"'])
_INTEGERS = (
    st.sampled_from(
        [0, -1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, -(2**64), 10**30]
    )
    | st.integers()
)
_SCALARS = st.one_of(
    _INTEGERS.map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(['"x:y"', '":"', '"\\u003a"', '"plain"', "true", "false", "null", '"\\u00e9:"']),
)


def _object(members: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pairs = st.lists(st.tuples(_KEYS, members), max_size=4)
    return pairs.map(lambda items: "{" + ", ".join(f'"{key}": {value}' for key, value in items) + "}")


_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: _object(inner) | st.lists(inner, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
    max_leaves=12,
)


@settings(max_examples=600, deadline=None)
@given(_DOCUMENTS)
def test_loads_is_the_strict_decoder(text: str) -> None:
    _check(text.encode())


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"a": "x", "a": "y:"}',  # the dropped value's colons must not make up for its key
        '{"k": {"a": 1, "a": 1}}',
        '[{"a": 1}, {"b": {"c": [1, {"d": 2, "d": 3}]}}]',
        '{"a:": 1, "a:": 2}',
        '{"a": 1, "\\u0061": 2}',  # the same key, once escaped
        '{"\\u003a": 1, "\\u003A": 2}',
    ],
)
def test_a_repeated_key_is_refused_wherever_it_is(text: str) -> None:
    with pytest.raises(JsonInputError) as raised:
        loads(text.encode())
    assert raised.value.code == "duplicate_key"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("18446744073709551616", 2**64),
        ("-9223372036854775809", -(2**63) - 1),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        ('{"n": [1, {"m": -18446744073709551617}]}', {"n": [1, {"m": -(2**64) - 1}]}),
        ('{"a": "x:y", "b:": ":"}', {"a": "x:y", "b:": ":"}),
        ('{"\\u003a": "\\u003a"}', {":": ":"}),
        ('"a lone string: with a colon"', "a lone string: with a colon"),
        ("1e19", 1e19),
    ],
)
def test_values_are_exact(text: str, expected: Any) -> None:
    assert _same(loads(text.encode()), expected)
