"""The decision log's spool (decision_server.spool), unit by unit in a temporary directory: lines appended and
shipped once, in order, in batches; segments rotated and deleted once shipped; a segment left by a writer that
was killed (a real child process, `kill -9`) shipped by another spool and deleted, while a live writer's segment
(its flock) is never taken; storing the same lines twice stores them once (on both databases); a torn last line
left out and reported; a failing store keeping every line for the retry, which stores each line once.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from decision_server.spool import SUFFIX, Shipper, Spool, ship_orphans
from registry import Registry, migrate
from registry import decisions as decision_log
from tests.conftest import REPO
from tests.server.conftest import wait_until

Store = Callable[[list[dict[str, Any]]], None]


def record(n: int) -> dict[str, Any]:
    """A decision record as the service spools it (what the registry's decisions table needs)."""
    return {
        "decision_id": str(uuid.UUID(int=(0x0190 << 112) | n)),
        "logged_at": datetime.now(UTC).isoformat(),
        "policy": "credit_line",
        "version": 1,
        "arm": "champion",
        "status": "decided",
        "as_of": "2026-03-01",
        "record": {"ID": n, "LIMIT_BAL": 50_000},
        "outputs": {"decision": "hold"},
        "reasons": [],
        "lists": {},
    }


class Collector:
    """A store that keeps what it was given, batch by batch."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def __call__(self, records: list[dict[str, Any]]) -> None:
        self.batches.append(list(records))

    @property
    def records(self) -> list[dict[str, Any]]:
        return [item for batch in self.batches for item in batch]

    @property
    def ids(self) -> list[int]:
        return [item["record"]["ID"] for item in self.records]


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*" + SUFFIX))


# ----------------------------------------------------------------------------- one writer


def test_appended_lines_are_shipped_once_in_order_in_batches(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    store = Collector()
    for n in range(5):
        spool.append(record(n))
    assert spool.backlog() == 5
    assert spool.ship(store, batch=2) == 5
    assert [len(batch) for batch in store.batches] == [2, 2, 1]
    assert store.ids == [0, 1, 2, 3, 4]
    assert store.records[3] == {**record(3), "logged_at": store.records[3]["logged_at"]}  # the record as appended
    assert spool.backlog() == 0
    assert spool.ship(store, batch=2) == 0  # nothing twice
    spool.append(record(5))
    spool.append(record(6))
    assert spool.ship(store, batch=10) == 2
    assert store.ids == [0, 1, 2, 3, 4, 5, 6]
    spool.close()


def _scribble_over(path: Path) -> None:
    """Overwrite every byte of a segment but its newlines (the writer's own lines, as the shipper would read them)."""
    data = path.read_bytes()
    data = data[: data.rfind(b"\n") + 1]  # the lines, not the segment's unused space
    with open(path, "r+b") as handle:
        handle.write(bytes(byte if byte == 0x0A else 0x23 for byte in data))


def test_own_lines_are_shipped_from_memory_and_from_the_file_past_the_memory_limit(tmp_path: Path) -> None:
    """The shipper takes its own lines from memory: it stores them even where the file no longer holds them.
    Past the memory limit the file is what it reads, from the line the memory had reached."""
    spool = Spool(tmp_path / "kept")
    for n in range(4):
        spool.append(record(n))
    _scribble_over(segments(tmp_path / "kept")[0])
    store = Collector()
    assert spool.ship(store, batch=3) == 4
    assert store.ids == [0, 1, 2, 3] and spool.backlog() == 0
    spool.close()

    limited = Spool(tmp_path / "limited", memory_limit=2)
    store = Collector()
    limited.append(record(0))
    assert limited.ship(store, batch=10) == 1  # from memory
    for n in range(1, 6):  # the third record waiting passes the limit: this segment is read from its file now
        limited.append(record(n))
    assert limited.ship(store, batch=2) == 5
    assert store.ids == [0, 1, 2, 3, 4, 5] and limited.backlog() == 0
    limited.append(record(6))
    _scribble_over(segments(tmp_path / "limited")[0])
    assert limited.ship(store, batch=2) == 0  # read from the file, damaged there: skipped, and said so
    assert limited.backlog() == 0
    limited.close()


def test_segments_rotate_and_each_is_deleted_once_shipped(tmp_path: Path) -> None:
    line = len(orjson.dumps(record(0))) + 1
    spool = Spool(tmp_path, segment_bytes=3 * line)  # a new segment after every third line
    for n in range(10):
        spool.append(record(n))
    files = segments(tmp_path)
    assert len(files) == 4  # 3 + 3 + 3 full, and the current one holding the tenth
    assert all(path.name.endswith(f"-{os.getpid()}{SUFFIX}") for path in files)
    store = Collector()
    assert spool.ship(store, batch=100) == 10
    assert store.ids == list(range(10))
    assert segments(tmp_path) == files[-1:]  # the full segments are gone; the one being written stays
    spool.close()
    assert segments(tmp_path) == []  # fully shipped: deleted on close


def test_a_segment_is_allocated_whole_and_cut_to_its_lines_when_rotated_or_closed(tmp_path: Path) -> None:
    """Space is taken when a segment opens (a full disk shows then); a line longer than a segment gets a segment
    of its own, large enough; a rotated or closed segment is as long as its lines."""
    line = len(orjson.dumps(record(0))) + 1
    spool = Spool(tmp_path, segment_bytes=4 * line)
    [current] = segments(tmp_path)
    assert current.stat().st_size == 4 * line
    assert os.stat(current).st_blocks * 512 >= 4 * line  # allocated, not a sparse promise
    spool.append(record(0))
    big = {**record(1), "trace": ["x" * 100] * (line // 10)}
    big_line = len(orjson.dumps(big)) + 1
    assert big_line > 4 * line
    spool.append(big)
    first, second, third = segments(tmp_path)
    assert first.stat().st_size == line  # rotated: cut to its one line
    assert second.stat().st_size == big_line  # filled exactly, so rotated at once
    assert third.stat().st_size == 4 * line  # the current one, allocated whole
    spool.append(record(2))
    spool.close()  # not shipped: kept, each cut to its lines
    assert [path.stat().st_size for path in segments(tmp_path)] == [line, big_line, line]
    store = Collector()
    assert ship_orphans(tmp_path, store, 100, own=set()) == 3
    assert store.ids == [0, 1, 2] and store.records[1]["trace"] == big["trace"]
    assert third.name.endswith(f"-{os.getpid()}{SUFFIX}")


def test_a_full_disk_fails_the_append_and_leaves_the_spool_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision is not answered (the service turns the OSError into a 503); no half-made segment is left,
    the lines before it are still shipped, and appending works again once there is space."""
    line = len(orjson.dumps(record(0))) + 1
    spool = Spool(tmp_path, segment_bytes=2 * line)
    spool.append(record(0))
    real_fallocate = os.posix_fallocate

    def full(descriptor: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    spool.append(record(1))  # fills the segment; rotating to the next fails, the full one stays current
    with pytest.raises(OSError):
        spool.append(record(2))
    assert len(segments(tmp_path)) == 1 and list(tmp_path.glob("*.new")) == []
    monkeypatch.setattr(os, "posix_fallocate", real_fallocate)
    spool.append(record(3))
    store = Collector()
    assert spool.ship(store, 100) == 3
    assert store.ids == [0, 1, 3]
    spool.close()


class Durability:
    """The store's answer to "would what you stored survive a power loss?", and when it was asked."""

    def __init__(self, store: Collector) -> None:
        self.store, self.answer, self.asked_after = store, False, []

    def __call__(self) -> bool:
        self.asked_after.append(len(self.store.records))
        return self.answer


def test_a_shipped_segment_is_deleted_only_once_the_store_holds_it_durably(tmp_path: Path) -> None:
    """The segment is the only other copy of its lines: while the store cannot say they would survive a power
    loss (SQLite's lazy sync, a checkpoint that could not finish), it stays — for its own writer, for another
    worker's orphan shipping, and on close — and goes once the store can."""
    line = len(orjson.dumps(record(0))) + 1
    spool = Spool(tmp_path, segment_bytes=3 * line)
    store = Collector()
    durable = Durability(store)
    for n in range(7):
        spool.append(record(n))
    files = segments(tmp_path)
    assert spool.ship(store, batch=100, durable=durable) == 7
    assert segments(tmp_path) == files  # every line stored, none of them yet durably
    assert durable.asked_after and min(durable.asked_after) >= 3  # asked only after a whole segment was stored
    assert spool.ship(store, batch=100, durable=durable) == 0  # kept, not stored again
    durable.answer = True
    spool.ship(store, batch=100, durable=durable)
    assert segments(tmp_path) == files[-1:]
    durable.answer = False
    spool.close(durable)
    assert segments(tmp_path) == files[-1:]  # shipped, not durable: left for the next shipper

    durable.answer = False
    store.batches.clear()
    assert ship_orphans(tmp_path, store, 100, set(), durable) == 1
    assert segments(tmp_path) == files[-1:]
    durable.answer = True
    assert ship_orphans(tmp_path, store, 100, set(), durable) == 1  # stored again: the database skips it
    assert segments(tmp_path) == []
    assert store.ids == [6, 6]


def test_a_sqlite_store_is_durable_once_its_checkpoint_finishes(tmp_path: Path) -> None:
    """SQLite (WAL, synchronous NORMAL) syncs only at checkpoints: `stored_durably` checkpoints, and says no while
    a reader's snapshot keeps the checkpoint from copying the newest frames."""
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate.upgrade(registry)
    decision_log.store_decisions(registry, [record(n) for n in range(3)])
    assert decision_log.stored_durably(registry)
    reader = registry.read_engine.raw_connection()
    try:
        reader.cursor().execute("BEGIN")
        reader.cursor().execute("SELECT count(*) FROM decisions").fetchone()  # a snapshot held open
        decision_log.store_decisions(registry, [record(n) for n in range(3, 6)])
        assert not decision_log.stored_durably(registry)
    finally:
        reader.rollback()
        reader.close()
    assert decision_log.stored_durably(registry)
    registry.dispose()


def test_a_segment_closed_unshipped_waits_for_the_next_shipper(tmp_path: Path) -> None:
    """A graceful stop while the database is down: the lines stay on disk for the next worker."""
    first = Spool(tmp_path)
    for n in range(3):
        first.append(record(n))
    first.close()
    [left] = segments(tmp_path)
    second = Spool(tmp_path)
    store = Collector()
    own = {segment.path for segment in second._segments}
    assert ship_orphans(tmp_path, store, 100, own) == 3
    assert store.ids == [0, 1, 2]
    assert not left.exists()
    second.close()


# ----------------------------------------------------------------------------- another process's segment


# The child: spool the records it reads (and, with a 2nd argument, half a line more, as a write cut off would
# leave it), say so, and sleep until it is killed. It imports only the spool, so it starts in a blink.
WRITER = """
import json, os, sys, time
from pathlib import Path
from decision_server.spool import Spool
spool = Spool(Path(sys.argv[1]))
for item in json.loads(sys.stdin.readline()):
    spool.append(item)
if len(sys.argv) > 2:  # a copy cut off by the kill: part of a line, then the segment's unused space
    segment, torn = spool._segments[-1], b'{"decision_id": "01900000-0000-0000-0000-0'
    segment.mapping[segment.size : segment.size + len(torn)] = torn
print("ready", flush=True)
while True:
    time.sleep(60)
"""


def start_writer(directory: Path, count: int, torn: bool = False) -> subprocess.Popen[str]:
    """Another worker process that spooled `count` decisions and is still running."""
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory), *(["torn"] if torn else [])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(orjson.dumps([record(n) for n in range(count)]).decode() + "\n")
    process.stdin.flush()
    assert process.stdout.readline().strip() == "ready", "the writer never spooled its decisions"
    return process


def kill(process: subprocess.Popen[str]) -> None:
    process.kill()  # SIGKILL: no cleanup, the segment left as it was
    assert process.wait(10) == -signal.SIGKILL
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


def test_a_live_writers_segment_is_never_taken_and_a_killed_writers_is_shipped_and_deleted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = start_writer(tmp_path, 4)
    try:
        [theirs] = segments(tmp_path)
        assert theirs.name.endswith(f"-{writer.pid}{SUFFIX}")
        mine = Spool(tmp_path)
        store = Collector()
        shipper = Shipper(mine, store)
        # Its writer is alive and holds the segment's lock: nobody else ships it.
        assert shipper.ship_once() == 0
        assert ship_orphans(tmp_path, store, 100, own=set()) == 0
        assert theirs.exists() and store.records == []
    finally:
        kill(writer)
    assert theirs.stat().st_size > len(theirs.read_bytes().rstrip(b"\0"))  # left as mapped: lines, then zeros
    with caplog.at_level(logging.ERROR, logger="decide.server.spool"):
        assert shipper.ship_once() == 4
    assert caplog.messages == []  # the unused space is not a torn line
    assert store.ids == [0, 1, 2, 3]
    assert not theirs.exists()
    assert segments(tmp_path) == [segment.path for segment in mine._segments]
    assert shipper.ship_once() == 0  # shipped once
    mine.close()


def test_a_live_writer_in_the_same_process_is_not_taken_either(tmp_path: Path) -> None:
    writer = Spool(tmp_path)
    writer.append(record(1))
    assert ship_orphans(tmp_path, Collector(), 100, own=set()) == 0  # its flock is held
    store = Collector()
    assert writer.ship(store, 100) == 1
    assert store.ids == [1]
    writer.close()


def test_a_torn_last_line_is_not_stored_and_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = start_writer(tmp_path, 3, torn=True)
    kill(writer)
    [theirs] = segments(tmp_path)
    assert theirs.read_bytes().rstrip(b"\0").endswith(b"-0000-0")  # the torn line, then the unused space
    store = Collector()
    with caplog.at_level(logging.ERROR, logger="decide.server.spool"):
        assert ship_orphans(tmp_path, store, 100, own=set()) == 3
    assert store.ids == [0, 1, 2]
    assert any("torn line" in message and theirs.name in message for message in caplog.messages), caplog.messages
    assert not theirs.exists()


def test_a_damaged_line_is_skipped_and_reported_and_the_others_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / f"{1:020d}-999999{SUFFIX}"  # a segment whose writer is long gone
    path.write_bytes(orjson.dumps(record(1)) + b"\n" + b"\x00\x00 not json\n" + orjson.dumps(record(2)) + b"\n")
    store = Collector()
    with caplog.at_level(logging.ERROR, logger="decide.server.spool"):
        ship_orphans(tmp_path, store, 100, own=set())
    assert store.ids == [1, 2]
    assert any("damaged line" in message for message in caplog.messages)
    assert not path.exists()


# ----------------------------------------------------------------------------- storing, failing, retrying


def test_storing_the_same_lines_twice_stores_them_once(registry: Registry, tmp_path: Path) -> None:
    records = [record(n) for n in range(3)]
    assert decision_log.store_decisions(registry, records) == 3
    assert decision_log.store_decisions(registry, records) == 0
    assert decision_log.store_decisions(registry, [*records[1:], record(3)]) == 1
    assert decision_log.count_decisions(registry) == 4
    stored = decision_log.get_decision(registry, records[0]["decision_id"])
    assert (stored.record, stored.outputs, stored.status) == (records[0]["record"], {"decision": "hold"}, "decided")


def test_a_segment_stored_but_not_deleted_before_a_crash_is_stored_once(registry: Registry, tmp_path: Path) -> None:
    """The worker that shipped the segment was killed after storing, before deleting it: the next shipper
    ships it again, and the database keeps one copy of each decision."""
    writer = start_writer(tmp_path, 5)
    kill(writer)

    def store_then_crash(records: list[dict[str, Any]]) -> None:
        decision_log.store_decisions(registry, records)
        raise SystemError("killed before deleting the segment")

    with pytest.raises(SystemError):
        ship_orphans(tmp_path, store_then_crash, 100, own=set())
    assert len(segments(tmp_path)) == 1 and decision_log.count_decisions(registry) == 5
    new: list[int] = []

    def store(records: list[dict[str, Any]]) -> None:
        new.append(decision_log.store_decisions(registry, records))

    assert ship_orphans(tmp_path, store, 100, set()) == 5
    assert new == [0]  # every line already stored
    assert decision_log.count_decisions(registry) == 5
    assert segments(tmp_path) == []


def test_a_failing_store_keeps_the_lines_for_the_retry(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for n in range(5):
        spool.append(record(n))

    def down(records: list[dict[str, Any]]) -> None:
        raise ConnectionError("the database is down")

    with pytest.raises(ConnectionError):
        spool.ship(down, 2)
    assert spool.backlog() == 5
    # Down again after the first batch: the first two are shipped, the other three wait.
    store = Collector()
    calls = 0

    def second_batch_fails(records: list[dict[str, Any]]) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("the database went down again")
        store(records)

    with pytest.raises(ConnectionError):
        spool.ship(second_batch_fails, 2)
    assert store.ids == [0, 1] and spool.backlog() == 3
    assert spool.ship(store, 2) == 3
    assert store.ids == [0, 1, 2, 3, 4]  # each once
    assert spool.backlog() == 0
    spool.close()


def test_the_shipper_retries_until_the_store_works(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for n in range(6):
        spool.append(record(n))
    store = Collector()
    attempts = 0
    failures: list[Exception] = []
    shipped: list[int] = []

    def flaky(records: list[dict[str, Any]]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:
            raise ConnectionError(f"down ({attempts})")
        store(records)

    shipper = Shipper(spool, flaky, interval=0.01, batch=100, on_shipped=shipped.append, on_failure=failures.append)
    shipper.start()
    try:
        wait_until(lambda: len(store.records) == 6, timeout=5, what="the lines to be shipped after the failures")
        spool.append(record(6))
        wait_until(lambda: len(store.records) == 7, timeout=5, what="a line appended after the recovery")
    finally:
        shipper.stop(drain_seconds=1)
    assert [str(exc) for exc in failures] == ["down (1)", "down (2)", "down (3)"]
    assert shipper.failures == 0  # reset by the first success
    assert store.ids == list(range(7))  # each once, in order
    assert sum(shipped) == 7
    assert spool.backlog() == 0
    spool.close()
