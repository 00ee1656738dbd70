"""Pass: two rows of a `unique` table that can match the same input (an error), with that input.

Input: a type-correct `Analysis`. Output: a `unique_overlap` error at the
later row naming both rows and an example input. Only overlaps that are
certain are errors: where the overlap depends on a test the checker cannot
reason about exactly (comparing two columns, a function call), it is a
`unique_may_overlap` warning instead.
"""

from __future__ import annotations

from compiler.check.analysis import Analysis
from compiler.check.conditions import Conditions
from compiler.check.domains import TooComplex, intersect_unions
from compiler.check.find_gaps import describe_point
from dsl import ast

MAX_OVERLAPS_PER_TABLE = 10


def check_unique_overlap(analysis: Analysis) -> None:
    conditions = Conditions(analysis)
    for statement in analysis.policy.statements:
        if not isinstance(statement, ast.Table) or statement.hit != "unique":
            continue
        try:
            _table(analysis, conditions, statement)
        except TooComplex:
            continue


def _table(analysis: Analysis, conditions: Conditions, statement: ast.Table) -> None:
    rows = [conditions.row_truth(row.tests, statement.inputs) for row in statement.rows]
    reported = 0
    for later in range(len(rows)):
        for earlier in range(later):
            overlap = intersect_unions(conditions.space, rows[earlier], rows[later])
            if not overlap:
                continue
            certain = [box for box in overlap if not any(key.startswith("atom:") for key in box)]
            row_span = statement.rows[later].span
            if certain:
                analysis.error(
                    "unique_overlap",
                    f"rows {earlier + 1} and {later + 1} of unique table '{statement.name}' overlap: both match "
                    f"e.g. {describe_point(conditions.space, certain[0])}",
                    row_span,
                    notes=(f"row {earlier + 1} is at line {statement.rows[earlier].span.line}",),
                )
            else:
                analysis.warning(
                    "unique_may_overlap",
                    f"rows {earlier + 1} and {later + 1} of unique table '{statement.name}' may both match the same "
                    "input (they use tests the checker cannot compare exactly)",
                    row_span,
                )
            reported += 1
            if reported >= MAX_OVERLAPS_PER_TABLE:
                return
