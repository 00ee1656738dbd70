"""Back-tests (simulations): every count checked against an independent computation with pandas/numpy over the
reference evaluator's row-by-row answers; the same figures whatever the batch size; bad data and queries refused
with a message that says what and where. The Give Me Some Credit file is used where ../shared is present.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import simulations
from compiler.policy import compile_file
from dsl.errors import InputError
from simulations.aggregates import QUANTILES, Aggregate
from tests.conftest import REPO, SHARED

POLICY = compile_file(REPO / "policies" / "consumer_loan.policy")
LISTS = {"blacklist": ["123-45-6789"]}
COLUMNS = [
    "national_id", "age", "MonthlyIncome", "DebtRatio", "RevolvingUtilizationOfUnsecuredLines",
    "NumberOfOpenCreditLinesAndLoans", "NumberRealEstateLoansOrLines", "NumberOfTimes90DaysLate",
    "NumberOfDependents", "bad",
]  # fmt: skip


def applicants(count: int = 240, seed: int = 7) -> pd.DataFrame:
    """Varied applicants: approvals, refers, declines, knockouts, missing incomes, and out-of-range ages."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "national_id": [f"{n:03d}-45-6789" for n in rng.integers(100, 130, count)],
            "age": rng.integers(15, 90, count),
            "MonthlyIncome": np.where(rng.random(count) < 0.15, np.nan, rng.integers(0, 20_000, count)),
            "DebtRatio": rng.random(count).round(3),
            "RevolvingUtilizationOfUnsecuredLines": (rng.random(count) * 1.5).round(3),
            "NumberOfOpenCreditLinesAndLoans": rng.integers(0, 20, count),
            "NumberRealEstateLoansOrLines": rng.integers(0, 4, count),
            "NumberOfTimes90DaysLate": rng.choice([0, 0, 0, 1, 3], count),
            "NumberOfDependents": rng.integers(0, 5, count),
            "bad": rng.integers(0, 2, count),
        }
    )
    frame.loc[rng.random(count) < 0.05, "age"] = 130  # outside [0..120]: an input error
    return frame[COLUMNS]


def reference(frame: pd.DataFrame) -> pd.DataFrame:
    """The reference evaluator's answer for every row, one row at a time: outputs, reasons, or the error."""
    answers = []
    for record in frame.drop(columns=["bad"]).to_dict("records"):
        record = {name: None if isinstance(v, float) and np.isnan(v) else v for name, v in record.items()}
        record = {name: int(v) if isinstance(v, np.integer) else v for name, v in record.items()}
        try:
            outputs = POLICY.evaluate(record, lists=LISTS, as_of="2026-12-01")["outputs"]
            answers.append({**outputs, "error_field": None})
        except InputError as exc:
            answers.append({"error_field": exc.errors[0].field})
    return pd.DataFrame(answers)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    frame = applicants()
    path = tmp_path_factory.mktemp("simulation") / "applicants.parquet"
    frame.to_parquet(path, index=False)
    return path, frame, reference(frame)


