"""Exact sets of values and boxes of them: the arithmetic behind reachability, coverage and overlap.

Input: constants from conditions and unary tests. Output: `ValueSet`s — a
union of intervals (reals, or integers for `int` and `date`), or a finite /
co-finite set of strings and bools — each with a flag for the missing value,
and `Box`es (one `ValueSet` per dimension, a dimension being one subject
expression such as `risk_score`). Boxes support intersection and exact
subtraction, so "is row 3 covered by rows 1 and 2" is answered by
subtracting, not by sampling.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, replace

INF = math.inf
# An unconstrained date is shown as this day in examples.
_REFERENCE_DAY = _dt.date(2024, 1, 1).toordinal()
# (low, low_closed, high, high_closed); integer sets keep only closed finite ends.
Interval = tuple[float, bool, float, bool]


@dataclass(frozen=True, slots=True)
class ValueSet:
    kind: str  # "num", "int", "date", "str" (also bools and opaque atoms)
    intervals: tuple[Interval, ...] = ()  # num/int/date
    values: frozenset = frozenset()  # str: members (or, if cofinite, the excluded values)
    cofinite: bool = False
    missing: bool = False

    # ----------------------------------------------------------- construction

    @staticmethod
    def numeric(kind: str, intervals, missing: bool = False) -> ValueSet:
        return ValueSet(kind, _normalise(kind, intervals), missing=missing)

    @staticmethod
    def finite(values, missing: bool = False) -> ValueSet:
        return ValueSet("str", values=frozenset(values), missing=missing)

    @staticmethod
    def all_of(kind: str, missing: bool = True) -> ValueSet:
        if kind == "str":
            return ValueSet("str", cofinite=True, missing=missing)
        return ValueSet.numeric(kind, [(-INF, False, INF, False)], missing)

    @staticmethod
    def only_missing(kind: str) -> ValueSet:
        return ValueSet(kind, missing=True)

    # ------------------------------------------------------------- predicates

    def is_empty(self) -> bool:
        if self.missing:
            return False
        if self.kind == "str":
            return not self.cofinite and not self.values
        return not self.intervals

    def without_missing(self) -> ValueSet:
        return replace(self, missing=False)

    # -------------------------------------------------------------- algebra

    def overlaps(self, other: ValueSet) -> bool:
        """Whether the two sets share a value (or both admit missing), without building the intersection."""
        if self.missing and other.missing:
            return True
        if self.kind == "str":
            if self.cofinite and other.cofinite:
                return True
            if self.cofinite:
                return not other.values <= self.values
            if other.cofinite:
                return not self.values <= other.values
            return not self.values.isdisjoint(other.values)
        return any(_intersect_intervals(a, b) is not None for a in self.intervals for b in other.intervals)

    def intersect(self, other: ValueSet) -> ValueSet:
        missing = self.missing and other.missing
        if self.kind == "str":
            if self.cofinite and other.cofinite:
                return ValueSet("str", values=self.values | other.values, cofinite=True, missing=missing)
            if self.cofinite:
                return ValueSet("str", values=other.values - self.values, missing=missing)
            if other.cofinite:
                return ValueSet("str", values=self.values - other.values, missing=missing)
            return ValueSet("str", values=self.values & other.values, missing=missing)
        if len(self.intervals) == 1 and len(other.intervals) == 1:
            # The common case (one range against another) needs no re-normalising.
            piece = _intersect_intervals(self.intervals[0], other.intervals[0])
            return ValueSet(self.kind, (piece,) if piece is not None else (), missing=missing)
        pieces = []
        for a in self.intervals:
            for b in other.intervals:
                piece = _intersect_intervals(a, b)
                if piece is not None:
                    pieces.append(piece)
        return ValueSet.numeric(self.kind, pieces, missing)

    def subtract(self, other: ValueSet) -> ValueSet:
        missing = self.missing and not other.missing
        if self.kind == "str":
            if self.cofinite and other.cofinite:
                return ValueSet("str", values=other.values - self.values, missing=missing)
            if self.cofinite:
                return ValueSet("str", values=self.values | other.values, cofinite=True, missing=missing)
            if other.cofinite:
                return ValueSet("str", values=self.values & other.values, missing=missing)
            return ValueSet("str", values=self.values - other.values, missing=missing)
        remaining = list(self.intervals)
        for cut in other.intervals:
            next_remaining = []
            for piece in remaining:
                next_remaining.extend(_subtract_interval(piece, cut))
            remaining = next_remaining
        return ValueSet.numeric(self.kind, remaining, missing)

    def union(self, other: ValueSet) -> ValueSet:
        missing = self.missing or other.missing
        if self.kind == "str":
            if self.cofinite and other.cofinite:
                return ValueSet("str", values=self.values & other.values, cofinite=True, missing=missing)
            if self.cofinite:
                return ValueSet("str", values=self.values - other.values, cofinite=True, missing=missing)
            if other.cofinite:
                return ValueSet("str", values=other.values - self.values, cofinite=True, missing=missing)
            return ValueSet("str", values=self.values | other.values, missing=missing)
        return ValueSet.numeric(self.kind, list(self.intervals) + list(other.intervals), missing)

    # ---------------------------------------------------------------- example

    def sample(self) -> object:
        """A representative member, preferring a present value to missing; None means missing."""
        if self.kind == "str":
            if self.cofinite:
                candidate, n = "other", 1
                while candidate in self.values:
                    n += 1
                    candidate = f"other{n}"
                return candidate
            if self.values:
                return sorted(self.values, key=lambda v: (str(type(v)), v))[0]
            return None
        if not self.intervals:
            return None
        low, low_closed, high, high_closed = self.intervals[0]
        if low == -INF and high == INF:
            value: float = _REFERENCE_DAY if self.kind == "date" else 0
        elif low == -INF:
            value = high if high_closed else high - 1
        elif high == INF:
            value = low if low_closed else low + 1
        elif low_closed:
            value = low
        elif high_closed:
            value = high
        else:
            value = (low + high) / 2
        if self.kind == "date":
            return _dt.date.fromordinal(min(max(int(value), 1), _dt.date.max.toordinal()))
        if self.kind == "int" or (isinstance(value, float) and value.is_integer()):
            return int(value)
        return value


def _normalise(kind: str, intervals) -> tuple[Interval, ...]:
    """Sorted, disjoint, merged intervals; integer kinds become closed integer intervals."""
    cleaned: list[Interval] = []
    for low, low_closed, high, high_closed in intervals:
        if low == INF or high == -INF:
            continue  # empty: nothing lies above +inf or below -inf
        if kind in ("int", "date"):
            if low != -INF:
                low, low_closed = (math.ceil(low) if low_closed else math.floor(low) + 1), True
            if high != INF:
                high, high_closed = (math.floor(high) if high_closed else math.ceil(high) - 1), True
        if low > high or (low == high and not (low_closed and high_closed)):
            continue
        cleaned.append((low, low_closed, high, high_closed))
    cleaned.sort(key=lambda i: (i[0], not i[1]))
    merged: list[Interval] = []
    for interval in cleaned:
        if merged:
            last = merged[-1]
            touches = interval[0] < last[2] or (interval[0] == last[2] and (interval[1] or last[3]))
            if kind in ("int", "date") and last[2] != INF and interval[0] == last[2] + 1:
                touches = True
            if touches:
                if interval[2] > last[2] or (interval[2] == last[2] and interval[3]):
                    merged[-1] = (last[0], last[1], interval[2], interval[3])
                continue
        merged.append(interval)
    return tuple(merged)


def _intersect_intervals(a: Interval, b: Interval) -> Interval | None:
    if a[0] > b[0] or (a[0] == b[0] and not a[1]):
        low, low_closed = a[0], a[1]
    else:
        low, low_closed = b[0], b[1]
    if a[2] < b[2] or (a[2] == b[2] and not a[3]):
        high, high_closed = a[2], a[3]
    else:
        high, high_closed = b[2], b[3]
    if low > high or (low == high and not (low_closed and high_closed)):
        return None
    return (low, low_closed, high, high_closed)


def _subtract_interval(piece: Interval, cut: Interval) -> list[Interval]:
    if _intersect_intervals(piece, cut) is None:
        return [piece]
    result = []
    # Part of `piece` below `cut`.
    if cut[0] != -INF:
        below = (piece[0], piece[1], cut[0], not cut[1])
        if _intersect_intervals(below, piece) is not None and _valid(below):
            result.append(below)
    # Part of `piece` above `cut`.
    if cut[2] != INF:
        above = (cut[2], not cut[3], piece[2], piece[3])
        if _valid(above):
            result.append(above)
    return [r for r in (_intersect_intervals(r, piece) for r in result) if r is not None]


def _valid(interval: Interval) -> bool:
    low, low_closed, high, high_closed = interval
    return low < high or (low == high and low_closed and high_closed)


class Space:
    """The dimensions of one analysis: each subject's universe (declared domain, missing or not) and label."""

    def __init__(self) -> None:
        self.universe: dict[str, ValueSet] = {}
        self.labels: dict[str, str] = {}

    def add(self, key: str, universe: ValueSet, label: str) -> None:
        self.universe.setdefault(key, universe)
        self.labels.setdefault(key, label)


