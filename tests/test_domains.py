"""The value-set algebra behind the checker, against brute-force enumeration of explicit sets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.check.domains import INF, Space, ValueSet, subtract_all, subtract_box

MISSING = "<missing>"
INT_GRID = list(range(-12, 13))
NUM_GRID = [x / 2 for x in range(-24, 25)]  # half-integers tell open ends from closed ones
STR_GRID = ["a", "b", "c", "d", "zz"]  # "zz" stands for every string never mentioned


def members(values: ValueSet, grid) -> set:
    found = {MISSING} if values.missing else set()
    for point in grid:
        probe = (
            ValueSet.finite({point})
            if values.kind == "str"
            else ValueSet.numeric(values.kind, [(point, True, point, True)])
        )
        if not values.intersect(probe).is_empty():
            found.add(point)
    return found


endpoint = st.one_of(st.integers(-10, 10), st.just(-INF), st.just(INF))


@st.composite
def intervals(draw):
    low, high = sorted([draw(endpoint), draw(endpoint)])
    return (low, draw(st.booleans()) and low != -INF, high, draw(st.booleans()) and high != INF)


@st.composite
def numeric_sets(draw, kind):
    return ValueSet.numeric(kind, draw(st.lists(intervals(), max_size=3)), draw(st.booleans()))


@st.composite
def string_sets(draw):
    values = draw(st.frozensets(st.sampled_from(["a", "b", "c", "d"]), max_size=4))
    return ValueSet("str", values=values, cofinite=draw(st.booleans()), missing=draw(st.booleans()))


def value_sets():
    return st.one_of(
        st.tuples(numeric_sets("int"), numeric_sets("int"), st.just(INT_GRID)),
        st.tuples(numeric_sets("num"), numeric_sets("num"), st.just(NUM_GRID)),
        st.tuples(string_sets(), string_sets(), st.just(STR_GRID)),
    )


@settings(max_examples=400, deadline=None)
@given(value_sets())
def test_set_operations_match_explicit_sets(case) -> None:
    left, right, grid = case
    a, b = members(left, grid), members(right, grid)
    assert members(left.intersect(right), grid) == a & b
    assert members(left.subtract(right), grid) == a - b
    assert members(left.union(right), grid) == a | b
    assert left.overlaps(right) == bool(a & b)
    assert left.is_empty() == (not a)


@settings(max_examples=300, deadline=None)
@given(numeric_sets("int"))
def test_sample_is_a_member(values: ValueSet) -> None:
    sample = values.sample()
    if values.is_empty():
        return
    if sample is None:
        assert values.missing
    else:
        assert not values.intersect(ValueSet.numeric("int", [(sample, True, sample, True)])).is_empty()


def _space() -> Space:
    space = Space()
    space.add("x", ValueSet.numeric("int", [(-12, True, 12, True)], True), "x")
    space.add("s", ValueSet("str", cofinite=True, missing=True), "s")
    return space


@st.composite
def boxes(draw):
    box = {}
    if draw(st.booleans()):
        box["x"] = draw(numeric_sets("int"))
    if draw(st.booleans()):
        box["s"] = draw(string_sets())
    return box


def points_of(space: Space, box) -> set:
    xs = members(box.get("x", space.universe["x"]).intersect(space.universe["x"]), INT_GRID)
    ss = members(box.get("s", space.universe["s"]), STR_GRID)
    return {(x, s) for x in xs for s in ss}


@settings(max_examples=300, deadline=None)
@given(boxes(), boxes())
def test_box_subtraction_is_exact_and_disjoint(a, b) -> None:
    space = _space()
    pieces = subtract_box(space, a, b)
    expected = points_of(space, a) - points_of(space, b)
    covered: set = set()
    for piece in pieces:
        piece_points = points_of(space, piece)
        assert not (covered & piece_points), "pieces overlap"
        covered |= piece_points
    assert covered == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(boxes(), max_size=3), st.lists(boxes(), max_size=4))
def test_subtract_all_matches_set_difference(start, cuts) -> None:
    space = _space()
    expected = set().union(*(points_of(space, b) for b in start)) if start else set()
    for cut in cuts:
        expected -= points_of(space, cut)
    remaining = subtract_all(space, start, cuts)
    got = set().union(*(points_of(space, b) for b in remaining)) if remaining else set()
    assert got == expected
