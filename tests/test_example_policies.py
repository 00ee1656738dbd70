"""The example policies in policies/: they check cleanly and every one of their test cases passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler import compile_file
from compiler.testcases import load_cases, run_case
from tests.conftest import POLICIES

POLICY_FILES = sorted(POLICIES.glob("*.policy"))
CASES = [(path, case) for path in POLICY_FILES for case in load_cases(path.with_suffix(".tests.json"))]


def test_there_is_one_example_policy_per_kind() -> None:
    kinds = {compile_file(path).kind for path in POLICY_FILES}
    assert {"approval", "limit", "collections", "offer"} <= kinds


@pytest.mark.parametrize("path", POLICY_FILES, ids=[p.stem for p in POLICY_FILES])
def test_example_policy_compiles_without_errors_and_has_enough_cases(path: Path) -> None:
    policy = compile_file(path)
    assert not [d for d in policy.diagnostics if d.is_error]
    assert len(load_cases(path.with_suffix(".tests.json"))) >= 12


@pytest.mark.parametrize(("path", "case"), CASES, ids=[f"{path.stem}::{case['name']}" for path, case in CASES])
def test_example_case_passes(path: Path, case: dict) -> None:
    outcome = run_case(compile_file(path), case)
    assert outcome.passed, "\n".join(outcome.failures)


def _reason_codes(path: Path) -> set[str]:
    from dsl import ast

    policy = compile_file(path).ast
    codes = set()
    for node in ast.walk(policy):
        if isinstance(node, ast.Bin) and node.reason:
            codes.add(node.reason)
        if isinstance(node, ast.AddReason):
            codes |= {sub.value for sub in ast.walk(node.expr) if isinstance(sub, ast.String)}
    return codes


@pytest.mark.parametrize("path", POLICY_FILES, ids=[p.stem for p in POLICY_FILES])
def test_every_reason_code_is_expected_by_some_case(path: Path) -> None:
    expected = {
        code for case in load_cases(path.with_suffix(".tests.json")) for code in case["expect"].get("reasons", [])
    }
    assert _reason_codes(path) <= expected, sorted(_reason_codes(path) - expected)
