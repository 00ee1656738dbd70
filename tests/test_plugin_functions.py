"""Plugin functions in the language (compiler/functions.py): calls type-checked at compile time against the
declared signature, evaluated identically by the reference interpreter, the pure-Python kernel and the Cython
kernel (which hands a row that reaches a call to the pure-Python kernel), failures as evaluation errors, the
signatures in the content hash and the compiled bytes, and the functions needed again to load them."""

from __future__ import annotations

import datetime as _dt
import hashlib
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler import (
    COMPILER_VERSION,
    CompiledPolicy,
    EvaluationError,
    InputError,
    PolicyError,
    check_source,
    compile_source,
)
from compiler.evaluate.implementation import Evaluator
from compiler.evaluate.lists import prepare_lists
from compiler.evaluate.results import resolve_as_of
from compiler.plugins import FunctionSpec, PluginError

AS_OF = "2026-03-01"


# Module-level implementations, so that a compiled policy that calls them pickles (by reference).
def annual_payment(principal: float, rate: float, years: int) -> float:
    if years < 1:
        raise ValueError(f"years must be at least 1, not {years}")
    if rate == 0:
        return principal / years
    return principal * rate / (1 - (1 + rate) ** -years)


def initials(name: str) -> str:
    return "".join(word[0] for word in name.split()).upper()


def next_monday(day: _dt.date) -> _dt.date:
    return day + _dt.timedelta(days=7 - day.weekday())


def count_over(values: list[float], limit: float) -> int:
    return sum(1 for value in values if value > limit)


def or_zero(value: float | None) -> float:
    return 0.0 if value is None else value


def is_round(value: int) -> bool:
    return value % 1000 == 0


def wrong_type(value: int):
    return {"int": value}


def half(value: int):
    return value / 2  # a number where the function declares an int: 3 / 2 is not one


ANNUAL_PAYMENT = FunctionSpec("annual_payment", ("number", "number", "int"), "number", annual_payment)
FUNCTIONS = [
    ANNUAL_PAYMENT,
    FunctionSpec("initials", ("string",), "string", initials),
    FunctionSpec("next_monday", ("date",), "date", next_monday),
    FunctionSpec("count_over", ("list of number", "number"), "int", count_over),
    FunctionSpec("or_zero", ("number",), "number", or_zero, propagates_missing=False),
    FunctionSpec("is_round", ("int",), "bool", is_round),
    FunctionSpec("wrong_type", ("int",), "int", wrong_type),
    FunctionSpec("half", ("int",), "int", half),
]

SOURCE = """\
policy plugged:
    title: "Calls plugin functions"

input:
    amount: number in [0..1_000_000]
    rate: number optional
    years: int
    name: string optional
    opened: date optional
    balances: list of number optional
    mode: string in {"plain", "raise", "wrong", "half"}

output:
    payment: number optional
    letters: string optional
    review: date optional
    over: int optional
    safe: number = 0
    round_amount: bool optional
    broken: int optional
    decision: string = "approve"

let pay = annual_payment(amount, rate, years)

rules pricing (all):
    rule P01 "Payment":
        when mode == "plain"
        then payment = pay, letters = initials(name), review = next_monday(opened)
    rule P02 "Balances over the amount":
        when mode == "plain"
        then over = count_over(balances, amount / 10), safe = or_zero(rate) * 100, round_amount = is_round(years)
    rule E01 "A function that raises":
        when mode == "raise"
        then payment = annual_payment(amount, 0.1, 0)
    rule E02 "A function that returns the wrong type":
        when mode == "wrong"
        then broken = wrong_type(years)
    rule E03 "A function that returns a number for an int":
        when mode == "half"
        then broken = half(years)
    rule D01 "Unaffordable":
        when pay > amount / 2
        then decision = "decline"
"""

