"""Which implementation evaluates compiled policies: the Cython kernel or its pure-Python twin.

Input: the environment (`DECIDE_PUREPYTHON=1` forces the pure-Python twin;
`DECIDE_REQUIRE_CYTHON=1` makes a missing or broken extension an error, as
CI sets it). Output: `IMPLEMENTATION` ("cython" or "python") and
`runner(arrays)`, an object with `evaluate(values, today, lists)`.
"""

from __future__ import annotations

import importlib
import os

from compiler.evaluate.python_kernel import Frame, Prepared, evaluate_arrays, evaluate_columns
from compiler.lower.arrays import PolicyArrays


class _PythonRunner:
    def __init__(self, arrays: PolicyArrays) -> None:
        self.prepared = Prepared(arrays)

    def evaluate(self, values, today, lists):
        return evaluate_arrays(self.prepared, values, today, lists)

    def new_frame(self, lists):
        frame = Frame(self.prepared)
        frame.lists = lists
        return frame

    def evaluate_columns(self, frame, *arrays):
        return evaluate_columns(frame, *arrays)


def _load():
    if os.environ.get("DECIDE_PUREPYTHON") == "1":
        return None, "python", "forced by DECIDE_PUREPYTHON=1"
    try:
        _fastpath = importlib.import_module("compiler._fastpath")
    except ImportError as exc:
        if os.environ.get("DECIDE_REQUIRE_CYTHON") == "1":
            raise RuntimeError(
                f"DECIDE_REQUIRE_CYTHON=1 but the Cython extension compiler._fastpath cannot be imported ({exc}); "
                "build it with `pip install -e .` or `python setup.py build_ext --inplace`"
            ) from exc
        reason = "the Cython extension is not built" if isinstance(exc, ModuleNotFoundError) else str(exc)
        return None, "python", reason
    return _fastpath, "cython", "compiler/_fastpath.pyx"


_kernel, IMPLEMENTATION, DETAIL = _load()


def runner(arrays: PolicyArrays):
    if _kernel is not None:
        return _kernel.Runner(arrays)
    return _PythonRunner(arrays)


def column_encoder():
    """The kernel's `encode_numbers` (one pass per numeric input column in a batch), or None without it."""
    return None if _kernel is None else _kernel.encode_numbers


def describe() -> str:
    """One line for `decide version`, /healthz and decision logs."""
    if IMPLEMENTATION == "cython":
        return "compiled decision trees, Cython kernel (compiler/_fastpath.pyx)"
    return f"compiled decision trees, pure-Python evaluator ({DETAIL})"
