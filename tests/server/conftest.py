# ruff: noqa: F811 (the registry fixtures are imported here, and used as parameters by name)
"""Fixtures of the decision server's tests: a registry on each backend seeded with the demo data (the four
example policies approved and live, the demo users and API key), and the app with its Flask test client.

`client` runs the whole service in the test process: the refresher, the spool (in the test's own directory)
and the shipper are real and fast (0.05 s intervals). `wait_logged` waits until decision ids reach the
database, as a caller reading the log a moment later would.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from decision_server import create_app
from registry import Registry, demo, users
from registry import decisions as decision_log
from registry.demo import DemoSeed
from registry.entities import User

# The registry's fixtures: a migrated database per backend, copied from a template, and cheap password hashing.
from tests.registry.conftest import (  # noqa: F401
    cheap_password_hashing,
    migrated_postgresql,
    migrated_sqlite,
    registry,
)


@pytest.fixture
def seeded(registry: Registry) -> DemoSeed:
    return demo.seed(registry)


@pytest.fixture
def staff(registry: Registry, seeded: DemoSeed) -> dict[str, User]:
    """The demo users by name: admin, alice (author), bob (approver), dora (deployer), carl (auditor)."""
    return {name: users.get_user(registry, name) for name in seeded.passwords}


@pytest.fixture
def server_settings(registry: Registry, tmp_path: Path) -> dict[str, Any]:
    return {
        "database_url": registry.url,
        "data_dir": str(tmp_path / "data"),
        "plugins": False,
        "refresh_seconds": 0.05,
        "ship_interval_seconds": 0.05,
    }


@pytest.fixture
def app(seeded: DemoSeed, server_settings: dict[str, Any]) -> Iterator[Any]:
    application = create_app(server_settings)
    yield application
    application.extensions["decide"].stop()


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def headers(seeded: DemoSeed) -> dict[str, str]:
    return {"Authorization": f"Bearer {seeded.api_key}"}


def wait_logged(registry: Registry, decision_ids: Iterable[str], timeout: float = 10.0) -> None:
    """Wait until every id is stored in the decision log (fail after `timeout`)."""
    wanted = set(decision_ids)
    deadline = time.monotonic() + timeout
    while True:
        missing = wanted - decision_log.known_ids(registry, wanted)
        if not missing:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(missing)} decision(s) never reached the log, e.g. {sorted(missing)[:3]}")
        time.sleep(0.05)


def wait_until(condition: Any, timeout: float = 5.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
