"""A compiled policy as data: decision-tree arrays plus what validating its inputs needs.

Input: a checked AST and its analysis (`CompiledPolicy.from_policy`), or the
bytes of `to_bytes` (`CompiledPolicy.from_bytes`). Output: an object that
pickles (for Spark or Dask workers), has a content hash (source hash +
compiler version), needs no C compiler to be produced or loaded, and offers
`evaluate` (one record) and `evaluate_batch` (a table) on the active
implementation — the Cython kernel when built, else its pure-Python twin.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from compiler import fastpath
from compiler import opcodes as O
from compiler.arrays import CorruptArtefact, PolicyArrays, compile_arrays
from compiler.check_types import allowed_values
from compiler.evaluation import build_result, prepare_lists, resolve_as_of
from compiler.lower import lower
from compiler.validate_input import InputValidator
from dsl import ast

COMPILER_VERSION = "0.2.0"

_TYPE_CODES = {
    "int": O.T_INT,
    "number": O.T_NUM,
    "bool": O.T_BOOL,
    "string": O.T_STR,
    "date": O.T_DATE,
    "list": O.T_OBJ,
}


def _literal(value: Any) -> dict[str, Any]:
    if isinstance(value, _dt.date):
        return {"date": value.isoformat()}
    return {"value": value}


def _literal_node(encoded: dict[str, Any]):
    if "date" in encoded:
        return ast.Call("date", (ast.String(encoded["date"]),))
    value = encoded["value"]
    if isinstance(value, str):
        return ast.String(value)
    if isinstance(value, bool):
        return ast.Bool(value)
    return ast.Number(value)


def input_declarations(fields: tuple[ast.Field, ...]) -> list[dict[str, Any]]:
    """The `input:` section as JSON-able data (what validation needs, no spans)."""
    declarations = []
    for field in fields:
        constraint = allowed_values(field)
        allowed = None
        if constraint is not None:
            shape, spec = constraint
            if shape == "set":
                allowed = {"set": [_literal(v) for v in spec]}
            else:
                low, high, low_closed, high_closed = spec
                allowed = {"range": [_literal(low), _literal(high), low_closed, high_closed]}
        declarations.append(
            {
                "name": field.name,
                "type": field.type.name,
                "element": field.type.element,
                "optional": field.optional,
                "key": field.key,
                "pii": field.pii,
                "allowed": allowed,
            }
        )
    return declarations


def fields_from_declarations(declarations: list[dict[str, Any]]) -> tuple[ast.Field, ...]:
    fields = []
    for declaration in declarations:
        allowed = declaration["allowed"]
        node = None
        if allowed is not None and "set" in allowed:
            node = ast.SetLiteral(tuple(_literal_node(v) for v in allowed["set"]))
        elif allowed is not None:
            low, high, low_closed, high_closed = allowed["range"]
            node = ast.Interval(_literal_node(low), _literal_node(high), low_closed, high_closed)
        fields.append(
            ast.Field(
                declaration["name"],
                ast.TypeRef(declaration["type"], declaration["element"]),
                optional=declaration["optional"],
                key=declaration["key"],
                pii=declaration["pii"],
                allowed=node,
            )
        )
    return tuple(fields)


class CompiledPolicy:
    """Decision trees as arrays, with `evaluate` and `evaluate_batch`; picklable and hashable."""

    def __init__(self, arrays: PolicyArrays) -> None:
        self.arrays = arrays
        try:
            self.inputs = fields_from_declarations(arrays.metadata["inputs"])
            self.store_lists: dict[str, str] = {
                str(name): str(element) for name, element in arrays.metadata["store_lists"].items()
            }
            for key in ("source_hash", "compiler_version"):
                str(arrays.metadata[key])
            # The kernel trusts each input slot's type to match its declaration: check they agree.
            declared = [(f.name, _TYPE_CODES[f.type.name]) for f in self.inputs]
            stored = [
                (name, int(arrays.slot_types[slot])) for name, slot in zip(arrays.input_names, arrays.input_slots)
            ]
            if declared != stored:
                raise ValueError("the input slots do not match the input declarations")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptArtefact(f"compiled policy '{arrays.name}' has unreadable metadata ({exc!r})") from None
        self._runner = None
        self.validator = InputValidator(self.inputs)

    @classmethod
    def from_policy(cls, tree: ast.Policy, analysis, source_hash: str) -> CompiledPolicy:
        metadata = {
            "inputs": input_declarations(tree.inputs),
            "store_lists": {
                s.name: s.element_type for s in tree.statements if isinstance(s, ast.ListDecl) and s.members is None
            },
            "source_hash": source_hash,
            "compiler_version": COMPILER_VERSION,
        }
        return cls(compile_arrays(lower(tree, analysis), metadata))

    @property
    def name(self) -> str:
        return self.arrays.name

    @property
    def content_hash(self) -> str:
        metadata = self.arrays.metadata
        return hashlib.sha256(f"{metadata['compiler_version']}\n{metadata['source_hash']}".encode()).hexdigest()

    def to_bytes(self) -> bytes:
        return self.arrays.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> CompiledPolicy:
        """Load and validate a compiled policy; raises CorruptArtefact if anything is off."""
        return cls(PolicyArrays.from_bytes(data))

    def __getstate__(self) -> dict[str, Any]:
        return {"arrays": self.arrays}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["arrays"].validate())

    def __repr__(self) -> str:
        return f"<CompiledPolicy {self.name} {self.content_hash[:12]} nodes={self.arrays.n_nodes}>"

    @property
    def runner(self):
        """The active implementation's evaluator for these arrays, built on first use."""
        if self._runner is None:
            self._runner = fastpath.runner(self.arrays)
        return self._runner

    def evaluate(
        self,
        record: Mapping[str, Any],
        *,
        as_of: _dt.date | str | None = None,
        lists: Mapping[str, Iterable[Any]] | None = None,
        ignore_extra: bool = False,
        trace: bool = True,
        version: int | None = None,
    ) -> dict[str, Any]:
        """Validate `record` and evaluate it on the decision trees; the result object of spec §6."""
        values = self.validator.validate(record, ignore_extra=ignore_extra)
        today = resolve_as_of(as_of)
        outputs, trace_entries = self.runner.evaluate(values, today, prepare_lists(self.store_lists, lists))
        return build_result(self.name, outputs, trace_entries, trace=trace, version=version)

    def evaluate_batch(
        self,
        table,
        *,
        as_of: _dt.date | str | None = None,
        lists: Mapping[str, Iterable[Any]] | None = None,
        ignore_extra: bool = False,
        trace: bool = False,
    ):
        """Evaluate every row of a pyarrow Table (or pandas DataFrame); returns a pyarrow Table.

        One column per output, `reasons` (list of strings), `trace` if asked,
        and `error`: null where the row was decided, else the row's input or
        evaluation error (the batch never fails for one bad row). `as_of` is a
        date, a YYYY-MM-DD string, or the name of a date column of the table
        (each row's evaluation date, as in a back-test). Every row equals
        `evaluate` on that row: columns are encoded and checked as columns,
        and any row the column checks cannot vouch for is validated on its
        own, so its error message is the single-record one.
        """
        import numpy as np
        import pyarrow as pa

        from compiler.columns import encode_columns, has_list_inputs
        from dsl.diagnostics import InputError

        if not isinstance(table, pa.Table):
            table = pa.Table.from_pandas(table, preserve_index=False)
        date_column = as_of if isinstance(as_of, str) and as_of in table.column_names else None
        inputs_table = table.drop_columns([date_column]) if date_column else table
        prepared = prepare_lists(self.store_lists, lists)
        arrays = self.arrays
        n_rows = table.num_rows
        errors: list[str | None] = [None] * n_rows
        skip = np.zeros(n_rows, dtype=np.uint8)
        today = self._batch_dates(table, date_column, as_of, errors, skip)
        if has_list_inputs(arrays):
            # List-valued inputs are Python objects per row: every row takes the single-record path.
            return self._evaluate_rows(inputs_table, today, prepared, errors, skip, trace, ignore_extra)
        frame = self.runner.new_frame(prepared)
        values, missing, needs_check = encode_columns(inputs_table, self.validator, arrays, frame, ignore_extra)
        slot_types = [int(arrays.slot_types[slot]) for slot in arrays.input_slots]
        for row in np.flatnonzero(needs_check & (skip == 0)):
            record = inputs_table.slice(int(row), 1).to_pylist()[0]
            try:
                checked = self.validator.validate(record, ignore_extra=ignore_extra)
            except InputError as exc:
                errors[row] = str(exc)
                skip[row] = 1
                continue
            for position, name in enumerate(arrays.input_names):
                value = checked.get(name)
                missing[position, row] = value is None
                if value is not None:
                    values[position, row] = frame.encode(value, slot_types[position])
        n_outputs = len(arrays.output_names)
        out_values = np.zeros((n_outputs, n_rows))
        out_missing = np.ones((n_outputs, n_rows), dtype=np.uint8)
        reasons, traces, evaluation_errors, object_outputs = self.runner.evaluate_columns(
            frame, values, missing, today, skip, out_values, out_missing, trace
        )
        for row, message in enumerate(evaluation_errors):
            if message is not None:
                errors[row] = message
        columns = {}
        strings = pa.array(list(arrays.strings) + list(frame.extra_strings), type=pa.string())
        for index, name in enumerate(arrays.output_names):
            slot_type = int(arrays.slot_types[arrays.output_slots[index]])
            if index in object_outputs:
                columns[name] = pa.array(object_outputs[index])
            else:
                columns[name] = _output_column(out_values[index], out_missing[index].astype(bool), slot_type, strings)
        columns["reasons"] = pa.array(reasons, type=pa.list_(pa.string()))
        if trace:
            columns["trace"] = pa.array(traces, type=pa.list_(pa.string()))
        columns["error"] = pa.array(errors, type=pa.string())
        return pa.table(columns)

    def _batch_dates(self, table, date_column, as_of, errors, skip):
        """The evaluation date (as a day ordinal) of every row; a row with a bad date gets its error."""
        import numpy as np
        import pyarrow as pa

        from dsl.diagnostics import EvaluationError

        n_rows = table.num_rows
        if date_column is None:
            return np.full(n_rows, float(resolve_as_of(as_of).toordinal()))
        column = table.column(date_column)
        if pa.types.is_date32(column.type) and column.null_count == 0:
            return column.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.float64) + 719163.0
        today = np.zeros(n_rows)
        for row, value in enumerate(column.to_pylist()):
            try:
                if value is None:
                    raise EvaluationError(f"as_of: the date column '{date_column}' is empty in this row")
                today[row] = float(resolve_as_of(value).toordinal())
            except EvaluationError as exc:
                errors[row] = str(exc)
                skip[row] = 1
        return today

    def _evaluate_rows(self, inputs_table, today, prepared, errors, skip, trace, ignore_extra):
        """One row at a time, for policies with list-valued inputs."""
        import pyarrow as pa

        from dsl.diagnostics import EvaluationError, InputError

        output_names = list(self.arrays.output_names)
        results: dict[str, list] = {name: [] for name in [*output_names, "reasons"]}
        traces: list = []
        for row, record in enumerate(inputs_table.to_pylist()):
            result: dict[str, Any] = {name: None for name in results}
            entries = None
            if not skip[row]:
                try:
                    values = self.validator.validate(record, ignore_extra=ignore_extra)
                    day = _dt.date.fromordinal(int(today[row]))
                    outputs, entries = self.runner.evaluate(values, day, prepared)
                    result = build_result(self.name, outputs, entries, trace=True, version=None)["outputs"]
                except (InputError, EvaluationError) as exc:
                    errors[row] = str(exc)
                    entries = None
            for name in results:
                results[name].append(result[name])
            traces.append(entries)
        columns = {name: _column(values, _arrow_type(self.arrays, name)) for name, values in results.items()}
        if trace:
            columns["trace"] = pa.array(traces, type=pa.list_(pa.string()))
        columns["error"] = pa.array(errors, type=pa.string())
        return pa.table(columns)