RECORDS = [
    {"amount": 10_000, "rate": 0.05, "years": 5, "name": "ada lovelace", "opened": "2026-02-26",
     "balances": [500, 2_000, 1_500.5], "mode": "plain"},
    {"amount": 10_000, "years": 5, "mode": "plain"},  # every optional argument missing
    {"amount": 3_000, "rate": 0, "years": 3, "name": "grace", "balances": [], "mode": "plain"},
    {"amount": 9_000, "rate": 0.8, "years": 1, "opened": "2026-03-02", "mode": "plain"},
    {"amount": 5_000, "rate": 0.1, "years": 4, "mode": "raise"},
    {"amount": 5_000, "rate": 0.1, "years": 4, "mode": "wrong"},
    {"amount": 5_000, "rate": 0.1, "years": 3, "mode": "half"},
    {"amount": 5_000, "rate": 0.1, "years": 4, "mode": "half"},  # 4 / 2 is a whole number: fine
    {"amount": 5_000, "rate": 0.1, "years": 0, "mode": "plain"},  # the let's own call raises
]  # fmt: skip


@pytest.fixture(scope="module")
def policy():
    return compile_source(SOURCE, "plugged.policy", functions=FUNCTIONS)


def _outcome(run, *args, **options):
    try:
        return ("decided", run(*args, **options))
    except EvaluationError as exc:
        return ("error", str(exc), exc.to_json())


# ---------------------------------------------------------------- compile time


def _errors(source: str, functions=FUNCTIONS) -> list[str]:
    return [
        f"{d.span.line}:{d.span.column}: {d.code}: {d.message}"
        for d in check_source(source, "bad.policy", functions=functions)
        if d.is_error
    ]


BAD = """\
policy bad:
    title: "Bad calls"

input:
    amount: number
    years: int
    name: string
    tags: list of string
    counts: list of int

output:
    out: number optional
    text: string optional

let a = annual_payment(amount, 0.05)
let b = annual_payment(amount, name, years)
let c = annual_payment(amount, 0.05, amount)
let d = annual_payment(name, 0.05, 2.5)
let e = count_over(tags, 1)
let f = initials(years) + 1
let g = annual_paymnt(amount, 0.05, years)
let h = initials(name) + 1
let ok = annual_payment(years, years, years) + count_over(counts, years)

rules r (first):
    rule R1:
        when ok > 0 and a > 0 and b > 0 and c > 0 and d > 0 and e > 0 and f > 0 and g > 0 and h > 0
        then out = ok, text = initials(name)
"""


def test_wrong_calls_are_reported_at_their_line_and_column() -> None:
    assert _errors(BAD) == [
        "15:9: bad_call: annual_payment: wrong number of arguments; use annual_payment(number, number, int)",
        "16:32: bad_call: annual_payment: argument 2 must be number, not string",
        "17:38: bad_call: annual_payment: argument 3 must be int, not number",
        "18:24: bad_call: annual_payment: argument 1 must be number, not string",
        "18:36: bad_call: annual_payment: argument 3 must be int, not number",
        "19:20: bad_call: count_over: argument 1 must be list of number, not list of string",
        "20:18: bad_call: initials: argument 1 must be string, not int",
        "21:9: unknown_function: unknown function 'annual_paymnt'; did you mean annual_payment?",
        '22:9: type_mismatch: "+" works on numbers; here it has a string and an int value',
    ]


def test_without_the_functions_a_call_is_an_unknown_function() -> None:
    errors = _errors(SOURCE, functions=None)
    assert errors[0] == "23:11: unknown_function: unknown function 'annual_payment'"
    assert {error.split(": ")[1] for error in errors} == {"unknown_function"}
    with pytest.raises(PolicyError):
        compile_source(SOURCE, "plugged.policy")


def test_a_builtin_name_or_a_bad_signature_is_refused() -> None:
    with pytest.raises(PluginError) as caught:
        compile_source(SOURCE, "plugged.policy", functions=[FunctionSpec("round", ("number",), "number", abs)])
    assert caught.value.code == "function_clashes_with_builtin"
    assert str(caught.value) == "the function round has the name of a built-in function; rename it"
    with pytest.raises(PluginError, match=r"'money' is not a type; use int, number, bool, string, date or list"):
        FunctionSpec("f", ("money",), "number", abs)
    with pytest.raises(PluginError, match=r"'list of record' is not a type"):
        FunctionSpec("f", ("number",), "list of record", abs)
    with pytest.raises(PluginError, match=r"name 'when' is not a name a policy can write"):
        FunctionSpec("when", ("number",), "number", abs)
    with pytest.raises(PluginError, match="the implementation is not callable"):
        FunctionSpec("f", ("number",), "number", 3)
    with pytest.raises(PluginError, match=r"functions\['g'\] is the function f"):
        compile_source(SOURCE, "plugged.policy", functions={"g": FunctionSpec("f", (), "int", int)})
    with pytest.raises(PluginError, match="two different functions are named f"):
        compile_source(SOURCE, "x", functions=[FunctionSpec("f", (), "int", int), FunctionSpec("f", (), "bool", bool)])
    with pytest.raises(PluginError, match="not FunctionSpec"):
        compile_source(SOURCE, "plugged.policy", functions=[abs])


