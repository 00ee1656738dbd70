"""`decide simulate` from the command line: its summary and JSON carry the back-test's figures, every refusal is
a message and the documented exit code (never a traceback), and Ctrl-C stops it with the rows read reported as
partial — a real SIGINT to a real process.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pandas as pd
import pytest

import simulations
from decide_cli.main import main
from tests.conftest import REPO
from tests.simulations.test_run import LISTS, POLICY, applicants

POLICY_FILE = str(REPO / "policies" / "consumer_loan.policy")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("simulate-cli")
    frame = applicants(300)
    frame.to_parquet(directory / "applicants.parquet", index=False)
    frame.assign(as_of=dt.date(2026, 6, 30)).to_parquet(directory / "dated.parquet", index=False)
    (directory / "blacklist.txt").write_text("\n".join(LISTS["blacklist"]) + "\n")
    return {"data": directory / "applicants.parquet", "dated": directory / "dated.parquet",
            "list": directory / "blacklist.txt", "dir": directory}  # fmt: skip


def simulate(*arguments: str) -> int:
    return main(["simulate", POLICY_FILE, *arguments])


def test_the_summary_and_the_json_carry_the_figures(files: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    out = files["dir"] / "metrics.json"
    code = simulate("--data", str(files["data"]), "--list", f"blacklist={files['list']}", "--as-of", "2026-12-01",
                    "--label", "bad", "--json", str(out), "--quiet")  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    expected = simulations.run(POLICY, [files["data"]], lists=LISTS, as_of="2026-12-01", label="bad")
    written = orjson.loads(out.read_bytes())
    assert written["metrics"] == orjson.loads(orjson.dumps(expected.metrics, option=orjson.OPT_NON_STR_KEYS))
    assert written["partial"] is False and written["policy"]["content_hash"] == POLICY.content_hash
    metrics = expected.metrics
    first = printed.out.splitlines()[0]
    assert first.startswith(f"policy consumer_loan (approval) · {metrics['rows']:,} rows · ")
    approve = metrics["approval"]["approve_rate"]
    assert f"approval: approve {approve:.1%}" in printed.out
    auc = metrics["label"]["by_output"]["score"]["separation"]["auc"]
    assert f"AUC {auc:.3f}" in printed.out


def test_against_prints_the_swap_set_and_writes_the_comparison(
    files: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    stricter = str(REPO / "simulations" / "examples" / "consumer_loan_stricter.policy")
    out = files["dir"] / "compared.json"
    code = main(["simulate", stricter, "--against", POLICY_FILE, "--data", str(files["data"]), "--label", "bad",
                 "--list", f"blacklist={files['list']}", "--as-of", "2026-12-01", "--json", str(out),
                 "--quiet"])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    written = orjson.loads(out.read_bytes())
    expected = simulations.run(stricter, [files["data"]], against=POLICY, lists=LISTS, as_of="2026-12-01", label="bad")
    assert written["comparison"] == orjson.loads(orjson.dumps(expected.comparison))
    assert written["against"]["policy"]["content_hash"] == POLICY.content_hash
    changed = expected.comparison["changed_rows"]
    assert f"against consumer_loan ({POLICY.content_hash[:12]}): {changed:,} rows" in printed.out
    swap_out = expected.comparison["swap_out"]["rows"]
    assert f"swap-out: {swap_out:,} rows" in printed.out


def test_an_as_of_column_gives_each_row_its_own_date(files: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    listed = ("--list", f"blacklist={files['list']}", "--json", "-", "--quiet")
    assert simulate("--data", str(files["dated"]), "--as-of-column", "as_of", *listed) == 0
    by_column = orjson.loads(capsys.readouterr().out)["metrics"]
    assert simulate("--data", str(files["dated"]), "--as-of", "2026-06-30", *listed) == 0
    assert by_column == orjson.loads(capsys.readouterr().out)["metrics"]


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["--data", "{dir}/nowhere.csv"], 2, "error: the data file {dir}/nowhere.csv does not exist"),
        (["--data", "{data}", "--query", "{dir}/no.sql"], 2, "error: cannot read the query file {dir}/no.sql"),
        (["--data", "{data}", "--as-of", "2026-13-01"], 64, "'2026-13-01' is not a date YYYY-MM-DD"),
        (["--data", "{data}", "--as-of", "2026-01-01", "--as-of-column", "as_of"], 64, "not both"),
        (["--data", "{data}", "--as-of-column", "nowhere"], 2, "error: the data has no column nowhere"),
        (["--data", "{data}", "--label", "age"], 2, "error: the label column age has"),
        (["--data", "{data}", "--list", "nolist={list}"], 64, "the policy has no list 'nolist'"),
        (["--data", "{data}"], 2, "error: the policy reads the list(s) blacklist: supply each with --list NAME=FILE"),
    ],
)
def test_refusals_are_messages_with_their_exit_code(
    files: dict[str, Path], capsys: pytest.CaptureFixture, arguments: list[str], code: int, message: str
) -> None:
    values = {"dir": files["dir"], "data": files["data"], "list": files["list"]}
    filled = [argument.format(**values) for argument in arguments]
    if "--list" not in arguments and "--label" in arguments:
        filled += ["--list", f"blacklist={files['list']}"]
    if "--as-of-column" in arguments and "--list" not in arguments:
        filled += ["--list", f"blacklist={files['list']}"]
    assert simulate(*filled, "--quiet") == code
    printed = capsys.readouterr()
    assert message.format(**values) in printed.err
    assert "Traceback" not in printed.err + printed.out


def test_a_policy_that_does_not_compile_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    broken = tmp_path / "broken.policy"
    broken.write_text("policy broken:\n    kind: approval\n\ninput:\n    age: int\n\noutput:\n    x: int = \n")
    assert main(["simulate", str(broken), "--data", str(tmp_path)]) == 1
    assert "broken.policy:" in capsys.readouterr().err


def test_ctrl_c_stops_after_a_batch_and_reports_the_rows_read_as_partial(tmp_path: Path) -> None:
    big = pd.concat([applicants(1000, seed) for seed in range(200)], ignore_index=True)  # 200,000 rows
    big.to_parquet(tmp_path / "big.parquet", index=False)
    (tmp_path / "blacklist.txt").write_text("")
    out = tmp_path / "partial.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "decide_cli", "simulate", POLICY_FILE, "--data", str(tmp_path / "big.parquet"),
         "--list", f"blacklist={tmp_path / 'blacklist.txt'}", "--batch-rows", "200", "--threads", "1",
         "--json", str(out), "--decisions", str(tmp_path / "decisions.parquet"), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    time.sleep(2.5)  # past start-up, well before 1,000 batches are done
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "stopped by Ctrl-C" in stderr and "Traceback" not in stderr
    assert "PARTIAL" in stdout
    written = orjson.loads(out.read_bytes())
    rows = written["metrics"]["rows"]
    assert written["partial"] is True
    assert 0 < rows < len(big) and written["data"]["batches"] >= 1  # whole batches only: the file agrees below
    import pyarrow.parquet as pq

    assert not (tmp_path / "decisions.parquet").exists()  # never a partial file under the complete one's name
    assert pq.read_table(tmp_path / "decisions.partial.parquet").num_rows == rows


def test_on_a_terminal_the_progress_bar_runs_and_the_figures_are_the_same(
    files: dict[str, Path], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bar counts the rows first (a second query on the same connection) and then reads them: both work."""
    source = simulations.open_data([files["data"]], batch_rows=50)
    assert source.count() == 300 and sum(batch.num_rows for batch in source.batches()) == 300
    source.close()
    listed = ("--list", f"blacklist={files['list']}", "--as-of", "2026-12-01", "--batch-rows", "50")
    assert simulate("--data", str(files["data"]), *listed, "--quiet") == 0
    quiet = capsys.readouterr().out
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert simulate("--data", str(files["data"]), *listed) == 0
    printed = capsys.readouterr()
    assert printed.out == quiet
