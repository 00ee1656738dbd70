"""The HTTP API's endpoints with the Flask test client, on both registry backends, against answers known without
the server: each example policy's own test cases (policies/*.tests.json), and where a case needs other lists
than the demo's, the engine itself on the policy file with the demo lists.

- POST /v1/decisions/{policy}: every example case (outputs, reasons, trace), as_of, trace on and off,
  ignore_extra, version pinning (an approved version that is not live, an unknown one, an unapproved one), the
  response's shape (a UUIDv7 id, increasing over time; integer timings).
- POST /v1/decisions/{policy}/batch: each record its result or its own error with its index; max_batch.
- GET /v1/policies and /v1/policies/{name}: only the key's policies; the deployment; each version's input and
  output JSON Schema, equal to the compiled policy's, and real example inputs validated against it.
- GET /v1/decisions/{id}: the logged decision, masked, for a key scoped to its policy only.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema
from flask.testing import FlaskClient

import compiler
from compiler import InputError
from compiler.testcases import values_match
from registry import Registry, deployments, lists, policies
from registry.demo import DemoSeed
from tests.server.api_support import (
    EXAMPLE_POLICIES,
    compiled,
    demo_lists,
    engine_answer,
    error_of,
    example_cases,
    example_source,
    first_good_input,
    new_key,
    publish,
    running_client,
    wait_key_known,
)
from tests.server.conftest import wait_logged

CAPPED_CASE = "band A without real estate, limit capped at 35,000"


def decide(client: FlaskClient, headers: dict[str, str], policy: str, **body: Any) -> Any:
    return client.post(f"/v1/decisions/{policy}", json=body, headers=headers)


def _case(policy: str, name: str) -> dict[str, Any]:
    """The example case whose name starts with `name`."""
    (case,) = [case for case in example_cases(policy) if case["name"].startswith(name)]
    return case


def _key_id(api_key: str) -> str:
    return api_key.removeprefix("dk_").split(".")[0]


# ----------------------------------------------------------------------------- one decision


def test_every_example_case_is_answered_as_its_own_test_file_says(client: FlaskClient, headers: dict[str, str]) -> None:
    # One test for all four policies (a seeded registry per test is the expensive part of these tests).
    for policy in EXAMPLE_POLICIES:
        _check_example_cases(client, headers, policy)


def _check_example_cases(client: FlaskClient, headers: dict[str, str], policy: str) -> None:
    engine = compiled(policy)
    checked_against_expect = decided = 0
    for case in example_cases(policy):
        body: dict[str, Any] = {"input": case["input"], "trace": True}
        if "as_of" in case:
            body["as_of"] = case["as_of"]
        response = client.post(f"/v1/decisions/{policy}", json=body, headers=headers)
        served = engine_answer(engine, case["input"], case.get("as_of"), demo_lists())
        expect = case["expect"]
        if "error" in expect:
            # The case's expected error is a phrase of the engine's message; the server lists the same problems.
            assert isinstance(served, InputError), case["name"]
            assert expect["error"] in str(served), case["name"]
            error = error_of(response, 422, "input")
            assert error["details"]["errors"] == served.to_json()["errors"], case["name"]
            for problem in served.to_json()["errors"]:
                assert problem["field"] in error["message"]
            continue
        assert response.status_code == 200, (case["name"], response.get_json())
        got = response.get_json()
        decided += 1
        assert isinstance(served, dict), case["name"]
        assert (got["outputs"], got["trace"]) == (served["outputs"], served["trace"]), case["name"]
        # The server holds the demo blacklist; a case written for other lists is checked against the engine
        # only, unless its lists make no difference to its answer.
        if engine_answer(engine, case["input"], case.get("as_of"), case.get("lists")) == served:
            for name, wanted in expect.items():
                actual = got["trace"] if name == "trace" else got["outputs"][name]
                assert values_match(wanted, actual), (case["name"], name, wanted, actual)
            checked_against_expect += 1
    assert decided >= 12, policy
    assert checked_against_expect >= decided - 1, policy  # only consumer_loan's K01 case is for another list


def test_as_of_trace_and_ignore_extra_do_what_they_say(client: FlaskClient, headers: dict[str, str]) -> None:
    # as_of is the evaluation date, today in UTC by default.
    # A customer since 29 February 2020 has been one for 5 years on 1 March 2025, not yet on 28 February.
    before = _case("cross_sell", "customer since 29 Feb 2020 is 4 years on 28 Feb 2025")
    after = _case("cross_sell", "customer since 29 Feb 2020 is 5 years on 1 Mar 2025")
    for case in (before, after):
        body = decide(client, headers, "cross_sell", input=case["input"], as_of=case["as_of"]).get_json()
        assert body["as_of"] == case["as_of"]
        assert values_match(case["expect"]["offers"], body["outputs"]["offers"])
    # The same input on the later date: only the date changed, and so did the answer.
    moved = decide(client, headers, "cross_sell", input=before["input"], as_of=after["as_of"]).get_json()
    assert moved["outputs"] == engine_answer(compiled("cross_sell"), before["input"], after["as_of"], None)["outputs"]
    assert not values_match(before["expect"]["offers"], moved["outputs"]["offers"])
    days = {dt.datetime.now(dt.UTC).date().isoformat()}
    body = decide(client, headers, "cross_sell", input=before["input"]).get_json()
    days.add(dt.datetime.now(dt.UTC).date().isoformat())  # the test may straddle midnight
    assert body["as_of"] in days
    assert body["outputs"] == engine_answer(compiled("cross_sell"), before["input"], body["as_of"], None)["outputs"]

    # The trace is sent only when asked (it is logged either way).
    record = first_good_input("credit_line")
    expected = engine_answer(compiled("credit_line"), record, None, None)
    assert "trace" not in decide(client, headers, "credit_line", input=record).get_json()
    assert "trace" not in decide(client, headers, "credit_line", input=record, trace=False).get_json()
    assert decide(client, headers, "credit_line", input=record, trace=True).get_json()["trace"] == expected["trace"]

    # ignore_extra sets undeclared fields aside; without it they are input errors.
    record = first_good_input("early_collections")
    extra = {**record, "crm_segment": "gold", "campaign": {"id": 7}}
    error = error_of(decide(client, headers, "early_collections", input=extra, as_of="2026-03-10"), 422, "input")
    assert {problem["field"] for problem in error["details"]["errors"]} == {"crm_segment", "campaign"}
    assert {problem["code"] for problem in error["details"]["errors"]} == {"unknown_field"}
    lenient = decide(client, headers, "early_collections", input=extra, as_of="2026-03-10", ignore_extra=True)
    strict = decide(client, headers, "early_collections", input=record, as_of="2026-03-10")
    assert lenient.status_code == strict.status_code == 200
    assert lenient.get_json()["outputs"] == strict.get_json()["outputs"]


def test_a_pinned_version_decides_and_unknown_or_unapproved_versions_are_refused(
    client: FlaskClient, headers: dict[str, str], registry: Registry, staff: dict[str, Any]
) -> None:
    record = _case("consumer_loan", CAPPED_CASE)["input"]
    error_of(decide(client, headers, "consumer_loan", input=record, version=2), 404, "not_found", "version 2")

    # Version 2 caps the limit at 30,000 instead of 35,000: approved, never activated.
    source = example_source("consumer_loan").replace("1_000, 35_000)", "1_000, 30_000)")
    cases = example_cases("consumer_loan")
    next(case for case in cases if case["name"] == CAPPED_CASE)["expect"]["limit"] = 30_000
    assert publish(registry, staff, source, cases, activate=False) == 2
    expected = engine_answer(compiler.compile_source(source, "consumer_loan.policy"), record, None, demo_lists())

    pinned = decide(client, headers, "consumer_loan", input=record, version=2).get_json()
    assert (pinned["version"], pinned["arm"], pinned["outputs"]) == (2, "pinned", expected["outputs"])
    assert pinned["outputs"]["limit"] == 30_000
    live = decide(client, headers, "consumer_loan", input=record).get_json()
    assert (live["version"], live["arm"], live["outputs"]["limit"]) == (1, "champion", 35_000)
    one = decide(client, headers, "consumer_loan", input=record, version=1).get_json()
    assert (one["version"], one["arm"], one["outputs"]) == (1, "champion", live["outputs"])

    # Version 3 is submitted but nobody approved it: it cannot decide.
    source = source.replace("1_000, 30_000)", "1_000, 25_000)")
    next(case for case in cases if case["name"] == CAPPED_CASE)["expect"]["limit"] = 25_000
    assert publish(registry, staff, source, cases, approve=False) == 3
    error = error_of(decide(client, headers, "consumer_loan", input=record, version=3), 422, "refused")
    assert "not approved" in error["message"]
    for unknown in (4, 2**31, 2**63, 2**80):  # past what the registry's numbers hold too: not found, not a crash
        error_of(decide(client, headers, "consumer_loan", input=record, version=unknown), 404, "not_found", "version")


def test_the_response_has_its_shape_time_ordered_ids_and_the_list_revisions_used(
    client: FlaskClient, headers: dict[str, str], registry: Registry
) -> None:
    # Every member of the demo blacklist is the list served, at its current revision.
    revision = next(item.revision for item in lists.list_lists(registry) if item.name == "blacklist")
    record = first_good_input("consumer_loan")
    for member in demo_lists()["blacklist"]:
        body = decide(client, headers, "consumer_loan", input={**record, "national_id": member}, trace=True).get_json()
        assert (body["outputs"]["decision"], body["outputs"]["reasons"], body["trace"]) == (
            "decline",
            ["K01"],
            ["knockouts:K01"],
        )
        assert body["lists"] == {"blacklist": str(revision)}
    assert decide(client, headers, "cross_sell", input=first_good_input("cross_sell")).get_json()["lists"] == {}

    ids = []
    for _ in range(5):
        before_ms = time.time_ns() // 1_000_000
        body = decide(client, headers, "consumer_loan", input=record).get_json()
        after_ms = time.time_ns() // 1_000_000
        assert set(body) == {"decision_id", "policy", "version", "arm", "outputs", "lists", "as_of", "timings"}
        identifier = uuid.UUID(body["decision_id"])
        assert str(identifier) == body["decision_id"]
        assert (identifier.version, identifier.variant) == (7, uuid.RFC_4122)
        assert before_ms <= identifier.int >> 80 <= after_ms  # the first 48 bits are the Unix milliseconds
        timings = body["timings"]
        assert set(timings) == {"engine_us", "total_us"}
        assert all(type(value) is int and value >= 0 for value in timings.values())
        assert timings["engine_us"] <= timings["total_us"]
        ids.append(body["decision_id"])
        time.sleep(0.002)  # the next id falls in a later millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


# ----------------------------------------------------------------------------- batches


def test_a_batch_answers_each_record_with_its_result_or_its_own_error_up_to_max_batch(
    server_settings: dict[str, Any], headers: dict[str, str], registry: Registry, tmp_path: Path
) -> None:
    cases = example_cases("credit_line")
    good = [case["input"] for case in cases if "error" not in case["expect"]][:2]
    bad = next(case for case in cases if "error" in case["expect"])["input"]
    inputs = [good[0], bad, 42, good[1], ["not", "a", "record"]]
    with running_client(server_settings, data_dir=str(tmp_path / "small"), max_batch=len(inputs)) as client:
        batch = {"inputs": inputs, "trace": True}
        response = client.post("/v1/decisions/credit_line/batch", json=batch, headers=headers)
        assert response.status_code == 200
        body = response.get_json()
        over = client.post("/v1/decisions/credit_line/batch", json={"inputs": [*inputs, good[0]]}, headers=headers)
        assert error_of(over, 413, "body_too_large", f"at most {len(inputs)}")["details"] == {"limit": len(inputs)}
        # Not an array of records: the whole request is refused.
        for not_records in ({}, "records", 7, None, {"0": {}}):
            refused = client.post("/v1/decisions/credit_line/batch", json={"inputs": not_records}, headers=headers)
            assert error_of(refused, 400, "invalid_request", "inputs")["details"] == {"field": "inputs"}
    assert body["policy"] == "credit_line" and len(body["results"]) == len(inputs)
    results = body["results"]
    for position in (0, 3):
        expected = engine_answer(compiled("credit_line"), inputs[position], None, None)
        assert (results[position]["outputs"], results[position]["trace"]) == (expected["outputs"], expected["trace"])
        assert results[position]["version"] == 1 and "error" not in results[position]
    engine_error = engine_answer(compiled("credit_line"), bad, None, None)
    assert isinstance(engine_error, InputError)
    assert results[1]["index"] == 1 and results[1]["error"]["kind"] == "input"
    assert results[1]["error"]["details"]["errors"] == engine_error.to_json()["errors"]
    for position in (2, 4):  # not records at all: refused before the engine, so never logged
        assert results[position]["index"] == position
        assert results[position]["error"]["kind"] == "invalid_request"
        assert results[position]["decision_id"] is None
    logged = [results[0]["decision_id"], results[1]["decision_id"], results[3]["decision_id"]]
    assert len(set(logged)) == 3
    wait_logged(registry, logged)


# ----------------------------------------------------------------------------- policies


def test_the_policy_list_and_each_policy_are_shown_only_to_keys_scoped_to_them(
    client: FlaskClient, headers: dict[str, str], registry: Registry, staff: dict[str, Any]
) -> None:
    listed = client.get("/v1/policies", headers=headers).get_json()["policies"]
    assert [item["name"] for item in listed] == sorted(EXAMPLE_POLICIES)
    for item in listed:
        live = deployments.current_deployment(registry, item["name"])
        assert (item["deployment"]["id"], item["deployment"]["champion"]) == (live.id, live.champion)
        assert item["kind"] == compiled(item["name"]).kind and "versions" not in item
    _, authorization = new_key(registry, staff, "credit_line", "cross_sell")
    wait_key_known(client, authorization, "credit_line")
    scoped = {"Authorization": authorization}
    assert [item["name"] for item in client.get("/v1/policies", headers=scoped).get_json()["policies"]] == [
        "credit_line",
        "cross_sell",
    ]
    error_of(client.get("/v1/policies/consumer_loan", headers=scoped), 403, "permission_denied", "consumer_loan")
    assert client.get("/v1/policies/credit_line", headers=scoped).status_code == 200


def test_each_policy_describes_its_deployment_and_the_json_schema_of_each_version(
    client: FlaskClient, headers: dict[str, str], registry: Registry
) -> None:
    for policy in EXAMPLE_POLICIES:
        _check_description(client, headers, registry, policy)


def _check_description(client: FlaskClient, headers: dict[str, str], registry: Registry, policy: str) -> None:
    body = client.get(f"/v1/policies/{policy}", headers=headers).get_json()
    live = deployments.current_deployment(registry, policy)
    assert body["name"] == policy
    assert body["deployment"] == {
        "id": live.id,
        "effective_at": live.effective_at.isoformat(),
        "champion": 1,
        "challenger": None,
        "challenger_percent": None,
        "shadows": [],
        "fallback": None,
    }
    engine = compiled(policy)
    (version,) = body["versions"]
    assert version["version"] == 1
    assert version["content_hash"] == policies.get_version(registry, policy, 1).content_hash == engine.content_hash
    assert version["input_schema"] == engine.info.input_schema()
    assert version["output_schema"] == engine.info.output_schema()
    # A calling system validating before it calls: every example input the engine decides passes, every one it
    # refuses fails, and every answer's outputs fit the output schema.
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    inputs = jsonschema.Draft202012Validator(version["input_schema"], format_checker=checker)
    outputs = jsonschema.Draft202012Validator(version["output_schema"], format_checker=checker)
    for case in example_cases(policy):
        if "error" in case["expect"]:
            assert not inputs.is_valid(case["input"]), case["name"]
            continue
        inputs.validate(case["input"])
        answer = decide(client, headers, policy, input=case["input"], **{k: v for k, v in case.items() if k == "as_of"})
        outputs.validate(answer.get_json()["outputs"])


# ----------------------------------------------------------------------------- the logged decision


def test_a_logged_decision_is_shown_masked_to_keys_scoped_to_its_policy(
    client: FlaskClient, headers: dict[str, str], registry: Registry, staff: dict[str, Any], seeded: DemoSeed
) -> None:
    record = {**first_good_input("consumer_loan"), "national_id": "QW98765432"}
    answer = decide(client, headers, "consumer_loan", input=record, as_of="2026-05-04", request_id="app-1").get_json()
    decision_id = answer["decision_id"]
    wait_logged(registry, [decision_id])
    logged = client.get(f"/v1/decisions/{decision_id}", headers=headers).get_json()
    expected = engine_answer(compiled("consumer_loan"), record, "2026-05-04", demo_lists())
    assert logged["record"] == {**record, "national_id": "******5432"}
    assert (logged["decision_id"], logged["policy"], logged["version"], logged["arm"]) == (
        decision_id,
        "consumer_loan",
        1,
        "champion",
    )
    assert (logged["status"], logged["as_of"], logged["request_id"]) == ("decided", "2026-05-04", "app-1")
    outputs = dict(expected["outputs"])
    assert logged["reasons"] == outputs.pop("reasons")
    assert logged["outputs"] == outputs
    assert logged["trace"] == expected["trace"]  # logged whether or not the caller asked for it
    assert logged["lists"] == answer["lists"] and logged["key_id"] == _key_id(seeded.api_key)
    assert "sealed_pii" not in logged and "QW98765432" not in json.dumps(logged)

    # The same id written another way (capitals, no dashes, a URN) is the same decision.
    for spelling in (decision_id.upper(), decision_id.replace("-", ""), f"urn:uuid:{decision_id}"):
        assert client.get(f"/v1/decisions/{spelling}", headers=headers).get_json() == logged

    _, authorization = new_key(registry, staff, "credit_line")
    wait_key_known(client, authorization, "credit_line")
    response = client.get(f"/v1/decisions/{decision_id}", headers={"Authorization": authorization})
    error_of(response, 403, "permission_denied", "consumer_loan")

    unknown = [
        ("01890a5d-ac96-774b-bcce-b302099a8057", "not in the log"),  # a well-formed UUIDv7 never issued
        ("not-a-uuid", "not a decision id"),
        (decision_id[:-1], "not a decision id"),
        (f"{decision_id}-0", "not a decision id"),
    ]
    for identifier, phrase in unknown:
        error_of(client.get(f"/v1/decisions/{identifier}", headers=headers), 404, "not_found", phrase)
