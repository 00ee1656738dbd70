"""What storing one decision-log row costs the shipper on SQLite: one row per driver call (`executemany`) against
`store_decisions`' statements of ROWS_PER_STATEMENT rows, each alone and beside a busy thread.

Input: none (a throwaway registry of the real schema, rows of the size the README's request logs). Output: CPU
and wall microseconds a row for each case, as text. The busy thread stands in for a worker's request threads: it
runs Python and releases the GIL often, as socket I/O does. A driver releases the GIL around every statement it
runs, so one statement a row costs two thread switches a row once another thread wants the GIL; that, not
SQLite, was most of the shipper's cost under gunicorn.

    python benchmarks/http/store_rows.py [--rows 20000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from decision_server.service import uuid7  # noqa: E402
from registry import Registry, migrate  # noqa: E402
from registry import decisions as decision_log  # noqa: E402

RECORD = {
    "logged_at": "2026-12-03T12:49:46.191477+00:00",
    "policy": "consumer_loan",
    "version": 1,
    "content_hash": "3cf0773ad33b3cbbfdc105e0c6bdc98ea3d3b8751e1b81458ce3cace73ca78ee",
    "arm": "champion",
    "status": "decided",
    "key_id": "cdcae4528b8c",
    "as_of": "2026-12-03",
    "record": {"age": 59, "DebtRatio": 0.2, "MonthlyIncome": 8000, "NumberOfDependents": 2, "national_id": "****3456"},
    "sealed_pii": "v2.GFxlHlWpW-xJ_feCtN4XX4OrzUUdyosm1VrAKrZQzaMrNKqCj4Kjz3nF5gqQIrb2ViuSI9FC",
    "outputs": {"decision": "approve", "limit": 24000, "apr": 0.079, "score": 705, "risk_band": "A"},
    "reasons": [],
    "trace": ["knockouts:-", "risk_score:3,1,1,4,2,1", "band:1", "pricing:1.1", "summary:D01", "final:A01"],
    "lists": {"blacklist": "1"},
    "engine": "cython",
    "engine_us": 464,
    "total_us": 555,
    "served_by": "host:301",
}


def _busy(stop: threading.Event) -> None:
    value = {"a": list(range(50))}
    while not stop.is_set():
        for _ in range(30):
            orjson.loads(orjson.dumps(value))
        time.sleep(0)  # releases the GIL, as a socket call does


def _one_row_per_call(registry: Registry, records: list[dict]) -> None:
    rows = [decision_log._row_values(record, registry.dialect) for record in records]
    with registry.write(exclusive=False) as session:
        session.connection().exec_driver_sql(decision_log._store_sql(registry.dialect, 1), rows)


def measure(rows: int) -> list[tuple[str, float, float]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="decide-store-rows-") as directory:
        registry = Registry(f"sqlite:///{directory}/registry.db")
        migrate.upgrade(registry)
        for contended in (False, True):
            for name, store in (("one row per call", _one_row_per_call), ("store_decisions", None)):
                records = [{**RECORD, "decision_id": uuid7()} for _ in range(rows)]
                stop = threading.Event()
                busy = threading.Thread(target=_busy, args=(stop,), daemon=True)
                if contended:
                    busy.start()
                cpu, wall = time.thread_time(), time.perf_counter()
                for start in range(0, rows, 500):
                    batch = records[start : start + 500]
                    (store or decision_log.store_decisions)(registry, batch)
                cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
                stop.set()
                if contended:
                    busy.join()
                label = f"{name}{', beside a busy thread' if contended else ''}"
                results.append((label, cpu / rows * 1e6, wall / rows * 1e6))
        registry.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    arguments = parser.parse_args(argv)
    print(f"{'':45} {'CPU µs/row':>11} {'wall µs/row':>12}")
    for label, cpu, wall in measure(arguments.rows):
        print(f"{label:45} {cpu:11.1f} {wall:12.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
