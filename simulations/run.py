"""A back-test: one policy over one data source, batch by batch, into one aggregate.

Input: a compiled `Policy` (or a policy file's path), data paths or an open `DataSource`, and the options of
`evaluate_batch` (as_of — a date or a column —, lists, threads). Output: a `SimulationResult` holding the merged
`Aggregate`, its `metrics()`, and what the run read (files, rows, the query), with `to_json()`.

Memory is bounded by the batch size: each batch's results are folded into counts and dropped.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.policy import Policy, compile_file
from dsl.errors import DecideError
from simulations import preflight
from simulations.aggregates import Aggregate
from simulations.data import DEFAULT_BATCH_ROWS, DataSource, SimulationError, open_data


@dataclass
class SimulationResult:
    """What a back-test measured, and on what."""

    policy: str
    content_hash: str
    aggregate: Aggregate
    files: list[str]
    query: str
    batches: int
    partial: bool = False  # stopped before the data ended (Ctrl-C): the figures cover the rows read
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.aggregate.metrics()

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": {"name": self.policy, "content_hash": self.content_hash},
            "data": {"files": self.files, "query": self.query, "batches": self.batches},
            "options": self.options,
            "partial": self.partial,
            "metrics": self.metrics,
        }


def run(
    policy: Policy | str | Path,
    data: DataSource | Sequence[str | Path],
    *,
    query: str | None = None,
    as_of: _dt.date | str | None = None,
    lists: Mapping[str, Iterable[Any]] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    threads: int | None = None,
) -> SimulationResult:
    """Replay `policy` over `data` (mapped by `query`) and measure it."""
    if not isinstance(policy, Policy):
        policy = _compiled(policy)
    source = data if isinstance(data, DataSource) else open_data(data, query, batch_rows)
    outputs = tuple(item.name for item in policy.outputs)
    inputs = {item.name for item in policy.inputs}
    total = Aggregate(outputs)
    batches = 0
    try:
        preflight.check(policy, source)
        try:
            prepared = policy.prepare_lists(lists or {})
        except DecideError as exc:
            raise SimulationError(f"{exc} (pass --list NAME=FILE)") from None
        for batch in source.batches():
            try:
                results = policy.evaluate_batch(batch, as_of=as_of, lists=prepared, ignore_extra=True, threads=threads)
            except DecideError as exc:  # the whole batch refused (a column of the wrong type, an as_of column)
                raise SimulationError(f"batch {batches + 1}: {exc}") from None
            total = total.merge(Aggregate.of(results, outputs, inputs))
            batches += 1
    finally:
        if not isinstance(data, DataSource):
            source.close()
    return SimulationResult(
        policy.name,
        policy.content_hash,
        total,
        [str(path) for path in source.files],
        source.query,
        batches,
        options={"as_of": str(as_of) if as_of is not None else None, "batch_rows": source.batch_rows},
    )


def _compiled(path: str | Path) -> Policy:
    try:
        return compile_file(path)
    except DecideError as exc:
        raise SimulationError(str(exc)) from None
