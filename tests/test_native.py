"""The kernel's GIL-free path against the Python path and the reference interpreter.

The GIL-free path (`Runner.evaluate_native`, `Runner.native_rows`) runs a row
without Python objects and bails to the Python path on anything it does not
run itself. These tests check three things: where it decides, it decides
exactly as the reference interpreter; it does decide the rows it is meant to
(a path that always bailed would pass every other test); and a row it bails
on comes out exactly as `evaluate` gives it, error message included.
"""

from __future__ import annotations

import datetime as _dt
from unittest import mock

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from compiler import EvaluationError, InputError, compile_file, compile_source
from compiler.evaluate import arrow_columns as columns
from compiler.evaluate import batch, implementation
from compiler.testcases import load_cases
from tests.conftest import POLICIES
from tests.strategies import compiled_or_discard, input_records, policies_with_text
from tests.test_batch import normalise, row_by_row

# The GIL-free path is the Cython kernel's: skipped under DECIDE_PUREPYTHON=1; a kernel that is not built is a
# missing component (tests/components.py).
pytestmark = pytest.mark.usefixtures("cython_kernel")

AS_OF = _dt.date(2026, 11, 21)
NATIVE_POLICIES = ["consumer_loan", "credit_line", "early_collections"]  # cross_sell has a collect table


def _reference(policy, record, lists, as_of=AS_OF):
    try:
        result = policy.evaluate(record, as_of=as_of, lists=lists, engine="reference")
    except (InputError, EvaluationError) as exc:
        return ("error", str(exc))
    return ("result", result["outputs"], result["trace"])


def _native(policy, record, lists, as_of=AS_OF):
    """The GIL-free path's result shaped like `_reference`, or None when it bails."""
    values = policy.compiled.validator.validate(record)
    native = policy.compiled.evaluator.kernel.evaluate_native(values, as_of, policy.prepare_lists(lists))
    if native is None:
        return None
    outputs, trace = native
    from compiler.evaluate.results import build_result

    result = build_result(policy.name, outputs, trace, trace=True, version=None)
    return ("result", result["outputs"], result["trace"])


@pytest.mark.parametrize("name", NATIVE_POLICIES)
def test_example_cases_are_decided_natively_as_the_reference_does(name: str) -> None:
    policy = compile_file(POLICIES / f"{name}.policy")
    decided = 0
    for case in load_cases(POLICIES / f"{name}.tests.json"):
        if "error" in case["expect"]:
            continue
        lists = {n: [] for n in policy.store_lists} | case.get("lists", {})
        as_of = _dt.date.fromisoformat(case.get("as_of", "2026-11-21"))
        native = _native(policy, case["input"], lists, as_of)
        if native is not None:
            decided += 1
            assert native == _reference(policy, case["input"], lists, as_of), case["name"]
    assert decided >= 15


def test_cross_sell_never_takes_the_gil_free_path() -> None:
    policy = compile_file(POLICIES / "cross_sell.policy")
    assert not policy.compiled.evaluator.native


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_generated_policies_native_equals_reference(data) -> None:
    _, text = data.draw(policies_with_text())
    policy = compiled_or_discard(text)
    assume(policy.compiled.evaluator.native)
    lists = {name: data.draw(st.lists(st.sampled_from(["a", "b", ""]), max_size=2)) for name in policy.store_lists}
    assume(all(element == "string" for element in policy.store_lists.values()) or not policy.store_lists)
    for _ in range(3):
        record = data.draw(input_records(policy.ast))
        try:
            policy.compiled.validator.validate(record)
        except InputError:
            continue
        native = _native(policy, record, lists)
        if native is not None:
            assert native == _reference(policy, record, lists), text


# ----------------------------------------------------------------------------- batches


def _loan_table(rows: int) -> tuple[object, pa.Table]:
    policy = compile_file(POLICIES / "consumer_loan.policy")
    cases = [c["input"] for c in load_cases(POLICIES / "consumer_loan.tests.json") if "error" not in c["expect"]]
    return policy, pa.Table.from_pylist([cases[i % len(cases)] for i in range(rows)])


