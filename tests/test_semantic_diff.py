"""Tests of the semantic diff (`compiler.diff.semantic_diff`), driven by golden pairs.

Each `tests/golden/diff/NAME.old.policy` / `NAME.new.policy` pair is an example policy from policies/ with
a few deliberate edits; `NAME.expected.json` is the `to_json()` of their diff, written by hand from what
the edits change (never recorded from the code), and `NAME.expected.txt`, where present, its
`render_text()`. A failing pair is a disagreement to investigate, not to re-record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compiler.diff import CHANGE_KINDS, Change, PolicyDiff, semantic_diff
from dsl.errors import PolicyError
from dsl.format import format_source

TESTS = Path(__file__).resolve().parent
GOLDEN = TESTS / "golden" / "diff"
POLICIES = TESTS.parent / "policies"

PAIRS = sorted(path.name.removesuffix(".expected.json") for path in GOLDEN.glob("*.expected.json"))
RENDERED = sorted(path.name.removesuffix(".expected.txt") for path in GOLDEN.glob("*.expected.txt"))
EXAMPLES = sorted(POLICIES.glob("*.policy"))


def _golden_diff(name: str) -> PolicyDiff:
    old_name, new_name = f"{name}.old.policy", f"{name}.new.policy"
    old = (GOLDEN / old_name).read_text(encoding="utf-8")
    new = (GOLDEN / new_name).read_text(encoding="utf-8")
    return semantic_diff(old, new, old_name, new_name)


def _expected(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.expected.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- golden pairs


def test_there_are_enough_pairs() -> None:
    assert len(PAIRS) >= 12
    for name in PAIRS:
        assert (GOLDEN / f"{name}.old.policy").exists() and (GOLDEN / f"{name}.new.policy").exists(), name


@pytest.mark.parametrize("name", PAIRS)
def test_golden_pair(name: str) -> None:
    assert _golden_diff(name).to_json() == _expected(name)


@pytest.mark.parametrize("name", RENDERED)
def test_golden_render_text(name: str) -> None:
    expected = (GOLDEN / f"{name}.expected.txt").read_text(encoding="utf-8").removesuffix("\n")
    assert _golden_diff(name).render_text() == expected


def test_every_change_kind_has_a_golden_pair() -> None:
    seen = {change["kind"] for name in PAIRS for change in _expected(name)["changes"]}
    assert seen == set(CHANGE_KINDS)


def test_a_formatting_only_pair_is_empty() -> None:
    diff = _golden_diff("formatting_only")
    assert diff.is_empty
    assert diff.render_text() == "no semantic changes"


def test_swapped_pair_mirrors_added_and_removed() -> None:
    # Diffing backwards turns every addition into a removal (and back); nothing else about them changes.
    old = (GOLDEN / "statements.old.policy").read_text(encoding="utf-8")
    new = (GOLDEN / "statements.new.policy").read_text(encoding="utf-8")
    forward, backward = semantic_diff(old, new), semantic_diff(new, old)
    added = {(c.subject, c.new) for c in forward.changes if c.kind.endswith("_added")}
    removed_backwards = {(c.subject, c.old) for c in backward.changes if c.kind.endswith("_removed")}
    assert added == removed_backwards


# ---------------------------------------------------------------- the example policies


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_policy_against_itself_is_empty(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert semantic_diff(source, source, path.name, path.name).is_empty


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_policy_against_its_formatted_text_is_empty(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    formatted = format_source(source, path.name)
    assert semantic_diff(source, formatted).is_empty
    assert semantic_diff(formatted, source).is_empty


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 4


# ---------------------------------------------------------------- the result's forms


@pytest.mark.parametrize("name", PAIRS)
def test_json_round_trip(name: str) -> None:
    diff = _golden_diff(name)
    data = diff.to_json()
    assert json.loads(json.dumps(data)) == data  # JSON only: no tuples, dates or other Python values
    assert PolicyDiff.from_json(data) == diff
    assert PolicyDiff.from_json(json.loads(json.dumps(data))).render_text() == diff.render_text()


def test_json_keys_are_in_a_stable_order() -> None:
    data = _golden_diff("rules").to_json()
    assert list(data) == ["old_name", "new_name", "changes"]
    assert [list(change) for change in data["changes"]] == [
        ["kind", "subject", "old", "new", "old_line", "new_line"]
    ] * len(data["changes"])


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown change kind"):
        Change.from_json({"kind": "item_renamed", "subject": "rule r.R1"})


def test_render_lines_for_each_shape() -> None:
    assert (
        Change("input_changed", "input x", "int", "number", 3, 4).render()
        == "~ input x: int -> number (line 3 -> line 4)"
    )
    assert Change("item_added", "rule r.R1", None, "when true then stop", None, 9).render() == (
        "+ rule r.R1: when true then stop (new line 9)"
    )
    assert (
        Change("item_removed", "row t.3", "| 1 || 2 |", None, 7, None).render() == "- row t.3: | 1 || 2 | (old line 7)"
    )
    assert Change("reason_added", "reason K05", None, "K05", None, 12).render() == "+ reason K05 (new line 12)"
    assert Change("header_changed", "header owner", None, '"Risk"', None, 5).render() == (
        '~ header owner: (none) -> "Risk" (new line 5)'
    )
    assert PolicyDiff(()).render_text() == "no semantic changes"


# ---------------------------------------------------------------- what is and is not a change


_SMALL = """\
policy small:
    title: "Small"

