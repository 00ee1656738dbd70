"""Replay (POST /v1/decisions/{id}/replay): a logged decision re-evaluated with the as_of, list revision and
personal data it had — under its own version the same answer; under a version with a changed cut-off, the
outputs, reasons and first diverging statement (with its line in each version's source) named; the blacklist at
the decision's revision even after the list changed; the sealed national id, not its mask, reaching the engine.
"""

from __future__ import annotations

from typing import Any

from registry import Registry
from registry.entities import User
from tests.server.conftest import wait_logged, wait_until
from tests.server.deploying import add_to_list, decide, example_cases, example_source, line_of, new_version, replaced

# consumer_loan's first test case: approved (band A, 3 × income) with 4,800 a month left after debts and living
# costs (income 8,000, debt ratio 0.2, two dependants: 8,000 − 1,600 − (900 + 2 × 350)).
CASE = example_cases("consumer_loan")[0]
APPLICANT = CASE["input"]
APPROVED = {name: value for name, value in CASE["expect"].items() if name != "trace"}
OLD_RULE = 'rule R12 "Less than 500 a month left after debts and living costs":\n        when free_cash < 500\n'
NEW_RULE = 'rule R12 "Less than 5,000 a month left after debts and living costs":\n        when free_cash < 5000\n'


def replay(client: Any, headers: dict[str, str], decision_id: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/v1/decisions/{decision_id}/replay", json=body, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_replay_under_the_original_version_is_the_same(
    registry: Registry, client: Any, headers: dict[str, str]
) -> None:
    body = decide(client, headers, "consumer_loan", APPLICANT)
    assert body["outputs"] == APPROVED
    wait_logged(registry, [body["decision_id"]])
    # No body at all is a replay under the original version.
    response = client.post(f"/v1/decisions/{body['decision_id']}/replay", headers=headers)
    assert response.status_code == 200, response.get_json()
    replayed = response.get_json()
    assert replayed["difference"]["same"] is True
    assert replayed["difference"]["divergence"] is None
    assert (replayed["original"]["version"], replayed["replayed"]["version"]) == (1, 1)
    assert replayed["original"]["outputs"] == replayed["replayed"]["outputs"] == APPROVED
    assert replayed["replayed"]["trace"] == CASE["expect"]["trace"] == replayed["original"]["trace"]
    assert (replayed["as_of"], replayed["lists"]) == (body["as_of"], {"blacklist": "1"})
    assert replay(client, headers, body["decision_id"], version=1)["difference"]["same"] is True


def test_a_replay_uses_the_decisions_as_of(registry: Registry, client: Any, headers: dict[str, str]) -> None:
    """early_collections counts days to a promise from `today`: replayed on any other day it would differ."""
    record = {"ID": 77, "STATUS": "0", "promise_date": "2026-03-15"}
    body = decide(client, headers, "early_collections", record, as_of="2026-03-10")
    # A promise in 5 days: follow up the day after it (G04).
    assert body["outputs"] == {
        "action": "promise_follow_up",
        "priority": 1,
        "next_contact_days": 6,
        "reasons": ["G04"],
    }
    wait_logged(registry, [body["decision_id"]])
    replayed = replay(client, headers, body["decision_id"])
    assert replayed["as_of"] == "2026-03-10"
    assert replayed["replayed"]["outputs"] == body["outputs"]
    assert replayed["difference"]["same"] is True