def test_types_are_normalised() -> None:
    spec = FunctionSpec("f", ["list  of int", " number"], "list of  string", abs)
    assert spec.parameters == ("list of int", "number")
    assert spec.result == "list of string"
    assert spec.signature == "f(list of int, number) -> list of string"
    assert FunctionSpec("g", (), "int", int, propagates_missing=False).signature == "g() -> int (passes missing on)"


# ------------------------------------------------------------------ evaluation


def test_reference_python_kernel_and_cython_kernel_agree(policy) -> None:
    compiled = policy.compiled
    kernel = Evaluator(compiled.arrays, compiled.validator.plans, functions=compiled.functions)
    python = Evaluator(compiled.arrays, compiled.validator.plans, functions=compiled.functions, kernel=False)
    today = resolve_as_of(AS_OF)
    lists = prepare_lists(compiled.store_lists, None)
    for record in RECORDS:
        reference = _outcome(policy.evaluate, record, as_of=AS_OF, engine="reference")
        assert _outcome(policy.evaluate, record, as_of=AS_OF) == reference, record
        values = compiled.validator.validate(record)
        on_kernel = _outcome(kernel.evaluate, values, today, lists)
        assert on_kernel == _outcome(python.evaluate, values, today, lists), record
        assert on_kernel[0] == reference[0]


@settings(max_examples=200, deadline=None)
@given(
    amount=st.floats(0, 1_000_000),
    rate=st.none() | st.floats(-0.5, 2) | st.integers(0, 1),
    years=st.integers(-2, 40),
    name=st.none() | st.text(alphabet="ab c", max_size=6),
    opened=st.none() | st.dates(_dt.date(2000, 1, 1), _dt.date(2100, 1, 1)),
    balances=st.none() | st.lists(st.floats(-1e6, 1e6) | st.integers(-1000, 1000), max_size=4),
    mode=st.sampled_from(["plain", "raise", "wrong", "half"]),
)
def test_generated_records_give_the_same_outcome_everywhere(policy, amount, rate, years, name, opened, balances, mode):
    record = {"amount": amount, "rate": rate, "years": years, "name": name, "mode": mode}
    record |= {"opened": opened and opened.isoformat(), "balances": balances}
    reference = _outcome(policy.evaluate, record, as_of=AS_OF, engine="reference")
    assert _outcome(policy.evaluate, record, as_of=AS_OF) == reference
    compiled = policy.compiled
    python = Evaluator(compiled.arrays, compiled.validator.plans, functions=compiled.functions, kernel=False)
    values, today = compiled.validator.validate(record), resolve_as_of(AS_OF)
    lists = prepare_lists(compiled.store_lists, None)
    assert _outcome(compiled.evaluator.evaluate, values, today, lists) == _outcome(
        python.evaluate, values, today, lists
    )


def test_what_the_functions_give(policy) -> None:
    outputs = [policy.evaluate(record, as_of=AS_OF)["outputs"] for record in RECORDS[:4]]
    assert outputs[0] == {
        "payment": pytest.approx(2309.7479812826796),
        "letters": "AL",
        "review": "2026-03-02",
        "over": 2,
        "safe": 5,
        "round_amount": False,
        "broken": None,
        "decision": "approve",
        "reasons": [],
    }
    # Missing arguments: missing results without a call, except or_zero, which is called with None.
    assert outputs[1] == {
        "payment": None,
        "letters": None,
        "review": None,
        "over": None,
        "safe": 0,
        "round_amount": False,
        "broken": None,
        "decision": "approve",
        "reasons": [],
    }
    assert (outputs[2]["payment"], outputs[2]["over"], outputs[2]["letters"]) == (1000, 0, "G")
    assert (outputs[3]["payment"], outputs[3]["review"], outputs[3]["decision"]) == (16200, "2026-03-09", "decline")


