"""The Flask application: `create_app(config)` builds the decision API (and, in a later release, mounts the
admin UI in the same factory).

Input: a `ServerConfig` or a mapping of settings (layered over DECIDE_SERVER_* variables and the defaults).
Output: a Flask app whose views only move bytes: each decodes the request, calls the `DecisionService`, and
encodes the `Reply` or the `ApiError` with orjson (`answer`). Every route is in `routes`; every error, from a view
or from Werkzeug itself (unknown path, wrong method, body too large), is the JSON body `{"error": {...}}` — never
a traceback, never an HTML page.

The decision endpoint's common case skips Flask: `DecisionFastPath`, in front of the Flask WSGI app, answers a
`POST /v1/decisions/<policy>` with a Content-Length within the limit by calling the same `answer` with the
request's parts read from the WSGI environ — no request context, URL map or Request/Response objects, which cost
a bare Flask endpoint more than the engine costs a decision. Anything else (another method or path, a chunked or
too large body, a path that is not ASCII) goes to Flask, which answers it as before; the answers are the same
bytes either way (tests/server/test_fast_path.py).
"""

from __future__ import annotations

import http
import logging
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from compiler.evaluate import implementation
from compiler.evaluate.json_input import JsonInputError, loads
from decision_server import metrics, openapi
from decision_server.config import ServerConfig, load_config
from decision_server.errors import ApiError, from_json
from decision_server.plugins import Plugins
from decision_server.service import DecisionService, Reply

log = logging.getLogger("decide.server")

_HTTP_KINDS = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large", 400: "invalid_request"}


JSON = "application/json"
Handler = Callable[..., Reply]
_REASONS = {status.value: f"{status.value} {status.phrase}" for status in http.HTTPStatus}


