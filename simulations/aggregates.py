"""The partial aggregate of a back-test: what every kind of policy reports, mergeable exactly.

Input: one batch of `evaluate_batch` results (a pyarrow Table or RecordBatch: one column per output, `reasons`,
`error`, `error_code`, `error_field`) and the policy's output names. Output: an `Aggregate` of counts only, so
that merging the aggregates of any split of the rows — batches, threads, Spark partitions — in any order gives
exactly the aggregate of all of them; `metrics()` derives the figures (shares, means, quantiles) from the counts
in one fixed order, so they are identical however the rows were split.

Counted: rows; rows decided; input errors by field; evaluation errors by code and field; each output's values
among decided rows (a null counted as such); the first reason and every reason (once per row). Numeric outputs
keep the count of each distinct value, which is exact and small for what policies output (limits, rates,
scores); docs/simulations.md gives each metric's definition.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
NULL = None  # the key of a null value in a value count


@dataclass
class Aggregate:
    """Counts over some rows of one back-test (see the module docstring)."""

    outputs: tuple[str, ...]
    rows: int = 0
    decided: int = 0
    input_errors: Counter = field(default_factory=Counter)  # field -> rows
    evaluation_errors: Counter = field(default_factory=Counter)  # (code, field) -> rows
    values: dict[str, Counter] = field(default_factory=dict)  # output -> value -> rows (decided rows only)
    first_reason: Counter = field(default_factory=Counter)  # reason code, or None for no reason -> rows
    any_reason: Counter = field(default_factory=Counter)  # reason code -> rows that gave it

    def __post_init__(self) -> None:
        for name in self.outputs:
            self.values.setdefault(name, Counter())

    @classmethod
    def of(cls, results: pa.Table | pa.RecordBatch, outputs: Sequence[str], inputs: Collection[str]) -> Aggregate:
        """The aggregate of one batch of results of a policy with these outputs and inputs."""
        table = results if isinstance(results, pa.Table) else pa.Table.from_batches([results])
        aggregate = cls(tuple(outputs), rows=table.num_rows)
        failed = pc.is_valid(table.column("error"))
        decided = table.filter(pc.invert(failed))
        errors = table.filter(failed)
        aggregate.decided = decided.num_rows
        # An input error names its input field; an evaluation error the output it concerns, or nothing.
        for code, name, count in _counted(errors, ("error_code", "error_field")):
            if name in inputs:
                aggregate.input_errors[name] += count
            else:
                aggregate.evaluation_errors[(code, name)] += count
        for name in outputs:
            aggregate.values[name].update(_value_counts(decided.column(name)))
        reasons = decided.column("reasons").combine_chunks()
        aggregate.first_reason.update(_value_counts(_first(reasons)))
        aggregate.any_reason.update(_value_counts(_unique_per_row(reasons)))
        return aggregate

    def merge(self, other: Aggregate) -> Aggregate:
        """This aggregate and another of other rows of the same back-test, as one (neither is changed)."""
        if other.outputs != self.outputs:
            raise ValueError("the aggregates are of policies with different outputs")
        merged = Aggregate(self.outputs, self.rows + other.rows, self.decided + other.decided)
        merged.input_errors = self.input_errors + other.input_errors
        merged.evaluation_errors = self.evaluation_errors + other.evaluation_errors
        merged.values = {name: self.values[name] + other.values[name] for name in self.outputs}
        # Counter addition drops counts that are not positive: none are, so nothing is lost.
        merged.first_reason = self.first_reason + other.first_reason
        merged.any_reason = self.any_reason + other.any_reason
        return merged

    def metrics(self) -> dict[str, Any]:
        """The figures of every kind of policy, as JSON values (docs/simulations.md defines each)."""
        return {
            "rows": self.rows,
            "decided": self.decided,
            "input_errors": {"rows": sum(self.input_errors.values()), "by_field": _sorted_counts(self.input_errors)},
            "evaluation_errors": {
                "rows": sum(self.evaluation_errors.values()),
                "by_error": [
                    {"code": code, "field": name, "rows": count}
                    for (code, name), count in sorted(
                        self.evaluation_errors.items(), key=lambda item: (-item[1], str(item[0]))
                    )
                ],
            },
            "outputs": {name: _distribution(self.values[name], self.decided) for name in self.outputs},
            "reasons": {
                "first": _shares(self.first_reason, self.decided),
                "any": _shares(self.any_reason, self.decided),
            },
        }


def merge_all(aggregates: Iterable[Aggregate]) -> Aggregate:
    """The merge of several aggregates (at least one)."""
    iterator = iter(aggregates)
    total = next(iterator)
    for aggregate in iterator:
        total = total.merge(aggregate)
    return total


# ----------------------------------------------------------------------------- counting a batch


def _value_counts(array: pa.Array | pa.ChunkedArray) -> Counter:
    counts: Counter = Counter()
    if len(array) == 0:
        return counts
    for item in pc.value_counts(array).to_pylist():
        counts[item["values"]] += item["counts"]
    return counts


def _counted(table: pa.Table, columns: tuple[str, str]) -> list[tuple[Any, Any, int]]:
    if table.num_rows == 0:
        return []
    grouped = table.group_by(list(columns), use_threads=False).aggregate([([], "count_all")])
    return list(zip(*(grouped.column(name).to_pylist() for name in (*columns, "count_all")), strict=True))


def _first(reasons: pa.Array) -> pa.Array:
    """Each row's first reason, null where it gave none."""
    has = pc.greater(pc.fill_null(pc.list_value_length(reasons), 0), 0)
    padded = pc.if_else(has, reasons, pa.scalar([""], reasons.type))  # list_element needs an element in every row
    return pc.if_else(has, pc.list_element(padded, 0), pa.scalar(None, reasons.type.value_type))


