"""A soak of the decision endpoint: a steady rate for ten minutes, every error counted, memory sampled.

Input: `--minutes` (10), `--rate` (requests/s over all connections), `--connections`, `--sample` (seconds between
memory samples, 10). Output: a markdown summary on standard output (and `--out FILE`): requests, errors and
statuses, the rate reached, p50 / p99 (each request timed from when it was due, so a stall is not hidden), the
resident memory of gunicorn's master and workers (read from /proc) at each sample, its growth from the first
minute to the end, and whether every answered decision reached the decision log.

The server is `decide serve` on a throwaway SQLite registry with the demo data (as `run.py` starts it: gthread,
workers = cores + 1, 2 threads, preloaded, the decision log on), on a free loopback port; the client is the paced
Python client of `decision_server.bench`. A script, not a test (it is not run by CI):

    python benchmarks/http/soak.py --minutes 10 --rate 500 --out /tmp/soak.md
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.http.run import BODY, PATH, POLICY, load_average, logged_counts, machine, seed_registry  # noqa: E402
from decision_server.bench import (  # noqa: E402
    LoadResult,
    ServerProcess,
    drive,
    free_port,
    process_tree_rss,
    temporary_directory,
)


def _mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=500.0, help="Requests per second over all connections.")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--sample", type=float, default=10.0, help="Seconds between memory samples.")
    parser.add_argument("--out", help="Also write the summary to this file.")
    arguments = parser.parse_args(argv)
    seconds = arguments.minutes * 60
    facts = machine()
    samples: list[tuple[float, int, int]] = []  # (seconds since the start, total RSS, processes)
    outcome: dict[str, Any] = {}
    with temporary_directory("decide-soak-") as directory:
        url, key, registry = seed_registry(directory)
        port = free_port()
        command = [sys.executable, "-m", "decide_cli", "serve", "--db", url, "--data-dir", str(directory / "data")]
        command += ["--port", str(port)]
        before = logged_counts(registry)[0]
        try:
            with ServerProcess(command, port, directory / "server.log", {"PYTHONPATH": str(REPO)}) as server:
                server.wait_ready()
                time.sleep(3)  # every worker booted, so the connections spread over them

                def load() -> None:
                    outcome["load"] = drive(
                        "127.0.0.1", port, PATH, [BODY], {"Authorization": f"Bearer {key}"},
                        seconds=seconds, connections=arguments.connections, rate=arguments.rate,
                    )  # fmt: skip

                driver = threading.Thread(target=load, daemon=True)
                started = time.monotonic()
                driver.start()
                while driver.is_alive():
                    rss = process_tree_rss(server.pid)
                    samples.append((time.monotonic() - started, sum(rss.values()), len(rss)))
                    print(f"{samples[-1][0]:6.0f} s  RSS {_mib(samples[-1][1])} ({len(rss)} processes)", flush=True)
                    driver.join(arguments.sample)
                rss = process_tree_rss(server.pid)
                samples.append((time.monotonic() - started, sum(rss.values()), len(rss)))
                result: LoadResult = outcome["load"]
                expected = result.count(200, 422)
                waited = time.monotonic()
                while logged_counts(registry)[0] - before < expected and time.monotonic() - waited < 60:
                    time.sleep(0.1)
                logged = logged_counts(registry)[0] - before
                lag = time.monotonic() - waited
        finally:
            registry.dispose()
    p50, p99 = result.percentiles()
    after_first_minute = next((sample for sample in samples if sample[0] >= 60), samples[0])
    peak = max(sample[1] for sample in samples)
    lines = [
        f"**Machine:** {facts['cpu']}, {facts['cores']} cores, {facts['memory']} RAM, {facts['os']}, "
        f"{facts['python']}; load average at the end {load_average():.2f}.",
        "",
        f"**Soak:** {arguments.minutes:g} minutes at {arguments.rate:g} requests/s over {arguments.connections} "
        f"keep-alive connections (the Python client of decision_server.bench, paced), the README's request to "
        f"`{POLICY}`, `decide serve` with the decision log on, memory sampled every {arguments.sample:g} s.",
        "",
        "| requests | errors | statuses | rate reached | p50 | p99 | RSS at 1 min | RSS at the end | peak | "
        "growth after 1 min | decision log |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {result.requests:,} | {result.errors} | {result.statuses} | {result.per_second:,.0f}/s | "
        f"{p50 / 1000:.2f} ms | {p99 / 1000:.2f} ms | {_mib(after_first_minute[1])} | {_mib(samples[-1][1])} | "
        f"{_mib(peak)} | {_mib(samples[-1][1] - after_first_minute[1])} | {logged:,} of {expected:,} answered "
        f"decisions stored ({lag:.1f} s after the load) |",
        "",
        "RSS samples (seconds: MiB, master and workers together): "
        + ", ".join(f"{sample[0]:.0f}: {sample[1] / 2**20:.0f}" for sample in samples),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if arguments.out:
        Path(arguments.out).write_text(text, encoding="utf-8")
    return 0 if result.errors == 0 and logged >= expected else 1


if __name__ == "__main__":
    sys.exit(main())
