"""Golden diagnostics: each tests/golden/errors/NAME.policy must report exactly NAME.expected.

The expected files were written by running `decide check` once and reviewing
every line and column by hand against the policy; set DECIDE_UPDATE_GOLDEN=1
to rewrite them after an intended change of wording, then review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from compiler import check_source
from dsl import PolicyError, decode_source
from tests.conftest import GOLDEN

ERRORS = GOLDEN / "errors"
CASES = sorted(ERRORS.glob("*.policy"))


def render(path: Path) -> str:
    data = path.read_bytes()
    filename = path.name
    try:
        source = decode_source(data, filename)
    except PolicyError:
        source = None
    return "\n".join(d.render(source) for d in check_source(data, filename)) + "\n"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_diagnostics_match_golden_text(path: Path) -> None:
    expected_path = path.with_suffix(".expected")
    actual = render(path)
    if os.environ.get("DECIDE_UPDATE_GOLDEN"):
        expected_path.write_text(actual, encoding="utf-8")
    assert actual == expected_path.read_text(encoding="utf-8")


def test_five_mistakes_are_all_reported_at_their_positions() -> None:
    diagnostics = check_source((ERRORS / "five_mistakes.policy").read_bytes(), "five.policy")
    errors = [(d.span.line, d.span.column, d.code) for d in diagnostics if d.is_error]
    assert errors == [
        (19, 25, "value_not_allowed"),
        (22, 14, "unknown_name"),
        (26, 14, "assign_non_output"),
        (27, 10, "duplicate_rule_id"),
        (29, 22, "type_mismatch"),
    ]


def test_every_diagnostic_is_json_with_a_location() -> None:
    for path in CASES:
        for diagnostic in check_source(path.read_bytes(), path.name):
            body = diagnostic.to_json()
            assert body["severity"] in ("error", "warning")
            assert body["code"] and body["message"]
            assert body["location"]["file"] == path.name
