"""A back-test: one policy (and with `against`, the version it would replace) over one data source, batch by
batch, into aggregates.

Input: a compiled `Policy` (or a policy file's path), optionally a second one to compare with, data paths or an
open `DataSource`, and the options of `evaluate_batch` (as_of — a date or a column —, lists, threads). Output: a
`SimulationResult` holding the merged `Aggregate`s, their `metrics`, the comparison (`compare.comparison`) when
there are two versions, and what the run read (files, rows, the query), with `to_json()`.

Each batch is read once and evaluated by both versions. Memory is bounded by the batch size: each batch's
results are folded into counts and dropped.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from compiler.info import PolicyInfo
from compiler.masking import masked
from compiler.policy import Policy, compile_file
from dsl.errors import DecideError
from simulations import preflight
from simulations.aggregates import Aggregate
from simulations.compare import SAMPLE_ROWS, Swaps, comparison, outcomes, swapped_rows
from simulations.data import DEFAULT_BATCH_ROWS, DataSource, SimulationError, open_data
from simulations.fairness import fair_lending, moved_ratios
from simulations.kinds import counting, kind_figures
from simulations.stability import stability

MAX_SEGMENT_VALUES = 1_000


@dataclass
class VersionResult:
    """One version's figures in a back-test."""

    policy: str
    content_hash: str
    kind: str
    aggregate: Aggregate
    bad: str | None = None
    segments: dict[str, dict[Any, Aggregate]] = field(default_factory=dict)
    info: PolicyInfo | None = field(default=None, repr=False)  # the policy's statements, for the hit counts
    protected: dict[str, dict[Any, Aggregate]] = field(default_factory=dict)
    policy_object: Policy | None = field(default=None, repr=False)  # which outputs play which part (kinds.py)

    @cached_property
    def metrics(self) -> dict[str, Any]:
        """The figures (computed once: the summary, the JSON, the report and the comparison all read them)."""
        figures = self.aggregate.metrics(self.kind, self.bad, self.info)
        if self.policy_object is not None:
            event = figures["label"]["bad_value"] if "label" in figures else None
            specific = kind_figures(self.policy_object, self.aggregate, event)
            if specific is not None:
                figures[self.kind] = specific
        if self.protected:
            figures["fair_lending"] = fair_lending(self.kind, self.protected)
        if self.segments:
            figures["segments"] = {
                column: [
                    {"value": value, **aggregate.metrics(self.kind, self.bad, self.info)}
                    for value, aggregate in sorted(by_value.items(), key=lambda item: (item[0] is None, str(item[0])))
                ]
                for column, by_value in self.segments.items()
            }
        return figures


@dataclass
class SimulationResult(VersionResult):
    """What a back-test measured, and on what: the policy's figures, and with `against` the other version's and
    the comparison of the two."""

    files: list[dict[str, Any]] = field(default_factory=list)  # path, bytes, sha256 of each data file read
    query: str = ""
    batches: int = 0
    partial: bool = False  # stopped before the data ended (Ctrl-C): the figures cover the rows read
    options: dict[str, Any] = field(default_factory=dict)
    against: VersionResult | None = None
    swaps: Swaps | None = None
    stability: dict[str, Any] | None = None  # with a baseline: PSI of every input and output (stability.py)

    @cached_property
    def comparison(self) -> dict[str, Any] | None:
        if self.against is None or self.swaps is None:
            return None
        mine, theirs = self.metrics, self.against.metrics
        bad = mine["label"]["bad_value"] if "label" in mine else None  # as found, when --bad was not given
        body = comparison(self.swaps, theirs, mine, bad)
        if "fair_lending" in mine and "fair_lending" in theirs:
            body["fair_lending"] = moved_ratios(theirs["fair_lending"], mine["fair_lending"])
        return body

    def to_html(self, engine: str = "") -> str:
        """The report: one self-contained HTML page (simulations/report.py)."""
        from simulations.report import render_html  # matplotlib is loaded only for a report

        return render_html(self, engine)

    def to_json(self) -> dict[str, Any]:
        body = {
            "policy": {"name": self.policy, "content_hash": self.content_hash, "kind": self.kind},
            "data": {"files": self.files, "query": self.query, "batches": self.batches},
            "options": self.options,
            "partial": self.partial,
            "metrics": self.metrics,
        }
        if self.against is not None:
            body["against"] = {
                "policy": {"name": self.against.policy, "content_hash": self.against.content_hash},
                "metrics": self.against.metrics,
            }
            body["comparison"] = self.comparison
        if self.stability is not None:
            body["stability"] = self.stability
        return body


