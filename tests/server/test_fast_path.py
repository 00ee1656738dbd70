"""The decision endpoint's fast path (`DecisionFastPath`, WSGI in front of Flask) against Flask's own route.

Each request is sent twice on one running service: once through the app as gunicorn calls it (the fast path takes
it), once straight to the Flask WSGI app behind it (the route `POST /v1/decisions/<policy>`). The two answers must
be the same — status, content type, extra headers and body, once the decision id and the timings (which differ
between any two decisions) are set aside. A counter on the Flask app proves which path answered: the common
requests never reach Flask, and what the fast path does not take (other methods and paths, chunked or too large
bodies, non-ASCII or nested paths) still gets Flask's answer.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import pytest
from werkzeug.test import Client, TestResponse

from decision_server.app import DecisionFastPath
from registry.demo import DemoSeed
from tests.server.test_errors import RECORD

DECIDE = "/v1/decisions/consumer_loan"
VARIABLE = {"decision_id", "timings"}


class CountingApp:
    """A WSGI app counted on every call."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app, self.calls = app, 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.calls += 1
        return self.app(environ, start_response)


@pytest.fixture
def paths(app: Any) -> tuple[Client, Client, CountingApp]:
    """(a client of the whole app, a client of the Flask app alone, the counter on the Flask app)."""
    fast = app.wsgi_app
    assert isinstance(fast, DecisionFastPath)
    counted = CountingApp(fast.flask_wsgi)
    fast.flask_wsgi = counted
    return Client(app), Client(counted), counted


def _comparable(response: TestResponse) -> tuple[int, str | None, dict[str, str], Any]:
    body = orjson.loads(response.get_data())
    if isinstance(body, dict):
        body = {name: value for name, value in body.items() if name not in VARIABLE}
        if isinstance(body.get("error"), dict):
            details = body["error"].get("details", {})
            details.pop("decision_id", None)
            details.pop("incident", None)
    extra = {name: value for name, value in response.headers.items() if name not in ("Content-Type", "Content-Length")}
    assert response.headers["Content-Length"] == str(len(response.get_data()))
    return response.status_code, response.headers.get("Content-Type"), extra, body


def _key(seeded: DemoSeed) -> str:
    return f"Bearer {seeded.api_key}"


# (name, headers beyond the key, body): every one answered by the fast path.
FAST_CASES: list[tuple[str, dict[str, str], bytes]] = [
    ("a decision", {}, orjson.dumps({"input": RECORD})),
    ("with its trace", {}, orjson.dumps({"input": RECORD, "trace": True, "as_of": "2026-01-15"})),
    (
        "a charset in the content type",
        {"Content-Type": "Application/JSON; charset=utf-8"},
        orjson.dumps({"input": RECORD}),
    ),
    ("malformed JSON", {}, b'{"input": {"age": 40,}}'),
    ("a repeated key", {}, b'{"input": {"age": 40, "age": 41}}'),
    ("a wrong content type", {"Content-Type": "text/plain"}, orjson.dumps({"input": RECORD})),
    ("no content type", {"Content-Type": ""}, orjson.dumps({"input": RECORD})),
    ("an input error", {}, orjson.dumps({"input": {**RECORD, "age": "forty"}})),
    ("an unknown envelope field", {}, orjson.dumps({"input": RECORD, "extra": 1})),
    ("no key", {"Authorization": ""}, orjson.dumps({"input": RECORD})),
    ("a wrong scheme", {"Authorization": "Basic abc"}, orjson.dumps({"input": RECORD})),
    ("an unknown key", {"Authorization": "Bearer dk_000000000000.nope"}, orjson.dumps({"input": RECORD})),
    ("a big integer", {}, json.dumps({"input": {**RECORD, "MonthlyIncome": 2**70}}).encode()),
]


@pytest.mark.parametrize("name, extra_headers, body", FAST_CASES, ids=[case[0] for case in FAST_CASES])
def test_the_fast_path_answers_as_the_flask_route_does(
    paths: tuple[Client, Client, CountingApp], seeded: DemoSeed, name: str, extra_headers: dict[str, str], body: bytes
) -> None:
    fast, flask, counted = paths
    headers = {"Authorization": _key(seeded), "Content-Type": "application/json", **extra_headers}
    headers = {header: value for header, value in headers.items() if value}
    for path in (DECIDE, "/v1/decisions/no_such_policy"):
        through_fast = fast.post(path, data=body, headers=headers)
        assert counted.calls == 0, "the fast path handed the request to Flask"
        through_flask = flask.post(path, data=body, headers=headers)
        assert counted.calls == 1
        counted.calls = 0
        assert _comparable(through_fast) == _comparable(through_flask)


def test_an_idempotent_retry_is_replayed_by_either_path(
    paths: tuple[Client, Client, CountingApp], seeded: DemoSeed
) -> None:
    fast, flask, counted = paths
    headers = {"Authorization": _key(seeded), "Content-Type": "application/json"}
    body = orjson.dumps({"input": RECORD, "request_id": "fast-path-1"})
    first = fast.post(DECIDE, data=body, headers=headers)
    again_fast, again_flask = (
        fast.post(DECIDE, data=body, headers=headers),
        flask.post(DECIDE, data=body, headers=headers),
    )
    assert first.status_code == 200 and counted.calls == 1
    # The stored response, byte for byte, decision id and timings included, by either path.
    assert again_fast.get_data() == again_flask.get_data() == first.get_data()
    assert again_fast.headers["Idempotent-Replayed"] == again_flask.headers["Idempotent-Replayed"] == "true"
    other = orjson.dumps({"input": {**RECORD, "age": 33}, "request_id": "fast-path-1"})
    assert _comparable(fast.post(DECIDE, data=other, headers=headers)) == _comparable(
        flask.post(DECIDE, data=other, headers=headers)
    )


def test_what_the_fast_path_does_not_take_reaches_flask(
    paths: tuple[Client, Client, CountingApp], seeded: DemoSeed, app: Any
) -> None:
    fast, _, counted = paths
    headers = {"Authorization": _key(seeded), "Content-Type": "application/json"}
    body = orjson.dumps({"input": RECORD})
    limit = app.config["MAX_CONTENT_LENGTH"]

    requests: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", DECIDE, {}, 404),  # GET /v1/decisions/<id>: not a decision id
        ("PUT", DECIDE, {"data": body}, 405),
        ("POST", f"{DECIDE}/", {"data": body}, 404),
        ("POST", "/v1/decisions/", {"data": body}, 404),
        ("POST", "/v1/decisions/kredit_\u00e9", {"data": body}, 403),  # a name the key may not call
        ("POST", f"{DECIDE}/batch", {"json": {"inputs": [RECORD]}}, 200),
        ("POST", DECIDE, {"data": b" " * (limit + 1)}, 413),
        (
            "POST",
            DECIDE,
            {
                "input_stream": io.BytesIO(body),
                "headers": {**headers, "Transfer-Encoding": "chunked"},
                "environ_overrides": {"wsgi.input_terminated": True},  # as gunicorn passes a chunked body on
            },
            200,
        ),
    ]
    for method, path, options, status in requests:
        options = {"headers": headers, **options}
        calls = counted.calls
        response = fast.open(path, method=method, **options)
        assert counted.calls == calls + 1, (method, path)
        assert response.status_code == status, (method, path, response.get_data()[:300])
        assert response.headers["Content-Type"] == "application/json"
