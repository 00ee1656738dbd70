"""An example Decide plugin: one implementation of each of the four hooks of `compiler.plugins`.

Input: nothing (each hook takes no argument). Output: the spec objects Decide collects from it —

- `annual_payment(principal: number, rate: number, years: int) -> number`, a function policies can call;
- the list source `sanctions`: a small static list of national ids, at revision `SANCTIONS_REVISION`;
- the enricher `example_bureau`: adds `bureau_score` (an int in [300..850]) computed from the record's
  `applicant_id`, the same for the same id every time;
- the listener `example_events`: appends every decision event to `EVENTS`, and to the file named by the
  environment variable `DECIDE_EXAMPLE_EVENTS` (one JSON line per event) when it is set.

Installed (`pip install examples/decide-example-plugin`), Decide finds it through its entry point in group
"decide"; not installed, pass the module itself: `plugin_manager(load_entry_points=False, plugins=[module])`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from typing import Any

from compiler.plugins import Enricher, FunctionSpec, Listener, ListSource, hookimpl

SANCTIONS_REVISION = "2026-01-15.1"
SANCTIONS = ["AB123456", "CD987654", "EF555555"]
KEY_FIELD = "applicant_id"
EVENTS: list[dict[str, Any]] = []
_EVENTS_LOCK = threading.Lock()  # a server decides on many threads; the list and the file are shared


def annual_payment(principal: float, rate: float, years: int) -> float:
    """The yearly payment that repays `principal` over `years` at `rate` a year (an annuity)."""
    if years < 1:
        # Raised on purpose: Decide reports it as the evaluation error `function_failed`, at the call.
        raise ValueError(f"years must be at least 1, not {years}")
    if rate == 0:
        return principal / years
    return principal * rate / (1 - (1 + rate) ** -years)


def fetch_sanctions() -> tuple[str, list[str]]:
    return SANCTIONS_REVISION, list(SANCTIONS)


def bureau_score(record: dict[str, Any]) -> dict[str, Any]:
    """{"bureau_score": 300..850} from the record's key, or {} when it has none (nothing to look up)."""
    key = record.get(KEY_FIELD)
    if key is None:
        return {}
    digest = hashlib.sha256(str(key).encode("utf-8")).digest()
    return {"bureau_score": 300 + int.from_bytes(digest[:4], "big") % 551}


def record_event(event: dict[str, Any]) -> None:
    with _EVENTS_LOCK:
        EVENTS.append(event)
        path = os.environ.get("DECIDE_EXAMPLE_EVENTS")
        if path:
            with open(path, "a", encoding="utf-8") as log:
                log.write(json.dumps(event, default=str, sort_keys=True) + "\n")


@hookimpl
def decide_functions() -> list[FunctionSpec]:
    return [
        FunctionSpec(
            "annual_payment",
            ("number", "number", "int"),
            "number",
            annual_payment,
            description="the yearly payment repaying principal over years at rate (an annuity)",
        )
    ]


@hookimpl
def decide_list_sources() -> list[ListSource]:
    return [ListSource("sanctions", "string", fetch_sanctions)]


@hookimpl
def decide_enrichers() -> list[Enricher]:
    return [Enricher("example_bureau", ("bureau_score",), bureau_score, timeout_seconds=0.2)]


@hookimpl
def decide_listeners() -> list[Listener]:
    return [Listener("example_events", record_event)]
