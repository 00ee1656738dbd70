"""Peer: `policies/consumer_loan.policy` as a GoRules JDM decision graph, run by zen-engine.

The graph (built as JSON by `graph()`; `python -m benchmarks.peers.zen_graph` prints it for the GoRules
editor) is what a JDM author would draw for the policy:

    request (inputNode)
      -> lets          expressionNode  dependants, living_costs, monthly_debt, free_cash
      -> knockouts     decisionTable (first)  K01..K04, last row: no knockout
      -> knocked out?  switchNode (first)
           yes -> knockout_result   expressionNode  decline, reasons [code], nothing scored
           no  -> score_age .. score_late_90   six decisionTables (first), one per characteristic
               -> risk_score        expressionNode  600 + the six points
               -> adverse_action    decisionTable (collect)  the scorecard's reason bins
               -> band              decisionTable (first)
               -> pricing           decisionTable (first)  the pricing tree, one row per leaf
               -> final             decisionTable (first)  R10, R11, R12, A01 (limit expression)
               -> scored_result     expressionNode  the outputs
      -> response (outputNode)

`evaluate(decision, record, blacklist)` returns the same outputs dict as
`plain_python.decide` (decision, limit, apr, score, risk_band, reasons).

What JDM / ZEN cannot say identically, and how it is handled (verified with zen-engine 2.1.3):

1. **Numbers are decimals, not doubles.** ZEN evaluates with 28-digit decimal arithmetic
   (rust_decimal): `0.802982129 * 9120` is exactly 7323.19701648, where a double gives
   7323.197016480001. Decide's `number` is an IEEE double. Where a double result sits just under a
   boundary that the exact value reaches, the outcome differs: `free_cash < 500` (R12), and the
   limit's `floor(min(...) / 100) * 100`, which can come out 100 lower in doubles. A double input is
   also converted to a decimal of about 16 significant digits on the way in (0.09999999999999999
   arrives as 0.1); the benchmark data has at most 10 significant digits, and every value of its
   150,000 rows was checked to arrive exact.
   `float_sensitive(record)` finds exactly the records where this matters: it evaluates the
   arithmetic part of the policy (free cash, limit) again with Python's `decimal` at 28 digits and
   reports whether the decision or limit changes. The agreement test compares those records with
   the exact-decimal result instead (`decide_decimal`), everything else with
   `plain_python.decide`. No rounding function is involved: the policy uses `floor`, `min` and a
   clamp only, so round-half-away-from-zero never arises.
2. **Missing values are errors, not "missing".** In ZEN, `null < 18` or `null * 3` is a runtime
   error. A decision-table cell that fails skips its row, which is what Decide does with a missing
   test, but an expression node fails the whole evaluation. So every expression that reads an
   optional input is guarded (`MonthlyIncome == null ? null : ...`, `NumberOfDependents ?? 0`)
   and table rows that test `MonthlyIncome` come after its `null` row. The result is the same.
3. **`stop` is a switch.** Knockouts end the policy in Decide; in JDM a switch node routes a
   knocked-out application straight to the response, so nothing is scored.
4. **Scorecard reasons are ranked by the author.** The ZEN expression language of zen-engine 2.1.3 has
   no sort (`sort`, `sortBy`, `orderBy`, `reverse` do not parse), so `top(risk_score.reasons, 4)`
   becomes a `collect` table listing every reason bin in descending order of points lost (ties in
   characteristic order), computed by hand from the scorecard. Its conditions repeat the bins'. The
   reasons come out the same, but the ranking is no longer derived from the points. Slices are
   inclusive and fail past the end, so "at most 4" is `len(reasons) > 4 ? reasons[0:3] : reasons`.
5. **No nulls in results.** zen leaves keys whose value is null out of objects (apr, score and
   risk_band after a knockout); `outputs()` maps them back to None and makes limit and score ints.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Container, Iterable, Mapping
from decimal import Decimal, localcontext
from functools import lru_cache
from typing import Any

# -------------------------------------------------------------------------- graph building


def _table(node_id: str, hit: str, inputs: list[tuple[str, str | None]], outputs: list[str], rows, **extra):
    """A decisionTableNode; inputs are (name, field or None for full-expression cells); rows are (cells, values)."""
    content: dict[str, Any] = {
        "hitPolicy": hit,
        "inputs": [
            {"id": f"{node_id}.in{k}", "name": name, **({"field": field} if field else {})}
            for k, (name, field) in enumerate(inputs)
        ],
        "outputs": [{"id": f"{node_id}.out{k}", "name": field, "field": field} for k, field in enumerate(outputs)],
        "rules": [],
        "passThrough": True,
        "inputField": None,
        "outputPath": None,
        "executionMode": "single",
    }
    content.update(extra)
    for number, (cells, values) in enumerate(rows, start=1):
        if len(cells) != len(inputs) or len(values) != len(outputs):
            raise ValueError(f"row {number} of {node_id} has the wrong shape")
        row = {"_id": f"{node_id}.row{number}"}
        row.update({f"{node_id}.in{k}": cell for k, cell in enumerate(cells)})
        row.update({f"{node_id}.out{k}": value for k, value in enumerate(values)})
        content["rules"].append(row)
    return {"id": node_id, "name": node_id, "type": "decisionTableNode", "content": content}


def _expressions(node_id: str, expressions: list[tuple[str, str]], *, pass_through: bool = True):
    return {
        "id": node_id,
        "name": node_id,
        "type": "expressionNode",
        "content": {
            "expressions": [{"id": f"{node_id}.{key}", "key": key, "value": value} for key, value in expressions],
            "passThrough": pass_through,
            "inputField": None,
            "outputPath": None,
            "executionMode": "single",
        },
    }


def _scorecard_table(node_id: str, field: str, bins: list[tuple[str, int]]):
    return _table(
        node_id,
        "first",
        [(field, field)],
        [f"points_{node_id.removeprefix('score_')}"],
        [([test], [str(p)]) for test, p in bins],
    )


def graph() -> dict[str, Any]:
    """The JDM graph of consumer_loan (a JSON-ready dict)."""
    income = "MonthlyIncome"
    nodes = [
        {"id": "request", "name": "request", "type": "inputNode"},
        _expressions(
            "lets",
            [
                ("dependants", "NumberOfDependents ?? 0"),
                ("living_costs", "900 + 350 * $.dependants"),
                ("monthly_debt", f"{income} == null ? null : DebtRatio * {income}"),
                ("free_cash", f"{income} == null ? null : {income} - $.monthly_debt - $.living_costs"),
            ],
        ),
        _table(
            "knockouts",
            "first",
            [("condition", None)],
            ["knockout"],
            [
                (["national_id != null and national_id in blacklist"], ['"K01"']),
                (["age < 18"], ['"K02"']),
                (["NumberOfTimes90DaysLate >= 3"], ['"K03"']),
                (["RevolvingUtilizationOfUnsecuredLines > 1.5"], ['"K04"']),
                ([""], ['""']),
            ],
        ),
        {
            "id": "knocked_out",
            "name": "knocked_out",
            "type": "switchNode",
            "content": {
                "hitPolicy": "first",
                "statements": [
                    {"id": "knocked_out.yes", "condition": 'knockout != ""', "isDefault": False},
                    {"id": "knocked_out.no", "condition": "", "isDefault": True},
                ],
            },
        },
        _expressions(
            "knockout_result",
            [("decision", '"decline"'), ("limit", "0"), ("reasons", "[knockout]")],
            pass_through=False,
        ),
        _scorecard_table("score_age", "age", [("< 25", -30), ("[25..35)", -10), ("[35..60)", 10), (">= 60", 25)]),
        _scorecard_table(
            "score_utilisation",
            "RevolvingUtilizationOfUnsecuredLines",
            [("< 0.1", 30), ("[0.1..0.5)", 5), ("[0.5..0.9)", -25), (">= 0.9", -60)],
        ),
        _scorecard_table("score_debt_ratio", "DebtRatio", [("< 0.35", 15), ("[0.35..0.5)", -10), (">= 0.5", -35)]),
        _scorecard_table(
            "score_income", income, [("null", -15), ("< 2500", -20), ("[2500..6000)", 0), (">= 6000", 20)]
        ),
        _scorecard_table(
            "score_open_lines", "NumberOfOpenCreditLinesAndLoans", [("< 3", -15), ("[3..15]", 10), ("> 15", -5)]
        ),
        _scorecard_table("score_late_90", "NumberOfTimes90DaysLate", [("0", 20), ("", -40)]),
        _expressions(
            "risk_score",
            [
                (
                    "risk_score",
                    "600 + points_age + points_utilisation + points_debt_ratio + points_income"
                    " + points_open_lines + points_late_90",
                )
            ],
        ),
        # Every scorecard bin with a reason, most points lost first (ties: characteristic order):
        # utilisation >= 90% loses 90, 90+ days late 60, age < 25 55, utilisation 50-90% 55, DTI >= 50% 50,
        # income < 2500 40, age 25-35 35, income missing 35, DTI 35-50% 25, < 3 lines 25, > 15 lines 15.
        _table(
            "adverse_action",
            "collect",
            [
                ("age", "age"),
                ("utilisation", "RevolvingUtilizationOfUnsecuredLines"),
                ("debt ratio", "DebtRatio"),
                ("income", income),
                ("open lines", "NumberOfOpenCreditLinesAndLoans"),
                ("90 days late", "NumberOfTimes90DaysLate"),
            ],
            ["code"],
            [
                (["", ">= 0.9", "", "", "", ""], ['"S02"']),
                (["", "", "", "", "", "!= 0"], ['"S06"']),
                (["< 25", "", "", "", "", ""], ['"S01"']),
                (["", "[0.5..0.9)", "", "", "", ""], ['"S02"']),
                (["", "", ">= 0.5", "", "", ""], ['"S03"']),
                (["", "", "", "< 2500", "", ""], ['"S04"']),
                (["[25..35)", "", "", "", "", ""], ['"S01"']),
                (["", "", "", "null", "", ""], ['"S04"']),
                (["", "", "[0.35..0.5)", "", "", ""], ['"S03"']),
                (["", "", "", "", "< 3", ""], ['"S05"']),
                (["", "", "", "", "> 15", ""], ['"S05"']),
            ],
            outputPath="adverse_action",
        ),
        _table(
            "band",
            "first",
            [("risk_score", "risk_score"), ("90 days late", "NumberOfTimes90DaysLate")],
            ["band", "multiple"],
            [
                ([">= 680", "0"], ['"A"', "3"]),
                ([">= 630", ""], ['"B"', "2"]),
                ([">= 580", "0"], ['"C"', "1.5"]),
                (["", ""], ['"D"', "0"]),
            ],
        ),
        _table(
            "pricing",
            "first",
            [
                ("band", "band"),
                ("real estate", "NumberRealEstateLoansOrLines"),
                ("utilisation", "RevolvingUtilizationOfUnsecuredLines"),
            ],
            ["apr"],
            [
                (['"A"', ">= 1", ""], ["0.079"]),
                (['"A"', "", ""], ["0.089"]),
                (['"B", "C"', "", "< 0.5"], ["0.119"]),
                (['"B", "C"', "", ""], ["0.149"]),
                (["", "", ""], ["0.199"]),
            ],
        ),
        _table(
            "final",
            "first",
            [("band", "band"), ("income", income), ("free cash", "free_cash")],
            ["decision", "limit", "reasons"],
            [
                (['"D"', "", ""], ['"decline"', "0", "map(adverse_action, #.code)"]),
                (["", "null", ""], ['"refer"', "0", '["R11"]']),
                (["", "", "< 500"], ['"decline"', "0", '["R12"]']),
                (
                    ["", "", ""],
                    [
                        '"approve"',
                        "max([1000, min([35000, floor(min([MonthlyIncome * multiple, free_cash * 6]) / 100) * 100])])",
                        "[]",
                    ],
                ),
            ],
        ),
        _expressions(
            "scored_result",
            [
                ("decision", "decision"),
                ("limit", "limit"),
                ("apr", "apr"),
                ("score", "risk_score"),
                ("risk_band", "band"),
                ("reasons", "len(reasons) > 4 ? reasons[0:3] : reasons"),
            ],
            pass_through=False,
        ),
        {"id": "response", "name": "response", "type": "outputNode"},
    ]
    chain = [
        "request", "lets", "knockouts", "knocked_out",
        "score_age", "score_utilisation", "score_debt_ratio", "score_income", "score_open_lines", "score_late_90",
        "risk_score", "adverse_action", "band", "pricing", "final", "scored_result", "response",
    ]  # fmt: skip
    edges = [{"id": f"{a}->{b}", "sourceId": a, "targetId": b, "type": "edge"} for a, b in itertools.pairwise(chain)]
    edges[3]["sourceHandle"] = "knocked_out.no"
    edges.append(
        {
            "id": "knocked_out->knockout_result",
            "sourceId": "knocked_out",
            "targetId": "knockout_result",
            "sourceHandle": "knocked_out.yes",
            "type": "edge",
        }
    )
    edges.append(
        {"id": "knockout_result->response", "sourceId": "knockout_result", "targetId": "response", "type": "edge"}
    )
    return {"nodes": nodes, "edges": edges}


@lru_cache(maxsize=1)
def graph_json() -> str:
    return json.dumps(graph(), indent=2)


def create_decision():
    """A compiled zen decision for the graph (`zen.ZenEngine().create_decision(content)`)."""
    import zen

    return zen.ZenEngine().create_decision(graph_json())


# -------------------------------------------------------------------------- evaluation

_OUTPUTS = ("decision", "limit", "apr", "score", "risk_band", "reasons")


def context(record: Mapping[str, Any], blacklist: Iterable[str] = ()) -> dict[str, Any]:
    """The zen input: the record plus the blacklist's members as an array."""
    ctx = dict(record)
    ctx["blacklist"] = list(blacklist)
    return ctx