@dataclass
class _Side:
    """One version being replayed: its compiled policy, its prepared lists and what it has counted so far."""

    policy: Policy
    prepared: Any
    label: str | None
    segments: Sequence[str]  # every column counted per value: the --segment ones, then the --protected ones
    money: tuple[str | None, str | None] = (None, None)  # the offer revenue and cost columns, if any
    total: Aggregate = field(init=False)
    by_segment: dict[str, dict[Any, Aggregate]] = field(init=False)

    def __post_init__(self) -> None:
        self.outputs = tuple(item.name for item in self.policy.outputs)
        self.inputs = {item.name for item in self.policy.inputs}
        self.joints, self.offers = counting(self.policy)
        self.total = Aggregate(self.outputs, label=self.label)
        self.by_segment = {column: {} for column in self.segments}

    def evaluate(self, batch: pa.RecordBatch, number: int, **options: Any) -> tuple[pa.Table, Aggregate, dict]:
        """This batch's results, its aggregate and its segments' aggregates (nothing is counted yet)."""
        hits: Counter = Counter()
        try:
            results = self.policy.evaluate_batch(batch, lists=self.prepared, ignore_extra=True, hits=hits, **options)
        except DecideError as exc:  # the whole batch refused (a column of the wrong type, an as_of column)
            raise SimulationError(f"batch {number}: {self.policy.name}: {exc}") from None
        counted = Aggregate.of(results, self.outputs, self.inputs, self.label, hits, self.joints, self.offers,
                               self.money)  # fmt: skip
        counting_options = (self.outputs, self.inputs, self.label, self.joints, self.offers, self.money)
        per_segment = {column: _segment_aggregates(column, results, *counting_options) for column in self.segments}
        return results, counted, per_segment

    def result(self, bad: str | None, protected: Sequence[str]) -> VersionResult:
        policy = self.policy
        segments = {column: parts for column, parts in self.by_segment.items() if column not in protected}
        groups = {column: parts for column, parts in self.by_segment.items() if column in protected}
        return VersionResult(
            policy.name, policy.content_hash, policy.kind, self.total, bad, segments, policy.info, groups, policy
        )


