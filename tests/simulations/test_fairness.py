"""Fair-lending figures (`--protected`): each group's approval rate and adverse impact ratio against the most
favoured group, flagged under four fifths — checked with pandas over the reference evaluator's decisions, on
hand-made data and on the Boston HMDA file; the change a new version makes to each ratio; a protected column
that is a policy input refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

import simulations
from compiler.policy import compile_file
from dsl.errors import InputError
from tests.conftest import POLICIES, REPO, SHARED
from tests.simulations.test_compare import STRICTER, outcomes
from tests.simulations.test_run import LISTS, POLICY, applicants


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    frame = applicants(500, seed=3)
    rng = np.random.default_rng(3)
    # A group the policy cannot see, but whose incomes are lower: a disparity the policy's rules create.
    frame["group"] = np.where(rng.random(len(frame)) < 0.3, "B", "A")
    frame.loc[frame["group"] == "B", "MonthlyIncome"] = frame["MonthlyIncome"] * 0.4
    path = tmp_path_factory.mktemp("fairness") / "applicants.parquet"
    frame.to_parquet(path, index=False)
    return path, frame


def expected_groups(policy, frame: pd.DataFrame) -> pd.DataFrame:
    table = frame.assign(decision=outcomes(policy, frame.drop(columns=["group"])))
    decided = table[table["decision"] != "(input error)"]
    rates = pd.DataFrame(
        {
            "decided": decided.groupby("group").size(),
            "favourable": decided.assign(yes=decided["decision"] == "approve").groupby("group")["yes"].sum(),
        }
    )
    rates["rate"] = rates["favourable"] / rates["decided"]
    rates["air"] = rates["rate"] / rates["rate"].max()
    return rates


def test_each_groups_rate_and_adverse_impact_ratio(data: tuple[Path, pd.DataFrame]) -> None:
    path, frame = data
    result = simulations.run(POLICY, [path], lists=LISTS, as_of="2026-12-01", protected=["group"], batch_rows=90)
    figures = result.metrics["fair_lending"]["group"]
    assert figures["favourable"] == "decision = approve"
    expected = expected_groups(POLICY, frame)
    assert [row["group"] for row in figures["groups"]] == ["A", "B"]
    for row in figures["groups"]:
        want = expected.loc[row["group"]]
        assert (row["decided"], row["favourable"]) == (want["decided"], want["favourable"])
        assert row["rate"] == pytest.approx(want["rate"], rel=1e-12)
        assert row["adverse_impact_ratio"] == pytest.approx(want["air"], rel=1e-12)
        assert row["flagged"] == (want["air"] < 0.8)
    assert figures["most_favoured"] == expected["rate"].idxmax()
    assert any(row["flagged"] for row in figures["groups"])  # the lower incomes of B show
    assert "group" not in result.metrics.get("segments", {})  # a protected column is not a segment too


def test_a_change_moves_the_ratios(data: tuple[Path, pd.DataFrame]) -> None:
    path, frame = data
    result = simulations.run(STRICTER, [path], against=POLICY, lists=LISTS, as_of="2026-12-01", protected=["group"])
    moved = {row["group"]: row for row in result.comparison["fair_lending"]["group"]}
    before, after = expected_groups(POLICY, frame), expected_groups(STRICTER, frame)
    for group in ("A", "B"):
        assert moved[group]["ratio_before"] == pytest.approx(before.loc[group, "air"], rel=1e-12)
        assert moved[group]["ratio_after"] == pytest.approx(after.loc[group, "air"], rel=1e-12)


def test_a_protected_column_must_not_be_a_policy_input(data: tuple[Path, pd.DataFrame]) -> None:
    path, _ = data
    with pytest.raises(simulations.SimulationError, match="age is an input of consumer_loan"):
        simulations.run(POLICY, [path], lists=LISTS, protected=["age"])


def test_an_offer_policys_favourable_outcome_is_an_offer(tmp_path: Path) -> None:
    policy = compile_file(POLICIES / "cross_sell.policy")
    cases = [case["input"] for case in __import__("json").loads((POLICIES / "cross_sell.tests.json").read_text())
             if "error" not in case["expect"]]  # fmt: skip
    regions = ["north", "south", "east"]
    rows = [{**case, "region": region} for region in regions for case in cases]
    (tmp_path / "customers.jsonl").write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    frame = pd.DataFrame(rows)
    result = simulations.run(policy, [tmp_path / "customers.jsonl"], as_of="2026-11-21", protected=["region"],
                             lists={name: [] for name in policy.store_lists})  # fmt: skip
    figures = result.metrics["fair_lending"]["region"]
    assert figures["favourable"] == "offers not empty"
    for row in figures["groups"]:
        records = frame[frame["region"] == row["group"]].drop(columns=["region"]).to_dict("records")
        offered = 0
        for record in records:
            record = {k: v for k, v in record.items() if v is not None and v == v}
            try:
                offered += bool(policy.evaluate(record, as_of="2026-11-21", lists={n: [] for n in policy.store_lists},
                                                engine="reference")["outputs"]["offers"])  # fmt: skip
            except InputError:
                continue
        assert row["favourable"] == offered


def test_hmda_boston_a_race_blind_policy_and_the_four_fifths_rule() -> None:
    path = SHARED / "data" / "hmda_boston_mortgage" / "AER_HMDA.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data is not next to the repository)")
    query = (REPO / "simulations" / "examples" / "hmda_boston.sql").read_text()
    policy = compile_file(POLICIES / "mortgage.policy")
    result = simulations.run(policy, [path], query=query, as_of="2026-12-01", label="deny", protected=["afam"])
    raw = pd.read_csv(path)
    assert result.metrics["rows"] == len(raw) == 2380
    decisions = []
    for row in raw.to_dict("records"):
        record = {name: row[name] for name in ("pirat", "hirat", "lvrat", "phist", "insurance")}
        record.update(chist=int(row["chist"]), mhist=int(row["mhist"]))
        decisions.append(policy.evaluate(record, as_of="2026-12-01", engine="reference")["outputs"]["decision"])
    raw["decision"] = decisions
    raw["group"] = np.where(raw["afam"] == "yes", "African American", "other")
    rates = raw.groupby("group")["decision"].apply(lambda d: (d == "approve").mean())
    groups = {row["group"]: row for row in result.metrics["fair_lending"]["afam"]["groups"]}
    for group, rate in rates.items():
        assert groups[group]["rate"] == pytest.approx(rate, rel=1e-12)
        assert groups[group]["adverse_impact_ratio"] == pytest.approx(rate / rates.max(), rel=1e-12)
    assert groups["African American"]["flagged"]  # the race-blind rules still approve fewer: disparate impact
    denied = raw["deny"] == "yes"
    approved = raw["decision"] == "approve"
    assert result.metrics["approval"]["bad_rate_approved"] == pytest.approx(denied[approved].mean(), rel=1e-12)
