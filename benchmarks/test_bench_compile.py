"""Benchmarks: parse + check time for the example policies and generated policies of 200 and 2,000 rules,
and single-record latency of the reference evaluator. Run with

    python -m pytest benchmarks --benchmark-only

Targets are read from these numbers (BENCHMARKS.md), never asserted as timings in tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import dsl
from benchmarks.generate import generated_policy
from compiler import check_source, compile_file
from compiler.testcases import load_cases

POLICIES = Path(__file__).resolve().parents[1] / "policies"
EXAMPLES = sorted(POLICIES.glob("*.policy"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_parse_and_check_example(benchmark, path: Path) -> None:
    source = path.read_bytes()
    diagnostics = benchmark(check_source, source, path.name)
    assert not [d for d in diagnostics if d.is_error]


@pytest.mark.parametrize("rules", [200, 2000], ids=["200-rules", "2000-rules"])
def test_parse_and_check_generated(benchmark, rules: int) -> None:
    source = generated_policy(rules)
    diagnostics = benchmark.pedantic(check_source, args=(source, "generated.policy"), rounds=5, warmup_rounds=1)
    assert not [d for d in diagnostics if d.is_error]
    benchmark.extra_info["lines"] = source.count("\n") + 1


@pytest.mark.parametrize("rules", [2000], ids=["2000-rules"])
def test_parse_only_generated(benchmark, rules: int) -> None:
    source = generated_policy(rules)
    benchmark.pedantic(dsl.parse, args=(source, "generated.policy"), rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_reference_evaluate_single(benchmark, path: Path) -> None:
    policy = compile_file(path)
    case = next(c for c in load_cases(path.with_suffix(".tests.json")) if "error" not in c["expect"])
    lists = {name: [] for name in policy.store_lists} | case.get("lists", {})
    result = benchmark(policy.evaluate, case["input"], as_of=case.get("as_of", "2026-11-21"), lists=lists)
    assert result["policy"] == policy.name
