"""What callers may use of the Cython kernel (`compiler/_fastpath.pyx`); `compiler.evaluate.implementation` is the
only module that calls it."""

import datetime as _dt
from typing import Any

import numpy as np

from compiler.lower.arrays import PolicyArrays

NATIVE_REASONS_CAPACITY: int

def constants() -> dict[str, int]: ...

class Runner:
    native: bool
    native_takes_gil: bool
    def __init__(self, arrays: PolicyArrays) -> None: ...
    def evaluate_native(
        self, record: dict[str, Any], today: _dt.date, lists: dict[str, frozenset]
    ) -> tuple[dict[str, Any], list[str]] | None: ...
    def native_rows(
        self,
        inputs: np.ndarray,
        inputs_missing: np.ndarray,
        today: np.ndarray,
        status: np.ndarray,
        out_values: np.ndarray,
        out_missing: np.ndarray,
        members: np.ndarray,
        start: int,
        end: int,
        reason_count: np.ndarray,
        reason_ids: np.ndarray,
        n_strings: int,
        leaf_events: np.ndarray | None = None,
        statement_events: np.ndarray | None = None,
    ) -> int: ...
