"""Batch evaluation: a table of records -> a table of decisions, one row each.

Input: a `CompiledPolicy`, a pyarrow Table (or RecordBatch, pandas DataFrame
or list of records), the evaluation date (or the name of a date column), the
named lists, and the columns to pass through. Output: a pyarrow Table with the
passthrough columns, one column per output, `reasons` (list of strings),
`trace` if asked, and `error`, `error_code`, `error_field` (null where the
row was decided).

The stages, in order:

0. the table: converted to Arrow; columns the policy does not declare are
   passed through, set aside (`ignore_extra`) or refuse the whole table;
1. dates: each row's evaluation date (`as_of` or a date column);
2. columns: inputs encoded and checked column-wise (`compiler/evaluate/arrow_columns.py`);
   rows the column checks cannot vouch for go through the single-record
   validator, so an input error reads exactly as `evaluate` words it;
3. the GIL-free kernel over all rows, in chunks on a thread pool (the GIL is
   released, so the chunks run on every core); a row it bails on (an escape
   it does not run, an evaluation error) is left for
4. the pure-Python kernel, on just those rows, which gives their exact
   results or error messages;
5. assembly of the Arrow columns.

Without the Cython kernel (or with `trace=True`, or for a policy with list
inputs, list outputs or a collect table) stage 3 is skipped and every row
takes stage 4.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from compiler.evaluate.arrow_columns import encode_columns, has_list_inputs
from compiler.evaluate.lists import prepare_lists
from compiler.evaluate.results import resolve_as_of
from compiler.hits import hits_from_events, hits_from_trace
from compiler.lower import opcodes as O
from dsl.errors import DecideError, EvaluationError, FieldError, InputError

CHUNK_ROWS = 1 << 16
_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
_pool: ThreadPoolExecutor | None = None


def evaluate_batch(
    compiled,
    table,
    *,
    as_of: _dt.date | str | None = None,
    lists: Mapping[str, Iterable[Any]] | None = None,
    ignore_extra: bool = False,
    passthrough: Sequence[str] = (),
    trace: bool = False,
    threads: int | None = None,
    hits: Counter | None = None,
) -> pa.Table:
    """Evaluate every row of `table` on `compiled`; see the module docstring for the stages. With `hits`, adds
    the decided rows' hit counts to it (compiler/hits.py), counted on the GIL-free path without a trace."""
    table = _as_table(table, compiled.info)
    date_column = as_of if isinstance(as_of, str) and as_of in table.column_names else None
    kept = _kept_columns(table, compiled.info, passthrough, ignore_extra, date_column)
    date_column = as_of if isinstance(as_of, str) and as_of in table.column_names else None
    inputs_table = table.select([name for name in table.column_names if name in kept])
    prepared = prepare_lists(compiled.store_lists, lists)
    arrays = compiled.arrays
    runner = compiled.evaluator
    n_rows = table.num_rows
    errors: dict[int, DecideError] = {}
    status = np.zeros(n_rows, dtype=np.uint8)  # 1: the row has its error; 2: the GIL-free path left it
    today = _row_dates(table, date_column, as_of, errors, status)
    if has_list_inputs(arrays):
        # List-valued inputs are Python objects per row: every row takes the single-record path.
        decided = _evaluate_rows(compiled, inputs_table, today, prepared, errors, status, trace or hits is not None)
        if hits is not None:
            _count_traces(hits, compiled.info, decided.column("trace").to_pylist(), errors)
            if not trace:
                decided = decided.drop_columns(["trace"])
        return _with_passthrough(decided, table, passthrough)
    frame = runner.new_frame(prepared)
    values, missing = _encode_inputs(compiled, inputs_table, frame, errors, status)
    n_outputs = len(arrays.output_names)
    out_values = np.zeros((n_outputs, n_rows))
    out_missing = np.ones((n_outputs, n_rows), dtype=np.uint8)
    reason_count = np.zeros(n_rows, dtype=np.int32)
    reason_ids = np.zeros(0, dtype=np.int32)
    if runner.native and not trace:
        reason_ids = _run_native(
            runner,
            arrays,
            frame,
            prepared,
            values,
            missing,
            today,
            status,
            out_values,
            out_missing,
            reason_count,
            threads,
            hits,
        )
        python_rows = np.flatnonzero(status == 2)
    else:
        python_rows = np.flatnonzero(status == 0)
    python_reasons, traces, object_outputs = _run_python(
        runner, frame, values, missing, today, python_rows, out_values, out_missing, trace or hits is not None, errors
    )
    if hits is not None:
        _count_traces(hits, compiled.info, [traces[row] for row in python_rows], errors, python_rows)
    # The reason runs first: interning the pure-Python kernel's reasons may add strings to the pool.
    offsets, reason_ids = _reason_runs(frame, reason_count, reason_ids, python_rows, python_reasons)
    strings = pa.array(list(arrays.strings) + list(frame.extra_strings), type=pa.string())
    columns: dict[str, pa.Array] = {}
    for index, name in enumerate(arrays.output_names):
        slot_type = int(arrays.slot_types[arrays.output_slots[index]])
        if index in object_outputs:
            columns[name] = pa.array(object_outputs[index])
        else:
            columns[name] = _output_column(out_values[index], out_missing[index].astype(bool), slot_type, strings)
    error_rows = np.zeros(n_rows, dtype=bool)
    error_rows[list(errors)] = True
    reasons = strings.take(pa.array(reason_ids, type=pa.int32()))
    offsets = pa.array(offsets.astype(np.int32))
    columns["reasons"] = pa.ListArray.from_arrays(offsets, reasons, mask=pa.array(error_rows))
    if trace:
        columns["trace"] = pa.array(traces, type=pa.list_(pa.string()))
    columns.update(_error_columns(errors, n_rows))
    return _with_passthrough(pa.table(columns), table, passthrough)


