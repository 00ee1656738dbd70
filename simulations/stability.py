"""Population stability (`--baseline`): how far this data's inputs and the policy's outputs have moved from a
baseline's — the population stability index (PSI) a model-risk file asks for before trusting a back-test.

Input: the policy, the baseline's and this data's `DataSource`s (same mapping query), and both runs'
`Aggregate`s. Output: per input and per output, the bins, each bin's share in the baseline and here, and
PSI = Σ (actual − expected) · ln(actual / expected) over the bins, with its usual reading: under 0.1 stable,
0.1 to 0.25 a moderate shift, over 0.25 a major one.

Bins come from the baseline only: a numeric column is cut at its deciles (each value of a column with ten or
fewer is its own bin), a text or boolean column by value (the 20 most frequent, then "(other)"); a missing value
is a bin of its own. A share of 0 counts as 0.0001 (so a bin empty on one side gives a large, finite term). Input
bins are counted by DuckDB in SQL over each dataset; output bins from the runs' exact value counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import duckdb

from compiler.policy import Policy
from simulations.aggregates import Aggregate, _is_number, _quantile
from simulations.data import DataSource, SimulationError

DECILES = tuple(band / 10 for band in range(1, 10))
TOP_CATEGORIES = 20
FLOOR = 0.0001
MISSING, OTHER = "(missing)", "(other)"


def reading(psi: float) -> str:
    return "stable" if psi < 0.1 else ("moderate shift" if psi <= 0.25 else "major shift")


def stability(
    policy: Policy, baseline: DataSource, actual: DataSource, before: Aggregate, after: Aggregate
) -> dict[str, Any]:
    """PSI of every input the data supplies and every output (see the module docstring)."""
    columns = set(baseline.schema.names) & set(actual.schema.names)
    inputs = {}
    for item in policy.inputs:
        if item.name not in columns or item.type == "list":
            continue
        numeric = item.type in ("int", "number")
        bins = _numeric_bins(baseline, item.name) if numeric else _category_bins(baseline, item.name)
        expected = _count(baseline, item.name, bins, numeric)
        observed = _count(actual, item.name, bins, numeric)
        inputs[item.name] = _index(bins, expected, observed, numeric)
    outputs = {}
    for name in after.outputs:
        counts_before, counts_after = before.values.get(name, {}), after.values.get(name, {})
        numbers = sorted((v, n) for v, n in counts_before.items() if _is_number(v))
        numeric = bool(numbers) and len(numbers) == sum(1 for v in counts_before if v is not None) and len(numbers) > 10
        if numeric:
            total = sum(n for _, n in numbers)
            bins = sorted({_quantile(numbers, total, q) for q in DECILES})
        else:
            ranked = sorted(((n, v) for v, n in counts_before.items() if v is not None), key=lambda item: -item[0])
            bins = [value for _, value in ranked[:TOP_CATEGORIES]]
        outputs[name] = _index(
            bins, _bin_counts(counts_before, bins, numeric), _bin_counts(counts_after, bins, numeric), numeric
        )
    return {"inputs": inputs, "outputs": outputs}


# ----------------------------------------------------------------------------- bins


def _numeric_bins(source: DataSource, column: str) -> list[float]:
    """The baseline's deciles of `column` (upper edges), or every value when it has ten or fewer."""
    quoted = _identifier(column)
    distinct = _scalar(source, f"SELECT count(DISTINCT {quoted}) FROM ({source.query})")
    if distinct <= 10:
        rows = _rows(source, f"SELECT DISTINCT {quoted} FROM ({source.query}) WHERE {quoted} IS NOT NULL ORDER BY 1")
        values = [float(row[0]) if isinstance(row[0], Decimal) else row[0] for row in rows]
        return values[:-1]  # the last bin takes everything above the second-largest value
    deciles = ", ".join(str(q) for q in DECILES)
    edges = _scalar(source, f"SELECT quantile_disc({quoted}, [{deciles}]) FROM ({source.query})")
    return sorted({float(edge) if isinstance(edge, Decimal) else edge for edge in edges if edge is not None})


