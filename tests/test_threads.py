"""One compiled policy shared by many threads gives every thread exactly the single-threaded results and errors.

gunicorn's gthread workers and the batch thread pool share one `CompiledPolicy`; a kernel that kept per-call
state on the shared runner named the wrong rule in an `EvaluationError` a few times in ten thousand calls.
The policy below has rules that raise (a missing value for a required output, a value outside an output's
allowed set, a unique table with two rows matching), rules that stop, reasons and a named list, so that
every kind of per-call state is exercised; the records mix all of them.
"""

from __future__ import annotations

import datetime as _dt
import random
import sys
import threading

import pytest

from compiler import EvaluationError, compile_source
from compiler.evaluate.implementation import Evaluator
from tests.components import require_cython_kernel

POLICY = """\
policy shared_state:
    title: "State shared by threads"
    kind: approval

input:
    id: string
    score: int in [0..1000]
    income: number optional in [0..1_000_000]
    debt: number in [0..1_000_000]

output:
    decision: string in {"approve", "refer", "decline"} = "refer"
    limit: number = 0
    grade: string in {"A", "B", "C"} = "C"

list watch: string

rules knockouts (first):
    rule K01 "Watched":
        when id in watch
        then decision = "decline", reason "K01", stop
    rule K02 "Very low score":
        when score < 100
        then decision = "decline", reason "K02", stop

rules checks (all):
    rule C01 "Low score":
        when score < 500
        then reason "C01"
    rule C02 "High debt":
        when debt > 5000
        then reason "C02"
    rule C03 "Grade from score, out of range for very high scores":
        when score > 990
        then grade = if score > 995 then "Z" else "A"

# The bounds come from inputs, so the checker cannot show an overlap: two rows matching is a run-time error.
table limits (unique):
    | debt        || cap         |
    | < 2000      || income / 10 |
    | >= income   || income / 4  |

rules final (first):
    rule F01 "Approve":
        when score >= 600 and debt <= 5000
        then decision = "approve", limit = cap
    rule F02 "Refer":
        when true
        then limit = cap
"""

THREADS = 8
CALLS_PER_THREAD = 2_500
AS_OF = _dt.date(2026, 11, 21)


def _records(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        record = {
            "id": rng.choice(["W1", "W2", "A1", "A2", "A3"]),
            "score": rng.choice([50, 300, 550, 700, 960, 993, 999]),
            "debt": rng.choice([0.0, 1000.0, 9000.0]),
        }
        if rng.random() < 0.8:  # a missing income makes `limit` missing: an error (limit is required)
            record["income"] = rng.choice([0.0, 2500.0, 10000.0])
        records.append(record)
    return records


def _outcome(evaluate, record: dict):
    try:
        return ("decided", evaluate(record))
    except EvaluationError as exc:
        return ("error", str(exc), exc.statement, exc.item, exc.output)


def _run_threads(evaluate, records: list[dict]) -> list[list]:
    # Switch threads as often as the interpreter can, so that calls interleave inside one evaluation.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        return _interleaved(evaluate, records)
    finally:
        sys.setswitchinterval(interval)


def _interleaved(evaluate, records: list[dict]) -> list[list]:
    start = threading.Barrier(THREADS)
    results: list[list] = [[] for _ in range(THREADS)]

    def work(index: int) -> None:
        start.wait()
        chunk = records[index * CALLS_PER_THREAD : (index + 1) * CALLS_PER_THREAD]
        results[index] = [_outcome(evaluate, record) for record in chunk]

    threads = [threading.Thread(target=work, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.fixture(scope="module")
def policy():
    return compile_source(POLICY, "shared_state.policy")


@pytest.mark.parametrize("evaluator", ["kernel", "pure-python"])
def test_threads_sharing_one_policy_get_the_single_threaded_results(policy, evaluator: str) -> None:
    if evaluator == "kernel":
        require_cython_kernel()
    compiled = policy.compiled
    lists = policy.prepare_lists({"watch": ["W1", "W2"]})
    if evaluator == "pure-python":
        # The same CompiledPolicy API, but every row on the pure-Python kernel.
        compiled._evaluator = Evaluator(compiled.arrays, compiled.validator.plans, kernel=False)

    def evaluate(record: dict) -> dict:
        return compiled.evaluate(record, as_of=AS_OF, lists=lists)

    records = _records(THREADS * CALLS_PER_THREAD, seed=7)
    expected = [_outcome(evaluate, record) for record in records]
    kinds = {outcome[0] for outcome in expected}
    messages = {outcome[1] for outcome in expected if outcome[0] == "error"}
    # The records really exercise every path: decisions, stops, and each kind of error.
    assert kinds == {"decided", "error"}
    assert any("would be given a missing value" in message for message in messages)
    assert any('cannot be "Z"' in message for message in messages)
    assert any("but the table is unique" in message for message in messages)
    assert any(o[0] == "decided" and o[1]["outputs"]["reasons"] == ["K01"] for o in expected)
    got = _run_threads(evaluate, records)
    for index in range(THREADS):
        assert got[index] == expected[index * CALLS_PER_THREAD : (index + 1) * CALLS_PER_THREAD]


def test_the_evaluator_is_built_once_when_threads_race_for_it() -> None:
    policy = compile_source(POLICY, "shared_state.policy")
    seen: list = []
    barrier = threading.Barrier(THREADS)

    def work() -> None:
        barrier.wait()
        seen.append(policy.compiled.evaluator)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(evaluator) for evaluator in seen}) == 1