def run(
    policy: Policy | str | Path,
    data: DataSource | Sequence[str | Path],
    *,
    against: Policy | str | Path | None = None,
    compare_on: str | None = None,
    query: str | None = None,
    as_of: _dt.date | str | None = None,
    lists: Mapping[str, Iterable[Any]] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    threads: int | None = None,
    label: str | None = None,
    bad: str | None = None,
    segments: Sequence[str] = (),
    protected: Sequence[str] = (),
    baseline: Sequence[str | Path] | None = None,
    offer_revenue: str | None = None,
    offer_cost: str | None = None,
    decisions: str | Path | None = None,
    ids: Sequence[str] | None = None,
    engine: str = "local",
    on_batch: Callable[[int], None] | None = None,
    stop_on_interrupt: bool = False,
) -> SimulationResult:
    """Replay `policy` over `data` (mapped by `query`) and measure it: with `against`, the version it would
    replace, on the same rows, compared on the output `compare_on` (default `decision`, else the first output
    both have); with `label`, against the observed outcome in that column (`bad`: its value that means bad);
    with `segments`, every figure also per value of each of those columns; with `protected` (columns that are not
    policy inputs, e.g. a race or age-band column), the favourable-outcome rate of each group and its adverse
    impact ratio; with `baseline` (data paths, mapped by the same query), the population stability index of
    every input and output between the baseline and this data. Label, segment and protected columns are copied
    beside the results; the policies never read them. `engine="spark"` evaluates on Spark (spark_engine.py): the
    same figures, exactly, for data that outgrows one machine. `decisions` writes every row's decision (its
    outputs, reasons and error, after its `ids` columns: by default the policy's `key` input) to a Parquet file,
    which appears only once complete (`NAME.partial.parquet` after an interrupt). `on_batch(rows)` is called
    after each batch with the rows it held (a progress bar). With `stop_on_interrupt`, Ctrl-C ends the run after
    the batch in progress and the result is marked `partial`."""
    policy = policy if isinstance(policy, Policy) else _compiled(policy)
    other = None if against is None else (against if isinstance(against, Policy) else _compiled(against))
    if engine not in ("local", "spark"):
        raise SimulationError(f"unknown engine {engine!r} (local or spark)")
    if engine == "spark" and (baseline is not None or decisions is not None):
        raise SimulationError(
            "--baseline and --decisions are not available with --engine spark yet: run them on the local engine"
        )
    spark_engine = None
    if engine == "spark":
        from simulations import spark_engine

        source = spark_engine.open_data(data, query, batch_rows)
    else:
        source = data if isinstance(data, DataSource) else open_data(data, query, batch_rows)
    counted_by = list(dict.fromkeys([*segments, *protected]))
    money = [name for name in (offer_revenue, offer_cost) if name]
    id_columns = list(ids) if ids is not None else ([policy.key_field] if policy.key_field else [])
    carried = list(dict.fromkeys([*id_columns, *([label] if label else []), *counted_by, *money]))
    batches = 0
    partial = False
    try:
        fingerprints = [_fingerprint(path) for path in source.files]  # before reading: what this run read
        versions = [version for version in (policy, other) if version is not None]
        for version in versions:
            preflight.check(version, source)
        missing = [column for column in carried if column not in source.schema.names]
        if missing:
            raise SimulationError(
                f"the data has no column {missing[0]} (a --label, --segment, --protected or --offer-… column; it has: "
                + ", ".join(source.schema.names)
                + ")"
            )
        for version in versions:
            read = sorted(set(protected) & {item.name for item in version.inputs})
            if read:
                raise SimulationError(
                    f"{read[0]} is an input of {version.name}: a protected column must not reach the policy "
                    "(fair-lending figures compare groups the policy cannot see)"
                )
        sides = [
            _Side(version, _prepared_lists(version, lists), label, counted_by, (offer_revenue, offer_cost))
            for version in versions
        ]
        output = _compared_output(policy, other, compare_on) if other is not None else None
        swaps = Swaps(output, label) if output is not None else None
        options = {"as_of": as_of, "threads": threads, "passthrough": carried}
        # Everything counted so far, in one tuple: each batch replaces it in one assignment, so an interrupt
        # leaves a batch counted everywhere or nowhere.
        state = initial_state(sides, swaps)
        try:
            if spark_engine is not None:
                state = spark_engine.fold_partitions(source, sides, state, options, output, label, as_of)
            else:
                decision_file = _DecisionFile(decisions, id_columns)
                with decision_file as sink:
                    try:
                        for batch in source.batches():
                            state = fold(sides, state, batch, options, output, label, as_of, sink)
                            if on_batch is not None:
                                on_batch(batch.num_rows)
                    except KeyboardInterrupt:
                        decision_file.partial = True
                        raise
        except KeyboardInterrupt:
            if not stop_on_interrupt:
                raise
            partial = True
        totals, segmented, swaps, batches = state
        if totals[0].rows == 0 and not partial:
            raise SimulationError(
                "the data has no rows"
                + (" after the mapping query" if source.query != "SELECT * FROM data" else "")
                + ": there is nothing to back-test"
            )
        for side, total, parts in zip(sides, totals, segmented, strict=True):
            side.total, side.by_segment = total, parts
        shifted = None
        if baseline is not None and not partial:
            shifted = _stability(policy, baseline, source, sides[0].total, as_of, lists, threads)
    finally:
        if not isinstance(data, DataSource):
            source.close()
    main = sides[0].result(bad, protected)
    result = SimulationResult(
        main.policy,
        main.content_hash,
        main.kind,
        main.aggregate,
        bad,
        main.segments,
        main.info,
        main.protected,
        main.policy_object,
        files=fingerprints,
        query=source.query,
        batches=batches,
        partial=partial,
        options={
            "as_of": str(as_of) if as_of is not None else None,
            "batch_rows": source.batch_rows,
            "label": label,
            "segments": list(segments),
            "protected": list(protected),
            "compare_on": output,
            "baseline": [str(path) for path in baseline] if baseline is not None else None,
        },
        against=sides[1].result(bad, protected) if other is not None else None,
        swaps=swaps,
        stability=shifted,
    )
    result.metrics  # noqa: B018 — a label that is not one (three values, no bad value) is refused now, not later
    return result


