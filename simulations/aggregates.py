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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from compiler.hits import EVALUATED
from compiler.info import PolicyInfo
from simulations.data import SimulationError

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
    hits: Counter = field(default_factory=Counter)  # (statement, item label or None) -> decided rows (compiler.hits)
    # With a label column: its values over decided rows, and each output's (value, label) pairs.
    label: str | None = None
    labels: Counter = field(default_factory=Counter)
    by_label: dict[str, Counter] = field(default_factory=dict)
    # Pairs of outputs counted together (kind figures: a limit change by action): (a, b) -> (value a, value b) -> rows
    joint: dict[tuple[str, str], Counter] = field(default_factory=dict)
    # Per offer in a list output (kind offer): offer -> (label, value) -> rows offered
    offers: dict[Any, Counter] = field(default_factory=dict)
    # With money columns (kind offer): offer -> label -> [Σ revenue, Σ cost], exact
    offer_money: dict[Any, dict[Any, list[Fraction]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.outputs:
            self.values.setdefault(name, Counter())

    @classmethod
    def of(
        cls,
        results: pa.Table | pa.RecordBatch,
        outputs: Sequence[str],
        inputs: Collection[str],
        label: str | None = None,
        hits: Counter | None = None,
        joints: Sequence[tuple[str, str]] = (),
        offers: str | None = None,
        money: tuple[str | None, str | None] = (None, None),
    ) -> Aggregate:
        """The aggregate of one batch of results of a policy with these outputs and inputs; with `label`, the
        name of a column of `results` holding each row's observed outcome; `hits`, the batch's hit counts
        (`evaluate_batch(hits=…)`)."""
        table = results if isinstance(results, pa.Table) else pa.Table.from_batches([results])
        aggregate = cls(tuple(outputs), rows=table.num_rows, label=label, hits=Counter(hits or {}))
        failed = pc.is_valid(table.column("error"))
        if table.column("error").null_count == table.num_rows:  # every row decided: no copy of the batch
            decided, errors = table, table.slice(0, 0)
        else:
            decided, errors = table.filter(pc.invert(failed)), table.filter(failed)
        aggregate.decided = decided.num_rows
        # An input error names its input field; an evaluation error the output it concerns, or nothing.
        for code, name, count in _counted(errors, ("error_code", "error_field")):
            if name in inputs:
                aggregate.input_errors[name] += count
            else:
                aggregate.evaluation_errors[(code, name)] += count
        observed = None if label is None else _as_text(decided.column(label)).combine_chunks()
        if observed is None:
            for name in outputs:
                aggregate.values[name].update(_value_counts(_countable(decided.column(name))))
        else:
            aggregate.labels.update(_value_counts(observed))
            for name in outputs:
                pairs = pa.table({"value": _countable(decided.column(name)), "label": observed})
                joint = Counter({(value, seen): n for value, seen, n in _counted(pairs, ("value", "label"))})
                aggregate.by_label[name] = joint
                for (value, _), n in joint.items():  # the value counts are the joint's margin: no second pass
                    aggregate.values[name][value] += n
        for first, second in joints:
            pairs = pa.table({"a": _countable(decided.column(first)), "b": _countable(decided.column(second))})
            aggregate.joint[(first, second)] = Counter({(a, b): n for a, b, n in _counted(pairs, ("a", "b"))})
        if offers is not None:
            seen_by_row = observed if observed is not None else pa.nulls(decided.num_rows, pa.string())
            lists = decided.column(offers).combine_chunks()
            elements = pc.list_flatten(lists)
            parents = pc.list_parent_indices(lists)
            made = pa.table({"offer": _offer_names(elements), "label": seen_by_row.take(parents),
                             "value": _offer_values(elements)})  # fmt: skip
            for offer, seen, value, n in _counted(made, ("offer", "label", "value")):
                aggregate.offers.setdefault(offer, Counter())[(seen, value)] += n
            if money != (None, None):
                columns = [decided.column(name).combine_chunks().take(parents).to_pylist() if name else None
                           for name in money]  # fmt: skip
                names, seen_rows = made.column("offer").to_pylist(), made.column("label").to_pylist()
                for position, (offer, seen) in enumerate(zip(names, seen_rows, strict=True)):
                    sums = aggregate.offer_money.setdefault(offer, {}).setdefault(seen, [Fraction(0), Fraction(0)])
                    for slot, column in enumerate(columns):
                        amount = None if column is None else column[position]
                        if amount is not None and amount == amount:  # a missing amount adds nothing
                            sums[slot] += Fraction(amount)
        reasons = decided.column("reasons").combine_chunks()
        aggregate.first_reason.update(_first_counts(reasons))
        aggregate.any_reason.update(_reason_rows(reasons))
        return aggregate

    def merge(self, other: Aggregate) -> Aggregate:
        """This aggregate and another of other rows of the same back-test, as one (neither is changed)."""
        if other.outputs != self.outputs:
            raise ValueError("the aggregates are of policies with different outputs")
        if other.label != self.label:
            raise ValueError("the aggregates are of different label columns")
        merged = Aggregate(self.outputs, self.rows + other.rows, self.decided + other.decided, label=self.label)
        merged.input_errors = self.input_errors + other.input_errors
        merged.evaluation_errors = self.evaluation_errors + other.evaluation_errors
        merged.values = {name: self.values[name] + other.values[name] for name in self.outputs}
        # Counter addition drops counts that are not positive: none are, so nothing is lost.
        merged.first_reason = self.first_reason + other.first_reason
        merged.any_reason = self.any_reason + other.any_reason
        merged.hits = self.hits + other.hits
        merged.labels = self.labels + other.labels
        merged.joint = {key: self.joint.get(key, Counter()) + other.joint.get(key, Counter())
                        for key in {*self.joint, *other.joint}}  # fmt: skip
        merged.offers = {key: self.offers.get(key, Counter()) + other.offers.get(key, Counter())
                         for key in {*self.offers, *other.offers}}  # fmt: skip
        merged.offer_money = _merged_money(self.offer_money, other.offer_money)
        merged.by_label = {
            name: self.by_label.get(name, Counter()) + other.by_label.get(name, Counter())
            for name in self.outputs
            if name in self.by_label or name in other.by_label
        }
        return merged

    def metrics(self, kind: str = "generic", bad: str | None = None, info: PolicyInfo | None = None) -> dict[str, Any]:
        """The figures of every kind of policy, those of `kind`, and with a label those that need it (`bad`: the
        label value that means bad, else found from a usual pair such as 1/0), as JSON values
        (docs/simulations.md defines each); with the policy's `info`, the hit count of every rule, table row,
        scorecard bin and tree branch. A SimulationError if the label is not a label."""
        figures = self._common()
        if info is not None and self.hits:
            figures["hits"] = hit_counts(self.hits, info, self.decided)
        if self.label is not None:
            bad, good = _bad_value(self.label, self.labels, bad)
            figures["label"] = self._label_figures(bad, good)
        if kind == "approval" and "decision" in self.outputs:
            figures["approval"] = self._approval(bad if self.label is not None else None)
        return figures

    def _label_figures(self, bad: str, good: str | None) -> dict[str, Any]:
        bads = self.labels.get(bad, 0)
        labelled = bads + (self.labels.get(good, 0) if good is not None else 0)
        by_output = {}
        for name in self.outputs:
            pairs = self.by_label.get(name, Counter())
            per_value: dict[Any, list[int]] = {}
            for (value, seen), count in pairs.items():
                if seen is None:
                    continue
                tally = per_value.setdefault(value, [0, 0])
                tally[0] += count
                tally[1] += count if seen == bad else 0
            body: dict[str, Any] = {
                "values": [
                    {"value": value, "rows": rows, "bads": n_bad, "bad_rate": n_bad / rows if rows else None}
                    for value, (rows, n_bad) in sorted(per_value.items(), key=lambda item: _sort_key(item[0]))
                ]
            }
            numbers = [(value, tally) for value, tally in per_value.items() if _is_number(value)]
            if numbers and len(numbers) == sum(1 for value in per_value if value is not None):
                body["separation"] = _separation(sorted(numbers), bads_total=sum(t[1] for _, t in numbers))
            by_output[name] = body
        return {
            "column": self.label,
            "bad_value": bad,
            "good_value": good,
            "rows": labelled,
            "unlabelled": self.labels.get(None, 0),
            "bads": bads,
            "bad_rate": bads / labelled if labelled else None,
            "by_output": by_output,
        }

    def _approval(self, bad: str | None) -> dict[str, Any]:
        counts = self.values["decision"]
        body: dict[str, Any] = {
            f"{outcome}_rate": counts.get(outcome, 0) / self.decided if self.decided else None
            for outcome in ("approve", "refer", "decline")
        }
        if bad is not None:
            pairs = self.by_label.get("decision", Counter())
            goods_total = sum(n for (_, seen), n in pairs.items() if seen is not None and seen != bad)
            bads_total = sum(n for (_, seen), n in pairs.items() if seen == bad)
            for outcome in ("approve", "refer", "decline"):
                labelled = sum(n for (value, seen), n in pairs.items() if value == outcome and seen is not None)
                n_bad = pairs.get((outcome, bad), 0)
                body[f"bad_rate_{PAST[outcome]}"] = n_bad / labelled if labelled else None
            approved_bads = pairs.get(("approve", bad), 0)
            approved_goods = sum(n for (v, seen), n in pairs.items() if v == "approve" and seen not in (None, bad))
            body["approved_share_of_goods"] = approved_goods / goods_total if goods_total else None
            body["approved_share_of_bads"] = approved_bads / bads_total if bads_total else None
        return body

    def _common(self) -> dict[str, Any]:
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


def _merged_money(first: dict, then: dict) -> dict:
    merged: dict = {}
    for part in (first, then):
        for offer, by_label in part.items():
            for seen, (revenue, cost) in by_label.items():
                sums = merged.setdefault(offer, {}).setdefault(seen, [Fraction(0), Fraction(0)])
                sums[0] += revenue
                sums[1] += cost
    return merged


def hit_counts(hits: Mapping[tuple[str, str | None], int], info: PolicyInfo, decided: int) -> list[dict[str, Any]]:
    """Per statement that can fire (rules, table, scorecard, tree), in the policy's order: the decided rows that
    evaluated it, and per item the rows it fired for (a tree branch counts every row whose path passes through
    it), with the items that never fired listed apart."""
    body = []
    for statement in info.statements:
        if not statement.items:
            continue
        items = []
        for item in statement.items:
            rows = hits.get((statement.name, item.label), 0)
            line = item.span.line if item.span is not None else None
            share = rows / decided if decided else 0.0
            items.append({"label": item.label, "title": item.title, "line": line, "rows": rows, "share": share})
        body.append(
            {
                "statement": statement.name,
                "kind": statement.kind,
                "line": statement.span.line if statement.span is not None else None,
                "evaluated_rows": hits.get((statement.name, EVALUATED), 0),
                "items": items,
                "never_hit": [item["label"] for item in items if item["rows"] == 0],
            }
        )
    return body


# ----------------------------------------------------------------------------- counting a batch


def _countable(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column whose values can be counted: a list output (offers made) is counted as its text, e.g.
    `["card","loan"]`, so that each distinct list is one value."""
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type) or pa.types.is_struct(column.type):
        return pa.chunked_array(
            [pa.array([None if v is None else json_text(v) for v in column.to_pylist()], pa.string())], pa.string()
        )
    return column


def _offer_names(elements: pa.Array) -> pa.Array:
    """Each offer's name: itself when the list holds text, else its record's first text field (`product`)."""
    if pa.types.is_struct(elements.type):
        for index in range(elements.type.num_fields):
            if pa.types.is_string(elements.type.field(index).type):
                return pc.struct_field(elements, index)
        return pa.array([json_text(value) for value in elements.to_pylist()], pa.string())
    return elements if pa.types.is_string(elements.type) else _as_text(elements)


def _offer_values(elements: pa.Array) -> pa.Array:
    """Each offer's value: its record's first numeric field (an expected value, `ev`), else null."""
    if pa.types.is_struct(elements.type):
        for index in range(elements.type.num_fields):
            kind = elements.type.field(index).type
            if pa.types.is_floating(kind) or pa.types.is_integer(kind):
                return pc.cast(pc.struct_field(elements, index), pa.float64())
    return pa.nulls(len(elements), pa.float64())


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A label as text (`1`, `true`, `yes`), so that labels of any column type compare alike."""
    if pa.types.is_boolean(column.type):
        return pc.if_else(column, "true", "false")
    if pa.types.is_floating(column.type):
        as_int = pc.cast(column, pa.int64(), safe=False)
        if pc.all(pc.equal(pc.cast(as_int, column.type), column)).as_py() in (True, None):
            column = as_int
    return pc.cast(column, pa.string())


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _value_counts(array: pa.Array | pa.ChunkedArray) -> Counter:
    counts: Counter = Counter()
    if len(array) == 0:
        return counts
    for item in pc.value_counts(array).to_pylist():
        counts[item["values"]] += item["counts"]
    return counts


def _counted(table: pa.Table, columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """Each distinct combination of `columns` (nulls included) with its rows, the count last."""
    if table.num_rows == 0:
        return []
    grouped = table.group_by(list(columns), use_threads=False).aggregate([([], "count_all")])
    return list(zip(*(grouped.column(name).to_pylist() for name in (*columns, "count_all")), strict=True))


def _first_counts(reasons: pa.ListArray) -> Counter:
    """How many rows gave each first reason, and (under None) how many gave none: read from the list's offsets,
    which is a take of one value per row instead of a list rebuilt (a fifth of the time of a batch)."""
    lengths = pc.fill_null(pc.list_value_length(reasons), 0)
    has = pc.greater(lengths, 0)
    starts = pc.filter(reasons.offsets.slice(0, len(reasons)), has)
    counts = _value_counts(reasons.values.take(starts))
    without = len(reasons) - len(starts)
    if without:
        counts[None] += without
    return counts


def _reason_rows(reasons: pa.Array) -> Counter:
    """How many rows gave each reason, once per row however often they gave it: every occurrence counted, then
    corrected on the rows of two reasons or more, the only ones that can repeat one (most rows have one or none,
    so the distinct pass runs on few)."""
    counts = _value_counts(pc.list_flatten(reasons))
    several = pc.greater_equal(pc.fill_null(pc.list_value_length(reasons), 0), 2)
    if pc.any(several).as_py():
        some = reasons.filter(several)
        pairs = pa.table({"row": pc.list_parent_indices(some), "reason": pc.list_flatten(some)})
        distinct = pairs.group_by(["row", "reason"], use_threads=False).aggregate([]).column("reason")
        counts.subtract(_value_counts(pairs.column("reason")))
        counts.update(_value_counts(distinct))
        counts = Counter({reason: n for reason, n in counts.items() if n > 0})
    return counts


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
    numbers = sorted((value, count) for value, count in counts.items() if _is_number(value))
    if numbers and len(numbers) == sum(1 for value in counts if value is not None):
        total = sum(count for _, count in numbers)
        exact_sum = exact_sum_of(counts)
        body["numeric"] = {
            "count": total,
            "mean": float(exact_sum / total),
            "min": numbers[0][0],
            "max": numbers[-1][0],
            "sum": float(exact_sum),
            "quantiles": {f"p{round(q * 100):02d}": _quantile(numbers, total, q) for q in QUANTILES},
        }
    return body


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def exact_sum_of(counts: Mapping[Any, int]) -> Fraction:
    """Σ value × rows over the numeric values of a value count, exactly (the same whatever the merge order)."""
    return sum((Fraction(value) * n for value, n in counts.items() if _is_number(value)), Fraction(0))


PAST = {"approve": "approved", "refer": "referred", "decline": "declined"}
LABEL_PAIRS = (("1", "0"), ("true", "false"), ("yes", "no"), ("y", "n"), ("bad", "good"))
BANDS = 10


def _bad_value(column: str, labels: Counter, bad: str | None) -> tuple[str, str | None]:
    """The label's bad value and its good one (None when the data has only one value)."""
    values = sorted(value for value in labels if value is not None)
    shown = ", ".join(repr(value) for value in values[:8]) + (" …" if len(values) > 8 else "")
    if len(values) > 2:
        raise SimulationError(
            f"the label column {column} has {len(values)} values ({shown}); a label has two, bad and good: "
            "map it to two with --query (CASE WHEN … THEN 1 ELSE 0 END)"
        )
    if bad is None:
        lowered = {value.lower() for value in values}
        for bad_text, good_text in LABEL_PAIRS:
            if lowered <= {bad_text, good_text}:
                bad = next((value for value in values if value.lower() == bad_text), bad_text)
                break
        else:
            raise SimulationError(f"say which value of the label column {column} is bad: --bad VALUE (it has {shown})")
    elif values and bad not in values and len(values) > 1:
        raise SimulationError(f"the label column {column} has no value {bad!r} (it has {shown})")
    good = next((value for value in values if value != bad), None)
    return bad, good


def _separation(numbers: list[tuple[Any, list[int]]], bads_total: int) -> dict[str, Any]:
    """KS, AUC and Gini of a numeric output against the label, and its bad rate by band (about ten bands of
    equal rows, cut at the output's deciles), exact on the counts. AUC is the chance that a random good row
    has a higher value than a random bad one (ties count half): above 0.5 when higher means safer, as for a
    credit score; Gini is 2·AUC − 1."""
    goods_total = sum(rows - n_bad for _, (rows, n_bad) in numbers)
    body: dict[str, Any] = {"ks": None, "auc": None, "gini": None}
    if bads_total and goods_total:
        ks = Fraction(0)
        below_bads = below_goods = 0
        twice_auc = 0  # in units of 1 / (goods_total · bads_total), doubled so that ties stay integers
        for _, (rows, n_bad) in numbers:
            n_good = rows - n_bad
            twice_auc += n_good * (2 * below_bads + n_bad)
            below_bads += n_bad
            below_goods += n_good
            ks = max(ks, abs(Fraction(below_bads, bads_total) - Fraction(below_goods, goods_total)))
        auc = Fraction(twice_auc, 2 * goods_total * bads_total)
        body.update(ks=float(ks), auc=float(auc), gini=float(2 * auc - 1))
    total = sum(rows for _, (rows, _) in numbers)
    flat = [(value, rows) for value, (rows, _) in numbers]
    edges = sorted({_quantile(flat, total, band / BANDS) for band in range(1, BANDS)} | {numbers[-1][0]})
    bands, lower, index = [], None, 0
    for edge in edges:
        rows = n_bad = 0
        while index < len(numbers) and numbers[index][0] <= edge:
            rows += numbers[index][1][0]
            n_bad += numbers[index][1][1]
            index += 1
        if rows:
            bands.append({"above": lower, "up_to": edge, "rows": rows, "bads": n_bad, "bad_rate": n_bad / rows})
        lower = edge
    body["bands"] = bands
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
