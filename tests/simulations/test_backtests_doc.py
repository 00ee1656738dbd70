"""docs/backtests.md is reproducible: every `decide simulate` command in it, run again, prints exactly the
read-out written under it (the figures are exact counts, so they cannot drift). Needs ../shared/data; skipped
with a message where it is absent.
"""

from __future__ import annotations

import re
import shlex

import pytest

from decide_cli.main import main
from tests.conftest import REPO, SHARED

DOC = REPO / "docs" / "backtests.md"


def documented_runs() -> list[tuple[str, list[str], list[str]]]:
    """(title, argv, expected lines) for each fenced block of docs/backtests.md that starts with `$ decide`."""
    runs = []
    for block in re.findall(r"```\n(\$ decide simulate .*?)\n```", DOC.read_text(encoding="utf-8"), flags=re.S):
        lines = block.splitlines()
        command = []
        while lines:
            line = lines.pop(0)
            command.append(line.removeprefix("$ ").rstrip("\\").strip())
            if not line.endswith("\\"):
                break
        argv = shlex.split(" ".join(command))
        runs.append((" ".join(argv[:3]), argv[1:], lines))
    return runs


RUNS = documented_runs()


def test_the_document_has_its_runs() -> None:
    assert len(RUNS) >= 6
    assert all(argv[0] == "simulate" and expected for _, argv, expected in RUNS)


@pytest.mark.parametrize(("title", "argv", "expected"), RUNS, ids=[title for title, _, _ in RUNS])
def test_each_documented_read_out_is_what_the_command_prints(title, argv, expected, capsys, monkeypatch) -> None:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"{SHARED / 'data'} is absent (the shared data is not next to the repository)")
    monkeypatch.chdir(REPO)
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    if expected and expected[0].startswith("against "):  # the document shows only the comparison of that run
        printed = printed[next(i for i, line in enumerate(printed) if line.startswith("against ")) :]
    assert printed == expected