class _DecisionFile:
    """Every row's decision, batch by batch, into a Parquet file that appears under its name only once complete
    (written beside it under a temporary name, then renamed; after an interrupt it is kept as NAME.partial.parquet,
    and after an error removed)."""

    def __init__(self, path: str | Path | None, ids: Sequence[str]) -> None:
        self.path = Path(path) if path is not None else None
        self.ids = list(ids)
        self.writer: Any = None
        self.partial = False

    def __enter__(self) -> Callable[[pa.Table], None] | None:
        return self if self.path is not None else None

    def __call__(self, results: pa.Table) -> None:
        import pyarrow.parquet as pq

        assert self.path is not None
        shown = results.select([*self.ids, *[name for name in results.column_names if name not in self.ids]])
        if self.writer is None:
            try:
                self.writer = pq.ParquetWriter(self._temporary, shown.schema)
            except OSError as exc:
                raise SimulationError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self.writer.write_table(shown)

    @property
    def _temporary(self) -> Path:
        assert self.path is not None
        return self.path.with_name(f".{self.path.name}.writing")

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if self.path is None:
            return
        if self.writer is not None:
            self.writer.close()
        if kind is None:
            if self.writer is None:  # no batch: an empty dataset is refused later; nothing to write
                return
            self._temporary.replace(self.path)
        elif self.partial and self.writer is not None:
            self._temporary.replace(self.path.with_name(self.path.stem + ".partial.parquet"))
        else:
            self._temporary.unlink(missing_ok=True)


State = tuple  # (each side's Aggregate, each side's segments, the Swaps or None, batches counted)


def initial_state(sides: Sequence[_Side], swaps: Swaps | None) -> State:
    return ([side.total for side in sides], [side.by_segment for side in sides], swaps, 0)


def fold(
    sides: Sequence[_Side], state: State, batch: pa.RecordBatch, options: Mapping[str, Any], output: str | None,
    label: str | None, as_of: Any, sink: Callable[[pa.Table], None] | None = None,
) -> State:  # fmt: skip
    """The state with one more batch counted by every side (and compared, with two). A new tuple: an interrupt
    while this runs leaves the batch counted everywhere or nowhere. `sink` receives the policy's results."""
    totals, segmented, swaps, batches = state
    evaluated = [side.evaluate(batch, batches + 1, **options) for side in sides]
    if sink is not None:
        sink(evaluated[0][0])
    if swaps is not None:
        (new, _, _), (old, _, _) = evaluated
        before, after = outcomes(old, output, sides[1].inputs), outcomes(new, output, sides[0].inputs)
        batch_swaps = Swaps.of(output, label, before, after, new)
        room = SAMPLE_ROWS - len(swaps.sample)
        if room > 0:
            batch_swaps.sample = _sample(sides, batch, swapped_rows(before, after), as_of, room)
        swaps = swaps.merge(batch_swaps)
    return (
        [total.merge(counted) for total, (_, counted, _) in zip(totals, evaluated, strict=True)],
        [_merged(parts, per) for parts, (_, _, per) in zip(segmented, evaluated, strict=True)],
        swaps,
        batches + 1,
    )


def merge_states(first: State, then: State) -> State:
    """Two states of consecutive parts of the data (Spark partitions, in order) as one."""
    return (
        [a.merge(b) for a, b in zip(first[0], then[0], strict=True)],
        [_merged(a, b) for a, b in zip(first[1], then[1], strict=True)],
        first[2].merge(then[2]) if first[2] is not None else None,
        first[3] + then[3],
    )


def _stability(
    policy: Policy, baseline: Sequence[str | Path], source: DataSource, actual: Aggregate, as_of: Any, lists: Any,
    threads: int | None,
) -> dict[str, Any]:  # fmt: skip
    """The policy replayed over the baseline (same query), then the PSI of its inputs and outputs."""
    expected = run(policy, list(baseline), query=source.query, as_of=as_of, lists=lists, batch_rows=source.batch_rows,
                   threads=threads)  # fmt: skip
    reference = open_data(list(baseline), source.query, source.batch_rows)
    try:
        figures = stability(policy, reference, source, expected.aggregate, actual)
    finally:
        reference.close()
    figures["baseline"] = {"files": expected.files, "rows": expected.aggregate.rows}
    return figures


