"""The tamper-evident audit trail: appending events to the hash chain, verifying it, and reading it.

Input: a write session and what happened (actor, action, object, details). Output: one `AuditEventRow` whose
`hash` is SHA-256 over the canonical encoding of the event and the previous event's hash.

The canonical encoding is defined once, here (`canonical_bytes`): a JSON object with sorted keys, no spaces,
UTF-8, the time as ISO 8601 UTC with microseconds. Appends happen inside the registry's serialised write
transaction (registry.database), so sequence numbers follow commit order and the chain never forks; the database
also refuses an event that does not follow the last one (migration 0001's `audit_events_chained`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import orjson
from sqlmodel import Session, col, func, select

from registry.entities import AuditEvent
from registry.errors import RegistryError
from registry.models import AuditEventRow

GENESIS_HASH = "0" * 64


def now() -> datetime:
    """The registry's clock: aware UTC, to the microsecond (what both databases store exactly)."""
    return datetime.now(UTC)


def parse_instant(value: str | datetime | date | None, where: str = "", what: str = "a time") -> datetime | None:
    """An instant from an ISO date (the start of that day, UTC) or date-time (UTC when it has no zone)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time(), UTC)
    else:
        text = value.strip()
        try:
            parsed = (
                datetime.combine(date.fromisoformat(text), time(), UTC)
                if len(text) == 10
                else datetime.fromisoformat(text)
            )
        except ValueError:
            prefix = f"{where}: " if where else ""
            raise RegistryError("invalid", f"{prefix}{value!r} is not {what} (YYYY-MM-DD or ISO 8601)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _time_text(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(
    seq: int, at: datetime, actor: str, action: str, obj: str, details: dict[str, Any], prev_hash: str
) -> bytes:
    """The one encoding an event's hash is taken over."""
    event = {
        "seq": seq,
        "at": _time_text(at),
        "actor": actor,
        "action": action,
        "object": obj,
        "details": details,
        "prev_hash": prev_hash,
    }
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def event_hash(
    seq: int, at: datetime, actor: str, action: str, obj: str, details: dict[str, Any], prev_hash: str
) -> str:
    return hashlib.sha256(canonical_bytes(seq, at, actor, action, obj, details, prev_hash)).hexdigest()


def append(session: Session, actor: str, action: str, obj: str, details: dict[str, Any] | None = None) -> AuditEvent:
    """Append one event to the chain, in the caller's (serialised) write transaction."""
    details = details or {}
    last = session.exec(select(AuditEventRow).order_by(col(AuditEventRow.seq).desc()).limit(1)).first()
    seq = (last.seq if last else 0) + 1
    prev_hash = last.hash if last else GENESIS_HASH
    at = now()
    # Round-trip the details through JSON now, so what is hashed is exactly what is stored and read back.
    details_json = orjson.dumps(details, option=orjson.OPT_SORT_KEYS).decode()
    stored_details = orjson.loads(details_json)
    row = AuditEventRow(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        object=obj,
        details_json=details_json,
        prev_hash=prev_hash,
        hash=event_hash(seq, at, actor, action, obj, stored_details, prev_hash),
    )
    session.add(row)
    session.flush()
    return _entity(row)


def _entity(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        object=row.object,
        details=orjson.loads(row.details_json),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


@dataclass(frozen=True)
class ChainReport:
    """The result of verifying the chain: `ok`, how many events were checked, and the first broken link."""

    events: int
    broken_at: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify(session: Session, batch_size: int = 1000) -> ChainReport:
    """Recompute every event's hash and link, in sequence order; report the first that does not hold."""
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    for row in _rows_in_order(session, batch_size):
        if row.seq != expected_seq:
            return ChainReport(checked, expected_seq, f"event {expected_seq} is missing (the next stored is {row.seq})")
        if row.prev_hash != prev_hash:
            return ChainReport(
                checked,
                row.seq,
                f"event {row.seq} does not link to event {row.seq - 1}: its prev_hash is {row.prev_hash[:16]}…, "
                f"event {row.seq - 1}'s hash is {prev_hash[:16]}…",
            )
        try:
            details = orjson.loads(row.details_json)
        except orjson.JSONDecodeError:
            return ChainReport(checked, row.seq, f"event {row.seq}'s details are not valid JSON")
        recomputed = event_hash(row.seq, row.at, row.actor, row.action, row.object, details, row.prev_hash)
        if recomputed != row.hash:
            return ChainReport(
                checked,
                row.seq,
                f"event {row.seq} ({row.action} on {row.object} by {row.actor}) was changed after it was written: "
                f"its contents hash to {recomputed[:16]}…, the stored hash is {row.hash[:16]}…",
            )
        prev_hash, expected_seq, checked = row.hash, expected_seq + 1, checked + 1
    return ChainReport(checked)


def _rows_in_order(session: Session, batch_size: int) -> Iterator[AuditEventRow]:
    after = 0
    while True:
        rows = session.exec(
            select(AuditEventRow).where(AuditEventRow.seq > after).order_by(col(AuditEventRow.seq)).limit(batch_size)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq
        session.expunge_all()


def events(
    session: Session, object_prefix: str | None = None, since: datetime | None = None, limit: int | None = None
) -> list[AuditEvent]:
    """The trail in sequence order, optionally only events on objects starting with `object_prefix`, since a time."""
    query = select(AuditEventRow).order_by(col(AuditEventRow.seq))
    if object_prefix:
        query = query.where(
            (AuditEventRow.object == object_prefix)
            | col(AuditEventRow.object).startswith(object_prefix + "@", autoescape=True)
        )
    if since is not None:
        query = query.where(AuditEventRow.at >= since)
    if limit is not None:
        query = query.limit(limit)
    return [_entity(row) for row in session.exec(query).all()]


def count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(AuditEventRow)).one()


LATEST_SEQ = select(func.max(AuditEventRow.seq))


def latest_seq(session: Session) -> int:
    """The sequence number of the newest event (0 when there is none): it changes with every governed change, so
    a reader can poll this one number to learn that deployments, lists or keys may have changed."""
    return int(session.exec(LATEST_SEQ).one() or 0)