def test_batch_without_trace_runs_natively_and_equals_single(monkeypatch) -> None:
    policy, table = _loan_table(300)
    lists = {"blacklist": ["XX999999", "AB123456"]}
    bailed = []
    original = batch._run_python
    monkeypatch.setattr(
        batch,
        "_run_python",
        lambda runner, frame, v, m, t, rows, *rest: (
            bailed.append(len(rows)) or original(runner, frame, v, m, t, rows, *rest)
        ),
    )
    result = policy.evaluate_batch(table, as_of="2026-11-21", lists=lists)
    assert bailed == [0]  # every row decided on the GIL-free path
    expected = row_by_row(policy, table.to_pylist(), as_of="2026-11-21", lists=lists)
    assert normalise(result.to_pylist()) == normalise([{k: e[k] for k in result.column_names} for e in expected])


def test_chunks_on_threads_equal_one_thread(monkeypatch) -> None:
    monkeypatch.setattr(batch, "CHUNK_ROWS", 7)
    policy, table = _loan_table(100)
    options = {"as_of": "2026-11-21", "lists": {"blacklist": ["XX999999"]}}
    one = policy.evaluate_batch(table, threads=1, **options)
    assert policy.evaluate_batch(table, threads=2, **options).equals(one)
    assert normalise(one.to_pylist()) == normalise(
        [{k: e[k] for k in one.column_names} for e in row_by_row(policy, table.to_pylist(), **options)]
    )


BAILING = """policy bails:
    title: "Rows that only the Python path can finish"

input:
    n: int
    code: string optional

output:
    level: string in {"low", "high"} = "low"
    total: int = 0
    label: string optional

let big = n * 1_000_000_000
let span = if n == 15 then clamp(n, n + 1, n) else n

rules all_codes (all):
    rule A:
        when n == 3
        then level = if n == 3 then "medium" else "low"
    rule B:
        when n >= 0
        then total = big * 10_000_000, reason "B"
    rule C:
        when code is not missing
        then label = upper(code), reason code
"""


@pytest.mark.parametrize(
    ("record", "bails"),
    [
        ({"n": -5}, False),  # decided natively: no band row, nothing fires
        ({"n": -5, "code": "x1"}, True),  # upper() is an escape to Python
        ({"n": 15}, True),  # clamp's low bound above its high bound: an error only Python words
        ({"n": 3}, True),  # "medium" is not an allowed level
        ({"n": 5}, True),  # int arithmetic beyond 2**53
    ],
)
def test_rows_that_bail_come_out_as_evaluate_gives_them(record, bails: bool) -> None:
    policy = compile_source(BAILING, "bails.policy")
    assert (_native(policy, record, {}) is None) == bails
    table = pa.Table.from_pylist([record, {"n": -1}], schema=pa.schema([("n", pa.int64()), ("code", pa.string())]))
    result = policy.evaluate_batch(table, as_of="2026-11-21")
    expected = row_by_row(policy, table.to_pylist(), as_of="2026-11-21")
    assert normalise(result.to_pylist()) == normalise([{k: e[k] for k in result.column_names} for e in expected])


def test_more_reasons_than_the_native_buffer_holds() -> None:
    from compiler._fastpath import NATIVE_REASONS_CAPACITY

    count = NATIVE_REASONS_CAPACITY + 6
    rules = "".join(f'    rule R{i}:\n        when n >= {i}\n        then reason "C{i}"\n' for i in range(count))
    text = f'policy many:\n    title: "t"\n\ninput:\n    n: int\n\noutput:\n    o: int = 0\n\nrules r (all):\n{rules}'
    policy = compile_source(text, "many.policy")
    few, lots = {"n": 3}, {"n": count}
    assert _native(policy, few, {}) is not None and _native(policy, lots, {}) is None
    result = policy.evaluate_batch(pa.Table.from_pylist([few, lots]), as_of="2026-11-21")
    assert result.column("reasons").to_pylist() == [
        ["C0", "C1", "C2", "C3"],
        [f"C{i}" for i in range(count)],
    ]


