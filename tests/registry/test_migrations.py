"""Migrations: from an empty database to the newest schema on SQLite and PostgreSQL, no drift against the models
(`alembic check`), down to nothing and up again, and every command refusing a database whose schema is not current."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from alembic import command
from sqlalchemy import inspect

from decide_cli.main import main
from registry import Registry, migrate
from registry.models import SQLModel
from tests.conftest import REPO

# 0001: 10 append-only tables x (UPDATE, DELETE, replace), 9 insert guards, 2 update guards;
# 0002: decisions x (UPDATE, DELETE), deployment fallbacks x (UPDATE, DELETE, replace).
GUARD_COUNT = 41 + 5


def _triggers(registry: Registry) -> set[str]:
    with registry.read() as session:
        connection = session.connection()
        if registry.dialect == "sqlite":
            rows = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        else:
            rows = connection.exec_driver_sql(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname NOT LIKE '%%no_truncate'"
            )
        return {row[0] for row in rows}


def test_upgrade_from_empty_makes_every_table_and_guard(database_url: str) -> None:
    registry = Registry(database_url)
    assert migrate.current_revision(registry) is None
    assert migrate.upgrade(registry) == migrate.head_revision() == "0002"
    with registry.read() as session:
        tables = set(inspect(session.connection()).get_table_names())
    assert tables == set(SQLModel.metadata.tables) | {"alembic_version"}
    assert len(_triggers(registry)) == GUARD_COUNT
    assert migrate.drift(registry) is None
    migrate.require_current_schema(registry)
    registry.dispose()


def test_downgrade_to_nothing_and_up_again(database_url: str) -> None:
    registry = Registry(database_url)
    migrate.upgrade(registry)
    config = migrate._config()
    with registry.write() as session:
        config.attributes["connection"] = session.connection()
        command.downgrade(config, "base")
    with registry.read() as session:
        assert set(inspect(session.connection()).get_table_names()) <= {"alembic_version"}
    assert _triggers(registry) == set()
    migrate.upgrade(registry)
    assert migrate.drift(registry) is None
    registry.dispose()


def test_upgrade_from_0001_keeps_every_record(database_url: str) -> None:
    """A registry made by the first release gains the decision log and keeps its versions and audit chain."""
    from registry import audit, policies, users

    registry = Registry(database_url)
    config = migrate._config()
    with registry.write() as session:
        config.attributes["connection"] = session.connection()
        command.upgrade(config, "0001")
    # Only what release 1 could write (no deployment: today's code reads its fallback, a table 0002 adds).
    admin = users.add_user(registry, None, "admin", "correct horse battery", ["admin"])
    author = users.add_user(registry, admin, "alice", "correct horse battery", ["author"])
    approver = users.add_user(registry, admin, "bob", "correct horse battery", ["approver"])
    source = (REPO / "policies" / "credit_line.policy").read_text()
    policies.save_draft(registry, author, source, (REPO / "policies" / "credit_line.tests.json").read_text())
    version = policies.submit(registry, author, "credit_line")
    policies.approve(registry, approver, "credit_line", version.number, "ok")
    assert migrate.upgrade(registry) == "0002"
    after = policies.get_version(registry, "credit_line")
    assert (after.number, after.state, after.content_hash) == (1, "approved", version.content_hash)
    with registry.read() as session:
        assert audit.verify(session).ok
    assert len(_triggers(registry)) == GUARD_COUNT
    registry.dispose()


def test_commands_refuse_a_database_without_the_schema(database_url: str, capsys) -> None:
    assert main(["versions", "credit_line", "--db", database_url]) == 6
    err = capsys.readouterr().err
    assert "has no tables yet: run `decide db upgrade`" in err
    assert main(["db", "upgrade", "--db", database_url]) == 0
    assert main(["db", "check", "--db", database_url]) == 0
    assert "schema at revision 0002 (the newest)" in capsys.readouterr().out


def test_an_unreachable_database_is_a_clear_error(capsys) -> None:
    url = "postgresql://nobody@127.0.0.1:1/nothing"
    assert main(["db", "current", "--db", url]) == 6
    err = capsys.readouterr().err
    assert err.startswith("error: the registry database postgresql+psycopg://nobody@127.0.0.1:1/nothing is unavailable")
    assert "Traceback" not in err and "SELECT" not in err
    assert main(["db", "current", "--db", "mysql://x@y/z"]) == 4
    assert "unsupported database 'mysql'" in capsys.readouterr().err


def test_alembic_check_itself_reports_no_drift(database_url: str) -> None:
    """`alembic check`, the command, on the repository's alembic.ini and the database decide would use."""
    alembic = [sys.executable, "-m", "alembic", "-c", str(REPO / "alembic.ini"), "check"]
    environment = {**os.environ, "DECIDE_DATABASE_URL": database_url}
    empty = subprocess.run(alembic, env=environment, capture_output=True, text=True)
    assert empty.returncode != 0 and "Target database is not up to date" in empty.stdout + empty.stderr
    registry = Registry(database_url)
    migrate.upgrade(registry)
    registry.dispose()
    checked = subprocess.run(alembic, env=environment, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "No new upgrade operations detected." in checked.stdout + checked.stderr


def test_a_database_from_a_newer_decide_is_named_as_such(database_url: str, capsys: pytest.CaptureFixture) -> None:
    registry = Registry(database_url)
    migrate.upgrade(registry)
    with registry.write() as session:
        session.connection().exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    registry.dispose()
    assert main(["db", "upgrade", "--db", database_url]) == 6
    assert "at schema revision 0099, which this Decide does not know" in capsys.readouterr().err
