"""Back-tests on Spark (`--engine spark`): the same figures as the local engine, for data that outgrows one
machine.

Input: data paths and the mapping query (run as Spark SQL over the view `data`), and the sides of a run
(`run._Side`: each version's compiled policy and lists). Output: `open_data` gives a `SparkSource` the run checks
like a local one (its Arrow schema and first rows); `fold_partitions` evaluates every partition on the executors
with `mapInArrow` — the compiled policies ship to them (a `Policy` pickles as its source and compiles again
there), each partition's Arrow batches are evaluated by `evaluate_batch` and folded into the run's mergeable
aggregates by `run.fold`, exactly as locally — and merges the partitions' states on the driver in partition
order. Counts merge exactly, so Spark's figures equal the local engine's to the last bit (a test checks it).

The session: `DECIDE_SPARK_MASTER` (default `local[2]`), created once per process; the workers run this
interpreter (`PYSPARK_PYTHON`). The query is Spark SQL: where DuckDB and Spark infer a file's types differently
(DuckDB reads yes/no columns as booleans, Spark as text), a query written for one may need a change for the other.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from simulations.data import DEFAULT_BATCH_ROWS, SimulationError, _checked_query, _data_files

_session = None
FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "json", ".ndjson": "json", ".json": "json"}


def session() -> Any:
    """The process's Spark session (created on first use)."""
    global _session
    if _session is None:
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise SimulationError("--engine spark needs pyspark: pip install 'decide[spark]'") from None
        _session = (
            SparkSession.builder.master(os.environ.get("DECIDE_SPARK_MASTER", "local[2]"))
            .appName("decide simulate")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate()
        )
        _session.sparkContext.setLogLevel("ERROR")
    return _session


@dataclass
class SparkSource:
    """The mapped data as a Spark DataFrame, with what a run asks of a local `DataSource`."""

    files: list[Path]
    query: str
    batch_rows: int
    frame: Any = field(repr=False)

    @property
    def schema(self) -> pa.Schema:
        return self.head(0).schema

    def head(self, rows: int) -> pa.Table:
        return self.frame.limit(rows).toArrow()

    def close(self) -> None:
        """Nothing to release: the session is kept for the next run in this process."""


def open_data(paths: Sequence[str | Path], query: str | None, batch_rows: int = DEFAULT_BATCH_ROWS) -> SparkSource:
    files = _data_files(paths)
    formats = {FORMATS[path.suffix.lower()] for path in files}
    if len(formats) > 1:
        raise SimulationError("the data files are of different formats: give one format per run")
    spark = session()
    reader = spark.read.option("header", "true").option("inferSchema", "true")
    text = _checked_query(query)
    try:
        data = reader.format(formats.pop()).load([str(path) for path in files])
        data.createOrReplaceTempView("data")
        frame = spark.sql(text)
        frame.schema  # noqa: B018 — a query Spark cannot analyse fails here, with its message
    except Exception as exc:  # Spark's analysis and parse errors have no common importable base class here
        raise SimulationError(f"the mapping query failed on Spark: {str(exc).splitlines()[0]}") from None
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
    return SparkSource(files, text, batch_rows, frame)


def fold_partitions(
    source: SparkSource, sides: Sequence[Any], state: tuple, options: dict[str, Any], output: str | None,
    label: str | None, as_of: Any,
) -> tuple:  # fmt: skip
    """Every partition folded on the executors, then the partitions' states merged on the driver, in order."""
    from simulations.run import merge_states  # (the package's `run` is the function: import from the module)

    shipped = pickle.dumps((list(sides), state, dict(options, threads=1), output, label, as_of))

    def per_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        from simulations.run import fold

        sides_here, folded, options_here, output_here, label_here, as_of_here = pickle.loads(shipped)
        for batch in batches:
            if batch.num_rows:
                folded = fold(sides_here, folded, batch, options_here, output_here, label_here, as_of_here)
        yield pa.RecordBatch.from_pydict(
            {"partition": [TaskContext.get().partitionId()], "state": [pickle.dumps(folded)]}
        )

    try:
        rows = source.frame.mapInArrow(per_partition, "partition long, state binary").collect()
    except Exception as exc:
        raise SimulationError(f"the Spark job failed: {str(exc).splitlines()[0]}") from None
    merged = state
    for row in sorted(rows, key=lambda row: row.partition):
        merged = merge_states(merged, pickle.loads(row.state))
    return merged
