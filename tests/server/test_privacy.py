"""Personal data through the HTTP API, on both registry backends: a `pii` input's value never appears in anything
the server wrote — its responses (decisions, errors, conflicts, batches, the logged decision, replays), the
decision log's rows and every other table, the spool files in its data directory, /metrics, and its own log
records — not even in the errors about a bad personal value. The value is sealed with the configured key, which
unseals it (and replay, which uses it, decides as the original did).

Values are grepped as written and, for numbers, as whole tokens (sealed tokens, which are base64, are removed
first: a short run of digits can occur in one by chance). The sealed values are opened here by the documented
format (HKDF-SHA256 of the key, AES-256-GCM, the decision id as associated data), not by the server's code.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlmodel import SQLModel
from werkzeug.test import TestResponse

from registry import Registry
from tests.server.api_support import (
    error_of,
    first_good_input,
    new_key,
    publish,
    running_client,
    wait_key_known,
    wait_served,
)
from tests.server.conftest import wait_logged

DECIDE = "/v1/decisions/consumer_loan"
RECORD = first_good_input("consumer_loan")
SECRET_ID = "ZQ7731905544"  # a national id on no list and in no policy: it may appear nowhere
LISTED_ID = "XX999999"  # on the demo blacklist (so in the list tables), never in what the server writes
WRONG_TYPE_ID = 731_905_544_123  # a national id sent as a number: refused, and never quoted
SEALED_TOKEN = re.compile(r"(?:v2\.|gAAAAA)[A-Za-z0-9_=-]+")


def leaked(value: Any, corpus: str) -> bool:
    """Whether `value` occurs in `corpus` (numbers as a whole token), sealed tokens aside."""
    corpus = SEALED_TOKEN.sub("<sealed>", corpus)
    if isinstance(value, int):
        return re.search(rf"(?<![\w.]){value}(?![\w.])", corpus) is not None
    return str(value) in corpus or json.dumps(value)[1:-1] in corpus


def database_text(registry: Registry, tables: Iterable[str] | None = None) -> str:
    """Every row of every table (or of `tables`), as text."""
    wanted = set(tables) if tables is not None else None
    chunks = []
    with registry.read() as session:
        for table in SQLModel.metadata.sorted_tables:
            if wanted is None or table.name in wanted:
                chunks.extend(repr(tuple(row)) for row in session.connection().execute(select(table)))
    return "\n".join(chunks)


def files_text(directory: Path) -> str:
    return "\n".join(path.read_bytes().decode("utf-8", "replace") for path in directory.rglob("*") if path.is_file())


def logs_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records)


def response_text(response: TestResponse) -> str:
    return f"{dict(response.headers)} {response.get_data(as_text=True)}"


def test_a_personal_value_is_sealed_and_never_written_in_plain(
    server_settings: dict[str, Any],
    headers: dict[str, str],
    registry: Registry,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="decide")
    key = Fernet.generate_key().decode()
    spool_phase = tmp_path / "spooling"
    written: list[str] = []
    mine = {**RECORD, "national_id": SECRET_ID}
    listed = {**RECORD, "national_id": LISTED_ID}

    # Phase 1: nothing is shipped yet (an hour's interval), so every decision is still in the spool's files;
    # stopping the app ships them.
    with running_client(server_settings, data_dir=str(spool_phase), pii_key=key, ship_interval_seconds=3600) as client:
        calls: list[tuple[str, dict[str, Any]]] = [
            (DECIDE, {"input": mine, "trace": True, "request_id": "p-1"}),
            (DECIDE, {"input": mine, "trace": True, "request_id": "p-1"}),  # the stored response
            (DECIDE, {"input": {**mine, "age": 30}, "request_id": "p-1"}),  # a conflict
            (DECIDE, {"input": listed, "trace": True}),
            (DECIDE, {"input": {**mine, "age": -1, "DebtRatio": "x"}}),
            (DECIDE, {"input": {**RECORD, "national_id": WRONG_TYPE_ID, "age": 200}}),
            (DECIDE, {"input": {**RECORD, "national_id": [SECRET_ID]}}),
            (DECIDE, {"input": {**mine, "nickname": "Al"}}),
            (f"{DECIDE}/batch", {"inputs": [mine, {**mine, "age": "x"}, listed], "trace": True}),
        ]
        answers = []
        for path, body in calls:
            response = client.post(path, json=body, headers=headers)
            assert response.status_code < 500
            answers.append(response)
            written.append(response_text(response))
        assert [response.status_code for response in answers] == [200, 200, 409, 200, 422, 422, 422, 422, 200]
        assert answers[1].headers["Idempotent-Replayed"] == "true"
        spooled = files_text(spool_phase)
        written.append(spooled)
        written.append(client.get("/metrics").get_data(as_text=True))
    mine_id, listed_id = answers[0].get_json()["decision_id"], answers[3].get_json()["decision_id"]
    decision_ids = [mine_id, listed_id] + [
        answer.get_json()["error"]["details"]["decision_id"] for answer in answers[4:8]
    ]
    decision_ids += [result["decision_id"] for result in answers[8].get_json()["results"]]
    assert all(decision_id in spooled for decision_id in decision_ids)  # the files searched hold them all
    wait_logged(registry, decision_ids)

    # Phase 2: the log as callers read it back, and replayed with the sealed values.
    with running_client(server_settings, data_dir=str(tmp_path / "reading"), pii_key=key) as client:
        for decision_id in decision_ids:
            response = client.get(f"/v1/decisions/{decision_id}", headers=headers)
            assert response.status_code == 200
            written.append(response_text(response))
        shown = client.get(f"/v1/decisions/{mine_id}", headers=headers).get_json()
        assert shown["record"]["national_id"] == "*" * 8 + SECRET_ID[-4:]
        replay = client.post(f"/v1/decisions/{listed_id}/replay", headers=headers)
        written.append(response_text(replay))
        replayed = replay.get_json()
        # Only the real national id is on the blacklist: the replay had it, unsealed, and declined again.
        assert replayed["replayed"]["outputs"]["reasons"] == ["K01"] == replayed["original"]["outputs"]["reasons"]
        assert replayed["difference"]["same"] is True
        written.append(response_text(client.post(f"/v1/decisions/{mine_id}/replay", json={}, headers=headers)))
        written.append(client.get("/metrics").get_data(as_text=True))
    written.append(logs_text(caplog))

    everything = "\n".join([*written, database_text(registry)])
    assert leaked(SECRET_ID, json.dumps(calls)) and leaked(WRONG_TYPE_ID, json.dumps(calls))  # the search works
    assert not leaked(SECRET_ID, everything)
    assert not leaked(WRONG_TYPE_ID, everything)
    assert not leaked(headers["Authorization"].split(".")[-1], everything)  # nor the API key's secret (its id is)
    # The listed id is in the list tables by design; what the server wrote must not have it.
    served = "\n".join([*written, database_text(registry, {"decisions", "idempotency_keys"})])
    assert not leaked(LISTED_ID, served)

    # What is sealed is the value itself, under the configured key (and only the personal field).
    with registry.read() as session:
        result = session.connection().execute(
            text("SELECT decision_id, sealed_pii FROM decisions WHERE decision_id IN (:mine, :listed)"),
            {"mine": mine_id, "listed": listed_id},
        )
        rows = {decision_id: sealed for decision_id, sealed in result}
    assert opened(key, rows[mine_id], mine_id) == {"national_id": SECRET_ID}
    assert opened(key, rows[listed_id], listed_id) == {"national_id": LISTED_ID}


def opened(key: str, token: str, decision_id: str) -> Any:
    """A v2 token opened by its documented format (docs/server.md), independently of decision_server.sealing."""
    assert token.startswith("v2.")
    raw = base64.urlsafe_b64decode(token[3:])
    aes_key = HKDF(hashes.SHA256(), 32, None, b"decide decision-log pii seal v2").derive(base64.urlsafe_b64decode(key))
    return json.loads(AESGCM(aes_key).decrypt(raw[:12], raw[12:], decision_id.encode()))


# The personal inputs of this policy have constraints, so a bad value gets a message of its own.
PROBE_SOURCE = """\
policy pii_probe:
    title: "Personal inputs with constraints"
    kind: generic

