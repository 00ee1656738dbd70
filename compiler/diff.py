"""A semantic diff of two policy sources: what a new version changes in meaning, not in layout.

Input: two policy texts, `semantic_diff(old_source, new_source, old_name, new_name)`. Each must parse and
check; if one does not, the checker's `PolicyError` is raised, its diagnostics naming that file (`old_name`
or `new_name`); if neither does, one `PolicyError` carries the diagnostics of both.
Output: a frozen `PolicyDiff` whose `changes` are `Change`s, each with a `kind` from the closed set
`CHANGE_KINDS`, a `subject` ("input monthly_income", "rule knockouts.K04"), the old and new normalised text
(None on the side that lacks the thing) and the 1-based source line on each side. `PolicyDiff.to_json` is
what the registry stores (stable order, JSON only), `PolicyDiff.from_json` reads it back, and
`PolicyDiff.render_text` is what `decide diff` prints: one line per change.

Two things are the same when their ASTs are equal: spans, comments, indentation, the spelling of a number
(`1_000`, `1000`), the order modifiers are written in and the order of a set literal's members never count.
Texts are the formatter's (`dsl.format`) on one line. Which items are matched with which, and the order of
the changes, are described in docs/diff.md.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from itertools import pairwise
from typing import Any

from compiler.functions import Functions
from compiler.policy import analyse_source
from dsl import ast
from dsl.diagnostics import Span
from dsl.errors import PolicyError
from dsl.format import action, expr, interval, number_text, quote, set_literal, unary_test

__all__ = ["CHANGE_KINDS", "Change", "PolicyDiff", "semantic_diff"]

# The closed set of change kinds, in the order a diff lists its sections (docs/diff.md says what each means).
CHANGE_KINDS: tuple[str, ...] = (
    "header_changed",
    "input_added",
    "input_removed",
    "input_changed",
    "output_added",
    "output_removed",
    "output_changed",
    "list_added",
    "list_removed",
    "list_changed",
    "statement_added",
    "statement_removed",
    "statement_changed",
    "statement_moved",
    "let_changed",
    "item_added",
    "item_removed",
    "item_changed",
    "item_moved",
    "reason_added",
    "reason_removed",
)

_HEADER_ITEMS = ("name", "title", "kind", "description", "owner")
# Statements that make a trace entry: their order is part of the result, so moving one is a change.
_TRACED = ("rules", "table", "scorecard", "tree")


# ----------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class Change:
    """One semantic change. `old`/`new` are normalised text, None on the side where the subject is absent."""

    kind: str
    subject: str
    old: str | None = None
    new: str | None = None
    old_line: int | None = None
    new_line: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in CHANGE_KINDS:
            raise ValueError(f"unknown change kind {self.kind!r}; the kinds are {', '.join(CHANGE_KINDS)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "old": self.old,
            "new": self.new,
            "old_line": self.old_line,
            "new_line": self.new_line,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        return cls(
            kind=data["kind"],
            subject=data["subject"],
            old=data.get("old"),
            new=data.get("new"),
            old_line=data.get("old_line"),
            new_line=data.get("new_line"),
        )

    def render(self) -> str:
        """One line: `+`/`-`/`~`, the subject, the text(s) and the line(s)."""
        if self.kind.endswith("_added"):
            sign, body = "+", f": {self.new}"
        elif self.kind.endswith("_removed"):
            sign, body = "-", f": {self.old}"
        else:
            sign, body = "~", f": {_shown(self.old)} -> {_shown(self.new)}"
        if self.kind.startswith("reason_"):
            body = ""  # the subject already names the code
        moved = " moved" if self.kind.endswith("_moved") else ""
        return f"{sign} {self.subject}{moved}{body}{self._lines()}"

    def _lines(self) -> str:
        if self.old_line is not None and self.new_line is not None:
            return f" (line {self.old_line} -> line {self.new_line})"
        if self.old_line is not None:
            return f" (old line {self.old_line})"
        if self.new_line is not None:
            return f" (new line {self.new_line})"
        return ""


def _shown(text: str | None) -> str:
    return "(none)" if text is None else text


@dataclass(frozen=True)
class PolicyDiff:
    """Every semantic change from one policy source to another, in a stable order (docs/diff.md)."""

    changes: tuple[Change, ...]
    old_name: str = "old"
    new_name: str = "new"

    @property
    def is_empty(self) -> bool:
        return not self.changes

    def to_json(self) -> dict[str, Any]:
        return {
            "old_name": self.old_name,
            "new_name": self.new_name,
            "changes": [change.to_json() for change in self.changes],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PolicyDiff:
        return cls(
            changes=tuple(Change.from_json(item) for item in data["changes"]),
            old_name=data.get("old_name", "old"),
            new_name=data.get("new_name", "new"),
        )

    def render_text(self) -> str:
        """One line per change (no trailing newline), or "no semantic changes"."""
        if not self.changes:
            return "no semantic changes"
        return "\n".join(change.render() for change in self.changes)


def semantic_diff(
    old_source: str, new_source: str, old_name: str = "old", new_name: str = "new", functions: Functions = None
) -> PolicyDiff:
    """The semantic changes from `old_source` to `new_source`; raises `PolicyError` if either does not check
    (with `functions`, the plugin functions they may call)."""
    old_tree = _checked_tree(old_source, old_name, functions)
    new_tree = _checked_tree(new_source, new_name, functions)
    failed = [result for result in (old_tree, new_tree) if isinstance(result, PolicyError)]
    if len(failed) == 1:
        raise failed[0]
    if failed:
        # Both are wrong: one error with every diagnostic of both files (each names its file). The excerpts
        # are left out because one error carries one source text.
        raise PolicyError([d for error in failed for d in error.diagnostics])
    assert isinstance(old_tree, ast.Policy) and isinstance(new_tree, ast.Policy)
    return PolicyDiff(tuple(_policy_changes(old_tree, new_tree)), old_name, new_name)


def _checked_tree(source: str, filename: str, functions: Functions) -> ast.Policy | PolicyError:
    tree, _analysis, text, diagnostics = analyse_source(source, filename, functions)
    if tree is None or any(d.is_error for d in diagnostics):
        return PolicyError(diagnostics, text)
    return tree


# ----------------------------------------------------------------------------- sameness and text


_COMPARED_FIELDS: dict[type, tuple[str, ...]] = {}


def _canonical(node: object) -> Hashable:
    """A hashable key equal for two nodes exactly when they mean the same.

    The AST's own equality already ignores spans and spellings; this also ignores the order of a set
    literal's members (a set literal is only ever a membership test, an `in` constraint or a list's members).
    """
    if isinstance(node, ast.SetLiteral):
        return ("set", frozenset(_canonical(item) for item in node.items))
    if isinstance(node, tuple):
        return tuple(_canonical(item) for item in node)
    if is_dataclass(node) and not isinstance(node, (type, Span)):
        names = _COMPARED_FIELDS.get(type(node))
        if names is None:
            names = _COMPARED_FIELDS[type(node)] = tuple(f.name for f in fields(node) if f.compare)
        return (type(node).__name__, *(_canonical(getattr(node, name)) for name in names))
    return node  # type: ignore[return-value]


def _signed(value: int | float) -> str:
    return "-" + number_text(-value) if value < 0 else number_text(value)


def _constraint_text(node: ast.Expr | ast.SetLiteral | ast.Interval) -> str:
    if isinstance(node, ast.SetLiteral):
        return set_literal(node)
    if isinstance(node, ast.Interval):
        return interval(node)
    return expr(node)


def _field_text(node: ast.Field) -> str:
    """A field's declaration without its name, modifiers in one order: `number optional in [0..100]`."""
    parts = [str(node.type)]
    parts += [word for word, present in (("key", node.key), ("pii", node.pii), ("optional", node.optional)) if present]
    if node.allowed is not None:
        parts.append(f"in {_constraint_text(node.allowed)}")
    if node.default is not None:
        parts.append(f"= {expr(node.default)}")
    return " ".join(parts)


