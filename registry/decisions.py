"""The decision log's store: decisions shipped by the decision server, read back for replay and export, and the
idempotency records of request ids.

Input: decision records as plain dicts (the decision server's spool lines) or lookups by id, policy and time.
Output: how many were new, `LoggedDecision` / `StoredResponse` entities, or batches of them for export.

The log is append-only (triggers of migration 0002). Storing is idempotent: a decision id already stored is
skipped (INSERT … ON CONFLICT DO NOTHING), which is what lets a spool be shipped again after a crash without
storing anything twice. These writes take no registry write lock: they touch neither the audit chain nor the
governed records, and the database's own row locking is enough.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from registry import audit
from registry.database import Registry
from registry.entities import LoggedDecision, StoredResponse
from registry.errors import RegistryError, not_found
from registry.models import DecisionRow, IdempotencyRow

_JSON_FIELDS = {
    "record": "record_json",
    "outputs": "outputs_json",
    "reasons": "reasons_json",
    "trace": "trace_json",
    "lists": "lists_json",
    "enrichment": "enrichment_json",
    "error": "error_json",
}
_PLAIN_FIELDS = (
    "decision_id",
    "policy",
    "version",
    "content_hash",
    "arm",
    "status",
    "request_id",
    "key_id",
    "as_of",
    "sealed_pii",
    "engine",
    "engine_us",
    "total_us",
    "shadow_of",
    "served_by",
)


_NOT_NULL_JSON = {"record", "lists"}  # stored as {} when a record has none
_COLUMNS = (*_PLAIN_FIELDS, *_JSON_FIELDS.values(), "logged_at")
# Rows per INSERT statement: 40 × 23 parameters stays under the oldest SQLite limit (999). One statement for many
# rows, not executemany: a driver releases the GIL around each statement it runs, and the shipper shares its
# process with request threads, so one release per row made every row cost two thread switches (37 against
# 24 µs of CPU a row on SQLite beside a busy thread; benchmarks/http/store_rows.py).
ROWS_PER_STATEMENT = 40


@lru_cache(maxsize=16)
def _store_sql(dialect: str, rows: int) -> str:
    marker = "?" if dialect == "sqlite" else "%s"
    one = f"({', '.join(marker for _ in _COLUMNS)})"
    return (
        f"INSERT INTO decisions ({', '.join(_COLUMNS)}) VALUES {', '.join(one for _ in range(rows))} "
        "ON CONFLICT (decision_id) DO NOTHING"
    )


def _row_values(record: Mapping[str, Any], dialect: str) -> tuple[Any, ...]:
    values = [record.get(name) for name in _PLAIN_FIELDS]
    for name in _JSON_FIELDS:
        value = record.get(name)
        if value is None:
            values.append("{}" if name in _NOT_NULL_JSON else None)
        else:
            values.append(orjson.dumps(value).decode())
    logged_at = audit.parse_instant(record["logged_at"])
    # SQLite keeps a DateTime as the text SQLAlchemy writes (UTC, naive: the first 26 characters of the UTC
    # isoformat, which is cheaper than strftime on the shipper's path); psycopg adapts the datetime itself.
    values.append(logged_at.astimezone(UTC).isoformat(" ", "microseconds")[:26] if dialect == "sqlite" else logged_at)
    return tuple(values)


def store_decisions(registry: Registry, records: Iterable[Mapping[str, Any]]) -> int:
    """Store decision records (spool lines); ids already stored are skipped. Returns how many were new."""
    records = list(records)
    if not records:
        return 0
    stored = 0
    with registry.append() as connection:
        # Prepared statements run by the driver itself, without SQLAlchemy's per-row processing: the shipper
        # runs on the cores that serve the requests. Each statement's rows are built just before it runs, so the
        # shipper holds the GIL for one statement's rows at a time. Both drivers count the rows a statement
        # inserted (a skipped duplicate inserts none).
        for start in range(0, len(records), ROWS_PER_STATEMENT):
            chunk = records[start : start + ROWS_PER_STATEMENT]
            parameters = tuple(value for record in chunk for value in _row_values(record, registry.dialect))
            stored += connection.exec_driver_sql(_store_sql(registry.dialect, len(chunk)), parameters).rowcount
    return stored


def stored_durably(registry: Registry) -> bool:
    """Whether every decision stored so far would survive a power loss: what the decision server asks before it
    deletes a spool segment, its only other copy.

    PostgreSQL: a commit is durable (synchronous_commit, on by default; a database run with it off gives up
    this guarantee). SQLite in WAL mode with `synchronous = NORMAL` syncs only at checkpoints, so a commit can
    roll back after a power loss: this runs a PASSIVE checkpoint (it waits for nobody) and answers True only if
    it copied every frame of the log into the database file, which it syncs; False (try again later) when a
    reader or writer kept it from finishing."""
    if registry.dialect != "sqlite":
        return True
    with registry._translated_errors():
        connection = registry.write_engine.raw_connection()  # outside any transaction, which a checkpoint needs
        try:
            busy, logged, copied = connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:  # the driver's own error (a raw connection is not wrapped): not durable yet
            return False
        finally:
            connection.close()
    return busy == 0 and copied == logged


def _entity(row: DecisionRow) -> LoggedDecision:
    def loaded(text: str | None) -> Any:
        return None if text is None else orjson.loads(text)

    return LoggedDecision(
        decision_id=row.decision_id,
        logged_at=row.logged_at,
        policy=row.policy,
        version=row.version,
        content_hash=row.content_hash,
        arm=row.arm,
        status=row.status,
        request_id=row.request_id,
        key_id=row.key_id,
        as_of=row.as_of,
        record=loaded(row.record_json),
        sealed_pii=row.sealed_pii,
        outputs=loaded(row.outputs_json),
        reasons=loaded(row.reasons_json),
        trace=loaded(row.trace_json),
        lists=loaded(row.lists_json),
        enrichment=loaded(row.enrichment_json),
        error=loaded(row.error_json),
        engine=row.engine,
        engine_us=row.engine_us,
        total_us=row.total_us,
        shadow_of=row.shadow_of,
        served_by=row.served_by,
    )


def get_decision(registry: Registry, decision_id: str) -> LoggedDecision:
    """The logged decision with this id, else `not_found` (it may still be on its way from a server's spool)."""
    if not isinstance(decision_id, str) or not 1 <= len(decision_id) <= 36:
        raise RegistryError("invalid", "a decision id is a UUID of 36 characters")
    with registry.read() as session:
        row = session.get(DecisionRow, decision_id)
        if row is None:
            raise not_found(f"decision {decision_id!r}")
        return _entity(row)


def known_ids(registry: Registry, decision_ids: Iterable[str]) -> set[str]:
    """Which of these decision ids are stored."""
    wanted = list(dict.fromkeys(decision_ids))
    found: set[str] = set()
    with registry.read() as session:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            found.update(session.exec(select(DecisionRow.decision_id).where(col(DecisionRow.decision_id).in_(chunk))))
    return found


def iter_decisions(
    registry: Registry,
    since: datetime | None = None,
    until: datetime | None = None,
    policy: str | None = None,
    batch_size: int = 5000,
) -> Iterator[list[LoggedDecision]]:
    """Logged decisions in id (time) order, in batches: memory stays bounded by the batch size."""
    after = ""
    while True:
        with registry.read() as session:
            query = select(DecisionRow).where(DecisionRow.decision_id > after)
            if since is not None:
                query = query.where(DecisionRow.logged_at >= since)
            if until is not None:
                query = query.where(DecisionRow.logged_at < until)
            if policy is not None:
                query = query.where(DecisionRow.policy == policy)
            rows = session.exec(query.order_by(col(DecisionRow.decision_id)).limit(batch_size)).all()
            batch = [_entity(row) for row in rows]
        if not batch:
            return
        yield batch
        after = batch[-1].decision_id


def count_decisions(registry: Registry, policy: str | None = None) -> int:
    from sqlmodel import func

    with registry.read() as session:
        query = select(func.count()).select_from(DecisionRow)
        if policy is not None:
            query = query.where(DecisionRow.policy == policy)
        return int(session.exec(query).one())


def _stored(row: IdempotencyRow) -> StoredResponse:
    return StoredResponse(
        row.key_id,
        row.request_id,
        row.fingerprint,
        row.decision_id,
        row.status_code,
        row.response_json.encode(),
        row.created_at,
    )


def find_response(registry: Registry, key_id: str, request_id: str, ttl: timedelta) -> StoredResponse | None:
    """The response this key's request id got, if it was used within `ttl`."""
    with registry.read() as session:
        row = session.get(IdempotencyRow, (key_id, request_id))
        if row is None or row.created_at < audit.now() - ttl:
            return None
        return _stored(row)


def remember_response(
    registry: Registry,
    key_id: str,
    request_id: str,
    fingerprint: str,
    decision_id: str,
    status_code: int,
    response: bytes,
    ttl: timedelta,
) -> StoredResponse:
    """Record the response a request id got; if another request with that id won the race, return its record.

    An expired record of the same id is replaced (the id may be used again once the TTL has passed)."""
    now = audit.now()
    with registry.write(exclusive=False) as session:
        session.connection().execute(
            delete(IdempotencyRow).where(
                col(IdempotencyRow.key_id) == key_id,
                col(IdempotencyRow.request_id) == request_id,
                col(IdempotencyRow.created_at) < now - ttl,
            )
        )
        table = (postgresql.insert if registry.dialect == "postgresql" else sqlite.insert)(IdempotencyRow)
        session.connection().execute(
            table.values(
                key_id=key_id,
                request_id=request_id,
                fingerprint=fingerprint,
                decision_id=decision_id,
                status_code=status_code,
                response_json=response.decode(),
                created_at=now,
            ).on_conflict_do_nothing(index_elements=["key_id", "request_id"])
        )
        row = session.get(IdempotencyRow, (key_id, request_id))
        assert row is not None
        return _stored(row)


def purge_responses(registry: Registry, ttl: timedelta) -> int:
    """Delete idempotency records older than `ttl`; returns how many."""
    with registry.write(exclusive=False) as session:
        result = session.connection().execute(
            delete(IdempotencyRow).where(col(IdempotencyRow.created_at) < audit.now() - ttl)
        )
        return max(result.rowcount, 0)
