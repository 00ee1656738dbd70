"""Champion/challenger routing: `decision_server.routing` on its own (the split within a binomial tolerance of the
configured share on 100,000 keys, sticky per salt, redrawn by another salt, the same in every process, keys of
every JSON type), then through the API: a deployment with a challenger answers each applicant from the arm
routing gives its `key` input, with that arm's version, every time.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import pytest

from decision_server import routing
from registry import Registry
from registry.entities import User
from tests.conftest import REPO
from tests.server.conftest import wait_until
from tests.server.deploying import activate, decide, example_cases, example_source, new_version, replaced

KEYS = 100_000
SIGMAS = 4  # a correct split is outside 4 standard deviations with probability 6e-5


def tolerance(trials: int, probability: float) -> float:
    """SIGMAS standard deviations of a binomial count."""
    return SIGMAS * math.sqrt(trials * probability * (1 - probability))


def challengers(policy: str, salt: str, keys: list[Any], percent: int) -> set[int]:
    """The positions of the keys routed to the challenger."""
    return {i for i, key in enumerate(keys) if routing.choose_arm(policy, salt, key, percent) == "challenger"}


@pytest.mark.parametrize("percent", [1, 10, 30, 50, 99])
def test_the_challenger_share_is_the_configured_percentage_within_tolerance(percent: int) -> None:
    keys = list(range(KEYS))
    count = len(challengers("credit_line", "deployment:7", keys, percent))
    expected = KEYS * percent / 100
    assert abs(count - expected) <= tolerance(KEYS, percent / 100), (count, expected)


def test_string_keys_split_within_tolerance_too() -> None:
    keys = [f"APP-{n:08d}" for n in range(KEYS)]
    count = len(challengers("consumer_loan", "deployment:3", keys, 20))
    assert abs(count - KEYS * 0.2) <= tolerance(KEYS, 0.2)


def test_no_challenger_share_is_always_the_champion() -> None:
    assert {routing.choose_arm("credit_line", "deployment:1", key, None) for key in range(1000)} == {"champion"}
    assert {routing.choose_arm("credit_line", "deployment:1", key, 0) for key in range(1000)} == {"champion"}


def test_the_same_key_always_gets_the_same_arm_for_a_salt() -> None:
    keys = list(range(0, 50_000, 7))
    first = [routing.choose_arm("credit_line", "deployment:9", key, 30) for key in keys]
    again = [routing.choose_arm("credit_line", "deployment:9", key, 30) for key in reversed(keys)][::-1]
    assert first == again
    assert {"champion", "challenger"} == set(first)


def test_another_process_routes_every_key_the_same_way() -> None:
    """Workers and instances share nothing: the arm cannot depend on the process (no salted hash())."""
    keys = [1, 2, 3, "A-1", "A-2", 12.5, True, None, [1, "x"], {"b": 1, "a": 2}, *range(100, 400)]
    here = [routing.choose_arm("early_collections", "deployment:4", key, 50) for key in keys]
    program = (
        "import json, sys\n"
        "from decision_server import routing\n"
        "keys = json.loads(sys.stdin.read())\n"
        "print(json.dumps([routing.choose_arm('early_collections', 'deployment:4', k, 50) for k in keys]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        input=json.dumps(keys),
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        check=True,
        timeout=60,
    )
    assert json.loads(result.stdout) == here


def test_another_salt_redraws_the_split() -> None:
    """Two deployments' splits are independent: the keys in both challenger arms are about p² of all."""
    keys = list(range(KEYS))
    percent, p = 30, 0.3
    first = challengers("credit_line", "deployment:1", keys, percent)
    second = challengers("credit_line", "deployment:2", keys, percent)
    assert abs(len(second) - KEYS * p) <= tolerance(KEYS, p)
    assert abs(len(first & second) - KEYS * p * p) <= tolerance(KEYS, p * p)
    # And the policy's name is part of the draw: the same salt on another policy splits afresh.
    other = challengers("early_collections", "deployment:1", keys, percent)
    assert abs(len(first & other) - KEYS * p * p) <= tolerance(KEYS, p * p)


def test_keys_of_every_json_type_route_and_differ_by_type() -> None:
    for key in [0, -5, 2**62, 1.5, "", "ID-1", "ünïcode", True, False, None, [1, 2], {"a": [1, {"b": None}]}]:
        first = routing.choose_arm("p", "deployment:1", key, 50)
        assert first in ("champion", "challenger")
        assert routing.choose_arm("p", "deployment:1", key, 50) == first
        assert 0 <= routing.bucket("p", "deployment:1", key) < routing.BUCKETS
    # 5.0 is the JSON number 5 (an int key accepts both): the same applicant, the same bucket.
    assert all(routing.bucket("p", "s", float(n)) == routing.bucket("p", "s", n) for n in range(-500, 500))
    assert routing.bucket("p", "s", 5.5) != routing.bucket("p", "s", 5)
    # A whole number past 64 bits (the input validator refuses it after routing) still has a bucket.
    assert routing.bucket("p", "s", 2**70) == routing.bucket("p", "s", 2**70)
    assert routing.bucket("p", "s", 2**70) != routing.bucket("p", "s", 2**70 + 1)
    # An object key is the same key whatever the order of its members.
    assert routing.bucket("p", "s", {"a": 1, "b": [2, 3]}) == routing.bucket("p", "s", {"b": [2, 3], "a": 1})
    # 1 and "1" are different keys (the JSON value is hashed, not its text): they agree only by chance, about
    # half the time at 50%.
    n = 20_000
    agree = sum(
        routing.choose_arm("p", "deployment:1", i, 50) == routing.choose_arm("p", "deployment:1", str(i), 50)
        for i in range(n)
    )
    assert abs(agree - n / 2) <= tolerance(n, 0.5)