def test_a_replay_under_a_changed_cut_off_names_the_outputs_reasons_and_first_diverging_statement(
    registry: Registry, staff: dict[str, User], client: Any, headers: dict[str, str]
) -> None:
    body = decide(client, headers, "consumer_loan", APPLICANT)
    assert body["outputs"] == APPROVED
    old = example_source("consumer_loan")
    # Version 2: at least 5,000 a month must be left (version 1: 500), and a line more at the top.
    new = "# version 2: a stricter affordability cut-off\n" + replaced(old, OLD_RULE, NEW_RULE)
    two = new_version(
        registry,
        staff,
        "consumer_loan",
        new,
        [{"name": "4,800 left: declined", "input": APPLICANT, "expect": {"decision": "decline", "reasons": ["R12"]}}],
    )
    wait_logged(registry, [body["decision_id"]])
    replayed = replay(client, headers, body["decision_id"], version=two)
    assert replayed["original"]["version"] == 1
    assert replayed["original"]["outputs"] == APPROVED
    assert replayed["replayed"]["version"] == two
    # Scored, banded and priced as before; declined by R12 instead of approved by A01.
    assert replayed["replayed"]["outputs"] == {**APPROVED, "decision": "decline", "limit": 0, "reasons": ["R12"]}
    difference = replayed["difference"]
    assert difference["same"] is False
    assert difference["outputs"] == {
        "decision": {"before": "approve", "after": "decline"},
        "limit": {"before": 24000, "after": 0},
    }
    assert (difference["reasons_added"], difference["reasons_removed"]) == (["R12"], [])
    assert (difference["before"]["version"], difference["after"]["version"]) == (1, two)
    divergence = difference["divergence"]
    assert divergence["statement"] == "final"
    assert divergence["before"]["line"] == line_of(old, "rules final (first):") == 114
    assert divergence["after"]["line"] == line_of(new, "rules final (first):") == 115
    assert divergence["before"]["labels"] == ["A01"]
    assert divergence["after"]["labels"] == ["R12"]
    assert [hit["line"] for hit in divergence["before"]["hits"]] == [line_of(old, 'rule A01 "Approve')]
    assert [hit["line"] for hit in divergence["after"]["hits"]] == [line_of(new, 'rule R12 "Less than 5,000')]
    # The live version is still 1: a replay under another version changes nothing that is served.
    assert decide(client, headers, "consumer_loan", APPLICANT)["outputs"] == APPROVED


def test_a_replay_uses_the_list_revision_the_decision_used(
    registry: Registry, staff: dict[str, User], app: Any, client: Any, headers: dict[str, str]
) -> None:
    before = decide(client, headers, "consumer_loan", APPLICANT)
    assert (before["outputs"]["decision"], before["lists"]) == ("approve", {"blacklist": "1"})
    add_to_list(registry, staff, "blacklist", [APPLICANT["national_id"]])
    wait_until(
        lambda: decide(client, headers, "consumer_loan", APPLICANT)["outputs"]["decision"] == "decline",
        timeout=1.0,
        what="the blacklisted applicant to be declined",
    )
    after = decide(client, headers, "consumer_loan", APPLICANT)
    assert (after["outputs"]["reasons"], after["lists"]) == (["K01"], {"blacklist": "2"})
    wait_logged(registry, [before["decision_id"], after["decision_id"]])
    # The decision made before the change is replayed with revision 1, where the applicant is no member.
    old = replay(client, headers, before["decision_id"])
    assert old["lists"] == {"blacklist": "1"}
    assert old["replayed"]["outputs"] == APPROVED
    assert old["difference"]["same"] is True
    # The one made after it, with revision 2 (so the plain national id reached the engine: its mask is no member).
    new = replay(client, headers, after["decision_id"])
    assert new["lists"] == {"blacklist": "2"}
    assert (new["replayed"]["outputs"]["decision"], new["replayed"]["outputs"]["reasons"]) == ("decline", ["K01"])
    assert new["difference"]["same"] is True


def test_a_replay_decides_on_the_sealed_national_id_not_its_mask(
    registry: Registry, client: Any, headers: dict[str, str]
) -> None:
    listed = {**APPLICANT, "national_id": "XX999999"}  # on the demo blacklist
    body = decide(client, headers, "consumer_loan", listed)
    assert (body["outputs"]["decision"], body["outputs"]["reasons"]) == ("decline", ["K01"])
    wait_logged(registry, [body["decision_id"]])
    shown = client.get(f"/v1/decisions/{body['decision_id']}", headers=headers).get_json()
    assert shown["record"]["national_id"] == "****9999"  # what the log shows is no member of the blacklist
    response = client.post(f"/v1/decisions/{body['decision_id']}/replay", json={}, headers=headers)
    assert response.status_code == 200, response.get_json()
    replayed = response.get_json()
    assert replayed["replayed"]["outputs"] == body["outputs"]
    assert replayed["difference"]["same"] is True
    assert "XX999999" not in response.get_data(as_text=True)


def test_a_decision_refused_for_its_input_replays_to_the_same_refusal(
    registry: Registry, client: Any, headers: dict[str, str]
) -> None:
    response = client.post("/v1/decisions/consumer_loan", json={"input": {**APPLICANT, "age": 200}}, headers=headers)
    assert response.status_code == 422, response.get_json()
    decision_id = response.get_json()["error"]["details"]["decision_id"]
    wait_logged(registry, [decision_id])
    replayed = replay(client, headers, decision_id)
    assert replayed["original"]["status"] == "input_error"
    assert replayed["original"]["outputs"] is None
    assert "age" in str(replayed["replayed"]["error"])
    assert replayed["difference"] is None  # nothing decided on either side to compare
