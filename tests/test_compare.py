"""compare_decisions: two versions of a small policy decide one record; the differences are known from the text."""

from __future__ import annotations

import json

import pytest

import compiler
from compiler import Decision, DecisionComparison, compare_decisions
from compiler.compare import Divergence

AS_OF = "2026-01-01"

# Line numbers below are the lines of this text (line 1 is the `policy` header).
V1 = """policy loan:
    title: "Small loan"
    kind: approval

input:
    score: int in [0..1000]
    income: number in [0..1_000_000]

output:
    decision: string in {"approve", "refer", "decline"} = "refer"
    limit: number = 0

rules knockouts (first):
    rule K01 "Score too low":
        when score < 500
        then decision = "decline", reason "K01", stop

table band (first):
    | score  || multiple |
    | >= 700 || 3        |
    | >= 600 || 2        |
    | -      || 1        |

rules final (first):
    rule R01 "Thin income":
        when income < 1000
        then decision = "refer", reason "R01"
    rule A01 "Approve":
        when true
        then decision = "approve", limit = income * multiple
"""

# The knockout cut-off raised from 500 to 550 (same lines).
V2_CUTOFF = V1.replace("when score < 500", "when score < 550")

# Band row 2 from 600 to 660 (same lines).
V2_BAND = V1.replace("| >= 600 || 2        |", "| >= 660 || 2        |")

# A statement added between knockouts and band: it takes lines 18-22 and band moves to line 23.
CHECKS = """rules checks (all):
    rule C01 "Low income flag":
        when income < 5000
        then reason "C01"

"""
V3_ADDED = V1.replace("table band (first):", CHECKS + "table band (first):")

# The same, but C01 stops the evaluation: band and final are never reached.
V3_STOP = V3_ADDED.replace('then reason "C01"', 'then reason "C01", stop')

# An output added (line 12); every statement moves down a line.
V4_OUTPUT = V1.replace("    limit: number = 0\n", '    limit: number = 0\n    channel: string = "web"\n')


def test_the_texts_have_the_lines_the_tests_assume() -> None:
    v1 = V1.split("\n")
    assert v1[12] == "rules knockouts (first):" and v1[13].startswith("    rule K01")
    assert v1[17] == "table band (first):" and v1[20].startswith("    | >= 600") and v1[21].startswith("    | -")
    assert v1[23] == "rules final (first):" and v1[27].startswith("    rule A01")
    v3 = V3_ADDED.split("\n")
    assert v3[17] == "rules checks (all):" and v3[18].startswith("    rule C01") and v3[22] == "table band (first):"
    assert V3_STOP.split("\n")[22] == "table band (first):"
    assert V4_OUTPUT.split("\n")[11] == '    channel: string = "web"'


def policy(text: str) -> compiler.Policy:
    return compiler.compile_source(text, "loan.policy")


ENGINES = pytest.mark.parametrize("engine", ["compiled", "reference"])


def decide(text: str, record: dict, *, engine: str = "compiled", trace: bool = True) -> Decision:
    return policy(text).decide(record, as_of=AS_OF, engine=engine, trace=trace)


@ENGINES
def test_identical_decisions_are_the_same(engine: str) -> None:
    record = {"score": 720, "income": 2000}
    comparison = compare_decisions(decide(V1, record, engine=engine), decide(V1, record, engine=engine))
    assert isinstance(comparison, DecisionComparison)
    assert comparison.same is True
    assert comparison.outputs == {}
    assert comparison.reasons_added == [] and comparison.reasons_removed == []
    assert comparison.reasons_reordered is False
    assert comparison.trace_compared is True
    assert comparison.divergence is None
    identity = {"policy": "loan", "version": None, "content_hash": policy(V1).content_hash}
    assert comparison.to_json() == {
        "same": True,
        "before": identity,
        "after": identity,
        "outputs": {},
        "reasons_added": [],
        "reasons_removed": [],
        "reasons_reordered": False,
        "trace_compared": True,
        "divergence": None,
    }


