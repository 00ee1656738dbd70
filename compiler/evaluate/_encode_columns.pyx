# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Arrow numeric and date32 columns -> the kernel's encoded values, in one C pass per chunk.

Input: one chunk of an Arrow column (its values buffer as a typed memoryview
and its validity bitmap) and the input's declaration (bias, whole, range,
required). Output: encoded values, missing flags and the rows the
single-record validator must decide. `compiler/evaluate/arrow_columns.py`
calls it, and has the numpy twin it must equal.
"""

from libc.math cimport fabs, floor

cdef double MAX_EXACT_INT = 9007199254740992.0


ctypedef fused column_value:
    double
    float
    signed char
    short
    int
    long long
    unsigned char
    unsigned short
    unsigned int
    unsigned long long


def encode_numbers(const column_value[::1] raw, const unsigned char[::1] validity, Py_ssize_t bit_offset,
                   double bias, bint whole, bint has_range, double low, double high, int closed, bint required,
                   double[::1] out_value, unsigned char[::1] out_missing, unsigned char[::1] needs_check):
    """One chunk of a numeric (or date32) Arrow column -> encoded values, missing flags, rows to check.

    The twin of the numpy code in `compiler/evaluate/arrow_columns.py`: a present value is encoded as `value + bias`
    and is plainly fine when it is finite, below 2**53 in size, whole if `whole`, and inside the
    range (`closed`: 1 low end closed, 2 high end closed) if `has_range`. A row that is not plainly
    fine, or is null where the input is `required`, gets `needs_check` set (never cleared): the
    single-record validator decides it and words its error. `validity` is the Arrow validity bitmap
    (empty: no nulls), starting at bit `bit_offset`.
    """
    cdef Py_ssize_t n = raw.shape[0], i, bit
    cdef bint has_validity = validity.shape[0] > 0
    cdef double x
    if not (out_value.shape[0] == out_missing.shape[0] == needs_check.shape[0] == n) or (
            has_validity and validity.shape[0] * 8 < bit_offset + n):
        raise ValueError("encode_numbers: the arrays do not fit each other")
    with nogil:
        for i in range(n):
            if has_validity:
                bit = bit_offset + i
                if not (validity[bit >> 3] >> (bit & 7)) & 1:
                    out_value[i] = 0.0
                    out_missing[i] = 1
                    if required:
                        needs_check[i] = 1
                    continue
            x = <double> raw[i] + bias
            out_value[i] = x
            out_missing[i] = 0
            if not (fabs(x) < MAX_EXACT_INT) or (whole and floor(x) != x) or (has_range and not (
                    (x >= low if closed & 1 else x > low) and (x <= high if closed & 2 else x < high))):
                needs_check[i] = 1