Box = dict  # dimension key -> ValueSet; a dimension not in the box is its whole universe

MAX_PIECES = 4000


class TooComplex(Exception):
    """The exact computation would exceed its budget; the check is skipped rather than guessed."""


def box_value(space: Space, box: Box, key: str) -> ValueSet:
    return box[key] if key in box else space.universe[key]


def intersect_boxes(space: Space, a: Box, b: Box) -> Box | None:
    result = dict(a)
    for key, values in b.items():
        merged = box_value(space, result, key).intersect(values)
        if merged.is_empty():
            return None
        result[key] = merged
    return result


def boxes_overlap(space: Space, a: Box, b: Box) -> bool:
    return all(box_value(space, a, key).overlaps(values) for key, values in b.items())


def subtract_box(space: Space, a: Box, b: Box) -> list[Box]:
    """a minus b, as disjoint boxes."""
    if not boxes_overlap(space, a, b):
        return [a]
    pieces: list[Box] = []
    current = dict(a)
    for key, values in b.items():
        here = box_value(space, current, key)
        outside = here.subtract(values)
        if not outside.is_empty():
            pieces.append({**current, key: outside})
        inside = here.intersect(values)
        if inside.is_empty():  # pragma: no cover - excluded by the intersection test above
            return pieces
        current[key] = inside
    return pieces


