"""Comparing two versions (`run(..., against=...)`): the swap-set matrix, swap-ins and -outs with their bad
rates, the deltas, the items whose hit counts moved, and the sample of swapped rows — each checked against the
reference evaluator's row-by-row answers for both versions, tallied with pandas; the same whatever the batch
size; personal values masked in the sample.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simulations
from compiler.policy import compile_file
from dsl.errors import InputError
from tests.conftest import REPO
from tests.simulations.test_run import LISTS, POLICY, applicants

STRICTER = compile_file(REPO / "simulations" / "examples" / "consumer_loan_stricter.policy")


def outcomes(policy, frame: pd.DataFrame) -> list[str]:
    """Each row's decision by the reference evaluator, or "(input error)"."""
    answers = []
    for record in frame.drop(columns=["bad"]).to_dict("records"):
        record = {name: None if isinstance(v, float) and np.isnan(v) else v for name, v in record.items()}
        record = {name: int(v) if isinstance(v, np.integer) else v for name, v in record.items()}
        try:
            answers.append(
                policy.evaluate(record, lists=LISTS, as_of="2026-12-01", engine="reference")["outputs"]["decision"]
            )
        except InputError:
            answers.append("(input error)")
    return answers


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    frame = applicants(400, seed=11)
    frame.loc[5, "national_id"] = LISTS["blacklist"][0]  # a knockout on the list, in both versions
    path = tmp_path_factory.mktemp("compare") / "applicants.parquet"
    frame.to_parquet(path, index=False)
    return path, frame


def compared(path: Path, batch_rows: int = 64) -> simulations.SimulationResult:
    return simulations.run(STRICTER, [path], against=POLICY, lists=LISTS, as_of="2026-12-01", label="bad",
                           batch_rows=batch_rows)  # fmt: skip


def test_the_swap_set_matrix_matches_both_versions_row_by_row(data: tuple[Path, pd.DataFrame]) -> None:
    path, frame = data
    result = compared(path)
    table = frame.assign(before=outcomes(POLICY, frame), after=outcomes(STRICTER, frame))
    comparison = result.comparison
    assert comparison["output"] == "decision" and comparison["rows"] == len(frame)
    expected = table.groupby(["before", "after"]).agg(rows=("bad", "size"), bads=("bad", "sum")).reset_index()
    cells = {(cell["before"], cell["after"]): cell for cell in comparison["cells"]}
    assert set(cells) == set(zip(expected["before"], expected["after"], strict=True))
    for row in expected.itertuples():
        cell = cells[(row.before, row.after)]
        assert (cell["rows"], cell["bads"]) == (row.rows, row.bads)
        assert cell["bad_rate"] == pytest.approx(row.bads / row.rows, rel=1e-12)
    assert ("(input error)", "(input error)") in cells  # refused rows are compared too
    changed = table[table["before"] != table["after"]]
    assert comparison["changed_rows"] == len(changed) > 0
    swap_out = table[(table["before"] == "approve") & (table["after"] != "approve")]
    swap_in = table[(table["before"] != "approve") & (table["after"] == "approve")]
    assert (comparison["swap_out"]["rows"], comparison["swap_out"]["bads"]) == (len(swap_out), swap_out["bad"].sum())
    assert comparison["swap_in"]["rows"] == len(swap_in)
    before, after = result.against.metrics["approval"], result.metrics["approval"]
    assert comparison["deltas"]["approve_rate"] == pytest.approx(after["approve_rate"] - before["approve_rate"])


def test_moved_hits_and_the_sample_of_swapped_rows(data: tuple[Path, pd.DataFrame]) -> None:
    path, frame = data
    result = compared(path)
    comparison = result.comparison
    before_hits = {(s["statement"], i["label"]): i["rows"] for s in result.against.metrics["hits"] for i in s["items"]}
    after_hits = {(s["statement"], i["label"]): i["rows"] for s in result.metrics["hits"] for i in s["items"]}
    moved = {(m["statement"], m["label"]): m for m in comparison["hit_changes"]}
    assert ("band", "4") in moved  # the stricter band C sends rows to band D
    for key, item in moved.items():
        assert (item["before"], item["after"]) == (before_hits[key], after_hits[key]) and item["delta"] != 0
    deltas = [abs(item["delta"]) for item in comparison["hit_changes"]]
    assert deltas == sorted(deltas, reverse=True)
    table = frame.assign(before=outcomes(POLICY, frame), after=outcomes(STRICTER, frame))
    swapped = table[table["before"] != table["after"]].head(20)
    sample = comparison["sample"]
    assert len(sample) == len(swapped)
    for row, (_, expected) in zip(sample, swapped.iterrows(), strict=True):
        assert row["input"]["age"] == expected["age"]  # the first swapped rows, in data order
        assert row["input"]["national_id"].startswith("****") and row["input"]["national_id"].endswith("6789")
        assert row["input"]["national_id"] != expected["national_id"]
        assert (row["before"]["outputs"]["decision"], row["after"]["outputs"]["decision"]) == (
            expected["before"],
            expected["after"],
        )
        assert row["after"]["trace"] and row["before"]["trace"]


def test_the_comparison_does_not_depend_on_the_batch_size(data: tuple[Path, pd.DataFrame]) -> None:
    path, _ = data
    assert (
        compared(path, batch_rows=7).to_json()["comparison"]
        == compared(path, batch_rows=10_000).to_json()["comparison"]
    )


def test_the_compared_output_must_be_shared(data: tuple[Path, pd.DataFrame]) -> None:
    path, _ = data
    with pytest.raises(simulations.SimulationError, match="both versions must have the output 'offers'"):
        simulations.run(STRICTER, [path], against=POLICY, compare_on="offers", lists=LISTS)
    on_band = simulations.run(STRICTER, [path], against=POLICY, compare_on="risk_band", lists=LISTS)
    assert on_band.comparison["output"] == "risk_band" and "swap_in" not in on_band.comparison