def test_a_number_parameter_gets_a_float_and_an_int_parameter_an_int() -> None:
    seen = []

    def record(principal, rate, years):
        seen.append((principal, rate, years))
        return 1

    spec = FunctionSpec("annual_payment", ("number", "number", "int"), "number", record)
    source = SOURCE.replace("    rate: number optional", "    rate: int optional")
    policy = compile_source(source, "plugged.policy", functions=[spec, *FUNCTIONS[1:]])
    for engine in ("compiled", "reference"):
        seen.clear()
        policy.evaluate({"amount": 10_000, "rate": 1, "years": 5, "mode": "plain"}, as_of=AS_OF, engine=engine)
        assert {tuple(type(v) for v in call) for call in seen} == {(float, float, int)}


def test_an_implementation_that_raises_is_an_evaluation_error(policy) -> None:
    with pytest.raises(EvaluationError) as caught:
        policy.evaluate(RECORDS[4], as_of=AS_OF)
    assert caught.value.code == "function_failed"
    assert str(caught.value) == (
        "plugged.policy:34:24: rule E01 in 'pricing': the plugin function annual_payment failed: "
        "ValueError: years must be at least 1, not 0"
    )
    assert caught.value.to_json()["statement"] == "pricing"
    assert caught.value.to_json()["item"] == "rule E01"
    with pytest.raises(EvaluationError) as caught:
        policy.evaluate(RECORDS[8], as_of=AS_OF)
    assert str(caught.value) == (
        "plugged.policy:23:11: 'pay': the plugin function annual_payment failed: "
        "ValueError: years must be at least 1, not 0"
    )


def test_a_result_of_the_wrong_type_is_an_evaluation_error(policy) -> None:
    for record, message in [
        (RECORDS[5], "rule E02 in 'pricing': the plugin function wrong_type returned a dict, not int as it declares"),
        (
            RECORDS[6],
            "rule E03 in 'pricing': the plugin function half returned a number with decimals, not int as it declares",
        ),
    ]:
        for engine in ("compiled", "reference"):
            with pytest.raises(EvaluationError) as caught:
                policy.evaluate(record, as_of=AS_OF, engine=engine)
            assert (caught.value.code, caught.value.message) == ("function_bad_result", message)
    assert policy.evaluate(RECORDS[7], as_of=AS_OF)["outputs"]["broken"] == 2


@pytest.mark.parametrize(
    ("result", "returned", "shown"),
    [
        ("int", 2**60, "a whole number outside ±9007199254740992"),
        ("int", True, "a bool"),
        ("number", float("nan"), "a number that is not finite"),
        ("number", 10**400, "a whole number too large to represent"),
        ("number", "1.5", "a string"),
        ("date", _dt.datetime(2026, 1, 1), "a datetime (not a date)"),
        ("string", 5, "an int"),
        ("list of string", ["a", None], "a list whose item 2 is a missing value"),
        ("list of int", [1, 2.5], "a list whose item 2 is a number with decimals"),
        ("list of int", "12", "a string"),
    ],
)
def test_every_wrong_result_is_named_never_shown(result, returned, shown) -> None:
    spec = FunctionSpec("give", ("int",), result, lambda _: returned)
    value = "give(n)" if not result.startswith("list") else "len(give(n))"
    source = f'policy p:\n    title: "t"\n\ninput:\n    n: int\n\noutput:\n    o: bool = false\n\nlet v = {value}\n'
    source += "\nrules r (first):\n    rule R1:\n        when v is missing\n        then o = true\n"
    policy = compile_source(source, "p.policy", functions=[spec])
    for engine in ("compiled", "reference"):
        with pytest.raises(EvaluationError) as caught:
            policy.evaluate({"n": 1}, as_of=AS_OF, engine=engine)
        assert caught.value.message == f"'v': the plugin function give returned {shown}, not {result} as it declares"


def test_a_policy_with_pii_inputs_shows_only_the_exceptions_type() -> None:
    source = SOURCE.replace("    name: string optional", "    name: string optional pii")
    policy = compile_source(source, "plugged.policy", functions=FUNCTIONS)
    for engine in ("compiled", "reference"):
        with pytest.raises(EvaluationError) as caught:
            policy.evaluate(RECORDS[4], as_of=AS_OF, engine=engine)
        assert caught.value.message == (
            "rule E01 in 'pricing': the plugin function annual_payment failed: "
            "ValueError (its message is not shown: the policy has pii inputs)"
        )


