"""The checks before a back-test reads its data: do the mapped columns fit the policy's inputs?

Input: a compiled `Policy` and a `DataSource` (its schema and first rows). Output: nothing when they fit; else a
`SimulationError` listing every problem at once — each required input no column supplies, and each column whose
type cannot hold the input's (column, expected, found, a few example values) — so a wrong mapping is one clear
message before the run, not a million row errors after it. Values outside an input's `in` are left to the row
checks, which name the field of every such row.
"""

from __future__ import annotations

import pyarrow as pa

from compiler.policy import Policy
from simulations.data import DataSource, SimulationError

EXAMPLES = 3


def _fits(declared: str, element: str | None, arrow: pa.DataType) -> bool:
    if pa.types.is_null(arrow):  # a column of nulls only: fine for optional inputs, the row checks say the rest
        return True
    if pa.types.is_dictionary(arrow):
        arrow = arrow.value_type
    if declared == "int":
        return pa.types.is_integer(arrow)
    if declared == "number":
        return pa.types.is_integer(arrow) or pa.types.is_floating(arrow) or pa.types.is_decimal(arrow)
    if declared == "bool":
        return pa.types.is_boolean(arrow)
    if declared == "string":
        return pa.types.is_string(arrow) or pa.types.is_large_string(arrow)
    if declared == "date":
        return pa.types.is_date(arrow) or pa.types.is_string(arrow)  # ISO text is accepted, as by `decide run`
    if declared == "list":
        return (pa.types.is_list(arrow) or pa.types.is_large_list(arrow)) and _fits(
            element or "", None, arrow.value_type
        )
    return True  # a type this check does not know: the row checks decide


def check(policy: Policy, source: DataSource) -> None:
    """Raise a SimulationError naming every input the mapped data cannot supply."""
    schema = source.schema
    columns = {name: schema.field(name).type for name in schema.names}
    problems: list[str] = []
    mismatched: list[tuple[str, str, pa.DataType]] = []
    for item in policy.inputs:
        arrow = columns.get(item.name)
        if arrow is None:
            if not item.optional and item.default is None:
                problems.append(f"input {item.name} ({item.type}) is required, and no column of the data is named so")
            continue
        if not _fits(item.type, item.element, arrow):
            expected = f"list of {item.element}" if item.type == "list" else item.type
            mismatched.append((item.name, expected, arrow))
    if mismatched:
        head = source.head(200)
        for name, expected, arrow in mismatched:
            examples = [value for value in head.column(name).to_pylist() if value is not None][:EXAMPLES]
            shown = ", ".join(repr(value) for value in examples) or "only nulls"
            problems.append(f"column {name}: the input is {expected}, the data has {arrow} (for example {shown})")
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise SimulationError(f"the data does not fit the policy's inputs (map it with --query):\n{listed}")