def _list_text(node: ast.ListDecl) -> str:
    return node.element_type + (f" = {set_literal(node.members)}" if node.members is not None else "")


def _table_hit_text(node: ast.Table) -> str:
    hit = node.hit
    if node.sort_column is not None:
        hit += f" sort {node.sort_column} {'desc' if node.sort_descending else 'asc'}"
    if node.limit is not None:
        hit += f" limit {node.limit}"
    return hit


def _cells_text(inputs: Sequence[str], outputs: Sequence[str]) -> str:
    return "".join(f"| {cell} " for cell in inputs) + "|| " + " | ".join(outputs) + " |"


def _statement_text(node: ast.Statement) -> str:
    """What a statement is, apart from its items: `rules first`, `table first | a || b |`, `scorecard base 600`."""
    if isinstance(node, ast.Rules):
        return f"rules {node.hit}"
    if isinstance(node, ast.Table):
        columns = _cells_text([expr(column) for column in node.inputs], [column.name for column in node.outputs])
        return f"table {_table_hit_text(node)} {columns}"
    if isinstance(node, ast.Scorecard):
        return f"scorecard base {node.base_text or _signed(node.base)}"
    if isinstance(node, ast.Tree):
        return "tree"
    if isinstance(node, ast.Let):
        return expr(node.expr)
    return _list_text(node)