def test_evaluate_batch_calls_the_functions_row_by_row(policy) -> None:
    table = policy.evaluate_batch(RECORDS, as_of=AS_OF, threads=2)
    for record, row in zip(RECORDS, table.to_pylist()):
        try:
            expected = policy.evaluate(record, as_of=AS_OF)["outputs"]
        except EvaluationError as exc:
            assert (row["error"], row["error_code"]) == (str(exc), exc.code)
            continue
        assert row["error"] is None
        got = {key: row[key] for key in expected}
        assert {**got, "review": got["review"] and got["review"].isoformat()} == expected
    assert table.column("error_code").to_pylist()[4:7] == [
        "function_failed",
        "function_bad_result",
        "function_bad_result",
    ]


def test_evaluate_batch_with_a_trace_and_on_many_rows(policy) -> None:
    rows = [dict(RECORDS[n % 4], amount=1_000 + n) for n in range(300)]
    table = policy.evaluate_batch(rows, as_of=AS_OF, trace=True)
    assert table.column("error").null_count == 300
    expected = [policy.evaluate(row, as_of=AS_OF)["outputs"]["payment"] for row in rows[:4]]
    assert table.column("payment").to_pylist()[:4] == expected


class TestTheCythonKernel:
    pytestmark = pytest.mark.usefixtures("cython_kernel")

    def test_it_bails_on_a_row_that_reaches_a_call_and_decides_the_others(self) -> None:
        source = (
            'policy k:\n    title: "t"\n\ninput:\n    amount: number\n    rate: number optional\n    years: int\n\n'
            "output:\n    payment: number optional\n\nrules r (first):\n    rule R1:\n        when years > 1\n"
            "        then payment = annual_payment(amount, rate, years)\n    rule R2:\n        when true\n"
            "        then payment = amount\n"
        )
        policy = compile_source(source, "k.policy", functions=[ANNUAL_PAYMENT])
        evaluator = policy.compiled.evaluator
        assert evaluator.native
        today, lists = resolve_as_of(AS_OF), prepare_lists(policy.store_lists, None)
        calls = policy.compiled.validator.validate({"amount": 1000, "rate": 0.1, "years": 2})
        no_calls = policy.compiled.validator.validate({"amount": 1000, "rate": 0.1, "years": 1})
        assert evaluator.kernel.evaluate_native(calls, today, lists) is None  # bailed at the call
        assert evaluator.evaluate(calls, today, lists)[0]["payment"] == pytest.approx(576.1904761904761)
        decided = evaluator.kernel.evaluate_native(no_calls, today, lists)
        assert decided is not None and decided[0]["payment"] == 1000

    def test_a_policy_without_calls_runs_as_before(self) -> None:
        plain = 'policy q:\n    title: "t"\n\ninput:\n    n: int\n\noutput:\n    o: int = 0\n\nlet v = n * 2\n'
        plain += "\nrules r (first):\n    rule R1:\n        when v > 2\n        then o = v\n"
        policy = compile_source(plain, "q.policy", functions=FUNCTIONS)
        assert policy.functions == {} and policy.compiled.functions == {}
        values = policy.compiled.validator.validate({"n": 3})
        decided = policy.compiled.evaluator.kernel.evaluate_native(values, resolve_as_of(AS_OF), {})
        assert decided is not None and decided[0]["o"] == 6


# ------------------------------------------------------- hash, bytes, pickling

PLAIN = """\
policy plain:
    title: "No plugin function"

input:
    n: int

output:
    o: int = 0

rules r (first):
    rule R1:
        when n > 2
        then o = n
"""


def _old_hash(policy) -> str:
    metadata = policy.compiled.arrays.metadata
    return hashlib.sha256(f"{COMPILER_VERSION}\n{metadata['source_hash']}".encode()).hexdigest()


def test_a_policy_without_calls_keeps_its_hash_and_its_bytes() -> None:
    without = compile_source(PLAIN, "plain.policy")
    given = compile_source(PLAIN, "plain.policy", functions=FUNCTIONS)
    assert without.content_hash == given.content_hash == _old_hash(without)
    assert without.compiled.to_bytes() == given.compiled.to_bytes()
    assert "functions" not in without.compiled.arrays.metadata
    assert CompiledPolicy.from_bytes(given.compiled.to_bytes()).content_hash == without.content_hash


