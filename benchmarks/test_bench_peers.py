"""Peers that Decide's compiled fast path is measured against, on `consumer_loan` and the Give Me Some
Credit rows (`benchmarks/data.py`):

* `plain_python.decide`: the policy hand-written as one Python function (the floor for a Python call);
* `columnar.decide_columns`: a hand-written Cython loop over numpy columns (the floor for batch);
* `zen_graph`: the policy as a GoRules JDM decision graph, run by zen-engine;
* Decide's reference interpreter, `policy.evaluate(..., engine="reference")`;
* Decide's compiled `evaluate` and `evaluate_batch`.

A missing peer is a failure, never a skip: `pip install -e ".[test,bench]"` installs them all
(zen-engine, and Cython for the hand-written columnar loop).

The agreement tests prove the peers compute the same thing (run them without --benchmark-only):

    python -m pytest benchmarks/test_bench_peers.py --benchmark-disable
    python -m pytest benchmarks/test_bench_peers.py --benchmark-only

Small tier: one record (the first test case of consumer_loan.tests.json that does not expect an error,
as in test_bench_compile.py). Large tier: 1,000,000 rows for the columnar loop, plain Python and
evaluate_batch; zen-engine and the interpreters on a 10,000-row slice, per row in extra_info.
Numbers go in reports, never in assertions.
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from benchmarks import data
from benchmarks.peers import zen_graph
from benchmarks.peers.build import ColumnarUnavailable, columns_from_table, load_columnar
from benchmarks.peers.plain_python import decide
from benchmarks.stats import record_p99
from compiler import compile_file
from compiler.testcases import load_cases

POLICY_PATH = Path(__file__).resolve().parents[1] / "policies" / "consumer_loan.policy"
AS_OF = "2026-11-21"
AGREEMENT_ROWS = 20_000
COLUMNAR_AGREEMENT_ROWS = 100_000
LARGE_ROWS = 1_000_000
SLICE_ROWS = 10_000
OUTPUTS = ("decision", "limit", "apr", "score", "risk_band")

SINGLE = "consumer_loan single record"
LARGE = "consumer_loan 1,000,000 rows"
SLICE = "consumer_loan 10,000-row slice (extra_info: per row)"


# ----------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def policy():
    return compile_file(POLICY_PATH)


def reference_options(policy) -> dict[str, Any]:
    """Pin the reference interpreter."""
    return {"engine": "reference"}


def compiled_options(policy) -> dict[str, Any]:
    """Decide's compiled per-record evaluate."""
    return {"engine": "compiled"}


def batch_options(policy) -> dict[str, Any]:
    """Keyword arguments for `policy.evaluate_batch`."""
    return {"as_of": AS_OF, "lists": {"blacklist": []}}


@pytest.fixture(scope="module")
def single_case() -> dict[str, Any]:
    case = next(c for c in load_cases(POLICY_PATH.with_suffix(".tests.json")) if "error" not in c["expect"])
    return {"input": case["input"], "lists": {"blacklist": []} | case.get("lists", {})}


@pytest.fixture(scope="module")
def agreement_cases() -> list[dict[str, Any]]:
    """Every test case that does not expect an error."""
    cases = [c for c in load_cases(POLICY_PATH.with_suffix(".tests.json")) if "error" not in c["expect"]]
    assert cases
    return cases


@pytest.fixture(scope="module")
def zen_decision():
    try:
        import zen  # noqa: F401
    except ImportError:
        pytest.fail('zen-engine is not installed: pip install -e ".[test,bench]"')
    return zen_graph.create_decision()


@pytest.fixture(scope="module")
def columnar():
    try:
        return load_columnar()
    except ColumnarUnavailable as exc:
        pytest.fail(f'the Cython peer cannot be built ({exc}): pip install -e ".[test,bench]"')


def _show(mismatches: list) -> str:
    return f"{len(mismatches)} mismatches, first ones:\n" + "\n".join(repr(m) for m in mismatches[:5])


# ----------------------------------------------------------------------------- agreement