def test_every_count_matches_an_independent_computation(data: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    path, frame, expected = data
    result = simulations.run(POLICY, [path], lists=LISTS, as_of="2026-12-01", batch_rows=50)
    metrics = result.metrics
    decided = expected[expected["error_field"].isna()]
    assert metrics["rows"] == len(frame) and metrics["decided"] == len(decided)
    assert {item["field"]: item["rows"] for item in metrics["input_errors"]["by_field"]} == dict(
        Counter(expected["error_field"].dropna())
    )
    assert 0 < metrics["input_errors"]["rows"] < len(frame)
    for name in ("decision", "risk_band"):
        counted = {item["value"]: item["rows"] for item in metrics["outputs"][name]["values"]}
        assert counted == dict(Counter(None if pd.isna(v) else v for v in decided[name]))
    assert {"approve", "refer", "decline"} <= set(decided["decision"])  # the data exercises every outcome
    limits = decided["limit"].to_numpy(dtype=float)
    numeric = metrics["outputs"]["limit"]["numeric"]
    assert numeric["count"] == len(limits)
    assert numeric["mean"] == pytest.approx(limits.mean(), rel=1e-12)
    assert (numeric["min"], numeric["max"]) == (limits.min(), limits.max())
    for q in QUANTILES:
        assert numeric["quantiles"][f"p{round(q * 100):02d}"] == np.quantile(limits, q, method="inverted_cdf"), q
    firsts = Counter(reasons[0] if reasons else None for reasons in decided["reasons"])
    assert {item["value"]: item["rows"] for item in metrics["reasons"]["first"]} == dict(firsts)
    anywhere = Counter(reason for reasons in decided["reasons"] for reason in set(reasons))
    assert {item["value"]: item["rows"] for item in metrics["reasons"]["any"]} == dict(anywhere)
    assert result.batches == -(-len(frame) // 50)


@pytest.mark.parametrize("batch_rows", [1, 7, 1000])
def test_the_figures_do_not_depend_on_the_batch_size(
    data: tuple[Path, pd.DataFrame, pd.DataFrame], batch_rows: int
) -> None:
    path, _, _ = data
    whole = simulations.run(POLICY, [path], lists=LISTS, as_of="2026-12-01", batch_rows=100_000)
    split = simulations.run(POLICY, [path], lists=LISTS, as_of="2026-12-01", batch_rows=batch_rows)
    assert split.metrics == whole.metrics


def test_a_query_maps_renames_and_filters(tmp_path: Path, data: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    _, frame, expected = data
    renamed = frame.rename(columns={"age": "age_years"})
    csv = tmp_path / "renamed.csv"
    renamed.to_csv(csv, index=False)
    query = "SELECT * EXCLUDE (age_years), age_years AS age FROM data WHERE bad = 1"
    result = simulations.run(POLICY, [csv], query=query, lists=LISTS, as_of="2026-12-01")
    bad_rows = expected[(frame["bad"] == 1).to_numpy()]
    assert result.metrics["rows"] == len(bad_rows)
    assert result.metrics["decided"] == int(bad_rows["error_field"].isna().sum())


def test_hit_counts_match_the_reference_traces_and_name_what_never_fired(
    data: tuple[Path, pd.DataFrame, pd.DataFrame],
) -> None:
    path, frame, _ = data
    result = simulations.run(POLICY, [path], lists=LISTS, as_of="2026-12-01", batch_rows=64)
    entries: Counter = Counter()
    for record in frame.drop(columns=["bad"]).to_dict("records"):
        record = {name: None if isinstance(v, float) and np.isnan(v) else v for name, v in record.items()}
        record = {name: int(v) if isinstance(v, np.integer) else v for name, v in record.items()}
        try:
            entries.update(POLICY.evaluate(record, lists=LISTS, as_of="2026-12-01", engine="reference")["trace"])
        except InputError:
            continue
    by_item: Counter = Counter()
    for entry, rows in entries.items():  # spec §6, read here by hand
        name, _, labels = entry.partition(":")
        kind = POLICY.info.statement(name).kind
        if labels == "-":
            continue
        if kind == "scorecard":
            for position, bin_ in enumerate(labels.split(","), start=1):
                by_item[(name, f"{position}.{bin_}")] += rows if bin_ != "0" else 0
        elif kind == "tree":
            steps = labels.split(".")
            for depth in range(1, len(steps) + 1):
                by_item[(name, ".".join(steps[:depth]))] += rows
        else:
            for label in set(labels.split(",")):
                by_item[(name, label)] += rows
    hits = result.metrics["hits"]
    assert [statement["statement"] for statement in hits] == ["knockouts", "risk_score", "band", "pricing",
                                                              "summary", "final"]  # fmt: skip
    for statement in hits:
        for item in statement["items"]:
            assert item["rows"] == by_item[(statement["statement"], item["label"])], (statement["statement"], item)
        assert statement["never_hit"] == [item["label"] for item in statement["items"] if item["rows"] == 0]
    knockouts = hits[0]
    assert knockouts["evaluated_rows"] == result.metrics["decided"]
    assert knockouts["items"][0]["title"] and knockouts["items"][0]["line"] > 0


def test_a_reason_given_twice_by_one_row_counts_once_for_that_row() -> None:
    results = pa.table(
        {
            "decision": ["decline", "decline", "approve", None],
            "reasons": [["R1", "R2", "R1"], ["R2"], [], None],
            "error": [None, None, None, "age: required field is missing"],
            "error_code": [None, None, None, "required"],
            "error_field": [None, None, None, "age"],
        }
    )
    aggregate = Aggregate.of(results, ["decision"], {"age"})
    assert dict(aggregate.any_reason) == {"R1": 1, "R2": 2}
    assert dict(aggregate.first_reason) == {"R1": 1, "R2": 1, None: 1}
    assert dict(aggregate.input_errors) == {"age": 1} and aggregate.decided == 3
    halves = Aggregate.of(results.slice(0, 2), ["decision"], {"age"}).merge(
        Aggregate.of(results.slice(2), ["decision"], {"age"})
    )
    assert halves.metrics() == aggregate.metrics()


def _auc_and_ks(scores: np.ndarray, bad: np.ndarray) -> tuple[float, float]:
    """AUC (a good above a bad, ties half) by average ranks (Mann-Whitney), and KS from the two empirical CDFs."""
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    goods, bads = int((~bad).sum()), int(bad.sum())
    auc = (ranks[~bad].sum() - goods * (goods + 1) / 2) / (goods * bads)
    grid = np.unique(scores)
    cdf_bad = np.searchsorted(np.sort(scores[bad]), grid, side="right") / bads
    cdf_good = np.searchsorted(np.sort(scores[~bad]), grid, side="right") / goods
    return auc, float(np.abs(cdf_bad - cdf_good).max())


def test_label_figures_match_an_independent_computation(data: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    path, frame, expected = data
    result = simulations.run(POLICY, [path], lists=LISTS, as_of="2026-12-01", batch_rows=37, label="bad")
    metrics = result.metrics
    joined = expected.assign(bad=frame["bad"].to_numpy())
    decided = joined[joined["error_field"].isna()]
    label = metrics["label"]
    assert (label["bad_value"], label["good_value"]) == ("1", "0")
    assert (label["rows"], label["bads"]) == (len(decided), int(decided["bad"].sum()))
    approval = metrics["approval"]
    for outcome, past in (("approve", "approved"), ("refer", "referred"), ("decline", "declined")):
        rows = decided[decided["decision"] == outcome]
        assert approval[f"{outcome}_rate"] == pytest.approx(len(rows) / len(decided), rel=1e-12)
        assert approval[f"bad_rate_{past}"] == pytest.approx(rows["bad"].mean(), rel=1e-12)
    approved = decided["decision"] == "approve"
    goods, bads = decided["bad"] == 0, decided["bad"] == 1
    assert approval["approved_share_of_goods"] == pytest.approx((approved & goods).sum() / goods.sum(), rel=1e-12)
    assert approval["approved_share_of_bads"] == pytest.approx((approved & bads).sum() / bads.sum(), rel=1e-12)
    scored = decided[decided["score"].notna()]
    auc, ks = _auc_and_ks(scored["score"].to_numpy(dtype=float), scored["bad"].to_numpy() == 1)
    separation = label["by_output"]["score"]["separation"]
    assert separation["auc"] == pytest.approx(auc, rel=1e-12)
    assert separation["gini"] == pytest.approx(2 * auc - 1, rel=1e-12)
    assert separation["ks"] == pytest.approx(ks, rel=1e-12)
    bands = separation["bands"]
    assert sum(band["rows"] for band in bands) == len(scored)
    for band in bands:
        low = -np.inf if band["above"] is None else band["above"]
        inside = scored[(scored["score"] > low) & (scored["score"] <= band["up_to"])]
        assert (band["rows"], band["bads"]) == (len(inside), int(inside["bad"].sum()))
    by_band = {item["value"]: item for item in label["by_output"]["risk_band"]["values"]}
    for value, rows in decided.groupby("risk_band"):
        assert (by_band[value]["rows"], by_band[value]["bads"]) == (len(rows), int(rows["bad"].sum()))


def test_segments_hold_the_figures_of_their_rows(data: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    path, frame, _ = data
    whole = simulations.run(POLICY, [path], lists=LISTS, as_of="2026-12-01", segments=["NumberRealEstateLoansOrLines"])
    segments = whole.metrics["segments"]["NumberRealEstateLoansOrLines"]
    assert sorted(item["value"] for item in segments) == sorted(frame["NumberRealEstateLoansOrLines"].unique())
    for item in segments:
        alone = path.with_name(f"segment-{item['value']}.parquet")
        frame[frame["NumberRealEstateLoansOrLines"] == item["value"]].to_parquet(alone, index=False)
        expected = simulations.run(POLICY, [alone], lists=LISTS, as_of="2026-12-01").metrics
        assert "hits" not in item  # counted for the whole run only (docs/simulations.md)
        assert {key: value for key, value in item.items() if key != "value"} == {
            key: value for key, value in expected.items() if key != "hits"
        }


def test_a_label_must_be_a_label(tmp_path: Path) -> None:
    frame = applicants(30).assign(status=lambda f: np.where(f["bad"] == 1, "Charged Off", "Fully Paid"))
    frame.loc[:4, "status"] = "Current"
    frame.to_parquet(tmp_path / "a.parquet", index=False)
    message = _refusal([tmp_path / "a.parquet"], label="status")
    assert message.startswith("the label column status has 3 values ('Charged Off', 'Current', 'Fully Paid')")
    frame.loc[:4, "status"] = "Fully Paid"
    frame.to_parquet(tmp_path / "b.parquet", index=False)
    assert "--bad VALUE" in _refusal([tmp_path / "b.parquet"], label="status")
    named = simulations.run(POLICY, [tmp_path / "b.parquet"], lists=LISTS, label="status", bad="Charged Off")
    assert named.metrics["label"]["good_value"] == "Fully Paid"
    assert "has no value 'Default'" in _refusal([tmp_path / "b.parquet"], label="status", bad="Default")
    assert "no column nowhere" in _refusal([tmp_path / "b.parquet"], label="nowhere")


# ----------------------------------------------------------------------------- refused before the run


def _refusal(paths: list, **options) -> str:
    with pytest.raises(simulations.SimulationError) as caught:
        simulations.run(POLICY, paths, lists=LISTS, **options)
    return str(caught.value)


def test_bad_data_and_queries_are_refused_with_what_and_where(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    assert _refusal([missing]) == f"the data file {missing} does not exist"
    (tmp_path / "notes.txt").write_text("x")
    assert "unknown data format '.txt'" in _refusal([tmp_path / "notes.txt"])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"the directory {empty} holds no data files" in _refusal([empty])
    frame = applicants(20)
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_parquet(tmp_path / "b.parquet", index=False)
    assert "different formats" in _refusal([tmp_path / "a.csv", tmp_path / "b.parquet"])
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    assert _refusal([tmp_path / "broken.parquet"]).startswith("cannot read the data files:")
    message = _refusal([tmp_path / "a.csv"], query="SELEC age FROM data")
    assert message.startswith("the mapping query failed:") and "SELEC" in message  # DuckDB's message and position
    assert "must be one SELECT" in _refusal([tmp_path / "a.csv"], query="DELETE FROM data")
    assert "must be one SELECT" in _refusal([tmp_path / "a.csv"], query="SELECT 1; SELECT 2")


def test_wide_integers_are_narrowed_and_one_too_large_stops_the_read(data) -> None:
    """DuckDB may type integers as 128-bit (its JSON reader does for small ones): they reach the policy as int64,
    and one past 64 bits stops the read with DuckDB's conversion error, never a wrapped or missing value."""
    path, _, _ = data
    wide = "SELECT * REPLACE (CAST(age AS HUGEINT) AS age) FROM data"
    source = simulations.open_data([path], wide)
    assert source.schema.field("age").type == pa.int64()
    source.close()
    narrowed = simulations.run(POLICY, [path], query=wide, lists=LISTS, as_of="2026-12-01")
    assert narrowed.metrics == simulations.run(POLICY, [path], lists=LISTS, as_of="2026-12-01").metrics
    too_big = "SELECT * REPLACE (CAST(age AS HUGEINT) * CAST(100000000000000000000 AS HUGEINT) AS age) FROM data"
    message = _refusal([path], query=too_big, as_of="2026-12-01")
    assert "Conversion Error" in message, message


def test_a_mapping_that_does_not_fit_the_inputs_is_one_message_naming_each_problem(tmp_path: Path) -> None:
    frame = applicants(20).drop(columns=["DebtRatio"])
    frame["MonthlyIncome"] = frame["MonthlyIncome"].map(lambda value: "NA" if pd.isna(value) else str(int(value)))
    frame.to_csv(tmp_path / "a.csv", index=False)
    message = _refusal([tmp_path / "a.csv"])
    lines = message.splitlines()
    assert lines[0] == "the data does not fit the policy's inputs (map it with --query):"
    assert "  - input DebtRatio (number) is required, and no column of the data is named so" in lines
    [income] = [line for line in lines if "MonthlyIncome" in line]
    assert income.startswith("  - column MonthlyIncome: the input is number, the data has string (for example '")


def test_an_empty_dataset_is_refused_not_reported(
    data: tuple[Path, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    path, frame, _ = data
    frame.iloc[0:0].to_parquet(tmp_path / "empty.parquet", index=False)
    assert _refusal([tmp_path / "empty.parquet"]) == "the data has no rows: there is nothing to back-test"
    message = _refusal([path], query="SELECT * FROM data WHERE age > 1000")
    assert message == "the data has no rows after the mapping query: there is nothing to back-test"


def test_a_list_the_policy_reads_must_be_supplied(data: tuple[Path, pd.DataFrame, pd.DataFrame]) -> None:
    path, _, _ = data
    expected = r"the policy reads the list\(s\) blacklist: supply each with --list NAME=FILE"
    with pytest.raises(simulations.SimulationError, match=expected):
        simulations.run(POLICY, [path])


# ----------------------------------------------------------------------------- real data


def test_give_me_some_credit_against_pandas() -> None:
    source = SHARED / "data" / "give_me_some_credit" / "cs-training.csv"
    if not source.exists():
        pytest.skip(f"{source} is absent (the shared data is not next to the repository)")
    query = (REPO / "simulations" / "examples" / "give_me_some_credit.sql").read_text()
    result = simulations.run(POLICY, [source], query=query, lists={"blacklist": []}, as_of="2026-12-01")
    raw = pd.read_csv(source, na_values=["NA"])
    assert result.metrics["rows"] == len(raw) == 150_000
    inputs = raw[[item.name for item in POLICY.inputs if item.name in raw.columns]]
    answers = POLICY.evaluate_batch(inputs, lists={"blacklist": []}, as_of="2026-12-01").to_pandas()
    decided = answers[answers["error"].isna()]
    counted = {item["value"]: item["rows"] for item in result.metrics["outputs"]["decision"]["values"]}
    assert counted == dict(Counter(decided["decision"]))
    assert result.metrics["decided"] == len(decided)
