"""Every error of the HTTP API (issue 9's list) with the Flask test client, on both registry backends: the status,
the stable kind, a phrase of the message and the details, always the JSON body `{"error": {...}}`.

- 400 malformed JSON (with its line and column), 400 a malformed envelope, 401 (no key, a wrong scheme, an
  unknown key, a wrong secret, a revoked key), 403, 404 (a policy the key may call that is not live, an unknown
  endpoint), 405, 413, 415, 422 input errors (all of them, the engine's own), 422 an evaluation error naming
  its statement, and the deployment's fallback answered as degraded instead, logged as such.
- Never a 500 and never a traceback, whatever the body: deep nesting, numbers past 64 bits, non-objects,
  unicode oddities — each a 4xx JSON answer, and each logged decision shipped to the log.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import compiler
from compiler import EvaluationError, InputError
from registry import Registry, users
from registry.demo import DemoSeed
from tests.server.api_support import (
    FRAGILE_CASES,
    FRAGILE_SOURCE,
    compiled,
    error_of,
    first_good_input,
    new_key,
    publish,
    running_client,
    wait_key_known,
    wait_served,
)
from tests.server.conftest import wait_logged, wait_until

DECIDE = "/v1/decisions/consumer_loan"


def post(client: FlaskClient, headers: dict[str, str], body: bytes | str, path: str = DECIDE) -> TestResponse:
    data = body.encode() if isinstance(body, str) else body
    return client.post(path, data=data, headers={**headers, "Content-Type": "application/json"})


# ----------------------------------------------------------------------------- 400


# (body, line, column, phrase): positions counted by hand, 1-based, at the first character that is wrong.
MALFORMED = [
    ('{"input": {"age": 40,}}', 1, 21, "trailing comma"),
    ('{\n  "input": {\n    "age": ,\n  }\n}', 3, 12, "expected a JSON value"),
    ('{"input": {"age": NaN}}', 1, 19, "NaN and Infinity are not valid JSON numbers"),
    ('{"input": {"age": -Infinity}}', 1, 20, "NaN and Infinity are not valid JSON numbers"),
    ('{"input": {"age": 1e999}}', 1, 19, "the number is too large"),
    ("{'input': {}}", 1, 2, "expected a string key"),
    ('{"input": {}} {"input": {}}', 1, 15, "unexpected content after document"),
    ('{"input": {"age": 01}}', 1, 19, "leading zero"),
    ('{"input": tru}', 1, 11, "invalid literal"),
    ('{"input": {', 1, 12, "unexpected end of data"),
    ('{"input": {"note": "a\tb"}}', 1, 22, "control character"),
    ("", 1, 1, "empty document"),
]


def test_malformed_json_is_a_400_with_its_line_and_column(client: FlaskClient, headers: dict[str, str]) -> None:
    for body, line, column, phrase in MALFORMED:
        error = error_of(post(client, headers, body), 400, "malformed_json", f"at line {line}, column {column}")
        assert phrase in error["message"], (body, error["message"])
        assert error["details"] == {"line": line, "column": column, "code": "invalid_json"}, body
    # A key twice in one object: which value is meant cannot be known, so neither is taken (the strict decoder
    # finds it after parsing, and so names the key, not a position).
    for body, key in (('{"input": {"age": 40, "age": 41}}', "age"), ('{"input": {}, "input": {}}', "input")):
        error = error_of(post(client, headers, body), 400, "malformed_json", f'the key "{key}" appears more than once')
        assert error["details"]["code"] == "duplicate_key"
    error = error_of(post(client, headers, b'{"input": {"name": "\xff"}}'), 400, "malformed_json", "UTF-8")
    assert error["details"]["code"] == "invalid_json"
    # The same on the batch endpoint.
    error_of(post(client, headers, '{"inputs": [}', f"{DECIDE}/batch"), 400, "malformed_json", "line 1, column 13")


RECORD: dict[str, Any] = first_good_input("consumer_loan")

# (body, phrase of the message, details): the envelope around the input, checked before the input is.
BAD_ENVELOPES: list[tuple[Any, str, dict[str, Any]]] = [
    ({"input": RECORD, "inputs": [RECORD]}, "unknown field(s) inputs", {"fields": ["inputs"]}),
    ({"input": RECORD, "Trace": True, "extra": 1}, "unknown field(s) Trace, extra", {"fields": ["Trace", "extra"]}),
    ({}, "the request has no 'input'", {"field": "input"}),
    ({"as_of": "2026-01-01"}, "the request has no 'input'", {"field": "input"}),
    ({"input": RECORD, "trace": "yes"}, "trace must be true or false", {"field": "trace"}),
    ({"input": RECORD, "trace": 1}, "trace must be true or false", {"field": "trace"}),
    ({"input": RECORD, "trace": None}, "trace must be true or false", {"field": "trace"}),
    ({"input": RECORD, "ignore_extra": "false"}, "ignore_extra must be true or false", {"field": "ignore_extra"}),
    ({"input": RECORD, "as_of": 20260101}, "as_of must be a date YYYY-MM-DD", {"field": "as_of"}),
    ({"input": RECORD, "as_of": "2026-13-01"}, "as_of must be a date YYYY-MM-DD", {"field": "as_of"}),
    ({"input": RECORD, "as_of": "2026-02-30"}, "as_of must be a date YYYY-MM-DD", {"field": "as_of"}),
    ({"input": RECORD, "as_of": "2026-1-1"}, "as_of must be a date YYYY-MM-DD", {"field": "as_of"}),
    ({"input": RECORD, "as_of": "2026-01-01T00:00"}, "as_of must be a date YYYY-MM-DD", {"field": "as_of"}),
    ({"input": RECORD, "as_of": ["2026-01-01"]}, "as_of must be a date YYYY-MM-DD", {"field": "as_of"}),
    ({"input": RECORD, "request_id": 5}, "request_id must be a string of 1 to 200", {"field": "request_id"}),
    ({"input": RECORD, "request_id": ""}, "request_id must be a string of 1 to 200", {"field": "request_id"}),
    ({"input": RECORD, "request_id": "r" * 201}, "request_id must be a string of 1 to 200", {"field": "request_id"}),
    ({"input": RECORD, "request_id": ["a"]}, "request_id must be a string of 1 to 200", {"field": "request_id"}),
    ({"input": RECORD, "version": "1"}, "version must be a positive whole number", {"field": "version"}),
    ({"input": RECORD, "version": 0}, "version must be a positive whole number", {"field": "version"}),
    ({"input": RECORD, "version": -3}, "version must be a positive whole number", {"field": "version"}),
    ({"input": RECORD, "version": True}, "version must be a positive whole number", {"field": "version"}),
    ({"input": RECORD, "version": 1.5}, "version must be a positive whole number", {"field": "version"}),
    ({"input": RECORD, "version": 1.0}, "version must be a positive whole number", {"field": "version"}),
    ({"input": [RECORD]}, "input must be a JSON object", {"field": "input"}),
    ({"input": "age=40"}, "input must be a JSON object", {"field": "input"}),
    ({"input": None}, "input must be a JSON object", {"field": "input"}),
    ({"input": 40}, "input must be a JSON object", {"field": "input"}),
    ([{"input": RECORD}], "the body must be a JSON object", {}),
    ("input", "the body must be a JSON object", {}),
    (None, "the body must be a JSON object", {}),
    (3, "the body must be a JSON object", {}),
]


def test_a_malformed_envelope_is_a_400_naming_what_is_wrong(client: FlaskClient, headers: dict[str, str]) -> None:
    for body, phrase, details in BAD_ENVELOPES:
        error = error_of(post(client, headers, json.dumps(body)), 400, "invalid_request", phrase)
        assert error["details"] == details, body
    # The well-formed envelope around the same record decides.
    assert post(client, headers, json.dumps({"input": RECORD, "as_of": None})).status_code == 200


# ----------------------------------------------------------------------------- 401, 403, 404


def test_a_missing_malformed_unknown_or_revoked_key_is_a_401_on_every_endpoint(
    client: FlaskClient, registry: Registry, staff: dict[str, Any], seeded: DemoSeed
) -> None:
    key_id, secret = seeded.api_key.removeprefix("dk_").split(".")
    attempts = [
        (None, "send the API key as Authorization: Bearer"),
        (f"Basic {seeded.api_key}", "must be Bearer"),
        ("Bearer", "must be Bearer"),
        ("Bearer   ", "must be Bearer"),
        (seeded.api_key, "must be Bearer"),
        ("Bearer not-a-key", "not in the form dk_<id>.<secret>"),
        (f"Bearer dk_000000000000.{secret}", "unknown API key 000000000000"),
        (f"Bearer dk_{key_id}.{secret[:-1]}x", f"unknown API key {key_id}"),
    ]
    endpoints = [
        ("POST", DECIDE),
        ("POST", f"{DECIDE}/batch"),
        ("GET", "/v1/decisions/01890a5d-ac96-774b-bcce-b302099a8057"),
        ("POST", "/v1/decisions/01890a5d-ac96-774b-bcce-b302099a8057/replay"),
        ("GET", "/v1/policies"),
        ("GET", "/v1/policies/consumer_loan"),
    ]
    for authorization, phrase in attempts:
        for method, path in endpoints:
            headers = {} if authorization is None else {"Authorization": authorization}
            response = client.open(path, method=method, json={"input": RECORD}, headers=headers)
            error = error_of(response, 401, "authentication_failed", phrase)
            assert secret not in error["message"]  # never the secret, even a wrong one

    # A key revoked in the registry stops working as soon as the server has re-read its keys.
    revoked_id, authorization = new_key(registry, staff, "consumer_loan")
    wait_key_known(client, authorization, "consumer_loan")
    assert client.post(DECIDE, json={"input": RECORD}, headers={"Authorization": authorization}).status_code == 200
    users.revoke_api_key(registry, staff["admin"], revoked_id)

    def refused() -> bool:
        return client.post(DECIDE, json={"input": RECORD}, headers={"Authorization": authorization}).status_code == 401

    wait_until(refused, what="the revoked key to be refused")
    response = client.get("/v1/policies", headers={"Authorization": authorization})
    error_of(response, 401, "authentication_failed", f"API key {revoked_id} was revoked")


def test_a_key_not_scoped_to_the_policy_is_a_403_and_a_policy_not_live_a_404(
    client: FlaskClient, headers: dict[str, str], registry: Registry, staff: dict[str, Any]
) -> None:
    key_id, authorization = new_key(registry, staff, "credit_line")
    # The fragile policy is approved but nobody activated it: a key may name it, the server does not serve it.
    publish(registry, staff, FRAGILE_SOURCE, FRAGILE_CASES, activate=False)
    _, fragile_key = new_key(registry, staff, "fragile")
    wait_key_known(client, authorization, "credit_line")
    scoped = {"Authorization": authorization}
    for path in (DECIDE, f"{DECIDE}/batch"):
        body = {"inputs": [RECORD]} if path.endswith("batch") else {"input": RECORD}
        error = error_of(client.post(path, json=body, headers=scoped), 403, "permission_denied", "consumer_loan")
        assert key_id in error["message"]
    # The scope is checked before anything else: a policy that does not exist is as forbidden as any other.
    error_of(client.post("/v1/decisions/no_such_policy", json={"input": {}}, headers=headers), 403, "permission_denied")

    wait_key_known(client, fragile_key, "fragile")
    fragile = {"Authorization": fragile_key}
    record = {"amount": 1200, "months": 12}
    for response in (
        client.post("/v1/decisions/fragile", json={"input": record}, headers=fragile),
        client.post("/v1/decisions/fragile/batch", json={"inputs": [record]}, headers=fragile),
        client.get("/v1/policies/fragile", headers=fragile),
    ):
        error_of(response, 404, "not_found", "policy 'fragile' has no live deployment")
    assert client.get("/v1/policies", headers=fragile).get_json() == {"policies": []}
    for path in ("/v1/nothing", "/v2/decisions/consumer_loan", "/v1/decisions/a/b/c", "/"):
        error_of(client.get(path, headers=headers), 404, "not_found", f"no such endpoint: {path}")


def _requests_counted(client: FlaskClient) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = client.get("/metrics").get_data(as_text=True)
    counted: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "decide_requests_total":
                policy = sample.labels["policy"]
                counted[policy] = counted.get(policy, 0.0) + sample.value
    return counted


def test_a_policy_name_nobody_serves_never_becomes_a_metric_label(client: FlaskClient, headers: dict[str, str]) -> None:
    """The name in a path is the caller's text: a label per name would let any caller grow /metrics without
    bound (and a name could be anything, a personal value too). Every such request counts as "(not served)"."""
    before = _requests_counted(client)
    names = [f"applicant_AB{number:06d}" for number in range(40)]
    for name in names:
        error_of(client.post(f"/v1/decisions/{name}", json={"input": {}}, headers=headers), 403, "permission_denied")
    after = _requests_counted(client)
    assert not [policy for policy in after if policy.startswith("applicant_")]
    assert after["(not served)"] - before.get("(not served)", 0.0) == len(names)


# ----------------------------------------------------------------------------- 405, 413, 415


def test_a_wrong_method_is_a_405_naming_the_allowed_ones(client: FlaskClient, headers: dict[str, str]) -> None:
    decision = "/v1/decisions/01890a5d-ac96-774b-bcce-b302099a8057"
    wrong = [
        ("GET", f"{DECIDE}/batch", {"POST"}),
        ("PUT", DECIDE, {"POST", "GET"}),  # {policy} and {decision_id} share the path: GET reads a decision
        ("DELETE", decision, {"POST", "GET"}),
        ("POST", "/v1/policies", {"GET"}),
        ("PATCH", "/v1/policies/consumer_loan", {"GET"}),
        ("GET", f"{decision}/replay", {"POST"}),
        ("POST", "/healthz", {"GET"}),
        ("DELETE", "/v1/openapi.json", {"GET"}),
    ]
    for method, path, allowed in wrong:
        response = client.open(path, method=method, headers=headers)
        error_of(response, 405, "method_not_allowed", f"{method} is not allowed on {path}")
        assert allowed <= {item.strip() for item in response.headers["Allow"].split(",")}, (method, path)


def test_a_body_over_max_body_bytes_is_a_413(
    server_settings: dict[str, Any], headers: dict[str, str], tmp_path: Path
) -> None:
    limit = 4096
    padded = {"input": {**RECORD, "note": "x" * limit}}
    with running_client(server_settings, data_dir=str(tmp_path / "small"), max_body_bytes=limit) as client:
        assert post(client, headers, json.dumps({"input": RECORD})).status_code == 200
        for path in (DECIDE, f"{DECIDE}/batch", "/v1/decisions/01890a5d-ac96-774b-bcce-b302099a8057/replay"):
            error = error_of(post(client, headers, json.dumps(padded), path), 413, "body_too_large", str(limit))
            assert error["details"] == {"limit": limit}
        # Chunked, without a Content-Length (as gunicorn passes it on): not cut at the limit and misread.
        response = client.post(
            DECIDE,
            input_stream=io.BytesIO(json.dumps(padded).encode()),
            headers={**headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        error_of(response, 413, "body_too_large", str(limit))
        response = client.post(
            DECIDE,
            input_stream=io.BytesIO(json.dumps({"input": RECORD}).encode()),
            headers={**headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert response.status_code == 200


def test_a_body_that_is_not_json_is_a_415(client: FlaskClient, headers: dict[str, str]) -> None:
    body = json.dumps({"input": RECORD})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "text/json", "application/jsonl"):
        response = client.post(DECIDE, data=body, headers={**headers, "Content-Type": content_type})
        error_of(response, 415, "unsupported_media_type", f"not {content_type}")
    error_of(client.post(DECIDE, data=body, headers=headers), 415, "unsupported_media_type", "no content type")
    error_of(client.post(DECIDE, data={"input": "x"}, headers=headers), 415, "unsupported_media_type")
    for content_type in ("application/json; charset=utf-8", "Application/JSON"):
        assert client.post(DECIDE, data=body, headers={**headers, "Content-Type": content_type}).status_code == 200


# ----------------------------------------------------------------------------- 422


def test_input_errors_are_a_422_listing_every_problem_as_the_engine_does(
    client: FlaskClient, headers: dict[str, str], registry: Registry
) -> None:
    record = {**RECORD, "age": -1, "DebtRatio": "high", "NumberOfDependents": 25, "nickname": "Al"}
    del record["RevolvingUtilizationOfUnsecuredLines"]
    with pytest.raises(InputError) as raised:
        compiled("consumer_loan").decide(record, lists={"blacklist": []})
    expected = raised.value.to_json()["errors"]
    assert len(expected) == 5
    error = error_of(client.post(DECIDE, json={"input": record}, headers=headers), 422, "input", "5 problem(s)")
    assert error["details"]["errors"] == expected
    for problem in expected:
        assert problem["field"] in error["message"]
    decision_id = error["details"]["decision_id"]
    wait_logged(registry, [decision_id])
    logged = client.get(f"/v1/decisions/{decision_id}", headers=headers).get_json()
    assert (logged["status"], logged["outputs"], logged["error"]["kind"]) == ("input_error", None, "input")
    assert logged["error"]["details"]["errors"] == expected


def test_an_evaluation_error_is_a_422_naming_the_statement_or_with_a_fallback_a_degraded_answer(
    client: FlaskClient, registry: Registry, staff: dict[str, Any]
) -> None:
    assert publish(registry, staff, FRAGILE_SOURCE, FRAGILE_CASES) == 1
    _, authorization = new_key(registry, staff, "fragile")
    wait_key_known(client, authorization, "fragile")
    headers = {"Authorization": authorization}
    wait_served(client, headers, "fragile", 1)
    broken = {"amount": 1200, "months": 0}
    with pytest.raises(EvaluationError) as raised:
        compiler.compile_source(FRAGILE_SOURCE, "fragile.policy").decide(broken)
    expected = {name: value for name, value in raised.value.to_json().items() if name != "kind"}
    assert (expected["statement"], expected["item"], expected["output"]) == ("instalment", "rule P01", "monthly")

    response = client.post("/v1/decisions/fragile", json={"input": broken}, headers=headers)
    error = error_of(response, 422, "evaluation", "rule P01 in 'instalment': output 'monthly'")
    failed_id = error["details"].pop("decision_id")
    assert error["details"] == expected
    assert error["details"]["location"]["file"] == "fragile.policy"
    fine = client.post("/v1/decisions/fragile", json={"input": {"amount": 1200, "months": 12}}, headers=headers)
    assert fine.get_json()["outputs"] == {"monthly": 100, "reasons": []}

    # Version 2, the same rules, deployed with a fallback outcome: the failure is answered with it, marked.
    fallback = {"monthly": 0, "reasons": ["F01"]}
    source = FRAGILE_SOURCE.replace('title: "Instalment per month"', 'title: "Instalment per month, with fallback"')
    assert publish(registry, staff, source, FRAGILE_CASES, fallback=fallback) == 2
    assert wait_served(client, headers, "fragile", 2)["fallback"] == fallback
    response = client.post("/v1/decisions/fragile", json={"input": broken}, headers=headers)
    assert response.status_code == 200
    degraded = response.get_json()
    assert (degraded["degraded"], degraded["outputs"], degraded["version"]) == (True, fallback, 2)
    assert degraded["error"]["kind"] == "evaluation"
    assert degraded["error"]["details"]["statement"] == "instalment"
    fine = client.post("/v1/decisions/fragile", json={"input": {"amount": 1200, "months": 12}}, headers=headers)
    assert "degraded" not in fine.get_json() and fine.get_json()["outputs"]["monthly"] == 100

    wait_logged(registry, [failed_id, degraded["decision_id"]])
    failed = client.get(f"/v1/decisions/{failed_id}", headers=headers).get_json()
    assert (failed["status"], failed["outputs"], failed["error"]["kind"]) == ("evaluation_error", None, "evaluation")
    logged = client.get(f"/v1/decisions/{degraded['decision_id']}", headers=headers).get_json()
    assert (logged["status"], logged["outputs"], logged["reasons"]) == ("degraded", {"monthly": 0}, ["F01"])
    assert logged["error"]["details"]["item"] == "rule P01"


# ----------------------------------------------------------------------------- never a 500


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _with_deep_extra(depth: int) -> str:
    """A good record with an extra field nested `depth` deep, set aside by ignore_extra (so it is decided)."""
    body = {"input": {**RECORD, "extra": "@"}, "ignore_extra": True, "request_id": "deep extra"}
    return json.dumps(body).replace('"@"', _deep(depth))


# Bodies a careless or hostile caller may send: (body, the status expected). None of them is the server's fault.
NASTY: list[tuple[str | bytes, int]] = [
    ("[" * 200_000, 400),  # nested past the decoder's depth limit, and never closed
    (_deep(100_000), 400),
    ('{"input": ' + _deep(600) + "}", 400),
    ('{"input": {"age": ' + _deep(600) + "}}", 422),  # deeper than the log's encoder writes
    ('{"input": {"age": ' + _deep(600) + '}, "request_id": "deep"}', 422),
    (_with_deep_extra(300), 200),
    (json.dumps({"input": {**RECORD, "age": 2**70}}), 422),  # an int past 64 bits
    (json.dumps({"input": {**RECORD, "national_id": -(2**80)}, "request_id": "big"}), 422),
    (json.dumps({"input": {**RECORD, "extra": 2**100}, "ignore_extra": True}), 200),
    (json.dumps({"inputs": [{"age": 2**70}, {"x": [[[[1]]]]}]}), 200),
    (json.dumps({"input": {**RECORD, "age": 1.7e308, "DebtRatio": -0.0}}), 422),
    (json.dumps({"input": {"\u202e\u0000\U0001f600": "\ufeff", "__proto__": {}, "'; DROP TABLE decisions": 1}}), 422),
    (json.dumps({"input": {**RECORD, "national_id": "\u0000" * 50 + "\U0010ffff"}}), 200),
    (json.dumps({"input": {**RECORD, "national_id": "é" * 100_000}}), 200),
    (json.dumps({"input": {f"field{n}": n for n in range(10_000)}}), 422),
    (b"\x00\x01\x02\xff\xfe", 400),
    (b"\xc0\xaf", 400),  # an overlong UTF-8 encoding
    (b'{"input": {"a": "\\ud800"}}', 400),  # a lone surrogate
    (b"\xef\xbb\xbf" + json.dumps({"input": RECORD}).encode(), 200),  # a byte order mark is accepted
    ("null", 400),
    ("[]", 400),
    ('"\\u0000"', 400),
    ("1e999999", 400),
]


def test_nothing_a_caller_sends_is_a_500_or_a_traceback(
    client: FlaskClient, headers: dict[str, str], registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="decide")
    logged = []
    for body, status in NASTY:
        path = f"{DECIDE}/batch" if (isinstance(body, str) and body.startswith('{"inputs"')) else DECIDE
        response = post(client, headers, body, path)
        text = response.get_data(as_text=True)
        assert response.status_code == status, (repr(body)[:80], response.status_code, text[:300])
        assert response.mimetype == "application/json" and "Traceback" not in text and '"internal"' not in text
        answer = response.get_json()
        if status >= 400:
            assert set(answer["error"]) == {"kind", "message", "details"}
            logged.extend([answer["error"]["details"].get("decision_id")])
        else:
            logged.extend(item.get("decision_id") for item in answer.get("results", [answer]))
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    # Every decision among them, however odd its input, was written to the spool and shipped to the log.
    wait_logged(registry, [decision_id for decision_id in logged if decision_id])