def test_data_matches_policy_inputs(policy) -> None:
    """data.FIELDS is the policy's input section without national_id, with the declared types."""
    declared = {f.name: f.type for f in policy.inputs if f.name != "national_id"}
    assert declared == data.FIELDS
    records = data.load_records(3)
    assert records[0]["age"] == 45 and isinstance(records[0]["age"], int)
    assert isinstance(records[0]["MonthlyIncome"], float)
    assert data.load_records(data.file_rows() + 2)[-1] == records[1]
    table = data.load_table(data.file_rows() + 2)
    assert table.num_rows == data.file_rows() + 2
    assert table.slice(table.num_rows - 1).to_pylist()[0] == records[1]


def test_plain_python_agrees(policy, agreement_cases) -> None:
    """plain_python.decide == the reference interpreter's outputs, 20,000 data rows and every non-error case."""
    options = reference_options(policy)
    mismatches = []
    for index, record in enumerate(data.load_records(AGREEMENT_ROWS)):
        expected = policy.evaluate(record, as_of=AS_OF, lists={"blacklist": []}, **options)["outputs"]
        got = decide(record, frozenset())
        if got != expected or list(got) != list(expected):
            mismatches.append((index, record, expected, got))
    for case in agreement_cases:
        lists = {"blacklist": []} | case.get("lists", {})
        expected = policy.evaluate(case["input"], as_of=case.get("as_of", AS_OF), lists=lists, **options)["outputs"]
        got = decide(case["input"], frozenset(lists["blacklist"]))
        if got != expected or list(got) != list(expected):
            mismatches.append((case["name"], case["input"], expected, got))
    assert not mismatches, _show(mismatches)


def test_columnar_agrees(columnar) -> None:
    """The Cython loop == plain_python.decide on 100,000 rows (decision, limit, apr, score, band; no reasons)."""
    table = data.load_table(COLUMNAR_AGREEMENT_ROWS)
    got = columnar.decide_columns(**columns_from_table(table))
    expected = [decide(record, frozenset()) for record in data.load_records(COLUMNAR_AGREEMENT_ROWS)]
    decision_code = {name: code for code, name in enumerate(columnar.DECISIONS)}
    band_code = {name: code for code, name in enumerate(columnar.BANDS)}
    want = {
        "decision": np.array([decision_code[e["decision"]] for e in expected], dtype=np.int8),
        "limit": np.array([e["limit"] for e in expected], dtype=np.float64),
        "apr": np.array([math.nan if e["apr"] is None else e["apr"] for e in expected], dtype=np.float64),
        "score": np.array([columnar.SCORE_MISSING if e["score"] is None else e["score"] for e in expected], np.int32),
        "risk_band": np.array([band_code[e["risk_band"]] for e in expected], dtype=np.int8),
    }
    for name in OUTPUTS:
        assert got[name].dtype == want[name].dtype, name
        same = np.array_equal(got[name], want[name], equal_nan=got[name].dtype.kind == "f")
        rows = np.flatnonzero(~((got[name] == want[name]) | (np.isnan(got[name]) & np.isnan(want[name]))))
        assert same, f"{name} differs on {rows.size} rows, e.g. {rows[:5].tolist()}"
    assert np.any(got["decision"] == 0) and np.any(got["decision"] == 1) and np.any(got["decision"] == 2)
    # the blacklist column, which the benchmark data never sets
    flags = np.zeros(table.num_rows, dtype=np.uint8)
    flags[[0, 5]] = 1
    flagged = columnar.decide_columns(**columns_from_table(table), blacklisted=flags)
    assert flagged["decision"][0] == 2 and flagged["score"][0] == columnar.SCORE_MISSING
    assert np.array_equal(np.delete(flagged["limit"], [0, 5]), np.delete(got["limit"], [0, 5]))