def test_native_rows_rejects_arrays_that_do_not_fit() -> None:
    policy, _ = _loan_table(1)
    runner = policy.compiled.evaluator
    n_inputs, n_outputs, rows = len(policy.inputs), len(policy.outputs), 4
    arrays = dict(
        inputs=np.zeros((n_inputs, rows)),
        missing=np.ones((n_inputs, rows), dtype=np.uint8),
        today=np.zeros(rows),
        status=np.zeros(rows, dtype=np.uint8),
        out=np.zeros((n_outputs, rows)),
        out_missing=np.ones((n_outputs, rows), dtype=np.uint8),
        members=np.zeros((2, 0), dtype=np.uint8),
    )
    args = list(arrays.values())
    with pytest.raises(ValueError, match="do not fit"):
        runner.native_rows(*args, 0, rows + 1, np.zeros(rows, dtype=np.int32), np.zeros(999, np.int32), 10)
    with pytest.raises(ValueError, match="do not fit"):
        runner.native_rows(*args, 0, rows, np.zeros(rows, dtype=np.int32), np.zeros(3, np.int32), 10)


# ----------------------------------------------------------------------------- column encoding


def _encoded(table, policy, use_kernel: bool):
    kernel = implementation.column_encoder() if use_kernel else None
    with mock.patch.object(implementation, "column_encoder", lambda: kernel):
        frame = policy.compiled.evaluator.new_frame(policy.prepare_lists({n: [] for n in policy.store_lists}))
        return columns.encode_columns(table, policy.compiled.validator, policy.compiled.arrays, frame)