# ----------------------------------------------------------------------------- stages


def _as_table(table: Any, info) -> pa.Table:
    """A pyarrow Table from what the caller passed: a Table, a pandas DataFrame or a list of records.

    A pandas datetime64 column for a `date` input becomes date32 (a time of day other than midnight is the
    row's input error, as it would be for one record); NaN and NaT in pandas are missing values, as pandas
    means them.
    """
    if isinstance(table, pa.Table):
        converted = table
    elif isinstance(table, pa.RecordBatch):
        converted = pa.Table.from_batches([table])
    elif isinstance(table, list) and all(isinstance(record, Mapping) for record in table):
        converted = pa.Table.from_pylist([dict(record) for record in table]) if table else pa.table({})
    elif type(table).__name__ == "DataFrame" and hasattr(table, "columns"):
        converted = pa.Table.from_pandas(table, preserve_index=False)
    else:
        raise InputError(
            [
                FieldError(
                    "",
                    "not_a_table",
                    f"evaluate_batch takes a pyarrow Table, a pandas DataFrame or a list of records, "
                    f"not {type(table).__name__}",
                )
            ]
        )
    dates = {field.name for field in info.inputs if field.type == "date"}
    for index, name in enumerate(converted.column_names):
        column = converted.column(index)
        if name in dates and pa.types.is_timestamp(column.type):
            converted = converted.set_column(index, name, _timestamps_as_dates(column))
    return converted


