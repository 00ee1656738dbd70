"""The decision log's local durable spool, and the shipper that moves it into the database.

Input: decision records (dicts of JSON values), appended by request threads before their response is sent.
Output: the same records stored in the registry's `decisions` table, in batches, exactly once.

How nothing is lost:
- Each worker process appends to its own segment file (`<time>-<pid>.spool`, one JSON line per decision), held
  under an exclusive `flock`. A segment's space is allocated when it is opened (`posix_fallocate`, so a full
  disk is an error then, never a SIGBUS later) and mapped shared (`mmap`); appending a line copies it into the
  mapping, which is the file's page cache itself. Once the copy is done the line survives the process being
  killed (even `kill -9`), not a power loss. A copy, not `write(2)`, because the interpreter releases the GIL
  around every system call: one more release per request, beside the other request thread and the shipper,
  cost a thread switch per decision (BENCHMARKS.md). With `spool_fsync = "always"` the segment is also fsynced
  before the response (on Linux `fsync` writes a file's pages dirtied through a shared mapping too); by default
  the shipper fsyncs each interval, so a power loss can cost the decisions of the last interval (0.2 s). A
  segment is cut to the length of its lines when it is rotated or closed; one left by a killed writer ends in
  the zeros of its unused space, which the shipper ignores.
- The shipper thread of each worker ships its own segments from the offset it reached, and any segment whose
  lock it can take — one whose writer died — from the start. Its own lines it takes from memory: each append
  also keeps the record (and its line's length) until it is stored, so the shipper neither reads nor decodes
  what this process just wrote. The file stays the durable copy: once more than `memory_limit` records wait
  (the database is away), a segment's records are no longer kept, and it is shipped from its file from then
  on. A segment is deleted only after every line of it is stored, and stored durably: the shipper asks the
  store (`durable`) first, since a database that syncs lazily (SQLite in WAL mode with synchronous NORMAL) can
  roll back a commit after a power loss, and the segment is the only other copy. Storing skips ids already
  stored, so a segment shipped twice (a worker killed after storing, before deleting) stores nothing twice.
- While the database is down, shipping fails, backs off (doubling, with jitter, up to 5 s) and retries; the
  spool grows, and requests go on being answered. `backlog()` is how many lines wait.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("decide.server.spool")
SUFFIX = ".spool"


def _always() -> bool:
    return True


@dataclass
class _Segment:
    path: Path
    descriptor: int
    mapping: mmap.mmap | None  # None once the segment is rotated or closed (and cut to `size`)
    capacity: int
    size: int = 0
    shipped: int = 0  # bytes of complete lines already stored
    lines: int = 0
    shipped_lines: int = 0
    closed: bool = False
    # The unshipped lines' records and lengths, in order (None once dropped: then the file is read instead).
    memory: list[tuple[dict[str, Any], int]] | None = field(default_factory=list)


class Spool:
    """One worker's append-only spool (create it in the worker, after fork)."""

    def __init__(
        self,
        directory: Path,
        segment_bytes: int = 8 << 20,
        fsync_always: bool = False,
        memory_limit: int = 20_000,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.segment_bytes = segment_bytes
        self.fsync_always = fsync_always
        self.memory_limit = memory_limit  # records kept in memory for the shipper, over all segments
        self._in_memory = 0
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._open_segment()

    def _open_segment(self, capacity: int = 0) -> None:
        """Open a new current segment of at least `capacity` bytes; OSError (a full disk) leaves none behind."""
        capacity = max(capacity, self.segment_bytes)
        # Lock under a temporary name, then rename: a shipper looking for orphans never sees an unlocked segment.
        path = self.directory / f"{time.time_ns():020d}-{self.pid}{SUFFIX}"
        temporary = path.with_suffix(".new")
        descriptor = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.posix_fallocate(descriptor, 0, capacity)
            mapping = mmap.mmap(descriptor, capacity, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            os.rename(temporary, path)
        except OSError:
            os.close(descriptor)
            temporary.unlink(missing_ok=True)
            raise
        self._segments.append(_Segment(path, descriptor, mapping, capacity))

    @staticmethod
    def _finish(segment: _Segment) -> None:
        """Unmap a segment and cut it to its lines (it keeps its descriptor, and so its lock)."""
        if segment.mapping is not None:
            segment.mapping.close()
            segment.mapping = None
            os.ftruncate(segment.descriptor, segment.size)

    def _rotate(self, capacity: int = 0) -> None:
        self._open_segment(capacity)  # first: if the disk is full, the current segment stays current
        previous = self._segments[-2]
        previous.closed = True
        self._finish(previous)

    def append(self, record: Mapping[str, Any]) -> None:
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            segment = self._segments[-1]
            if segment.size + len(line) > segment.capacity:
                self._rotate(len(line))
                segment = self._segments[-1]
            assert segment.mapping is not None  # the current segment is mapped until it is rotated or closed
            segment.mapping[segment.size : segment.size + len(line)] = line
            if self.fsync_always:
                os.fsync(segment.descriptor)
            segment.size += len(line)
            segment.lines += 1
            if segment.memory is not None:
                if self._in_memory < self.memory_limit:
                    segment.memory.append((dict(record), len(line)))
                    self._in_memory += 1
                else:
                    self._in_memory -= len(segment.memory)
                    segment.memory = None
            if segment.size >= segment.capacity:
                try:
                    self._rotate()
                except OSError:
                    pass  # this line is written; the next append tries again, and fails if it must

    def backlog(self) -> int:
        with self._lock:
            return sum(segment.lines - segment.shipped_lines for segment in self._segments)

    def sync(self) -> None:
        with self._lock:
            descriptors = [segment.descriptor for segment in self._segments]
        for descriptor in descriptors:
            try:
                os.fsync(descriptor)
            except OSError:
                pass

    def ship(
        self, store: Callable[[list[dict[str, Any]]], None], batch: int, durable: Callable[[], bool] = _always
    ) -> int:
        """Store what this worker has not shipped yet; returns how many lines were stored. A closed segment all
        of whose lines are stored is deleted once `durable()` says the store has them durably."""
        with self._lock:
            segments = list(self._segments)
        shipped = 0
        for segment in segments:
            with self._lock:
                kept = None if segment.memory is None else list(segment.memory)
            if kept is not None:
                for start in range(0, len(kept), batch):
                    chunk = kept[start : start + batch]
                    store([record for record, _ in chunk])
                    with self._lock:
                        segment.shipped += sum(length for _, length in chunk)
                        segment.shipped_lines += len(chunk)
                        if segment.memory is not None:  # (appends only add at the end)
                            del segment.memory[: len(chunk)]
                            self._in_memory -= len(chunk)
                    shipped += len(chunk)
            else:
                with open(segment.path, "rb") as handle:
                    handle.seek(segment.shipped)
                    data = handle.read(max(segment.size - segment.shipped, 0))
                end = data.rfind(b"\n") + 1
                for records, used, lines in _batches(data[:end], batch):
                    store(records)
                    with self._lock:
                        segment.shipped += used
                        segment.shipped_lines += lines
                    shipped += len(records)
            with self._lock:
                finished = segment.closed and segment.shipped >= segment.size
            if finished and durable():
                with self._lock:
                    os.close(segment.descriptor)
                    segment.path.unlink(missing_ok=True)
                    self._segments.remove(segment)
        return shipped

    def close(self, durable: Callable[[], bool] = _always) -> None:
        """Release the segments; those fully shipped are deleted (once `durable()`), the rest wait for the next
        shipper."""
        with self._lock:
            any_shipped = any(segment.shipped >= segment.size for segment in self._segments)
        deletable = any_shipped and durable()  # asked only when there is something to delete
        with self._lock:
            for segment in self._segments:
                if deletable and segment.shipped >= segment.size:
                    segment.path.unlink(missing_ok=True)
                else:
                    self._finish(segment)
                os.close(segment.descriptor)
            self._segments.clear()
            self._in_memory = 0


def _batches(data: bytes, batch: int) -> Iterable[tuple[list[dict[str, Any]], int, int]]:
    """Complete lines as records, `batch` at a time, each with the bytes and the lines it used (a damaged line
    is used, and skipped: it can never be stored)."""
    records: list[dict[str, Any]] = []
    start = used = lines = 0
    while start < len(data):
        end = data.index(b"\n", start) + 1
        try:
            records.append(orjson.loads(data[start:end]))
        except orjson.JSONDecodeError:
            log.error("spool: skipped a damaged line of %d bytes", end - start)
        used += end - start
        lines += 1
        start = end
        if len(records) >= batch:
            yield records, used, lines
            records, used, lines = [], 0, 0
    if records or used:
        yield records, used, lines


def ship_orphans(
    directory: Path,
    store: Callable[[list[dict[str, Any]]], None],
    batch: int,
    own: set[Path],
    durable: Callable[[], bool] = _always,
) -> int:
    """Ship every segment whose writer is gone (its lock is free), then delete it once `durable()`; returns
    lines stored (a segment kept because the store was not yet durable is stored again, as nothing, later)."""
    shipped = 0
    for path in sorted(Path(directory).glob("*" + SUFFIX)):
        if path in own:
            continue
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its writer is alive
            if not path.exists():
                continue  # another shipper finished it while we waited
            with os.fdopen(os.dup(descriptor), "rb") as handle:
                data = handle.read()
            end = data.rfind(b"\n") + 1
            torn = data[end:].rstrip(b"\0")  # a killed writer's segment ends in its unused, zeroed space
            if torn:
                log.error("spool: %s ends with a torn line of %d bytes (not stored)", path.name, len(torn))
            for records, _, _ in _batches(data[:end], batch):
                store(records)
                shipped += len(records)
            if durable():
                path.unlink(missing_ok=True)
        finally:
            os.close(descriptor)
    return shipped


@dataclass
class Shipper:
    """The background thread that ships one worker's spool (and orphaned segments) to the database."""

    spool: Spool
    store: Callable[[list[dict[str, Any]]], None]
    interval: float = 0.2
    batch: int = 500
    on_shipped: Callable[[int], None] = lambda count: None
    on_failure: Callable[[Exception], None] = lambda exc: None
    on_backlog: Callable[[int], None] = lambda count: None  # how many lines wait: before and after each round
    durable: Callable[[], bool] = _always  # whether what `store` stored survives a power loss
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    failures: int = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="decide-shipper", daemon=True)
        self._thread.start()

    def ship_once(self) -> int:
        own = {segment.path for segment in self.spool._segments}
        count = self.spool.ship(self.store, self.batch, self.durable)
        count += ship_orphans(self.spool.directory, self.store, self.batch, own, self.durable)
        return count

    def _run(self) -> None:
        delay = self.interval
        while not self._stop.wait(delay):
            if not self.spool.fsync_always:
                self.spool.sync()
            self.on_backlog(self.spool.backlog())
            try:
                shipped = self.ship_once()
            except Exception as exc:  # the database is down, or refused a batch: keep it and retry later
                self.failures += 1
                self.on_failure(exc)
                delay = min(max(delay * 2, self.interval), 5.0) * random.uniform(0.8, 1.2)
                continue
            self.failures, delay = 0, self.interval
            if shipped:
                self.on_shipped(shipped)
                self.on_backlog(self.spool.backlog())

    def stop(self, drain_seconds: float = 5.0) -> None:
        """Stop the thread, then try to ship what is left for up to `drain_seconds` (a graceful shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=drain_seconds)
        deadline = time.monotonic() + drain_seconds
        while self.spool.backlog() and time.monotonic() < deadline:
            try:
                self.ship_once()
            except Exception:
                time.sleep(0.2)