# ----------------------------------------------------------------------------- through the API


def early_collections_v2(registry: Registry, staff: dict[str, User]) -> int:
    """Version 2 of early_collections: 90+ days past due go to late stage at priority 4 (version 1: 5)."""
    source = replaced(
        example_source("early_collections"),
        'then action = "late_stage_transfer", priority = 5, reason "G02", stop',
        'then action = "late_stage_transfer", priority = 4, reason "G02", stop',
    )
    cases = [
        {
            "name": "90+ days: late stage at priority 4",
            "input": {"ID": 1, "STATUS": "3"},
            "expect": {"action": "late_stage_transfer", "priority": 4},
        }
    ]
    return new_version(registry, staff, "early_collections", source, cases)


def test_each_applicant_is_answered_by_the_arm_routing_gives_its_key(
    registry: Registry, staff: dict[str, User], app: Any, client: Any, headers: dict[str, str]
) -> None:
    service = app.extensions["decide"]
    decide(client, headers, "early_collections", {"ID": 1, "STATUS": "3"})  # the service is up, on version 1
    before = service.live.snapshot.policies["early_collections"].salt
    two = early_collections_v2(registry, staff)
    deployment = activate(registry, staff, "early_collections", 1, challenger=two, percent=30)
    wait_until(
        lambda: service.live.snapshot.policies["early_collections"].deployment.id == deployment.id,
        timeout=1.0,
        what="the champion/challenger deployment to be live",
    )
    live = service.live.snapshot.policies["early_collections"]
    assert live.salt != before  # a new deployment, a new draw

    ids = range(5_000_001, 5_000_401)
    arms: dict[int, str] = {}
    for applicant in ids:
        body = decide(client, headers, "early_collections", {"ID": applicant, "STATUS": "3"})
        expected = routing.choose_arm("early_collections", live.salt, applicant, 30)
        assert body["arm"] == expected, applicant
        # The arm's version answered: version 2's priority for 90+ days is 4, version 1's 5.
        assert (body["version"], body["outputs"]["priority"]) == ((2, 4) if expected == "challenger" else (1, 5))
        arms[applicant] = body["arm"]
    share = sum(arm == "challenger" for arm in arms.values())
    assert abs(share - 400 * 0.3) <= tolerance(400, 0.3)

    # The same applicant again, with another input, its ID spelt 5000001 or 5000001.0: the same arm.
    for applicant in list(ids)[:60]:
        for spelt in (applicant, float(applicant)):
            body = decide(client, headers, "early_collections", {"ID": spelt, "STATUS": "1", "balance": 100})
            assert body["arm"] == arms[applicant]
            assert body["version"] == (2 if arms[applicant] == "challenger" else 1)

    # An ID no int input accepts is routed like any key, then refused for its input: a 422, never a 500.
    response = client.post(
        "/v1/decisions/early_collections", json={"input": {"ID": 2**70, "STATUS": "3"}}, headers=headers
    )
    assert response.status_code == 422, response.get_json()
    assert [error["field"] for error in response.get_json()["error"]["details"]["errors"]] == ["ID"]


def test_credit_line_challenger_routes_on_its_id(
    registry: Registry, staff: dict[str, User], app: Any, client: Any, headers: dict[str, str]
) -> None:
    """credit_line's key is ID too; a pinned version bypasses routing, and the arm it names is reported."""
    record = dict(example_cases("credit_line")[0]["input"])
    source = example_source("credit_line") + "\n# version 2: the same rules, reviewed again\n"
    two = new_version(registry, staff, "credit_line", source, example_cases("credit_line"))
    activate(registry, staff, "credit_line", 1, challenger=two, percent=50)
    service = app.extensions["decide"]
    decide(client, headers, "credit_line", record)
    wait_until(
        lambda: service.live.snapshot.policies["credit_line"].challenger is not None,
        timeout=1.0,
        what="the challenger to be live",
    )
    salt = service.live.snapshot.policies["credit_line"].salt
    seen = set()
    for applicant in range(1, 81):
        body = decide(client, headers, "credit_line", {**record, "ID": applicant})
        assert body["arm"] == routing.choose_arm("credit_line", salt, applicant, 50)
        assert body["version"] == (2 if body["arm"] == "challenger" else 1)
        seen.add(body["arm"])
        pinned = decide(client, headers, "credit_line", {**record, "ID": applicant}, version=1)
        assert (pinned["version"], pinned["arm"]) == (1, "champion")
    assert seen == {"champion", "challenger"}
