"""Helpers of the live tests (tests/server/test_live_gunicorn.py): a real `decide serve` under gunicorn in a
subprocess, a bounded load generator on loopback, a probe policy whose output names its own version, and
checks of the decision log.

- `add_probe_policy(registry)`: policy `live_probe`, versions 1..3 approved (author alice, approver bob) and
  version 1 live (deployer dora); its output `generation` is the version's number as text, and `listed` says
  whether the `applicant` is on the `blacklist` list. Returns an API key scoped to it.
- `ServerProcess`: `python -m decide_cli serve --db URL --port P --data-dir D --workers N` in a session (process
  group) of its own, its output in a log file; `wait_ready` polls /readyz; `worker_pids` reads the master's
  children from /proc; `kill_all` / `close` kill the whole process group, and the master is killed should the
  test process die first, so nothing outlives a test.
- `Load`: `threads` client threads, each on its own keep-alive `http.client` connection (or a new one per
  request), posting decisions at a bounded rate until stopped, after `total` requests, and never longer than
  `max_seconds`; every request's outcome is recorded — status, decision id, version, outputs — or, for a
  request that got no answer, the error.
- `wait_stored`, `duplicate_ids`: whether answered decision ids reached the `decisions` table, and how fast.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import bindparam, text

from registry import Registry, deployments, lists, policies, users
from registry import decisions as decision_log
from registry.entities import User

HOST = "127.0.0.1"
PR_SET_PDEATHSIG = 1  # prctl(2)
POLICY = "live_probe"
LISTED = "LISTED-0001"  # the applicant the hot-swap test puts on the blacklist mid-load
PROBE_SOURCE = """policy live_probe:
    title: "Live test probe"
    kind: generic
    description: "Names its own version in an output, and whether the applicant is on the blacklist"

input:
    applicant: string key

output:
    generation: string = "{number}"
    listed: bool = false

list blacklist: string

rules screen (first):
    rule L01 "On the blacklist":
        when applicant in blacklist
        then listed = true, reason "L01"
"""


def probe_source(number: int) -> str:
    return PROBE_SOURCE.replace("{number}", str(number))


def add_probe_policy(registry: Registry, versions: int = 3) -> str:
    """Versions 1..`versions` of `live_probe` approved, version 1 live; returns an API key for it."""
    staff: dict[str, User] = {name: users.get_user(registry, name) for name in ("admin", "alice", "bob", "dora")}
    for number in range(1, versions + 1):
        cases = [
            {
                "name": "an applicant not on the list",
                "input": {"applicant": "A-1"},
                "expect": {"generation": str(number), "listed": False, "reasons": []},
            }
        ]
        policies.save_draft(registry, staff["alice"], probe_source(number), json.dumps(cases))
        version = policies.submit(registry, staff["alice"], POLICY, note=f"generation {number}")
        assert version.number == number
        policies.approve(registry, staff["bob"], POLICY, number, comment="live test")
    deployments.activate(registry, staff["dora"], POLICY, 1, note="live test")
    _, key = users.create_api_key(registry, staff["admin"], "live test load generator", [POLICY])
    return key


def blacklist_add(registry: Registry, values: list[str]) -> int:
    """Add `values` to the blacklist (requested by alice, approved by bob); returns the list's new revision."""
    alice, bob = users.get_user(registry, "alice"), users.get_user(registry, "bob")
    request = lists.request_add(registry, alice, "blacklist", values, reason="live test")
    lists.decide_change(registry, bob, request.id, "approve", comment="live test")
    return next(item.revision for item in lists.list_lists(registry) if item.name == "blacklist")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


# ----------------------------------------------------------------------------------------------- the server


def _alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def children(pid: int) -> set[int]:
    """The live child processes of `pid` (from /proc/<pid>/task/*/children)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return {child for child in found if _alive(child)}


def _die_with_parent() -> None:
    """In the server's master, before exec: SIGKILL it if the test process dies without its teardown (its
    workers follow within a second: gunicorn workers exit when their master is gone)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