def test_zen_agrees(zen_decision, agreement_cases) -> None:
    """The JDM graph == plain_python.decide on 20,000 rows and every non-error case (all outputs, reasons too).

    Skipped, and only these: records where double and exact decimal arithmetic give a different decision
    or limit (zen_graph.float_sensitive; ZEN computes in decimals, see zen_graph's docstring). On those
    the graph must match the exact-decimal result instead. The benchmark data has none in its first
    150,000 rows; `test_zen_decimal_edge_cases` covers constructed ones.
    """
    mismatches, sensitive = [], 0
    for index, record in enumerate(data.load_records(AGREEMENT_ROWS)):
        got = zen_graph.evaluate(zen_decision, record)
        if zen_graph.float_sensitive(record):
            sensitive += 1
            expected = zen_graph.decide_decimal(record)
        else:
            expected = decide(record, frozenset())
        if got != expected:
            mismatches.append((index, record, expected, got))
    for case in agreement_cases:
        blacklist = case.get("lists", {}).get("blacklist", [])
        got = zen_graph.evaluate(zen_decision, case["input"], blacklist)
        expected = decide(case["input"], frozenset(blacklist))
        if zen_graph.float_sensitive(case["input"], frozenset(blacklist)):
            sensitive += 1
            expected = zen_graph.decide_decimal(case["input"], frozenset(blacklist))
        if got != expected:
            mismatches.append((case["name"], case["input"], expected, got))
    assert not mismatches, _show(mismatches) + f"\n({sensitive} float-sensitive records were compared with decimals)"


def test_zen_decimal_edge_cases(zen_decision) -> None:
    """Where doubles land under a boundary that the exact value reaches, zen follows exact decimals."""
    base = {
        "age": 45,
        "RevolvingUtilizationOfUnsecuredLines": 0.05,
        "NumberOfOpenCreditLinesAndLoans": 8,
        "NumberRealEstateLoansOrLines": 1,
        "NumberOfTimes90DaysLate": 0,
        "NumberOfDependents": 0,
    }
    # 5000 - 0.56 * 5000 - 900 = 1300 exactly, but 1299.9999999999998 in doubles: limit 7,700 vs 7,800.
    record = base | {"MonthlyIncome": 5000.0, "DebtRatio": 0.56}
    assert zen_graph.float_sensitive(record)
    assert decide(record, frozenset())["limit"] == 7700
    assert zen_graph.decide_decimal(record)["limit"] == 7800
    assert zen_graph.evaluate(zen_decision, record) == zen_graph.decide_decimal(record)
    # the same figures where doubles are exact agree everywhere
    record = base | {"MonthlyIncome": 5000.0, "DebtRatio": 0.5}
    assert not zen_graph.float_sensitive(record)
    assert zen_graph.evaluate(zen_decision, record) == decide(record, frozenset())


# ----------------------------------------------------------------------------- small tier: one record


@pytest.mark.benchmark(group=SINGLE)
def test_single_plain_python(benchmark, single_case) -> None:
    blacklist = frozenset(single_case["lists"]["blacklist"])
    result = benchmark(decide, single_case["input"], blacklist)
    assert result["decision"] == "approve"
    record_p99(benchmark)


@pytest.mark.benchmark(group=SINGLE)
def test_single_zen(benchmark, zen_decision, single_case) -> None:
    """zen-engine `decision.evaluate(context)` (the record plus the blacklist as an array)."""
    context = zen_graph.context(single_case["input"], single_case["lists"]["blacklist"])
    response = benchmark(zen_decision.evaluate, context)
    assert response["result"]["decision"] == "approve"
    record_p99(benchmark)


@pytest.mark.benchmark(group=SINGLE)
def test_single_reference(benchmark, policy, single_case) -> None:
    """Decide's reference interpreter: validation, evaluation and result building."""
    result = benchmark(
        policy.evaluate, single_case["input"], as_of=AS_OF, lists=single_case["lists"], **reference_options(policy)
    )
    assert result["outputs"]["decision"] == "approve"


@pytest.mark.benchmark(group=SINGLE)
def test_single_decide_compiled(benchmark, policy, single_case) -> None:
    """Decide's compiled `policy.evaluate` on one record."""
    options = compiled_options(policy)
    # Like the peers (a frozenset built once, a prebuilt zen context): lists checked once, a date object.
    lists = policy.prepare_lists(single_case["lists"])
    as_of = datetime.date.fromisoformat(AS_OF)
    result = benchmark(policy.evaluate, single_case["input"], as_of=as_of, lists=lists, **options)
    assert result["outputs"]["decision"] == "approve"
    record_p99(benchmark)


# ----------------------------------------------------------------------------- large tier


def _per_row(benchmark, rows: int) -> None:
    benchmark.extra_info["rows"] = rows
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None and stats.rounds:
        benchmark.extra_info["min_per_row_us"] = round(stats.min / rows * 1e6, 3)
        benchmark.extra_info["median_per_row_us"] = round(stats.median / rows * 1e6, 3)


