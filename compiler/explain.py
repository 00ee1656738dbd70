"""Explanations of compiled policies: the decision trees as text or Graphviz, and the path one record takes.

Input: a `Policy` (its compiled arrays and its source text) and, for a
path, a record with its evaluation date and lists. Output: text for people
(`explain_trees`, `explain_path`) or DOT for Graphviz (`explain_dot`); every
test and leaf names its source line, taken from the arrays' source map.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from typing import Any

from compiler.check.fold_constants import show_value
from compiler.evaluate.lists import prepare_lists
from compiler.evaluate.python_kernel import Prepared, evaluate_arrays
from compiler.evaluate.results import resolve_as_of
from compiler.lower import opcodes as O
from dsl.diagnostics import Span

_OUTCOMES = (("true", "node_true"), ("false", "node_false"), ("missing", "node_missing"))


class _Source:
    def __init__(self, policy) -> None:
        self.arrays = policy.compiled.arrays
        self.lines = (policy.source or "").split("\n")

    def text(self, span: Span) -> str:
        if span.line < 1 or span.line > len(self.lines):
            return "?"
        if span.end_line == span.line:
            return self.lines[span.line - 1][span.column - 1 : span.end_column - 1].strip()
        return self.lines[span.line - 1][span.column - 1 :].strip() + " ..."

    def test(self, node: int) -> tuple[str, int]:
        """The source text of a test node's condition, and its line."""
        arrays = self.arrays
        program = int(arrays.node_program[node])
        start, end = int(arrays.program_start[program]), int(arrays.program_start[program + 1])
        first, last = arrays.spans[int(arrays.code_span[start])], arrays.spans[int(arrays.code_span[end - 1])]
        contains = (last.line, last.column) <= (first.line, first.column) and (first.end_line, first.end_column) <= (
            last.end_line,
            last.end_column,
        )
        if contains:  # a condition: its last instruction spans the whole comparison
            return self.text(last), last.line
        # A table cell or scorecard bin: the column (subject) and the cell's test sit apart in the source.
        return f"{self.text(first)} {self.text(last)}", last.line

    def leaf(self, leaf: int, kind: int) -> str:
        arrays = self.arrays
        label = arrays.strings[int(arrays.leaf_label[leaf])]
        index = int(arrays.leaf_index[leaf])
        actions = [
            self.text(arrays.spans[int(arrays.action_span[a])])
            for a in range(int(arrays.leaf_action_start[leaf]), int(arrays.leaf_action_end[leaf]))
        ]
        if kind in (O.S_RULES_FIRST, O.S_RULES_ALL):
            head = f"fire rule {label}" if index >= 0 else "no rule fires"
        elif kind in (O.S_TABLE_FIRST, O.S_TABLE_UNIQUE, O.S_TABLE_COLLECT):
            head = f"row {label} matches" if index >= 0 else "no row matches"
        elif kind == O.S_SCORECARD:
            points = float(arrays.leaf_points[leaf])
            reason = int(arrays.leaf_reason[leaf])
            head = f"bin {label}: {points:g} points" if index > 0 else "no bin: 0 points"
            if reason >= 0:
                head += f", reason {arrays.strings[reason]}"
        else:
            head = f"path {label}" if label != "-" else "no branch taken"
        if actions:
            head += ": " + ", ".join(actions)
        if index >= 0 or kind == O.S_SCORECARD:
            head += f"  (line {arrays.spans[int(arrays.leaf_span[leaf])].line})"
        return head


def _statement_header(source: _Source, statement: int) -> str:
    arrays = source.arrays
    span = arrays.spans[int(arrays.stmt_span[statement])]
    keyword, _, hit = O.STATEMENT_NAMES[int(arrays.stmt_kind[statement])].partition(" ")
    hit = f" ({hit})" if hit else ""
    return f"{keyword} {arrays.strings[int(arrays.stmt_name[statement])]}{hit}  (line {span.line})"


