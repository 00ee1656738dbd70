"""Input columns for `evaluate_batch`: an Arrow table -> encoded slot columns, and the rows to check one by one.

Input: a pyarrow Table, the policy's input declarations and arrays, and the
batch's shared frame (which interns the batch's strings). Output: an
(inputs x rows) float64 array of encoded values, its missing mask, and a
boolean mask of rows the fast column checks could not vouch for. Those rows
go through the ordinary `InputValidator`, so every error message is exactly
the single-record one; the column checks only ever decide that a value is
plainly fine, never that it is wrong.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from compiler import opcodes as O
from compiler.validate_input import InputValidator

_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
_EXACT = float(2**53)


def encode_columns(table: pa.Table, validator: InputValidator, arrays, frame, ignore_extra: bool):
    """(values, missing, needs_check) for every declared input, row-aligned with the table."""
    n_rows = table.num_rows
    n_inputs = len(validator.plans)
    values = np.zeros((n_inputs, n_rows), dtype=np.float64)
    missing = np.ones((n_inputs, n_rows), dtype=np.uint8)
    needs_check = np.zeros(n_rows, dtype=bool)
    if not ignore_extra and any(name not in validator.declared for name in table.column_names):
        needs_check[:] = True  # every row has an unknown field: let the validator word it
    for position, (name, type_name, _, optional, _, constraint) in enumerate(validator.plans):
        if name not in table.column_names:
            if not optional:
                needs_check[:] = True
            continue
        column = table.column(name)
        present = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if not optional:
            needs_check |= ~present
        encoded, fine = _encode(column, type_name, frame, arrays, constraint)
        if encoded is None:
            needs_check |= present
            continue
        values[position] = np.where(present, encoded, 0.0)
        missing[position] = (~present).astype(np.uint8)
        needs_check |= present & ~fine
    return values, missing, needs_check


def _encode(column, type_name: str, frame, arrays, constraint):
    """(encoded values, rows plainly valid) for one column, or (None, None) when only the validator can tell."""
    arrow_type = column.type
    if type_name in ("number", "int") and (pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)):
        raw = column.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
        fine = np.isfinite(raw) & (np.abs(raw) < _EXACT)
        if type_name == "int":
            fine &= np.floor(raw) == raw
        if constraint is not None:
            fine &= _allowed(raw, constraint, lambda v: float(v))
        return raw, fine
    if type_name == "bool" and pa.types.is_boolean(arrow_type):
        raw = column.fill_null(False).to_numpy(zero_copy_only=False).astype(np.float64)
        return raw, np.ones(len(raw), dtype=bool)
    if type_name == "string" and (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)):
        encoded = pc.dictionary_encode(column).combine_chunks()
        dictionary = encoded.dictionary.to_pylist()
        ids = np.array([frame.intern(text) for text in dictionary] or [0.0], dtype=np.float64)
        indices = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False)
        raw = ids[indices] if len(dictionary) else np.zeros(len(indices))
        fine = np.ones(len(raw), dtype=bool)
        if constraint is not None:
            allowed_ids = np.array([_allowed_text(text, constraint) for text in dictionary] or [True])
            fine &= allowed_ids[indices] if len(dictionary) else fine
        return raw, fine
    if type_name == "date" and pa.types.is_date32(arrow_type):
        raw = column.cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64) + _EPOCH_ORDINAL
        fine = np.ones(len(raw), dtype=bool)
        if constraint is not None:
            fine &= _allowed(raw, constraint, lambda v: float(v.toordinal()))
        return raw, fine
    return None, None


def _allowed(raw: np.ndarray, constraint, encode) -> np.ndarray:
    shape, spec = constraint
    if shape == "set":
        return np.isin(raw, [encode(v) for v in spec])
    low, high, low_closed, high_closed = spec
    low, high = encode(low), encode(high)
    above = raw >= low if low_closed else raw > low
    below = raw <= high if high_closed else raw < high
    return above & below


def _allowed_text(text: str, constraint) -> bool:
    shape, spec = constraint
    return shape == "set" and text in spec


def has_list_inputs(arrays) -> bool:
    return any(int(arrays.slot_types[slot]) == O.T_OBJ for slot in arrays.input_slots)