@pytest.fixture(scope="module")
def large_columns():
    return columns_from_table(data.load_table(LARGE_ROWS))


@pytest.mark.benchmark(group=LARGE)
def test_large_columnar(benchmark, columnar, large_columns) -> None:
    """The Cython loop: numpy arrays in, numpy arrays out (no reasons)."""
    out = benchmark.pedantic(columnar.decide_columns, kwargs=large_columns, rounds=5, warmup_rounds=1)
    assert out["decision"].shape == (LARGE_ROWS,)
    _per_row(benchmark, LARGE_ROWS)


@pytest.mark.benchmark(group=LARGE)
def test_large_columnar_table_to_table(benchmark, columnar) -> None:
    """The Cython loop with arrow conversion both ways: pyarrow.Table in, pyarrow.Table out (as evaluate_batch)."""
    table = data.load_table(LARGE_ROWS)

    def run() -> pa.Table:
        return pa.table(columnar.decide_columns(**columns_from_table(table)))

    out = benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    assert out.num_rows == LARGE_ROWS
    _per_row(benchmark, LARGE_ROWS)


@pytest.mark.benchmark(group=LARGE)
def test_large_plain_python(benchmark) -> None:
    """plain_python.decide over a million record dicts (a list comprehension; records loaded beforehand).

    The cyclic garbage collector stays on, as for any caller; the million result dicts trigger its
    collections, which take roughly a third of the time.
    """
    records = data.load_records(LARGE_ROWS)
    blacklist: frozenset[str] = frozenset()

    def run() -> list[dict[str, Any]]:
        return [decide(record, blacklist) for record in records]

    out = benchmark.pedantic(run, rounds=3, warmup_rounds=0)
    assert len(out) == LARGE_ROWS
    _per_row(benchmark, LARGE_ROWS)


@pytest.mark.benchmark(group=LARGE)
@pytest.mark.parametrize("threads", [None, 1], ids=["all cores", "one thread"])
def test_large_decide_evaluate_batch(benchmark, policy, threads) -> None:
    """Decide's `policy.evaluate_batch(table)`: on every core (the default), and on one thread."""
    options = batch_options(policy) | ({} if threads is None else {"threads": threads})
    table = data.load_table(LARGE_ROWS)
    out = benchmark.pedantic(policy.evaluate_batch, args=(table,), kwargs=options, rounds=5, warmup_rounds=1)
    assert out.num_rows == LARGE_ROWS
    _per_row(benchmark, LARGE_ROWS)


@pytest.mark.benchmark(group=SLICE)
def test_slice_zen(benchmark, zen_decision) -> None:
    """zen-engine, one `evaluate` per row (contexts built beforehand)."""
    contexts = [zen_graph.context(record) for record in data.load_records(SLICE_ROWS)]
    evaluate = zen_decision.evaluate

    def run() -> list:
        return [evaluate(context) for context in contexts]

    out = benchmark.pedantic(run, rounds=3, warmup_rounds=0)
    assert len(out) == SLICE_ROWS
    _per_row(benchmark, SLICE_ROWS)


@pytest.mark.benchmark(group=SLICE)
def test_slice_reference(benchmark, policy) -> None:
    """Decide's reference interpreter, one `evaluate` per row."""
    records = data.load_records(SLICE_ROWS)
    options = reference_options(policy)
    lists = {"blacklist": []}

    def run() -> list:
        return [policy.evaluate(record, as_of=AS_OF, lists=lists, **options) for record in records]

    out = benchmark.pedantic(run, rounds=3, warmup_rounds=0)
    assert len(out) == SLICE_ROWS
    _per_row(benchmark, SLICE_ROWS)


@pytest.mark.benchmark(group=SLICE)
def test_slice_decide_compiled(benchmark, policy) -> None:
    """Decide's compiled `policy.evaluate`, one call per row."""
    options = compiled_options(policy)
    records = data.load_records(SLICE_ROWS)
    lists = {"blacklist": []}

    def run() -> list:
        return [policy.evaluate(record, as_of=AS_OF, lists=lists, **options) for record in records]

    out = benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert len(out) == SLICE_ROWS
    _per_row(benchmark, SLICE_ROWS)
