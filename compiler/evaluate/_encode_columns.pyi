"""What callers may use of `compiler/evaluate/_encode_columns.pyx`."""

import numpy as np

def encode_numbers(
    raw: np.ndarray,
    validity: np.ndarray,
    bit_offset: int,
    bias: float,
    whole: bool,
    has_range: bool,
    low: float,
    high: float,
    closed: int,
    required: bool,
    out_value: np.ndarray,
    out_missing: np.ndarray,
    needs_check: np.ndarray,
) -> None: ...