def _category_bins(source: DataSource, column: str) -> list[Any]:
    quoted = _identifier(column)
    rows = _rows(
        source,
        f"SELECT {quoted}, count(*) AS n FROM ({source.query}) WHERE {quoted} IS NOT NULL "
        f"GROUP BY 1 ORDER BY n DESC, 1 LIMIT {TOP_CATEGORIES}",
    )
    return [row[0] for row in rows]


def _count(source: DataSource, column: str, bins: Sequence[Any], numeric: bool) -> list[int]:
    """Rows per bin: the missing bin, then (numeric) ≤ each edge and above the last, or (text) each category and
    the rest."""
    quoted = _identifier(column)
    cases = [f"count(*) FILTER (WHERE {quoted} IS NULL)"]
    if numeric:
        lower = None
        for edge in bins:
            low = f" AND {quoted} > {lower!r}" if lower is not None else ""
            cases.append(f"count(*) FILTER (WHERE {quoted} <= {edge!r}{low})")
            lower = edge
        cases.append(f"count(*) FILTER (WHERE {quoted} > {lower!r})" if lower is not None else
                     f"count(*) FILTER (WHERE {quoted} IS NOT NULL)")  # fmt: skip
    else:
        listed = ", ".join(_literal(value) for value in bins)
        cases += [f"count(*) FILTER (WHERE {quoted} = {_literal(value)})" for value in bins]
        cases.append(f"count(*) FILTER (WHERE {quoted} IS NOT NULL AND {quoted} NOT IN ({listed}))" if bins else
                     f"count(*) FILTER (WHERE {quoted} IS NOT NULL)")  # fmt: skip
    return [int(n) for n in _row(source, f"SELECT {', '.join(cases)} FROM ({source.query})")]


def _bin_counts(counts: Mapping[Any, int], bins: Sequence[Any], numeric: bool) -> list[int]:
    tallies = [counts.get(None, 0)] + [0] * (len(bins) + 1)
    for value, n in counts.items():
        if value is None:
            continue
        if numeric:
            position = next((i for i, edge in enumerate(bins) if value <= edge), len(bins))
        else:
            position = bins.index(value) if value in bins else len(bins)
        tallies[position + 1] += n
    return tallies


def _index(bins: Sequence[Any], expected: Sequence[int], observed: Sequence[int], numeric: bool) -> dict[str, Any]:
    total_expected, total_observed = sum(expected), sum(observed)
    if not total_expected or not total_observed:
        return {"psi": None, "reading": "no rows", "bins": []}
    names = [MISSING] + (
        [f"≤ {edge}" for edge in bins] + [f"> {bins[-1]}" if bins else "all"] if numeric else [*map(str, bins), OTHER]
    )
    rows, psi = [], 0.0
    for name, e, a in zip(names, expected, observed, strict=True):
        if e == 0 and a == 0:
            continue
        share_e, share_a = max(e / total_expected, FLOOR), max(a / total_observed, FLOOR)
        term = (share_a - share_e) * math.log(share_a / share_e)
        psi += term
        rows.append({"bin": name, "baseline": e / total_expected, "actual": a / total_observed, "term": term})
    return {"psi": psi, "reading": reading(psi), "bins": rows}


# ----------------------------------------------------------------------------- SQL helpers


def _scalar(source: DataSource, sql: str) -> Any:
    return _row(source, sql)[0]


def _row(source: DataSource, sql: str) -> tuple:
    return _rows(source, sql)[0]


def _rows(source: DataSource, sql: str) -> list[tuple]:
    try:
        return source._connection.execute(sql).fetchall()
    except duckdb.Error as exc:
        raise SimulationError(f"measuring stability failed: {str(exc).splitlines()[0]}") from None


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"
