"""Plugins in the decision server, with the example plugin (examples/decide-example-plugin) registered directly:
its enricher's field fetched before evaluation and recorded in the log's `enrichment`, and never fetched again by
a replay; a slow enricher cut off at its timeout, the decision answered without the field; listeners told of
each decision without the sealed personal data, a raising listener stopping neither another nor the decision;
its list source supplying the members of `sanctions` at its revision ("plugin:REV"); and a policy calling its
function, submitted to the registry (which compiles with the installed plugins' functions) and served.

The policy here, bureau_check, is written for these tests: it reads `bureau_score` (the enricher's field) and
the `sanctions` list (the list source's); the example's affordability.policy calls its function.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from compiler.plugins import Enricher, Listener, hookimpl
from decision_server import create_app
from decision_server.plugins import load_plugins
from registry import Registry, lists, users
from registry import decisions as decision_log
from registry.entities import User
from tests.conftest import REPO
from tests.server.conftest import wait_logged, wait_until
from tests.server.deploying import activate, decide, new_version

PLUGIN_ROOT = REPO / "examples" / "decide-example-plugin"
if str(PLUGIN_ROOT) not in sys.path:
    sys.path.insert(0, str(PLUGIN_ROOT))
example = importlib.import_module("decide_example_plugin")

SOURCE = """\
policy bureau_check:
    title: "Bureau check with the example plugin's enricher and sanctions list"
    kind: approval

input:
    applicant_id: string key
    national_id: string pii
    bureau_score: int optional in [300..850]

output:
    decision: string in {"approve", "refer", "decline"} = "approve"
    score: int optional

list sanctions: string

rules checks (first):
    rule K01 "Sanctioned":
        when national_id in sanctions
        then decision = "decline", reason "K01", stop
    rule R01 "No bureau score":
        when bureau_score is missing
        then decision = "refer", reason "R01"
    rule D02 "Thin bureau score":
        when bureau_score < 500
        then decision = "refer", score = bureau_score, reason "D02"
    rule A01 "Scored":
        when true
        then score = bureau_score
"""
CASES = [
    {"name": "scored", "input": {"applicant_id": "A", "national_id": "ZZ1", "bureau_score": 700},
     "expect": {"decision": "approve", "score": 700, "reasons": []}},
    {"name": "thin", "input": {"applicant_id": "A", "national_id": "ZZ1", "bureau_score": 420},
     "expect": {"decision": "refer", "score": 420, "reasons": ["D02"]}},
    {"name": "no score", "input": {"applicant_id": "A", "national_id": "ZZ1"},
     "expect": {"decision": "refer", "reasons": ["R01"]}},
    {"name": "sanctioned", "input": {"applicant_id": "A", "national_id": "ZZ1"}, "lists": {"sanctions": ["ZZ1"]},
     "expect": {"decision": "decline", "reasons": ["K01"]}},
]  # fmt: skip
NATIONAL_ID = "QQ246810"  # on no list


def expected_score(applicant_id: str) -> int:
    """The example enricher's score, as its docstring defines it: 300 + the id's SHA-256 modulo 551."""
    return 300 + int.from_bytes(hashlib.sha256(applicant_id.encode()).digest()[:4], "big") % 551


def expected_outcome(score: int) -> dict[str, Any]:
    if score < 500:
        return {"decision": "refer", "score": score, "reasons": ["D02"]}
    return {"decision": "approve", "score": score, "reasons": []}


@pytest.fixture
def bureau_headers(registry: Registry, staff: dict[str, User]) -> dict[str, str]:
    """bureau_check version 1 live, and an API key for it."""
    number = new_version(registry, staff, "bureau_check", SOURCE, CASES)
    activate(registry, staff, "bureau_check", number)
    _, key = users.create_api_key(registry, staff["admin"], "plugin tests", ["bureau_check"])
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def make_app(seeded: Any, server_settings: dict[str, Any]) -> Iterator[Callable[..., Any]]:
    """An app with the given plugin objects registered (and no entry points)."""
    made: list[Any] = []

    def make(*plugins: object) -> Any:
        plugin_set = load_plugins(False, plugins)
        assert plugin_set.problems == ()
        application = create_app(server_settings, plugins=plugin_set)
        made.append(application)
        return application

    yield make
    for application in made:
        application.extensions["decide"].stop()


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every record the example enricher is asked about (its hook reads the module's `bureau_score`)."""
    calls: list[dict[str, Any]] = []
    original = example.bureau_score

    def counted(record: dict[str, Any]) -> dict[str, Any]:
        calls.append(dict(record))
        return original(record)

    monkeypatch.setattr(example, "bureau_score", counted)
    monkeypatch.setattr(example, "EVENTS", [])
    monkeypatch.delenv("DECIDE_EXAMPLE_EVENTS", raising=False)
    return calls