def _timestamps_as_dates(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Midnight timestamps as date32; any other time of day as its text, which the validator refuses."""
    days = pc.cast(pc.floor_temporal(column, unit="day"), pa.date32())
    if pc.all(pc.equal(pc.floor_temporal(column, unit="day"), column)).as_py() in (True, None):
        return days
    return pc.if_else(
        pc.equal(pc.floor_temporal(column, unit="day"), column),
        pc.cast(days, pa.string()),
        pc.cast(column, pa.string()),
    )


def _kept_columns(table: pa.Table, info, passthrough: Sequence[str], ignore_extra: bool, date_column) -> set[str]:
    """The columns that reach validation: the declared inputs. Others must be named in `passthrough`, be the
    `as_of` column, or be ignored with `ignore_extra`; else the whole table is refused before any row runs
    (one error naming the columns, not one per row)."""
    declared = {field.name for field in info.inputs}
    absent = [name for name in passthrough if name not in table.column_names]
    if absent:
        raise InputError(
            [FieldError(name, "unknown_column", "a passthrough column not in the table") for name in absent]
        )
    unknown = [
        name for name in table.column_names if name not in declared and name not in passthrough and name != date_column
    ]
    if unknown and not ignore_extra:
        shown = ", ".join(unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        raise InputError(
            [
                FieldError(
                    name,
                    "unknown_column",
                    f"the table has columns the policy does not declare ({shown}); name them in passthrough= "
                    "to copy them to the output, or pass ignore_extra=True",
                )
                for name in unknown[:1]
            ]
        )
    return declared & set(table.column_names)


def _with_passthrough(decided: pa.Table, table: pa.Table, passthrough: Sequence[str]) -> pa.Table:
    """The passthrough columns first (ids, labels), then the decision's columns."""
    if not passthrough:
        return decided
    clash = [name for name in passthrough if name in decided.column_names]
    if clash:
        raise InputError(
            [FieldError(name, "column_clash", "a passthrough column has an output's name") for name in clash]
        )
    return pa.table(
        {**{name: table.column(name) for name in passthrough}, **dict(zip(decided.column_names, decided.columns))}
    )


def _row_dates(table: pa.Table, date_column: str | None, as_of, errors: dict[int, DecideError], status) -> np.ndarray:
    """The evaluation date (as a day ordinal) of every row; a row with a bad date gets its error."""
    n_rows = table.num_rows
    if date_column is None:
        return np.full(n_rows, float(resolve_as_of(as_of).toordinal()))
    column = table.column(date_column)
    if pa.types.is_date32(column.type) and column.null_count == 0:
        return column.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.float64) + _EPOCH_ORDINAL
    today = np.zeros(n_rows)
    for row, value in enumerate(column.to_pylist()):
        try:
            if value is None:
                raise EvaluationError(f"as_of: the date column '{date_column}' is empty in this row")
            today[row] = float(resolve_as_of(value).toordinal())
        except EvaluationError as exc:
            errors[row] = exc
            status[row] = 1
    return today


def _encode_inputs(compiled, inputs_table: pa.Table, frame, errors, status):
    """Encoded input columns; rows the column checks cannot vouch for are validated one by one."""
    arrays = compiled.arrays
    values, missing, needs_check = encode_columns(inputs_table, compiled.validator, arrays, frame)
    slot_types = [int(arrays.slot_types[slot]) for slot in arrays.input_slots]
    for row in np.flatnonzero(needs_check & (status == 0)):
        record = inputs_table.slice(int(row), 1).to_pylist()[0]
        try:
            checked = compiled.validator.validate(record)
        except InputError as exc:
            errors[int(row)] = exc
            status[row] = 1
            continue
        for position, name in enumerate(arrays.input_names):
            value = checked.get(name)
            missing[position, row] = value is None
            if value is not None:
                values[position, row] = frame.encode(value, slot_types[position])
    return values, missing


def _list_members(arrays, frame, prepared) -> np.ndarray:
    """members[escape, string id]: whether each string of the batch is in the named list an escape tests."""
    texts = list(arrays.strings) + list(frame.extra_strings)
    members = np.zeros((max(len(arrays.escapes), 1), len(texts)), dtype=np.uint8)
    for index, escape in enumerate(arrays.escapes):
        if escape.name == "in_list" and tuple(escape.arg_types) == (O.T_STR,) and escape.detail in prepared:
            listed = prepared[escape.detail]
            members[index] = np.fromiter((text in listed for text in texts), dtype=bool, count=len(texts))
    return members


