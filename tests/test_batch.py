"""`evaluate_batch` equals `evaluate` row by row, reports bad rows in its `error` column, and takes pandas too."""

from __future__ import annotations

import datetime as _dt

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from compiler import EvaluationError, InputError, compile_file, compile_source
from compiler.testcases import load_cases
from tests.conftest import POLICIES
from tests.strategies import compiled_or_discard, input_records, policies_with_text, valid_input_records


def row_by_row(policy, rows: list[dict], **options) -> list[dict]:
    trace = options.pop("trace", False)
    expected = []
    for row in rows:
        try:
            result = policy.evaluate(row, trace=True, **options)
            entry = dict(result["outputs"], error=None, error_code=None, error_field=None)
            if trace:
                entry["trace"] = result["trace"]
        except (InputError, EvaluationError) as exc:
            entry = {name: None for name in [*(f.name for f in policy.outputs), "reasons"]}
            entry["error"] = str(exc)
            if isinstance(exc, InputError):
                entry["error_code"], entry["error_field"] = exc.errors[0].code, exc.errors[0].field or None
            else:
                entry["error_code"], entry["error_field"] = exc.code, exc.output
            if trace:
                entry["trace"] = None
        expected.append(entry)
    return expected


def _comparable(value):
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, _dt.date):
        return value.isoformat()
    return value


def normalise(rows: list[dict]) -> list[dict]:
    """Arrow gives floats for number columns (the JSON result gives 9000 for 9000.0) and date32 for dates (the
    JSON result gives YYYY-MM-DD): compare as numbers and as ISO dates."""
    return [{key: _comparable(v) for key, v in row.items()} for row in rows]


@pytest.mark.parametrize("name", sorted(path.stem for path in POLICIES.glob("*.policy")))
def test_batch_equals_single_on_example_cases(name: str) -> None:
    policy = compile_file(POLICIES / f"{name}.policy")
    cases = [c for c in load_cases(POLICIES / f"{name}.tests.json") if "error" not in c["expect"] and "as_of" in c]
    as_of = cases[0]["as_of"] if cases else "2026-11-21"
    rows = [c["input"] for c in cases if c["as_of"] == as_of]
    table = pa.Table.from_pylist(rows)
    lists = {list_name: ["XX999999"] for list_name in policy.store_lists}
    batch = policy.evaluate_batch(table, as_of=as_of, lists=lists, trace=True)
    expected = row_by_row(policy, table.to_pylist(), as_of=as_of, lists=lists, trace=True)
    assert normalise(batch.to_pylist()) == normalise([{k: e[k] for k in batch.column_names} for e in expected])


def test_bad_rows_are_reported_in_the_error_column() -> None:
    policy = compile_file(POLICIES / "consumer_loan.policy")
    good = next(c["input"] for c in load_cases(POLICIES / "consumer_loan.tests.json") if "error" not in c["expect"])
    rows = [good, dict(good, age=150), dict(good, DebtRatio=None)]
    batch = policy.evaluate_batch(pa.Table.from_pylist(rows), as_of="2026-11-21", lists={"blacklist": []})
    errors = batch.column("error").to_pylist()
    assert errors[0] is None
    assert "age: 150 is not allowed" in errors[1]
    assert "DebtRatio: required field is null" in errors[2]
    assert batch.column("decision").to_pylist()[1:] == [None, None]


