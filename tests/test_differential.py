"""The compiled decision trees against the reference interpreter: identical results, traces and errors.

The reference interpreter (compiler/evaluate/reference.py) is the oracle. Whatever
implementation is active (the Cython kernel, or the pure-Python twin under
DECIDE_PUREPYTHON=1) must agree with it on every golden case, every example
policy case, and generated policies and inputs.
"""

from __future__ import annotations

import datetime as _dt
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler import EvaluationError, InputError, compile_file, compile_source
from compiler.compiled import CompiledPolicy
from compiler.evaluate import implementation
from compiler.lower.arrays import CorruptArtefact, PolicyArrays
from compiler.testcases import load_cases
from dsl import ast
from tests.conftest import GOLDEN, POLICIES
from tests.strategies import compiled_or_discard, input_records, policies_with_text

POLICY_FILES = sorted(POLICIES.glob("*.policy")) + sorted((GOLDEN / "features").glob("*.policy"))


def outcome(policy, record, *, engine: str, as_of, lists):
    try:
        return ("result", policy.evaluate(record, as_of=as_of, lists=lists, engine=engine))
    except (InputError, EvaluationError) as exc:
        return (type(exc).__name__, str(exc))


def _cases():
    for path in POLICY_FILES:
        tests = path.with_suffix(".tests.json")
        if tests.exists():
            for case in load_cases(tests):
                yield path, case


CASES = list(_cases())


@pytest.fixture(scope="module")
def compiled_policies() -> dict[Path, object]:
    return {path: compile_file(path) for path in POLICY_FILES}


@pytest.mark.parametrize(("path", "case"), CASES, ids=[f"{p.parent.name}/{p.stem}::{c['name']}" for p, c in CASES])
def test_compiled_matches_reference_on_every_case(compiled_policies, path: Path, case: dict) -> None:
    policy = compiled_policies[path]
    lists = {name: [] for name in policy.store_lists} | (case.get("lists") or {})
    as_of = case.get("as_of", "2026-11-21")
    reference = outcome(policy, case["input"], engine="reference", as_of=as_of, lists=lists)
    compiled = outcome(policy, case["input"], engine="compiled", as_of=as_of, lists=lists)
    assert compiled == reference


def _lists_for(policy_ast: ast.Policy, data) -> dict[str, list]:
    members = {
        "string": st.sampled_from(["a", "b", "", "zz"]),
        "int": st.integers(-3, 3),
        "number": st.sampled_from([-1.5, 0.0, 2.0]),
    }
    return {
        s.name: data.draw(st.lists(members[s.element_type], max_size=3))
        for s in policy_ast.statements
        if isinstance(s, ast.ListDecl) and s.members is None
    }


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_compiled_matches_reference_on_generated_policies(data) -> None:
    _, text = data.draw(policies_with_text())
    policy = compiled_or_discard(text)
    lists = _lists_for(policy.ast, data)
    as_of = data.draw(st.dates(_dt.date(1990, 1, 1), _dt.date(2040, 12, 31)))
    for _ in range(3):
        record = data.draw(input_records(policy.ast))
        reference = outcome(policy, record, engine="reference", as_of=as_of, lists=lists)
        compiled = outcome(policy, record, engine="compiled", as_of=as_of, lists=lists)
        assert compiled == reference, text


def test_the_active_implementation_is_reported() -> None:
    expected = {"cython": "Cython kernel", "python": "pure-Python evaluator"}[implementation.IMPLEMENTATION]
    assert expected in implementation.describe()


# ------------------------------------------------------------- artefact form


def _loan() -> tuple[object, dict]:
    policy = compile_file(POLICIES / "consumer_loan.policy")
    case = next(c for c in load_cases(POLICIES / "consumer_loan.tests.json") if "error" not in c["expect"])
    return policy, case


def test_bytes_and_pickle_round_trips_evaluate_identically() -> None:
    policy, case = _loan()
    lists = {"blacklist": []} | case.get("lists", {})
    expected = policy.evaluate(case["input"], as_of="2026-11-21", lists=lists)
    from_bytes = CompiledPolicy.from_bytes(policy.compiled.to_bytes())
    unpickled = pickle.loads(pickle.dumps(policy.compiled))
    for compiled in (from_bytes, unpickled):
        assert compiled.content_hash == policy.compiled.content_hash
        assert compiled.evaluate(case["input"], as_of="2026-11-21", lists=lists) == expected


