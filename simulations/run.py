"""A back-test: one policy over one data source, batch by batch, into one aggregate.

Input: a compiled `Policy` (or a policy file's path), data paths or an open `DataSource`, and the options of
`evaluate_batch` (as_of — a date or a column —, lists, threads). Output: a `SimulationResult` holding the merged
`Aggregate`, its `metrics()`, and what the run read (files, rows, the query), with `to_json()`.

Memory is bounded by the batch size: each batch's results are folded into counts and dropped.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from compiler.info import PolicyInfo
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
    kind: str
    aggregate: Aggregate
    files: list[str]
    query: str
    batches: int
    partial: bool = False  # stopped before the data ended (Ctrl-C): the figures cover the rows read
    options: dict[str, Any] = field(default_factory=dict)
    bad: str | None = None
    segments: dict[str, dict[Any, Aggregate]] = field(default_factory=dict)
    info: PolicyInfo | None = field(default=None, repr=False)  # the policy's statements, for the hit counts

    @property
    def metrics(self) -> dict[str, Any]:
        figures = self.aggregate.metrics(self.kind, self.bad, self.info)
        if self.segments:
            figures["segments"] = {
                column: [
                    {"value": value, **aggregate.metrics(self.kind, self.bad, self.info)}
                    for value, aggregate in sorted(by_value.items(), key=lambda item: (item[0] is None, str(item[0])))
                ]
                for column, by_value in self.segments.items()
            }
        return figures

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
    label: str | None = None,
    bad: str | None = None,
    segments: Sequence[str] = (),
    on_batch: Callable[[int], None] | None = None,
    stop_on_interrupt: bool = False,
) -> SimulationResult:
    """Replay `policy` over `data` (mapped by `query`) and measure it: with `label`, against the observed outcome
    in that column (`bad`: its value that means bad); with `segments`, every figure also per value of each of
    those columns. Label and segment columns are copied beside the results; the policy never reads them.
    `on_batch(rows)` is called after each batch with the rows it held (a progress bar). With `stop_on_interrupt`,
    Ctrl-C ends the run after the batch in progress and the result is marked `partial`."""
    if not isinstance(policy, Policy):
        policy = _compiled(policy)
    source = data if isinstance(data, DataSource) else open_data(data, query, batch_rows)
    outputs = tuple(item.name for item in policy.outputs)
    inputs = {item.name for item in policy.inputs}
    total = Aggregate(outputs, label=label)
    by_segment: dict[str, dict[Any, Aggregate]] = {column: {} for column in segments}
    carried = list(dict.fromkeys([*([label] if label else []), *segments]))
    batches = 0
    partial = False
    try:
        preflight.check(policy, source)
        missing = [column for column in carried if column not in source.schema.names]
        if missing:
            raise SimulationError(
                f"the data has no column {missing[0]} (for --label / --segment; columns: "
                + ", ".join(source.schema.names)
                + ")"
            )
        unsupplied = [name for name in policy.store_lists if name not in (lists or {})]
        if unsupplied:
            raise SimulationError(
                f"the policy reads the list(s) {', '.join(unsupplied)}: supply each with --list NAME=FILE "
                "(an empty file is an empty list)"
            )
        try:
            prepared = policy.prepare_lists(lists or {})
        except DecideError as exc:
            raise SimulationError(f"the lists cannot be used: {getattr(exc, 'message', exc)}") from None
        try:
            for batch in source.batches():
                batch_hits: Counter = Counter()
                try:
                    results = policy.evaluate_batch(
                        batch,
                        as_of=as_of,
                        lists=prepared,
                        ignore_extra=True,
                        threads=threads,
                        passthrough=carried,
                        hits=batch_hits,
                    )
                except DecideError as exc:  # the whole batch refused (a column of the wrong type, an as_of column)
                    raise SimulationError(f"batch {batches + 1}: {exc}") from None
                counted = Aggregate.of(results, outputs, inputs, label, batch_hits)
                per_segment = {
                    column: _segment_aggregates(column, results, outputs, inputs, label) for column in segments
                }
                # One assignment for the batch: an interrupt leaves it all counted or not at all.
                total, by_segment, batches = total.merge(counted), _merged(by_segment, per_segment), batches + 1
                if on_batch is not None:
                    on_batch(batch.num_rows)
        except KeyboardInterrupt:
            if not stop_on_interrupt:
                raise
            partial = True
    finally:
        if not isinstance(data, DataSource):
            source.close()
    result = SimulationResult(
        policy.name,
        policy.content_hash,
        policy.kind,
        total,
        [str(path) for path in source.files],
        source.query,
        batches,
        partial,
        options={
            "as_of": str(as_of) if as_of is not None else None,
            "batch_rows": source.batch_rows,
            "label": label,
            "segments": list(segments),
        },
        bad=bad,
        segments=by_segment,
        info=policy.info,
    )
    result.metrics  # noqa: B018 — a label that is not one (three values, no bad value) is refused now, not later
    return result


MAX_SEGMENT_VALUES = 1_000


def _segment_aggregates(
    column: str, results: Any, outputs: tuple[str, ...], inputs: set[str], label: str | None
) -> dict[Any, Aggregate]:
    values = results.column(column)
    distinct = pc.unique(values).to_pylist()
    if len(distinct) > MAX_SEGMENT_VALUES:
        raise SimulationError(
            f"the segment column {column} has more than {MAX_SEGMENT_VALUES} values: segment by a coarser column"
        )
    parts = {}
    for value in distinct:
        mask = pc.is_null(values) if value is None else pc.fill_null(pc.equal(values, value), False)
        parts[value] = Aggregate.of(results.filter(mask), outputs, inputs, label)
    return parts


def _merged(
    by_segment: dict[str, dict[Any, Aggregate]], batch: dict[str, dict[Any, Aggregate]]
) -> dict[str, dict[Any, Aggregate]]:
    merged = {}
    for column, parts in by_segment.items():
        combined = dict(parts)
        for value, part in batch.get(column, {}).items():
            combined[value] = combined[value].merge(part) if value in combined else part
        if len(combined) > MAX_SEGMENT_VALUES:
            raise SimulationError(
                f"the segment column {column} has more than {MAX_SEGMENT_VALUES} values: segment by a coarser column"
            )
        merged[column] = combined
    return merged


def _compiled(path: str | Path) -> Policy:
    try:
        return compile_file(path)
    except DecideError as exc:
        raise SimulationError(str(exc)) from None
