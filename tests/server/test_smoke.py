"""The decision endpoint end to end in the test process: a real decision of an example policy, as its own test
file says it should be, logged with personal data masked."""

from __future__ import annotations

import json

from tests.conftest import REPO
from tests.server.conftest import wait_logged


def test_a_decision_matches_the_policy_test_case_and_is_logged_masked(client, headers, registry) -> None:
    case = json.loads((REPO / "policies" / "consumer_loan.tests.json").read_text())[0]
    # The demo blacklist is the example file's; this case's national id is not on it.
    response = client.post(
        "/v1/decisions/consumer_loan",
        json={"input": case["input"], "trace": True, "as_of": "2026-01-01"},
        headers=headers,
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["outputs"] == {name: value for name, value in case["expect"].items() if name != "trace"}
    assert body["trace"] == case["expect"]["trace"]
    assert (body["policy"], body["version"], body["arm"], body["as_of"]) == (
        "consumer_loan",
        1,
        "champion",
        "2026-01-01",
    )
    wait_logged(registry, [body["decision_id"]])
    logged = client.get(f"/v1/decisions/{body['decision_id']}", headers=headers).get_json()
    assert logged["record"]["national_id"] == "****3456"
    assert "AB123456" not in json.dumps(logged)
