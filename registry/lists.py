"""Governed named lists (spec `list`): members per revision, changed only by approved change requests.

Input: a `Registry`, the acting user, a list name and the entries to add or remove (or a CSV file of them).
Output: `ChangeRequest`, `NamedList` and `ListEntry` entities.

Maker-checker: a list manager requests a change; it takes effect only when a list approver who is not the
requester approves it (the database refuses a decision by the requester). Each approved change makes the next
revision; the members at revision R are found by replaying the add/remove events up to R, so any past decision
can be re-evaluated with the list it saw. An entry whose expiry has passed stops being a member without anyone
removing it. Lists whose members are personal data (a policy compares a `pii` input with them) are shown masked
everywhere: in entities returned for display, in the audit trail and in error messages.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import orjson
from sqlmodel import Session, col, func, select

from compiler.evaluate.validate_input import mask_pii
from registry import audit
from registry.access import authorize, require
from registry.database import Registry
from registry.entities import ChangeRequest, ListEntry, NamedList, User
from registry.errors import RegistryError, not_found
from registry.models import (
    ListChangeDecisionRow,
    ListChangeRequestRow,
    ListEntryEventRow,
    ListRevisionRow,
    NamedListRow,
    UserRow,
)

MAX_VALUE_LENGTH = 400
MAX_IMPORT_ENTRIES = 1_000_000
INTEGER = re.compile(r"[+-]?\d+")


def canonical_value(element_type: str, value: Any, where: str = "", personal: bool = False) -> str:
    """The stored text of a list value of `element_type`, or a RegistryError saying what is wrong and where (the
    value masked when the list holds personal data)."""
    prefix = f"{where}: " if where else ""
    text = value if isinstance(value, str) else str(value)
    stripped = text.strip()
    if personal:
        # Errors below quote `stripped`: a personal value is quoted masked.
        try:
            return canonical_value(element_type, value, where)
        except RegistryError as exc:
            raise RegistryError("invalid", exc.message.replace(repr(stripped), repr(mask_pii(stripped)))) from None
    if element_type == "string":
        if not text or len(text) > MAX_VALUE_LENGTH:
            raise RegistryError("invalid", f"{prefix}a string member must have 1 to {MAX_VALUE_LENGTH} characters")
        return text
    if element_type == "int":
        if not INTEGER.fullmatch(stripped):
            raise RegistryError("invalid", f"{prefix}{stripped!r} is not a whole number")
        return str(int(stripped))
    if element_type == "number":
        try:
            number = float(stripped)
        except ValueError:
            raise RegistryError("invalid", f"{prefix}{stripped!r} is not a number") from None
        if not math.isfinite(number):
            raise RegistryError("invalid", f"{prefix}{stripped!r} is not a finite number")
        return repr(number)
    if element_type == "date":
        try:
            return date.fromisoformat(stripped).isoformat()
        except ValueError:
            raise RegistryError("invalid", f"{prefix}{stripped!r} is not a date (YYYY-MM-DD)") from None
    raise RegistryError("invalid", f"unknown list element type {element_type!r}")


def typed_value(element_type: str, text: str) -> Any:
    """The value a policy evaluates from a stored member text."""
    if element_type == "int":
        return int(text)
    if element_type == "number":
        return float(text)
    if element_type == "date":
        return date.fromisoformat(text)
    return text


def parse_expiry(value: str | datetime | date | None, where: str = "") -> datetime | None:
    """An expiry: an ISO date (the entry stops being a member at the start of that day, UTC) or date-time."""
    return audit.parse_instant(value, where, "an expiry date")


def _shown(row: NamedListRow, value: str) -> str:
    return mask_pii(value) if row.personal else value


def _list_row(session: Session, name: str) -> NamedListRow:
    row = session.exec(select(NamedListRow).where(NamedListRow.name == name)).first()
    if row is None:
        raise not_found(f"list {name!r}")
    return row


def _revision(session: Session, list_id: int) -> int:
    return session.exec(select(func.max(ListRevisionRow.revision)).where(ListRevisionRow.list_id == list_id)).one() or 0


def _entity(session: Session, row: NamedListRow) -> NamedList:
    assert row.id is not None
    return NamedList(row.name, row.element_type, row.personal, _revision(session, row.id), row.created_at)


def ensure_declared_list(session: Session, name: str, element_type: str, personal: bool) -> str | None:
    """Make sure the list a submitted version declares exists with that element type (creating it empty, at
    revision 0); return the problem when the registry's list has another type."""
    row = session.exec(select(NamedListRow).where(NamedListRow.name == name)).first()
    if row is None:
        row = NamedListRow(name=name, element_type=element_type, personal=personal, created_at=audit.now())
        session.add(row)
        session.flush()
        session.add(ListRevisionRow(list_id=row.id, revision=0, created_at=row.created_at))
        session.flush()
        audit.append(session, "registry", "list.created", f"list:{name}", {"element_type": element_type})
        return None
    if row.element_type != element_type:
        return (
            f"list {name} is declared as a list of {element_type}, but the registry's list {name} holds "
            f"{row.element_type} values"
        )
    if personal and not row.personal:
        # Once any policy compares personal data with a list, its members are shown masked from then on.
        row.personal = True
        session.add(row)
    return None


