"""Comparing two versions on the same rows (`--against`): the swap set, the deltas, the rules that moved.

Input: for one batch, both versions' `evaluate_batch` results on the same rows, the output compared (by
default `decision`), and the label column if any. Output: a `Swaps` aggregate — the count of every (before,
after[, label]) triple, mergeable exactly like `Aggregate` — and, from it and both versions' figures,
`comparison()`: the swap-set matrix with each cell's bad rate, swap-ins and swap-outs, the deltas of the
headline figures, the items whose hit counts moved most, and a sample of swapped rows (`SampleRow`, kept in data
order, personal values masked) with both decisions and both traces.

A row one version refused (its input, or an evaluation error) has the outcome `(input error)` or
`(evaluation error)` on that side, so errors that appear or disappear are swaps too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from simulations.aggregates import _as_text, _countable, _counted, _sort_key, json_text

INPUT_ERROR, EVALUATION_ERROR = "(input error)", "(evaluation error)"
SAMPLE_ROWS = 20
MOVED_ITEMS = 20


@dataclass
class Swaps:
    """Counts of (before, after, label) over some rows compared (label None without a label column)."""

    output: str
    label: str | None = None
    cells: Counter = field(default_factory=Counter)
    sample: list[dict[str, Any]] = field(default_factory=list)  # the first swapped rows, in data order

    @classmethod
    def of(cls, output: str, label: str | None, before: pa.Array, after: pa.Array, results: pa.Table) -> Swaps:
        """The swaps of one batch: `before` and `after` are both versions' `outcomes` on the same rows, whose
        results (`results`, either version's) carry the label column `label`, if any."""
        swaps = cls(output, label)
        observed = _as_text(results.column(label)).combine_chunks() if label else pa.nulls(len(after), pa.string())
        columns = {"before": before, "after": after, "label": observed}
        for old, new, seen, count in _counted(pa.table(columns), ("before", "after", "label")):
            swaps.cells[(old, new, seen)] += count
        return swaps

    def merge(self, other: Swaps) -> Swaps:
        """These rows' swaps and those of later rows (the sample keeps the earliest)."""
        merged = Swaps(self.output, self.label, self.cells + other.cells)
        merged.sample = (self.sample + other.sample)[:SAMPLE_ROWS]
        return merged


def outcomes(results: pa.Table, output: str, inputs: Collection[str]) -> pa.Array:
    """Each row's value of `output` as text, or the kind of error that refused it."""
    values = _countable(results.column(output)).combine_chunks()
    if not pa.types.is_string(values.type):
        values = _as_text(values)
    names = results.column("error_field")
    refused_for_input = pc.fill_null(pc.is_in(names, value_set=pa.array(sorted(inputs), pa.string())), False)
    kinds = pc.if_else(refused_for_input, INPUT_ERROR, EVALUATION_ERROR)
    return pc.if_else(pc.is_valid(results.column("error")), kinds, values).combine_chunks()


def swapped_rows(before: pa.Array, after: pa.Array) -> list[int]:
    """The positions where the two outcomes differ (a null equals a null)."""
    same = pc.or_(pc.and_(pc.is_null(before), pc.is_null(after)), pc.fill_null(pc.equal(before, after), False))
    return [int(position) for position in pc.indices_nonzero(pc.invert(same)).to_pylist()]


# ----------------------------------------------------------------------------- figures


def comparison(
    swaps: Swaps,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    bad: str | None,
) -> dict[str, Any]:
    """The comparison's figures (docs/simulations.md), from the swaps and each version's own `metrics()`."""
    total = sum(swaps.cells.values())
    pairs: Counter = Counter()
    bads: Counter = Counter()
    labelled: Counter = Counter()
    for (old, new, seen), count in swaps.cells.items():
        pairs[(old, new)] += count
        if seen is not None:
            labelled[(old, new)] += count
            bads[(old, new)] += count if seen == bad else 0
    cells = [
        {
            "before": old,
            "after": new,
            "rows": count,
            "share": count / total if total else 0.0,
            **(
                {"bads": bads[(old, new)], "bad_rate": bads[(old, new)] / labelled[(old, new)]}
                if swaps.label is not None and labelled[(old, new)]
                else {}
            ),
        }
        for (old, new), count in sorted(pairs.items(), key=lambda item: (_sort_key(item[0][0]), _sort_key(item[0][1])))
    ]
    changed = sum(count for (old, new), count in pairs.items() if old != new)
    body: dict[str, Any] = {
        "output": swaps.output,
        "rows": total,
        "changed_rows": changed,
        "changed_share": changed / total if total else 0.0,
        "cells": cells,
    }
    if swaps.output == "decision" and "approval" in before and "approval" in after:
        body["swap_in"] = _swap_group(pairs, labelled, bads, lambda old, new: old != "approve" and new == "approve")
        body["swap_out"] = _swap_group(pairs, labelled, bads, lambda old, new: old == "approve" and new != "approve")
        body["deltas"] = {
            name: _delta(before["approval"].get(name), after["approval"].get(name))
            for name in after["approval"]
            if name in before["approval"]
        }
    body["output_deltas"] = _share_deltas(before, after)
    body["hit_changes"] = _hit_changes(before.get("hits", []), after.get("hits", []))
    body["sample"] = swaps.sample
    return body


def _swap_group(pairs: Counter, labelled: Counter, bads: Counter, test) -> dict[str, Any]:
    rows = sum(count for (old, new), count in pairs.items() if test(old, new))
    seen = sum(count for (old, new), count in labelled.items() if test(old, new))
    bad_rows = sum(count for (old, new), count in bads.items() if test(old, new))
    return {"rows": rows, "labelled": seen, "bads": bad_rows, "bad_rate": bad_rows / seen if seen else None}


def _delta(old: float | None, new: float | None) -> float | None:
    return None if old is None or new is None else new - old


def _share_deltas(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    deltas = {}
    for name, distribution in after["outputs"].items():
        if name not in before["outputs"]:
            continue
        old = {json_text(item["value"]): item["share"] for item in before["outputs"][name]["values"]}
        new = {json_text(item["value"]): item["share"] for item in distribution["values"]}
        if len(old | new) > 50:
            continue  # a continuous output: its quantiles say more than a list of values
        deltas[name] = [
            {"value": orjson.loads(key), "before": old.get(key, 0.0), "after": new.get(key, 0.0),
             "delta": new.get(key, 0.0) - old.get(key, 0.0)}
            for key in sorted(old | new)
        ]  # fmt: skip
    return deltas


def _hit_changes(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items whose hit counts moved most between the versions (by rows, largest first)."""
    counts: dict[tuple[str, str], list[Any]] = {}
    for side, statements in ((0, before), (1, after)):
        for statement in statements:
            for item in statement["items"]:
                entry = counts.setdefault((statement["statement"], item["label"]), [0, 0, item["title"], None])
                entry[side] = item["rows"]
                if side == 1:
                    entry[3] = item["line"]
    moved = [
        {"statement": name, "label": label, "title": title, "line": line, "before": old, "after": new,
         "delta": new - old}
        for (name, label), (old, new, title, line) in counts.items()
        if new != old
    ]  # fmt: skip
    moved.sort(key=lambda item: (-abs(item["delta"]), item["statement"], item["label"]))
    return moved[:MOVED_ITEMS]
