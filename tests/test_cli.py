"""The `decide` command: exit codes, output formats, and bad input of every kind (never a traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from decide_cli.main import main
from tests.conftest import spec_example_input, spec_example_source

SPEC_RECORD = spec_example_input()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "loan.policy").write_text(spec_example_source(), encoding="utf-8")
    (tmp_path / "blacklist.txt").write_text("", encoding="utf-8")
    (tmp_path / "record.json").write_text(json.dumps(SPEC_RECORD), encoding="utf-8")
    return tmp_path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    return code, captured.out, captured.err


def run_loan(capsys, workspace: Path, *extra: str) -> tuple[int, str, str]:
    return run_cli(
        capsys,
        "run",
        str(workspace / "loan.policy"),
        "--as-of",
        "2026-11-21",
        "--list",
        f"blacklist={workspace / 'blacklist.txt'}",
        *extra,
    )


def test_run_single_record_gives_the_spec_result(capsys, workspace: Path) -> None:
    code, out, _ = run_loan(capsys, workspace, "--input", str(workspace / "record.json"))
    assert code == 0
    assert json.loads(out) == {
        "policy": "consumer_loan",
        "outputs": {"decision": "approve", "limit": 9000, "apr": 0.109, "reasons": []},
        "trace": ["knockouts:-", "risk_score:4,2", "band:3", "pricing:2.1", "final:A01"],
    }


def test_run_without_trace(capsys, workspace: Path) -> None:
    code, out, _ = run_loan(capsys, workspace, "--input", str(workspace / "record.json"), "--no-trace")
    assert code == 0 and "trace" not in json.loads(out)


def test_blacklisted_applicant_is_declined(capsys, workspace: Path) -> None:
    (workspace / "blacklist.txt").write_text("999\n110101199001011234\n\n", encoding="utf-8")
    code, out, _ = run_loan(capsys, workspace, "--input", str(workspace / "record.json"))
    result = json.loads(out)
    assert code == 0
    assert result["outputs"]["decision"] == "decline"
    assert result["outputs"]["reasons"] == ["R01"]
    assert result["trace"] == ["knockouts:R01"]


def test_json_lines_go_on_after_a_bad_record(capsys, workspace: Path) -> None:
    under_age = dict(SPEC_RECORD, birth_date="2010-05-05")
    lines = [json.dumps(SPEC_RECORD), "{not json", json.dumps({"channel": "fax"}), json.dumps(under_age)]
    (workspace / "records.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = run_loan(capsys, workspace, "--input", str(workspace / "records.jsonl"))
    results = [json.loads(line) for line in out.splitlines()]
    assert code == 2
    assert results[0]["outputs"]["decision"] == "approve"
    assert results[1]["error"]["kind"] == "input"
    assert "records.jsonl:2:" in results[1]["error"]["errors"][0]["message"]
    fields = {e["field"] for e in results[2]["error"]["errors"]}
    assert {"channel", "application_id", "monthly_income"} <= fields
    assert results[3]["outputs"]["decision"] == "decline" and results[3]["outputs"]["reasons"] == ["R02"]
    assert "record 2" in err and "record 3" in err


def test_json_array_input(capsys, workspace: Path) -> None:
    (workspace / "records.json").write_text(json.dumps([SPEC_RECORD, SPEC_RECORD]), encoding="utf-8")
    code, out, _ = run_loan(capsys, workspace, "--input", str(workspace / "records.json"))
    assert code == 0 and len(out.splitlines()) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the input is empty"),
        ('{"a": ', "invalid JSON"),
        ('{"monthly_income": NaN}', "NaN and Infinity are not valid JSON numbers"),
        ("42", "expected a JSON object"),
    ],
)
def test_malformed_input_files_exit_2_with_a_located_message(capsys, workspace, content, message) -> None:
    (workspace / "bad.json").write_text(content, encoding="utf-8")
    code, out, err = run_loan(capsys, workspace, "--input", str(workspace / "bad.json"))
    assert code == 2 and out == ""
    assert message in err


def test_binary_and_missing_input_files(capsys, workspace: Path) -> None:
    (workspace / "binary.json").write_bytes(b"\x00\x01\x02")
    assert run_loan(capsys, workspace, "--input", str(workspace / "binary.json"))[0] == 2
    code, _, err = run_loan(capsys, workspace, "--input", str(workspace / "nope.json"))
    assert code == 2 and "no such file" in err


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"monthly_income": "4500"}, "monthly_income", "expected a number"),
        ({"bureau_score": 700.5}, "bureau_score", "whole number"),
        ({"bureau_score": 1e300}, "bureau_score", "too large"),
        ({"bureau_score": 950}, "bureau_score", "in [300..900]"),
        ({"birth_date": "1990-02-30"}, "birth_date", "not a real calendar date"),
        ({"birth_date": "01/02/1990"}, "birth_date", "YYYY-MM-DD"),
        ({"channel": True}, "channel", "expected a string"),
        ({"months_employed": None}, "months_employed", "required field is null"),
        ({"surprise": 1}, "surprise", "unknown field"),
    ],
)
def test_input_errors_name_the_field(capsys, workspace, change, field, words) -> None:
    record = dict(SPEC_RECORD, **change)
    (workspace / "one.json").write_text(json.dumps(record), encoding="utf-8")
    code, out, err = run_loan(capsys, workspace, "--input", str(workspace / "one.json"))
    assert code == 2 and out == ""
    assert f"{field}: " in err and words in err


def test_a_number_too_large_for_a_double_is_located(capsys, workspace: Path) -> None:
    (workspace / "huge.json").write_text(json.dumps(dict(SPEC_RECORD, monthly_income=10**400)), encoding="utf-8")
    code, out, err = run_loan(capsys, workspace, "--input", str(workspace / "huge.json"))
    assert code == 2 and out == ""
    assert "huge.json:1:" in err and "too large" in err


def test_ignore_extra_accepts_unknown_fields(capsys, workspace: Path) -> None:
    (workspace / "extra.json").write_text(json.dumps(dict(SPEC_RECORD, surprise=1)), encoding="utf-8")
    code, out, _ = run_loan(capsys, workspace, "--input", str(workspace / "extra.json"), "--ignore-extra")
    assert code == 0 and json.loads(out)["outputs"]["decision"] == "approve"


def test_pii_values_are_masked_in_errors(capsys, workspace: Path) -> None:
    (workspace / "pii.json").write_text(json.dumps(dict(SPEC_RECORD, id_number=123456789)), encoding="utf-8")
    code, _, err = run_loan(capsys, workspace, "--input", str(workspace / "pii.json"))
    assert code == 2 and "id_number: expected a string, got a number" in err
    assert "123456789" not in err


def test_evaluation_error_exits_3_and_names_rule_and_output(capsys, tmp_path: Path) -> None:
    policy = tmp_path / "div.policy"
    policy.write_text(
        'policy div:\n    title: "d"\n\ninput:\n    debt: number\n    income: number\n\n'
        "output:\n    ratio: number = 0\n\nrules r (first):\n    rule R1:\n        when true\n"
        "        then ratio = debt / income\n",
        encoding="utf-8",
    )
    record = tmp_path / "zero.json"
    record.write_text('{"debt": 10, "income": 0}', encoding="utf-8")
    code, out, err = run_cli(capsys, "run", str(policy), "--input", str(record))
    assert code == 3 and out == ""
    assert "rule R1" in err and "output 'ratio'" in err and "div.policy:14:" in err


def test_missing_store_list_is_an_evaluation_error(capsys, workspace: Path) -> None:
    code, _, err = run_cli(capsys, "run", str(workspace / "loan.policy"), "--input", str(workspace / "record.json"))
    assert code == 3 and "blacklist" in err


def test_bad_options_exit_64(capsys, workspace: Path) -> None:
    assert run_loan(capsys, workspace, "--input", str(workspace / "record.json"), "--as-of", "2026-13-01")[0] == 64
    assert (
        run_cli(
            capsys,
            "run",
            str(workspace / "loan.policy"),
            "--input",
            str(workspace / "record.json"),
            "--list",
            "nosuch=x",
        )[0]
        == 64
    )
    assert run_cli(capsys, "frobnicate")[0] == 64


def test_list_file_of_ints_reports_bad_lines(capsys, tmp_path: Path) -> None:
    policy = tmp_path / "codes.policy"
    policy.write_text(
        'policy codes:\n    title: "c"\n\ninput:\n    code: int\n\noutput:\n    hit: bool = false\n\n'
        "list blocked: int\n\nrules r (first):\n    rule R1:\n        when code in blocked\n        then hit = true\n",
        encoding="utf-8",
    )
    (tmp_path / "codes.txt").write_text("1\n2\nthree\n", encoding="utf-8")
    (tmp_path / "r.json").write_text('{"code": 2}', encoding="utf-8")
    code, _, err = run_cli(
        capsys, "run", str(policy), "--input", str(tmp_path / "r.json"), "--list", f"blocked={tmp_path / 'codes.txt'}"
    )
    assert code == 2 and "codes.txt:3:" in err
    (tmp_path / "codes.txt").write_text("1\n2\n", encoding="utf-8")
    code, out, _ = run_cli(
        capsys, "run", str(policy), "--input", str(tmp_path / "r.json"), "--list", f"blocked={tmp_path / 'codes.txt'}"
    )
    assert code == 0 and json.loads(out)["outputs"]["hit"] is True


def test_check_exit_codes_and_json(capsys, workspace: Path) -> None:
    code, out, _err = run_cli(capsys, "check", str(workspace / "loan.policy"))
    assert code == 0 and "warning: input 'delinquencies_12m' is never used" in out
    bad = workspace / "bad.policy"
    bad.write_text('policy bad:\n    title: "b"\ninput:\n    a: int\noutput:\n    b: int = x\n', encoding="utf-8")
    code, out, _ = run_cli(capsys, "check", "--format", "json", str(bad), str(workspace / "loan.policy"))
    diagnostics = json.loads(out)
    assert code == 1
    assert [d["severity"] for d in diagnostics].count("error") >= 1
    assert all({"code", "message", "location", "severity"} <= set(d) for d in diagnostics)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "the file has no policy"),
        (b"\x00\x01binary", "binary file"),
        (b'policy x:\n    title: "\xff"\n', "not valid UTF-8"),
        (b'policy x:\n\ttitle: "t"\n', "tab character"),
    ],
)
def test_check_bad_policy_files(capsys, tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "p.policy"
    path.write_bytes(content)
    code, out, _ = run_cli(capsys, "check", str(path))
    assert code == 1 and words in out and "p.policy:" in out


def test_check_missing_file_and_directory(capsys, tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "check", str(tmp_path / "none.policy"), str(tmp_path))
    assert code == 1 and "no such file" in out and "is a directory" in out
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.policy").write_text("policy x\n", encoding="utf-8")
    code, out, _ = run_cli(capsys, "check", str(tmp_path))
    assert code == 1 and "x.policy:1:" in out


def test_test_command_reports_failures_and_counts(capsys, workspace: Path) -> None:
    cases = [
        {
            "name": "approves",
            "input": SPEC_RECORD,
            "as_of": "2026-11-21",
            "expect": {"decision": "approve", "limit": 9000},
        },
        {"name": "wrong on purpose", "input": SPEC_RECORD, "as_of": "2026-11-21", "expect": {"decision": "decline"}},
        {"name": "input error expected", "input": {}, "expect": {"error": "monthly_income: required"}},
    ]
    (workspace / "loan.tests.json").write_text(json.dumps(cases), encoding="utf-8")
    code, out, _ = run_cli(capsys, "test", str(workspace))
    assert code == 1
    assert 'decision: expected "decline", got "approve"' in out
    assert out.strip().splitlines()[-1] == "2 passed, 1 failed"


def test_test_command_rejects_malformed_case_files(capsys, workspace: Path) -> None:
    (workspace / "loan.tests.json").write_text('[{"name": "x", "inputs": {}}]', encoding="utf-8")
    code, _, err = run_cli(capsys, "test", str(workspace / "loan.policy"))
    assert code == 1 and "unknown key(s) inputs" in err
    code, _, err = run_cli(capsys, "test", str(workspace / "nothing-here"))
    assert code == 1 and "no such file" in err


def test_fmt_check_and_rewrite(capsys, tmp_path: Path) -> None:
    path = tmp_path / "messy.policy"
    path.write_text(
        'policy messy:\n    title:   "m"\n\ninput:\n    a:  int\n\noutput:\n    b: int=0\n\n'
        "table t (first):\n    | a || v |\n    | < 10 || 1 |\n    | - || 2 |\n\nrules r (first):\n"
        "    rule R1:\n        when v==1  # small\n        then b = v+1\n",
        encoding="utf-8",
    )
    code, out, _ = run_cli(capsys, "fmt", "--check", str(path))
    assert code == 1 and "would reformat" in out
    before = path.read_text(encoding="utf-8")
    assert run_cli(capsys, "fmt", str(path))[0] == 0
    after = path.read_text(encoding="utf-8")
    assert after != before and "# small" in after and "when v == 1" in after
    assert run_cli(capsys, "fmt", "--check", str(path))[0] == 0


def test_fmt_leaves_a_broken_policy_untouched(capsys, tmp_path: Path) -> None:
    path = tmp_path / "broken.policy"
    path.write_text("policy broken\n", encoding="utf-8")
    code, _, err = run_cli(capsys, "fmt", str(path))
    assert code == 1 and "broken.policy:1:" in err
    assert path.read_text(encoding="utf-8") == "policy broken\n"


def test_version_names_the_evaluator(capsys) -> None:
    code, out, _ = run_cli(capsys, "version")
    assert code == 0 and out.startswith("decide ") and "evaluator:" in out


def test_console_script_runs_from_standard_input(workspace: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "decide_cli",
            "run",
            str(workspace / "loan.policy"),
            "--input",
            "-",
            "--as-of",
            "2026-11-21",
            "--list",
            f"blacklist={workspace / 'blacklist.txt'}",
        ],
        input=json.dumps(SPEC_RECORD),
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["outputs"]["limit"] == 9000