def _output_column(values, missing, slot_type: int, strings):
    import numpy as np
    import pyarrow as pa

    from compiler import opcodes as O

    if slot_type == O.T_NUM:
        return pa.array(values, type=pa.float64(), mask=missing)
    if slot_type == O.T_INT:
        return pa.array(values.astype(np.int64), type=pa.int64(), mask=missing)
    if slot_type == O.T_BOOL:
        return pa.array(values != 0.0, type=pa.bool_(), mask=missing)
    if slot_type == O.T_STR:
        indices = pa.array(values.astype(np.int32), type=pa.int32(), mask=missing)
        return pa.DictionaryArray.from_arrays(indices, strings).cast(pa.string())
    # Dates, as the single-record result shows them: YYYY-MM-DD.
    days = pa.array((values - 719163.0).astype(np.int32), type=pa.int32(), mask=missing)
    return days.cast(pa.date32()).cast(pa.string())


def _arrow_type(arrays: PolicyArrays, output: str):
    import pyarrow as pa

    from compiler import opcodes as O

    if output == "reasons":
        return pa.list_(pa.string())
    slot = arrays.output_slots[arrays.output_names.index(output)]
    return {
        O.T_NUM: pa.float64(),
        O.T_INT: pa.int64(),
        O.T_BOOL: pa.bool_(),
        O.T_STR: pa.string(),
        O.T_DATE: pa.string(),
    }.get(int(arrays.slot_types[slot]))


def _column(values: list, arrow_type):
    import pyarrow as pa

    if arrow_type is None:  # lists of values or records: let arrow infer the nested type
        return pa.array(values)
    return pa.array(values, type=arrow_type)