def _statement_key(node: ast.Statement) -> Hashable:
    """The parts `_statement_text` shows, for comparison."""
    if isinstance(node, ast.Rules):
        return node.hit
    if isinstance(node, ast.Table):
        return (
            node.hit,
            _canonical(node.inputs),
            tuple(column.name for column in node.outputs),
            node.sort_column,
            node.sort_descending,
            node.limit,
        )
    if isinstance(node, ast.Scorecard):
        return node.base
    if isinstance(node, ast.Let):
        return _canonical(node.expr)
    if isinstance(node, ast.ListDecl):
        return (node.element_type, _canonical(node.members))
    return ()


def _statement_word(node: ast.Statement) -> str:
    """How a subject names the statement's kind; the names of statements of two kinds never match."""
    return {
        ast.ListDecl: "list",
        ast.Let: "let",
        ast.Rules: "rules",
        ast.Table: "table",
        ast.Scorecard: "scorecard",
        ast.Tree: "tree",
    }[type(node)]


def _rule_text(rule: ast.Rule) -> str:
    title = f"{quote(rule.label)} " if rule.label is not None else ""
    return f"{title}when {expr(rule.condition)} then {', '.join(action(item) for item in rule.actions)}"


def _row_text(row: ast.TableRow) -> str:
    return _cells_text([unary_test(test) for test in row.tests], [expr(result) for result in row.results])


def _characteristic_text(node: ast.Characteristic) -> str:
    return expr(node.expr) + (f" {quote(node.label)}" if node.label is not None else "")


def _bin_text(node: ast.Bin) -> str:
    reason = f" reason {quote(node.reason)}" if node.reason is not None else ""
    return f"{unary_test(node.test)} => {node.points_text or _signed(node.points)}{reason}"


def _branch_actions(node: ast.Branch) -> tuple[ast.Action, ...]:
    return tuple(item for item in node.body if not isinstance(item, ast.Branch))


def _sub_branches(node: ast.Branch | None) -> tuple[ast.Branch, ...]:
    return () if node is None else tuple(item for item in node.body if isinstance(item, ast.Branch))


def _branch_text(node: ast.Branch) -> str:
    condition = "otherwise" if node.condition is None else expr(node.condition)
    actions = ", ".join(action(item) for item in _branch_actions(node))
    return f"{condition}: {actions}" if actions else f"{condition}:"


# ----------------------------------------------------------------------------- matching


@dataclass(frozen=True)
class _Step:
    """One entry of an alignment: an old item, a new item, or both (matched or paired), and whether it moved."""

    old: int | None
    new: int | None
    moved: bool = False


