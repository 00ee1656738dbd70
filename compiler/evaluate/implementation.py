"""Which implementation evaluates compiled policies, and the one evaluator every caller uses.

Input: the environment (`DECIDE_PUREPYTHON=1` forces the pure-Python kernel;
`DECIDE_REQUIRE_CYTHON=1` makes a missing or broken extension an error, as
CI sets it) and a policy's `PolicyArrays`. Output: `IMPLEMENTATION`
("cython" or "python") and `Evaluator(arrays, input_plans)`.

`Evaluator` is the whole contract between the compiled policy and the
kernels: a row goes to the Cython kernel's GIL-free path when the extension
is built, and a row it bails on runs whole on the pure-Python kernel over the
same arrays (`compiler/evaluate/python_kernel.py`), which is the definition of
everything the fast path does not do itself and words every error.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from compiler.evaluate.python_kernel import Frame, Prepared, evaluate_arrays, evaluate_columns
from compiler.lower.arrays import PolicyArrays


def _load() -> tuple[ModuleType | None, ModuleType | None, ModuleType | None, str, str]:
    if os.environ.get("DECIDE_PUREPYTHON") == "1":
        return None, None, None, "python", "forced by DECIDE_PUREPYTHON=1"
    try:
        kernel = importlib.import_module("compiler._fastpath")
        encoder = importlib.import_module("compiler.evaluate._encode_columns")
        vouch = importlib.import_module("compiler.evaluate._vouch")
    except ImportError as exc:
        if os.environ.get("DECIDE_REQUIRE_CYTHON") == "1":
            raise RuntimeError(
                f"DECIDE_REQUIRE_CYTHON=1 but a Cython extension cannot be imported ({exc}); "
                "build it with `pip install -e .` or `python setup.py build_ext --inplace`"
            ) from exc
        reason = "the Cython extension is not built" if isinstance(exc, ModuleNotFoundError) else str(exc)
        return None, None, None, "python", reason
    return kernel, encoder, vouch, "cython", "compiler/_fastpath.pyx"


_kernel, _encoder, _vouch, IMPLEMENTATION, DETAIL = _load()


class Evaluator:
    """Evaluates one policy's arrays on the active implementation.

    Immutable after construction and safe to share across threads: every call
    builds its own machine (kernel) or frame (pure-Python kernel).
    """

    def __init__(
        self,
        arrays: PolicyArrays,
        input_plans: list[tuple] | None = None,
        *,
        kernel: bool = True,
        functions: Mapping[str, Any] | None = None,
    ) -> None:
        """`kernel=False` runs every row on the pure-Python kernel (to compare the two in one process).
        `functions` are the plugin functions the policy calls (`FunctionSpec` by name): the kernel bails on
        a row that reaches a call, and the pure-Python kernel calls them."""
        self.prepared = Prepared(arrays, functions)
        self.kernel = _kernel.Runner(arrays) if kernel and _kernel is not None else None
        # The input validator's fast checks, for vouching for plainly valid raw records (_vouch.pyx).
        self.input_checks = None if self.kernel is None or input_plans is None else _vouch.input_checks(input_plans)
        # Whether rows can take the GIL-free path at all (not with list inputs or outputs, or a collect table).
        self.native: bool = self.kernel is not None and self.kernel.native
        # Whether the GIL-free path calls Python for some instruction (round): a batch then uses one thread.
        self.native_takes_gil: bool = self.kernel is not None and self.kernel.native_takes_gil

    def evaluate(
        self, values: dict[str, Any], today: _dt.date, lists: dict[str, frozenset]
    ) -> tuple[dict[str, Any], list[str]]:
        """One validated record -> (outputs including `reasons`, trace), or the `EvaluationError`."""
        if self.native:
            decided = self.kernel.evaluate_native(values, today, lists)
            if decided is not None:
                return decided
        return evaluate_arrays(self.prepared, values, today, lists)

    def evaluate_record(
        self, record: Any, today: _dt.date, lists: dict[str, frozenset], ignore_extra: bool
    ) -> tuple[dict[str, Any], list[str]] | None:
        """A raw record the kernel can vouch for, decided on the GIL-free path with JSON output values; else None."""
        if not self.native:
            return None
        return _vouch.evaluate_record(self.kernel, self.input_checks, record, today, lists, ignore_extra)

    def new_frame(self, lists: dict[str, frozenset]) -> Frame:
        """A pure-Python frame for the rows of one batch (its strings, interned once per batch)."""
        frame = Frame(self.prepared)
        frame.lists = lists
        return frame

    def native_rows(self, *arguments: Any) -> int:
        """Rows of encoded columns on the GIL-free path (see `_fastpath.pyi`); only when `native`."""
        return self.kernel.native_rows(*arguments)

    def evaluate_columns(self, frame: Frame, *arguments: Any):
        """Rows of encoded columns on the pure-Python kernel (see `python_kernel.evaluate_columns`)."""
        return evaluate_columns(frame, *arguments)


def column_encoder():
    """The compiled `encode_numbers` (one pass per numeric input column in a batch), or None without it."""
    return None if _encoder is None else _encoder.encode_numbers


def describe() -> str:
    """One line for `decide version`, /healthz and decision logs."""
    if IMPLEMENTATION == "cython":
        return "compiled decision trees, Cython kernel (compiler/_fastpath.pyx)"
    return f"compiled decision trees, pure-Python evaluator ({DETAIL})"
