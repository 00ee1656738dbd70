"""Fixtures of the registry tests: a migrated registry per test on SQLite and on PostgreSQL, and its users.

`registry` yields a `Registry` at the newest schema, once per backend (ids `[sqlite]`, `[postgresql]`). The schema
is migrated once per session per backend and copied for each test (a file copy for SQLite, `CREATE DATABASE …
TEMPLATE` for PostgreSQL), so a test starts from exactly what `decide db upgrade` makes, in a fraction of the
time. `people` adds one user per role (plus an admin), each with only that role.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlmodel import Session, col, func, select

from registry import Registry, migrate, users
from registry.entities import User
from registry.models import DeploymentMemberRow
from tests.databases import PostgresServer

ROLE_USERS = {
    "author": ("author",),
    "author2": ("author",),
    "approver": ("approver",),
    "approver2": ("approver",),
    "deployer": ("deployer",),
    "list_manager": ("list_manager",),
    "list_approver": ("list_approver",),
    "auditor": ("auditor",),
}
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with the smallest cost: the tests create hundreds of users; what is hashed and checked is the same."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("migrated") / "decide.db"
    registry = Registry(f"sqlite:///{path}")
    migrate.upgrade(registry)
    registry.dispose()  # closing the last connection folds the WAL into the file
    return path


_template_numbers = iter(range(1, 1_000))


@pytest.fixture(scope="session")
def migrated_postgresql(postgresql_server: PostgresServer) -> Iterator[str]:
    # A name of its own: tests/server/conftest.py imports this fixture, so a session running both directories
    # sets up two instances of it on the one server.
    name = f"decide_migrated_{next(_template_numbers)}"
    janitor = postgresql_server.janitor(name, template_dbname=postgresql_server.template)
    janitor.init()
    registry = Registry(postgresql_server.url(name))
    migrate.upgrade(registry)
    registry.dispose()
    yield name
    janitor.drop()


_numbers = iter(range(1, 1_000_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    if request.param == "sqlite":
        path = tmp_path / "decide.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        handle = Registry(f"sqlite:///{path}")
        yield handle
        handle.dispose()
        return
    server = request.getfixturevalue("postgresql_server")
    template = request.getfixturevalue("migrated_postgresql")
    name = f"decide_registry_{next(_numbers)}"
    janitor = server.janitor(name, template_dbname=template)
    janitor.init()
    handle = Registry(server.url(name))
    try:
        yield handle
    finally:
        handle.dispose()
        janitor.drop()


@pytest.fixture
def admin(registry: Registry) -> User:
    return users.add_user(registry, None, "admin", PASSWORD, ["admin"])


@pytest.fixture
def people(registry: Registry, admin: User) -> dict[str, User]:
    """`admin` plus one user per role, named after it (two authors and two approvers)."""
    made = {"admin": admin}
    for name, roles in ROLE_USERS.items():
        made[name] = users.add_user(registry, admin, name.replace("_", "-"), PASSWORD, roles)
    return made


def champions_per_deployment(session: Session) -> dict[int, int]:
    """{deployment id: how many champion rows it has}, read from the raw table (the invariant: exactly one)."""
    return dict(
        session.exec(
            select(DeploymentMemberRow.deployment_id, func.count())
            .where(DeploymentMemberRow.role == "champion")
            .group_by(col(DeploymentMemberRow.deployment_id))
        ).all()
    )