input:
    customer_no: int pii in [1..999_999]
    email: string pii in {"a@example.com", "b@example.com"}
    amount: number

output:
    ok: bool = false

rules r (first):
    rule R1 "A known customer with a positive amount":
        when amount > 0 and customer_no > 0 and email is not missing
        then ok = true
"""
PROBE_CASES = [
    {"name": "ok", "input": {"customer_no": 5, "email": "a@example.com", "amount": 1}, "expect": {"ok": True}},
]


def test_errors_about_bad_personal_values_never_quote_them(
    client: FlaskClient,
    headers: dict[str, str],
    registry: Registry,
    staff: dict[str, Any],
    server_settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="decide")
    publish(registry, staff, PROBE_SOURCE, PROBE_CASES)
    _, authorization = new_key(registry, staff, "pii_probe")
    wait_key_known(client, authorization, "pii_probe")
    probe = {"Authorization": authorization}
    wait_served(client, probe, "pii_probe", 1)
    secrets: list[Any] = ["SECRET-1234-XYZ", "leak.me@example.org", 73_519_020, 654_321]
    bad = [
        {"customer_no": "SECRET-1234-XYZ", "email": "leak.me@example.org", "amount": 1},
        {"customer_no": 73_519_020, "email": ["leak.me@example.org"], "amount": "x"},
        {"customer_no": 654_321.5, "email": {"v": "leak.me@example.org"}, "amount": 1},
        {"customer_no": 654_321, "email": "leak.me@example.org", "amount": 1},
    ]
    written, logged = [], []
    for record in bad:
        response = client.post("/v1/decisions/pii_probe", json={"input": record}, headers=probe)
        error = error_of(response, 422, "input", "email")
        assert ("customer_no" in error["message"]) is (record["customer_no"] != 654_321)
        written.append(response_text(response))
        logged.append(error["details"]["decision_id"])
    fine = {"customer_no": 654_321, "email": "b@example.com", "amount": 2}
    good = client.post("/v1/decisions/pii_probe", json={"input": fine}, headers=probe)
    assert good.status_code == 200 and good.get_json()["outputs"]["ok"] is True
    logged.append(good.get_json()["decision_id"])
    written.append(response_text(good))
    # And consumer_loan's national id given as other types than a string.
    for wrong in (WRONG_TYPE_ID, [SECRET_ID], {"id": SECRET_ID}, True):
        response = client.post(DECIDE, json={"input": {**RECORD, "national_id": wrong}}, headers=headers)
        assert error_of(response, 422, "input", "national_id")["details"]["errors"][0]["code"] == "wrong_type"
        written.append(response_text(response))
    wait_logged(registry, logged)
    for decision_id in logged:
        written.append(response_text(client.get(f"/v1/decisions/{decision_id}", headers=probe)))
    written.append(client.get("/metrics").get_data(as_text=True))
    written.append(files_text(Path(server_settings["data_dir"])))
    written.append(logs_text(caplog))
    # The policy's own text names its allowed emails (so do its messages); everything the server keeps is searched.
    tables = {table.name for table in SQLModel.metadata.sorted_tables} - {"versions", "drafts"}
    everything = "\n".join([*written, database_text(registry, tables)])
    for value in [*secrets, SECRET_ID, WRONG_TYPE_ID]:
        assert not leaked(value, everything), value