def _members(session: Session, row: NamedListRow, revision: int, at: datetime) -> dict[str, ListEntryEventRow]:
    """The events that make each value a member at `revision`, alive at instant `at`."""
    latest: dict[str, ListEntryEventRow] = {}
    events = session.exec(
        select(ListEntryEventRow)
        .where(ListEntryEventRow.list_id == row.id, ListEntryEventRow.revision <= revision)
        .order_by(col(ListEntryEventRow.revision), col(ListEntryEventRow.id))
    ).all()
    for event in events:
        latest[event.value] = event
    return {
        value: event
        for value, event in latest.items()
        if event.operation == "add" and (event.expires_at is None or event.expires_at > at)
    }


def members(
    registry: Registry, name: str, revision: int | None = None, at: datetime | None = None, masked: bool = True
) -> tuple[NamedList, list[ListEntry]]:
    """The list and its members at `revision` (default: the current one) and instant `at` (default: now).

    `masked=False` is for evaluation only: it returns personal values in plain text."""
    at = at or audit.now()
    with registry.read() as session:
        row = _list_row(session, name)
        info = _entity(session, row)
        wanted = info.revision if revision is None else revision
        if not 0 <= wanted <= info.revision:
            raise not_found(f"revision {wanted} of list {name!r} (its revisions are 0 to {info.revision})")
        users = {user.id: user.name for user in session.exec(select(UserRow)).all()}
        entries = [
            ListEntry(
                value=_shown(row, value) if masked else value,
                reason=event.reason,
                added_by=users.get(event.requested_by, "?"),
                added_revision=event.revision,
                expires_at=event.expires_at,
            )
            for value, event in sorted(_members(session, row, wanted, at).items())
        ]
        return info, entries


def member_values(registry: Registry, name: str, revision: int | None = None, at: datetime | None = None) -> list[Any]:
    """The typed member values a policy evaluates with (plain text: never show them)."""
    info, entries = members(registry, name, revision, at, masked=False)
    return [typed_value(info.element_type, entry.value) for entry in entries]


def list_lists(registry: Registry) -> list[NamedList]:
    with registry.read() as session:
        return [_entity(session, row) for row in session.exec(select(NamedListRow).order_by(col(NamedListRow.name)))]


# ----------------------------------------------------------------------------- change requests


def _request_entity(session: Session, request: ListChangeRequestRow, row: NamedListRow) -> ChangeRequest:
    decision = session.exec(select(ListChangeDecisionRow).where(ListChangeDecisionRow.request_id == request.id)).first()
    entries = [{**entry, "value": _shown(row, entry["value"])} for entry in orjson.loads(request.entries_json)]
    requester = session.get(UserRow, request.requested_by)
    decider = session.get(UserRow, decision.decided_by) if decision else None
    status = "pending" if decision is None else ("approved" if decision.verdict == "approve" else "rejected")
    assert request.id is not None
    return ChangeRequest(
        id=request.id,
        list=row.name,
        operation=request.operation,
        entries=entries,
        requested_by=requester.name if requester else "?",
        requested_at=request.requested_at,
        note=request.note,
        status=status,
        decided_by=decider.name if decider else None,
        decided_at=decision.decided_at if decision else None,
        revision=decision.revision if decision else None,
    )


