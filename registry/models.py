"""The registry's tables (SQLModel): what is stored, with the constraints the database checks itself.

Input: nothing (a module of declarations). Output: `SQLModel.metadata` with every table, used by Alembic's
autogenerate and its `check`. The triggers that make records append-only and keep four-eyes below the Python
layer live in the migration that creates these tables (registry/migrations/versions/), not here: the schema is
the migrations' job; these classes are how the services read and write rows.

Service functions never hand these rows out: they return the frozen entities of `registry.entities`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Column, Index, Integer, MetaData, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

# Constraint names that are the same on SQLite and PostgreSQL, so migrations can name what they alter.
SQLModel.metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ROLES = ("author", "approver", "deployer", "list_manager", "list_approver", "auditor", "admin")
POLICY_KINDS = ("approval", "limit", "collections", "offer", "generic")
LIST_ELEMENT_TYPES = ("string", "int", "number", "date")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class UserRow(SQLModel, table=True):
    __tablename__ = "users"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    password_hash: str = Field(max_length=200)
    created_at: datetime


class UserRoleRow(SQLModel, table=True):
    __tablename__ = "user_roles"
    __table_args__ = (CheckConstraint(_one_of("role", ROLES), name="known_role"),)
    user_id: int = Field(foreign_key="users.id", primary_key=True)
    role: str = Field(max_length=20, primary_key=True)


class ApiKeyRow(SQLModel, table=True):
    __tablename__ = "api_keys"
    id: str = Field(max_length=20, primary_key=True)  # the public part of the key, shown in logs
    name: str = Field(max_length=100)
    secret_hash: str = Field(max_length=64)  # SHA-256 of the secret: keys are random, so a fast hash is enough
    created_by: int = Field(foreign_key="users.id")
    created_at: datetime
    revoked_at: datetime | None = None
    revoked_by: int | None = Field(default=None, foreign_key="users.id")


class ApiKeyScopeRow(SQLModel, table=True):
    __tablename__ = "api_key_scopes"
    key_id: str = Field(max_length=20, foreign_key="api_keys.id", primary_key=True)
    policy_name: str = Field(max_length=100, primary_key=True)


class PolicyRow(SQLModel, table=True):
    __tablename__ = "policies"
    __table_args__ = (
        CheckConstraint("required_approvals >= 1", name="at_least_one_approval"),
        CheckConstraint(_one_of("kind", POLICY_KINDS), name="known_kind"),
    )
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    kind: str = Field(max_length=20)
    title: str | None = Field(default=None, max_length=200)
    owner: str | None = Field(default=None, max_length=200)
    required_approvals: int = 1
    created_by: int = Field(foreign_key="users.id")
    created_at: datetime


class DraftRow(SQLModel, table=True):
    """The one editable working copy of a policy."""

    __tablename__ = "drafts"
    policy_id: int = Field(foreign_key="policies.id", primary_key=True)
    source: str = Field(sa_column=Column(Text, nullable=False))
    tests_json: str = Field(sa_column=Column(Text, nullable=False))
    saved_by: int = Field(foreign_key="users.id")
    saved_at: datetime
    # Everyone who saved this draft since the last submit: they all wrote the version it becomes.
    contributors_json: str = Field(sa_column=Column(Text, nullable=False))


class VersionRow(SQLModel, table=True):
    """A submitted version: never changed or deleted (triggers)."""

    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("policy_id", "number"),
        CheckConstraint("number >= 1", name="positive_number"),
        CheckConstraint("required_approvals >= 1", name="at_least_one_approval"),
    )
    id: int | None = Field(default=None, primary_key=True)
    policy_id: int = Field(foreign_key="policies.id", index=True)
    number: int
    source: str = Field(sa_column=Column(Text, nullable=False))
    tests_json: str = Field(sa_column=Column(Text, nullable=False))
    content_hash: str = Field(max_length=64)
    compiler_version: str = Field(max_length=40)
    author_id: int = Field(foreign_key="users.id")
    created_at: datetime
    parent_number: int | None = None
    change_note: str | None = Field(default=None, sa_column=Column(Text))
    warnings_json: str = Field(sa_column=Column(Text, nullable=False))
    diff_json: str | None = Field(default=None, sa_column=Column(Text))
    # The number of approvals this version needs, fixed when it is submitted so a later change of the policy's
    # setting cannot approve (or un-approve) it after the fact.
    required_approvals: int


class VersionContributorRow(SQLModel, table=True):
    """A user who wrote a version (saved its draft or submitted it): four-eyes keeps each from voting on it."""

    __tablename__ = "version_contributors"
    version_id: int = Field(foreign_key="versions.id", primary_key=True)
    user_id: int = Field(foreign_key="users.id", primary_key=True)


class VoteRow(SQLModel, table=True):
    """An approval or a rejection of a version by one approver."""

    __tablename__ = "votes"
    __table_args__ = (
        UniqueConstraint("version_id", "voter_id"),
        CheckConstraint("verdict IN ('approve', 'reject')", name="known_verdict"),
    )
    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="versions.id", index=True)
    voter_id: int = Field(foreign_key="users.id")
    verdict: str = Field(max_length=10)
    comment: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime


class DeploymentRow(SQLModel, table=True):
    """One activation (or rollback) of a policy, live from `effective_at` until the next one: append-only."""

    __tablename__ = "deployments"
    __table_args__ = (
        # Two deployments of one policy taking effect at the same instant would make "what was live" ambiguous.
        UniqueConstraint("policy_id", "effective_at"),
        CheckConstraint("action IN ('activate', 'rollback')", name="known_action"),
    )
    id: int | None = Field(default=None, primary_key=True)
    policy_id: int = Field(foreign_key="policies.id", index=True)
    effective_at: datetime
    created_at: datetime
    created_by: int = Field(foreign_key="users.id")
    action: str = Field(max_length=10)
    note: str | None = Field(default=None, sa_column=Column(Text))


class DeploymentMemberRow(SQLModel, table=True):
    """A version's part in a deployment: champion (exactly one), challenger (at most one), shadow (any)."""

    __tablename__ = "deployment_members"
    __table_args__ = (
        UniqueConstraint("deployment_id", "version_id"),
        CheckConstraint("role IN ('champion', 'challenger', 'shadow')", name="known_role"),
        CheckConstraint(
            "(role = 'challenger' AND percent BETWEEN 1 AND 99) OR (role <> 'challenger' AND percent IS NULL)",
            name="challenger_percent",
        ),
        Index(
            "uq_deployment_members_one_champion",
            "deployment_id",
            unique=True,
            sqlite_where=text("role = 'champion'"),
            postgresql_where=text("role = 'champion'"),
        ),
        Index(
            "uq_deployment_members_one_challenger",
            "deployment_id",
            unique=True,
            sqlite_where=text("role = 'challenger'"),
            postgresql_where=text("role = 'challenger'"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    deployment_id: int = Field(foreign_key="deployments.id")
    version_id: int = Field(foreign_key="versions.id")
    role: str = Field(max_length=10)
    percent: int | None = None


class NamedListRow(SQLModel, table=True):
    __tablename__ = "named_lists"
    __table_args__ = (CheckConstraint(_one_of("element_type", LIST_ELEMENT_TYPES), name="known_type"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    element_type: str = Field(max_length=10)
    # Members are personal data (compared with a `pii` input): shown masked everywhere.
    personal: bool = False
    created_at: datetime


class ListChangeRequestRow(SQLModel, table=True):
    """A maker's request to add or remove entries: it changes nothing until a second person approves it."""

    __tablename__ = "list_change_requests"
    __table_args__ = (CheckConstraint("operation IN ('add', 'remove', 'import')", name="known_operation"),)
    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="named_lists.id", index=True)
    operation: str = Field(max_length=10)
    entries_json: str = Field(sa_column=Column(Text, nullable=False))
    requested_by: int = Field(foreign_key="users.id")
    requested_at: datetime
    note: str | None = Field(default=None, sa_column=Column(Text))


class ListChangeDecisionRow(SQLModel, table=True):
    """The checker's verdict on a change request (one per request)."""

    __tablename__ = "list_change_decisions"
    __table_args__ = (CheckConstraint("verdict IN ('approve', 'reject')", name="known_verdict"),)
    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="list_change_requests.id", unique=True)
    decided_by: int = Field(foreign_key="users.id")
    verdict: str = Field(max_length=10)
    comment: str | None = Field(default=None, sa_column=Column(Text))
    decided_at: datetime
    revision: int | None = None  # the list revision an approval made


class ListRevisionRow(SQLModel, table=True):
    __tablename__ = "list_revisions"
    __table_args__ = (UniqueConstraint("list_id", "revision"), CheckConstraint("revision >= 0", name="non_negative"))
    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="named_lists.id")
    revision: int
    request_id: int | None = Field(default=None, foreign_key="list_change_requests.id")
    created_at: datetime


class ListEntryEventRow(SQLModel, table=True):
    """An entry added to or removed from a list at a revision; membership at R replays the events up to R."""

    __tablename__ = "list_entry_events"
    __table_args__ = (
        CheckConstraint("operation IN ('add', 'remove')", name="known_operation"),
        Index("ix_list_entry_events_list_revision", "list_id", "revision"),
    )
    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="named_lists.id")
    revision: int
    operation: str = Field(max_length=10)
    value: str = Field(max_length=400)  # the canonical text of the value (numbers without trailing zeros)
    reason: str | None = Field(default=None, max_length=400)
    expires_at: datetime | None = None
    requested_by: int = Field(foreign_key="users.id")


class AuditEventRow(SQLModel, table=True):
    """One link of the audit chain: `hash` covers the event and `prev_hash`, so no row can change unseen."""

    __tablename__ = "audit_events"
    seq: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    at: datetime
    actor: str = Field(max_length=100)
    action: str = Field(max_length=60, index=True)
    object: str = Field(max_length=200, index=True)
    details_json: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(sa_column=Column(String(64), nullable=False))
    hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))


