"""Prometheus metrics of the decision server, correct under gunicorn's several worker processes.

Input: observations from the request path, the shipper and the background threads. Output: the Prometheus
text exposition for `/metrics`. When PROMETHEUS_MULTIPROC_DIR is set (decide serve sets it, before this module
is imported, and wipes it at start), every worker writes its values to that directory and `/metrics` sums them
with a `MultiProcessCollector`; otherwise (one process, the Flask test client) the default registry is used.

The four request metrics (requests, request and engine seconds, outcomes) are counted by the request threads in
plain dicts (`Pending`) and published to their Prometheus values in bulk, once a second by each worker's
publisher thread and before every exposition in that process: a multiprocess value's update takes a lock, checks
the process id and writes its mmap, 2–3 µs each and seven of them a request. So a scrape may miss another
worker's last second; nothing is lost.

Labels never carry input values: policy (a served policy's name; any other name a request's path holds counts as
"(not served)"), version, arm, HTTP status, and for outcomes only outputs whose values are a declared set
(`in {...}`) or booleans, so no personal value and no unbounded label can reach a metric.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

REQUESTS = Counter(
    "decide_requests",
    "Decision requests by policy, version, arm and HTTP status",
    ["policy", "version", "arm", "status"],
)
REQUEST_SECONDS = Histogram(
    "decide_request_seconds", "Server time of a decision request", ["policy"], buckets=LATENCY_BUCKETS
)
ENGINE_SECONDS = Histogram(
    "decide_engine_seconds",
    "Engine time (validation and evaluation) of a decision",
    ["policy"],
    buckets=LATENCY_BUCKETS,
)
OUTCOMES = Counter(
    "decide_decision_outcomes",
    "Decisions by output value (outputs with a declared set of values)",
    ["policy", "output", "value"],
)
LOG_BACKLOG = Gauge(
    "decide_decision_log_backlog", "Decisions spooled and not yet stored in the database", multiprocess_mode="livesum"
)
LOG_SHIPPED = Counter("decide_decision_log_shipped", "Decisions stored in the database from the spool")
LOG_SHIP_FAILURES = Counter("decide_decision_log_ship_failures", "Failed attempts to store spooled decisions")
SHADOW_DROPPED = Counter("decide_shadow_dropped", "Shadow evaluations dropped because their queue was full")
SHADOW_SECONDS = Histogram(
    "decide_shadow_seconds", "Engine time of shadow evaluations", ["policy"], buckets=LATENCY_BUCKETS
)
LISTENER_FAILURES = Counter("decide_listener_failures", "Decision listeners that raised", ["listener"])
ENRICHER_FAILURES = Counter("decide_enricher_failures", "Enrichers that failed or timed out", ["enricher"])
SWAPS = Counter("decide_deployment_swaps", "Deployments swapped in by a worker", ["policy"])


class Children:
    """A labelled metric's children by their label values, looked up in a dict: `labels()` checks its arguments
    and takes a lock on every call, a tenth of a request's metrics time. The label values are bounded (see above),
    and so is the cache; past `limit` children it simply calls `labels()`."""

    def __init__(self, metric: Any, limit: int = 10_000) -> None:
        self.metric, self.limit = metric, limit
        self._children: dict[tuple[Any, ...], Any] = {}

    def __call__(self, *values: Any) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self.metric.labels(*values)
            if len(self._children) < self.limit:
                self._children[values] = child
        return child


requests = Children(REQUESTS)
request_seconds = Children(REQUEST_SECONDS)
engine_seconds = Children(ENGINE_SECONDS)
outcomes = Children(OUTCOMES)


class Pending:
    """Counter and histogram updates not yet published: request threads add to dicts under one lock (a fraction
    of a microsecond), `publish` moves the sums into the Prometheus values, one update per child and bucket."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a lock held at fork would never be released

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Any, float] = {}
        self._observed: dict[Any, list[float]] = {}  # histogram child -> observations per bucket, then their sum

    def inc(self, child: Any, amount: float = 1.0) -> None:
        with self._lock:
            self._counts[child] = self._counts.get(child, 0.0) + amount

    def observe(self, child: Any, value: float) -> None:
        # The bucket Histogram.observe would count it in: the first upper bound it does not exceed (the last is +Inf).
        bucket = bisect_left(child._upper_bounds, value)
        with self._lock:
            slots = self._observed.get(child)
            if slots is None:
                slots = self._observed[child] = [0.0] * (len(child._upper_bounds) + 1)
            slots[bucket] += 1
            slots[-1] += value

    def publish(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
            observed, self._observed = self._observed, {}
        for child, amount in counts.items():
            child.inc(amount)
        for child, slots in observed.items():
            # prometheus_client has no bulk observe: these are the values Histogram.observe itself updates
            # (tests/server/test_metrics.py compares the two).
            child._sum.inc(slots[-1])
            for bucket, count in enumerate(slots[:-1]):
                if count:
                    child._buckets[bucket].inc(count)


pending = Pending()


def record_request(policy_label: str, version: str, arm: str, status: int, seconds: float) -> None:
    pending.inc(requests(policy_label, version, arm, status))
    pending.observe(request_seconds(policy_label), seconds)


def record_decision(policy: str, engine_us: int, categorical: list[tuple[str, str]]) -> None:
    """A decided request: its engine time and the values of its categorical outputs (name, value as text)."""
    pending.observe(engine_seconds(policy), engine_us / 1e6)
    for name, value in categorical:
        pending.inc(outcomes(policy, name, value))


class Publisher:
    """The thread that publishes `pending` every `interval` seconds (one per worker process)."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="decide-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            pending.publish()

    def stop(self) -> None:
        self._stop.set()
        pending.publish()


def exposition() -> tuple[bytes, str]:
    """The metrics text and its content type (this process's pending updates published first)."""
    pending.publish()
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