def test_content_hash_depends_on_source_not_formatting_of_memory() -> None:
    text = (POLICIES / "consumer_loan.policy").read_text(encoding="utf-8")
    first, second = compile_source(text, "a.policy"), compile_source(text, "b.policy")
    assert first.compiled.content_hash == second.compiled.content_hash
    changed = compile_source(text.replace("base 600", "base 601"), "a.policy")
    assert changed.compiled.content_hash != first.compiled.content_hash


def _test_node(arrays: PolicyArrays) -> int:
    """A test node with a parent-less position after 0 (so pointing it at 0 or itself is a cycle)."""
    return int(np.flatnonzero(arrays.node_leaf < 0)[1])


@pytest.mark.parametrize(
    ("mutation", "words"),
    [
        (lambda a: a.node_true.__setitem__(_test_node(a), _test_node(a)), "child is not after its parent"),
        (lambda a: a.node_missing.__setitem__(_test_node(a), 0), "child is not after its parent"),
        (lambda a: a.node_false.__setitem__(_test_node(a), 10**6), "array node_false has a value out of range"),
        (lambda a: a.code_arg.__setitem__(int(np.flatnonzero(a.code_op == 2)[0]), 10**6), "slot out of range"),
        (lambda a: a.leaf_action_end.__setitem__(0, 10**6), "array leaf_action_end has a value out of range"),
        (lambda a: a.leaf_action_end.__setitem__(0, -1), "array leaf_action_end has a value out of range"),
        (lambda a: a.leaf_action_start.__setitem__(0, int(a.leaf_action_end[0]) + 1), "leaf actions out of range"),
        (lambda a: a.code_op.__setitem__(0, 999), "array code_op has a value out of range"),
        (lambda a: a.tree_root.__setitem__(0, -5), "array tree_root has a value out of range"),
        (lambda a: setattr(a, "stmt_span", a.stmt_span[:-1]), "array stmt_span has the wrong length"),
        (lambda a: setattr(a, "node_item", a.node_item.astype("int64")), "array node_item has the wrong shape or type"),
        (lambda a: a.program_start.__setitem__(1, int(a.program_start[2]) + 1), "bad program_start"),
    ],
)
def test_corrupt_arrays_are_rejected(mutation, words: str) -> None:
    policy, _ = _loan()
    arrays = PolicyArrays.from_bytes(policy.compiled.to_bytes())
    mutation(arrays)
    with pytest.raises(CorruptArtefact, match=words):
        arrays.validate()


def test_corrupt_bytes_are_rejected_without_crashing() -> None:
    policy, _ = _loan()
    data = policy.compiled.to_bytes()
    for broken in (b"", b"garbage", data[:40], data[:-7], data.replace(b"DECIDE-POLICY", b"DECIDE-POLICX")):
        with pytest.raises(CorruptArtefact):
            CompiledPolicy.from_bytes(broken)
    newer = bytearray(data)
    newer[len(b"DECIDE-POLICY\x00")] = 99
    with pytest.raises(CorruptArtefact, match="format version 99"):
        CompiledPolicy.from_bytes(bytes(newer))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0), st.integers(0, 255))
def test_flipping_any_byte_never_crashes_the_loader(position: int, value: int) -> None:
    policy, case = _loan()
    data = bytearray(policy.compiled.to_bytes())
    data[position % len(data)] = value
    try:
        loaded = CompiledPolicy.from_bytes(bytes(data))
    except CorruptArtefact:
        return
    # A flip that still validates must evaluate without crashing (it may give another decision).
    try:
        loaded.evaluate(case["input"], as_of="2026-11-21", lists={"blacklist": []})
    except (InputError, EvaluationError, CorruptArtefact):
        pass


def test_a_pickled_policy_is_compiled_again_and_decides_the_same() -> None:
    policy, case = _loan()
    lists = {"blacklist": []} | case.get("lists", {})
    copy = pickle.loads(pickle.dumps(policy))
    assert copy.content_hash == policy.content_hash
    for engine in ("reference", "compiled"):
        assert copy.evaluate(case["input"], as_of="2026-11-21", lists=lists, engine=engine) == policy.evaluate(
            case["input"], as_of="2026-11-21", lists=lists, engine=engine
        )