def _prepared_lists(policy: Policy, lists: Mapping[str, Iterable[Any]] | None) -> Any:
    unsupplied = [name for name in policy.store_lists if name not in (lists or {})]
    if unsupplied:
        raise SimulationError(
            f"the policy reads the list(s) {', '.join(unsupplied)}: supply each with --list NAME=FILE "
            "(an empty file is an empty list)"
        )
    try:
        return policy.prepare_lists({name: members for name, members in (lists or {}).items()
                                     if name in policy.store_lists})  # fmt: skip
    except DecideError as exc:
        raise SimulationError(f"the lists cannot be used: {getattr(exc, 'message', exc)}") from None


def _compared_output(policy: Policy, other: Policy, chosen: str | None) -> str:
    mine = [item.name for item in policy.outputs]
    theirs = {item.name for item in other.outputs}
    shared = [name for name in mine if name in theirs]
    if chosen is not None:
        if chosen not in shared:
            listed = ", ".join(shared) or "none"
            raise SimulationError(f"both versions must have the output {chosen!r} to compare on it (shared: {listed})")
        return chosen
    if not shared:
        raise SimulationError(f"{policy.name} and {other.name} have no output in common to compare")
    return "decision" if "decision" in shared else shared[0]


def _sample(
    sides: list[_Side], batch: pa.RecordBatch, positions: list[int], as_of: Any, room: int
) -> list[dict[str, Any]]:
    """The first `room` of the batch's swapped rows (`positions`), each with both decisions and traces."""
    personal = {item.name for side in sides for item in side.policy.inputs if item.pii}
    names = dict.fromkeys(item.name for side in sides for item in side.policy.inputs)  # in the policies' order
    sample = []
    for position in positions[:room]:
        row = batch.slice(position, 1).to_pylist()[0]
        when = row.get(as_of) if isinstance(as_of, str) and as_of in row else as_of
        record = {name: row[name] for name in names if name in row}
        sample.append(
            {
                "input": masked(record, personal),
                "after": _explained(sides[0], record, when),
                "before": _explained(sides[1], record, when),
            }
        )
    return sample


def _explained(side: _Side, record: dict[str, Any], as_of: Any) -> dict[str, Any]:
    mine = {name: value for name, value in record.items() if name in side.inputs}
    try:
        decided = side.policy.evaluate(mine, as_of=as_of, lists=side.prepared, trace=True)
    except DecideError as exc:
        return {"error": str(exc)}
    return {"outputs": decided["outputs"], "trace": decided["trace"]}


def _segment_aggregates(
    column: str,
    results: Any,
    outputs: tuple[str, ...],
    inputs: set[str],
    label: str | None,
    joints: Sequence[tuple[str, str]] = (),
    offers: str | None = None,
    money: tuple[str | None, str | None] = (None, None),
) -> dict[Any, Aggregate]:
    values = results.column(column)
    distinct = pc.unique(values).to_pylist()
    _check_segment_values(column, len(distinct))  # before an aggregate is made for each
    parts = {}
    for value in distinct:
        mask = pc.is_null(values) if value is None else pc.fill_null(pc.equal(values, value), False)
        parts[value] = Aggregate.of(results.filter(mask), outputs, inputs, label, None, joints, offers, money)
    return parts


def _merged(
    by_segment: dict[str, dict[Any, Aggregate]], batch: dict[str, dict[Any, Aggregate]]
) -> dict[str, dict[Any, Aggregate]]:
    merged = {}
    for column, parts in by_segment.items():
        combined = dict(parts)
        for value, part in batch.get(column, {}).items():
            combined[value] = combined[value].merge(part) if value in combined else part
        _check_segment_values(column, len(combined))
        merged[column] = combined
    return merged


def _check_segment_values(column: str, count: int) -> None:
    if count > MAX_SEGMENT_VALUES:
        raise SimulationError(
            f"the segment column {column} has more than {MAX_SEGMENT_VALUES} values: segment by a coarser column"
        )


def _fingerprint(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise SimulationError(f"cannot read the data file {path}: {exc.strerror}") from None
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _compiled(path: str | Path) -> Policy:
    try:
        return compile_file(path)
    except DecideError as exc:
        raise SimulationError(str(exc)) from None
