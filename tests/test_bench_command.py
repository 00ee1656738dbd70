"""`decide bench`: the JSON report's shape, every stage present with positive figures, clear errors and exit codes
for bad input, and `--e2e` against a real server on loopback with no failed request and the decision log complete.

Only structure and sanity are checked, never a timing against a threshold (BENCHMARKS.md has the figures).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from decide_cli.main import main
from decision_server.bench import STAGES
from tests.conftest import REPO

POLICY = REPO / "policies" / "consumer_loan.policy"
BLACKLIST = REPO / "policies" / "examples" / "blacklist.txt"
# The example's test cases that decide (its last ones are input errors, timed apart below).
CASES = [
    case
    for case in json.loads((REPO / "policies" / "consumer_loan.tests.json").read_text(encoding="utf-8"))
    if "error" not in case["expect"]
]


@pytest.fixture
def records(tmp_path: Path) -> Path:
    path = tmp_path / "records.json"
    path.write_text(json.dumps([case["input"] for case in CASES]), encoding="utf-8")
    return path


def bench(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["bench", str(POLICY), "--list", f"blacklist={BLACKLIST}", "--as-of", "2026-01-01", *args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    return code, captured.out, captured.err


def check_stage(stage: dict[str, Any], samples: int) -> None:
    assert stage["samples"] == samples
    assert stage["p50_us"] > 0 and stage["mean_us"] > 0 and stage["per_second"] > 0
    assert stage["p99_us"] >= stage["p50_us"]


def test_json_report_has_every_stage_with_positive_figures(capsys, records: Path) -> None:
    code, out, _ = bench(capsys, "--input", str(records), "--repeat", "20", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["policy"] == "consumer_loan" and report["as_of"] == "2026-01-01"
    assert report["records"] == len(CASES) and report["repeat"] == 20
    assert report["engine"] in ("cython", "python")
    assert list(report["stages"]) == list(STAGES) == ["json_decode", "validation", "evaluation", "result_encoding"]
    for stage in report["stages"].values():
        check_stage(stage, len(CASES) * 20)
    check_stage(report["total"], len(CASES) * 20)
    # The four stages of a record add up to its total (the slowest stage cannot be slower than the whole).
    assert report["total"]["mean_us"] >= max(stage["mean_us"] for stage in report["stages"].values()) * 0.99
    assert report["input_errors"] == 0 and report["evaluation_errors"] == 0
    assert report["end_to_end"] is None


def test_text_report_names_every_stage(capsys) -> None:
    code, out, _ = bench(capsys, "--input", str(REPO / "policies" / "examples" / "consumer_loan.json"), "--repeat", "5")
    assert code == 0
    for name in (*STAGES, "total"):
        assert name in out
    assert "1 record(s) × 5 pass(es)" in out


def test_refused_records_are_counted_not_fatal(capsys, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(CASES[0]["input"]) + "\n" + json.dumps({"age": "old"}) + "\n", encoding="utf-8")
    code, out, _ = bench(capsys, "--input", str(path), "--repeat", "3", "--format", "json")
    assert code == 0
    report = json.loads(out)
    assert report["records"] == 2 and report["input_errors"] == 1
    check_stage(report["stages"]["validation"], 6)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ('{"age": 40,\n "DebtRatio": }', ":2:"),  # a syntax error, with its line
        ("[1, 2]", "record 1 is not a JSON object"),
        ("[]", "no records to measure"),
        ("", "the input is empty"),
    ],
    ids=["missing", "malformed", "not-an-object", "no-records", "empty"],
)
def test_bad_input_file_is_a_clear_error_with_exit_code_2(
    capsys, tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "input.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, out, err = bench(capsys, "--input", str(path))
    assert code == 2
    assert err.startswith("error: ") and message in err and str(path) in err
    assert out == ""


def test_bad_policy_and_bad_options(capsys, tmp_path: Path, records: Path) -> None:
    broken = tmp_path / "broken.policy"
    broken.write_text("policy broken:\n  nonsense\n", encoding="utf-8")
    assert main(["bench", str(broken), "--input", str(records)]) == 1
    assert bench(capsys, "--input", str(records), "--as-of", "2026-13-01")[0] == 64
    assert bench(capsys, "--input", str(records), "--repeat", "0")[0] == 64
    code, _, err = bench(capsys, "--input", str(records), "--list", f"nolist={BLACKLIST}")
    assert code == 64 and "no list 'nolist'" in err


def test_e2e_drives_the_server_with_no_errors_and_the_log_complete(capsys, records: Path) -> None:
    code, out, err = bench(
        capsys, "--input", str(records), "--repeat", "2", "--e2e", "--duration", "2", "--connections", "2",
        "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    e2e = json.loads(out)["end_to_end"]
    assert e2e["url"].startswith("http://127.0.0.1:") and e2e["url"].endswith("/v1/decisions/consumer_loan")
    assert e2e["errors"] == 0 and e2e["requests"] > 0
    assert set(e2e["statuses"]) == {"200"}, e2e["statuses"]
    assert e2e["p50_us"] > 0 and e2e["p99_us"] >= e2e["p50_us"] and e2e["per_second"] > 0
    assert e2e["connections"] == 2 and e2e["workers"] >= 2 and e2e["threads"] == 2
    assert e2e["log_stored"] == e2e["log_decisions"] >= e2e["requests"]
    assert e2e["log_lag_seconds"] is not None and e2e["log_lag_seconds"] >= 0
