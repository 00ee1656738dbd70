"""Peer: `policies/consumer_loan.policy` written out by hand as one plain Python function.

This is the floor for a Python call: no validation, no interpretation, no allocation beyond the
result dict. It must give exactly what Decide's reference interpreter gives in `outputs`
(`test_bench_peers.py::test_plain_python_agrees`), so it follows the engine's rules to the letter:

* the arithmetic is IEEE double arithmetic in the policy's order of operations
  (`free_cash = (MonthlyIncome - DebtRatio * MonthlyIncome) - living_costs`);
* a missing optional input (None) makes every calculation that uses it missing, and a missing
  condition does not match (so `free_cash < 500` cannot fire when income is missing, but R11 before
  it catches that case anyway);
* a knockout `stop`s before scoring, so score, risk_band and apr stay null and limit stays 0;
* `reasons` of a band-D decline are the scorecard's reason codes ordered by points lost (the
  characteristic's best points minus the points it got), most first, ties in characteristic
  order, at most 4;
* `limit` is a whole number and comes out as an int, as the engine's result shows it.

The input record is trusted to be valid (as `validate_input` would leave it); `blacklist` is a
set (or any container) of national ids.
"""

from __future__ import annotations

import math
from collections.abc import Container, Mapping
from typing import Any


def decide(record: Mapping[str, Any], blacklist: Container[str]) -> dict[str, Any]:
    """Evaluate consumer_loan on one record; returns the outputs in the engine's order, reasons last."""
    income = record.get("MonthlyIncome")
    age = record["age"]
    utilisation = record["RevolvingUtilizationOfUnsecuredLines"]
    late_90 = record["NumberOfTimes90DaysLate"]

    # 1. Knockouts (first hit, then stop).
    national_id = record.get("national_id")
    if national_id is not None and national_id in blacklist:
        knockout = "K01"
    elif age < 18:
        knockout = "K02"
    elif late_90 >= 3:
        knockout = "K03"
    elif utilisation > 1.5:
        knockout = "K04"
    else:
        knockout = None
    if knockout is not None:
        return {"decision": "decline", "limit": 0, "apr": None, "score": None, "risk_band": None, "reasons": [knockout]}

    debt_ratio = record["DebtRatio"]
    open_lines = record["NumberOfOpenCreditLinesAndLoans"]

    # 2. Scorecard, base 600. Each characteristic remembers (points lost, code) of a bin with a reason;
    # points lost = the characteristic's best points (25, 30, 15, 20, 10, 20) minus the points got.
    score = 600
    if age < 25:
        score -= 30
        r_age = (55, "S01")
    elif age < 35:
        score -= 10
        r_age = (35, "S01")
    elif age < 60:
        score += 10
        r_age = None
    else:
        score += 25
        r_age = None
    if utilisation < 0.1:
        score += 30
        r_util = None
    elif utilisation < 0.5:
        score += 5
        r_util = None
    elif utilisation < 0.9:
        score -= 25
        r_util = (55, "S02")
    else:
        score -= 60
        r_util = (90, "S02")
    if debt_ratio < 0.35:
        score += 15
        r_debt = None
    elif debt_ratio < 0.5:
        score -= 10
        r_debt = (25, "S03")
    else:
        score -= 35
        r_debt = (50, "S03")
    if income is None:
        score -= 15
        r_income = (35, "S04")
    elif income < 2500:
        score -= 20
        r_income = (40, "S04")
    elif income < 6000:
        r_income = None
    else:
        score += 20
        r_income = None
    if open_lines < 3:
        score -= 15
        r_lines = (25, "S05")
    elif open_lines <= 15:
        score += 10
        r_lines = None
    else:
        score -= 5
        r_lines = (15, "S05")
    if late_90 == 0:
        score += 20
        r_late = None
    else:
        score -= 40
        r_late = (60, "S06")

    # 3. Risk band (first hit).
    if score >= 680 and late_90 == 0:
        band, multiple = "A", 3
    elif score >= 630:
        band, multiple = "B", 2
    elif score >= 580 and late_90 == 0:
        band, multiple = "C", 1.5
    else:
        band, multiple = "D", 0

    # 4. Pricing tree.
    if band == "A":
        apr = 0.079 if record["NumberRealEstateLoansOrLines"] >= 1 else 0.089
    elif band == "B" or band == "C":
        apr = 0.119 if utilisation < 0.5 else 0.149
    else:
        apr = 0.199

    # 5. Final decision (first hit).
    if band == "D":
        ranked = [r for r in (r_age, r_util, r_debt, r_income, r_lines, r_late) if r is not None]
        ranked.sort(key=_points_lost, reverse=True)  # stable: ties keep characteristic order
        reasons = []
        for _, code in ranked:
            if code not in reasons:
                reasons.append(code)
        return {
            "decision": "decline",
            "limit": 0,
            "apr": apr,
            "score": score,
            "risk_band": band,
            "reasons": reasons[:4],
        }
    if income is None:
        return {"decision": "refer", "limit": 0, "apr": apr, "score": score, "risk_band": band, "reasons": ["R11"]}
    dependants = record.get("NumberOfDependents")
    if dependants is None:
        dependants = 0
    free_cash = income - debt_ratio * income - (900 + 350 * dependants)
    if free_cash < 500:
        return {"decision": "decline", "limit": 0, "apr": apr, "score": score, "risk_band": band, "reasons": ["R12"]}
    limit = math.floor(min(income * multiple, free_cash * 6) / 100) * 100
    if limit < 1000:
        limit = 1000
    elif limit > 35000:
        limit = 35000
    return {"decision": "approve", "limit": limit, "apr": apr, "score": score, "risk_band": band, "reasons": []}


def _points_lost(entry: tuple[int, str]) -> int:
    return entry[0]