def test_the_enrichers_field_is_fetched_recorded_and_never_fetched_by_a_replay(
    registry: Registry, bureau_headers: dict[str, str], make_app: Callable[..., Any], fetches: list[dict[str, Any]]
) -> None:
    client = make_app(example).test_client()
    outcomes = {}
    for applicant in ("A-1", "A-2", "A-3", "A-13", "A-16"):  # score below 500
        body = decide(client, bureau_headers, "bureau_check", {"applicant_id": applicant, "national_id": NATIONAL_ID})
        assert body["outputs"] == expected_outcome(expected_score(applicant))
        outcomes[applicant] = body
    assert [call["applicant_id"] for call in fetches] == list(outcomes)
    assert {expected_outcome(expected_score(a))["decision"] for a in outcomes} == {"approve", "refer"}

    wait_logged(registry, [body["decision_id"] for body in outcomes.values()])
    for applicant, body in outcomes.items():
        logged = decision_log.get_decision(registry, body["decision_id"])
        assert logged.enrichment == {"bureau_score": expected_score(applicant)}
        assert logged.record["bureau_score"] == expected_score(applicant)
        shown = client.get(f"/v1/decisions/{body['decision_id']}", headers=bureau_headers).get_json()
        assert shown["enrichment"] == {"bureau_score": expected_score(applicant)}

    calls = len(fetches)
    for applicant, body in outcomes.items():
        response = client.post(f"/v1/decisions/{body['decision_id']}/replay", json={}, headers=bureau_headers)
        assert response.status_code == 200, response.get_json()
        replayed = response.get_json()
        assert replayed["enrichment"] == {"bureau_score": expected_score(applicant)}
        assert replayed["replayed"]["outputs"] == body["outputs"]
        assert replayed["difference"]["same"] is True
    assert len(fetches) == calls, "a replay called the enricher again"

    # A caller that sends the field itself: nothing is fetched, nothing recorded as enrichment.
    sent = decide(
        client, bureau_headers, "bureau_check", {"applicant_id": "A-9", "national_id": NATIONAL_ID, "bureau_score": 810}
    )
    assert sent["outputs"] == expected_outcome(810)
    assert len(fetches) == calls
    wait_logged(registry, [sent["decision_id"]])
    assert decision_log.get_decision(registry, sent["decision_id"]).enrichment is None


