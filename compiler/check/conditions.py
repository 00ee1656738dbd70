"""Conditions and unary tests as exact sets of inputs, under the three-valued logic of spec §5.

Input: checked AST expressions (a `when`, a tree branch, a table row, a
scorecard bin) and the `Analysis` (types, bindings, declared domains).
Output: for each condition the union of boxes where it is *true* and the
union where it is *false*; wherever neither holds it is missing, and then it
does not match. Comparisons of one subject with constants become intervals
or sets on that subject's dimension; anything else (two variables compared,
function calls returning bool, named store lists) becomes an independent
true/false dimension of its own, which keeps every conclusion sound.
"""

from __future__ import annotations

import datetime as _dt

from compiler.check.analysis import INPUT, OUTPUT, TABLE_COLUMN, Analysis
from compiler.check.check_types import allowed_values
from compiler.check.domains import INF, Space, ValueSet, intersect_unions
from compiler.check.fold_constants import NOT_CONSTANT, constant_value
from dsl import ast
from dsl.format import expr as expr_text
from dsl.format import unary_test as unary_test_text

Union = list  # list[Box]

_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}


class Conditions:
    """Translates conditions of one policy; dimensions are shared so results can be combined."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self.space = Space()

    # ------------------------------------------------------------ dimensions

    def dimension(self, subject) -> tuple[str, str] | None:
        """(key, kind) of the dimension for a subject expression, creating it on first use."""
        value_type = self.analysis.type_of(subject)
        if value_type is None or value_type.is_error:
            return None
        kind = {"int": "int", "number": "num", "date": "date", "string": "str", "bool": "str"}.get(value_type.kind)
        if kind is None:
            kind = "str"  # lists and records: only `is missing` is analysed, as present/missing
        key = repr(subject)
        if key not in self.space.universe:
            label = expr_text(subject)
            self.space.add(key, self._universe(subject, kind, value_type.kind), label)
        return key, kind

    def _universe(self, subject, kind: str, type_kind: str) -> ValueSet:
        nullable = self.analysis.nullable.get(id(subject), True)
        field = None
        if isinstance(subject, ast.Name):
            symbol = self.analysis.symbol_of(subject)
            if symbol is not None and symbol.kind in (INPUT, OUTPUT):
                field = symbol.field
                nullable = symbol.nullable
            elif symbol is not None and symbol.kind == TABLE_COLUMN:
                results = _constant_column(symbol.node, subject.id)
                if results is not None and type_kind != "bool":
                    return self.members_set(kind, results).union(ValueSet.only_missing(kind))
        if type_kind == "bool":
            return ValueSet.finite({True, False}, nullable)
        if type_kind in ("list", "record"):
            return ValueSet.finite({"<present>"}, nullable)
        constraint = allowed_values(field)
        if constraint is not None:
            constrained = self._allowed_set(kind, constraint)
            if constrained is not None:
                return constrained if nullable else constrained.without_missing()
        return ValueSet.all_of(kind, nullable)

    def _allowed_set(self, kind: str, constraint) -> ValueSet | None:
        shape, spec = constraint
        if shape == "set":
            if kind == "str":
                return ValueSet.finite(spec, True)
            points = [(_num(v), True, _num(v), True) for v in spec]
            return ValueSet.numeric(kind, points, True)
        low, high, low_closed, high_closed = spec
        if kind == "str":
            return None
        return ValueSet.numeric(kind, [(_num(low), low_closed, _num(high), high_closed)], True)

    def box(self, key: str, values: ValueSet) -> Union:
        """A one-dimension box restricted to what the dimension can hold, as a union (empty if nothing is left)."""
        restricted = self.space.universe[key].intersect(values)
        return [] if restricted.is_empty() else [{key: restricted}]

    def relation(self, left, op: str, right) -> tuple[Union, Union]:
        """`left op right` between two non-constant values: one yes/no dimension per pair and relation,
        shared by a relation and its negation, so `a > b` and `a <= b` are known to be complementary."""
        if repr(left) > repr(right):
            left, right, op = right, left, _FLIP[op]
        base = {"<": "<", ">=": "<", "<=": "<=", ">": "<=", "==": "==", "!=": "=="}[op]
        key = "atom:" + repr((left, base, right))
        if key not in self.space.universe:
            nullable = self.analysis.nullable.get(id(left), True) or self.analysis.nullable.get(id(right), True)
            label = f"{expr_text(left)} {base} {expr_text(right)}"
            self.space.add(key, ValueSet.finite({True, False}, nullable), label)
        holds, fails = [{key: ValueSet.finite({True})}], [{key: ValueSet.finite({False})}]
        return (holds, fails) if op == base else (fails, holds)

    def _atom(self, expr) -> tuple[Union, Union]:
        """An unanalysable boolean: its own true/false dimension."""
        key = "atom:" + repr(expr)
        if key not in self.space.universe:
            nullable = self.analysis.nullable.get(id(expr), True)
            self.space.add(key, ValueSet.finite({True, False}, nullable), expr_text(expr))
        return [{key: ValueSet.finite({True})}], [{key: ValueSet.finite({False})}]

    # ------------------------------------------------------------ conditions

    def truth(self, expr) -> tuple[Union, Union]:
        """(where expr is true, where it is false), each a union of boxes."""
        if isinstance(expr, ast.Bool):
            return ([{}], []) if expr.value else ([], [{}])
        if isinstance(expr, ast.And):
            (left_true, left_false), (right_true, right_false) = self.truth(expr.left), self.truth(expr.right)
            return intersect_unions(self.space, left_true, right_true), left_false + right_false
        if isinstance(expr, ast.Or):
            (left_true, left_false), (right_true, right_false) = self.truth(expr.left), self.truth(expr.right)
            return left_true + right_true, intersect_unions(self.space, left_false, right_false)
        if isinstance(expr, ast.Not):
            when_true, when_false = self.truth(expr.operand)
            return when_false, when_true
        if isinstance(expr, ast.IsMissing):
            dimension = self.dimension(expr.operand)
            if dimension is None:
                return self._atom(expr)
            key, kind = dimension
            result = (
                self.box(key, ValueSet.only_missing(kind)),
                self.box(key, ValueSet.all_of(kind, missing=False)),
            )
            return (result[1], result[0]) if expr.negated else result
        if isinstance(expr, ast.Compare):
            return self._compare(expr)
        if isinstance(expr, ast.In):
            return self._in(expr)
        if isinstance(expr, ast.Name):
            dimension = self.dimension(expr)
            if dimension is not None and dimension[1] == "str":
                key = dimension[0]
                return self.box(key, ValueSet.finite({True})), self.box(key, ValueSet.finite({False}))
        return self._atom(expr)

    def _compare(self, expr: ast.Compare) -> tuple[Union, Union]:
        right = constant_value(expr.right)
        left = constant_value(expr.left)
        if right is not NOT_CONSTANT and left is NOT_CONSTANT:
            subject, op, value = expr.left, expr.op, right
        elif left is not NOT_CONSTANT and right is NOT_CONSTANT:
            subject, op, value = expr.right, _FLIP[expr.op], left
        elif left is NOT_CONSTANT and right is NOT_CONSTANT:
            return self.relation(expr.left, expr.op, expr.right)
        else:
            return self._atom(expr)
        dimension = self.dimension(subject)
        if dimension is None:
            return self._atom(expr)
        key, kind = dimension
        return (
            self.box(key, self.comparison_set(kind, op, value)),
            self.box(key, self.comparison_set(kind, _NEGATE[op], value)),
        )

    def _in(self, expr: ast.In) -> tuple[Union, Union]:
        container = expr.container
        members = None
        if isinstance(container, ast.SetLiteral):
            members = [constant_value(item) for item in container.items]
        elif isinstance(container, ast.Name):
            statement = getattr(self.analysis.symbol_of(container), "node", None)
            if isinstance(statement, ast.ListDecl) and statement.members is not None:
                members = [constant_value(item) for item in statement.members.items]
        dimension = self.dimension(expr.item)
        if dimension is None:
            return self._atom(expr)
        key, kind = dimension
        if isinstance(container, ast.Interval):
            low, high = constant_value(container.low), constant_value(container.high)
            if low is NOT_CONSTANT or high is NOT_CONSTANT:
                return self._atom(expr)
            inside = ValueSet.numeric(kind, [(_num(low), container.low_closed, _num(high), container.high_closed)])
        elif members is not None and NOT_CONSTANT not in members:
            inside = self.members_set(kind, members)
        else:
            return self._atom(expr)
        outside = ValueSet.all_of(kind, missing=False).subtract(inside)
        result = (self.box(key, inside), self.box(key, outside))
        return (result[1], result[0]) if expr.negated else result

    def comparison_set(self, kind: str, op: str, value) -> ValueSet:
        if kind == "str":
            if op == "==":
                return ValueSet.finite({value})
            return ValueSet("str", values=frozenset({value}), cofinite=True)
        point = _num(value)
        intervals = {
            "==": [(point, True, point, True)],
            "!=": [(-INF, False, point, False), (point, False, INF, False)],
            "<": [(-INF, False, point, False)],
            "<=": [(-INF, False, point, True)],
            ">": [(point, False, INF, False)],
            ">=": [(point, True, INF, False)],
        }[op]
        return ValueSet.numeric(kind, intervals)

    def members_set(self, kind: str, members) -> ValueSet:
        if kind == "str":
            return ValueSet.finite(members)
        return ValueSet.numeric(kind, [(_num(v), True, _num(v), True) for v in members])

    # ------------------------------------------------------------ unary tests

    def test_truth(self, test, subject) -> Union:
        """Where a unary test on `subject` matches (a test never matches where it would be missing)."""
        if isinstance(test, (ast.TestAny, ast.TestOtherwise)):
            return [{}]
        dimension = self.dimension(subject)
        if dimension is None:
            return self._atom_test(test, subject)
        key, kind = dimension
        if isinstance(test, ast.TestMissing):
            if test.negated:
                return self.truth(ast.IsMissing(subject, True))[0]
            return self.box(key, ValueSet.only_missing(kind))
        if isinstance(test, ast.TestCompare):
            value = constant_value(test.operand)
            if value is NOT_CONSTANT:
                return self.relation(subject, test.op, test.operand)[0]
            return self.box(key, self.comparison_set(kind, test.op, value))
        if isinstance(test, ast.TestInterval):
            low, high = constant_value(test.interval.low), constant_value(test.interval.high)
            if low is NOT_CONSTANT or high is NOT_CONSTANT:
                return self._atom_test(test, subject)
            interval = (_num(low), test.interval.low_closed, _num(high), test.interval.high_closed)
            return self.box(key, ValueSet.numeric(kind, [interval]))
        if isinstance(test, ast.TestSet):
            members = [constant_value(item) for item in test.items.items]
            if NOT_CONSTANT in members:
                return self._atom_test(test, subject)
            inside = self.members_set(kind, members)
            if test.negated:
                return self.box(key, ValueSet.all_of(kind, missing=False).subtract(inside))
            return self.box(key, inside)
        return self._atom_test(test, subject)  # pragma: no cover

    def _atom_test(self, test, subject) -> Union:
        key = "atom:" + repr((subject, test))
        if key not in self.space.universe:
            self.space.add(key, ValueSet.finite({True, False}, True), f"{expr_text(subject)} {unary_test_text(test)}")
        return [{key: ValueSet.finite({True})}]

    def row_truth(self, tests, subjects) -> Union:
        """Where every test of a table row matches."""
        result: Union = [{}]
        for test, subject in zip(tests, subjects):
            result = intersect_unions(self.space, result, self.test_truth(test, subject))
            if not result:
                break
        return result


def _constant_column(table: ast.Table, column: str) -> list | None:
    """The values a table column can take when every row gives it a constant, else None."""
    position = next(i for i, c in enumerate(table.outputs) if c.name == column)
    values = [constant_value(row.results[position]) for row in table.rows if position < len(row.results)]
    return None if NOT_CONSTANT in values else values


def _num(value) -> float:
    if isinstance(value, _dt.date):
        return value.toordinal()
    if isinstance(value, bool):  # pragma: no cover - bools never reach numeric dimensions
        return int(value)
    return value


def names_read(node) -> set[str]:
    """Every name an expression (or action list) reads."""
    return {sub.id for sub in ast.walk(node) if isinstance(sub, ast.Name)}


def names_assigned(actions) -> set[str]:
    assigned: set[str] = set()
    for action in actions:
        if isinstance(action, ast.Assign):
            assigned.add(action.target)
        elif isinstance(action, ast.AddReason):
            assigned.add("reasons")
    return assigned


def tree_levels(conditions: Conditions, branches, reach: Union | None = None, path: tuple[int, ...] = ()):
    """Walk a tree's levels in order, yielding one entry per branch.

    Yields (branch, path, condition_true, live): `live` is where the branch is
    really taken — inside its parent's reach, where its own condition is
    true, and where no earlier sibling was taken. After a level's branches it
    yields (None, path, None, uncovered): the part of the level's reach no
    branch takes.
    """
    from compiler.check.domains import subtract_all

    reach = [{}] if reach is None else reach
    taken: Union = []
    for number, branch in enumerate(branches, start=1):
        condition_true = [{}] if branch.condition is None else conditions.truth(branch.condition)[0]
        here = intersect_unions(conditions.space, reach, condition_true)
        live = subtract_all(conditions.space, here, taken)
        yield branch, (*path, number), condition_true, live
        taken = taken + condition_true
        nested = [item for item in branch.body if isinstance(item, ast.Branch)]
        if nested:
            yield from tree_levels(conditions, nested, live, (*path, number))
    yield None, path, None, subtract_all(conditions.space, reach, taken)
