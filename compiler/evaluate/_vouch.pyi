"""What callers may use of `compiler/evaluate/_vouch.pyx`."""

import datetime as _dt
from typing import Any

from compiler._fastpath import Runner

def input_checks(plans: list[tuple]) -> list[tuple]: ...
def evaluate_record(
    runner: Runner,
    checks: list[tuple] | None,
    record: Any,
    today: _dt.date,
    lists: dict[str, frozenset],
    ignore_extra: bool,
) -> tuple[dict[str, Any], list[str]] | None: ...