class Slow:
    """An enricher of `bureau_score` that answers long after its 0.1 s timeout."""

    TIMEOUT = 0.1

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def fetch(self, record: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        self.release.wait(5)
        return {"bureau_score": 800}

    @hookimpl
    def decide_enrichers(self) -> list[Enricher]:
        return [Enricher("slow_bureau", ("bureau_score",), self.fetch, timeout_seconds=self.TIMEOUT)]


def test_a_slow_enricher_leaves_its_field_missing_and_the_decision_answers(
    registry: Registry, bureau_headers: dict[str, str], make_app: Callable[..., Any]
) -> None:
    slow = Slow()
    client = make_app(slow).test_client()
    try:
        decide(client, bureau_headers, "bureau_check", {"applicant_id": "A-0", "national_id": NATIONAL_ID})  # warm
        started = time.perf_counter()
        body = decide(client, bureau_headers, "bureau_check", {"applicant_id": "A-1", "national_id": NATIONAL_ID})
        elapsed = time.perf_counter() - started
    finally:
        slow.release.set()
    assert body["outputs"] == {"decision": "refer", "score": None, "reasons": ["R01"]}  # no bureau score
    assert slow.calls == 2
    assert Slow.TIMEOUT <= elapsed < 5, elapsed  # cut off at the timeout, never waiting for the 5 s answer
    wait_logged(registry, [body["decision_id"]])
    logged = decision_log.get_decision(registry, body["decision_id"])
    assert logged.enrichment == {"_failed:slow_bureau": "TimeoutError"}
    assert "bureau_score" not in logged.record


class Exploding:
    """A listener that raises on every decision (registered before the example's, so it is called first)."""

    def __init__(self) -> None:
        self.calls = 0

    def explode(self, event: dict[str, Any]) -> None:
        self.calls += 1
        raise RuntimeError("listener down")

    @hookimpl
    def decide_listeners(self) -> list[Listener]:
        return [Listener("exploding", self.explode)]


def test_listeners_get_each_decision_without_personal_data_and_a_raising_one_stops_nothing(
    registry: Registry, bureau_headers: dict[str, str], make_app: Callable[..., Any], fetches: list[dict[str, Any]]
) -> None:
    exploding = Exploding()
    client = make_app(exploding, example).test_client()
    bodies = [
        decide(client, bureau_headers, "bureau_check", {"applicant_id": f"L-{n}", "national_id": NATIONAL_ID})
        for n in range(5)
    ]
    ids = [body["decision_id"] for body in bodies]
    wait_until(lambda: len(example.EVENTS) >= len(ids), timeout=5, what="the example listener's events")
    events = {event["decision_id"]: event for event in example.EVENTS}
    assert list(events) == ids  # each decision once, in order
    assert exploding.calls == len(ids)  # called every time, raising every time, and the next listener still ran
    for body in bodies:
        event = events[body["decision_id"]]
        assert "sealed_pii" not in event
        assert NATIONAL_ID not in json.dumps(event, default=str)
        assert event["record"]["national_id"] == "****6810"
        assert event["outputs"] == {name: value for name, value in body["outputs"].items() if name != "reasons"}
        assert event["reasons"] == body["outputs"]["reasons"]
        assert (event["policy"], event["version"], event["arm"], event["status"]) == (
            "bureau_check",
            1,
            "champion",
            "decided",
        )
        assert event["enrichment"] == {"bureau_score": expected_score(event["record"]["applicant_id"])}


def test_a_list_source_supplies_the_members_of_its_list_with_its_revision(
    registry: Registry, bureau_headers: dict[str, str], make_app: Callable[..., Any], fetches: list[dict[str, Any]]
) -> None:
    client = make_app(example).test_client()
    revision = f"plugin:{example.SANCTIONS_REVISION}"
    # The registry's own list of that name is empty: the members can only come from the plugin.
    info, entries = lists.members(registry, "sanctions")
    assert (info.revision, entries) == (0, [])
    sanctioned = decide(
        client, bureau_headers, "bureau_check", {"applicant_id": "S-1", "national_id": example.SANCTIONS[1]}
    )
    assert sanctioned["outputs"]["decision"] == "decline"
    assert sanctioned["outputs"]["reasons"] == ["K01"]
    assert sanctioned["lists"] == {"sanctions": revision}
    clear = decide(client, bureau_headers, "bureau_check", {"applicant_id": "S-2", "national_id": NATIONAL_ID})
    assert clear["outputs"]["reasons"] != ["K01"]
    assert clear["lists"] == {"sanctions": revision}
    wait_logged(registry, [sanctioned["decision_id"], clear["decision_id"]])
    assert decision_log.get_decision(registry, sanctioned["decision_id"]).lists == {"sanctions": revision}
    response = client.post(f"/v1/decisions/{sanctioned['decision_id']}/replay", json={}, headers=bureau_headers)
    assert response.status_code == 200, response.get_json()
    replayed = response.get_json()
    assert replayed["replayed"]["outputs"]["reasons"] == ["K01"]
    assert replayed["difference"]["same"] is True
    assert len(fetches) == 2  # the two decisions; the replay used the recorded score


def test_a_policy_calling_a_plugin_function_is_submitted_served_and_replayed(
    registry: Registry,
    staff: dict[str, User],
    make_app: Callable[..., Any],
    fetches: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The registry compiles a submitted version with the installed plugins' functions (here the example plugin,
    as if installed), and the server with its own: the example's affordability policy decides as the annuity
    formula says, and its replay calls the function again without calling the enricher."""
    from compiler.plugins import collect_functions, plugin_manager
    from registry import policies

    functions, problems = collect_functions(plugin_manager(load_entry_points=False, plugins=[example]))
    assert problems == []
    monkeypatch.setattr(policies, "installed_functions", lambda: functions)
    source = (PLUGIN_ROOT / "tests" / "affordability.policy").read_text()
    cases = [
        {"name": "affordable", "input": {"applicant_id": "A", "national_id": "ZZ1", "amount": 10000, "rate": 0.05,
         "years": 5, "annual_income": 60000, "bureau_score": 700}, "lists": {"sanctions": []},
         "expect": {"decision": "approve", "payment": 2309.75, "reasons": []}},
    ]  # fmt: skip
    number = new_version(registry, staff, "affordability", source, cases)
    assert "annual_payment" in policies.get_version(registry, "affordability", number).source
    activate(registry, staff, "affordability", number)
    _, key = users.create_api_key(registry, staff["admin"], "plugin function", ["affordability"])
    headers = {"Authorization": f"Bearer {key}"}
    client = make_app(example).test_client()
    record = {"applicant_id": "F-1", "national_id": NATIONAL_ID, "amount": 25000, "rate": 0.07, "years": 7,
              "annual_income": 90000, "bureau_score": 640}  # fmt: skip
    annuity = 25000 * 0.07 / (1 - 1.07**-7)  # the independent answer
    body = decide(client, headers, "affordability", record)
    assert body["outputs"]["decision"] == "approve"
    assert body["outputs"]["payment"] == round(annuity, 2)
    wait_logged(registry, [body["decision_id"]])
    replay = client.post(f"/v1/decisions/{body['decision_id']}/replay", json={}, headers=headers).get_json()
    assert replay["difference"]["same"] is True and fetches == []  # the caller sent bureau_score: never fetched
