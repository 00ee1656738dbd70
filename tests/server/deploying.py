"""Helpers of the run-time tests (test_runtime, test_routing, test_replay, test_plugins_in_server): change what
the registry serves the way people do — a new version written by alice and approved by bob, activated by dora,
a list change requested by alice and approved by bob — and call the decision endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask.testing import FlaskClient

from registry import Registry, deployments, lists, policies
from registry.entities import Deployment, User
from tests.conftest import REPO

POLICIES = REPO / "policies"


def example_source(policy: str) -> str:
    return (POLICIES / f"{policy}.policy").read_text(encoding="utf-8")


def example_cases(policy: str) -> list[dict[str, Any]]:
    return json.loads((POLICIES / f"{policy}.tests.json").read_text(encoding="utf-8"))


def replaced(source: str, old: str, new: str) -> str:
    """`source` with the one occurrence of `old` replaced (failing loudly if the example policy changed)."""
    assert source.count(old) == 1, f"{old!r} occurs {source.count(old)} times in the policy"
    return source.replace(old, new)


def line_of(source: str, text: str) -> int:
    """The 1-based line of the one line of `source` that contains `text`."""
    found = [number for number, line in enumerate(source.splitlines(), start=1) if text in line]
    assert len(found) == 1, f"{text!r} is on lines {found}"
    return found[0]


def new_version(
    registry: Registry, staff: Mapping[str, User], policy: str, source: str, cases: list[dict[str, Any]]
) -> int:
    """Save `source` as the policy's draft (alice), submit it and have it approved (bob); its number."""
    policies.save_draft(registry, staff["alice"], source, json.dumps(cases))
    version = policies.submit(registry, staff["alice"], policy, note="a test's new version")
    approved = policies.approve(registry, staff["bob"], policy, version.number, comment="reviewed")
    assert approved.state == "approved"
    return version.number


def activate(
    registry: Registry,
    staff: Mapping[str, User],
    policy: str,
    version: int,
    challenger: int | None = None,
    percent: int | None = None,
    shadows: tuple[int, ...] = (),
    at: datetime | None = None,
) -> Deployment:
    return deployments.activate(
        registry, staff["dora"], policy, version, challenger=challenger, percent=percent, shadows=shadows, at=at
    )


def add_to_list(
    registry: Registry,
    staff: Mapping[str, User],
    name: str,
    values: list[Any],
    expires: str | datetime | None = None,
) -> int:
    """Add `values` to a named list through maker-checker (alice asks, bob approves); the new revision."""
    request = lists.request_add(registry, staff["alice"], name, values, reason="a test", expires=expires)
    decided = lists.decide_change(registry, staff["bob"], request.id, "approve")
    assert decided.revision is not None
    return decided.revision


def decide(client: FlaskClient, headers: Mapping[str, str], policy: str, record: Any, **options: Any) -> dict:
    """POST a decision; its body (the call must succeed)."""
    response = client.post(f"/v1/decisions/{policy}", json={"input": record, **options}, headers=dict(headers))
    assert response.status_code == 200, response.get_json()
    return response.get_json()
