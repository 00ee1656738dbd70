"""Population stability (`--baseline`): the PSI of inputs and outputs between a baseline and this data, checked
against numpy over the same bins (the baseline's deciles; categories by value; missing values apart), and read
as stable / moderate / major.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simulations
from simulations.stability import FLOOR, reading
from tests.simulations.test_compare import outcomes
from tests.simulations.test_run import LISTS, POLICY, applicants


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected / expected.sum(), FLOOR)
    a = np.maximum(actual / actual.sum(), FLOOR)
    keep = (expected > 0) | (actual > 0)
    return float(((a - e) * np.log(a / e))[keep].sum())


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame, pd.DataFrame]:
    directory = tmp_path_factory.mktemp("stability")
    baseline = applicants(600, seed=21)
    actual = applicants(400, seed=22)
    actual["age"] = actual["age"] + 12  # an older population
    baseline.to_parquet(directory / "baseline.parquet", index=False)
    actual.to_parquet(directory / "actual.parquet", index=False)
    return directory / "baseline.parquet", directory / "actual.parquet", baseline, actual


def test_input_and_output_psi_match_numpy_on_the_baselines_bins(data) -> None:
    baseline_path, actual_path, baseline, actual = data
    result = simulations.run(POLICY, [actual_path], baseline=[baseline_path], lists=LISTS, as_of="2026-12-01")
    figures = result.stability
    # age: cut at the baseline's deciles (inverted-CDF quantiles, values the baseline has)
    edges = sorted(set(np.quantile(baseline["age"], np.arange(1, 10) / 10, method="inverted_cdf")))

    def binned(values: pd.Series) -> np.ndarray:
        return np.array([values.isna().sum()] + [((values <= e) & (values > lo)).sum() for lo, e in
                        zip([-np.inf, *edges[:-1]], edges, strict=True)] + [(values > edges[-1]).sum()])  # fmt: skip

    expected_psi = psi(binned(baseline["age"]), binned(actual["age"]))
    age = figures["inputs"]["age"]
    assert age["psi"] == pytest.approx(expected_psi, rel=1e-9)
    assert age["reading"] == reading(expected_psi) == "major shift"
    assert [row["bin"] for row in age["bins"] if row["bin"] != "(missing)"][:3] == [f"≤ {int(e)}" for e in edges[:3]]
    # national_id: text, its 20 most frequent baseline values, then the rest
    assert figures["inputs"]["national_id"]["reading"] in ("stable", "moderate shift", "major shift")
    # decision: the policy's outputs on each dataset (reference evaluator), by value
    before = pd.Series(outcomes(POLICY, baseline))
    after = pd.Series(outcomes(POLICY, actual))
    before, after = before[before != "(input error)"], after[after != "(input error)"]
    values = sorted(set(before))
    counts_before = np.array([0] + [(before == v).sum() for v in values] + [0])
    counts_after = np.array([0] + [(after == v).sum() for v in values] + [(~after.isin(values)).sum()])
    assert figures["outputs"]["decision"]["psi"] == pytest.approx(psi(counts_before, counts_after), rel=1e-9)
    assert figures["baseline"]["rows"] == len(baseline)


def test_the_same_data_is_stable(data) -> None:
    baseline_path, _, _, _ = data
    result = simulations.run(POLICY, [baseline_path], baseline=[baseline_path], lists=LISTS, as_of="2026-12-01")
    for side in ("inputs", "outputs"):
        for name, figure in result.stability[side].items():
            assert figure["psi"] == pytest.approx(0.0, abs=1e-12), name
            assert figure["reading"] == "stable"


def test_the_readings() -> None:
    assert [reading(x) for x in (0.0, 0.099, 0.1, 0.25, 0.2501)] == [
        "stable", "stable", "moderate shift", "moderate shift", "major shift"]  # fmt: skip
    assert math.isclose(psi(np.array([50, 50]), np.array([50, 50])), 0.0)


def test_decide_simulate_baseline_prints_and_writes_the_stability(data, tmp_path: Path, capsys) -> None:
    import orjson

    from decide_cli.main import main
    from tests.conftest import REPO

    baseline_path, actual_path, _, _ = data
    (tmp_path / "blacklist.txt").write_text("\n".join(LISTS["blacklist"]) + "\n")
    out = tmp_path / "metrics.json"
    code = main(["simulate", str(REPO / "policies" / "consumer_loan.policy"), "--data", str(actual_path),
                 "--baseline", str(baseline_path), "--list", f"blacklist={tmp_path / 'blacklist.txt'}",
                 "--as-of", "2026-12-01", "--json", str(out), "--quiet"])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    written = orjson.loads(out.read_bytes())["stability"]
    age = written["inputs"]["age"]
    assert f"age {age['psi']:.3f} (major shift)" in printed.out
    expected = simulations.run(POLICY, [actual_path], baseline=[baseline_path], lists=LISTS, as_of="2026-12-01")
    assert written["inputs"] == orjson.loads(orjson.dumps(expected.stability["inputs"]))
