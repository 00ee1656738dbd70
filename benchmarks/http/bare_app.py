"""The floor for the decision endpoint: a bare Flask app that does only what any JSON endpoint must.

Input: POST /v1/decisions/<policy> with a JSON body. Output: the body parsed with orjson (a malformed one is a
400), then a fixed answer — the bytes of the file named by $BARE_ANSWER_FILE (`run.py` puts a real response of the
decision server there, so both send the same number of bytes), else a fixed decision of about the same size.
`GET /readyz` answers 200. `python -m benchmarks.http.bare_app --port P` serves it under the decision server's
gunicorn configuration (`GUNICORN_OPTIONS`: gthread, workers = cores + 1, 2 threads, preloaded), as `run.py` does.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import orjson
from flask import Flask, Response, request

_FALLBACK = orjson.dumps(
    {
        "decision_id": "0190f3a2-7b1c-7d3e-8f4a-1b2c3d4e5f60",
        "policy": "consumer_loan",
        "version": 1,
        "arm": "champion",
        "outputs": {"decision": "approve", "limit": 24000, "apr": 0.079, "score": 705, "risk_band": "A", "reasons": []},
        "lists": {"blacklist": 1},
        "as_of": "2026-01-01",
        "timings": {"engine_us": 12, "total_us": 80},
    }
)


def create_app(answer: bytes | None = None) -> Flask:
    if answer is None:
        path = os.environ.get("BARE_ANSWER_FILE")
        answer = Path(path).read_bytes() if path else _FALLBACK
    app = Flask("bare_app")

    @app.post("/v1/decisions/<policy>")
    def decide(policy: str) -> Response:
        try:
            orjson.loads(request.get_data(cache=False))
        except orjson.JSONDecodeError:
            return Response(b'{"error": {"kind": "malformed_json"}}', status=400, mimetype="application/json")
        return Response(answer, mimetype="application/json")

    @app.get("/readyz")
    def readyz() -> Response:
        return Response(b'{"ready": true}', mimetype="application/json")

    return app


def serve(host: str, port: int, workers: int, threads: int = 2) -> None:
    """The bare app under decide serve's own gunicorn settings (only the process name differs)."""
    from decision_server.serve import gunicorn_options, run_gunicorn

    run_gunicorn(create_app(), {**gunicorn_options(host, port, workers, threads), "proc_name": "bare-flask"})


if __name__ == "__main__":
    from decision_server.serve import default_workers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--threads", type=int, default=2)
    arguments = parser.parse_args()
    serve(arguments.host, arguments.port, arguments.workers, arguments.threads)
