"""`decide explain`: the compiled trees and one record's path, every test pointing at its source line."""

from __future__ import annotations

import re

from compiler import compile_file
from compiler.explain import explain_dot, explain_path, explain_trees
from compiler.testcases import load_cases
from decide_cli.main import main
from tests.conftest import POLICIES

LOAN = POLICIES / "consumer_loan.policy"


def test_every_test_line_names_a_source_line_holding_that_test() -> None:
    policy = compile_file(LOAN)
    source_lines = policy.source.split("\n")
    tests = re.findall(r"#\d+ (.*)  \(line (\d+)\)", explain_trees(policy))
    assert tests
    for text, line in tests:
        # The test's own words (a cell's last token, a condition's last name) appear on the line it names.
        assert text.split()[-1].strip('"{}()[]') in source_lines[int(line) - 1], (text, line)


def test_each_tree_statement_is_explained() -> None:
    policy = compile_file(LOAN)
    text = explain_trees(policy)
    for header in ("rules knockouts (first)", "scorecard risk_score", "table band (first)", "tree pricing"):
        assert header in text


def test_path_agrees_with_the_trace_of_an_evaluation() -> None:
    policy = compile_file(LOAN)
    for case in load_cases(POLICIES / "consumer_loan.tests.json"):
        if "error" in case["expect"] or "trace" not in case["expect"]:
            continue
        lists = {"blacklist": []} | case.get("lists", {})
        path = explain_path(policy, case["input"], as_of=case.get("as_of", "2026-11-21"), lists=lists)
        assert "trace: " + ", ".join(case["expect"]["trace"]) in path
        for entry in case["expect"]["trace"]:
            name, taken = entry.split(":")
            if taken != "-" and name in ("knockouts", "final"):
                assert f"fire rule {taken}" in path


def test_dot_output_is_a_digraph_with_a_cluster_per_tree_statement() -> None:
    dot = explain_dot(compile_file(LOAN))
    assert dot.startswith("digraph policy {") and dot.rstrip().endswith("}")
    assert dot.count("subgraph cluster_") == 6
    assert re.search(r'n\d+ -> n\d+ \[label="missing"\]', dot)


def test_cli_explain_with_input(capsys, tmp_path) -> None:
    case = next(c for c in load_cases(POLICIES / "consumer_loan.tests.json") if "error" not in c["expect"])
    record = tmp_path / "r.json"
    import json

    record.write_text(json.dumps(case["input"]), encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    code = main(["explain", str(LOAN), "--input", str(record), "--as-of", "2026-11-21", "--list", f"blacklist={empty}"])
    out = capsys.readouterr().out
    assert code == 0 and "line 41: national_id in blacklist -> false" in out
    assert main(["explain", str(LOAN)]) == 0
    assert main(["explain", str(LOAN), "--dot"]) == 0