def test_the_hash_of_a_policy_with_calls_records_their_signatures(policy) -> None:
    assert policy.content_hash != _old_hash(policy)
    again = compile_source(SOURCE, "elsewhere/plugged.policy", functions=list(reversed(FUNCTIONS)))
    assert again.content_hash == policy.content_hash  # stable: the order given and the path do not count
    assert again.compiled.to_bytes() == policy.compiled.to_bytes()
    # Another implementation or description with the same signature: the same hash (it records the signature).
    other = FunctionSpec("annual_payment", ("number", "number", "int"), "number", lambda *a: 0, description="x")
    assert compile_source(SOURCE, "p", functions=[other, *FUNCTIONS[1:]]).content_hash == policy.content_hash
    # Another signature: another hash.
    changed = FunctionSpec("annual_payment", ("number", "number", "number"), "number", annual_payment)
    assert compile_source(SOURCE, "p", functions=[changed, *FUNCTIONS[1:]]).content_hash != policy.content_hash
    passing = FunctionSpec("or_zero", ("number",), "number", or_zero)
    functions = [spec for spec in FUNCTIONS if spec.name != "or_zero"] + [passing]
    assert compile_source(SOURCE, "p", functions=functions).content_hash != policy.content_hash
    # Functions given but not called do not count.
    extra = FunctionSpec("unused", (), "int", int)
    assert compile_source(SOURCE, "p", functions=[*FUNCTIONS, extra]).content_hash == policy.content_hash
    assert [f["name"] for f in policy.compiled.arrays.metadata["functions"]] == sorted(f.name for f in FUNCTIONS)


def test_from_bytes_needs_the_functions_again(policy) -> None:
    data = policy.compiled.to_bytes()
    with pytest.raises(PluginError) as caught:
        CompiledPolicy.from_bytes(data)
    assert caught.value.code == "function_not_supplied"
    assert str(caught.value).startswith(
        "policy 'plugged' calls plugin functions that were not supplied: "
        "annual_payment(number, number, int) -> number; count_over(list of number, number) -> int; "
    )
    assert caught.value.to_json()["kind"] == "plugin"
    with pytest.raises(PluginError, match=r"not supplied: initials\(string\) -> string; pass them as functions="):
        CompiledPolicy.from_bytes(data, functions=[spec for spec in FUNCTIONS if spec.name != "initials"])
    changed = FunctionSpec("annual_payment", ("number", "number", "number"), "number", annual_payment)
    with pytest.raises(PluginError) as caught:
        CompiledPolicy.from_bytes(data, functions=[changed, *FUNCTIONS[1:]])
    assert caught.value.code == "function_signature_changed"
    assert str(caught.value) == (
        "policy 'plugged' was compiled against other plugin functions: "
        "annual_payment(number, number, number) -> number, but the policy was compiled against "
        "annual_payment(number, number, int) -> number; compile it again with these functions"
    )
    loaded = CompiledPolicy.from_bytes(data, functions={spec.name: spec for spec in FUNCTIONS})
    assert loaded.content_hash == policy.content_hash
    for record in RECORDS:
        assert _outcome(loaded.evaluate, record, as_of=AS_OF) == _outcome(policy.evaluate, record, as_of=AS_OF)


def test_pickling_carries_the_functions(policy) -> None:
    for thing in (policy, policy.compiled):
        loaded = pickle.loads(pickle.dumps(thing))
        assert loaded.content_hash == policy.content_hash
        assert loaded.evaluate(RECORDS[0], as_of=AS_OF) == policy.evaluate(RECORDS[0], as_of=AS_OF)


def test_a_corrupt_call_is_refused_on_load(policy) -> None:
    from compiler import CorruptArtefact

    arrays = pickle.loads(pickle.dumps(policy.compiled.arrays))
    arrays.metadata = {**arrays.metadata, "functions": arrays.metadata["functions"][1:]}
    with pytest.raises(CorruptArtefact, match="a call of 'annual_payment' does not match"):
        CompiledPolicy(arrays, FUNCTIONS)


def test_input_errors_come_first(policy) -> None:
    with pytest.raises(InputError):
        policy.evaluate({**RECORDS[0], "years": "five"}, as_of=AS_OF)