def _unique_per_row(reasons: pa.Array) -> pa.Array:
    """Every reason a row gave, each once per row, flattened over the rows."""
    pairs = pa.table({"row": pc.list_parent_indices(reasons), "reason": pc.list_flatten(reasons)})
    return pairs.group_by(["row", "reason"], use_threads=False).aggregate([]).column("reason")


# ----------------------------------------------------------------------------- figures from counts


def _sort_key(value: Any) -> tuple:
    return (value is None, str(type(value)), value if value is not None else 0)


def _shares(counts: Mapping[Any, int], total: int) -> list[dict[str, Any]]:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], _sort_key(item[0])))
    return [{"value": value, "rows": count, "share": count / total if total else 0.0} for value, count in ordered]


def _sorted_counts(counts: Mapping[Any, int]) -> list[dict[str, Any]]:
    return [{"field": name, "rows": count} for name, count in sorted(counts.items(), key=lambda i: (-i[1], str(i[0])))]


def _distribution(counts: Counter, decided: int) -> dict[str, Any]:
    body: dict[str, Any] = {"values": _shares(counts, decided), "nulls": counts.get(NULL, 0)}
    numbers = sorted(
        (value, count)
        for value, count in counts.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value
    )
    if numbers and len(numbers) == sum(1 for value in counts if value is not None):
        total = sum(count for _, count in numbers)
        exact_sum = sum((Fraction(value) * count for value, count in numbers), Fraction(0))
        body["numeric"] = {
            "count": total,
            "mean": float(exact_sum / total),
            "min": numbers[0][0],
            "max": numbers[-1][0],
            "sum": float(exact_sum),
            "quantiles": {f"p{round(q * 100):02d}": _quantile(numbers, total, q) for q in QUANTILES},
        }
    return body


def _quantile(numbers: list[tuple[Any, int]], total: int, q: float) -> Any:
    """The inverse of the empirical distribution at q: the smallest value whose cumulative share reaches q
    (numpy's `method="inverted_cdf"`), exact on counts."""
    threshold = Fraction(str(q)) * total
    running = 0
    for value, count in numbers:
        running += count
        if running >= threshold:
            return value
    return numbers[-1][0]
