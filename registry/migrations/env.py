"""Alembic environment for the registry: run by `registry.migrate` with the connection in `config.attributes`,
or by the `alembic` command itself (alembic.ini at the repository's top), which opens the database that
`decide` would: $DECIDE_DATABASE_URL, else decide.db here.

Autogenerate compares against `registry.models`' metadata; SQLModel's own column types are rendered as the plain
SQLAlchemy types they stand for, so generated migrations import nothing from sqlmodel (and never the live models).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

import registry.models
from registry.database import Registry


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def compare_type(context: Any, inspected: Any, metadata: Any, inspected_type: Any, metadata_type: Any) -> bool | None:
    # UTCDateTime is stored as DateTime(timezone=True); AutoString as String: no drift when they match.
    if isinstance(metadata_type, UTCDateTime):
        return not isinstance(inspected_type, sa.DateTime)
    return None


def run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
        compare_type=compare_type,
    )
    with context.begin_transaction():
        context.run_migrations()


if "connection" in context.config.attributes:
    run(context.config.attributes["connection"])
else:
    registry = Registry(context.config.get_main_option("sqlalchemy.url") or None)
    try:
        with registry.write() as session:
            run(session.connection())
    finally:
        registry.dispose()
