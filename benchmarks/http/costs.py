"""What a decision costs the server beyond what any JSON endpoint costs: each piece of the request path timed alone.

Input: `--rounds` (5) and `--calls` (2,000 per round). Output: a markdown table of µs per call (the median round)
for the pieces `DecisionService.decide` and the view run on the README's request — strict JSON decoding (and plain
orjson, for comparison), the API key check, the engine, the decision id, sealing the personal data (AES-GCM),
masking, the spool append, the metrics, the response encoding, the whole `decide` — and, off the request path but
on the same cores, storing one decision in the database (the shipper, in batches of 100). The service runs in this
process on the demo registry in a temporary directory, started as in a worker, with its shipper and refresher
stopped while the request path is timed: in a loop this fast the shipper would be busy all the time and every call
that releases the GIL (os.urandom, a write) would wait for it, which is a cost of its own (see BENCHMARKS.md), not
of the piece.

    python benchmarks/http/costs.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from benchmarks.http.run import BODY, POLICY, seed_registry  # noqa: E402
from decision_server.bench import temporary_directory  # noqa: E402

DECISION_ID = "0190f3a2-7b1c-7d3e-8f4a-1b2c3d4e5f60"


def timed(function: Callable[[], Any], calls: int, rounds: int) -> float:
    """µs per call, the median of `rounds` rounds of `calls` calls."""
    results = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            function()
        results.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    arguments = parser.parse_args(argv)
    from compiler.evaluate.json_input import loads
    from decision_server import create_app, metrics, sealing
    from decision_server.app import _encode
    from decision_server.service import uuid7
    from registry import decisions as decision_log

    rows: list[tuple[str, float]] = []
    with temporary_directory("decide-costs-") as directory:
        url, key, registry = seed_registry(directory)
        app = create_app({"database_url": url, "data_dir": str(directory / "data"), "plugins": False})
        service = app.extensions["decide"]
        service.start()
        try:
            header = f"Bearer {key}"
            api_key = service.authenticate(header)
            body = orjson.loads(BODY)
            record = body["input"]
            version = service.live.snapshot.policies[POLICY].champion
            reply = service.decide(api_key, POLICY, loads(BODY), time.perf_counter())
            segment = service.spool._segments[-1].path
            entry = orjson.loads(segment.read_bytes().splitlines()[-1])  # what that decision spooled

            def run(label: str, function: Callable[[], Any]) -> None:
                function()
                rows.append((label, timed(function, arguments.calls, arguments.rounds)))

            service.shipper.stop()
            service.live.stop()
            run("strict JSON decode of the body (`json_input.loads`)", lambda: loads(BODY))
            run("plain `orjson.loads` of the body (what bare Flask does)", lambda: orjson.loads(BODY))
            run("API key check (`authenticate`)", lambda: service.authenticate(header))
            run(
                "engine: `Policy.decide` with the trace",
                lambda: version.policy.decide(record, as_of="2026-01-01", lists=version.lists, trace=True),
            )
            run("decision id (`uuid7`)", uuid7)
            run("seal the pii values (AES-GCM)", lambda: service.sealer.seal(record, version.personal, DECISION_ID))
            run("mask the record", lambda: sealing.masked(record, version.personal))
            run(
                "spool append (orjson + write, fsync interval)",
                lambda: service.spool.append({**entry, "decision_id": uuid7()}),
            )
            run(
                "metrics of one request (counted in memory; published once a second)",
                lambda: (
                    metrics.record_request(POLICY, "1", "champion", 200, 0.001),
                    metrics.record_decision(POLICY, 10, [("decision", "approve"), ("risk_band", "A")]),
                ),
            )
            run(
                "publishing: the same four metrics written to the Prometheus values directly",
                lambda: (
                    metrics.requests(POLICY, "1", "champion", 200).inc(),
                    metrics.request_seconds(POLICY).observe(0.001),
                    metrics.engine_seconds(POLICY).observe(0.00001),
                    metrics.outcomes(POLICY, "decision", "approve").inc(),
                ),
            )
            run("response encoding (`_encode`: orjson + Response)", lambda: _encode(200, reply.body))
            run(
                "the whole `DecisionService.decide` (the pieces above but decode and encode, and its own code)",
                lambda: service.decide(api_key, POLICY, loads(BODY), time.perf_counter()),
            )
            batches = [[{**entry, "decision_id": uuid7()} for _ in range(100)] for _ in range(30)]
            started = time.perf_counter()
            for batch in batches:
                decision_log.store_decisions(registry, batch)
            rows.append(
                (
                    "shipper: store one decision (SQLite, batches of 100; off the request path)",
                    (time.perf_counter() - started) / 3000 * 1e6,
                )
            )
        finally:
            service.stop()
            registry.dispose()
    lines = ["| piece | µs per call |", "|---|---:|"]
    lines += [f"| {label} | {value:.1f} |" for label, value in rows]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
