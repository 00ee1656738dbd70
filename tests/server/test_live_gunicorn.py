"""The decision server live: `decide serve` under gunicorn (2 gthread workers) in a subprocess on loopback, a
bounded load generator posting decisions on keep-alive connections, and the guarantees of issue 9 checked
from outside, as an operator would see them.

- Hot swap (SQLite, PostgreSQL): while 4 clients send decisions for ~10 s, versions 2 and 3 of a probe policy
  are activated, version 1 is rolled back to and the blacklist changes. Every response is a 200, none mixes
  versions (each response's `version` is its `generation` output), the blacklist answer always matches the
  list revision the response names, and each change reaches every worker (how soon: benchmarks/http/swap_lag.py).
- Database down (PostgreSQL, a cluster of the test's own): stopped for 30 s under load (`pg_ctl stop -m
  fast`), every request is still answered 200 (served from memory, spooled); started again, every answered
  decision id is in the `decisions` table afterwards (waiting up to 60 s), none twice.
- `kill -9` (SQLite, PostgreSQL): of one worker under load — gunicorn restarts it, requests in flight on it
  may get no answer, but every decision answered 200 is stored, none twice, and the dead worker's spool
  segment is shipped and deleted by the others; of the whole server under load, then a restart on the same
  data directory — the new workers ship the orphaned segments.
- /metrics sums across the workers: after N requests spread over both, decide_requests_total for the policy
  is exactly N, and the decision-log backlog gauge returns to 0.
- A graceful stop (SIGTERM to the master) ships the spool before the process exits: every answered id is
  stored at that moment, and the spool holds no segment.

Why live: these properties live in gunicorn's process model (fork, preload, worker restarts, signals), in a
real database going away and in the spool's files surviving a killed process — nothing the Flask test client
runs. The measurements (swap latency, shipping time after the outage) are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from registry import Registry, demo, deployments, lists, migrate, users
from registry import decisions as decision_log
from tests.databases import PostgresServer, running_postgresql
from tests.server.live import (
    LISTED,
    POLICY,
    Load,
    Outcome,
    ServerProcess,
    add_probe_policy,
    answered,
    blacklist_add,
    duplicate_ids,
    served_by,
    spool_segments,
    summary,
    wait_stored,
)

pytestmark = pytest.mark.live
# Every change must reach every worker. How soon is a speed goal (1 s: a 0.25 s poll, then compiling the new
# version off the request path), measured by benchmarks/http/swap_lag.py and reported in BENCHMARKS.md, never a
# timed assertion here: this bound only catches a change that is never picked up. The lags are printed.
SWAP_BOUND = 10.0
StartServer = Callable[..., ServerProcess]


@pytest.fixture
def probe_key(registry: Registry, seeded: demo.DemoSeed) -> str:
    """The demo data plus the probe policy (versions 1..3 approved, 1 live); its API key."""
    return add_probe_policy(registry)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[StartServer]:
    """Starts `decide serve` processes on `tmp_path/data` (all of a test's share it); kills what is left after."""
    started: list[ServerProcess] = []

    def start(db_url: str, **options: Any) -> ServerProcess:
        server = ServerProcess(db_url, tmp_path / "data", tmp_path / f"serve-{len(started) + 1}.log", **options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.close()


def _failures(outcomes: list[Outcome], server: ServerProcess) -> str:
    bad = [outcome for outcome in outcomes if outcome.status != 200][:5]
    return f"{summary(outcomes)}; first failures: {bad}\nserver log:\n{server.log_tail()}"


def _segments_of(data_dir: Path, pid: int) -> list[Path]:
    return [path for path in spool_segments(data_dir) if path.stem.endswith(f"-{pid}")]


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


# ----------------------------------------------------------------------------------------------- hot swap


def test_hot_swap_under_load_fails_no_request_and_mixes_no_versions(
    registry: Registry, probe_key: str, servers: StartServer
) -> None:
    server = servers(registry.url)
    dora = users.get_user(registry, "dora")
    revision_before = next(item.revision for item in lists.list_lists(registry) if item.name == "blacklist")
    listed_from = revision_before + 1
    # (what, champion afterwards): each change, then 2 s of load on it.
    steps: list[tuple[str, int]] = [("activate", 2), ("activate", 3), ("list", 3), ("rollback", 1), ("activate", 2)]
    changes: list[tuple[float, int, int]] = [(0.0, 1, revision_before)]  # (when, champion, list revision)
    with Load(server.port, probe_key, applicant=lambda n: LISTED if n % 4 == 0 else f"A-{n % 1000}") as load:
        time.sleep(1.0)
        for what, champion in steps:
            revision = changes[-1][2]
            if what == "activate":
                deployments.activate(registry, dora, POLICY, champion, note="live: hot swap")
            elif what == "rollback":
                deployments.rollback(registry, dora, POLICY, champion, note="live: roll back")
            else:
                revision = blacklist_add(registry, [LISTED])
                assert revision == listed_from
            changes.append((load.now(), champion, revision))
            time.sleep(2.0)
    outcomes = load.outcomes

    assert len(outcomes) > 1000, summary(outcomes)
    assert all(outcome.status == 200 for outcome in outcomes), _failures(outcomes, server)
    mixed = [o for o in outcomes if o.body["outputs"]["generation"] != str(o.body["version"])]
    assert not mixed, f"{len(mixed)} mixed-version response(s), e.g. {mixed[:3]}"
    wrong_list = [
        o
        for o in outcomes
        if o.body["outputs"]["listed"] != (o.applicant == LISTED and int(o.body["lists"]["blacklist"]) >= listed_from)
    ]
    assert not wrong_list, f"{len(wrong_list)} response(s) disagree with their list revision, e.g. {wrong_list[:3]}"
    assert {o.body["version"] for o in outcomes} == {1, 2, 3}

    # Each change reached every worker soon: no request sent more than SWAP_BOUND after it shows the state
    # before it (a request in flight at the swap finishes on the version it started with).
    lags = []
    for (when, champion, revision), until in zip(changes[1:], [*(c[0] for c in changes[2:]), float("inf")]):
        stale = [
            o.sent - when
            for o in outcomes
            if when <= o.sent < until
            and (o.body["version"] != champion or int(o.body["lists"]["blacklist"]) != revision)
        ]
        fresh = [o for o in outcomes if when <= o.sent < until and o.body["version"] == champion]
        assert fresh, f"no response on the state after the change at {when:.2f} s"
        lags.append(max(stale, default=0.0))
    print(f"\nhot swap [{registry.dialect}]: {summary(outcomes)}; swap lag per change (s): {lags}")
    assert max(lags) < SWAP_BOUND, f"a change took {max(lags):.2f} s to reach every worker: {lags}"

    wait_stored(registry, answered(outcomes))
    assert not duplicate_ids(registry)


# ----------------------------------------------------------------------------------------------- database down


@pytest.fixture
def own_cluster() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this test's own: it is stopped mid-test, which the session's must never be."""
    with running_postgresql() as server:
        yield server


def test_database_down_for_30_s_under_load_loses_nothing(
    own_cluster: PostgresServer, servers: StartServer, tmp_path: Path
) -> None:
    with own_cluster.database() as url:
        registry = Registry(url)
        server = None
        try:
            migrate.upgrade(registry)
            demo.seed(registry)
            key = add_probe_policy(registry)
            server = servers(url)
            # 4 clients at 60 decisions/s each: ~7,000 decisions spooled during the outage, which the shippers
            # store in a few seconds (each ships roughly 1,000 a second to PostgreSQL on a busy 2-core machine).
            with Load(server.port, key, rate=60.0) as load:
                time.sleep(3.0)
                own_cluster.executor.stop()  # pg_ctl stop -m fast
                down_at = load.now()
                time.sleep(2.0)
                status, body = server.get("/readyz")
                assert status == 503, body  # the outage is real: the workers see it
                time.sleep(28.0)
                own_cluster.executor.start()
                up_at = load.now()
                restarted = time.monotonic()
                time.sleep(2.0)
            outcomes = load.outcomes
            during = [o for o in outcomes if down_at <= o.sent < up_at]
            assert len(during) > 1000, summary(during)
            assert all(o.status == 200 for o in outcomes), _failures(outcomes, server)

            ids = answered(outcomes)
            assert len(set(ids)) == len(ids)
            wait_stored(registry, ids, timeout=60.0 - (time.monotonic() - restarted))
            shipped_after = time.monotonic() - restarted
            assert not duplicate_ids(registry)
            _wait(lambda: server.get("/readyz")[0] == 200, 10.0, "/readyz to be 200 again")
            print(
                f"\ndatabase down {up_at - down_at:.1f} s: {len(during)} decisions answered meanwhile "
                f"({summary(outcomes)} in all); every answered id stored {shipped_after:.1f} s after the restart"
            )
        finally:
            if not own_cluster.executor.running():
                own_cluster.executor.start()  # the database is dropped on the way out
            if server is not None:
                server.close()
            registry.dispose()


# ----------------------------------------------------------------------------------------------- kill -9


def test_kill_9_of_a_worker_under_load_loses_no_answered_decision(
    registry: Registry, probe_key: str, servers: StartServer, tmp_path: Path
) -> None:
    server = servers(registry.url)
    with Load(server.port, probe_key) as load:
        time.sleep(2.5)
        # The keep-alive connections may all have gone to one worker (the kernel's choice): kill one that has
        # answered, as the log says, so that its answers are among those checked below.
        so_far = answered(list(load.outcomes))
        wait_stored(registry, so_far)
        serving = {int(name.rsplit(":", 1)[1]) for name in served_by(registry, so_far)}
        victim = server.kill_worker(among=serving)
        killed_at = load.now()
        assert _segments_of(tmp_path / "data", victim), "the killed worker left no spool segment"
        server.wait_workers(exclude={victim})
        restarted_at = load.now()
        time.sleep(2.5)
    outcomes = load.outcomes

    # Requests in flight on the killed worker may get no answer; none gets an HTTP error.
    assert all(o.status in (200, None) for o in outcomes), _failures(outcomes, server)
    assert any(o.status == 200 and o.sent > restarted_at for o in outcomes), "nothing answered after the restart"
    ids = answered(outcomes)
    assert len(set(ids)) == len(ids)
    took = wait_stored(registry, ids)
    assert not duplicate_ids(registry)
    by_worker = served_by(registry, ids)
    assert any(name.endswith(f":{victim}") for name in by_worker), by_worker  # its answers too
    _wait(lambda: not _segments_of(tmp_path / "data", victim), 10.0, "the dead worker's segment to be shipped")
    print(
        f"\nkill -9 worker [{registry.dialect}] at {killed_at:.1f} s, replaced in {restarted_at - killed_at:.2f} s: "
        f"{summary(outcomes)}; all answered stored {took:.2f} s after the load; by worker {by_worker}"
    )


def test_kill_9_of_the_whole_server_then_a_restart_ships_the_orphans(
    registry: Registry, probe_key: str, servers: StartServer, tmp_path: Path
) -> None:
    first = servers(registry.url)
    with Load(first.port, probe_key) as load:
        time.sleep(2.5)
        workers = first.worker_pids()
        first.kill_all()
        time.sleep(0.3)  # requests after the kill are refused: no answer, nothing to store
    outcomes = load.outcomes
    assert all(o.status in (200, None) for o in outcomes), _failures(outcomes, first)
    ids = answered(outcomes)
    assert len(set(ids)) == len(ids)
    orphans = [path for pid in workers for path in _segments_of(tmp_path / "data", pid)]
    assert orphans, "the killed workers left no spool segment"
    only_spooled = len(set(ids) - decision_log.known_ids(registry, ids))

    servers(registry.url)  # the same data directory
    took = wait_stored(registry, ids)
    assert not duplicate_ids(registry)
    _wait(lambda: not any(path.exists() for path in orphans), 10.0, "the orphaned segments to be deleted")
    print(
        f"\nkill -9 server [{registry.dialect}]: {summary(outcomes)}; {only_spooled} answered decision(s) were "
        f"only in the spool; stored {took:.2f} s after the restart was ready"
    )


# ----------------------------------------------------------------------------------------------- metrics


def _metric_samples(server: ServerProcess, name: str) -> list[Any]:
    status, body = server.get("/metrics")
    assert status == 200
    return [
        sample
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == name
    ]


@pytest.mark.parametrize("registry", ["sqlite"], indirect=True)
def test_metrics_sum_over_the_workers(registry: Registry, probe_key: str, servers: StartServer) -> None:
    server = servers(registry.url)
    # A new connection per request, in rounds of 200 until both workers have served some (which one accepts a
    # connection is the kernel's choice; one round nearly always reaches both).
    outcomes: list[Outcome] = []
    backlog_seen = 0.0
    for _ in range(5):
        load = Load(server.port, probe_key, threads=4, rate=200.0, total=200, keepalive=False).start()
        backlog_seen = max([backlog_seen, *(s.value for s in _metric_samples(server, "decide_decision_log_backlog"))])
        outcomes += load.join()
        wait_stored(registry, answered(outcomes))
        workers = served_by(registry, answered(outcomes))
        if len(workers) == 2:
            break
    assert all(o.status == 200 for o in outcomes), _failures(outcomes, server)
    assert len(workers) == 2, f"{len(outcomes)} requests did not reach both workers: {workers}"

    def counted() -> list[Any]:
        return [s for s in _metric_samples(server, "decide_requests_total") if s.labels["policy"] == POLICY]

    # Each worker publishes its request metrics once a second (and the one answering the scrape, first).
    _wait(lambda: sum(sample.value for sample in counted()) >= len(outcomes), 5.0, "every request to be counted")
    samples = counted()
    assert sum(sample.value for sample in samples) == len(outcomes), samples
    assert {sample.labels["status"] for sample in samples} == {"200"}
    took = _wait(
        lambda: sum(s.value for s in _metric_samples(server, "decide_decision_log_backlog")) == 0,
        10.0,
        "the backlog gauge to return to 0",
    )
    shipped = sum(s.value for s in _metric_samples(server, "decide_decision_log_shipped_total"))
    assert shipped >= len(outcomes)
    print(
        f"\nmetrics: {len(outcomes)} requests over workers {workers}, counted {len(outcomes)}; backlog gauge up to "
        f"{backlog_seen:.0f} under load, 0 {took:.2f} s after the log had them all"
    )


# ----------------------------------------------------------------------------------------------- graceful stop


def test_a_graceful_stop_ships_the_spool_before_exit(
    registry: Registry, probe_key: str, servers: StartServer, tmp_path: Path
) -> None:
    server = servers(registry.url)
    with Load(server.port, probe_key) as load:
        time.sleep(2.5)
        stopping = time.monotonic()
        code = server.terminate()
        stopped_in = time.monotonic() - stopping
    outcomes = load.outcomes
    assert code == 0, server.log_tail()
    # Checked at once, without waiting: what the server answered was shipped before it exited.
    ids = answered(outcomes)
    missing = set(ids) - decision_log.known_ids(registry, ids)
    leftover = spool_segments(tmp_path / "data")
    assert not missing, f"{len(missing)} answered decision(s) not stored at exit ({summary(outcomes)})"
    assert not leftover, f"segments left unshipped in the spool: {leftover}"
    assert not duplicate_ids(registry)
    assert all(o.status in (200, None) for o in outcomes), _failures(outcomes, server)
    print(f"\ngraceful stop [{registry.dialect}] in {stopped_in:.2f} s: {summary(outcomes)}; all stored at exit")
