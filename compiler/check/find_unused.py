"""Passes: inputs never read and outputs never assigned (warnings).

Input: `Analysis` after `resolve_names` and `check_types`.
Output: an `unused_input` warning at each input no expression reads, and an
`unassigned_output` warning at each output no action assigns.
"""

from __future__ import annotations

from compiler.check.analysis import Analysis


def find_unused_inputs(analysis: Analysis) -> None:
    for symbol in analysis.inputs:
        field = symbol.field
        if not symbol.used and field is not None and not field.key:
            analysis.warning("unused_input", f"input '{symbol.name}' is never used", symbol.span)


def find_unassigned_outputs(analysis: Analysis) -> None:
    for symbol in analysis.outputs:
        if not symbol.assigned:
            analysis.warning(
                "unassigned_output",
                f"output '{symbol.name}' is never assigned; it always keeps its starting value",
                symbol.span,
            )