def _run_native(
    runner,
    arrays,
    frame,
    prepared,
    values,
    missing,
    today,
    status,
    out_values,
    out_missing,
    reason_count,
    threads,
    hits=None,
):
    """Stage 3: every row not already in error on the GIL-free kernel; returns the decided rows' reason ids
    (and with `hits`, adds the hit counts of the rows it decided)."""
    from compiler._fastpath import NATIVE_REASONS_CAPACITY

    members = _list_members(arrays, frame, prepared)
    n_strings = len(arrays.strings) + len(frame.extra_strings)
    n_rows = len(today)
    bounds = [(start, min(start + CHUNK_ROWS, n_rows)) for start in range(0, n_rows, CHUNK_ROWS)]

    def run(bound: tuple[int, int]) -> tuple[np.ndarray, Any]:
        start, end = bound
        ids = np.empty((end - start) * NATIVE_REASONS_CAPACITY, dtype=np.int32)
        events = None
        if hits is not None:  # each chunk counts into its own arrays: no two threads write one
            events = (np.zeros(len(arrays.leaf_index), dtype=np.int64), np.zeros(len(arrays.stmt_kind), np.int64))
        written = runner.native_rows(
            values,
            missing,
            today,
            status,
            out_values,
            out_missing,
            members,
            start,
            end,
            reason_count,
            ids,
            n_strings,
            *(events or ()),
        )
        return ids[:written].copy(), events

    workers = threads if threads is not None else (os.cpu_count() or 1)
    if runner.native_takes_gil:
        workers = 1  # threads would only queue for the GIL (and its hand-offs cost more than they give)
    if workers <= 1 or len(bounds) <= 1:
        parts = [run(bound) for bound in bounds]
    else:
        parts = list(_thread_pool().map(run, bounds))
    if hits is not None and parts:
        leaf_events = sum(events[0] for _, events in parts)
        statement_events = sum(events[1] for _, events in parts)
        hits.update(hits_from_events(arrays, leaf_events, statement_events))
    return np.concatenate([ids for ids, _ in parts]) if parts else np.zeros(0, dtype=np.int32)


def _count_traces(
    hits: Counter, info, traces: Sequence[Any], errors: Mapping[int, Any], rows: Sequence[int] | None = None
) -> None:
    """Add the hit counts of decided rows from their traces (`rows`: the row number of each trace)."""
    entries: Counter = Counter()
    for position, entry_list in enumerate(traces):
        row = position if rows is None else int(rows[position])
        if entry_list is None or row in errors:
            continue
        entries.update(entry_list)
    hits.update(hits_from_trace(entries, info))


def _thread_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="decide-batch")
    return _pool


def _run_python(runner, frame, values, missing, today, rows, out_values, out_missing, trace, errors):
    """Stage 4: `rows` on the pure-Python kernel; returns their reasons, the traces (all rows) and list outputs."""
    n_rows = len(today)
    n_outputs = out_values.shape[0]
    sub_values = np.zeros((n_outputs, len(rows)))
    sub_missing = np.ones((n_outputs, len(rows)), dtype=np.uint8)
    skip = np.zeros(len(rows), dtype=np.uint8)
    reasons, sub_traces, evaluation_errors, sub_objects = runner.evaluate_columns(
        frame,
        np.ascontiguousarray(values[:, rows]),
        np.ascontiguousarray(missing[:, rows]),
        np.ascontiguousarray(today[rows]),
        skip,
        sub_values,
        sub_missing,
        trace,
    )
    out_values[:, rows] = sub_values
    out_missing[:, rows] = sub_missing
    for position, message in enumerate(evaluation_errors):
        if message is not None:
            errors[int(rows[position])] = message
    traces = None
    if trace:
        traces = [None] * n_rows
        for position, row in enumerate(rows):
            traces[row] = sub_traces[position]
    object_outputs = {}
    for index, sub in sub_objects.items():
        column: list = [None] * n_rows
        for position, row in enumerate(rows):
            column[row] = sub[position]
        object_outputs[index] = column
    return reasons, traces, object_outputs


def _reason_runs(frame, native_count, native_ids, python_rows, python_reasons) -> tuple[np.ndarray, np.ndarray]:
    """Stage 5 for `reasons`: the kernel's id runs and the pure-Python kernel's lists merged in row order, as
    (offsets, string ids)."""
    n_rows = len(native_count)
    count = native_count.astype(np.int64)
    python_ids = []
    for position, row in enumerate(python_rows):
        codes = python_reasons[position]
        if codes:
            python_ids.append((row, [frame.intern(code) for code in codes]))
            count[row] = len(codes)
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(count, out=offsets[1:])
    if python_ids:
        flat = np.empty(int(offsets[-1]), dtype=np.int32)
        if len(native_ids):
            native_offsets = np.zeros(n_rows + 1, dtype=np.int64)
            np.cumsum(native_count, out=native_offsets[1:])
            row_of_id = np.repeat(np.arange(n_rows), native_count)
            within = np.arange(len(native_ids)) - native_offsets[row_of_id]
            flat[offsets[row_of_id] + within] = native_ids
        for row, ids in python_ids:
            flat[offsets[row] : offsets[row] + len(ids)] = ids
    else:
        flat = native_ids
    return offsets, flat


