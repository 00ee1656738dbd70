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

from compiler.evaluate import implementation
from compiler.evaluate.validate_input import InputValidator
from compiler.lower import opcodes as O

_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
_EXACT = float(2**53)


def encode_columns(table: pa.Table, validator: InputValidator, arrays, frame):
    """(values, missing, needs_check) for every declared input, row-aligned with the table (which holds only
    declared inputs: the batch stage has set the others aside)."""
    n_rows = table.num_rows
    n_inputs = len(validator.plans)
    values = np.zeros((n_inputs, n_rows), dtype=np.float64)
    missing = np.ones((n_inputs, n_rows), dtype=np.uint8)
    needs_check = np.zeros(n_rows, dtype=bool)
    for position, (name, type_name, _, optional, _, constraint) in enumerate(validator.plans):
        if name not in table.column_names:
            if not optional:
                needs_check[:] = True
            continue
        column = table.column(name)
        required = not optional
        if _encode_natively(column, type_name, constraint, required, values[position], missing[position], needs_check):
            continue
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


_NATIVE_TYPES = {
    pa.float64(): np.float64,
    pa.float32(): np.float32,
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int32(): np.int32,
    pa.int64(): np.int64,
    pa.uint8(): np.uint8,
    pa.uint16(): np.uint16,
    pa.uint32(): np.uint32,
    pa.uint64(): np.uint64,
}


def _encode_natively(column, type_name: str, constraint, required: bool, values, missing, needs_check) -> bool:
    """Numbers, ints and dates in one pass of the Cython kernel per chunk (the same checks as `_encode`).

    False when the kernel is not built or the column is not a plain numeric or date32 column (or the input
    has a set of allowed values): the numpy code below handles it.
    """
    encode_numbers = implementation.column_encoder()
    if encode_numbers is None or (constraint is not None and constraint[0] != "range"):
        return False
    arrow_type = column.type
    if type_name in ("number", "int") and arrow_type in _NATIVE_TYPES:
        dtype, bias, whole = _NATIVE_TYPES[arrow_type], 0.0, type_name == "int"
    elif type_name == "date" and pa.types.is_date32(arrow_type):
        dtype, bias, whole = np.int32, float(_EPOCH_ORDINAL), False
    else:
        return False
    has_range, low, high, closed = False, 0.0, 0.0, 0
    if constraint is not None:
        low_value, high_value, low_closed, high_closed = constraint[1]
        encode = (lambda v: float(v.toordinal())) if type_name == "date" else float
        has_range, low, high, closed = True, encode(low_value), encode(high_value), low_closed + 2 * high_closed
    start = 0
    for chunk in column.chunks:
        length = len(chunk)
        validity_buffer, data_buffer = chunk.buffers()[:2]
        raw = np.frombuffer(data_buffer, dtype=dtype, count=chunk.offset + length)[chunk.offset :]
        validity = (
            np.frombuffer(validity_buffer, dtype=np.uint8)
            if validity_buffer is not None and chunk.null_count
            else np.zeros(0, dtype=np.uint8)
        )
        rows = slice(start, start + length)
        encode_numbers(
            raw,
            validity,
            chunk.offset,
            bias,
            whole,
            has_range,
            low,
            high,
            closed,
            required,
            values[rows],
            missing[rows],
            needs_check.view(np.uint8)[rows],
        )
        start += length
    return True


def _encode(column, type_name: str, frame, arrays, constraint):
    """(encoded values, rows plainly valid) for one column, or (None, None) when only the validator can tell."""
    arrow_type = column.type
    if type_name in ("number", "int") and (pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)):
        # Unsafe: whole numbers beyond 2**53 round, and the size check below sends them to the validator.
        raw = column.cast(pa.float64(), safe=False).fill_null(0.0).to_numpy(zero_copy_only=False)
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