def outputs(result: Mapping[str, Any]) -> dict[str, Any]:
    """zen's `result` -> the engine's outputs (nulls restored, limit and score as ints)."""
    out = {name: result.get(name) for name in _OUTPUTS}
    out["limit"] = int(out["limit"])
    if out["score"] is not None:
        out["score"] = int(out["score"])
    if out["reasons"] is None:
        out["reasons"] = []
    return out


def evaluate(decision, record: Mapping[str, Any], blacklist: Iterable[str] = ()) -> dict[str, Any]:
    """Evaluate one record with a decision from `create_decision()`; returns the outputs dict."""
    return outputs(decision.evaluate(context(record, blacklist))["result"])


# -------------------------------------------------------------------------- the documented difference


def decide_decimal(record: Mapping[str, Any], blacklist: Container[str] = ()) -> dict[str, Any]:
    """`plain_python.decide` with free cash and the limit computed in exact decimals, as ZEN computes them.

    Inputs are taken at their shortest decimal form (`repr`), as ZEN receives the benchmark data.
    """
    from benchmarks.peers.plain_python import decide

    result = decide(record, blacklist)
    if result["decision"] == "decline" and result["reasons"] != ["R12"]:
        return result  # a knockout or band D: no arithmetic involved
    if result["decision"] == "refer":
        return result
    with localcontext() as ctx:
        ctx.prec = 28
        income = Decimal(repr(record["MonthlyIncome"]))
        debt_ratio = Decimal(repr(record["DebtRatio"]))
        dependants = record.get("NumberOfDependents") or 0
        free_cash = income - debt_ratio * income - (900 + 350 * dependants)
        multiple = {"A": Decimal(3), "B": Decimal(2), "C": Decimal("1.5")}[result["risk_band"]]
        if free_cash < 500:
            return {**result, "decision": "decline", "limit": 0, "reasons": ["R12"]}
        limit = math.floor(min(income * multiple, free_cash * 6) / 100) * 100
    return {**result, "decision": "approve", "limit": min(max(limit, 1000), 35000), "reasons": []}


def float_sensitive(record: Mapping[str, Any], blacklist: Container[str] = ()) -> bool:
    """True when double and exact decimal arithmetic give this record a different decision or limit."""
    from benchmarks.peers.plain_python import decide

    return decide(record, blacklist) != decide_decimal(record, blacklist)


if __name__ == "__main__":
    print(graph_json())