@dataclass
class ServerProcess:
    """`decide serve` on loopback: start, wait until ready, find and kill workers, stop gracefully or not."""

    db_url: str
    data_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    workers: int = 2
    environment: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server was not started"
        return self.process.pid

    def start(self, timeout: float = 60.0) -> ServerProcess:
        command = [
            sys.executable,
            "-m",
            "decide_cli",
            "serve",
            "--db",
            self.db_url,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--workers",
            str(self.workers),
        ]
        environment = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("DECIDE_SERVER_") and name != "PROMETHEUS_MULTIPROC_DIR"
        }
        environment.update(self.environment)
        log = open(self.log_path, "ab")  # the child keeps its own copy; ours is closed after the fork
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,  # its own process group: `kill_all` reaches master and workers
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        self.wait_ready(timeout)
        return self

    def log_tail(self, characters: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-characters:]
        except FileNotFoundError:
            return "(no log)"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until /readyz answers 200 and every worker is up (fails with the server's log otherwise)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"decide serve exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                status, body = self.get("/readyz", timeout=2.0)
                last = f"{status} {body[:300]!r}"
                if status == 200 and len(children(self.pid)) == self.workers:
                    return
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise AssertionError(f"decide serve was not ready within {timeout} s ({last}):\n{self.log_tail()}")

    def worker_pids(self) -> set[int]:
        return children(self.pid)

    def wait_workers(self, exclude: Iterable[int] = (), timeout: float = 30.0) -> set[int]:
        """Until the master has all its workers again, none of them in `exclude`; returns their pids."""
        excluded = set(exclude)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.worker_pids()
            if len(pids) == self.workers and not pids & excluded:
                return pids
            time.sleep(0.05)
        raise AssertionError(f"gunicorn did not restart its workers within {timeout} s:\n{self.log_tail()}")

    def kill_worker(self, among: Iterable[int] = ()) -> int:
        """`kill -9` one worker (the lowest pid of those in `among` that are workers, else of all); its pid."""
        workers = self.worker_pids()
        victim = min(workers & set(among) or workers)
        os.kill(victim, signal.SIGKILL)
        return victim

    def kill_all(self) -> None:
        """`kill -9` the master and every worker at once (the process group), and reap the master."""
        if self.process is None:
            return
        pids = {self.pid, *self.worker_pids()}
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.02)

    def terminate(self, timeout: float = 30.0) -> int:
        """A graceful stop: SIGTERM to the master, then wait for it to exit; returns its exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        """Teardown: whatever is left of the process group is killed."""
        if self.process is None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass


# ----------------------------------------------------------------------------------------------- the load


@dataclass(frozen=True)
class Outcome:
    """One request: when it was sent and answered (seconds since the load started), and what came back."""

    sent: float
    received: float
    applicant: str
    status: int | None = None  # None: no answer (the connection failed)
    body: Any = None
    error: str | None = None

    @property
    def decision_id(self) -> str | None:
        return self.body.get("decision_id") if isinstance(self.body, dict) else None


class Load:
    """Decisions posted by `threads` threads on keep-alive connections, at most `rate` per second per thread."""

    def __init__(
        self,
        port: int,
        api_key: str,
        applicant: Callable[[int], str] = lambda number: f"A-{number % 1000}",
        threads: int = 4,
        rate: float = 150.0,
        max_seconds: float = 120.0,
        policy: str = POLICY,
        total: int | None = None,
        keepalive: bool = True,
    ) -> None:
        self.port = port
        self.api_key = api_key
        self.applicant = applicant
        self.threads = threads
        self.interval = 1.0 / rate
        self.max_seconds = max_seconds
        self.path = f"/v1/decisions/{policy}"
        self.total = total  # stop after this many requests in all (None: when stopped)
        self.keepalive = keepalive  # False: a new connection per request (spread over the workers)
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._numbers = iter(range(1 << 62))
        self.started = 0.0

    def now(self) -> float:
        return time.monotonic() - self.started

    def start(self) -> Load:
        self.started = time.monotonic()
        for number in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"live-load-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def join(self, timeout: float = 60.0) -> list[Outcome]:
        """Wait for the threads to finish by themselves (after `total` requests, or `max_seconds`)."""
        for thread in self._threads:
            thread.join(timeout=timeout)
        return self.stop()

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in self._threads), "a load thread did not stop"
        return list(self.outcomes)

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(HOST, self.port, timeout=10)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"}
        connection = self._connect()
        next_at = time.monotonic()
        try:
            while not self._stop.is_set() and self.now() < self.max_seconds:
                with self._lock:
                    number = next(self._numbers)
                    if self.total is not None and number >= self.total:
                        break
                    applicant = self.applicant(number)
                body = orjson.dumps({"input": {"applicant": applicant}})
                sent = self.now()
                try:
                    connection.request("POST", self.path, body, headers)
                    response = connection.getresponse()
                    data = response.read()
                    try:
                        decoded: Any = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        decoded = data[:500].decode("utf-8", "replace")
                    outcome = Outcome(sent, self.now(), applicant, response.status, decoded)
                    if not self.keepalive:
                        connection.close()
                except (OSError, http.client.HTTPException) as exc:
                    outcome = Outcome(sent, self.now(), applicant, error=f"{type(exc).__name__}: {exc}")
                    connection.close()
                    connection = self._connect()
                    self._stop.wait(0.02)  # a server down: retry, but not in a tight loop
                with self._lock:
                    self.outcomes.append(outcome)
                next_at = max(next_at + self.interval, time.monotonic() - 1.0)
                delay = next_at - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
        finally:
            connection.close()


def answered(outcomes: Iterable[Outcome]) -> list[str]:
    """The decision ids answered with 200."""
    return [outcome.decision_id for outcome in outcomes if outcome.status == 200 and outcome.decision_id]


def summary(outcomes: Iterable[Outcome]) -> str:
    """How many requests got each status, or each kind of connection error: `200: 5120, ConnectionResetError: 1`."""
    counts = Counter(
        str(outcome.status) if outcome.status is not None else (outcome.error or "?").split(":")[0]
        for outcome in outcomes
    )
    return ", ".join(f"{kind}: {count}" for kind, count in sorted(counts.items()))


# ----------------------------------------------------------------------------------------------- the log


def wait_stored(registry: Registry, decision_ids: Iterable[str], timeout: float = 60.0) -> float:
    """Wait until every id is in the `decisions` table; returns the seconds it took (fails after `timeout`)."""
    started = time.monotonic()
    missing = set(decision_ids)
    while True:
        missing -= decision_log.known_ids(registry, missing)
        if not missing:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(
                f"{len(missing)} answered decision(s) never reached the log within {timeout} s, "
                f"e.g. {sorted(missing)[:3]}"
            )
        time.sleep(0.1)


def duplicate_ids(registry: Registry) -> list[tuple[str, int]]:
    """Decision ids stored more than once (the table's key should make this impossible: checked anyway)."""
    with registry.read() as session:
        rows = session.connection().execute(
            text("SELECT decision_id, count(*) FROM decisions GROUP BY decision_id HAVING count(*) > 1")
        )
        return [(row[0], row[1]) for row in rows]


SERVED_BY = text("SELECT served_by, count(*) FROM decisions WHERE decision_id IN :ids GROUP BY served_by").bindparams(
    bindparam("ids", expanding=True)
)


def served_by(registry: Registry, decision_ids: Iterable[str]) -> dict[str, int]:
    """How many of these decisions each worker (`host:pid`) served, from the log."""
    wanted = list(decision_ids)
    counts: dict[str, int] = {}
    with registry.read() as session:
        for start in range(0, len(wanted), 500):
            rows = session.connection().execute(SERVED_BY, {"ids": wanted[start : start + 500]})
            for row in rows:
                counts[row[0]] = counts.get(row[0], 0) + row[1]
    return counts


def spool_segments(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "spool").glob("*.spool"))