def _encode(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    data = orjson.dumps(body)  # a stored (idempotent) response is an orjson.Fragment: its bytes as they were
    response = Response(data, status=status, mimetype=JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _error_response(error: ApiError) -> Response:
    return _encode(error.status, error.body())


def internal_error(exc: BaseException) -> ApiError:
    """The answer to a bug: the traceback goes to the server log, without the exception's message (it could quote
    an input); the caller gets an incident number to quote."""
    incident = str(uuid.uuid4())
    log.error(
        "internal error %s: %s\n%s", incident, type(exc).__name__, "".join(traceback.format_tb(exc.__traceback__))
    )
    return ApiError("internal", f"an internal error occurred (incident {incident})", {"incident": incident})


def _decoded(mimetype: str, data: bytes | None, required: bool) -> Any:
    """The request's JSON body, strictly decoded (duplicate keys, NaN and big integers are errors); `data` is None
    when the request has no body at all."""
    if data is None and not required:
        return None
    if mimetype != JSON:
        raise ApiError(
            "unsupported_media_type", f"send the body as application/json, not {mimetype or 'no content type'}"
        )
    if not data and not required:
        return None
    try:
        return loads(data or b"")
    except JsonInputError as exc:
        raise from_json(exc) from None


def answer(
    service: DecisionService,
    handler: Handler,
    parameters: Mapping[str, str],
    authorization: str | None,
    mimetype: str,
    data: bytes | None,
    needs_body: bool,
    metric: bool,
    started: float,
    method: str = "POST",
) -> tuple[int, bytes, Mapping[str, str]]:
    """One API request, from its parts to the response's status, bytes and extra headers: the key, the body (a
    POST's; `data` is None when it sent none), the handler, the encoding, and the request's metrics."""
    reply = None
    try:
        key = service.authenticate(authorization)
        body = _decoded(mimetype, data, needs_body) if method == "POST" else None
        reply = handler(key, body=body, started=started, **parameters)
        status, encoded, headers = reply.status, orjson.dumps(reply.body), reply.headers
    except ApiError as exc:
        status, encoded, headers = exc.status, orjson.dumps(exc.body()), {}
    if metric:
        body = reply.body if reply is not None and isinstance(reply.body, dict) else {}
        # The path's policy name is the caller's text: only a served policy's name becomes a label.
        policy = parameters.get("policy", "")
        label = policy if policy in service.live.snapshot.policies else "(not served)"
        metrics.record_request(
            label, str(body.get("version", "")), body.get("arm", ""), status, time.perf_counter() - started
        )
    return status, encoded, headers


def _request_data() -> bytes | None:
    """The Flask request's body (None when it has none), refusing a chunked one cut at the size limit."""
    if request.content_length is None and not request.data:
        return None
    data = request.get_data(cache=False)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        # A body without a Content-Length (chunked) is read up to the limit and silently cut there: one that
        # reaches it is too large, not malformed JSON.
        raise RequestEntityTooLarge()
    return data


class DecisionFastPath:
    """WSGI middleware: the common decision request answered without Flask (see the module docstring)."""

    PREFIX = "/v1/decisions/"

    def __init__(
        self, flask_wsgi: Callable[..., Iterable[bytes]], service: DecisionService, handler: Handler, limit: int
    ):
        self.flask_wsgi, self.service, self.handler, self.limit = flask_wsgi, service, handler, limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        length = environ.get("CONTENT_LENGTH", "")
        if (
            environ.get("REQUEST_METHOD") != "POST"
            or not path.startswith(self.PREFIX)
            or not length.isdigit()
            or int(length) > self.limit
            or "HTTP_TRANSFER_ENCODING" in environ  # chunked: the length (if any) is not the body's (RFC 9112)
        ):
            return self.flask_wsgi(environ, start_response)
        policy = path[len(self.PREFIX) :]
        if not policy or "/" in policy or not policy.isascii():
            return self.flask_wsgi(environ, start_response)
        self.service.start()
        started = time.perf_counter()
        try:
            data = environ["wsgi.input"].read(int(length))
            mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
            status, encoded, headers = answer(
                self.service,
                self.handler,
                {"policy": policy},
                environ.get("HTTP_AUTHORIZATION"),
                mimetype,
                data,
                needs_body=True,
                metric=True,
                started=started,
            )
        except Exception as exc:
            error = internal_error(exc)
            status, encoded, headers = error.status, orjson.dumps(error.body()), {}
        start_response(
            _REASONS.get(status, str(status)),
            [("Content-Type", JSON), ("Content-Length", str(len(encoded))), *headers.items()],
        )
        return [encoded]


def create_app(
    config: ServerConfig | Mapping[str, Any] | None = None,
    *,
    admin: bool = False,
    plugins: Plugins | None = None,
) -> Flask:
    """The decision server's Flask app. Nothing connects to the database here (gunicorn preloads the app and
    forks): the service starts in each worker after fork, or on the first request."""
    settings = load_config(config)
    app = Flask("decision_server")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["DECIDE"] = settings
    service = DecisionService(settings, plugins)
    app.extensions["decide"] = service

    def decision_view(handler: Handler, needs_body: bool = True, metric: bool = False):
        def view(**parameters: str) -> Response:
            service.start()
            started = time.perf_counter()
            data = _request_data() if request.method == "POST" else None
            status, encoded, headers = answer(
                service,
                handler,
                parameters,
                request.headers.get("Authorization"),
                request.mimetype,
                data,
                needs_body,
                metric,
                started,
                request.method,
            )
            response = Response(encoded, status=status, mimetype=JSON)
            for name, value in headers.items():
                response.headers[name] = value
            return response

        view.__name__ = handler.__name__
        return view

    def decide(key, body, started, policy):
        return service.decide(key, policy, body, started)

    def decide_batch(key, body, started, policy):
        return service.decide_batch(key, policy, body, started)

    def get_decision(key, body, started, decision_id):
        return service.get_logged(key, decision_id)

    def replay(key, body, started, decision_id):
        return service.replay(key, decision_id, body)

    def list_policies(key, body, started):
        return service.list_policies(key)

    def get_policy(key, body, started, policy):
        return service.describe_policy(key, policy)

    routes = [
        ("/v1/decisions/<policy>", "POST", decision_view(decide, metric=True)),
        ("/v1/decisions/<policy>/batch", "POST", decision_view(decide_batch, metric=True)),
        ("/v1/decisions/<decision_id>", "GET", decision_view(get_decision)),
        ("/v1/decisions/<decision_id>/replay", "POST", decision_view(replay, needs_body=False)),
        ("/v1/policies", "GET", decision_view(list_policies)),
        ("/v1/policies/<policy>", "GET", decision_view(get_policy)),
    ]
    for rule, method, view in routes:
        app.add_url_rule(rule, endpoint=f"{method.lower()}_{view.__name__}", view_func=view, methods=[method])

    @app.get("/v1/openapi.json")
    def openapi_document() -> Response:
        return _encode(200, openapi.document())

    @app.get("/healthz")
    def healthz() -> Response:
        return _encode(200, {"status": "up", "engine": implementation.IMPLEMENTATION})

    @app.get("/readyz")
    def readyz() -> Response:
        service.start()
        reply = service.readiness()
        return _encode(reply.status, reply.body)

    @app.get("/metrics")
    def metrics_view() -> Response:
        data, content_type = metrics.exposition()
        return Response(data, mimetype=content_type.split(";")[0])

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return _error_response(exc)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        return _error_response(
            ApiError(
                "body_too_large",
                f"the body is larger than {settings.max_body_bytes} bytes",
                {"limit": settings.max_body_bytes},
            )
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        kind = _HTTP_KINDS.get(status, "invalid_request" if status < 500 else "internal")
        message = {404: f"no such endpoint: {request.path}", 405: f"{request.method} is not allowed on {request.path}"}
        response = _error_response(ApiError(kind, message.get(status, exc.name), status=status))
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # a 405 names the methods that are allowed
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        return _error_response(internal_error(exc))

    if admin:
        raise NotImplementedError("the admin UI is not part of this release")
    app.wsgi_app = DecisionFastPath(app.wsgi_app, service, decide, settings.max_body_bytes)  # type: ignore[method-assign]
    return app
