"""Helpers of the HTTP API tests (test_api, test_errors, test_idempotency, test_privacy, test_openapi): the example
policies and their own test cases, the engine's answer for a record (the independent oracle the server's answer is
compared with), publishing a policy through the registry the way people do, and checking an error response.

Nothing here talks to the server's internals: the expected answers come from `compiler` on the policy files and
the demo list file, and changes go through the registry's service functions with the demo staff.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import compiler
from compiler import EvaluationError, InputError
from decision_server import create_app
from registry import Registry, deployments, policies, users
from registry.entities import User
from tests.conftest import POLICIES

EXAMPLE_POLICIES = tuple(sorted(path.stem for path in POLICIES.glob("*.policy")))  # what the demo seeds

# A policy that fails at run time for some inputs: 0 months is a division by zero, so `monthly` would be
# missing, and it is not optional (language.md §16: an evaluation error naming the rule and the output).
FRAGILE_SOURCE = """\
# Monthly instalment: the months come from the caller, and 0 of them is a division by zero.
policy fragile:
    title: "Instalment per month"
    kind: limit

input:
    amount: number in [0..1_000_000]
    months: int in [0..120]

output:
    monthly: number = 0

rules instalment (first):
    rule P01 "Spread the amount over the months":
        when true
        then monthly = amount / months
"""
FRAGILE_CASES = [
    {"name": "a year of instalments", "input": {"amount": 1200, "months": 12}, "expect": {"monthly": 100}},
    {"name": "no months: evaluation error", "input": {"amount": 1200, "months": 0}, "expect": {"error": "monthly"}},
]


def example_source(policy: str) -> str:
    return (POLICIES / f"{policy}.policy").read_text(encoding="utf-8")


def example_cases(policy: str) -> list[dict[str, Any]]:
    return json.loads((POLICIES / f"{policy}.tests.json").read_text(encoding="utf-8"))


def first_good_input(policy: str) -> dict[str, Any]:
    """The input of the policy's first case that decides (no error expected)."""
    return next(case["input"] for case in example_cases(policy) if "error" not in case["expect"])


@cache
def compiled(policy: str) -> compiler.Policy:
    """The example policy compiled from its file: what the server's registry version must behave like."""
    return compiler.compile_file(POLICIES / f"{policy}.policy")


@cache
def demo_lists() -> dict[str, list[str]]:
    """The named lists the demo data loads: the blacklist file next to the example policies."""
    text = (POLICIES / "examples" / "blacklist.txt").read_text(encoding="utf-8")
    return {"blacklist": [line.strip() for line in text.splitlines() if line.strip()]}


def engine_lists(policy: compiler.Policy, lists: Mapping[str, list[Any]] | None = None) -> dict[str, list[Any]]:
    """Every store list of `policy`: from `lists`, else empty (what a test case without `lists` means)."""
    return {name: list((lists or {}).get(name, [])) for name in policy.store_lists}


def engine_answer(
    policy: compiler.Policy, record: Any, as_of: str | None, lists: Mapping[str, list[Any]] | None
) -> dict[str, Any] | InputError | EvaluationError:
    """What the engine itself says for `record`: the result object, or the error it raises."""
    try:
        return policy.evaluate(record, as_of=as_of, lists=engine_lists(policy, lists))
    except (InputError, EvaluationError) as exc:
        return exc


@contextmanager
def running_client(settings: Mapping[str, Any], **overrides: Any) -> Iterator[FlaskClient]:
    """A client of another app on the same registry, with other settings (give it its own `data_dir`); stopped
    at the end, which ships what is left in its spool."""
    app = create_app({**settings, **overrides})
    try:
        yield app.test_client()
    finally:
        app.extensions["decide"].stop()


def publish(
    registry: Registry,
    staff: Mapping[str, User],
    source: str,
    cases: list[dict[str, Any]],
    *,
    approve: bool = True,
    activate: bool = True,
    fallback: Mapping[str, Any] | None = None,
) -> int:
    """Save `source` as a draft and submit it (alice), approve it (bob), activate it (dora); the version's number.
    Each step only if asked: a version submitted but never approved, or approved but never live."""
    draft = policies.save_draft(registry, staff["alice"], source, json.dumps(cases))
    version = policies.submit(registry, staff["alice"], draft.policy, note="written by an API test")
    if approve:
        approved = policies.approve(registry, staff["bob"], draft.policy, version.number, comment="reviewed")
        assert approved.state == "approved"
    if approve and activate:
        deployments.activate(registry, staff["dora"], draft.policy, version.number, fallback=fallback)
    return version.number


def new_key(registry: Registry, staff: Mapping[str, User], *scope: str) -> tuple[str, str]:
    """A fresh API key scoped to `scope`: (its id, the Authorization header value)."""
    key, secret = users.create_api_key(registry, staff["admin"], f"test key for {', '.join(scope)}", scope)
    return key.id, f"Bearer {secret}"


def wait_served(
    client: FlaskClient, headers: Mapping[str, str], policy: str, champion: int, timeout: float = 5.0
) -> dict[str, Any]:
    """Wait until the server serves `champion` for `policy` (its refresher polls the registry); the deployment."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/policies/{policy}", headers=dict(headers))
        body = response.get_json()
        if response.status_code == 200 and body["deployment"]["champion"] == champion:
            return body["deployment"]
        if time.monotonic() > deadline:
            raise AssertionError(f"{policy} version {champion} never went live: {response.status_code} {body}")
        time.sleep(0.02)


def wait_key_known(client: FlaskClient, authorization: str, policy: str, timeout: float = 5.0) -> None:
    """Wait until the server's in-memory key table has a key created a moment ago."""
    deadline = time.monotonic() + timeout
    while client.get(f"/v1/policies/{policy}", headers={"Authorization": authorization}).status_code == 401:
        if time.monotonic() > deadline:
            raise AssertionError("the new API key never reached the server")
        time.sleep(0.02)


def error_of(response: TestResponse, status: int, kind: str, phrase: str | None = None) -> dict[str, Any]:
    """The `error` object of a JSON error response, checked: status, kind, and (if given) a phrase of the message."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, f"expected {status} {kind}, got {response.status_code}: {text[:500]}"
    assert response.mimetype == "application/json", (response.mimetype, text[:200])
    assert "Traceback" not in text
    error = response.get_json()["error"]
    assert set(error) == {"kind", "message", "details"}, error
    assert error["kind"] == kind, error
    assert isinstance(error["message"], str) and isinstance(error["details"], dict), error
    if phrase is not None:
        assert phrase in error["message"], f"{phrase!r} not in {error['message']!r}"
    return error