@ENGINES
def test_a_raised_cut_off_knocks_the_record_out(engine: str) -> None:
    # score 520: V1 passes the knockouts (band row 3, multiple 1, limit 3000 = income); V2 stops at K01.
    record = {"score": 520, "income": 3000}
    before, after = decide(V1, record, engine=engine), decide(V2_CUTOFF, record, engine=engine)
    comparison = compare_decisions(before, after)
    assert comparison.same is False
    assert comparison.outputs == {
        "decision": {"before": "approve", "after": "decline"},
        "limit": {"before": 3000, "after": 0},
    }
    assert comparison.reasons_added == ["K01"]
    assert comparison.reasons_removed == []
    assert comparison.trace_compared is True
    divergence = comparison.divergence
    assert isinstance(divergence, Divergence)
    assert divergence.statement == "knockouts"
    assert divergence.before is not None and divergence.after is not None
    assert divergence.before.labels == () and divergence.after.labels == ("K01",)
    assert divergence.after.hits[0].span is not None and divergence.after.hits[0].span.line == 14
    assert comparison.to_json()["divergence"] == {
        "statement": "knockouts",
        "before": {"labels": [], "hits": [], "line": 13, "evaluated": True, "entry": "knockouts:-"},
        "after": {
            "labels": ["K01"],
            "hits": [{"label": "K01", "title": "Score too low", "line": 14}],
            "line": 13,
            "evaluated": True,
            "entry": "knockouts:K01",
        },
    }
    # The other way round: the knock-out is lifted.
    reverse = compare_decisions(after, before)
    assert reverse.outputs == {
        "decision": {"before": "decline", "after": "approve"},
        "limit": {"before": 0, "after": 3000},
    }
    assert reverse.reasons_added == [] and reverse.reasons_removed == ["K01"]
    assert reverse.divergence is not None and reverse.divergence.statement == "knockouts"
    assert reverse.to_json()["divergence"]["before"]["hits"] == [{"label": "K01", "title": "Score too low", "line": 14}]


def test_a_changed_table_row_diverges_at_the_table() -> None:
    # score 650: V1 matches row 2 (>= 600, multiple 2), V2 row 3 (multiple 1); income 1500 gives 3000 and 1500.
    record = {"score": 650, "income": 1500}
    comparison = compare_decisions(decide(V1, record), decide(V2_BAND, record))
    assert comparison.same is False
    assert comparison.outputs == {"limit": {"before": 3000, "after": 1500}}
    assert comparison.reasons_added == [] and comparison.reasons_removed == []
    assert comparison.to_json()["divergence"] == {
        "statement": "band",
        "before": {
            "labels": ["2"],
            "hits": [{"label": "2", "title": None, "line": 21}],
            "line": 18,
            "evaluated": True,
            "entry": "band:2",
        },
        "after": {
            "labels": ["3"],
            "hits": [{"label": "3", "title": None, "line": 22}],
            "line": 18,
            "evaluated": True,
            "entry": "band:3",
        },
    }


def test_a_statement_added_in_the_new_version() -> None:
    # income 2000 < 5000 fires C01; score 720 is band row 1, so the limit is 6000 in both versions.
    record = {"score": 720, "income": 2000}
    comparison = compare_decisions(decide(V1, record), decide(V3_ADDED, record))
    assert comparison.same is False
    assert comparison.outputs == {}
    assert comparison.reasons_added == ["C01"] and comparison.reasons_removed == []
    assert comparison.divergence is not None
    assert comparison.divergence.before is None
    assert comparison.to_json()["divergence"] == {
        "statement": "checks",
        "before": None,
        "after": {
            "labels": ["C01"],
            "hits": [{"label": "C01", "title": "Low income flag", "line": 19}],
            "line": 18,
            "evaluated": True,
            "entry": "checks:C01",
        },
    }
    # Removed, seen from the other side.
    removed = compare_decisions(decide(V3_ADDED, record), decide(V1, record))
    assert removed.reasons_removed == ["C01"] and removed.reasons_added == []
    assert removed.divergence is not None and removed.divergence.statement == "checks"
    assert removed.divergence.after is None
    assert removed.to_json()["divergence"]["before"]["line"] == 18


def test_an_added_statement_that_fires_nothing_still_diverges() -> None:
    # income 9000: C01 does not fire, but the new version's trace has "checks:-".
    record = {"score": 720, "income": 9000}
    comparison = compare_decisions(decide(V1, record), decide(V3_ADDED, record))
    assert comparison.outputs == {} and comparison.reasons_added == []
    assert comparison.same is False
    assert comparison.to_json()["divergence"] == {
        "statement": "checks",
        "before": None,
        "after": {"labels": [], "hits": [], "line": 18, "evaluated": True, "entry": "checks:-"},
    }


def test_a_new_stop_leaves_a_shorter_trace() -> None:
    # Both versions fire C01; only V3_STOP stops there, so band is where the paths part.
    record = {"score": 720, "income": 2000}
    before, after = decide(V3_ADDED, record), decide(V3_STOP, record)
    assert before.trace == ["knockouts:-", "checks:C01", "band:1", "final:A01"]
    assert after.trace == ["knockouts:-", "checks:C01"]
    comparison = compare_decisions(before, after)
    assert comparison.outputs == {
        "decision": {"before": "approve", "after": "refer"},
        "limit": {"before": 6000, "after": 0},
    }
    assert comparison.reasons_added == [] and comparison.reasons_removed == []
    assert comparison.to_json()["divergence"] == {
        "statement": "band",
        "before": {
            "labels": ["1"],
            "hits": [{"label": "1", "title": None, "line": 25}],
            "line": 23,
            "evaluated": True,
            "entry": "band:1",
        },
        "after": {"labels": [], "hits": [], "line": 23, "evaluated": False, "entry": None},
    }
    reverse = compare_decisions(after, before).to_json()["divergence"]
    assert reverse["statement"] == "band"
    assert reverse["before"]["evaluated"] is False and reverse["after"]["labels"] == ["1"]


