"""The decision log, idempotency keys and deployment fallbacks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

`decisions` and `deployment_fallbacks` are append-only, guarded like 0001's tables by triggers rendered for
SQLite and PostgreSQL (no UPDATE, DELETE or TRUNCATE; on SQLite, INSERT OR REPLACE of a fallback is refused).
The decision server ships decisions with INSERT … ON CONFLICT DO NOTHING, so a decision shipped twice (after a
worker was killed between shipping and recording that it shipped) is stored once. `idempotency_keys` is not
guarded: expired request ids are deleted.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the tables, then their guards."""
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(length=36), nullable=False),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("arm", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.Column("key_id", sa.String(length=20), nullable=True),
        sa.Column("as_of", sa.String(length=10), nullable=True),
        sa.Column("record_json", sa.Text(), nullable=False),
        sa.Column("sealed_pii", sa.Text(), nullable=True),
        sa.Column("outputs_json", sa.Text(), nullable=True),
        sa.Column("reasons_json", sa.Text(), nullable=True),
        sa.Column("trace_json", sa.Text(), nullable=True),
        sa.Column("lists_json", sa.Text(), nullable=False),
        sa.Column("enrichment_json", sa.Text(), nullable=True),
        sa.Column("error_json", sa.Text(), nullable=True),
        sa.Column("engine", sa.String(length=20), nullable=True),
        sa.Column("engine_us", sa.Integer(), nullable=True),
        sa.Column("total_us", sa.Integer(), nullable=True),
        sa.Column("shadow_of", sa.String(length=36), nullable=True),
        sa.Column("served_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "arm IN ('champion', 'challenger', 'shadow', 'pinned')", name=op.f("ck_decisions_known_arm")
        ),
        sa.CheckConstraint(
            "status IN ('decided', 'input_error', 'evaluation_error', 'degraded')",
            name=op.f("ck_decisions_known_status"),
        ),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decisions")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_logged_at"), ["logged_at"], unique=False)
        batch_op.create_index("ix_decisions_policy_logged_at", ["policy", "logged_at"], unique=False)

    op.create_table(
        "idempotency_keys",
        sa.Column("key_id", sa.String(length=20), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("decision_id", sa.String(length=36), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "request_id", name=op.f("pk_idempotency_keys")),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_keys_created_at"), ["created_at"], unique=False)

    op.create_table(
        "deployment_fallbacks",
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("outcome_json", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_deployment_fallbacks_deployment_id_deployments")
        ),
        sa.PrimaryKeyConstraint("deployment_id", name=op.f("pk_deployment_fallbacks")),
    )
    create_guards()


def downgrade() -> None:
    """Drop the guards, then the tables."""
    drop_guards()
    op.drop_table("deployment_fallbacks")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_created_at"))

    op.drop_table("idempotency_keys")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_decisions_policy_logged_at")
        batch_op.drop_index(batch_op.f("ix_decisions_logged_at"))

    op.drop_table("decisions")


APPEND_ONLY = {"decisions": "a logged decision", "deployment_fallbacks": "a deployment's fallback outcome"}
NO_REPLACE = {"deployment_fallbacks": "deployment_id"}


def _statements(dialect: str) -> list[tuple[str, str, str, str, str]]:
    """(name, table, event, condition, message) of every guard."""
    guards = [
        (f"{table}_no_{event.lower()}", table, event, "1 = 1", f"{noun} is permanent: it cannot be changed or deleted")
        for table, noun in APPEND_ONLY.items()
        for event in ("UPDATE", "DELETE")
    ]
    guards += [
        (
            f"{table}_no_replace",
            table,
            "INSERT",
            f"EXISTS (SELECT 1 FROM {table} WHERE {key} = NEW.{key})",
            f"{APPEND_ONLY[table]} is permanent: it cannot be replaced",
        )
        for table, key in NO_REPLACE.items()
    ]
    return guards


def _quoted(message: str) -> str:
    return "'" + message.replace("'", "''") + "'"


def create_guards() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, event, condition, message in _statements(dialect):
        if dialect == "sqlite":
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW "
                f"WHEN {condition} BEGIN SELECT RAISE(ABORT, {_quoted(message)}); END"
            )
        else:
            returned = "OLD" if event == "DELETE" else "NEW"
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF {condition} THEN RAISE EXCEPTION {_quoted(message)} USING ERRCODE = '23514'; END IF; "
                f"RETURN {returned}; END $$"
            )
            op.execute(f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()")
    if dialect == "postgresql":
        for table in APPEND_ONLY:  # refuse_truncate() comes from revision 0001
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate()"
            )


def drop_guards() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, *_ in _statements(dialect):
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    if dialect == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
