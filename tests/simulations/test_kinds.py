"""The figures of the limit, collections and offer kinds, each checked with pandas over the reference
evaluator's row-by-row answers, on the example policies' own test records (repeated, with labels drawn at
random): granted limit and changes by action; workload and planned contacts a day by action; offers per
customer, and each offer's rows, value and take-up.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

import simulations
from compiler.policy import compile_file
from dsl.errors import InputError
from tests.conftest import POLICIES

AS_OF = "2026-11-21"


def cases_data(name: str, tmp_path: Path, copies: int = 7) -> tuple[Path, list[dict], list[int]]:
    """The policy's valid test records, `copies` times, as JSON Lines, with a random 0/1 label each."""
    cases = [c for c in orjson.loads((POLICIES / f"{name}.tests.json").read_bytes()) if "error" not in c["expect"]]
    rows = [dict(case["input"]) for _ in range(copies) for case in cases]
    labels = list(np.random.default_rng(len(rows)).integers(0, 2, len(rows)))
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(
        b"".join(orjson.dumps({**row, "observed": int(label)}) + b"\n" for row, label in zip(rows, labels, strict=True))
    )
    return path, rows, [int(label) for label in labels]


def answers(policy, rows: list[dict], labels: list[int]) -> pd.DataFrame:
    decided = []
    lists = {name: [] for name in policy.store_lists}
    for row, label in zip(rows, labels, strict=True):
        try:
            outputs = policy.evaluate(row, as_of=AS_OF, lists=lists, engine="reference")["outputs"]
        except InputError:
            continue
        decided.append({**outputs, "observed": label})
    return pd.DataFrame(decided)


def run(policy, path: Path):
    return simulations.run(policy, [path], as_of=AS_OF, label="observed", batch_rows=13,
                           lists={name: [] for name in policy.store_lists})  # fmt: skip


def test_limit_figures(tmp_path: Path) -> None:
    policy = compile_file(POLICIES / "credit_line.policy")
    path, rows, labels = cases_data("credit_line", tmp_path)
    figures = run(policy, path).metrics["limit"]
    table = answers(policy, rows, labels)
    granted = table["new_limit"].dropna()
    assert figures["granted"]["rows"] == len(granted)
    assert figures["granted"]["total"] == pytest.approx(float(sum(map(Fraction, granted))), rel=1e-12)
    by_action = {entry["action"]: entry for entry in figures["actions"]}
    for action, group in table.groupby("decision"):
        entry = by_action[action]
        assert entry["rows"] == len(group)
        assert entry["change_total"] == pytest.approx(group["limit_change"].sum(), rel=1e-12, abs=1e-9)
    assert set(by_action) == set(table["decision"])


def test_collections_figures(tmp_path: Path) -> None:
    policy = compile_file(POLICIES / "early_collections.policy")
    path, rows, labels = cases_data("early_collections", tmp_path)
    figures = run(policy, path).metrics["collections"]
    table = answers(policy, rows, labels)
    by_action = {entry["action"]: entry for entry in figures["actions"]}
    total = 0.0
    for action, group in table.groupby("action"):
        days = group["next_contact_days"].dropna()
        per_day = float((1 / days[days > 0]).sum())
        total += per_day
        assert by_action[action]["rows"] == len(group)
        assert by_action[action]["contacts_per_day"] == pytest.approx(per_day, rel=1e-12, abs=1e-12)
    assert figures["contacts_per_day"] == pytest.approx(total, rel=1e-12)


def test_offer_figures(tmp_path: Path) -> None:
    policy = compile_file(POLICIES / "cross_sell.policy")
    path, rows, labels = cases_data("cross_sell", tmp_path)
    metrics = run(policy, path).metrics
    figures = metrics["offer"]
    table = answers(policy, rows, labels)
    lengths = table["offers"].map(len)
    assert figures["offers_per_customer"] == pytest.approx(lengths.mean(), rel=1e-12)
    assert figures["customers_offered"] == int((lengths > 0).sum())
    made = [(offer["product"], offer["ev"], label) for offers, label in zip(table["offers"], table["observed"],
            strict=True) for offer in offers]  # fmt: skip
    frame = pd.DataFrame(made, columns=["product", "ev", "observed"])
    event = metrics["label"]["bad_value"]
    assert event == "1"
    by_offer = {entry["offer"]: entry for entry in figures["offers"]}
    assert set(by_offer) == set(frame["product"])
    for product, group in frame.groupby("product"):
        entry = by_offer[product]
        assert entry["rows"] == len(group)
        assert entry["value_total"] == pytest.approx(group["ev"].sum(), rel=1e-12)
        assert entry["take_up"] == pytest.approx((group["observed"] == 1).mean(), rel=1e-12)


def test_offer_roi_from_revenue_and_cost_columns(tmp_path: Path) -> None:
    policy = compile_file(POLICIES / "cross_sell.policy")
    path, rows, labels = cases_data("cross_sell", tmp_path)
    rng = np.random.default_rng(5)
    revenue = [float(x) for x in rng.integers(0, 400, len(rows))]
    cost = [float(x) for x in rng.integers(1, 60, len(rows))]
    lines = [orjson.dumps({**row, "observed": label, "revenue": r, "cost": c}) + b"\n"
             for row, label, r, c in zip(rows, labels, revenue, cost, strict=True)]  # fmt: skip
    path.write_bytes(b"".join(lines))
    result = simulations.run(policy, [path], as_of=AS_OF, label="observed", offer_revenue="revenue",
                             offer_cost="cost", batch_rows=11, lists={n: [] for n in policy.store_lists})  # fmt: skip
    table = answers(policy, rows, labels).assign(
        revenue=[r for r, row in zip(revenue, rows, strict=True) if _decided(policy, row)],
        cost=[c for c, row in zip(cost, rows, strict=True) if _decided(policy, row)],
    )
    made = pd.DataFrame([(o["product"], label, r, c) for offers, label, r, c in
                         zip(table["offers"], table["observed"], table["revenue"], table["cost"], strict=True)
                         for o in offers], columns=["product", "observed", "revenue", "cost"])  # fmt: skip
    by_offer = {entry["offer"]: entry for entry in result.metrics["offer"]["offers"]}
    for product, group in made.groupby("product"):
        entry = by_offer[product]
        revenue_taken = group.loc[group["observed"] == 1, "revenue"].sum()
        assert entry["revenue"] == pytest.approx(revenue_taken, rel=1e-12, abs=1e-9)
        assert entry["cost"] == pytest.approx(group["cost"].sum(), rel=1e-12)
        assert entry["roi"] == pytest.approx(revenue_taken / group["cost"].sum(), rel=1e-12)
        assert entry["drop"] == (revenue_taken < group["cost"].sum())


def _decided(policy, row: dict) -> bool:
    try:
        policy.evaluate(row, as_of=AS_OF, lists={n: [] for n in policy.store_lists}, engine="reference")
    except InputError:
        return False
    return True