input:
    score: int in [0..1000]
    channel: string in {"branch", "online"}

output:
    decision: string in {"approve", "decline"} = "decline"

table band (unique):
    | score      || band |
    | >= 600     || "A"  |
    | [300..600) || "B"  |
    | < 300      || "C"  |

rules final (first):
    rule A01 "Good band":
        when band == "A" and channel in {"branch", "online"}
        then decision = "approve"
"""


def test_reordering_rows_of_a_unique_table_is_not_a_change() -> None:
    reordered = _SMALL.replace(
        '    | >= 600     || "A"  |\n    | [300..600) || "B"  |\n',
        '    | [300..600) || "B"  |\n    | >= 600     || "A"  |\n',
    )
    assert reordered != _SMALL
    assert semantic_diff(_SMALL, reordered).is_empty


def test_reordering_rows_of_a_first_table_is_a_move() -> None:
    first = _SMALL.replace("(unique)", "(first)")
    reordered = first.replace(
        '    | >= 600     || "A"  |\n    | [300..600) || "B"  |\n',
        '    | [300..600) || "B"  |\n    | >= 600     || "A"  |\n',
    )
    assert [(c.kind, c.subject, c.old, c.new) for c in semantic_diff(first, reordered).changes] == [
        ("item_moved", "row band.1", "position 2", "position 1")
    ]


def test_set_members_in_another_order_are_not_a_change() -> None:
    other = _SMALL.replace('{"branch", "online"}', '{"online", "branch"}')
    assert other.count('{"online", "branch"}') == 2
    assert semantic_diff(_SMALL, other).is_empty


def test_a_row_inserted_in_the_middle_is_one_added_row() -> None:
    base = _SMALL.replace("(unique)", "(first)").replace(
        '    | < 300      || "C"  |\n', '    | [100..300) || "C"  |\n    | < 100      || "C"  |\n'
    )
    middle = base.replace('    | [100..300) || "C"  |\n', '    | [200..300) || "E"  |\n    | [100..300) || "C"  |\n')
    changes = semantic_diff(base, middle).changes
    assert [(c.kind, c.subject, c.new, c.new_line) for c in changes] == [
        ("item_added", "row band.3", '| [200..300) || "E" |', 15)
    ]


def test_reasons_reached_through_lets_and_table_cells() -> None:
    source = _SMALL.replace(
        '        then decision = "approve"\n',
        '        then decision = "approve", reason code\n',
    ).replace(
        "rules final (first):", 'let code = if channel == "online" then "W01" else band_code\n\nrules final (first):'
    )
    source = source.replace("|| band |", "|| band | band_code |")
    for band in "ABC":
        source = source.replace(f'|| "{band}"  |', f'|| "{band}"  | "B-{band}" |')
    renamed = source.replace('"B-C"', '"B-Z"')
    changes = semantic_diff(source, renamed).changes
    assert [(c.kind, c.subject) for c in changes] == [
        ("item_changed", "row band.3"),
        ("reason_removed", "reason B-C"),
        ("reason_added", "reason B-Z"),
    ]


# ---------------------------------------------------------------- errors


_BROKEN = _SMALL.replace("rules final (first):", "rules final first:")


def test_a_syntax_error_in_the_old_source_names_the_old_file() -> None:
    with pytest.raises(PolicyError) as caught:
        semantic_diff(_BROKEN, _SMALL, "v1.policy", "v2.policy")
    assert all(d.span.file == "v1.policy" for d in caught.value.errors)
    assert "v1.policy:" in str(caught.value)
    assert "v2.policy" not in str(caught.value)


def test_a_syntax_error_in_the_new_source_names_the_new_file() -> None:
    with pytest.raises(PolicyError) as caught:
        semantic_diff(_SMALL, _BROKEN, "v1.policy", "v2.policy")
    assert [d.span.file for d in caught.value.errors] == ["v2.policy"]
    assert "v2.policy:" in str(caught.value)


def test_syntax_errors_in_both_sources_name_both_files() -> None:
    with pytest.raises(PolicyError) as caught:
        semantic_diff(_BROKEN, _BROKEN, "v1.policy", "v2.policy")
    assert sorted(d.span.file for d in caught.value.errors) == ["v1.policy", "v2.policy"]


def test_a_check_error_is_a_policy_error_too() -> None:
    unknown_name = _SMALL.replace('when band == "A"', 'when bnad == "A"')
    with pytest.raises(PolicyError) as caught:
        semantic_diff(_SMALL, unknown_name, "v1.policy", "v2.policy")
    assert caught.value.errors and all(d.span.file == "v2.policy" for d in caught.value.errors)
