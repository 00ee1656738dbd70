"""Reading a back-test's data: files and an optional mapping query, through DuckDB, as Arrow record batches.

Input: paths (files, or directories of them: `.csv`, `.parquet`, `.jsonl` / `.ndjson` / `.json`), an optional SQL
`SELECT` over the view `data` (the files, as one table), and the batch size. Output: a `DataSource` whose
`batches()` yields `pyarrow.RecordBatch`es of at most `batch_rows` rows, so memory follows the batch size, not the
data's. Without a query the view's columns are the policy's inputs, matched by name.

Every failure is a `SimulationError` naming the file or the query: a missing file, a directory without data
files, files of different formats in one source, an unreadable file, a query DuckDB refuses (its own message,
which points at the position), or a query that is not a single SELECT.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

READERS = {".csv": "read_csv", ".parquet": "read_parquet", ".jsonl": "read_json", ".ndjson": "read_json",
           ".json": "read_json"}  # fmt: skip
DEFAULT_BATCH_ROWS = 262_144  # four kernel chunks: evaluate_batch keeps both cores busy (65,536 used one)


class SimulationError(Exception):
    """A back-test that cannot run as asked: the message says what and where, for people."""


@dataclass
class DataSource:
    """The data of one back-test: its files, the query over them, and a DuckDB connection of its own."""

    files: list[Path]
    query: str
    batch_rows: int = DEFAULT_BATCH_ROWS
    _connection: duckdb.DuckDBPyConnection = field(default_factory=lambda: _connect(), repr=False)

    @property
    def schema(self) -> pa.Schema:
        """The mapped columns' Arrow types, without reading the data."""
        return self.head(0).schema

    def count(self) -> int:
        """How many rows the mapped data has (a scan of the data for CSV and JSON; for a progress bar)."""
        try:
            return int(self._connection.execute(f"SELECT count(*) FROM ({self.query})").fetchall()[0][0])
        except duckdb.Error as exc:
            raise SimulationError(f"the mapping query failed: {_first_lines(exc)}") from None

    def head(self, rows: int) -> pa.Table:
        """The first `rows` mapped rows (for the checks before a run)."""
        try:
            return self._relation().limit(rows).to_arrow_table()
        except duckdb.Error as exc:
            raise SimulationError(f"reading the data failed: {_first_lines(exc)}") from None

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The mapped rows, `batch_rows` at a time, read as they are consumed."""
        try:
            reader = self._relation().to_arrow_reader(self.batch_rows)
            yield from reader
        except duckdb.Error as exc:
            raise SimulationError(f"reading the data failed: {_first_lines(exc)}") from None

    def close(self) -> None:
        self._connection.close()

    def _relation(self) -> duckdb.DuckDBPyRelation:
        try:
            relation = self._connection.sql(self.query)
            # DuckDB's JSON and CSV readers may type small integers as 128-bit (HUGEINT), which Arrow can only
            # hand over as decimals: cast them to 64 bits, and fail the read (never wrap or null) where one is too
            # large.
            wide = [name for name, kind in zip(relation.columns, relation.types, strict=True)
                    if str(kind) in ("HUGEINT", "UHUGEINT")]  # fmt: skip
            if wide:
                columns = ", ".join(
                    f"CAST({_identifier(name)} AS BIGINT) AS {_identifier(name)}" if name in wide else _identifier(name)
                    for name in relation.columns
                )
                relation = relation.query("mapped", f"SELECT {columns} FROM mapped")
            return relation
        except duckdb.Error as exc:
            raise SimulationError(f"the mapping query failed: {_first_lines(exc)}") from None


def open_data(
    paths: Sequence[str | Path], query: str | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
) -> DataSource:
    """The data of `paths`, mapped by `query` (a SELECT over `data`), read `batch_rows` at a time."""
    if batch_rows < 1:
        raise SimulationError("the batch size must be at least 1 row")
    files = _data_files(paths)
    suffixes = {READERS[path.suffix.lower()] for path in files}
    if len(suffixes) > 1:
        raise SimulationError(
            "the data files are of different formats (" + ", ".join(sorted({p.suffix for p in files})) + "): "
            "give one format per run"
        )
    reader = suffixes.pop()
    source = DataSource(files, _checked_query(query), batch_rows)
    listed = ", ".join(_sql_text(str(path)) for path in files)
    try:
        source._connection.execute(f"CREATE VIEW data AS SELECT * FROM {reader}([{listed}])")
        source._connection.sql("SELECT * FROM data LIMIT 0").fetchall()  # an unreadable file fails here
    except duckdb.Error as exc:
        source.close()
        raise SimulationError(f"cannot read the data files: {_first_lines(exc)}") from None
    return source


def _data_files(paths: Sequence[str | Path]) -> list[Path]:
    if not paths:
        raise SimulationError("no data given: pass --data FILE (a file or a directory of them)")
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(item for item in path.rglob("*") if item.is_file() and item.suffix.lower() in READERS)
            if not found:
                raise SimulationError(f"the directory {path} holds no data files ({', '.join(sorted(READERS))})")
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in READERS:
                raise SimulationError(
                    f"{path}: unknown data format {path.suffix or '(no extension)'!r} "
                    f"(use {', '.join(sorted(READERS))})"
                )
            files.append(path)
        else:
            raise SimulationError(f"the data file {path} does not exist")
    return files


def _checked_query(query: str | None) -> str:
    if query is None:
        return "SELECT * FROM data"
    text = query.strip().rstrip(";").strip()
    try:
        statements = duckdb.extract_statements(text)
    except duckdb.Error as exc:
        raise SimulationError(f"the mapping query failed: {_first_lines(exc)}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise SimulationError("the mapping query must be one SELECT statement over the view `data`")
    return text


def _connect() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("SET enable_progress_bar = false")  # decide simulate draws its own; DuckDB's would mix in
    return connection


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _first_lines(exc: Exception, lines: int = 6) -> str:
    return "\n".join(str(exc).strip().splitlines()[:lines])