def explain_trees(policy) -> str:
    """Every statement's compiled tree as indented text; a shared subtree is printed once."""
    source = _Source(policy)
    arrays = source.arrays
    lines: list[str] = []
    for statement in range(len(arrays.stmt_kind)):
        kind = int(arrays.stmt_kind[statement])
        if kind in (O.S_LET, O.S_LIST):
            continue
        lines.append(_statement_header(source, statement))
        shown: set[int] = set()
        for tree in range(int(arrays.stmt_tree_start[statement]), int(arrays.stmt_tree_end[statement])):
            if kind == O.S_SCORECARD:
                program = int(arrays.tree_program[tree])
                span = arrays.spans[int(arrays.code_span[int(arrays.program_start[program + 1]) - 1])]
                lines.append(f"  characteristic {source.text(span)}  (line {span.line})")
            _tree_lines(source, int(arrays.tree_root[tree]), kind, "    ", lines, shown)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _tree_lines(source: _Source, node: int, kind: int, indent: str, lines: list[str], shown: set[int]) -> None:
    arrays = source.arrays
    leaf = int(arrays.node_leaf[node])
    if leaf >= 0:
        lines.append(f"{indent}{source.leaf(leaf, kind)}")
        return
    if node in shown:
        lines.append(f"{indent}(node #{node}, shown above)")
        return
    shown.add(node)
    text, line = source.test(node)
    lines.append(f"{indent}#{node} {text}  (line {line})")
    children = [(word, int(getattr(arrays, name)[node])) for word, name in _OUTCOMES]
    # Most tests send missing where false goes; say so once instead of repeating the subtree.
    if children[1][1] == children[2][1]:
        children = [children[0], ("false or missing", children[1][1])]
    for word, child in children:
        lines.append(f"{indent}  {word}:")
        _tree_lines(source, child, kind, indent + "    ", lines, shown)


def explain_dot(policy) -> str:
    """The trees as a Graphviz digraph, one cluster per statement."""
    source = _Source(policy)
    arrays = source.arrays
    out = ["digraph policy {", '  node [shape=box, fontname="Helvetica"];']
    for statement in range(len(arrays.stmt_kind)):
        kind = int(arrays.stmt_kind[statement])
        if kind in (O.S_LET, O.S_LIST):
            continue
        out.append(f"  subgraph cluster_{statement} {{")
        out.append(f"    label={_quote(_statement_header(source, statement))};")
        for node in arrays.statement_nodes(statement):
            leaf = int(arrays.node_leaf[node])
            if leaf >= 0:
                out.append(f"    n{node} [label={_quote(source.leaf(leaf, kind))}, shape=ellipse];")
                continue
            text, line = source.test(node)
            out.append(f"    n{node} [label={_quote(f'{text} (line {line})')}];")
            for word, name in _OUTCOMES:
                child = int(getattr(arrays, name)[node])
                out.append(f"    n{node} -> n{child} [label={_quote(word)}];")
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def explain_path(
    policy,
    record: Mapping[str, Any],
    *,
    as_of: _dt.date | str | None = None,
    lists: Mapping[str, Iterable[Any]] | None = None,
    ignore_extra: bool = False,
) -> str:
    """The path one record takes through every tree, with the source line of each test and its outcome."""
    source = _Source(policy)
    arrays = source.arrays
    values = policy.compiled.validator.validate(record, ignore_extra=ignore_extra)
    visits: list[tuple[int, str]] = []
    prepared = Prepared(arrays, policy.compiled.functions)
    outputs, trace = evaluate_arrays(
        prepared, values, resolve_as_of(as_of), prepare_lists(policy.store_lists, lists), visits=visits
    )
    statement_of_node = _statement_of_nodes(arrays)
    lines: list[str] = []
    current = -1
    for node, outcome in visits:
        if node < 0:
            statement = -node - 1
            name = arrays.strings[int(arrays.stmt_name[statement])]
            line = arrays.spans[int(arrays.stmt_span[statement])].line
            if int(arrays.stmt_kind[statement]) == O.S_LET:
                lines.append(f"let {name} = {show(outcome)}  (line {line})")
                current = -1
            else:
                lines.append(f"  {name} = {show(outcome)}")
            continue
        statement = statement_of_node.get(node, -1)
        if statement != current:
            current = statement
            lines.append(_statement_header(source, statement) if statement >= 0 else "?")
        leaf = int(arrays.node_leaf[node])
        if leaf >= 0:
            lines.append(f"  => {source.leaf(leaf, int(arrays.stmt_kind[statement]))}")
        else:
            text, line = source.test(node)
            lines.append(f"  line {line}: {text} -> {outcome}")
    lines.append("")
    lines.append("trace: " + ", ".join(trace))
    lines.append("outputs: " + ", ".join(f"{name} = {show(value)}" for name, value in outputs.items()))
    return "\n".join(lines) + "\n"


def show(value: Any) -> str:
    """A value as the policy language writes it: missing, true, "text", date("2026-01-31"), [a, b], {field: v}."""
    if isinstance(value, list):
        return "[" + ", ".join(show(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {show(item)}" for key, item in value.items()) + "}"
    return show_value(value)


def _statement_of_nodes(arrays) -> dict[int, int]:
    return {node: statement for statement in range(len(arrays.stmt_kind)) for node in arrays.statement_nodes(statement)}