def _kept_in_order(pairs: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
    """The largest set of (old, new) pairs whose order is the same on both sides.

    `pairs` is sorted by new position; a longest increasing run of old positions is a longest common
    subsequence of the matched items, so the other matched items are exactly those that moved.
    """
    tails: list[int] = []  # tails[k]: old position ending the best run of length k + 1 found so far
    tail_index: list[int] = []
    previous: list[int] = [-1] * len(pairs)
    for index, (old, _new) in enumerate(pairs):
        length = bisect_left(tails, old)
        if length == len(tails):
            tails.append(old)
            tail_index.append(index)
        else:
            tails[length] = old
            tail_index[length] = index
        previous[index] = tail_index[length - 1] if length else -1
    kept: set[tuple[int, int]] = set()
    index = tail_index[-1] if tail_index else -1
    while index >= 0:
        kept.add(pairs[index])
        index = previous[index]
    return kept


def _align(
    old_keys: Sequence[Hashable], new_keys: Sequence[Hashable], *, pair_leftovers: bool, ordered: bool
) -> list[_Step]:
    """Match old items with new ones and list them in the diff's order.

    Items with equal keys match (the k-th old with the k-th new of one key). The matches that keep their
    relative order are anchors; with `ordered`, the other matches are moves. With `pair_leftovers`, the items
    left unmatched between two anchors are paired one to one in order (the same item, edited); what is
    still left is removed or added. So a row inserted in the middle of a table is one added row.
    """
    waiting: dict[Hashable, deque[int]] = {}
    for position, key in enumerate(old_keys):
        waiting.setdefault(key, deque()).append(position)
    matched: list[tuple[int, int]] = []
    for position, key in enumerate(new_keys):
        queue = waiting.get(key)
        if queue:
            matched.append((queue.popleft(), position))
    anchors = _kept_in_order(matched)
    pairs: list[tuple[int, int, bool]] = [(old, new, ordered and (old, new) not in anchors) for old, new in matched]
    if pair_leftovers:
        pairs += _paired_leftovers(len(old_keys), len(new_keys), matched, anchors)
    return _in_diff_order(len(old_keys), len(new_keys), pairs)


def _paired_leftovers(
    old_count: int, new_count: int, matched: Sequence[tuple[int, int]], anchors: set[tuple[int, int]]
) -> list[tuple[int, int, bool]]:
    """Unmatched items between the same two anchors, paired in order: the edited versions of each other."""
    matched_old = {old for old, _ in matched}
    matched_new = {new for _, new in matched}
    bounds = [(-1, -1), *sorted(anchors), (old_count, new_count)]
    pairs: list[tuple[int, int, bool]] = []
    for (old_low, new_low), (old_high, new_high) in pairwise(bounds):
        old_gap = [i for i in range(old_low + 1, old_high) if i not in matched_old]
        new_gap = [j for j in range(new_low + 1, new_high) if j not in matched_new]
        pairs += [(old, new, False) for old, new in zip(old_gap, new_gap)]
    return pairs


def _in_diff_order(old_count: int, new_count: int, pairs: Sequence[tuple[int, int, bool]]) -> list[_Step]:
    """Steps in the new source's order; a removed item comes right after the item before it in the old source."""
    new_of_old = {old: new for old, new, _ in pairs}
    steps: list[tuple[tuple[int, int, int], _Step]] = []
    for old, new, moved in pairs:
        steps.append(((new, 0, 0), _Step(old, new, moved)))
    paired_new = set(new_of_old.values())
    steps += [((new, 0, 0), _Step(None, new)) for new in range(new_count) if new not in paired_new]
    anchor = -1  # new position of the latest old item that is still there
    for old in range(old_count):
        if old in new_of_old:
            anchor = new_of_old[old]
        else:
            steps.append(((anchor, 1, old), _Step(old, None)))
    return [step for _, step in sorted(steps, key=lambda entry: entry[0])]


# ----------------------------------------------------------------------------- items


@dataclass(frozen=True)
class _ItemKind:
    """How the items of one level (rules, rows, characteristics, bins, branches) are matched and shown.

    `label(item, position, on_new_side)` is the subject's label, from the 1-based position on the item's own
    side; the subject is `word label` ("rule knockouts.K04", "row band.3"). `children(old, old_label, new, new_label)`
    gives the changes inside a pair, or inside an item only one side has.
    """

    word: str
    label: Callable[[Any, int, bool], str]
    identity: Callable[[Any], Hashable]
    content: Callable[[Any], Hashable]
    text: Callable[[Any], str]
    pair_leftovers: bool
    ordered: bool
    children: Callable[[Any, str | None, Any, str | None], list[Change]] | None = None


def _item_changes(kind: _ItemKind, old_items: Sequence[Any], new_items: Sequence[Any]) -> list[Change]:
    changes: list[Change] = []
    old_keys = [kind.identity(item) for item in old_items]
    new_keys = [kind.identity(item) for item in new_items]
    for step in _align(old_keys, new_keys, pair_leftovers=kind.pair_leftovers, ordered=kind.ordered):
        old = old_items[step.old] if step.old is not None else None
        new = new_items[step.new] if step.new is not None else None
        old_label = kind.label(old, step.old + 1, False) if step.old is not None else None
        new_label = kind.label(new, step.new + 1, True) if step.new is not None else None
        subject = f"{kind.word} {new_label if new_label is not None else old_label}"
        if old is None:
            changes.append(Change("item_added", subject, None, kind.text(new), None, new.span.line))
        elif new is None:
            changes.append(Change("item_removed", subject, kind.text(old), None, old.span.line, None))
        else:
            lines = {"old_line": old.span.line, "new_line": new.span.line}
            if kind.content(old) != kind.content(new):
                changes.append(Change("item_changed", subject, kind.text(old), kind.text(new), **lines))
            if step.moved:
                assert step.old is not None and step.new is not None
                changes.append(
                    Change("item_moved", subject, f"position {step.old + 1}", f"position {step.new + 1}", **lines)
                )
        if kind.children is not None:
            changes += kind.children(old, old_label, new, new_label)
    return changes


def _rule_changes(name: str, old: ast.Rules | None, new: ast.Rules | None) -> list[Change]:
    kind = _ItemKind(
        word="rule",
        label=lambda rule, _position, _new: f"{name}.{rule.id}",
        identity=lambda rule: rule.id,
        content=lambda rule: _canonical((rule.label, rule.condition, rule.actions)),
        text=_rule_text,
        pair_leftovers=False,  # a rule is its id: another id is another rule
        ordered=True,  # `first` stops at the first rule that fires, `all` lets later rules overwrite
    )
    return _item_changes(kind, old.rules if old else (), new.rules if new else ())


def _row_changes(name: str, old: ast.Table | None, new: ast.Table | None) -> list[Change]:
    # Row order decides which row a `first` table uses and the records of a `collect` table; a `unique`
    # table's rows cannot overlap, so reordering them changes nothing.
    ordered = any(table is not None and table.hit != "unique" for table in (old, new))
    kind = _ItemKind(
        word="row",
        label=lambda _row, position, _new: f"{name}.{position}",
        identity=_canonical,  # rows have no names: a row is its content
        content=_canonical,
        text=_row_text,
        pair_leftovers=True,
        ordered=ordered,
    )
    return _item_changes(kind, old.rows if old else (), new.rows if new else ())


def _scorecard_changes(name: str, old: ast.Scorecard | None, new: ast.Scorecard | None) -> list[Change]:
    def bins(
        old_characteristic: ast.Characteristic | None,
        old_label: str | None,
        new_characteristic: ast.Characteristic | None,
        new_label: str | None,
    ) -> list[Change]:
        def bin_label(_bin: ast.Bin, position: int, on_new_side: bool) -> str:
            # A bin's label continues its characteristic's on the same side.
            return f"{new_label if on_new_side else old_label}.{position}"

        kind = _ItemKind(
            word="bin",
            label=bin_label,
            identity=lambda item: _canonical(item.test),
            content=lambda item: _canonical((item.test, item.points, item.reason)),
            text=_bin_text,
            pair_leftovers=True,
            ordered=True,  # the first bin that matches gives the points
        )
        return _item_changes(
            kind,
            old_characteristic.bins if old_characteristic else (),
            new_characteristic.bins if new_characteristic else (),
        )

    kind = _ItemKind(
        word="characteristic",
        label=lambda _characteristic, position, _new: f"{name}.{position}",
        identity=lambda characteristic: _canonical(characteristic.expr),
        content=lambda characteristic: _canonical((characteristic.expr, characteristic.label)),
        text=_characteristic_text,
        pair_leftovers=True,
        ordered=True,  # the trace lists characteristics in order, and reason ties go by declaration order
        children=bins,
    )
    return _item_changes(kind, old.characteristics if old else (), new.characteristics if new else ())


def _branch_changes(name: str, old: ast.Tree | None, new: ast.Tree | None) -> list[Change]:
    def level(old_prefix: str, new_prefix: str) -> _ItemKind:
        return _ItemKind(
            word="branch",
            # A branch's label is its path on its own side, as the trace writes it: "2.1".
            label=lambda _branch, position, on_new_side: (
                f"{name}.{new_prefix if on_new_side else old_prefix}{position}"
            ),
            identity=lambda branch: _canonical(branch.condition),
            content=lambda branch: _canonical((branch.condition, _branch_actions(branch))),
            text=_branch_text,
            pair_leftovers=True,
            ordered=True,  # the first branch whose condition is true is taken
            children=sub_levels,
        )

    def sub_levels(
        old_branch: ast.Branch | None, old_label: str | None, new_branch: ast.Branch | None, new_label: str | None
    ) -> list[Change]:
        old_prefix = f"{old_label.removeprefix(name + '.')}." if old_label else ""
        new_prefix = f"{new_label.removeprefix(name + '.')}." if new_label else ""
        return _item_changes(level(old_prefix, new_prefix), _sub_branches(old_branch), _sub_branches(new_branch))

    return _item_changes(level("", ""), old.branches if old else (), new.branches if new else ())


def _items_of(name: str, old: ast.Statement | None, new: ast.Statement | None) -> list[Change]:
    sample = new if new is not None else old
    if isinstance(sample, ast.Rules):
        return _rule_changes(name, old, new)  # type: ignore[arg-type]
    if isinstance(sample, ast.Table):
        return _row_changes(name, old, new)  # type: ignore[arg-type]
    if isinstance(sample, ast.Scorecard):
        return _scorecard_changes(name, old, new)  # type: ignore[arg-type]
    if isinstance(sample, ast.Tree):
        return _branch_changes(name, old, new)  # type: ignore[arg-type]
    return []


# ----------------------------------------------------------------------------- sections


def _header_values(header: ast.Header) -> dict[str, tuple[str | None, int | None]]:
    """Each header item's text and line; `kind` is `generic` when not written (the language's default)."""
    lines = {key: span.line for key, span in reversed(header.items)}  # the first of a repeated item counts
    return {
        "name": (header.name, header.name_span.line),
        "title": (quote(header.title) if header.title is not None else None, lines.get("title")),
        "kind": (header.kind or "generic", lines.get("kind")),
        "description": (
            quote(header.description) if header.description is not None else None,
            lines.get("description"),
        ),
        "owner": (quote(header.owner) if header.owner is not None else None, lines.get("owner")),
    }


def _header_changes(old: ast.Header, new: ast.Header) -> list[Change]:
    old_values, new_values = _header_values(old), _header_values(new)
    changes = []
    for item in _HEADER_ITEMS:
        (old_text, old_line), (new_text, new_line) = old_values[item], new_values[item]
        if old_text != new_text:
            changes.append(Change("header_changed", f"header {item}", old_text, new_text, old_line, new_line))
    return changes


def _field_changes(section: str, old_fields: Sequence[ast.Field], new_fields: Sequence[ast.Field]) -> list[Change]:
    changes = []
    # Fields are found by name, so their order is not compared: it means nothing to an evaluation.
    steps = _align([f.name for f in old_fields], [f.name for f in new_fields], pair_leftovers=False, ordered=False)
    for step in steps:
        old = old_fields[step.old] if step.old is not None else None
        new = new_fields[step.new] if step.new is not None else None
        if old is None:
            assert new is not None
            changes.append(
                Change(f"{section}_added", f"{section} {new.name}", None, _field_text(new), None, new.span.line)
            )
        elif new is None:
            changes.append(
                Change(f"{section}_removed", f"{section} {old.name}", _field_text(old), None, old.span.line, None)
            )
        elif _canonical(old) != _canonical(new):
            changes.append(
                Change(
                    f"{section}_changed",
                    f"{section} {new.name}",
                    _field_text(old),
                    _field_text(new),
                    old.span.line,
                    new.span.line,
                )
            )
    return changes


def _moved_statements(
    old: Sequence[ast.Statement], new: Sequence[ast.Statement], steps: Sequence[_Step]
) -> dict[int, tuple[int, int]]:
    """New index -> (old, new) 1-based positions in the trace, for traced statements that changed places."""
    old_traced = [i for i, node in enumerate(old) if _statement_word(node) in _TRACED]
    new_traced = [j for j, node in enumerate(new) if _statement_word(node) in _TRACED]
    pairs = sorted(
        ((step.old, step.new) for step in steps if step.old is not None and step.new is not None),
        key=lambda pair: pair[1],
    )
    pairs = [pair for pair in pairs if _statement_word(new[pair[1]]) in _TRACED]
    kept = _kept_in_order(pairs)
    return {
        new_index: (old_traced.index(old_index) + 1, new_traced.index(new_index) + 1)
        for old_index, new_index in pairs
        if (old_index, new_index) not in kept
    }


def _statement_changes(
    old_statements: Sequence[ast.Statement], new_statements: Sequence[ast.Statement]
) -> list[Change]:
    def identity(node: ast.Statement) -> Hashable:
        return (_statement_word(node), node.name)

    steps = _align(
        [identity(s) for s in old_statements],
        [identity(s) for s in new_statements],
        pair_leftovers=False,  # a statement is its name and kind
        ordered=False,  # moves are worked out among the traced statements only, below
    )
    moved = _moved_statements(old_statements, new_statements, steps)
    changes: list[Change] = []
    for step in steps:
        old = old_statements[step.old] if step.old is not None else None
        new = new_statements[step.new] if step.new is not None else None
        sample = new if new is not None else old
        assert sample is not None
        word = _statement_word(sample)
        subject = f"{word} {sample.name}"
        family = "list" if word == "list" else "statement"
        if old is None:
            assert new is not None
            changes.append(Change(f"{family}_added", subject, None, _statement_text(new), None, new.span.line))
        elif new is None:
            changes.append(Change(f"{family}_removed", subject, _statement_text(old), None, old.span.line, None))
        else:
            lines = {"old_line": old.span.line, "new_line": new.span.line}
            if _statement_key(old) != _statement_key(new):
                kind = {"list": "list_changed", "let": "let_changed"}.get(word, "statement_changed")
                changes.append(Change(kind, subject, _statement_text(old), _statement_text(new), **lines))
            if step.new in moved:
                old_position, new_position = moved[step.new]
                changes.append(
                    Change("statement_moved", subject, f"position {old_position}", f"position {new_position}", **lines)
                )
        changes += _items_of(sample.name, old, new)
    return changes


# ----------------------------------------------------------------------------- reason codes


@dataclass
class _Definitions:
    """Where a reason expression's names come from: lets, table columns, scorecards and collect tables."""

    lets: dict[str, ast.Expr] = field(default_factory=dict)
    columns: dict[str, tuple[ast.Expr, ...]] = field(default_factory=dict)  # a first/unique table's output column
    scorecards: dict[str, ast.Scorecard] = field(default_factory=dict)
    records: dict[str, ast.Table] = field(default_factory=dict)  # collect tables, read as `NAME.FIELD`

    @classmethod
    def of(cls, policy: ast.Policy) -> _Definitions:
        found = cls()
        for statement in policy.statements:
            if isinstance(statement, ast.Let):
                found.lets[statement.name] = statement.expr
            elif isinstance(statement, ast.Scorecard):
                found.scorecards[statement.name] = statement
            elif isinstance(statement, ast.Table) and statement.hit == "collect":
                found.records[statement.name] = statement
            elif isinstance(statement, ast.Table):
                for index, column in enumerate(statement.outputs):
                    found.columns[column.name] = _column_cells(statement, index)
        return found


def _column_cells(table: ast.Table, index: int) -> tuple[ast.Expr, ...]:
    return tuple(row.results[index] for row in table.rows if index < len(row.results))


def _codes(node: ast.Expr, definitions: _Definitions, seen: set[str]) -> Iterator[tuple[str, int]]:
    """The reason codes an expression given to `reason` can produce, each with the line it is written on.

    A code is a string literal the value can come from: directly, through `if`/`else`, `coalesce` and
    `top`, through a let or a table cell, or as a bin's code in a scorecard's `reasons`. A value computed
    otherwise (`lower(x)`, a list input) has no code the source states, and adds none.
    """
    if isinstance(node, ast.String):
        yield node.value, node.span.line
    elif isinstance(node, ast.IfElse):
        yield from _codes(node.then, definitions, seen)
        yield from _codes(node.otherwise, definitions, seen)
    elif isinstance(node, ast.Call) and node.func == "coalesce":
        for argument in node.args:
            yield from _codes(argument, definitions, seen)
    elif isinstance(node, ast.Call) and node.func == "top" and node.args:
        yield from _codes(node.args[0], definitions, seen)
    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        scorecard = definitions.scorecards.get(node.value.id)
        table = definitions.records.get(node.value.id)
        if scorecard is not None and node.field == "reasons":
            for characteristic in scorecard.characteristics:
                yield from ((item.reason, item.span.line) for item in characteristic.bins if item.reason is not None)
        elif table is not None:
            names = [column.name for column in table.outputs]
            if node.field in names:
                for cell in _column_cells(table, names.index(node.field)):
                    yield from _codes(cell, definitions, seen)
    elif isinstance(node, ast.Name) and node.id not in seen:
        seen.add(node.id)  # each definition once: a code has one first line, and the walk stays linear
        if node.id in definitions.lets:
            yield from _codes(definitions.lets[node.id], definitions, seen)
        for cell in definitions.columns.get(node.id, ()):
            yield from _codes(cell, definitions, seen)


def _actions(statement: ast.Statement) -> Iterator[ast.Action]:
    if isinstance(statement, ast.Rules):
        for rule in statement.rules:
            yield from rule.actions
    elif isinstance(statement, ast.Tree):
        pending = list(statement.branches)
        while pending:
            branch = pending.pop()
            for item in branch.body:
                if isinstance(item, ast.Branch):
                    pending.append(item)
                else:
                    yield item


def _reason_codes(policy: ast.Policy) -> dict[str, int]:
    """Every reason code the policy can emit, with the first line it is written on."""
    definitions = _Definitions.of(policy)
    first_line: dict[str, int] = {}
    for statement in policy.statements:
        for item in _actions(statement):
            if isinstance(item, ast.AddReason):
                for code, line in _codes(item.expr, definitions, set()):
                    first_line[code] = min(line, first_line.get(code, line))
    return first_line


def _reason_changes(old: ast.Policy, new: ast.Policy) -> list[Change]:
    old_codes, new_codes = _reason_codes(old), _reason_codes(new)
    changes = []
    for code in sorted(old_codes.keys() | new_codes.keys()):
        if code not in new_codes:
            changes.append(Change("reason_removed", f"reason {code}", code, None, old_codes[code], None))
        elif code not in old_codes:
            changes.append(Change("reason_added", f"reason {code}", None, code, None, new_codes[code]))
    return changes


def _policy_changes(old: ast.Policy, new: ast.Policy) -> list[Change]:
    return [
        *_header_changes(old.header, new.header),
        *_field_changes("input", old.inputs, new.inputs),
        *_field_changes("output", old.outputs, new.outputs),
        *_statement_changes(old.statements, new.statements),
        *_reason_changes(old, new),
    ]