NUMBERS = """policy numbers:
    title: "t"

input:
    count: int in [0..100]
    amount: number optional
    rate: number in (0..1]
    opened: date optional in [date("2000-01-01")..date("2030-12-31")]

output:
    o: int = 0
"""


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_the_kernels_column_encoder_equals_the_numpy_one(data) -> None:
    policy = compile_source(NUMBERS, "numbers.policy")
    n = data.draw(st.integers(1, 12))
    edge = st.sampled_from([0.0, 1.0, -1.0, 0.5, 100.0, 100.5, 2.0**53, -(2.0**53), float("nan"), float("inf"), 1e300])

    def column(values_strategy, arrow_type):
        values = data.draw(st.lists(st.one_of(st.none(), values_strategy), min_size=n + 2, max_size=n + 2))
        array = pa.array(values, type=arrow_type)
        start = data.draw(st.integers(0, 2))
        return pa.chunked_array([array.slice(start, 1), array.slice(start + 1, n - 1)]) if n > 1 else array.slice(0, 1)

    int_type, ints = data.draw(
        st.sampled_from(
            [
                (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
                (pa.int32(), st.integers(-130, 130)),
                (pa.int8(), st.integers(-128, 127)),
                (pa.uint16(), st.integers(0, 300)),
                (pa.float64(), edge),
            ]
        )
    )
    table = pa.table(
        {
            "count": column(ints, int_type),
            "amount": column(st.one_of(edge, st.floats(allow_nan=True)), pa.float64()),
            "rate": column(st.one_of(edge, st.floats(0, 2)), data.draw(st.sampled_from([pa.float64(), pa.float32()]))),
            "opened": column(st.dates(_dt.date(1990, 1, 1), _dt.date(2040, 1, 1)), pa.date32()),
        }
    )
    kernel = _encoded(table, policy, True)
    numpy = _encoded(table, policy, False)
    for got, want in zip(kernel, numpy):
        assert np.array_equal(got, want, equal_nan=got.dtype.kind == "f")


def test_encoded_batches_keep_single_record_errors() -> None:
    """The column checks only vouch for rows; the validator words every error, as for one record."""
    policy = compile_source(NUMBERS, "numbers.policy")
    rows = [
        {"count": 5, "rate": 0.5},
        {"count": 101, "rate": 0.5},
        {"count": 5, "rate": 0.0},
        {"count": None, "rate": 0.5},
        {"count": 5, "rate": float("nan")},
    ]
    table = pa.Table.from_pylist(rows, schema=pa.schema([("count", pa.int64()), ("rate", pa.float64())]))
    result = policy.evaluate_batch(table, as_of="2026-11-21")
    expected = row_by_row(policy, rows, as_of="2026-11-21")
    assert [e["error"] for e in expected][1:] == result.column("error").to_pylist()[1:]
    assert result.column("error").to_pylist()[0] is None and all(e is not None for e in expected[1:])


# ----------------------------------------------------------------------------- records vouched for by the kernel

VOUCHED = """policy vouched:
    title: "t"

input:
    count: int in [0..100]
    amount: number optional
    segment: string in {"retail", "sme"}
    opened: date optional in [date("2000-01-01")..date("2030-12-31")]
    active: bool optional
    rank: int optional in {1, 2}

output:
    label: string optional
    total: number = 0
    since: date optional

rules r (all):
    rule A:
        when count > 10 and active
        then label = segment, reason "A"
    rule B:
        when amount is not missing
        then total = amount * 2 + count, since = opened
"""

GOOD = {"count": 12, "amount": 2.5, "segment": "sme", "opened": "2020-02-29", "active": True}


@pytest.mark.parametrize(
    "record",
    [
        GOOD,
        dict(GOOD, opened=_dt.date(2020, 2, 29), amount=3),
        dict(GOOD, amount=None, active=None, opened=None),
        {"count": 0, "segment": "retail"},
    ],
)
def test_plainly_valid_records_are_vouched_for_and_decided_as_the_reference_does(record) -> None:
    policy = compile_source(VOUCHED, "vouched.policy")
    compiled = policy.compiled
    assert compiled.evaluator.evaluate_record(record, AS_OF, policy.prepare_lists({}), False) is not None
    assert policy.evaluate(record, as_of=AS_OF) == policy.evaluate(record, as_of=AS_OF, engine="reference")


@pytest.mark.parametrize(
    "record",
    [
        dict(GOOD, count=101),  # outside its range
        dict(GOOD, count=12.0),  # a whole float for an int: the validator converts it
        dict(GOOD, count=True),  # a bool is not a number
        dict(GOOD, amount=float("nan")),
        dict(GOOD, amount=2**53),
        dict(GOOD, segment="corporate"),  # not an allowed value
        dict(GOOD, opened="2020-02-30"),  # not a date
        dict(GOOD, opened="1999-12-31"),  # outside its range
        dict(GOOD, active=1),  # not a bool
        dict(GOOD, rank=1),  # a set of numbers: never vouched for
        dict(GOOD, extra=1),  # an unknown field
        {k: v for k, v in GOOD.items() if k != "count"},  # a required field missing
        dict(GOOD, count=None),  # ... or null
    ],
)
def test_records_that_are_not_plainly_valid_go_to_the_validator(record) -> None:
    policy = compile_source(VOUCHED, "vouched.policy")
    assert policy.compiled.evaluator.evaluate_record(record, AS_OF, policy.prepare_lists({}), False) is None
    assert _outcome(policy, record, "compiled") == _outcome(policy, record, "reference")


def test_unknown_fields_are_vouched_for_when_ignored() -> None:
    policy = compile_source(VOUCHED, "vouched.policy")
    record = dict(GOOD, extra=1)
    assert policy.compiled.evaluator.evaluate_record(record, AS_OF, policy.prepare_lists({}), True) is not None
    assert policy.evaluate(record, as_of=AS_OF, ignore_extra=True) == policy.evaluate(
        record, as_of=AS_OF, ignore_extra=True, engine="reference"
    )


def _outcome(policy, record, engine):
    try:
        return policy.evaluate(record, as_of=AS_OF, engine=engine)
    except (InputError, EvaluationError) as exc:
        return (type(exc).__name__, str(exc))
