"""The Cython kernel and the pure-Python kernel side by side in one process: the same outputs, traces and errors.

The differential tests compare the active implementation with the reference interpreter, in two suite runs (the
kernel, then `DECIDE_PUREPYTHON=1`). These compare the two kernels directly, row by row, on every golden and example
case and on generated policies: an `Evaluator` on the kernel (rows that bail run on the pure-Python kernel) against
one with every row on the pure-Python kernel.
"""

from __future__ import annotations

import datetime as _dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import EvaluationError, InputError, compile_file
from compiler.evaluate.implementation import Evaluator
from compiler.evaluate.lists import prepare_lists
from compiler.evaluate.results import resolve_as_of
from tests.strategies import compiled_or_discard, input_records, policies_with_text
from tests.test_differential import CASES, _lists_for

# Skipped under DECIDE_PUREPYTHON=1; a kernel that is not built is a missing component (tests/components.py).
pytestmark = pytest.mark.usefixtures("cython_kernel")


def _both(policy, record, as_of, lists):
    """(kernel outcome, pure-Python outcome, whether the kernel decided the row itself)."""
    compiled = policy.compiled
    kernel = Evaluator(compiled.arrays, compiled.validator.plans)
    python = Evaluator(compiled.arrays, compiled.validator.plans, kernel=False)
    try:
        values = compiled.validator.validate(record)
    except InputError:
        return None
    today = resolve_as_of(as_of)
    prepared = prepare_lists(compiled.store_lists, lists)
    outcomes = []
    for evaluator in (kernel, python):
        try:
            outcomes.append(("decided", evaluator.evaluate(values, today, prepared)))
        except EvaluationError as exc:
            outcomes.append(("error", str(exc), exc.to_json()))
    native = kernel.native and kernel.kernel.evaluate_native(values, today, prepared) is not None
    return outcomes[0], outcomes[1], native


_COMPILED: dict = {}


def _compiled(path):
    if path not in _COMPILED:
        _COMPILED[path] = compile_file(path)
    return _COMPILED[path]


def _has_valid_input(path, case) -> bool:
    try:
        _compiled(path).compiled.validator.validate(case["input"])
    except InputError:
        return False
    return True


# Cases whose input is invalid never reach a kernel: there is nothing to compare.
EVALUATED = [(path, case) for path, case in CASES if _has_valid_input(path, case)]


@pytest.mark.parametrize(
    ("path", "case"), EVALUATED, ids=[f"{p.parent.name}/{p.stem}::{c['name']}" for p, c in EVALUATED]
)
def test_kernel_and_python_kernel_agree_on_every_case(path, case) -> None:
    policy = _compiled(path)
    lists = {name: [] for name in policy.store_lists} | (case.get("lists") or {})
    kernel, python, _ = _both(policy, case["input"], case.get("as_of", "2026-11-21"), lists)
    assert kernel == python


def test_the_kernel_decides_most_cases_itself() -> None:
    """A kernel that always bailed would agree with the pure-Python kernel trivially."""
    decided = total = 0
    for path, case in EVALUATED:
        policy = _compiled(path)
        lists = {name: [] for name in policy.store_lists} | (case.get("lists") or {})
        both = _both(policy, case["input"], case.get("as_of", "2026-11-21"), lists)
        if both is not None and both[0][0] == "decided":
            total += 1
            decided += both[2]
    assert total > 300
    assert decided / total > 0.6, f"the GIL-free path decided only {decided} of {total} cases"


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_kernel_and_python_kernel_agree_on_generated_policies(data) -> None:
    _, text = data.draw(policies_with_text())
    policy = compiled_or_discard(text)
    lists = _lists_for(policy.ast, data)
    as_of = data.draw(st.dates(_dt.date(1990, 1, 1), _dt.date(2040, 12, 31)))
    for _ in range(3):
        both = _both(policy, data.draw(input_records(policy.ast)), as_of, lists)
        if both is not None:
            assert both[0] == both[1], text
