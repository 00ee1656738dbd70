"""Benchmarks: parse + check time and compile time (lowering to decision-tree arrays, with the compiled size)
for the example policies and generated policies of 200 and 2,000 rules, and single-record latency of the
reference interpreter and the compiled path. Run with

    python -m pytest benchmarks --benchmark-only

Targets are read from these numbers (BENCHMARKS.md), never asserted as timings in tests.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import pytest

import dsl
from benchmarks.generate import generated_policy
from benchmarks.stats import record_p99
from compiler import check_source, compile_file
from compiler.evaluate import implementation
from compiler.lower.arrays import compile_arrays
from compiler.lower.to_trees import lower
from compiler.policy import analyse_source
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


@pytest.mark.parametrize("rules", [200, 2000], ids=["200-rules", "2000-rules"])
def test_compile_generated(benchmark, rules: int) -> None:
    """Lowering and flattening only (the checked AST is built once, outside the timing)."""
    tree, analysis, _, _ = analyse_source(generated_policy(rules), "generated.policy")
    arrays = benchmark.pedantic(lambda: compile_arrays(lower(tree, analysis), {}), rounds=5, warmup_rounds=1)
    benchmark.extra_info["compiled_bytes"] = len(arrays.to_bytes())
    benchmark.extra_info["nodes"] = arrays.n_nodes


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_compile_example(benchmark, path: Path) -> None:
    tree, analysis, _, _ = analyse_source(path.read_bytes(), path.name)
    arrays = benchmark(lambda: compile_arrays(lower(tree, analysis), {}))
    benchmark.extra_info["compiled_bytes"] = len(arrays.to_bytes())


@pytest.mark.parametrize("engine", ["reference", "compiled"])
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_evaluate_single(benchmark, path: Path, engine: str) -> None:
    policy = compile_file(path)
    case = next(c for c in load_cases(path.with_suffix(".tests.json")) if "error" not in c["expect"])
    lists = policy.prepare_lists({name: [] for name in policy.store_lists} | case.get("lists", {}))
    as_of = _dt.date.fromisoformat(case.get("as_of", "2026-11-21"))
    result = benchmark(policy.evaluate, case["input"], as_of=as_of, lists=lists, engine=engine)
    assert result["policy"] == policy.name
    benchmark.extra_info["implementation"] = implementation.IMPLEMENTATION if engine == "compiled" else "reference"
    record_p99(benchmark)


BATCH_ROWS = 1_000_000


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_evaluate_batch_example(benchmark, path: Path) -> None:
    """`evaluate_batch` on 1,000,000 rows: the policy's valid test cases, repeated (one evaluation date)."""
    import numpy as np
    import pyarrow as pa

    policy = compile_file(path)
    cases = [c for c in load_cases(path.with_suffix(".tests.json")) if "error" not in c["expect"]]
    as_of = cases[0].get("as_of", "2026-11-21")
    cases = [c for c in cases if c.get("as_of", "2026-11-21") == as_of and not c.get("lists")]
    table = pa.Table.from_pylist([c["input"] for c in cases])
    table = table.take(np.arange(BATCH_ROWS) % table.num_rows)
    lists = {name: [] for name in policy.store_lists}
    out = benchmark.pedantic(
        policy.evaluate_batch, args=(table,), kwargs={"as_of": as_of, "lists": lists}, rounds=3, warmup_rounds=1
    )
    assert out.num_rows == BATCH_ROWS and out.column("error").null_count == BATCH_ROWS
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    if stats is not None and stats.rounds:
        benchmark.extra_info["decisions_per_s"] = round(BATCH_ROWS / stats.median)
