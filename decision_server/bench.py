"""What `decide bench` measures: the stages of one decision in process, and the decision server end to end.

Input: a compiled `Policy`, its input records (decoded JSON objects), the evaluation date and the policy's lists.
Output: a `BenchReport` (a dataclass; `to_json()` for CI) with the p50 / p99 in µs and the single-thread throughput
of each stage of a decision, as the server runs them, timed one record at a time:

- `json_decode`: `compiler.evaluate.json_input.loads` of the record's request body (`{"input": record}`, the bytes
  the server decodes);
- `validation`: the policy's input validator alone (`CompiledPolicy.validator.validate`, what `decide run` and the
  server report input errors with);
- `evaluation`: `Policy.decide(record, ...)` as the server calls it (with the trace, the lists prepared once) — on
  the compiled kernel this vouches for the record in C again, so it includes its own, cheaper validation;
- `result_encoding`: orjson of the response body the server sends (or of the error body for a refused record).

`run_end_to_end` adds the server over HTTP: a throwaway SQLite registry (`prepare_registry`: migrated, two users
taking the policy through save, submit, approve and activate, the lists approved, an API key), the server started
as a subprocess on a free loopback port (`ServerProcess`), driven for a bounded time by `drive` (threads, each with
one keep-alive `http.client` connection, optionally paced to a rate), and the decision log's lag: the time from the
end of the load until the last answered decision is in the database. `benchmarks/http/` uses the same client.

Timings are measured, never judged: nothing here compares a figure with a threshold.
"""

from __future__ import annotations

import datetime as _dt
import http.client
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from compiler import EvaluationError, InputError, Policy
from compiler.evaluate import implementation
from compiler.evaluate.json_input import loads
from decision_server.errors import from_evaluation, from_input
from decision_server.serve import default_workers

STAGES = ("json_decode", "validation", "evaluation", "result_encoding")
DEFAULT_SAMPLES = 20_000  # records timed per stage when no repeat is given


# ----------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class StageTiming:
    """One stage over every timed record: percentiles of single timings, and records per second on one thread."""

    name: str
    samples: int
    p50_us: float
    p99_us: float
    mean_us: float
    per_second: float

    @classmethod
    def from_ns(cls, name: str, timings_ns: Sequence[int]) -> StageTiming:
        ordered = sorted(timings_ns)
        total = sum(ordered)
        return cls(
            name,
            len(ordered),
            round(percentile(ordered, 50) / 1000, 3),
            round(percentile(ordered, 99) / 1000, 3),
            round(total / len(ordered) / 1000, 3),
            round(len(ordered) / (total / 1e9), 1) if total else 0.0,
        )


@dataclass(frozen=True)
class EndToEnd:
    """The server over HTTP on loopback: what the client saw, and how long the decision log took to catch up."""

    url: str
    workers: int
    threads: int
    connections: int
    seconds: float
    requests: int
    errors: int
    statuses: dict[str, int]
    p50_us: float
    p99_us: float
    per_second: float
    log_decisions: int  # decisions the server answered (warm-up included), each to be logged
    log_stored: int  # of those, found in the database
    log_lag_seconds: float | None  # end of the load → the last one stored (None: not all within the wait)
    client: str = "python http.client, one keep-alive connection per thread"


@dataclass(frozen=True)
class BenchReport:
    policy: str
    engine: str
    as_of: str
    records: int
    repeat: int
    input_errors: int
    evaluation_errors: int
    timer_overhead_ns: int
    stages: tuple[StageTiming, ...]
    total: StageTiming  # the four stages of each record, summed
    end_to_end: EndToEnd | None = None

    def stage(self, name: str) -> StageTiming:
        return next(stage for stage in self.stages if stage.name == name)

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["stages"] = {stage.name: _without_name(asdict(stage)) for stage in self.stages}
        body["total"] = _without_name(body["total"])
        return body


def _without_name(stage: dict[str, Any]) -> dict[str, Any]:
    stage.pop("name", None)
    return stage


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile of sorted values (nearest rank); 0 for none."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# ----------------------------------------------------------------------------- the stages, in process


def request_body(record: Any, as_of: str | None = None) -> bytes:
    """The bytes a caller POSTs to /v1/decisions/{policy} for `record`."""
    body: dict[str, Any] = {"input": record}
    if as_of is not None:
        body["as_of"] = as_of
    return orjson.dumps(body)


