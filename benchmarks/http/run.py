"""The decision endpoint side by side with a bare Flask app, under one gunicorn configuration, in one run.

Input: options (seconds per measurement, connections, rounds, the load generator). Output: a markdown report on
standard output (and `--out FILE`, `--json FILE`): the machine, the tool, the command, and one table of
requests/s, p50, p99 and errors for

- `bare Flask`: `benchmarks/http/bare_app.py`, which parses the same body with orjson and returns a fixed answer
  of the same size (a real response of the decision server, saved at the start of the run);
- `decision server`: `decide serve` on a throwaway SQLite registry seeded with the demo data (`consumer_loan`
  and the other examples live, the demo blacklist approved), the decision log on (it is always on), the spool's
  fsync at its default (`interval`);
- `… spool fsync always`: the same with `DECIDE_SERVER_SPOOL_FSYNC=always` (an fsync before every response);
- `… with a shadow`: the same with version 2 of `consumer_loan` (the same rules) deployed as a shadow of
  version 1, so every decision is evaluated and logged twice, the second time after the response;

and, with `--attribution`, the decision server with its log shipping paused (decisions spooled, shipped when
it stops: `DECIDE_SERVER_SHIP_INTERVAL_SECONDS=3600`) and with the registry also polled only hourly
(`DECIDE_SERVER_REFRESH_SECONDS=3600`), to attribute the cost of those background threads (diagnostic rows, not
a way to run); then the targets (throughput at least 80 % of bare Flask, p99 at most 2× bare Flask) and the cost
of the shadow and of fsync-always. Every server: gthread workers, workers = cores + 1, 2 threads, the app
preloaded, on a free loopback port, started and stopped by this script. The load generator is `wrk` (Debian
package `wrk`; a POST needs its Lua script in a real file, written here) or, when it is missing or `--tool
python`, the bounded Python client of `decision_server.bench` — the same tool for every row. Loopback only,
bounded in time (about `rounds × variants × (duration + warm-up + 10 s)`).

    python benchmarks/http/run.py --duration 20 --rounds 2 --attribution --out /tmp/http.md

With `--paired N` it runs instead N pairs of slices of `--duration` seconds on two servers started once and kept
running (bare Flask and the decision server, the other idle meanwhile), in the order B D, D B, B D, …, and
compares each decision slice with the bare slice next to it: on a host whose speed drifts by a factor of two in
minutes (this project's CI VM), only neighbours in time compare. A decision slice counts until the log has caught
up (every answered decision stored), so the log's whole cost is in its figure; the steal time the hypervisor
reported during each slice is shown beside it.

    python benchmarks/http/run.py --paired 6 --duration 15 --warmup 5 --out /tmp/paired.md

The figures are reports, never asserted: client and servers share the machine's cores, so compare only rows of one
run. BENCHMARKS.md ("HTTP decision endpoint") has measured ones.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from decision_server.bench import (  # noqa: E402
    ServerProcess,
    drive,
    free_port,
    process_tree_cpu,
    temporary_directory,
)
from decision_server.serve import default_workers  # noqa: E402

POLICY = "consumer_loan"
PATH = f"/v1/decisions/{POLICY}"
# The README's quick-start request.
BODY = orjson.dumps(
    {
        "input": {
            "age": 59,
            "RevolvingUtilizationOfUnsecuredLines": 0.05,
            "DebtRatio": 0.2,
            "MonthlyIncome": 8000,
            "NumberOfOpenCreditLinesAndLoans": 8,
            "NumberOfTimes90DaysLate": 0,
            "NumberRealEstateLoansOrLines": 1,
            "NumberOfDependents": 2,
            "national_id": "AB123456",
        },
        "trace": True,
    }
)
BARE, DECIDE, FSYNC, SHADOW = (
    "bare Flask",
    "decision server",
    "decision server, spool fsync always",
    ("decision server, with a shadow version"),
)
VARIANTS = (DECIDE, BARE, FSYNC, SHADOW)
# --attribution: the same server with background work switched off by configuration, to attribute its cost.
UNSHIPPED = "decision server, log shipping paused (spooled only)"
QUIET = "decision server, shipping paused and registry polled hourly"
ATTRIBUTION = (UNSHIPPED, QUIET)
PAUSED = {"DECIDE_SERVER_SHIP_INTERVAL_SECONDS": "3600"}

WRK_SCRIPT = """-- written by benchmarks/http/run.py
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {{\\"requests\\": %d, \\"duration_us\\": %d, \\"connect\\": %d, \\"read\\": %d, \\"write\\": %d, "
    .. "\\"status\\": %d, \\"timeout\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d, \\"max_us\\": %d}}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass
class Measured:
    variant: str
    round: int
    requests: int
    seconds: float
    per_second: float
    p50_us: float
    p99_us: float
    errors: int
    cpu_us: float  # CPU of the server's processes (master and workers, every thread) per request
    detail: str = ""
    logged: str = ""


# ----------------------------------------------------------------------------- the machine


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    system = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                system = f"{line.split('=', 1)[1].strip(chr(34))}, Linux {platform.release()}"
    except OSError:
        pass
    from importlib.metadata import version

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "os": system,
        "python": f"CPython {platform.python_version()}",
        "packages": f"gunicorn {version('gunicorn')}, Flask {version('flask')}, orjson {version('orjson')}",
    }


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_times() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs so far, from /proc/stat (steal: time the hypervisor ran someone else)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return fields[7], sum(fields)


# ----------------------------------------------------------------------------- the load generators


def run_wrk(wrk: str, script: Path, port: int, seconds: float, connections: int) -> tuple[dict[str, Any], str]:
    command = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script)]
    command.append(f"http://127.0.0.1:{port}{PATH}")
    finished = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    for line in finished.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return orjson.loads(line.removeprefix("WRKJSON ")), finished.stdout
    raise RuntimeError(f"wrk gave no summary (exit {finished.returncode}): {finished.stdout}\n{finished.stderr}")


def measure(
    tool: str, script: Path, port: int, key: str, seconds: float, connections: int
) -> tuple[int, float, float, float, int, str]:
    """(requests, seconds, p50 µs, p99 µs, errors, detail) of one bounded load."""
    if tool != "python":
        summary, _ = run_wrk(tool, script, port, seconds, connections)
        errors = sum(summary[name] for name in ("connect", "read", "write", "status", "timeout"))
        detail = ", ".join(f"{name} {summary[name]}" for name in ("connect", "read", "write", "status", "timeout"))
        return (
            summary["requests"],
            summary["duration_us"] / 1e6,
            float(summary["p50_us"]),
            float(summary["p99_us"]),
            errors,
            f"wrk errors: {detail}",
        )
    load = drive("127.0.0.1", port, PATH, [BODY], {"Authorization": f"Bearer {key}"}, seconds=seconds,
                 connections=connections)  # fmt: skip
    p50, p99 = load.percentiles()
    return load.requests, load.seconds, p50, p99, load.errors, f"statuses {load.statuses}"


# ----------------------------------------------------------------------------- the registry


def seed_registry(directory: Path) -> tuple[str, str, Any]:
    """A migrated SQLite registry with the demo data and version 2 of consumer_loan approved (not deployed)."""
    from registry import Registry, demo, migrate, policies, users

    url = f"sqlite:///{directory / 'registry.db'}"
    registry = Registry(url)
    migrate.upgrade(registry)
    seeded = demo.seed(registry)
    alice, bob = users.get_user(registry, "alice"), users.get_user(registry, "bob")
    source = (REPO / "policies" / f"{POLICY}.policy").read_text(encoding="utf-8")
    tests = (REPO / "policies" / f"{POLICY}.tests.json").read_text(encoding="utf-8")
    source += "\n# version 2: the same rules, deployed as a shadow by benchmarks/http/run.py\n"
    policies.save_draft(registry, alice, source, tests)
    version = policies.submit(registry, alice, POLICY, note="the shadow of benchmarks/http/run.py")
    policies.approve(registry, bob, POLICY, version.number, comment="benchmark")
    return url, seeded.api_key, registry


def deploy(registry: Any, shadows: tuple[int, ...]) -> None:
    from registry import deployments, users

    dora = users.get_user(registry, "dora")
    deployments.activate(registry, dora, POLICY, 1, shadows=shadows, note="benchmarks/http/run.py")


def logged_counts(registry: Any) -> tuple[int, int]:
    """(decisions, shadow decisions) of consumer_loan in the log."""
    from sqlalchemy import text

    with registry.read() as session:
        rows = session.connection().execute(
            text("SELECT arm = 'shadow', COUNT(*) FROM decisions WHERE policy = :policy GROUP BY arm = 'shadow'"),
            {"policy": POLICY},
        )
        counts = {bool(shadow): int(count) for shadow, count in rows}
    return counts.get(False, 0), counts.get(True, 0)