def _request(
    registry: Registry, actor: User, name: str, operation: str, entries: list[dict[str, Any]], note: str | None
) -> ChangeRequest:
    authorize(registry, actor, "request a list change", f"list:{name}")
    if not entries:
        raise RegistryError("invalid", "a change request needs at least one value")
    with registry.write() as session:
        user_id = require(session, actor, "request a list change", f"list:{name}")
        row = _list_row(session, name)
        seen: set[str] = set()
        for position, entry in enumerate(entries, start=1):
            if len(entry.get("reason") or "") > MAX_VALUE_LENGTH:
                raise RegistryError(
                    "invalid", f"value {position}: the reason is longer than {MAX_VALUE_LENGTH} characters"
                )
            entry["value"] = canonical_value(row.element_type, entry["value"], f"value {position}", row.personal)
            if entry["value"] in seen:
                raise RegistryError(
                    "invalid", f"value {position} ({_shown(row, entry['value'])}) appears twice in the request"
                )
            seen.add(entry["value"])
        if operation == "remove":
            assert row.id is not None
            current = _members(session, row, _revision(session, row.id), audit.now())
            absent = [entry["value"] for entry in entries if entry["value"] not in current]
            if absent:
                raise RegistryError("invalid", f"{_shown(row, absent[0])} is not a member of list {name}")
        request = ListChangeRequestRow(
            list_id=row.id,
            operation=operation,
            entries_json=orjson.dumps(entries).decode(),
            requested_by=user_id,
            requested_at=audit.now(),
            note=note,
        )
        session.add(request)
        session.flush()
        audit.append(
            session,
            actor.name,
            "list.change_requested",
            f"list:{name}",
            {
                "request": request.id,
                "operation": operation,
                "values": [_shown(row, entry["value"]) for entry in entries[:100]],
                "count": len(entries),
            },
        )
        return _request_entity(session, request, row)


def request_add(
    registry: Registry,
    actor: User,
    name: str,
    values: list[Any],
    reason: str | None = None,
    expires: str | datetime | None = None,
    note: str | None = None,
) -> ChangeRequest:
    """Ask for `values` to be added (or their reason / expiry updated) once a list approver approves."""
    expires_at = parse_expiry(expires)
    entries = [
        {"value": value, "reason": reason, "expires_at": expires_at.isoformat() if expires_at else None}
        for value in values
    ]
    return _request(registry, actor, name, "add", entries, note)


def request_remove(
    registry: Registry, actor: User, name: str, values: list[Any], note: str | None = None
) -> ChangeRequest:
    return _request(registry, actor, name, "remove", [{"value": value} for value in values], note)


def parse_import(text: str, source: str = "import.csv") -> list[dict[str, Any]]:
    """Entries from CSV text with a header: `value`, and optionally `reason` and `expires` (YYYY-MM-DD); errors
    name `source` and the line."""
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    if "value" not in columns:
        raise RegistryError("invalid", f"{source}: the first line must be a header with a `value` column")
    unknown = [column for column in columns if column not in ("value", "reason", "expires")]
    if unknown:
        raise RegistryError(
            "invalid", f"{source}: unknown column {unknown[0]!r} (the columns are value, reason, expires)"
        )
    entries = []
    for line_number, record in enumerate(reader, start=2):
        if None in record or any(value is None for value in record.values()):
            raise RegistryError("invalid", f"{source}:{line_number}: the row does not have one cell per column")
        expires_at = parse_expiry(record.get("expires") or None, f"{source}:{line_number}")
        entries.append(
            {
                "value": record["value"],
                "reason": record.get("reason") or None,
                "expires_at": expires_at.isoformat() if expires_at else None,
                "line": line_number,
            }
        )
        if len(entries) > MAX_IMPORT_ENTRIES:
            raise RegistryError("invalid", f"{source}: more than {MAX_IMPORT_ENTRIES} rows")
    if not entries:
        raise RegistryError("invalid", f"{source}: no rows after the header")
    return entries


