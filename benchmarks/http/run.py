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
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request(
                "POST", PATH, BODY, {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
            )
            response = connection.getresponse()
            reply = response.read()
            connection.close()
            if response.status != 200:
                raise RuntimeError(f"{variant}: the first request got {response.status}: {reply[:300]!r}")
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
    tool_name = "wrk 4.1 (one thread)" if tool != "python" else "the Python client of decision_server.bench"
    rounds = f"the median of {arguments.rounds} rounds" if arguments.rounds > 1 else "one round"
    lines = [
        f"**Machine:** {facts['cpu']}, {facts['cores']} cores, {facts['memory']} RAM, {facts['os']}, "
        f"{facts['python']}; {facts['packages']}. Load average before the run: {facts['load_before']}.",
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
    with temporary_directory("decide-http-bench-") as directory:
        url, key, registry = seed_registry(directory)
        try:
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
    text = report(results, facts, tool, arguments)
    print(text)
    if arguments.out:
        Path(arguments.out).write_text(text, encoding="utf-8")
    if arguments.json:
        Path(arguments.json).write_bytes(
            orjson.dumps(
                {"machine": facts, "results": [asdict(result) for result in results]}, option=orjson.OPT_INDENT_2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
