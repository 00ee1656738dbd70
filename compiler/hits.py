"""Hit counts: how many decided rows fired each rule, matched each table row, fell in each scorecard bin and
took each tree branch — what a back-test reports as "which rules never fire on real data".

Input: either trace entries (`"NAME:LABELS"`, spec §6) with the rows that gave each, or the GIL-free kernel's
per-leaf and per-statement event counts of a batch. Output: a `Counter` keyed by `(statement, label)`, the
label being the item's in `PolicyInfo` (rule id `"K01"`, row `"3"`, bin `"2.1"` = characteristic 2, bin 1,
branch path `"1.2"`), plus `(statement, None)` for the rows that evaluated the statement at all. A tree
branch counts every row whose path passes through it (`"1"` and `"1.2"` for the path `1.2`); a scorecard
characteristic that no bin matched (`0` in the trace) counts for no bin. Both inputs give the same counts for
the same rows (tests/test_hits.py checks it on the example policies).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np

from compiler.info import PolicyInfo
from compiler.lower import opcodes as O
from compiler.lower.arrays import PolicyArrays

EVALUATED = None  # the label of a statement's own count: the rows that evaluated it


def entry_hits(name: str, labels: str, kind: str) -> list[str]:
    """The item labels one trace entry of a statement of this kind stands for."""
    if not labels or labels == "-":
        return []
    if kind == "scorecard":
        return [f"{position}.{bin_}" for position, bin_ in enumerate(labels.split(","), start=1) if bin_ != "0"]
    if kind == "tree":
        steps = labels.split(".")
        return [".".join(steps[: depth + 1]) for depth in range(len(steps))]
    return list(dict.fromkeys(labels.split(",")))


def hits_from_trace(entries: Mapping[str, int], info: PolicyInfo) -> Counter:
    """Counts from trace entries and how many rows gave each (an entry's statement unknown to `info` counts as
    evaluated only)."""
    counts: Counter = Counter()
    for entry, rows in entries.items():
        name, _, labels = entry.partition(":")
        counts[(name, EVALUATED)] += rows
        statement = info.statement(name)
        if statement is None:
            continue
        for label in entry_hits(name, labels, statement.kind):
            counts[(name, label)] += rows
    return counts


def hits_from_events(arrays: PolicyArrays, leaf_events: np.ndarray, statement_events: np.ndarray) -> Counter:
    """Counts from the kernel's event counts: `statement_events[s]` rows evaluated statement s, and
    `leaf_events[leaf]` rows reached that leaf (a rule or table row that did not fire leaves no event)."""
    counts: Counter = Counter()
    for statement in np.flatnonzero(statement_events):
        name = arrays.strings[int(arrays.stmt_name[statement])]
        counts[(name, EVALUATED)] += int(statement_events[statement])
    for statement in range(len(arrays.stmt_kind)):
        kind = int(arrays.stmt_kind[statement])
        name = arrays.strings[int(arrays.stmt_name[statement])]
        first_tree = int(arrays.stmt_tree_start[statement])
        for tree in range(first_tree, int(arrays.stmt_tree_end[statement])):
            for leaf in _tree_leaves(arrays, int(arrays.tree_root[tree])):
                rows = int(leaf_events[leaf])
                if rows == 0:
                    continue
                # The text the trace shows for this leaf, as the kernel formats it (_fastpath._format_trace).
                if kind in (O.S_RULES_FIRST, O.S_RULES_ALL, O.S_TREE, O.S_TABLE_FIRST):
                    text = arrays.strings[int(arrays.leaf_label[leaf])]
                else:
                    text = str(int(arrays.leaf_index[leaf]))
                if kind == O.S_SCORECARD:
                    labels = [] if text == "0" else [f"{tree - first_tree + 1}.{text}"]
                elif kind == O.S_TREE:
                    labels = entry_hits(name, text, "tree")
                else:
                    labels = [] if text == "-" else [text]
                for item in labels:
                    counts[(name, item)] += rows
    return counts


def _tree_leaves(arrays: PolicyArrays, root: int) -> list[int]:
    leaves: set[int] = set()
    pending, seen = [root], set()
    while pending:
        node = pending.pop()
        if node in seen:
            continue
        seen.add(node)
        leaf = int(arrays.node_leaf[node])
        if leaf >= 0:
            leaves.add(leaf)
        else:
            pending += [int(arrays.node_true[node]), int(arrays.node_false[node]), int(arrays.node_missing[node])]
    return sorted(leaves)