def subtract_all(space: Space, boxes: list[Box], cuts: list[Box]) -> list[Box]:
    """The part of the union of `boxes` outside every box of `cuts`; raises TooComplex past the budget."""
    remaining = [b for b in boxes if not _box_empty(space, b)]
    # Only cuts that touch what is being cut can change it; testing that once up front is much
    # cheaper than testing every fragment against every cut.
    cuts = [cut for cut in cuts if any(boxes_overlap(space, box, cut) for box in remaining)]
    for cut in cuts:
        next_remaining: list[Box] = []
        for box in remaining:
            next_remaining.extend(subtract_box(space, box, cut))
            if len(next_remaining) > MAX_PIECES:
                raise TooComplex()
        remaining = next_remaining
        if not remaining:
            break
    return remaining


def _box_empty(space: Space, box: Box) -> bool:
    return any(values.is_empty() for values in box.values())


def intersect_unions(space: Space, left: list[Box], right: list[Box]) -> list[Box]:
    result = []
    for a in left:
        for b in right:
            merged = intersect_boxes(space, a, b)
            if merged is not None:
                result.append(merged)
                if len(result) > MAX_PIECES:
                    raise TooComplex()
    return result


def sample_box(space: Space, box: Box) -> list[tuple[str, str, object]]:
    """One point of the box, as (dimension key, label, value) triples; a value of None is missing."""
    return [(key, space.labels.get(key, key), values.sample()) for key, values in box.items()]