def test_pandas_input_and_a_date_column_as_the_evaluation_date() -> None:
    pandas = pytest.importorskip("pandas")
    policy = compile_source(
        'policy ages:\n    title: "a"\n\ninput:\n    born: date\n\noutput:\n    age: int = 0\n\n'
        "rules r (first):\n    rule R1:\n        when true\n        then age = years_between(born, today)\n",
        "ages.policy",
    )
    frame = pandas.DataFrame(
        {"born": ["2000-02-29", "2000-02-29"], "decided": [_dt.date(2021, 2, 28), _dt.date(2021, 3, 1)]}
    )
    batch = policy.evaluate_batch(frame, as_of="decided")
    # A 29 February birthday turns a year older on 1 March in common years (docs/language.md).
    assert batch.column("age").to_pylist() == [20, 21]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_batch_equals_single_with_bad_values_in_the_columns(data) -> None:
    """Generated rows with wrong types, out-of-range values, nulls and unknown fields, as far as arrow takes them."""
    _, text = data.draw(policies_with_text())
    policy = compiled_or_discard(text)
    rows = data.draw(st.lists(input_records(policy.ast), min_size=1, max_size=5))
    rows.append({name: float("nan") for name in (f.name for f in policy.ast.inputs if f.type.name == "number")})
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):  # 2**63 and up
        assume(False)
    lists = {name: [] for name in policy.store_lists}
    declared = {field.name for field in policy.info.inputs}
    unknown = [name for name in table.column_names if name not in declared]
    expected = row_by_row(policy, table.to_pylist(), as_of="2026-11-21", lists=lists, ignore_extra=True)
    batch = policy.evaluate_batch(table, as_of="2026-11-21", lists=lists, ignore_extra=True)
    assert normalise(batch.to_pylist()) == normalise([{k: e[k] for k in batch.column_names} for e in expected])
    if unknown:
        # Undeclared columns refuse the whole table (one error naming them), unless passed through.
        with pytest.raises(InputError) as refused:
            policy.evaluate_batch(table, as_of="2026-11-21", lists=lists)
        assert refused.value.errors[0].code == "unknown_column" and unknown[0] in str(refused.value)
        batch = policy.evaluate_batch(table, as_of="2026-11-21", lists=lists, passthrough=unknown)
        assert batch.column_names[: len(unknown)] == unknown
        assert batch.select(unknown).to_pylist() == table.select(unknown).to_pylist()
        decided = batch.drop_columns(unknown).to_pylist()
        assert normalise(decided) == normalise([{k: e[k] for k in decided[0]} for e in expected])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_batch_equals_single_on_generated_policies(data) -> None:
    _, text = data.draw(policies_with_text())
    policy = compiled_or_discard(text)
    assume(all(f.type.name != "list" for f in policy.ast.inputs))
    rows = data.draw(st.lists(valid_input_records(policy.ast), min_size=1, max_size=4))
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        assume(False)  # a column mixing ints and floats that arrow will not unify
    lists = {name: [] for name in policy.store_lists}
    batch = policy.evaluate_batch(table, as_of="2026-11-21", lists=lists)
    expected = row_by_row(policy, table.to_pylist(), as_of="2026-11-21", lists=lists)
    assert normalise(batch.to_pylist()) == normalise([{k: e[k] for k in batch.column_names} for e in expected])


def test_policies_with_list_inputs_take_the_single_record_path() -> None:
    policy = compile_source(
        'policy tags:\n    title: "t"\n\ninput:\n    tags: list of string\n\noutput:\n    vip: bool = false\n\n'
        'rules r (first):\n    rule R1:\n        when "vip" in tags\n        then vip = true\n',
        "tags.policy",
    )
    table = pa.Table.from_pylist([{"tags": ["a", "vip"]}, {"tags": []}, {"tags": None}])
    batch = policy.evaluate_batch(table, as_of="2026-11-21", trace=True)
    assert batch.column("vip").to_pylist() == [True, False, None]
    assert batch.column("trace").to_pylist()[:2] == [["r:R1"], ["r:-"]]
    assert "tags: required field is null" in batch.column("error").to_pylist()[2]


def test_whole_numbers_beyond_2_53_in_an_int64_column_get_the_single_record_error() -> None:
    policy = compile_source(
        'policy big:\n    title: "t"\n\ninput:\n    n: int\n    x: number\n\noutput:\n    o: int = 0\n',
        "big.policy",
    )
    rows = [{"n": 2**53 + 1, "x": 1}, {"n": 7, "x": -(2**62)}, {"n": 7, "x": 2}]
    table = pa.Table.from_pylist(rows, schema=pa.schema([("n", pa.int64()), ("x", pa.int64())]))
    batch = policy.evaluate_batch(table, as_of="2026-11-21")
    expected = row_by_row(policy, rows, as_of="2026-11-21")
    assert [e["error"] for e in expected][:2] != [None, None]
    assert batch.column("error").to_pylist() == [e["error"] for e in expected]