class DeploymentFallbackRow(SQLModel, table=True):
    """The outcome a deployment answers with (marked degraded) when evaluating a request fails: append-only."""

    __tablename__ = "deployment_fallbacks"
    deployment_id: int = Field(foreign_key="deployments.id", primary_key=True)
    outcome_json: str = Field(sa_column=Column(Text, nullable=False))


DECISION_STATUSES = ("decided", "input_error", "evaluation_error", "degraded")
DECISION_ARMS = ("champion", "challenger", "shadow", "pinned")


class DecisionRow(SQLModel, table=True):
    """One logged decision (answered, refused for its input, failed, or degraded): append-only.

    Values of `pii` inputs are never stored in `record_json` (masked there); `sealed_pii` holds them encrypted
    with the server's key so that a replay can use them."""

    __tablename__ = "decisions"
    __table_args__ = (
        CheckConstraint(_one_of("status", DECISION_STATUSES), name="known_status"),
        CheckConstraint(_one_of("arm", DECISION_ARMS), name="known_arm"),
        Index("ix_decisions_policy_logged_at", "policy", "logged_at"),
    )
    decision_id: str = Field(max_length=36, primary_key=True)  # UUIDv7: ordered by time
    logged_at: datetime = Field(index=True)
    policy: str = Field(max_length=100)
    version: int | None = None
    content_hash: str | None = Field(default=None, max_length=64)
    arm: str = Field(max_length=10)
    status: str = Field(max_length=20)
    request_id: str | None = Field(default=None, max_length=200)
    key_id: str | None = Field(default=None, max_length=20)
    as_of: str | None = Field(default=None, max_length=10)
    record_json: str = Field(sa_column=Column(Text, nullable=False))
    sealed_pii: str | None = Field(default=None, sa_column=Column(Text))
    outputs_json: str | None = Field(default=None, sa_column=Column(Text))
    reasons_json: str | None = Field(default=None, sa_column=Column(Text))
    trace_json: str | None = Field(default=None, sa_column=Column(Text))
    lists_json: str = Field(sa_column=Column(Text, nullable=False))
    enrichment_json: str | None = Field(default=None, sa_column=Column(Text))
    error_json: str | None = Field(default=None, sa_column=Column(Text))
    engine: str | None = Field(default=None, max_length=20)
    engine_us: int | None = None
    total_us: int | None = None
    shadow_of: str | None = Field(default=None, max_length=36)  # a shadow evaluation: the decision it shadowed
    served_by: str | None = Field(default=None, max_length=200)


class IdempotencyRow(SQLModel, table=True):
    """A request id a calling system used, per API key: the body's fingerprint and the response it got.

    Rows expire after the server's idempotency TTL; this table is the only one the server deletes from."""

    __tablename__ = "idempotency_keys"
    key_id: str = Field(max_length=20, primary_key=True)
    request_id: str = Field(max_length=200, primary_key=True)
    fingerprint: str = Field(max_length=64)
    decision_id: str = Field(max_length=36)
    status_code: int
    response_json: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(index=True)