# ----------------------------------------------------------------------------- one variant


def first_answer(port: int, key: str, variant: str) -> bytes:
    """The body of one request of the benchmark's kind, which must succeed (a server that refuses it fails the run)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", PATH, BODY, {"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    response = connection.getresponse()
    reply = response.read()
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"{variant}: the first request got {response.status}: {reply[:300]!r}")
    return reply


def run_variant(
    variant: str,
    number: int,
    directory: Path,
    url: str,
    key: str,
    registry: Any,
    tool: str,
    arguments: argparse.Namespace,
) -> Measured:
    port = free_port()
    index = (*VARIANTS, *ATTRIBUTION).index(variant)
    data = directory / f"data-{number}-{index}"
    answer = directory / "answer.json"
    environment = {"PYTHONPATH": str(REPO), "BARE_ANSWER_FILE": str(answer)}
    if variant == BARE:
        command = [sys.executable, "-m", "benchmarks.http.bare_app", "--port", str(port)]
    else:
        command = [sys.executable, "-m", "decide_cli", "serve", "--db", url, "--data-dir", str(data)]
        command += ["--port", str(port)]
    if variant == FSYNC:
        environment["DECIDE_SERVER_SPOOL_FSYNC"] = "always"
    if variant in ATTRIBUTION:
        environment.update(PAUSED)
    if variant == QUIET:
        environment["DECIDE_SERVER_REFRESH_SECONDS"] = "3600"
    if variant == SHADOW:
        deploy(registry, (2,))
    script = directory / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=BODY.decode(), key=key))
    before = logged_counts(registry)
    server = ServerProcess(command, port, directory / f"server-{number}-{index}.log", environment)
    try:
        with server:
            server.wait_ready()
            reply = first_answer(port, key, variant)
            if variant == DECIDE and not answer.exists():
                answer.write_bytes(reply)
            warm = measure(tool, script, port, key, arguments.warmup, arguments.connections)
            cpu_before = process_tree_cpu(server.pid)
            requests, seconds, p50, p99, errors, detail = measure(
                tool, script, port, key, arguments.duration, arguments.connections
            )
            cpu_us = (process_tree_cpu(server.pid) - cpu_before) / max(requests, 1) * 1e6
            logged = ""
            if variant in ATTRIBUTION:
                logged = "spooled, shipped only when the server stopped (shipping paused)"
            elif variant != BARE:
                expected = 1 + warm[0] + requests - warm[4] - errors
                started = time.monotonic()
                while True:
                    decisions, shadows = logged_counts(registry)
                    done = decisions - before[0] >= expected and (variant != SHADOW or shadows - before[1] >= expected)
                    if done or time.monotonic() - started > 30:
                        break
                    time.sleep(0.05)
                lag = time.monotonic() - started
                logged = f"{decisions - before[0]} logged (at least {expected} answered), {lag:.2f} s after the load"
                if variant == SHADOW:
                    logged += f"; {shadows - before[1]} shadow decisions"
    finally:
        if variant == SHADOW:
            deploy(registry, ())
    return Measured(variant, number, requests, round(seconds, 2), round(requests / seconds, 1), p50, p99, errors,
                    round(cpu_us, 1), detail, logged)  # fmt: skip


def machine_line(facts: dict[str, str]) -> str:
    return (
        f"**Machine:** {facts['cpu']}, {facts['cores']} cores, {facts['memory']} RAM, {facts['os']}, "
        f"{facts['python']}; {facts['packages']}. Load average before the run: {facts['load_before']}."
    )


def describe_tool(tool: str) -> str:
    return "wrk 4.1 (one thread)" if tool != "python" else "the Python client of decision_server.bench"


# ----------------------------------------------------------------------------- paired slices


@dataclass
class Slice:
    pair: int
    variant: str
    requests: int
    seconds: float  # load seconds, plus for the decision server the time until its log caught up
    load_seconds: float
    p50_us: float
    p99_us: float
    errors: int
    cpu_us: float
    steal: float  # share of all CPU time the hypervisor reported as stolen during the slice

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def wait_logged(registry: Any, count: int, deadline: float) -> None:
    """Until the log holds `count` consumer_loan decisions; a log that falls behind for good fails the run."""
    while (logged := logged_counts(registry)[0]) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the decision log holds {logged} decisions, {count} expected: it did not catch up")
        time.sleep(0.02)


def _slice(
    pair: int, variant: str, server: ServerProcess, registry: Any, key: str, script: Path, tool: str,
    arguments: argparse.Namespace,
) -> Slice:  # fmt: skip
    before = logged_counts(registry)[0]
    steal_before, total_before = cpu_times()
    cpu_before = process_tree_cpu(server.pid)
    requests, seconds, p50, p99, errors, _ = measure(
        tool, script, server.port, key, arguments.duration, arguments.connections
    )
    counted = seconds
    if variant == DECIDE:
        # Every request wrk counted was answered (a refused one is logged too, but errors are left out to be safe).
        finished = time.monotonic()
        wait_logged(registry, before + requests - errors, finished + 60)
        counted += time.monotonic() - finished
    cpu_us = (process_tree_cpu(server.pid) - cpu_before) / max(requests, 1) * 1e6
    steal_after, total_after = cpu_times()
    steal = (steal_after - steal_before) / max(total_after - total_before, 1)
    return Slice(pair, variant, requests, counted, seconds, p50, p99, errors, cpu_us, steal)


def run_paired(
    directory: Path, url: str, key: str, registry: Any, tool: str, arguments: argparse.Namespace
) -> list[Slice]:
    """Pairs of slices, B D then D B, on a bare Flask server and a decision server that both keep running."""
    answer = directory / "answer.json"
    environment = {"PYTHONPATH": str(REPO), "BARE_ANSWER_FILE": str(answer)}
    script = directory / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=BODY.decode(), key=key))
    decide_port, bare_port = free_port(), free_port()
    decide = ServerProcess(
        [sys.executable, "-m", "decide_cli", "serve", "--db", url, "--data-dir", str(directory / "data-paired"),
         "--port", str(decide_port)],
        decide_port, directory / "server-paired-decide.log", environment,
    )  # fmt: skip
    bare = ServerProcess(
        [sys.executable, "-m", "benchmarks.http.bare_app", "--port", str(bare_port)],
        bare_port, directory / "server-paired-bare.log", environment,
    )  # fmt: skip
    slices: list[Slice] = []
    logged_before = logged_counts(registry)[0]
    with decide:
        decide.wait_ready()
        answer.write_bytes(first_answer(decide_port, key, DECIDE))
        with bare:
            bare.wait_ready()
            for server in (bare, decide):
                warm = measure(tool, script, server.port, key, arguments.warmup, arguments.connections)
            # The warm-up's decisions stored before the first slice, so that none of its shipping lands in a slice.
            wait_logged(registry, logged_before + 1 + warm[0] - warm[4], time.monotonic() + 60)
            servers = {BARE: bare, DECIDE: decide}
            for pair in range(1, arguments.paired + 1):
                order = (BARE, DECIDE) if pair % 2 else (DECIDE, BARE)
                for variant in order:
                    done = _slice(pair, variant, servers[variant], registry, key, script, tool, arguments)
                    print(
                        f"pair {pair}: {variant}: {done.per_second:,.0f}/s p99 {_ms(done.p99_us)} "
                        f"steal {done.steal:.1%}",
                        file=sys.stderr,
                        flush=True,
                    )
                    slices.append(done)
    return slices


def paired_report(slices: list[Slice], facts: dict[str, str], tool: str, arguments: argparse.Namespace) -> str:
    pairs = sorted({done.pair for done in slices})
    by = {(done.pair, done.variant): done for done in slices}
    throughput = [by[pair, DECIDE].per_second / by[pair, BARE].per_second for pair in pairs]
    raw = [by[pair, DECIDE].requests / by[pair, DECIDE].load_seconds / by[pair, BARE].per_second for pair in pairs]
    latency = [by[pair, DECIDE].p99_us / by[pair, BARE].p99_us for pair in pairs]
    tool_name = describe_tool(tool)
    lines = [
        machine_line(facts),
        "",
        f"**Tool:** {tool_name}, {arguments.connections} keep-alive connections; {len(pairs)} pairs of "
        f"{arguments.duration:.0f} s slices (B D, D B, …) on two servers kept running, after {arguments.warmup:.0f} s "
        f"of warm-up each. **Servers:** gunicorn gthread, {default_workers()} workers (cores + 1), 2 threads, "
        f"preloaded, on loopback; the decision log on, spool fsync `interval`. **Request:** the README's "
        f"(`consumer_loan`, trace on), {len(BODY)} bytes; the answer {facts.get('answer_bytes', '?')} bytes from both. "
        "A decision slice's time runs until its log has caught up.",
        "",
        "| pair | server | requests/s | p50 | p99 | errors | CPU/request | steal | requests/s vs bare | p99 vs bare |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for pair in pairs:
        for variant in (BARE, DECIDE):
            done = by[pair, variant]
            versus = ("", "")
            if variant == DECIDE:
                versus = (f"{throughput[pair - 1]:.0%}", f"{latency[pair - 1]:.2f}×")
            lines.append(
                f"| {pair} | {variant} | {done.per_second:,.0f} | {_ms(done.p50_us)} | {_ms(done.p99_us)} | "
                f"{done.errors} of {done.requests:,} | {done.cpu_us:.0f} µs | {done.steal:.1%} | {versus[0]} | "
                f"{versus[1]} |"
            )
    median_throughput, median_latency = statistics.median(throughput), statistics.median(latency)
    met = lambda ok: "met" if ok else "**missed**"  # noqa: E731
    lines += [
        "",
        f"- Throughput at least 80 % of bare Flask: median of the pairs {median_throughput:.0%} (range "
        f"{min(throughput):.0%}–{max(throughput):.0%}) — {met(median_throughput >= 0.8)}. Counting only the load's "
        f"own seconds (not the log catching up): median {statistics.median(raw):.0%}.",
        f"- p99 at most 2× bare Flask: median of the pairs {median_latency:.2f}× (range {min(latency):.2f}–"
        f"{max(latency):.2f}×) — {met(median_latency <= 2.0)}.",
        f"- Server CPU per request, median: bare Flask "
        f"{statistics.median(by[pair, BARE].cpu_us for pair in pairs):.0f} µs, decision server "
        f"{statistics.median(by[pair, DECIDE].cpu_us for pair in pairs):.0f} µs.",
    ]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the report


def _ms(us: float) -> str:
    return f"{us / 1000:.2f} ms"


def summary_rows(results: list[Measured]) -> dict[str, dict[str, float]]:
    rows = {}
    for variant in (*VARIANTS, *ATTRIBUTION):
        mine = [result for result in results if result.variant == variant]
        if not mine:
            continue
        rows[variant] = {
            "per_second": statistics.median(result.per_second for result in mine),
            "p50_us": statistics.median(result.p50_us for result in mine),
            "p99_us": statistics.median(result.p99_us for result in mine),
            "errors": sum(result.errors for result in mine),
            "requests": sum(result.requests for result in mine),
            "cpu_us": statistics.median(result.cpu_us for result in mine),
        }
    return rows


def report(results: list[Measured], facts: dict[str, str], tool: str, arguments: argparse.Namespace) -> str:
    rows = summary_rows(results)
    bare, decide, fsync, shadow = (rows[variant] for variant in (BARE, DECIDE, FSYNC, SHADOW))
    throughput = decide["per_second"] / bare["per_second"]
    latency = decide["p99_us"] / bare["p99_us"]
    tool_name = describe_tool(tool)
    rounds = f"the median of {arguments.rounds} rounds" if arguments.rounds > 1 else "one round"
    lines = [
        machine_line(facts),
        "",
        f"**Tool:** {tool_name}, {arguments.connections} keep-alive connections, {arguments.duration:.0f} s per "
        f"row after {arguments.warmup:.0f} s of warm-up; {rounds}; the variants run one after the other, each on "
        f"a fresh server. **Servers:** gunicorn gthread, {default_workers()} workers (cores + 1), 2 threads, "
        "preloaded, on loopback. **Request:** the README's (`consumer_loan`, trace on), "
        f"{len(BODY)} bytes; the answer {facts.get('answer_bytes', '?')} bytes from both.",
        "",
        "| server | requests/s | p50 | p99 | errors | requests/s vs bare | p99 vs bare | server CPU per request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in (BARE, DECIDE, FSYNC, SHADOW, *ATTRIBUTION):
        if variant not in rows:
            continue
        row = rows[variant]
        lines.append(
            f"| {variant} | {row['per_second']:,.0f} | {_ms(row['p50_us'])} | {_ms(row['p99_us'])} | "
            f"{row['errors']:.0f} of {row['requests']:,.0f} | {row['per_second'] / bare['per_second']:.0%} | "
            f"{row['p99_us'] / bare['p99_us']:.2f}× | {row['cpu_us']:.0f} µs |"
        )
    met = lambda ok: "met" if ok else "**missed**"  # noqa: E731
    lines += [
        "",
        f"- Throughput at least 80 % of bare Flask: {throughput:.0%} — {met(throughput >= 0.8)}.",
        f"- p99 at most 2× bare Flask: {latency:.2f}× — {met(latency <= 2.0)}.",
        f"- Shadow evaluation: requests/s {shadow['per_second'] / decide['per_second'] - 1:+.0%}, p99 "
        f"{_ms(shadow['p99_us'])} vs {_ms(decide['p99_us'])} (the shadow runs after the response, on the same cores).",
        f"- Spool fsync always vs interval: requests/s {fsync['per_second'] / decide['per_second'] - 1:+.0%}, "
        f"p99 {_ms(fsync['p99_us'])} vs {_ms(decide['p99_us'])}.",
        f"- Server CPU per request (all processes and threads, from /proc): bare Flask {bare['cpu_us']:.0f} µs, "
        f"decision server {decide['cpu_us']:.0f} µs, with fsync always {fsync['cpu_us']:.0f} µs, with a shadow "
        f"{shadow['cpu_us']:.0f} µs.",
        "",
        "Each run:",
        "",
        "| round | server | requests/s | p50 | p99 | errors | CPU/request | detail | decision log |",
        "|---:|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for result in results:
        lines.append(
            f"| {result.round} | {result.variant} | {result.per_second:,.0f} | {_ms(result.p50_us)} | "
            f"{_ms(result.p99_us)} | {result.errors} | {result.cpu_us:.0f} µs | {result.detail} | {result.logged} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds measured per row.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Seconds of load before each measurement.")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1, help="Passes over the four servers (medians reported).")
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--attribution",
        action="store_true",
        help="Also run the decision server with log shipping paused, and with the registry polled hourly too.",
    )
    parser.add_argument(
        "--paired",
        type=int,
        default=0,
        metavar="N",
        help="Instead: N pairs of --duration slices, bare Flask and the decision server alternating (B D, D B, ...).",
    )
    parser.add_argument("--out", help="Also write the markdown report to this file.")
    parser.add_argument("--json", help="Also write every measurement as JSON to this file.")
    arguments = parser.parse_args(argv)
    wrk = shutil.which("wrk")
    if arguments.tool == "wrk" and wrk is None:
        parser.error("wrk is not installed (Debian: apt-get install -y wrk)")
    tool = "python" if arguments.tool == "python" or wrk is None else wrk
    facts = machine()
    facts["load_before"] = f"{load_average():.2f}"
    results: list[Measured] = []
    slices: list[Slice] = []
    with temporary_directory("decide-http-bench-") as directory:
        url, key, registry = seed_registry(directory)
        try:
            if arguments.paired:
                slices = run_paired(directory, url, key, registry, tool, arguments)
            else:
                for number in range(1, arguments.rounds + 1):
                    for variant in (*VARIANTS, *(ATTRIBUTION if arguments.attribution else ())):
                        result = run_variant(variant, number, directory, url, key, registry, tool, arguments)
                        print(
                            f"round {number}: {variant}: {result.per_second:,.0f}/s p50 {_ms(result.p50_us)} "
                            f"p99 {_ms(result.p99_us)} errors {result.errors} {result.logged}",
                            file=sys.stderr,
                            flush=True,
                        )
                        results.append(result)
            facts["answer_bytes"] = str(len((directory / "answer.json").read_bytes()))
        finally:
            registry.dispose()
    facts["load_after"] = f"{load_average():.2f}"
    text = paired_report(slices, facts, tool, arguments) if slices else report(results, facts, tool, arguments)
    print(text)
    if arguments.out:
        Path(arguments.out).write_text(text, encoding="utf-8")
    if arguments.json:
        measured = [{**asdict(done), "per_second": done.per_second} for done in slices] or [
            asdict(result) for result in results
        ]
        Path(arguments.json).write_bytes(
            orjson.dumps({"machine": facts, "results": measured}, option=orjson.OPT_INDENT_2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
