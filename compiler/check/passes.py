"""The checking passes, in the order they run.

Each pass is a function `pass(analysis) -> None` that reads what earlier
passes left in the `Analysis` and appends diagnostics. The reasoning passes
(reachability, coverage, overlap) run only when the policy is otherwise
free of errors, because they rely on every name and type being known.
"""

from __future__ import annotations

from compiler.check.analysis import Analysis
from compiler.check.check_declarations import check_declarations
from compiler.check.check_types import check_types
from compiler.check.check_unique_overlap import check_unique_overlap
from compiler.check.find_gaps import find_gaps
from compiler.check.find_unreachable import find_unreachable
from compiler.check.find_unused import find_unassigned_outputs, find_unused_inputs
from compiler.check.resolve_names import resolve_names

PASSES = (
    ("check_declarations", check_declarations),
    ("resolve_names", resolve_names),
    ("check_types", check_types),
    ("find_unused_inputs", find_unused_inputs),
    ("find_unassigned_outputs", find_unassigned_outputs),
)

# Passes that reason about the values conditions can take; skipped after errors.
REASONING_PASSES = (
    ("find_unreachable", find_unreachable),
    ("find_gaps", find_gaps),
    ("check_unique_overlap", check_unique_overlap),
)


def run_passes(analysis: Analysis) -> Analysis:
    """Run every pass in order; the reasoning passes only if no error was found."""
    for _, check in PASSES:
        check(analysis)
    if not analysis.has_errors:
        for _, check in REASONING_PASSES:
            check(analysis)
    return analysis
