"""The registry's first schema: its tables, and the guards the database itself enforces.

Revision ID: 0001
Revises:
Create Date: 2026-12-02

The guards are triggers, written once as data (`GUARDS`: table, event, condition, message) and rendered for
SQLite (`RAISE(ABORT, …)` in a `WHEN` trigger) and PostgreSQL (a plpgsql function raising SQLSTATE 23514, which
drivers report as an integrity error). They hold whatever path writes the rows: the services, an admin with
`sqlite3` or `psql`, a script. The conditions use only SQL that both databases read the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the tables, then the guards."""
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("object", sa.String(length=200), nullable=False),
        sa.Column("details_json", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_events_hash")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_object"), ["object"], unique=False)

    op.create_table(
        "named_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("element_type", sa.String(length=10), nullable=False),
        sa.Column("personal", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "element_type IN ('string', 'int', 'number', 'date')", name=op.f("ck_named_lists_known_type")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_named_lists")),
        sa.UniqueConstraint("name", name=op.f("uq_named_lists_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_api_keys_created_by_users")),
        sa.ForeignKeyConstraint(["revoked_by"], ["users.id"], name=op.f("fk_api_keys_revoked_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "list_change_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(length=10), nullable=False),
        sa.Column("entries_json", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "operation IN ('add', 'remove', 'import')", name=op.f("ck_list_change_requests_known_operation")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["named_lists.id"], name=op.f("fk_list_change_requests_list_id_named_lists")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["users.id"], name=op.f("fk_list_change_requests_requested_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_change_requests")),
    )
    with op.batch_alter_table("list_change_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_list_change_requests_list_id"), ["list_id"], unique=False)

    op.create_table(
        "list_entry_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=400), nullable=False),
        sa.Column("reason", sa.String(length=400), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.CheckConstraint("operation IN ('add', 'remove')", name=op.f("ck_list_entry_events_known_operation")),
        sa.ForeignKeyConstraint(["list_id"], ["named_lists.id"], name=op.f("fk_list_entry_events_list_id_named_lists")),
        sa.ForeignKeyConstraint(["requested_by"], ["users.id"], name=op.f("fk_list_entry_events_requested_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_entry_events")),
    )
    with op.batch_alter_table("list_entry_events", schema=None) as batch_op:
        batch_op.create_index("ix_list_entry_events_list_revision", ["list_id", "revision"], unique=False)

    op.create_table(
        "policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("required_approvals", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('approval', 'limit', 'collections', 'offer', 'generic')", name=op.f("ck_policies_known_kind")
        ),
        sa.CheckConstraint("required_approvals >= 1", name=op.f("ck_policies_at_least_one_approval")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_policies_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_policies_name")),
    )
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.CheckConstraint(
            "role IN ('author', 'approver', 'deployer', 'list_manager', 'list_approver', 'auditor', 'admin')",
            name=op.f("ck_user_roles_known_role"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_roles_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", "role", name=op.f("pk_user_roles")),
    )
    op.create_table(
        "api_key_scopes",
        sa.Column("key_id", sa.String(length=20), nullable=False),
        sa.Column("policy_name", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_api_key_scopes_key_id_api_keys")),
        sa.PrimaryKeyConstraint("key_id", "policy_name", name=op.f("pk_api_key_scopes")),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint("action IN ('activate', 'rollback')", name=op.f("ck_deployments_known_action")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_deployments_created_by_users")),
        sa.ForeignKeyConstraint(["policy_id"], ["policies.id"], name=op.f("fk_deployments_policy_id_policies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint("policy_id", "effective_at", name=op.f("uq_deployments_policy_id_effective_at")),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployments_policy_id"), ["policy_id"], unique=False)

    op.create_table(
        "drafts",
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("tests_json", sa.Text(), nullable=False),
        sa.Column("saved_by", sa.Integer(), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contributors_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["policy_id"], ["policies.id"], name=op.f("fk_drafts_policy_id_policies")),
        sa.ForeignKeyConstraint(["saved_by"], ["users.id"], name=op.f("fk_drafts_saved_by_users")),
        sa.PrimaryKeyConstraint("policy_id", name=op.f("pk_drafts")),
    )
    op.create_table(
        "list_change_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.CheckConstraint("verdict IN ('approve', 'reject')", name=op.f("ck_list_change_decisions_known_verdict")),
        sa.ForeignKeyConstraint(["decided_by"], ["users.id"], name=op.f("fk_list_change_decisions_decided_by_users")),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["list_change_requests.id"],
            name=op.f("fk_list_change_decisions_request_id_list_change_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_change_decisions")),
        sa.UniqueConstraint("request_id", name=op.f("uq_list_change_decisions_request_id")),
    )
    op.create_table(
        "list_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("revision >= 0", name=op.f("ck_list_revisions_non_negative")),
        sa.ForeignKeyConstraint(["list_id"], ["named_lists.id"], name=op.f("fk_list_revisions_list_id_named_lists")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["list_change_requests.id"], name=op.f("fk_list_revisions_request_id_list_change_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_revisions")),
        sa.UniqueConstraint("list_id", "revision", name=op.f("uq_list_revisions_list_id_revision")),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("tests_json", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("compiler_version", sa.String(length=40), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("parent_number", sa.Integer(), nullable=True),
        sa.Column("change_note", sa.Text(), nullable=True),
        sa.Column("warnings_json", sa.Text(), nullable=False),
        sa.Column("diff_json", sa.Text(), nullable=True),
        sa.Column("required_approvals", sa.Integer(), nullable=False),
        sa.CheckConstraint("number >= 1", name=op.f("ck_versions_positive_number")),
        sa.CheckConstraint("required_approvals >= 1", name=op.f("ck_versions_at_least_one_approval")),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_versions_author_id_users")),
        sa.ForeignKeyConstraint(["policy_id"], ["policies.id"], name=op.f("fk_versions_policy_id_policies")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_versions")),
        sa.UniqueConstraint("policy_id", "number", name=op.f("uq_versions_policy_id_number")),
    )
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_versions_policy_id"), ["policy_id"], unique=False)

    op.create_table(
        "deployment_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(role = 'challenger' AND percent BETWEEN 1 AND 99) OR (role <> 'challenger' AND percent IS NULL)",
            name=op.f("ck_deployment_members_challenger_percent"),
        ),
        sa.CheckConstraint(
            "role IN ('champion', 'challenger', 'shadow')", name=op.f("ck_deployment_members_known_role")
        ),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_deployment_members_deployment_id_deployments")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["versions.id"], name=op.f("fk_deployment_members_version_id_versions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_members")),
        sa.UniqueConstraint("deployment_id", "version_id", name=op.f("uq_deployment_members_deployment_id_version_id")),
    )
    with op.batch_alter_table("deployment_members", schema=None) as batch_op:
        batch_op.create_index(
            "uq_deployment_members_one_challenger",
            ["deployment_id"],
            unique=True,
            sqlite_where=sa.text("role = 'challenger'"),
            postgresql_where=sa.text("role = 'challenger'"),
        )
        batch_op.create_index(
            "uq_deployment_members_one_champion",
            ["deployment_id"],
            unique=True,
            sqlite_where=sa.text("role = 'champion'"),
            postgresql_where=sa.text("role = 'champion'"),
        )

    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("voter_id", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("verdict IN ('approve', 'reject')", name=op.f("ck_votes_known_verdict")),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"], name=op.f("fk_votes_version_id_versions")),
        sa.ForeignKeyConstraint(["voter_id"], ["users.id"], name=op.f("fk_votes_voter_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_votes")),
        sa.UniqueConstraint("version_id", "voter_id", name=op.f("uq_votes_version_id_voter_id")),
    )
    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_votes_version_id"), ["version_id"], unique=False)

    op.create_table(
        "version_contributors",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"], ["versions.id"], name=op.f("fk_version_contributors_version_id_versions")
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_version_contributors_user_id_users")),
        sa.PrimaryKeyConstraint("version_id", "user_id", name=op.f("pk_version_contributors")),
    )
    create_guards()


def downgrade() -> None:
    """Drop the guards, then the tables."""
    drop_guards()
    op.drop_table("version_contributors")
    with op.batch_alter_table("votes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_votes_version_id"))

    op.drop_table("votes")
    with op.batch_alter_table("deployment_members", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_deployment_members_one_champion",
            sqlite_where=sa.text("role = 'champion'"),
            postgresql_where=sa.text("role = 'champion'"),
        )
        batch_op.drop_index(
            "uq_deployment_members_one_challenger",
            sqlite_where=sa.text("role = 'challenger'"),
            postgresql_where=sa.text("role = 'challenger'"),
        )

    op.drop_table("deployment_members")
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_versions_policy_id"))

    op.drop_table("versions")
    op.drop_table("list_revisions")
    op.drop_table("list_change_decisions")
    op.drop_table("drafts")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployments_policy_id"))

    op.drop_table("deployments")
    op.drop_table("api_key_scopes")
    op.drop_table("user_roles")
    op.drop_table("policies")
    with op.batch_alter_table("list_entry_events", schema=None) as batch_op:
        batch_op.drop_index("ix_list_entry_events_list_revision")

    op.drop_table("list_entry_events")
    with op.batch_alter_table("list_change_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_list_change_requests_list_id"))

    op.drop_table("list_change_requests")
    op.drop_table("api_keys")
    op.drop_table("users")
    op.drop_table("named_lists")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_object"))
        batch_op.drop_index(batch_op.f("ix_audit_events_action"))

    op.drop_table("audit_events")


class Guard(NamedTuple):
    name: str
    table: str
    event: str  # INSERT, UPDATE or DELETE (always BEFORE)
    condition: str  # refuse the row when this holds; NEW / OLD as in both dialects
    message: str


APPEND_ONLY = {
    "versions": "a submitted version",
    "votes": "an approval or rejection",
    "deployments": "a deployment",
    "deployment_members": "a deployment's versions",
    "list_change_requests": "a list change request",
    "list_change_decisions": "a decision on a list change request",
    "list_revisions": "a list revision",
    "list_entry_events": "a list entry change",
    "audit_events": "an audit event",
    "version_contributors": "a version's authorship",
}
# The key columns of each append-only table: SQLite's INSERT OR REPLACE deletes a row with the same key without
# firing its DELETE trigger, so an insert must not reuse one (a plain duplicate is refused the same way).
KEYS = {
    "versions": ("id", ("policy_id", "number")),
    "votes": ("id", ("version_id", "voter_id")),
    "deployments": ("id", ("policy_id", "effective_at")),
    "deployment_members": ("id", ("deployment_id", "version_id")),
    "list_change_requests": ("id",),
    "list_change_decisions": ("id", ("request_id",)),
    "list_revisions": ("id", ("list_id", "revision")),
    "list_entry_events": ("id",),
    "audit_events": ("seq", ("hash",)),
    "version_contributors": (("version_id", "user_id"),),
}


def _same_key(table: str) -> str:
    keys = [(key,) if isinstance(key, str) else key for key in KEYS[table]]
    matches = " OR ".join("(" + " AND ".join(f"{column} = NEW.{column}" for column in key) + ")" for key in keys)
    return f"EXISTS (SELECT 1 FROM {table} WHERE {matches})"


GENESIS_HASH = "0" * 64
APPROVED = (
    "(SELECT COUNT(*) FROM votes WHERE version_id = NEW.version_id AND verdict = 'approve') "
    ">= (SELECT required_approvals FROM versions WHERE id = NEW.version_id) "
    "AND NOT EXISTS (SELECT 1 FROM votes WHERE version_id = NEW.version_id AND verdict = 'reject')"
)

GUARDS = [
    *(
        Guard(
            f"{table}_no_{event.lower()}",
            table,
            event,
            "1 = 1",
            f"{noun} is permanent: it cannot be changed or deleted",
        )
        for table, noun in APPEND_ONLY.items()
        for event in ("UPDATE", "DELETE")
    ),
    *(
        Guard(
            f"{table}_no_replace",
            table,
            "INSERT",
            _same_key(table),
            f"{noun} is permanent: it cannot be replaced",
        )
        for table, noun in APPEND_ONLY.items()
    ),
    Guard(
        "versions_numbered_in_order",
        "versions",
        "INSERT",
        "NEW.number <> (SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE policy_id = NEW.policy_id)",
        "a policy's versions are numbered 1, 2, 3, … without gaps",
    ),
    Guard(
        "votes_not_by_author",
        "votes",
        "INSERT",
        # A missing version counts as refused (a NULL comparison would let the row through).
        "COALESCE(NEW.voter_id = (SELECT author_id FROM versions WHERE id = NEW.version_id), TRUE) "
        "OR EXISTS (SELECT 1 FROM version_contributors WHERE version_id = NEW.version_id AND user_id = NEW.voter_id)",
        "the author of a version cannot approve or reject it (four-eyes rule)",
    ),
    Guard(
        "votes_not_after_rejection",
        "votes",
        "INSERT",
        "EXISTS (SELECT 1 FROM votes WHERE version_id = NEW.version_id AND verdict = 'reject')",
        "a rejected version takes no more votes",
    ),
    Guard(
        "votes_not_after_approval",
        "votes",
        "INSERT",
        "COALESCE((SELECT COUNT(*) FROM votes WHERE version_id = NEW.version_id AND verdict = 'approve') "
        ">= (SELECT required_approvals FROM versions WHERE id = NEW.version_id), TRUE)",
        "an approved version takes no more votes",
    ),
    Guard(
        "deployment_members_same_policy",
        "deployment_members",
        "INSERT",
        "NOT EXISTS (SELECT 1 FROM versions v JOIN deployments d ON d.id = NEW.deployment_id "
        "WHERE v.id = NEW.version_id AND v.policy_id = d.policy_id)",
        "a deployment can only use versions of its own policy",
    ),
    Guard(
        "deployment_members_approved",
        "deployment_members",
        "INSERT",
        f"NOT COALESCE(({APPROVED}), FALSE)",
        "only an approved version can be deployed",
    ),
    Guard(
        "list_change_decisions_not_by_requester",
        "list_change_decisions",
        "INSERT",
        "COALESCE(NEW.decided_by = (SELECT requested_by FROM list_change_requests WHERE id = NEW.request_id), TRUE)",
        "the person who requested a list change cannot approve or reject it (maker-checker rule)",
    ),
    Guard(
        "list_revisions_in_order",
        "list_revisions",
        "INSERT",
        "NEW.revision <> (SELECT COALESCE(MAX(revision), -1) + 1 FROM list_revisions WHERE list_id = NEW.list_id)",
        "a list's revisions are numbered 0, 1, 2, … without gaps",
    ),
    Guard(
        "audit_events_chained",
        "audit_events",
        "INSERT",
        "NEW.seq <> (SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_events) "
        f"OR NEW.prev_hash <> COALESCE((SELECT hash FROM audit_events WHERE seq = NEW.seq - 1), '{GENESIS_HASH}')",
        "an audit event must follow the last one: the next sequence number, and the last event's hash",
    ),
    Guard(
        "api_keys_secret_and_revocation_final",
        "api_keys",
        "UPDATE",
        "NEW.secret_hash <> OLD.secret_hash OR NEW.id <> OLD.id OR OLD.revoked_at IS NOT NULL",
        "an API key's secret never changes, and a revoked key stays revoked",
    ),
    Guard(
        "named_lists_type_and_masking_kept",
        "named_lists",
        "UPDATE",
        "NEW.element_type <> OLD.element_type OR NEW.name <> OLD.name OR (OLD.personal AND NOT NEW.personal)",
        "a list keeps its name and element type, and a list of personal data stays masked",
    ),
]


def _quoted(message: str) -> str:
    return "'" + message.replace("'", "''") + "'"


def _sqlite_sql(guard: Guard) -> str:
    return (
        f"CREATE TRIGGER {guard.name} BEFORE {guard.event} ON {guard.table} FOR EACH ROW "
        f"WHEN {guard.condition} BEGIN SELECT RAISE(ABORT, {_quoted(guard.message)}); END"
    )


def _postgresql_sql(guard: Guard) -> list[str]:
    returned = "OLD" if guard.event == "DELETE" else "NEW"
    return [
        f"CREATE FUNCTION {guard.name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF {guard.condition} THEN RAISE EXCEPTION {_quoted(guard.message)} USING ERRCODE = '23514'; END IF; "
        f"RETURN {returned}; END $$",
        f"CREATE TRIGGER {guard.name} BEFORE {guard.event} ON {guard.table} "
        f"FOR EACH ROW EXECUTE FUNCTION {guard.name}()",
    ]


def create_guards() -> None:
    dialect = op.get_bind().dialect.name
    for guard in GUARDS:
        for statement in [_sqlite_sql(guard)] if dialect == "sqlite" else _postgresql_sql(guard):
            op.execute(statement)
    if dialect == "postgresql":
        # TRUNCATE fires no row trigger: refuse it on the append-only tables too.
        op.execute(
            "CREATE FUNCTION refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'the registry''s records are permanent: % cannot be truncated', TG_TABLE_NAME "
            "USING ERRCODE = '23514'; END $$"
        )
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate()"
            )


def drop_guards() -> None:
    dialect = op.get_bind().dialect.name
    for guard in GUARDS:
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {guard.name}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {guard.name} ON {guard.table}")
            op.execute(f"DROP FUNCTION IF EXISTS {guard.name}()")
    if dialect == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS refuse_truncate()")
