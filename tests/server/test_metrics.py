"""The request metrics are counted in memory and published in bulk (decision_server.metrics.Pending): what a scrape
shows must be exactly what the same updates made one by one would show — counters and every histogram bucket —
however many threads count at once, and a forked worker must not publish its parent's pending updates."""

from __future__ import annotations

import os
import threading

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram

from decision_server.metrics import LATENCY_BUCKETS, Pending

SECONDS = st.one_of(
    st.sampled_from([0.0, *LATENCY_BUCKETS, 2.5]),  # exactly on a bound: Histogram counts it in that bucket
    st.floats(min_value=0.0, max_value=5.0, allow_nan=False),
)


def _samples(registry: CollectorRegistry) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every sample but the `_created` times (which differ between two metrics made a moment apart)."""
    return sorted(
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    )


def _pair() -> tuple[CollectorRegistry, Histogram, Counter, CollectorRegistry, Histogram, Counter]:
    one_by_one, bulk = CollectorRegistry(), CollectorRegistry()
    made = []
    for registry in (one_by_one, bulk):
        histogram = Histogram("t_seconds", "t", ["policy"], buckets=LATENCY_BUCKETS, registry=registry)
        counter = Counter("t_requests", "t", ["policy", "status"], registry=registry)
        made.append((registry, histogram, counter))
    return (*made[0], *made[1])  # type: ignore[return-value]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), SECONDS, st.sampled_from([200, 422])), max_size=40))
def test_published_in_bulk_is_what_one_by_one_would_show(updates: list[tuple[str, float, int]]) -> None:
    expected_registry, expected_histogram, expected_counter, registry, histogram, counter = _pair()
    pending = Pending()
    for policy, seconds, status in updates:
        expected_histogram.labels(policy).observe(seconds)
        expected_counter.labels(policy, status).inc()
        pending.observe(histogram.labels(policy), seconds)
        pending.inc(counter.labels(policy, status))
    pending.publish()
    assert _samples(registry) == _samples(expected_registry)
    pending.publish()  # nothing is published twice
    assert _samples(registry) == _samples(expected_registry)


def test_threads_counting_at_once_lose_nothing() -> None:
    _, _, _, registry, histogram, counter = _pair()
    pending = Pending()
    child, timing = counter.labels("a", 200), histogram.labels("a")

    def count() -> None:
        for _ in range(5000):
            pending.inc(child)
            pending.observe(timing, 0.0003)

    threads = [threading.Thread(target=count) for _ in range(4)]
    publishing = threading.Event()

    def publish_meanwhile() -> None:
        while not publishing.is_set():
            pending.publish()

    publisher = threading.Thread(target=publish_meanwhile)
    publisher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    publishing.set()
    publisher.join()
    pending.publish()
    assert registry.get_sample_value("t_requests_total", {"policy": "a", "status": "200"}) == 20_000
    assert registry.get_sample_value("t_seconds_count", {"policy": "a"}) == 20_000
    assert registry.get_sample_value("t_seconds_bucket", {"policy": "a", "le": "0.00025"}) == 0
    assert registry.get_sample_value("t_seconds_bucket", {"policy": "a", "le": "0.0005"}) == 20_000


def test_a_forked_worker_does_not_publish_its_parents_pending_updates() -> None:
    _, _, _, registry, _, counter = _pair()
    pending = Pending()
    pending.inc(counter.labels("a", 200), 7)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            pending.inc(counter.labels("a", 200), 2)
            pending.publish()
            os.write(
                write_end, str(registry.get_sample_value("t_requests_total", {"policy": "a", "status": "200"})).encode()
            )
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        in_child = pipe.read().decode()
    os.waitpid(child, 0)
    pending.publish()
    assert in_child == "2.0"
    assert registry.get_sample_value("t_requests_total", {"policy": "a", "status": "200"}) == 7
