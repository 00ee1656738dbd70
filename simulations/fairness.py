"""Fair-lending figures of a back-test: each protected group's favourable-outcome rate and its adverse impact
ratio (the four-fifths rule).

Input: the policy's kind and, per protected column (a data column the policy does not read: race, sex, an age
band), the `Aggregate` of each of its groups. Output: per column, each group's decided rows, favourable rows and
rate, and its adverse impact ratio — its rate over the most favoured group's — flagged under 0.8, the threshold
US regulators' four-fifths rule uses to call a disparity adverse. A favourable outcome is an approval for
`kind: approval` (`decision` = `approve`), an offer for `kind: offer` (a non-empty list output, else a true
boolean output); other kinds have none, and get no figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulations.aggregates import Aggregate

FOUR_FIFTHS = 0.8


def favourable_rows(kind: str, aggregate: Aggregate, list_outputs: Mapping[str, bool]) -> tuple[int, str] | None:
    """How many decided rows got the favourable outcome, and what it was; None where the kind has none."""
    values = aggregate.values
    if kind == "approval" and "decision" in values:
        return values["decision"].get("approve", 0), "decision = approve"
    if kind == "offer":
        for name, counts in values.items():
            if list_outputs.get(name):
                return sum(n for value, n in counts.items() if value not in (None, "[]")), f"{name} not empty"
        for name, counts in values.items():
            if True in counts or False in counts:
                return counts.get(True, 0), f"{name} = true"
    return None


def fair_lending(kind: str, protected: Mapping[str, Mapping[Any, Aggregate]]) -> dict[str, Any]:
    """The figures per protected column (see the module docstring)."""
    body: dict[str, Any] = {}
    for column, groups in protected.items():
        rows = []
        definition = None
        for value, aggregate in sorted(groups.items(), key=lambda item: (item[0] is None, str(item[0]))):
            list_outputs = {name: _is_list_counts(counts) for name, counts in aggregate.values.items()}
            favourable = favourable_rows(kind, aggregate, list_outputs)
            if favourable is None:
                break
            count, definition = favourable
            rate = count / aggregate.decided if aggregate.decided else None
            rows.append({"group": value, "rows": aggregate.rows, "decided": aggregate.decided,
                         "favourable": count, "rate": rate})  # fmt: skip
        if definition is None:
            body[column] = {"favourable": None, "note": f"no favourable outcome is defined for kind {kind!r}"}
            continue
        best = max((row["rate"] for row in rows if row["rate"] is not None), default=None)
        for row in rows:
            ratio = row["rate"] / best if row["rate"] is not None and best else None
            row["adverse_impact_ratio"] = ratio
            row["flagged"] = ratio is not None and ratio < FOUR_FIFTHS
        favoured = [row["group"] for row in rows if row["rate"] is not None and row["rate"] == best]
        body[column] = {"favourable": definition, "most_favoured": favoured[0] if favoured else None, "groups": rows}
    return body


def _is_list_counts(counts: Mapping[Any, int]) -> bool:
    """Whether an output's counted values are lists (counted as their JSON text)."""
    return any(isinstance(value, str) and value.startswith("[") for value in counts)


def moved_ratios(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """How the change moves each group's rate and adverse impact ratio (after − before)."""
    moved = {}
    for column, figures in after.items():
        old = {row["group"]: row for row in before.get(column, {}).get("groups", [])}
        rows = []
        for row in figures.get("groups", []):
            previous = old.get(row["group"], {})
            rows.append(
                {
                    "group": row["group"],
                    "rate_before": previous.get("rate"),
                    "rate_after": row["rate"],
                    "ratio_before": previous.get("adverse_impact_ratio"),
                    "ratio_after": row["adverse_impact_ratio"],
                    "flagged_before": previous.get("flagged"),
                    "flagged_after": row["flagged"],
                }
            )
        moved[column] = rows
    return moved
