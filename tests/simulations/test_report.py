"""The back-test report (simulations/report.py): one self-contained page — nothing fetched, no script — whose
figures are the run's, with no personal value in plain text, the same bytes for the same run; and a real
Chromium (Debian's package) renders it with its charts, checked on a screenshot.
"""

from __future__ import annotations

import html.parser
import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image  # Pillow comes with matplotlib

import simulations
from simulations.report import render_html
from tests.components import require_executable
from tests.conftest import REPO
from tests.simulations.test_compare import STRICTER
from tests.simulations.test_run import LISTS, POLICY, applicants


class Page(html.parser.HTMLParser):
    """What a page would load or run: tags with a src or href, scripts, stylesheets; and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action") and value is not None:
                self.references.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, simulations.SimulationResult, list[str]]:
    frame = applicants(300, seed=5)
    frame["national_id"] = [f"{n:09d}" for n in range(500_000_000, 500_000_300)]  # every one unique
    path = tmp_path_factory.mktemp("report") / "applicants.parquet"
    frame.to_parquet(path, index=False)
    result = simulations.run(STRICTER, [path], against=POLICY, lists=LISTS, as_of="2026-12-01", label="bad",
                             segments=["NumberRealEstateLoansOrLines"])  # fmt: skip
    return render_html(result, "test engine"), result, list(frame["national_id"])


def test_the_page_is_self_contained_and_carries_the_runs_figures(report) -> None:
    text, result, _ = report
    page = Page()
    page.feed(text)
    assert not {"script", "link", "iframe", "img", "object", "embed"} & page.tags
    assert all(reference.startswith("#") for reference in page.references), page.references  # SVG-internal only
    assert text.count("<svg") >= 8
    shown = " ".join(page.text)
    metrics, comparison = result.metrics, result.comparison
    assert f"{metrics['rows']:,}" in shown
    assert f"{metrics['approval']['approve_rate']:.1%}" in shown
    assert f"{metrics['label']['by_output']['score']['separation']['gini']:.3f}" in shown
    assert f"{comparison['changed_rows']:,} of {comparison['rows']:,} rows" in shown
    assert result.content_hash in shown and result.against.content_hash in shown
    assert result.files[0]["sha256"] in shown
    assert "Items never hit on this data" in shown and "NumberRealEstateLoansOrLines" in shown


def test_no_personal_value_appears_in_plain_text(report) -> None:
    text, result, national_ids = report
    assert result.comparison["sample"], "the run must have swapped rows to show"
    assert not [value for value in national_ids if value in text]
    assert "*****" in text  # the sample shows them masked


def test_the_same_run_gives_the_same_page(report) -> None:
    text, result, _ = report
    assert render_html(result, "test engine") == text
    assert result.to_html("test engine") == text


def test_chromium_renders_the_report_with_its_charts(report, tmp_path: Path) -> None:
    chromium = require_executable("Chromium (Debian package chromium)", "chromium", "chromium-browser")
    text, _, _ = report
    page = tmp_path / "report.html"
    page.write_text(text, encoding="utf-8")
    shot = tmp_path / "report.png"
    completed = subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,1800",
         f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert shot.exists(), completed.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1800)
    counts = dict((colour, n) for n, colour in image.getcolors(maxcolors=1 << 20))
    assert counts.get((0x2F, 0x6F, 0x9F), 0) > 2000  # the first chart colour: the decision chart's bars are drawn
    assert len(counts) > 50  # text, tables and charts, not a blank or an error page
    assert counts.get((255, 255, 255), 0) < 0.97 * 1200 * 1800


def test_decide_simulate_writes_the_report(tmp_path: Path) -> None:
    frame = applicants(120)
    frame.to_parquet(tmp_path / "a.parquet", index=False)
    (tmp_path / "blacklist.txt").write_text("")
    out = tmp_path / "report.html"
    from decide_cli.main import main

    code = main(["simulate", str(REPO / "policies" / "consumer_loan.policy"), "--data", str(tmp_path / "a.parquet"),
                 "--list", f"blacklist={tmp_path / 'blacklist.txt'}", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "Back-test of consumer_loan" in out.read_text(encoding="utf-8")
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as any new file, not mkstemp's 0600
