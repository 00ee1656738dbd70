"""The benchmark records for `consumer_loan`: rows of the Give Me Some Credit training file.

`load_records(n)` gives the first n rows as input records for `policies/consumer_loan.policy` and
`load_table(n)` the same rows as a `pyarrow.Table`. Only the columns the policy declares are kept
(the file's index, `SeriousDlqin2yrs` and the 30-59 / 60-89 days counts are dropped), typed as the
policy declares them: `int` inputs as Python ints / int64, `number` inputs as floats / float64. The
file's `NA` becomes None / null (only `MonthlyIncome` and `NumberOfDependents` have any, and both are
optional). The policy's optional `national_id` is not in the data, so records leave it out.

For n above the file's 150,000 rows, rows repeat from the top (1,000,000 rows is the large tier).
The file is read once per process (pyarrow.csv, about 0.1 s) and cached; the records share their
dicts between calls and repeats, so treat them as read-only.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parents[1]
POLICY_PATH = ROOT / "policies" / "consumer_loan.policy"
DATA_PATH = Path(os.environ.get("DECIDE_BENCH_DATA", "/work/shared/data/give_me_some_credit/cs-training.csv"))

# The input fields of consumer_loan that the data holds, in the policy's declaration order, with their
# declared types. `test_bench_peers.py` checks this against the compiled policy's input schema.
FIELDS: dict[str, str] = {
    "age": "int",
    "MonthlyIncome": "number",
    "DebtRatio": "number",
    "RevolvingUtilizationOfUnsecuredLines": "number",
    "NumberOfOpenCreditLinesAndLoans": "int",
    "NumberRealEstateLoansOrLines": "int",
    "NumberOfTimes90DaysLate": "int",
    "NumberOfDependents": "int",
}
_ARROW_TYPES = {"int": pa.int64(), "number": pa.float64()}


@functools.lru_cache(maxsize=1)
def _file_table() -> pa.Table:
    """Every row of the file, declared columns only, declared types."""
    if not DATA_PATH.exists():
        raise FileNotFoundError(f"benchmark data not found at {DATA_PATH} (set DECIDE_BENCH_DATA)")
    return pacsv.read_csv(
        DATA_PATH,
        convert_options=pacsv.ConvertOptions(
            include_columns=list(FIELDS),
            column_types={name: _ARROW_TYPES[kind] for name, kind in FIELDS.items()},
            null_values=["NA", ""],
            strings_can_be_null=True,
        ),
    ).combine_chunks()


@functools.lru_cache(maxsize=1)
def _file_records() -> tuple[dict[str, Any], ...]:
    table = _file_table()
    names = table.column_names
    columns = [table.column(name).to_pylist() for name in names]
    return tuple(dict(zip(names, row)) for row in zip(*columns))


def file_rows() -> int:
    """How many rows the data file has (150,000)."""
    return _file_table().num_rows


def load_records(n: int) -> list[dict[str, Any]]:
    """The first n rows as consumer_loan input records (rows repeat from the top beyond the file's end)."""
    if n < 0:
        raise ValueError("n must be at least 0")
    base = _file_records()
    if n <= len(base):
        return list(base[:n])
    repeats, rest = divmod(n, len(base))
    return list(base) * repeats + list(base[:rest])


@functools.lru_cache(maxsize=4)
def load_table(n: int) -> pa.Table:
    """The first n rows as a pyarrow.Table of the declared columns (one chunk; rows repeat beyond the file)."""
    if n < 0:
        raise ValueError("n must be at least 0")
    base = _file_table()
    if n <= base.num_rows:
        return base.slice(0, n)
    repeats, rest = divmod(n, base.num_rows)
    return pa.concat_tables([base] * repeats + [base.slice(0, rest)]).combine_chunks()
