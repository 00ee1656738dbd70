"""Pass: decisions that leave some inputs unhandled (warnings), each with an example input.

Input: a type-correct `Analysis`. Output: `table_gap` for a `first` or
`unique` table where some input matches no row (its columns are then
missing), `tree_gap` for a tree level without `otherwise` that some input
falls through, and `scorecard_gap` for a characteristic whose bins do not
cover every value (such a value scores 0 points). The example is a point of
the exact uncovered set.
"""

from __future__ import annotations

from compiler.check.analysis import Analysis
from compiler.check.conditions import Conditions, tree_levels
from compiler.check.domains import Box, Space, TooComplex, sample_box, subtract_all
from compiler.check.fold_constants import show_value
from dsl import ast


def find_gaps(analysis: Analysis) -> None:
    conditions = Conditions(analysis)
    for statement in analysis.policy.statements:
        try:
            if isinstance(statement, ast.Table) and statement.hit in ("first", "unique"):
                _table_gap(analysis, conditions, statement)
            elif isinstance(statement, ast.Tree):
                _tree_gaps(analysis, conditions, statement)
            elif isinstance(statement, ast.Scorecard):
                _scorecard_gaps(analysis, conditions, statement)
        except TooComplex:
            continue


def describe_point(space: Space, box: Box) -> str:
    """An example input of a box, e.g. `score = 579, channel = "online", income > debt is false`."""
    parts = []
    for key, label, value in sample_box(space, box):
        if key.startswith("atom:"):
            parts.append(f"{label} is {show_value(value)}")
        else:
            parts.append(f"{label} = {show_value(value)}")
    return ", ".join(parts) or "any input"


def _full_box(conditions: Conditions, subjects) -> Box:
    box: Box = {}
    for subject in subjects:
        dimension = conditions.dimension(subject)
        if dimension is not None:
            box[dimension[0]] = conditions.space.universe[dimension[0]]
    return box


def _table_gap(analysis: Analysis, conditions: Conditions, statement: ast.Table) -> None:
    rows = [conditions.row_truth(row.tests, statement.inputs) for row in statement.rows]
    uncovered = subtract_all(conditions.space, [_full_box(conditions, statement.inputs)], [b for r in rows for b in r])
    if uncovered:
        example = describe_point(conditions.space, uncovered[0])
        analysis.warning(
            "table_gap",
            f"no row of table '{statement.name}' matches some inputs, e.g. {example}; "
            "its results are then missing (add a last row of - to catch them)",
            statement.name_span,
        )


def _tree_gaps(analysis: Analysis, conditions: Conditions, statement: ast.Tree) -> None:
    for branch, path, _, uncovered in tree_levels(conditions, statement.branches):
        if branch is not None or not uncovered:
            continue
        where = f"branch {'.'.join(str(n) for n in path)}" if path else "the top level"
        level_span = statement.name_span
        if path:
            node = statement.branches[path[0] - 1]
            for number in path[1:]:
                node = [b for b in node.body if isinstance(b, ast.Branch)][number - 1]
            level_span = node.span
        analysis.warning(
            "tree_gap",
            f"in tree '{statement.name}', {where} has no branch for some inputs, "
            f"e.g. {describe_point(conditions.space, uncovered[0])}; nothing happens for them "
            "(add otherwise: to handle them)",
            level_span,
        )


def _scorecard_gaps(analysis: Analysis, conditions: Conditions, statement: ast.Scorecard) -> None:
    for characteristic in statement.characteristics:
        bins = [b for bin_ in characteristic.bins for b in conditions.test_truth(bin_.test, characteristic.expr)]
        full = _full_box(conditions, [characteristic.expr])
        uncovered = subtract_all(conditions.space, [full], bins)
        if uncovered:
            label = f'"{characteristic.label}"' if characteristic.label else "this characteristic"
            analysis.warning(
                "scorecard_gap",
                f"the bins of {label} do not cover every value, e.g. {describe_point(conditions.space, uncovered[0])}, "
                "which scores 0 points (add an otherwise bin)",
                characteristic.span,
            )