def _error_columns(errors: dict[int, DecideError], n_rows: int) -> dict[str, pa.Array]:
    """`error` (the full text, as `evaluate` raises it), `error_code` and `error_field` (the first problem's
    code, and its input field or the output it concerns); null where the row was decided."""
    if not errors:
        nulls = pa.nulls(n_rows, type=pa.string())
        return {"error": nulls, "error_code": nulls, "error_field": nulls}
    text: list[str | None] = [None] * n_rows
    codes: list[str | None] = [None] * n_rows
    fields: list[str | None] = [None] * n_rows
    for row, exc in errors.items():
        text[row] = str(exc)
        if isinstance(exc, InputError) and exc.errors:
            codes[row], fields[row] = exc.errors[0].code, exc.errors[0].field or None
        elif isinstance(exc, EvaluationError):
            codes[row], fields[row] = exc.code, exc.output
    return {
        "error": pa.array(text, type=pa.string()),
        "error_code": pa.array(codes, type=pa.string()),
        "error_field": pa.array(fields, type=pa.string()),
    }


def _output_column(values, missing, slot_type: int, strings):
    if slot_type == O.T_NUM:
        return pa.array(values, type=pa.float64(), mask=missing)
    if slot_type == O.T_INT:
        return pa.array(values.astype(np.int64), type=pa.int64(), mask=missing)
    if slot_type == O.T_BOOL:
        return pa.array(values != 0.0, type=pa.bool_(), mask=missing)
    if slot_type == O.T_STR:
        indices = pa.array(values.astype(np.int32), type=pa.int32(), mask=missing)
        return pa.DictionaryArray.from_arrays(indices, strings).cast(pa.string())
    days = pa.array((values - _EPOCH_ORDINAL).astype(np.int32), type=pa.int32(), mask=missing)
    return days.cast(pa.date32())


# ----------------------------------------------------------------------------- list inputs


def _evaluate_rows(compiled, inputs_table, today, prepared, errors, status, trace) -> pa.Table:
    """One row at a time, for policies with list-valued inputs."""
    arrays = compiled.arrays
    output_names = list(arrays.output_names)
    results: dict[str, list] = {name: [] for name in [*output_names, "reasons"]}
    traces: list = []
    for row, record in enumerate(inputs_table.to_pylist()):
        result: dict[str, Any] = {name: None for name in results}
        entries = None
        if not status[row]:
            try:
                values = compiled.validator.validate(record)
                day = _dt.date.fromordinal(int(today[row]))
                result, entries = compiled.evaluator.evaluate(values, day, prepared)
            except (InputError, EvaluationError) as exc:
                errors[row] = exc
                entries = None
        for name in results:
            results[name].append(result[name])
        traces.append(entries)
    columns = {name: _column(values, _arrow_type(arrays, name)) for name, values in results.items()}
    if trace:
        columns["trace"] = pa.array(traces, type=pa.list_(pa.string()))
    columns.update(_error_columns(errors, len(today)))
    return pa.table(columns)


def _arrow_type(arrays, output: str):
    if output == "reasons":
        return pa.list_(pa.string())
    slot = arrays.output_slots[arrays.output_names.index(output)]
    return {
        O.T_NUM: pa.float64(),
        O.T_INT: pa.int64(),
        O.T_BOOL: pa.bool_(),
        O.T_STR: pa.string(),
        O.T_DATE: pa.date32(),
    }.get(int(arrays.slot_types[slot]))


def _column(values: list, arrow_type):
    if arrow_type is None:  # lists of values or records: let arrow infer the nested type
        return pa.array(values)
    return pa.array(values, type=arrow_type)