def _timer_overhead_ns() -> int:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(2001):
        started = clock()
        samples.append(clock() - started)
    return int(sorted(samples)[len(samples) // 2])


def bench_stages(
    policy: Policy,
    records: Sequence[Any],
    *,
    as_of: str | None = None,
    lists: Mapping[str, Any] | None = None,
    repeat: int | None = None,
    ignore_extra: bool = False,
) -> BenchReport:
    """Time each stage of each record, `repeat` passes over the records (default: about 20,000 records), after
    one untimed pass. A record the policy refuses is timed too (its rejection is what a caller would wait for)."""
    if not records:
        raise ValueError("no records to measure")
    today = as_of or _dt.datetime.now(_dt.UTC).date().isoformat()
    repeat = repeat or max(1, math.ceil(DEFAULT_SAMPLES / len(records)))
    prepared = policy.prepare_lists(lists or {})
    validator = policy.compiled.validator
    bodies = [request_body(record) for record in records]
    clock = time.perf_counter_ns
    timings: dict[str, list[int]] = {name: [] for name in STAGES}
    totals: list[int] = []
    input_errors = evaluation_errors = 0

    def one(body: bytes, record: Any, timed: bool) -> tuple[bool, bool]:
        t0 = clock()
        loads(body)
        t1 = clock()
        refused = failed = False
        try:
            validator.validate(record, ignore_extra=ignore_extra)
        except InputError:
            pass
        t2 = clock()
        try:
            decision = policy.decide(record, as_of=today, lists=prepared, ignore_extra=ignore_extra, trace=True)
            response: Any = None
        except InputError as exc:
            refused, response = True, exc
        except EvaluationError as exc:
            failed, response = True, exc
        t3 = clock()
        if response is None:
            orjson.dumps(_response_body(policy.name, decision.to_json()["outputs"], today, t3 - t2))
        elif isinstance(response, InputError):
            orjson.dumps(from_input(response).body())
        else:
            orjson.dumps(from_evaluation(response).body())
        t4 = clock()
        if timed:
            timings["json_decode"].append(t1 - t0)
            timings["validation"].append(t2 - t1)
            timings["evaluation"].append(t3 - t2)
            timings["result_encoding"].append(t4 - t3)
            totals.append(t4 - t0)
        return refused, failed

    for body, record in zip(bodies, records):  # warm-up: the evaluator is built on first use
        one(body, record, False)
    for _ in range(repeat):
        for body, record in zip(bodies, records):
            refused, failed = one(body, record, True)
            input_errors += refused
            evaluation_errors += failed
    return BenchReport(
        policy=policy.name,
        engine=implementation.IMPLEMENTATION,
        as_of=today,
        records=len(records),
        repeat=repeat,
        input_errors=input_errors // repeat,
        evaluation_errors=evaluation_errors // repeat,
        timer_overhead_ns=_timer_overhead_ns(),
        stages=tuple(StageTiming.from_ns(name, timings[name]) for name in STAGES),
        total=StageTiming.from_ns("total", totals),
    )


def _response_body(policy: str, outputs: Any, as_of: str, engine_ns: int) -> dict[str, Any]:
    """The shape of the server's 200 body (decision_server.service.DecisionService._response)."""
    return {
        "decision_id": "0190f3a2-7b1c-7d3e-8f4a-1b2c3d4e5f60",
        "policy": policy,
        "version": 1,
        "arm": "champion",
        "outputs": outputs,
        "lists": {},
        "as_of": as_of,
        "timings": {"engine_us": engine_ns // 1000, "total_us": engine_ns // 1000 + 20},
    }


# ----------------------------------------------------------------------------- a throwaway registry


@dataclass(frozen=True)
class PreparedRegistry:
    url: str
    api_key: str
    policy: str
    version: int


def synthetic_cases(
    policy: Policy, records: Sequence[Any], as_of: str, lists: Mapping[str, list[Any]]
) -> list[dict[str, Any]]:
    """One test case from the first record the policy decides, expecting what it decides (the registry refuses a
    version without test cases; a bench of a policy with no NAME.tests.json still needs one)."""
    for position, record in enumerate(records, start=1):
        try:
            outputs = policy.decide(record, as_of=as_of, lists=lists, trace=False).to_json()["outputs"]
        except (InputError, EvaluationError):
            continue
        return [
            {
                "name": f"decide bench: record {position} as decided",
                "input": record,
                "as_of": as_of,
                "lists": {name: list(members) for name, members in lists.items()},
                "expect": outputs,
            }
        ]
    raise ValueError("no record decides, so there is no test case to submit the policy with")


def prepare_registry(
    directory: Path, source: str, tests_json: str, lists: Mapping[str, list[Any]] | None = None
) -> PreparedRegistry:
    """A migrated SQLite registry in `directory` where `source` is live: one user (admin, author, deployer, list
    manager) saves, submits and activates, another approves; each list's members are approved; an API key for the
    policy. Raises RegistryError as the registry would for a policy it refuses."""
    from registry import Registry, deployments, migrate, policies, users
    from registry import lists as registry_lists

    url = f"sqlite:///{directory / 'registry.db'}"
    registry = Registry(url)
    try:
        migrate.upgrade(registry)
        password = secrets.token_urlsafe(16)
        owner = users.add_user(registry, None, "bench", password, ("admin", "author", "deployer", "list_manager"))
        reviewer = users.add_user(registry, owner, "bench-reviewer", password, ("approver", "list_approver"))
        draft = policies.save_draft(registry, owner, source, tests_json)
        version = policies.submit(registry, owner, draft.policy, note="decide bench")
        policies.approve(registry, reviewer, draft.policy, version.number, comment="decide bench")
        for name, members in (lists or {}).items():
            if members:
                request = registry_lists.request_add(registry, owner, name, list(members), reason="decide bench")
                registry_lists.decide_change(registry, reviewer, request.id, "approve", comment="decide bench")
        deployments.activate(registry, owner, draft.policy, version.number, note="decide bench")
        _, api_key = users.create_api_key(registry, owner, "decide bench", [draft.policy])
    finally:
        registry.dispose()
    return PreparedRegistry(url, api_key, draft.policy, version.number)


def count_logged(url: str, policy: str) -> int:
    from registry import Registry
    from registry import decisions as decision_log

    registry = Registry(url)
    try:
        return decision_log.count_decisions(registry, policy)
    finally:
        registry.dispose()


# ----------------------------------------------------------------------------- a server in a subprocess


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class ServerError(Exception):
    """The server did not start, or did not become ready in time (the message ends with its log's tail)."""


class ServerProcess:
    """A server command run as a subprocess, its output in a log file; `wait_ready` polls a path until 200, `stop`
    sends SIGTERM (gunicorn's graceful stop) and, after `grace` seconds, SIGKILL — to this process only."""

    def __init__(
        self, command: Sequence[str], port: int, log_path: Path, env: Mapping[str, str] | None = None, host="127.0.0.1"
    ) -> None:
        self.command, self.port, self.host, self.log_path = list(command), port, host, log_path
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> ServerProcess:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
        )
        return self

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, path: str = "/readyz", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ServerError(f"the server exited with status {self.process.returncode}:\n{self.log_tail()}")
            try:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=2)
                connection.request("GET", path)
                status = connection.getresponse().status
                connection.close()
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"the server was not ready within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, grace: float = 15.0) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (gunicorn's master and workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, ()))
    return found


def process_tree_rss(pid: int) -> dict[int, int]:
    """RSS in bytes of `pid` and of each of its descendants, read from /proc (shared pages count in each)."""
    page = os.sysconf("SC_PAGE_SIZE")
    found: dict[int, int] = {}
    for current in process_tree(pid):
        try:
            found[current] = int(Path(f"/proc/{current}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return found


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and its live descendants, read from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for current in process_tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


# ----------------------------------------------------------------------------- the load


@dataclass
class LoadResult:
    seconds: float
    latencies_us: list[float] = field(repr=False)
    statuses: dict[str, int]
    errors: int  # transport failures plus responses that are not 2xx
    connections: int

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentiles(self) -> tuple[float, float]:
        ordered = sorted(self.latencies_us)
        return percentile(ordered, 50), percentile(ordered, 99)

    def count(self, *statuses: int) -> int:
        return sum(self.statuses.get(str(status), 0) for status in statuses)


def drive(
    host: str,
    port: int,
    path: str,
    bodies: Sequence[bytes],
    headers: Mapping[str, str],
    *,
    seconds: float,
    connections: int = 4,
    rate: float | None = None,
    method: str = "POST",
) -> LoadResult:
    """POST `bodies` round-robin from `connections` threads, each on one keep-alive connection, for `seconds`.

    Closed loop (each thread sends its next request when the answer arrives) unless `rate` (requests/s over all
    threads) paces them; a paced request's latency counts from when it was due, so a stall is not hidden. A
    transport failure counts as an error, and the thread reconnects."""
    if not bodies:
        raise ValueError("no request bodies")
    headers = {"Content-Type": "application/json", **headers}
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = [0]
    start = time.perf_counter()
    deadline = start + seconds

    def worker(index: int) -> None:
        own_latencies: list[float] = []
        own_statuses: dict[str, int] = {}
        own_errors = 0
        connection = http.client.HTTPConnection(host, port, timeout=30)
        position = index
        interval = connections / rate if rate else 0.0
        due = start + (index * interval / connections if rate else 0.0)
        clock = time.perf_counter
        while True:
            if rate:
                now = clock()
                if due > now:
                    time.sleep(due - now)
                sent = due
                due += interval
            else:
                sent = clock()
            if sent >= deadline:
                break
            body = bodies[position % len(bodies)]
            position += connections
            try:
                connection.request(method, path, body, headers)
                response = connection.getresponse()
                response.read()
                status = str(response.status)
            except (OSError, http.client.HTTPException):
                own_errors += 1
                own_statuses["transport"] = own_statuses.get("transport", 0) + 1
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=30)
                continue
            own_latencies.append((clock() - sent) * 1e6)
            own_statuses[status] = own_statuses.get(status, 0) + 1
            if not status.startswith("2"):
                own_errors += 1
        connection.close()
        with lock:
            latencies.extend(own_latencies)
            for status, count in own_statuses.items():
                statuses[status] = statuses.get(status, 0) + count
            errors[0] += own_errors

    threads = [threading.Thread(target=worker, args=(index,), daemon=True) for index in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return LoadResult(time.perf_counter() - start, latencies, statuses, errors[0], connections)


def wait_logged(count: Callable[[], int], expected: int, timeout: float = 30.0) -> tuple[int, float | None]:
    """Poll `count()` until it reaches `expected`; (what it reached, seconds it took or None past `timeout`)."""
    started = time.monotonic()
    stored = 0
    while True:
        stored = count()
        if stored >= expected:
            return stored, round(time.monotonic() - started, 3)
        if time.monotonic() - started > timeout:
            return stored, None
        time.sleep(0.02)


@contextmanager
def temporary_directory(prefix: str = "decide-bench-") -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_end_to_end(
    serve_command: Callable[[str, str, int], Sequence[str]],
    source: str,
    tests_json: str,
    records: Sequence[Any],
    *,
    as_of: str,
    lists: Mapping[str, list[Any]] | None = None,
    seconds: float = 10.0,
    connections: int = 4,
    warmup_seconds: float | None = None,
    workers: int | None = None,
    threads: int = 2,
) -> EndToEnd:
    """Prepare a throwaway registry, start the server (`serve_command(database_url, data_dir, port)` gives its
    command line), wait for /readyz, warm up, drive it for `seconds`, then wait for the decision log."""
    with temporary_directory() as directory:
        prepared = prepare_registry(directory, source, tests_json, lists)
        port = free_port()
        command = serve_command(prepared.url, str(directory / "data"), port)
        server = ServerProcess(command, port, directory / "server.log")
        path = f"/v1/decisions/{prepared.policy}"
        bodies = [request_body(record, as_of) for record in records]
        headers = {"Authorization": f"Bearer {prepared.api_key}"}
        warmup = min(1.0, seconds / 4) if warmup_seconds is None else warmup_seconds
        with server:
            server.wait_ready()
            warm = drive("127.0.0.1", port, path, bodies, headers, seconds=warmup, connections=connections)
            load = drive("127.0.0.1", port, path, bodies, headers, seconds=seconds, connections=connections)
            decided = warm.count(200, 422) + load.count(200, 422)
            stored, lag = wait_logged(lambda: count_logged(prepared.url, prepared.policy), decided)
        p50, p99 = load.percentiles()
        return EndToEnd(
            url=f"http://127.0.0.1:{port}{path}",
            workers=workers or default_workers(),
            threads=threads,
            connections=connections,
            seconds=round(load.seconds, 3),
            requests=load.requests,
            errors=load.errors,
            statuses=dict(sorted(load.statuses.items())),
            p50_us=round(p50, 1),
            p99_us=round(p99, 1),
            per_second=round(load.per_second, 1),
            log_decisions=decided,
            log_stored=stored,
            log_lag_seconds=lag,
        )