def request_import(
    registry: Registry, actor: User, name: str, text: str, source: str = "import.csv", note: str | None = None
) -> ChangeRequest:
    """A change request adding every entry of CSV text (values already there with the same reason and expiry
    are left out; the request lists what changes). `source` names the file in errors."""
    authorize(registry, actor, "request a list change", f"list:{name}")
    entries = parse_import(text, source)
    with registry.read() as session:
        row = _list_row(session, name)
        assert row.id is not None
        current = _members(session, row, _revision(session, row.id), audit.now())
        changed = []
        for entry in entries:
            line = entry.pop("line")
            value = canonical_value(row.element_type, entry["value"], f"{source}:{line}", row.personal)
            existing = current.get(value)
            same = (
                existing is not None
                and existing.reason == entry["reason"]
                and (existing.expires_at.isoformat() if existing.expires_at else None) == entry["expires_at"]
            )
            if not same:
                changed.append(entry)
    if not changed:
        raise RegistryError("invalid", f"{source}: every entry is already on list {name}: nothing to change")
    return _request(registry, actor, name, "import", changed, note)


def decide_change(
    registry: Registry, actor: User, request_id: int, verdict: str, comment: str | None = None
) -> ChangeRequest:
    """Approve (applying it as the list's next revision) or reject a pending change request."""
    authorize(registry, actor, "approve or reject a list change", f"list-request:{request_id}")
    if verdict not in ("approve", "reject"):
        raise RegistryError("invalid", f"a decision is approve or reject, not {verdict!r}")
    with registry.write() as session:
        request = session.get(ListChangeRequestRow, request_id)
        obj = f"list-request:{request_id}"
        user_id = require(session, actor, "approve or reject a list change", obj)
        if request is None:
            raise not_found(f"list change request {request_id}")
        row = session.get(NamedListRow, request.list_id)
        assert row is not None and row.id is not None
        if request.requested_by == user_id:
            raise RegistryError(
                "permission_denied",
                f"{actor.name} requested change {request_id}: another list approver must decide it (maker-checker)",
                audit_event=(actor.name, "permission.denied", obj, {"operation": "decide own list change"}),
            )
        if session.exec(select(ListChangeDecisionRow).where(ListChangeDecisionRow.request_id == request_id)).first():
            raise RegistryError("conflict", f"list change request {request_id} was already decided")
        revision = None
        skipped: list[str] = []
        if verdict == "approve":
            revision = _revision(session, row.id) + 1
            now = audit.now()
            session.add(ListRevisionRow(list_id=row.id, revision=revision, request_id=request_id, created_at=now))
            current = _members(session, row, revision - 1, now)
            for entry in orjson.loads(request.entries_json):
                operation = "remove" if request.operation == "remove" else "add"
                if operation == "remove" and entry["value"] not in current:
                    skipped.append(_shown(row, entry["value"]))  # removed by another change since the request
                    continue
                expires = entry.get("expires_at")
                session.add(
                    ListEntryEventRow(
                        list_id=row.id,
                        revision=revision,
                        operation=operation,
                        value=entry["value"],
                        reason=entry.get("reason"),
                        expires_at=datetime.fromisoformat(expires) if expires else None,
                        requested_by=request.requested_by,
                    )
                )
        session.add(
            ListChangeDecisionRow(
                request_id=request_id,
                decided_by=user_id,
                verdict=verdict,
                comment=comment,
                decided_at=audit.now(),
                revision=revision,
            )
        )
        session.flush()
        audit.append(
            session,
            actor.name,
            "list.change_approved" if verdict == "approve" else "list.change_rejected",
            f"list:{row.name}",
            {"request": request_id, "revision": revision, "comment": comment, "skipped": skipped},
        )
        return replace(_request_entity(session, request, row), skipped=skipped)


def change_requests(registry: Registry, name: str | None = None, status: str | None = None) -> list[ChangeRequest]:
    with registry.read() as session:
        query = select(ListChangeRequestRow).order_by(col(ListChangeRequestRow.id))
        if name is not None:
            query = query.where(ListChangeRequestRow.list_id == _list_row(session, name).id)
        found = []
        for request in session.exec(query).all():
            row = session.get(NamedListRow, request.list_id)
            assert row is not None
            entity = _request_entity(session, request, row)
            if status is None or entity.status == status:
                found.append(entity)
        return found
