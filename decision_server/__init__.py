"""The decision server: a Flask app factory (`create_app`) serving decisions from the registry's live
deployments over HTTP, run by gunicorn (`decide serve`). docs/server.md documents the API and its guarantees.

Modules: config, errors, sealing, routing, spool, metrics, plugins, live, service, openapi, app, serve.
Depends on registry and compiler; nothing below it imports this package. `create_app` is imported on first use:
`decide serve` must set PROMETHEUS_MULTIPROC_DIR before prometheus_client (imported by the app) is loaded.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from decision_server.app import create_app

        return create_app
    raise AttributeError(name)
