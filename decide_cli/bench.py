"""`decide bench`: per-stage latency and throughput of a policy's decisions, and with `--e2e` of the decision server.

Input: a policy file, a file of input records (as `decide run` reads them), its lists, the evaluation date, how
many passes; with `--e2e` how long and over how many connections to drive the server. Output: a table (text) or
one JSON object (`--format json`, for CI) of p50 / p99 in µs and throughput per stage, from
`decision_server.bench`; the exit codes of docs/cli.md (1 the policy does not compile, 2 the input or a list file
cannot be read, 6 the server could not be started or the registry refused the policy, 64 wrong usage).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

EXIT_SERVER = 6


def _text_report(report: Any) -> list[str]:
    lines = [
        f"policy {report.policy} · {report.records} record(s) × {report.repeat} pass(es) · as_of {report.as_of} · "
        f"engine {report.engine} · timer overhead {report.timer_overhead_ns} ns",
        "",
        f"{'stage':<18}{'p50 µs':>10}{'p99 µs':>10}{'mean µs':>10}{'per second':>14}",
    ]
    for stage in (*report.stages, report.total):
        lines.append(
            f"{stage.name:<18}{stage.p50_us:>10.2f}{stage.p99_us:>10.2f}{stage.mean_us:>10.2f}{stage.per_second:>14,.0f}"
        )
    if report.input_errors or report.evaluation_errors:
        lines.append(
            f"(of each pass, {report.input_errors} record(s) refused for their input and "
            f"{report.evaluation_errors} failed to evaluate: their rejection is what was timed)"
        )
    e2e = report.end_to_end
    if e2e is not None:
        lag = f"{e2e.log_lag_seconds:.2f} s" if e2e.log_lag_seconds is not None else "not complete within 30 s"
        lines += [
            "",
            f"HTTP end to end: {e2e.url} · {e2e.workers} workers × {e2e.threads} threads · "
            f"{e2e.connections} connection(s) · {e2e.seconds:.1f} s ({e2e.client})",
            f"{'http':<18}{e2e.p50_us:>10.0f}{e2e.p99_us:>10.0f}{'':>10}{e2e.per_second:>14,.0f}",
            f"requests {e2e.requests}, errors {e2e.errors}, statuses {e2e.statuses}",
            f"decision log: {e2e.log_stored} of {e2e.log_decisions} decision(s) in the database, "
            f"the last {lag} after the load ended",
        ]
    return lines


def _tests_json(policy_path: Path, policy: Any, records: list[Any], as_of: str, lists: dict[str, list[Any]]) -> str:
    """NAME.tests.json beside the policy, else one case made from the first record the policy decides."""
    from decision_server.bench import synthetic_cases

    beside = policy_path.with_name(policy_path.name.removesuffix(".policy") + ".tests.json")
    if beside.is_file():
        return beside.read_text(encoding="utf-8")
    return orjson.dumps(synthetic_cases(policy, records, as_of, lists)).decode()


def _serve_command(database_url: str, data_dir: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "decide_cli", "serve",
        "--db", database_url, "--data-dir", data_dir, "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip


@click.command()
@click.argument("policy_file", metavar="POLICY")
@click.option("--input", "-i", "input_path", required=True, metavar="FILE|-", help="Records, as `decide run` reads.")
@click.option(
    "--list", "list_specs", multiple=True, metavar="NAME=FILE", help="Members of list NAME, one per line (repeatable)."
)
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", help="The evaluation date (default: today, UTC).")
@click.option(
    "--repeat", type=click.IntRange(1, 1_000_000), help="Passes over the records (default: about 20,000 records)."
)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--e2e", is_flag=True, help="Also start the server on loopback and measure HTTP and the decision log.")
@click.option("--duration", type=click.FloatRange(0.5, 3600), default=10.0, show_default=True, help="--e2e seconds.")
@click.option(
    "--connections", type=click.IntRange(1, 256), default=4, show_default=True, help="--e2e client connections."
)
def bench(
    policy_file: str,
    input_path: str,
    list_specs: tuple[str, ...],
    as_of: str | None,
    repeat: int | None,
    output_format: str,
    e2e: bool,
    duration: float,
    connections: int,
) -> None:
    """Measure POLICY on the records in --input: p50/p99 and throughput of JSON decode, validation, evaluation
    and result encoding (like `opa bench`); --e2e adds the server over HTTP and the decision log."""
    from compiler.evaluate.results import resolve_as_of
    from decide_cli.inputs import InputFileError, read_records
    from decide_cli.main import EXIT_INPUT, CliExit, _err, _load_policy, _out, _read_lists
    from decision_server import bench as measuring
    from dsl.errors import EvaluationError, InputError

    try:
        today = resolve_as_of(as_of).isoformat()
    except EvaluationError as exc:
        raise click.BadParameter(str(exc).removeprefix("as_of: "), param_hint="--as-of") from None
    policy = _load_policy(policy_file)
    lists = _read_lists(policy, list_specs)
    try:
        _, found = read_records(input_path)
        records = list(found)
        for position, record in enumerate(records, start=1):
            if isinstance(record, InputFileError):
                raise record
            if not isinstance(record, dict):
                raise InputFileError(f"{input_path}: record {position} is not a JSON object")
        if not records:
            raise InputFileError(f"{input_path}: no records to measure")
    except InputFileError as exc:
        _err(f"error: {exc}")
        raise CliExit(EXIT_INPUT) from None
    try:
        prepared = policy.prepare_lists(lists)
    except (InputError, EvaluationError) as exc:
        _err(f"error: the lists cannot be used: {exc}")
        raise CliExit(EXIT_INPUT) from None

    report = measuring.bench_stages(policy, records, as_of=today, lists=prepared, repeat=repeat)
    if e2e:
        from registry import RegistryError

        try:
            tests_json = _tests_json(Path(policy_file), policy, records, today, lists)
            end_to_end = measuring.run_end_to_end(
                _serve_command,
                policy.source,
                tests_json,
                records,
                as_of=today,
                lists=lists,
                seconds=duration,
                connections=connections,
            )
        except (RegistryError, ValueError, measuring.ServerError) as exc:
            message = exc.render() if isinstance(exc, RegistryError) else str(exc)
            _err(f"error: --e2e: {message}")
            raise CliExit(EXIT_SERVER) from None
        from dataclasses import replace

        report = replace(report, end_to_end=end_to_end)
    if output_format == "json":
        _out(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        _out("\n".join(_text_report(report)))
    raise CliExit(0)


def register(cli: click.Group) -> None:
    cli.add_command(bench)
