"""What the registry's service functions return: frozen records, never ORM rows.

Input: nothing (declarations). Output: the domain objects the CLI, the decision server and the admin UI work
with. They are plain data with `to_json()`, detached from any session, so nothing outside `registry/` can
write a row by accident.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    return value


class _Record:
    def to_json(self) -> dict[str, Any]:
        return _json(asdict(self))  # type: ignore[call-overload]


@dataclass(frozen=True)
class User(_Record):
    name: str
    roles: tuple[str, ...]
    created_at: datetime

    def has(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class ApiKey(_Record):
    """A calling system's key, without its secret: `id` is the public part shown in logs."""

    id: str
    name: str
    policies: tuple[str, ...]
    created_by: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def may_call(self, policy: str) -> bool:
        return self.active and policy in self.policies


@dataclass(frozen=True)
class Vote(_Record):
    voter: str
    verdict: str  # "approve" | "reject"
    comment: str | None
    at: datetime


@dataclass(frozen=True)
class Version(_Record):
    """A submitted version. `state` is derived from its votes: submitted (waiting), approved or rejected."""

    policy: str
    number: int
    state: str
    author: str
    created_at: datetime
    source: str
    tests: list[dict[str, Any]]
    content_hash: str
    compiler_version: str
    parent: int | None
    change_note: str | None
    warnings: list[dict[str, Any]]
    diff: dict[str, Any] | None
    required_approvals: int
    votes: tuple[Vote, ...] = ()
    contributors: tuple[str, ...] = ()  # who saved its draft or submitted it: none of them may vote on it

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(vote.voter for vote in self.votes if vote.verdict == "approve")

    @property
    def ref(self) -> str:
        return f"{self.policy}@{self.number}"


@dataclass(frozen=True)
class Draft(_Record):
    policy: str
    source: str
    tests_json: str
    saved_by: str
    saved_at: datetime


@dataclass(frozen=True)
class PolicySummary(_Record):
    name: str
    kind: str
    title: str | None
    owner: str | None
    required_approvals: int
    latest_version: int | None
    has_draft: bool


@dataclass(frozen=True)
class Deployment(_Record):
    """What a policy serves from `effective_at` until the next deployment takes effect."""

    id: int
    policy: str
    action: str  # "activate" | "rollback"
    effective_at: datetime
    created_at: datetime
    created_by: str
    champion: int
    challenger: int | None = None
    challenger_percent: int | None = None
    shadows: tuple[int, ...] = ()
    note: str | None = None
    cancelled_by: int | None = None  # a scheduled deployment that a later decision cancelled before it took effect
    fallback: dict[str, Any] | None = None  # answered (marked degraded) when evaluating a request fails

    @property
    def versions(self) -> tuple[int, ...]:
        extra = (self.challenger,) if self.challenger is not None else ()
        return (self.champion, *extra, *self.shadows)


@dataclass(frozen=True)
class NamedList(_Record):
    name: str
    element_type: str
    personal: bool
    revision: int
    created_at: datetime


@dataclass(frozen=True)
class ListEntry(_Record):
    """A member of a list at some revision. `value` is masked when the list holds personal data."""

    value: str
    reason: str | None
    added_by: str
    added_revision: int
    expires_at: datetime | None


@dataclass(frozen=True)
class ChangeRequest(_Record):
    id: int
    list: str
    operation: str  # "add" | "remove" | "import"
    entries: list[dict[str, Any]]
    requested_by: str
    requested_at: datetime
    note: str | None
    status: str  # "pending" | "approved" | "rejected"
    decided_by: str | None = None
    decided_at: datetime | None = None
    revision: int | None = None
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AuditEvent(_Record):
    seq: int
    at: datetime
    actor: str
    action: str
    object: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class LoggedDecision(_Record):
    """A decision as the log holds it: `record` has every `pii` value masked; `sealed_pii` is their ciphertext."""

    decision_id: str
    logged_at: datetime
    policy: str
    version: int | None
    content_hash: str | None
    arm: str
    status: str
    request_id: str | None
    key_id: str | None
    as_of: str | None
    record: dict[str, Any]
    sealed_pii: str | None
    outputs: dict[str, Any] | None
    reasons: list[str] | None
    trace: list[str] | None
    lists: dict[str, Any]
    enrichment: dict[str, Any] | None
    error: dict[str, Any] | None
    engine: str | None
    engine_us: int | None
    total_us: int | None
    shadow_of: str | None = None
    served_by: str | None = None


@dataclass(frozen=True)
class StoredResponse(_Record):
    """What a request id got the first time: replayed to a retry with the same body."""

    key_id: str
    request_id: str
    fingerprint: str
    decision_id: str
    status_code: int
    response: bytes
    created_at: datetime
