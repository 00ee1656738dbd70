"""Idempotent decisions with the Flask test client, on both registry backends: a `request_id` sent again with the
same body gets the stored response (the same decision, header `Idempotent-Replayed: true`) and no second
decision in the log — for a refused input too; with another body it is a 409; ids are per API key; and
concurrent duplicates all get the one decision that won.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from registry import Registry
from tests.server.api_support import error_of, first_good_input, new_key, wait_key_known
from tests.server.conftest import wait_logged

DECIDE = "/v1/decisions/consumer_loan"
RECORD = first_good_input("consumer_loan")


def logged_for(registry: Registry, request_id: str) -> list[str]:
    """The ids of the decisions logged for `request_id`, read from the table itself."""
    with registry.read() as session:
        rows = session.connection().execute(
            text("SELECT decision_id FROM decisions WHERE request_id = :request_id"), {"request_id": request_id}
        )
        return sorted(row[0] for row in rows)


def test_a_repeated_request_gets_the_stored_response_and_makes_no_second_decision(
    client: FlaskClient, headers: dict[str, str], registry: Registry
) -> None:
    body = {"input": RECORD, "as_of": "2026-01-05", "trace": True, "request_id": "loan-42"}
    first = client.post(DECIDE, json=body, headers=headers)
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    # The same body with its keys in another order is the same request.
    reordered = dict(reversed(list(body.items())))
    reordered["input"] = dict(reversed(list(RECORD.items())))
    for again in (body, reordered, body):
        replayed = client.post(DECIDE, json=again, headers=headers)
        assert replayed.status_code == 200
        assert replayed.headers["Idempotent-Replayed"] == "true"
        assert replayed.get_data() == first.get_data()  # the stored bytes: the same id, outputs and timings
    decision_id = first.get_json()["decision_id"]
    wait_logged(registry, [decision_id])
    assert logged_for(registry, "loan-42") == [decision_id]


def test_a_repeated_refusal_is_the_stored_refusal(
    client: FlaskClient, headers: dict[str, str], registry: Registry
) -> None:
    # A refused input is a logged decision like any other: a retry is answered from the store, not decided again.
    body = {"input": {**RECORD, "age": -1}, "request_id": "bad-age"}
    first = client.post(DECIDE, json=body, headers=headers)
    decision_id = error_of(first, 422, "input", "age")["details"]["decision_id"]
    again = client.post(DECIDE, json=body, headers=headers)
    assert (again.status_code, again.headers["Idempotent-Replayed"]) == (422, "true")
    assert again.get_data() == first.get_data()
    wait_logged(registry, [decision_id])
    assert logged_for(registry, "bad-age") == [decision_id]
    # A request refused before it reached the engine was never a decision: nothing is stored for it.
    refused = client.post(DECIDE, json={"input": [], "request_id": "not-a-record"}, headers=headers)
    error_of(refused, 400, "invalid_request")
    retried = client.post(DECIDE, json={"input": RECORD, "request_id": "not-a-record"}, headers=headers)
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers


def test_the_same_id_with_another_body_is_a_409_and_ids_belong_to_their_key(
    client: FlaskClient, headers: dict[str, str], registry: Registry, staff: dict[str, Any]
) -> None:
    first = client.post(DECIDE, json={"input": RECORD, "request_id": "shared"}, headers=headers).get_json()
    for other in (
        {"input": {**RECORD, "age": 41}, "request_id": "shared"},
        {"input": RECORD, "request_id": "shared", "trace": True},
        {"input": RECORD, "request_id": "shared", "as_of": "2026-01-01"},
    ):
        error = error_of(client.post(DECIDE, json=other, headers=headers), 409, "conflict", "'shared'")
        assert error["details"] == {"decision_id": first["decision_id"]}
    # Another calling system may use the same id for its own request.
    _, authorization = new_key(registry, staff, "consumer_loan")
    wait_key_known(client, authorization, "consumer_loan")
    other_key = {"Authorization": authorization}
    theirs = client.post(DECIDE, json={"input": {**RECORD, "age": 41}, "request_id": "shared"}, headers=other_key)
    assert theirs.status_code == 200 and "Idempotent-Replayed" not in theirs.headers
    assert theirs.get_json()["decision_id"] != first["decision_id"]
    again = client.post(DECIDE, json={"input": {**RECORD, "age": 41}, "request_id": "shared"}, headers=other_key)
    assert again.get_json()["decision_id"] == theirs.get_json()["decision_id"]
    # Without a request id every call is a new decision.
    ids = {client.post(DECIDE, json={"input": RECORD}, headers=headers).get_json()["decision_id"] for _ in range(3)}
    assert len(ids) == 3


def test_concurrent_duplicates_all_get_the_one_decision_that_won(
    app: Flask, client: FlaskClient, headers: dict[str, str], registry: Registry
) -> None:
    client.get("/readyz")  # start the service before the threads race
    threads, barrier = 8, threading.Barrier(8)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def call() -> None:
        mine = app.test_client()  # a client per thread, as separate connections would be
        barrier.wait()
        response = mine.post(DECIDE, json={"input": RECORD, "request_id": "race"}, headers=headers)
        with lock:
            answers.append((response.status_code, response.get_json()["decision_id"]))

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert len(answers) == threads
    assert {status for status, _ in answers} == {200}
    (winner,) = {decision_id for _, decision_id in answers}
    # Requests that raced past the lookup were evaluated (and logged as made) before the first response was
    # stored; every caller was still given the stored one.
    wait_logged(registry, [winner])
    assert winner in logged_for(registry, "race")
    replayed = client.post(DECIDE, json={"input": RECORD, "request_id": "race"}, headers=headers)
    assert replayed.get_json()["decision_id"] == winner