def test_an_output_only_one_version_has() -> None:
    record = {"score": 720, "income": 2000}
    comparison = compare_decisions(decide(V1, record), decide(V4_OUTPUT, record))
    assert comparison.outputs == {"channel": {"before": None, "after": "web", "only_in": "after"}}
    assert comparison.same is False
    assert comparison.divergence is None  # the same path, at other lines
    reverse = compare_decisions(decide(V4_OUTPUT, record), decide(V1, record))
    assert reverse.outputs == {"channel": {"before": "web", "after": None, "only_in": "before"}}


def test_trace_off_on_one_side_compares_outputs_and_reasons_only() -> None:
    record = {"score": 520, "income": 3000}
    comparison = compare_decisions(decide(V1, record), decide(V2_CUTOFF, record, trace=False))
    assert comparison.trace_compared is False
    assert comparison.divergence is None
    assert comparison.same is False
    assert comparison.outputs == {
        "decision": {"before": "approve", "after": "decline"},
        "limit": {"before": 3000, "after": 0},
    }
    assert comparison.reasons_added == ["K01"]
    assert comparison.to_json()["trace_compared"] is False
    assert comparison.to_json()["divergence"] is None
    # Equal outputs and reasons are the same even though one trace is unknown.
    untraced = compare_decisions(decide(V1, record, trace=False), decide(V1, record))
    assert untraced.same is True and untraced.trace_compared is False


def test_a_logged_decision_without_info_has_no_lines() -> None:
    # What a replay has for the logged side: the result object only.
    record = {"score": 520, "income": 3000}
    logged = decide(V1, record)
    before = Decision.from_result(logged.to_json(), content_hash=logged.content_hash, engine="python")
    comparison = compare_decisions(before, decide(V2_CUTOFF, record))
    assert comparison.to_json()["divergence"] == {
        "statement": "knockouts",
        "before": {"labels": [], "hits": [], "line": None, "evaluated": True, "entry": "knockouts:-"},
        "after": {
            "labels": ["K01"],
            "hits": [{"label": "K01", "title": "Score too low", "line": 14}],
            "line": 13,
            "evaluated": True,
            "entry": "knockouts:K01",
        },
    }


def made(outputs: dict, reasons: list[str], trace: list[str] | None, version: int | None = None) -> Decision:
    return Decision("p", outputs, reasons, trace, content_hash="h", engine="python", version=version)


def test_reordered_reasons_are_not_the_same() -> None:
    comparison = compare_decisions(made({}, ["A", "B"], []), made({}, ["B", "A"], []))
    assert comparison.same is False
    assert comparison.reasons_added == [] and comparison.reasons_removed == []
    assert comparison.reasons_reordered is True


def test_reasons_keep_their_order() -> None:
    comparison = compare_decisions(made({}, ["A", "X", "B", "Y"], []), made({}, ["Z", "A", "B", "W"], []))
    assert comparison.reasons_added == ["Z", "W"]
    assert comparison.reasons_removed == ["X", "Y"]
    assert comparison.reasons_reordered is False


def test_values_compare_as_json() -> None:
    before = made({"a": 1, "b": True, "c": [1, 2], "d": "x"}, [], None, version=3)
    after = made({"a": 1.0, "b": 1, "c": [1, 2.0], "d": "x"}, [], None, version=4)
    comparison = compare_decisions(before, after)
    assert comparison.outputs == {"b": {"before": True, "after": 1}}
    assert comparison.to_json()["before"] == {"policy": "p", "version": 3, "content_hash": "h"}
    assert comparison.to_json()["after"]["version"] == 4


def test_reordered_statements_diverge_at_the_before_sides_statement() -> None:
    comparison = compare_decisions(made({}, [], ["a:1", "b:2"]), made({}, [], ["b:2", "a:1"]))
    assert comparison.to_json()["divergence"] == {
        "statement": "a",
        "before": {
            "labels": ["1"],
            "hits": [{"label": "1", "title": None, "line": None}],
            "line": None,
            "evaluated": True,
            "entry": "a:1",
        },
        "after": {
            "labels": ["1"],
            "hits": [{"label": "1", "title": None, "line": None}],
            "line": None,
            "evaluated": True,
            "entry": "a:1",
        },
    }


def test_to_json_is_plain_json() -> None:
    record = {"score": 720, "income": 2000}
    comparison = compare_decisions(decide(V3_STOP, record), decide(V1, record))
    text = json.dumps(comparison.to_json())
    assert json.loads(text) == comparison.to_json()
