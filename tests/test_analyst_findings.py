"""Regressions for what trying Decide as an analyst found (issue 7, item 6): each one as it was reported."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import pyarrow as pa
import pytest

from compiler import EvaluationError, InputError, PolicyError, compile_file, compile_source
from decide_cli.main import main
from tests.conftest import POLICIES

LOAN = POLICIES / "consumer_loan.policy"
EXAMPLE = json.loads((POLICIES / "examples" / "consumer_loan.json").read_text(encoding="utf-8"))


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.out, captured.err


def _run_loan(capsys, tmp_path: Path, record: dict | bytes, *lists: str) -> tuple[int, str, str]:
    record_path = tmp_path / "record.json"
    record_path.write_bytes(record if isinstance(record, bytes) else json.dumps(record).encode())
    options = [item for spec in lists for item in ("--list", spec)]
    return run_cli(capsys, "run", str(LOAN), "--input", str(record_path), "--as-of", "2026-11-21", *options)


# ----------------------------------------------------------------------------- a blacklist never fails open


def test_repeated_list_files_are_one_list(capsys, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("AB123456\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("ZZ000000\n", encoding="utf-8")
    code, out, _ = _run_loan(
        capsys, tmp_path, EXAMPLE, f"blacklist={tmp_path / 'a.txt'}", f"blacklist={tmp_path / 'b.txt'}"
    )
    assert code == 0
    assert json.loads(out)["outputs"]["decision"] == "decline"  # AB123456 is on a.txt, the first of the two


def test_a_declared_list_nobody_supplied_is_an_error(capsys, tmp_path: Path) -> None:
    code, _, err = _run_loan(capsys, tmp_path, EXAMPLE)
    assert code == 3 and "the members of list 'blacklist' were not supplied" in err


# ----------------------------------------------------------------------------- one rule for large numbers


@pytest.mark.parametrize("number", ["18446744073709551616", "18446744073709551615", "9007199254740993", "1e19"])
def test_numbers_beyond_2_53_are_refused_however_they_arrive(capsys, tmp_path: Path, number: str) -> None:
    text = json.dumps(EXAMPLE).replace('"MonthlyIncome": 8000', f'"MonthlyIncome": {number}')
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    code, _, err = _run_loan(capsys, tmp_path, text.encode(), f"blacklist={tmp_path / 'empty.txt'}")
    assert code == 2 and "MonthlyIncome: the number is too large (at most ±9007199254740992)" in err
    policy = compile_file(LOAN)
    with pytest.raises(InputError, match="too large"):
        policy.evaluate({**EXAMPLE, "MonthlyIncome": json.loads(number)}, as_of="2026-11-21", lists={"blacklist": []})


def test_2_53_itself_is_a_number_a_policy_can_use() -> None:
    policy = compile_source(
        'policy big:\n    title: "t"\n\ninput:\n    n: number\n\noutput:\n    y: number = 0\n\n'
        "rules r (first):\n    rule R1:\n        when true\n        then y = n\n",
        "big.policy",
    )
    assert policy.evaluate({"n": 2**53}, as_of="2026-11-21")["outputs"]["y"] == 2**53


# ----------------------------------------------------------------------------- JSON input


def test_a_key_twice_in_one_record_is_an_input_error_naming_it(capsys, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    text = json.dumps(EXAMPLE)[:-1] + ', "age": 12}'
    code, _, err = _run_loan(capsys, tmp_path, text.encode(), f"blacklist={tmp_path / 'empty.txt'}")
    assert code == 2 and 'the key "age" appears more than once' in err


def test_a_json_file_with_a_byte_order_mark_is_read(capsys, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    code, out, _ = _run_loan(
        capsys, tmp_path, b"\xef\xbb\xbf" + json.dumps(EXAMPLE).encode(), f"blacklist={tmp_path / 'empty.txt'}"
    )
    assert code == 0 and json.loads(out)["outputs"]["decision"] == "approve"


# ----------------------------------------------------------------------------- indentation and long chains


def _rule_policy(when: str, then: str) -> str:
    return (
        'policy p:\n    title: "t"\n\ninput:\n    x: int\n\noutput:\n    y: int = 0\n\n'
        f"rules r (first):\n    rule R1:\n{when}\n{then}\n"
    )


def test_a_when_indented_less_than_its_then_is_reported_at_the_when() -> None:
    with pytest.raises(PolicyError) as error:
        compile_source(_rule_policy("       when x > 1", "        then y = 1"), "p.policy")
    diagnostic = error.value.diagnostics[0]
    assert (diagnostic.span.line, diagnostic.span.column) == (12, 8)
    assert "indented 7 spaces" in diagnostic.message and "expected 8 spaces" in diagnostic.message


def test_a_then_indented_less_than_its_when_is_reported_at_the_then() -> None:
    with pytest.raises(PolicyError) as error:
        compile_source(_rule_policy("        when x > 1", "       then y = 1"), "p.policy")
    diagnostic = error.value.diagnostics[0]
    assert diagnostic.span.line == 13
    assert "indented 7 spaces" in diagnostic.message and "expected 8 spaces (as line 12)" in diagnostic.message


def test_long_flat_chains_are_not_nesting() -> None:
    additions = " + ".join(["x"] * 150)
    clauses = " and ".join(f"x > {n}" for n in range(120))
    sums = compile_source(_rule_policy("        when true", f"        then y = {additions}"), "p.policy")
    assert sums.evaluate({"x": 2}, as_of="2026-11-21")["outputs"]["y"] == 300
    knockouts = compile_source(_rule_policy(f"        when {clauses}", "        then y = 1"), "p.policy")
    assert knockouts.evaluate({"x": 200}, as_of="2026-11-21")["outputs"]["y"] == 1
    assert knockouts.evaluate({"x": 50}, as_of="2026-11-21", engine="reference")["outputs"]["y"] == 0


def test_real_nesting_is_still_capped() -> None:
    nested = "abs(" * 120 + "x" + ")" * 120
    with pytest.raises(PolicyError, match="nested more than 100 levels deep"):
        compile_source(_rule_policy("        when true", f"        then y = {nested}"), "p.policy")


# ----------------------------------------------------------------------------- batch inputs


def test_a_list_of_records_is_a_batch_and_anything_else_is_named() -> None:
    policy = compile_file(LOAN)
    batch = policy.evaluate_batch([EXAMPLE, {**EXAMPLE, "age": 16}], as_of="2026-11-21", lists={"blacklist": []})
    assert batch.column("decision").to_pylist() == ["approve", "decline"]
    with pytest.raises(InputError, match="a pyarrow Table, a pandas DataFrame or a list of records, not str"):
        policy.evaluate_batch("records.csv", as_of="2026-11-21", lists={"blacklist": []})


def _birthdays():
    return compile_source(
        'policy ages:\n    title: "a"\n\ninput:\n    born: date\n    bonus: number optional\n\n'
        "output:\n    age: int = 0\n    extra: number optional\n\n"
        "rules r (first):\n    rule R1:\n        when true\n"
        "        then age = years_between(born, today), extra = bonus\n",
        "ages.policy",
    )


def test_a_pandas_datetime_column_is_a_date_input() -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(
        {"born": pandas.to_datetime(["1990-06-15", "2000-01-01 13:30"], format="mixed"), "bonus": [1.0, 2.0]}
    )
    batch = _birthdays().evaluate_batch(frame, as_of="2026-11-21")
    assert batch.column("age").to_pylist() == [36, None]
    assert batch.column("error_field").to_pylist() == [None, "born"]


def test_a_pandas_row_means_what_the_same_row_of_the_table_means() -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"born": pandas.to_datetime(["1990-06-15"]), "bonus": [float("nan")]})
    policy = _birthdays()
    row = policy.evaluate(frame.iloc[0], as_of="2026-11-21")
    table = policy.evaluate_batch(frame, as_of="2026-11-21").to_pylist()[0]
    assert row["outputs"] == {"age": 36, "extra": None, "reasons": []}
    assert (table["age"], table["extra"]) == (36, None)
    with pytest.raises(InputError, match="NaN and Infinity"):
        policy.evaluate(frame.iloc[0].to_dict(), as_of="2026-11-21")  # a plain dict means JSON: NaN is no number


def test_dates_come_back_as_dates_in_a_batch() -> None:
    policy = compile_source(
        'policy due:\n    title: "d"\n\ninput:\n    start: date\n\noutput:\n    due: date optional\n\n'
        "rules r (first):\n    rule R1:\n        when true\n        then due = start\n",
        "due.policy",
    )
    batch = policy.evaluate_batch(pa.table({"start": pa.array([_dt.date(2026, 1, 31)], pa.date32())}))
    assert batch.schema.field("due").type == pa.date32()
    assert batch.column("due").to_pylist() == [_dt.date(2026, 1, 31)]


def test_batch_errors_have_a_code_and_a_field() -> None:
    policy = compile_file(LOAN)
    rows = [EXAMPLE, {**EXAMPLE, "age": 150}]
    batch = policy.evaluate_batch(rows, as_of="2026-11-21", lists={"blacklist": []})
    assert batch.column("error_code").to_pylist() == [None, "not_allowed"]
    assert batch.column("error_field").to_pylist() == [None, "age"]
    with pytest.raises(EvaluationError):
        policy.evaluate(EXAMPLE, as_of="2026-11-21")  # the list is still required for one record


# ----------------------------------------------------------------------------- test cases and explain


def test_a_policy_without_test_cases_is_a_warning(capsys, tmp_path: Path) -> None:
    (tmp_path / "loan.policy").write_bytes(LOAN.read_bytes())
    (tmp_path / "loan.tests.json").write_text("[]", encoding="utf-8")
    code, out, err = run_cli(capsys, "test", str(tmp_path))
    assert "warning:" in err and "no test cases" in err
    assert out.strip().endswith("0 passed, 0 failed") and code == 0


def test_explain_shows_values_as_the_language_writes_them(capsys, tmp_path: Path) -> None:
    (tmp_path / "record.json").write_text(json.dumps({**EXAMPLE, "MonthlyIncome": None}), encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    code, out, _ = run_cli(
        capsys, "explain", str(LOAN), "--input", str(tmp_path / "record.json"),
        "--list", f"blacklist={tmp_path / 'empty.txt'}", "--as-of", "2026-11-21",
    )  # fmt: skip
    assert code == 0
    assert "let monthly_debt = missing  (line 34)" in out
    assert "let dependants = 2  (line 33)" in out
    assert "  risk_score = 670" in out  # 600 + 10 + 30 + 15 - 15 + 10 + 20
    assert 'decision = "refer"' in out and "None" not in out and "False" not in out
    assert 'reasons = ["R11"]' in out
