"""What pytest-benchmark does not report itself, added to a benchmark's extra_info."""

from __future__ import annotations


def record_p99(benchmark) -> None:
    """The 99th percentile of the round timings, in µs, as extra_info["p99_us"]."""
    stats = getattr(getattr(benchmark, "stats", None), "stats", None)
    data = sorted(getattr(stats, "data", None) or [])
    if data:
        benchmark.extra_info["p99_us"] = round(data[min(len(data) - 1, int(0.99 * len(data)))] * 1e6, 2)
