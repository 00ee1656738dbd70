"""Hit counts (compiler/hits.py): `evaluate_batch(hits=...)`, counted by the GIL-free kernel from its events
without building a trace, equal the counts read from the reference evaluator's traces, row by row — on the
example policies' own cases, on real data where ../shared is present, and on generated policies and records.
The trace's grammar (spec §6) is checked by hand on one record of each statement kind.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from compiler import EvaluationError, InputError, compile_file
from compiler.hits import EVALUATED, entry_hits, hits_from_trace
from compiler.testcases import load_cases
from tests.conftest import POLICIES, SHARED
from tests.strategies import compiled_or_discard, policies_with_text, valid_input_records

EXAMPLES = sorted(path.stem for path in POLICIES.glob("*.policy"))


def reference_hits(policy, rows: list[dict], **options) -> Counter:
    """The counts from each decided row's trace, by the reference evaluator, one row at a time."""
    entries: Counter = Counter()
    for row in rows:
        try:
            entries.update(policy.evaluate(row, trace=True, engine="reference", **options)["trace"])
        except (InputError, EvaluationError):
            continue
    return hits_from_trace(entries, policy.info)


def test_trace_entries_name_their_items() -> None:
    assert entry_hits("knockouts", "-", "rules first") == []
    assert entry_hits("final", "R11,R12,R11", "rules all") == ["R11", "R12"]
    assert entry_hits("band", "3", "table first") == ["3"]
    assert entry_hits("risk_score", "3,0,1", "scorecard") == ["1.3", "3.1"]  # 0: no bin of characteristic 2
    assert entry_hits("pricing", "2.1.3", "tree") == ["2", "2.1", "2.1.3"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_batch_hits_equal_the_reference_traces_on_the_example_cases(name: str) -> None:
    policy = compile_file(POLICIES / f"{name}.policy")
    cases = load_cases(POLICIES / f"{name}.tests.json")
    lists = {list_name: ["XX999999"] for list_name in policy.store_lists}
    counted: Counter = Counter()
    expected: Counter = Counter()
    for case in cases:
        as_of = case.get("as_of", "2026-11-21")
        try:
            table = pa.Table.from_pylist([case["input"]])
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            continue  # a case of a deliberately wrong type
        try:
            policy.evaluate_batch(table, as_of=as_of, lists=lists, hits=counted)
        except InputError:
            continue  # the whole table refused (an undeclared field): no row decided, none counted
        expected += reference_hits(policy, table.to_pylist(), as_of=as_of, lists=lists)
    assert counted == expected
    assert sum(n for (_, label), n in counted.items() if label is not EVALUATED) > 0


def test_batch_hits_equal_the_reference_traces_on_real_data() -> None:
    path = SHARED / "data" / "give_me_some_credit" / "cs-training.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data is not next to the repository)")
    import pandas as pd

    policy = compile_file(POLICIES / "consumer_loan.policy")
    frame = pd.read_csv(path, na_values=["NA"], nrows=3000)
    frame = frame[[f.name for f in policy.inputs if f.name in frame.columns]]
    rows = [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]
    rows = [{k: int(v) if isinstance(v, float) and v.is_integer() and k != "DebtRatio" else v
             for k, v in row.items()} for row in rows]  # fmt: skip
    table = pa.Table.from_pandas(frame, preserve_index=False)
    counted: Counter = Counter()
    policy.evaluate_batch(table, as_of="2026-12-01", lists={"blacklist": []}, hits=counted, threads=2)
    assert counted == reference_hits(policy, table.to_pylist(), as_of="2026-12-01", lists={"blacklist": []})
    assert counted[("knockouts", EVALUATED)] > 2000  # decided rows, each evaluates the knockouts


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_batch_hits_equal_the_reference_traces_on_generated_policies(data) -> None:
    _, text = data.draw(policies_with_text())
    policy = compiled_or_discard(text)
    assume(all(f.type.name != "list" for f in policy.ast.inputs))
    rows = data.draw(st.lists(valid_input_records(policy.ast), min_size=1, max_size=6))
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        assume(False)  # a column arrow itself cannot hold (see tests/test_batch.py)
    lists = {name: [] for name in policy.store_lists}
    counted: Counter = Counter()
    policy.evaluate_batch(table, as_of="2026-11-21", lists=lists, hits=counted)
    assert counted == reference_hits(policy, table.to_pylist(), as_of="2026-11-21", lists=lists)
