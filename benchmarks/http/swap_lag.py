"""How soon an activation reaches every worker of a live `decide serve` under load: the hot-swap goal (1 s).

Input: how many activations, the load (threads × rate), the database (`--db`: a PostgreSQL URL; default a
throwaway SQLite file). Output: one line per activation with its lag — the time from the activation's commit to
the last request *sent after it* that was still answered by the previous version — and the maximum, as text or
JSON. Loopback only, bounded in time (about 3 s per activation). Uses the live tests' server and load helpers
(tests/server/live.py), so this measures exactly what those tests check.

    python benchmarks/http/swap_lag.py [--activations 10] [--db postgresql://… | --postgresql] [--format json]

`--postgresql` starts a throwaway PostgreSQL cluster of its own on loopback (the tests' `tests/databases.py`:
Debian's `postgresql` binaries, nothing to set up) and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from registry import Registry, demo, deployments, migrate, users  # noqa: E402
from tests.server.live import POLICY, Load, ServerProcess, add_probe_policy  # noqa: E402


def measure(db_url: str, work: Path, activations: int, threads: int, rate: float) -> list[float]:
    registry = Registry(db_url)
    migrate.upgrade(registry)
    demo.seed(registry)
    key = add_probe_policy(registry)
    dora = users.get_user(registry, "dora")
    server = ServerProcess(db_url, work / "data", work / "serve.log").start()
    changes: list[tuple[float, int]] = []
    try:
        with Load(server.port, key, threads=threads, rate=rate, max_seconds=activations * 3 + 10) as load:
            time.sleep(1.0)
            champion = 1
            for step in range(activations):
                champion = 2 if champion != 2 else 3
                deployments.activate(registry, dora, POLICY, champion, note=f"swap lag {step}")
                changes.append((load.now(), champion))
                time.sleep(2.5)
        outcomes = load.outcomes
    finally:
        server.close()
        registry.dispose()
    lags = []
    ends = [*(when for when, _ in changes[1:]), float("inf")]
    for (when, champion), until in zip(changes, ends):
        stale = [
            o.sent - when
            for o in outcomes
            if when <= o.sent < until and o.status == 200 and o.body["version"] != champion
        ]
        lags.append(max(stale, default=0.0))
    return lags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--activations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rate", type=float, default=150.0, help="requests per second per thread")
    parser.add_argument("--db", help="a PostgreSQL URL (default: a throwaway SQLite file)")
    parser.add_argument("--postgresql", action="store_true", help="on a throwaway PostgreSQL cluster of its own")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="decide-swap-") as directory, ExitStack() as stack:
        work = Path(directory)
        db_url = options.db or f"sqlite:///{work / 'registry.db'}"
        if options.postgresql:
            from tests.databases import running_postgresql

            db_url = stack.enter_context(stack.enter_context(running_postgresql()).database())
        lags = measure(db_url, work, options.activations, options.threads, options.rate)
    backend = db_url.split(":", 1)[0]
    if options.format == "json":
        print(json.dumps({"backend": backend, "lags_s": lags, "max_s": max(lags)}))
        return
    for number, lag in enumerate(lags, start=1):
        print(f"activation {number}: {lag * 1000:.0f} ms")
    print(
        f"{backend}: max {max(lags) * 1000:.0f} ms, median {sorted(lags)[len(lags) // 2] * 1000:.0f} ms (goal: 1000 ms)"
    )


if __name__ == "__main__":
    main()
