"""Immutable AST of a policy.

Input: built by `dsl.build_ast` from Lark's parse tree.
Output: frozen, slotted dataclasses; every node has a `span` pointing at its
source text. Spans and purely presentational fields (how a number was
written, whether `then` was inline) are excluded from equality, so two
parses of differently formatted but equivalent text compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from dsl.diagnostics import NO_SPAN, Span


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Number:
    value: int | float  # int when written without a decimal point or percent sign
    text: str = field(default="", compare=False)  # as written, e.g. "7.9%" or "1_000"
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class String:
    value: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Bool:
    value: bool
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Today:
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Attribute:
    """`value.field`: a scorecard's `reasons`, a record's field, or a field of each record of a list."""

    value: Expr
    field: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Arith:
    op: str  # + - * /
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # == != < <= > >=
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class SetLiteral:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Interval:
    low: Expr
    high: Expr
    low_closed: bool
    high_closed: bool
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class In:
    """`item in container` (or `not in`); container is a list name, set, interval or list value."""

    item: Expr
    container: Expr | SetLiteral | Interval
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class IsMissing:
    operand: Expr
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class And:
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Or:
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class IfElse:
    condition: Expr
    then: Expr
    otherwise: Expr
    span: Span = _span()


Expr = Union[
    Number, String, Bool, Today, Name, Attribute, Call, Negate, Arith, Compare, In, IsMissing, And, Or, Not, IfElse
]

# ------------------------------------------------------------------ unary tests


@dataclass(frozen=True, slots=True)
class TestAny:
    """`-`: matches anything, including a missing value."""

    __test__ = False  # not a pytest test class
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TestMissing:
    """`missing` (or `not missing` when negated)."""

    __test__ = False
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TestCompare:
    """`< x`, `<= x`, `> x`, `>= x`, `!= x`, or a bare value (op `==`)."""

    __test__ = False
    op: str
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TestInterval:
    __test__ = False
    interval: Interval
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TestSet:
    """`{x, y}` (or `not {x, y}` when negated)."""

    __test__ = False
    items: SetLiteral
    negated: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TestOtherwise:
    """`otherwise` in a scorecard bin: matches anything, including a missing value."""

    __test__ = False
    span: Span = _span()


UnaryTest = Union[TestAny, TestMissing, TestCompare, TestInterval, TestSet, TestOtherwise]

# ------------------------------------------------------------------ declarations


@dataclass(frozen=True, slots=True)
class TypeRef:
    """`int`, `number`, `bool`, `string`, `date`, `list of T` (element set) or `list` (of records)."""

    name: str  # int number bool string date list
    element: str | None = None  # for `list of T`; None for a bare `list` (of records)
    span: Span = _span()

    def __str__(self) -> str:
        if self.name == "list":
            return f"list of {self.element}" if self.element else "list"
        return self.name


@dataclass(frozen=True, slots=True)
class Field:
    """An `input:` or `output:` field."""

    name: str
    type: TypeRef
    optional: bool = False
    key: bool = False
    pii: bool = False
    allowed: SetLiteral | Interval | None = None
    default: Expr | None = None
    # Modifiers in source order, for faithful formatting and duplicate detection.
    modifiers: tuple[str, ...] = field(default=(), compare=False)
    name_span: Span = _span()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    title: str | None = None
    kind: str | None = None
    description: str | None = None
    owner: str | None = None
    # (item, span) in source order, including duplicates, for the checker.
    items: tuple[tuple[str, Span], ...] = field(default=(), compare=False)
    kind_span: Span = _span()
    name_span: Span = _span()
    span: Span = _span()


# ------------------------------------------------------------------ statements


@dataclass(frozen=True, slots=True)
class ListDecl:
    name: str
    element_type: str
    members: SetLiteral | None = None
    name_span: Span = _span()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Let:
    name: str
    expr: Expr
    name_span: Span = _span()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Assign:
    target: str
    expr: Expr
    target_span: Span = _span()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class AddReason:
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Stop:
    span: Span = _span()


Action = Union[Assign, AddReason, Stop]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    label: str | None
    condition: Expr
    actions: tuple[Action, ...]
    then_block: bool = field(default=False, compare=False)
    id_span: Span = _span()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Rules:
    name: str
    hit: str  # first | all
    rules: tuple[Rule, ...]
    name_span: Span = _span()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class OutputColumn:
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class TableRow:
    tests: tuple[UnaryTest, ...]
    results: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    hit: str  # first | unique | collect
    inputs: tuple[Expr, ...]
    outputs: tuple[OutputColumn, ...]
    rows: tuple[TableRow, ...]
    sort_column: str | None = None
    sort_descending: bool = False
    limit: int | None = None
    sort_span: Span = _span()
    limit_span: Span = _span()
    name_span: Span = _span()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Bin:
    test: UnaryTest
    points: int | float
    reason: str | None = None
    points_text: str = field(default="", compare=False)
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Characteristic:
    expr: Expr
    label: str | None
    bins: tuple[Bin, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Scorecard:
    name: str
    base: int | float
    characteristics: tuple[Characteristic, ...]
    base_text: str | None = field(default=None, compare=False)  # None when `(base N)` was omitted
    name_span: Span = _span()
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Branch:
    """A tree branch; `condition` is None for `otherwise`. `body` holds branches or actions."""

    condition: Expr | None
    body: tuple[Union[Branch, Assign, AddReason, Stop], ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Tree:
    name: str
    branches: tuple[Branch, ...]
    name_span: Span = _span()
    span: Span = _span()


Statement = Union[ListDecl, Let, Rules, Table, Scorecard, Tree]


@dataclass(frozen=True, slots=True)
class Policy:
    header: Header
    inputs: tuple[Field, ...]
    outputs: tuple[Field, ...]
    statements: tuple[Statement, ...]
    span: Span = _span()

    @property
    def name(self) -> str:
        return self.header.name


def walk(node: object):
    """Yield `node` and every AST node below it, depth first, in source order."""
    yield node
    for child in children(node):
        yield from walk(child)


def children(node: object):
    """The direct AST children of a node, in source order."""
    for name in getattr(node, "__slots__", ()):
        value = getattr(node, name)
        if isinstance(value, tuple):
            for item in value:
                if hasattr(item, "__slots__"):
                    yield item
        elif hasattr(value, "__slots__") and not isinstance(value, Span):
            yield value
