"""The server commands of `decide`: serve (the decision server under gunicorn) and decisions export.

Each command parses its options, calls decision_server or registry functions, and prints; exit codes are those
of the registry commands (docs/cli.md).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import orjson

from decide_cli.governance import RegistryExit, _fail, _out
from registry import Registry, RegistryError, migrate

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _demo(registry: Registry, data_dir: Path) -> None:
    """Seed an empty embedded database with the demo data, print who is who, keep the key for the README's curl."""
    from sqlmodel import func, select

    from registry import demo
    from registry.models import UserRow

    key_file = data_dir / "demo-api-key"
    if migrate.current_revision(registry) is None:
        migrate.upgrade(registry)
    else:
        migrate.require_current_schema(registry)
        with registry.read() as session:
            if session.exec(select(func.count()).select_from(UserRow)).one():
                _out(f"demo: {registry.shown_url} already has data; serving it as it is")
                if key_file.exists():
                    _out(f"demo: the demo API key is in {key_file}")
                return
    seeded = demo.seed(registry)
    data_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(seeded.api_key + "\n")
    _out(f"demo: seeded {registry.shown_url} with {', '.join(seeded.policies)} (each approved and live)")
    _out("demo users (passwords are shown once):")
    for name, password in seeded.passwords.items():
        _out(f"  {name}\t{password}\t{', '.join(seeded.roles[name])}")
    _out(f"demo API key (also in {key_file}):")
    _out(f"  {seeded.api_key}")


@click.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (anything but loopback must be explicit)."
)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", type=click.IntRange(1, 64), help="Worker processes (default: cores + 1).")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(1, 64), help="Threads per worker.")
@click.option("--db", help="Registry database URL (default: $DECIDE_DATABASE_URL, else sqlite:///decide.db).")
@click.option("--data-dir", default="decide-data", show_default=True, help="The decision spool and the pii key file.")
@click.option(
    "--demo", is_flag=True, help="On an empty database, seed the demo data first and print its users and key."
)
@click.option("--access-log", is_flag=True, help="Log every request (paths and statuses only).")
def serve(
    host: str,
    port: int,
    workers: int | None,
    threads: int,
    db: str | None,
    data_dir: str,
    demo: bool,
    access_log: bool,
) -> None:
    """Serve decisions over HTTP from the registry's live deployments (gunicorn, gthread workers)."""
    from decision_server.config import ConfigError, load_config
    from decision_server.serve import run

    try:
        registry = Registry(db)
        try:
            if demo:
                _demo(registry, Path(data_dir))
            else:
                migrate.require_current_schema(registry)
        finally:
            registry.dispose()
        config = load_config({"database_url": registry.url, "data_dir": data_dir})
    except RegistryError as exc:
        raise _fail(exc) from None
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        raise RegistryExit(64) from None
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    _out(f"serving {registry.shown_url} on {where} (API under /v1, OpenAPI at /v1/openapi.json)")
    run(config, host, port, workers, threads, access_log, ready_message=f"decide: ready on {where}")


@click.group()
def decisions() -> None:
    """The decision log."""


@decisions.command("export")
@click.option("--db", help="Registry database URL.")
@click.option("--since", help="From this date or time (ISO 8601; UTC when no zone).")
@click.option("--until", help="Before this date or time.")
@click.option("--policy", help="Only this policy's decisions.")
@click.option("--format", "output_format", type=click.Choice(["jsonl", "parquet"]), default="jsonl", show_default=True)
@click.option("--out", "out_path", required=True, help="The file to write ('-' for standard output, jsonl only).")
def export(
    db: str | None, since: str | None, until: str | None, policy: str | None, output_format: str, out_path: str
) -> None:
    """Write logged decisions for analysts: personal data masked, never the sealed values."""
    from registry import audit
    from registry import decisions as decision_log

    try:
        registry = Registry(db)
        try:
            migrate.require_current_schema(registry)
            start = audit.parse_instant(since, "--since") if since else None
            end = audit.parse_instant(until, "--until") if until else None
            count = _write_export(decision_log.iter_decisions(registry, start, end, policy), output_format, out_path)
        finally:
            registry.dispose()
    except RegistryError as exc:
        raise _fail(exc) from None
    if out_path != "-":
        _out(f"exported {count} decision(s) to {out_path}")


EXPORT_COLUMNS = (
    "decision_id", "logged_at", "policy", "version", "arm", "status", "request_id", "key_id", "as_of",
    "record", "outputs", "reasons", "trace", "lists", "enrichment", "error", "engine_us", "total_us", "shadow_of",
)  # fmt: skip


def _export_row(decision: Any) -> dict[str, Any]:
    row = {name: getattr(decision, name) for name in EXPORT_COLUMNS}
    row["logged_at"] = (
        decision.logged_at.isoformat() if isinstance(decision.logged_at, datetime) else decision.logged_at
    )
    return row


def _write_export(batches: Any, output_format: str, out_path: str) -> int:
    count = 0
    if output_format == "jsonl":
        handle = sys.stdout.buffer if out_path == "-" else open(out_path, "wb")
        try:
            for batch in batches:
                for decision in batch:
                    handle.write(orjson.dumps(_export_row(decision)) + b"\n")
                    count += 1
        finally:
            if out_path != "-":
                handle.close()
        return count
    if out_path == "-":
        raise RegistryError("invalid", "Parquet needs a file: give --out FILE.parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    json_columns = ("record", "outputs", "reasons", "trace", "lists", "enrichment", "error")
    schema = pa.schema(
        [(name, pa.int64() if name in ("version", "engine_us", "total_us") else pa.string()) for name in EXPORT_COLUMNS]
    )
    temporary = Path(out_path + ".partial")
    with pq.ParquetWriter(temporary, schema) as writer:
        for batch in batches:
            rows = [_export_row(decision) for decision in batch]
            for row in rows:
                for name in json_columns:  # nested JSON as text: one schema whatever the policies' shapes
                    row[name] = None if row[name] is None else orjson.dumps(row[name]).decode()
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            count += len(rows)
    temporary.replace(out_path)
    return count


def register(cli: click.Group) -> None:
    cli.add_command(serve)
    cli.add_command(decisions)
