"""`decide serve`: the decision server under gunicorn — gthread workers, the app preloaded, the database opened
in each worker after fork, Prometheus metrics summed across workers.

Input: a `ServerConfig`, where to bind, how many workers and threads. Output: a running server (this call
returns when gunicorn stops). The environment gunicorn's workers need (PROMETHEUS_MULTIPROC_DIR) is set here,
before the app and prometheus_client are imported.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from decision_server.config import ServerConfig


def default_workers() -> int:
    """Cores + 1: measured best for the gthread worker on this stack (docs/server.md)."""
    return (os.cpu_count() or 1) + 1


def prepare_metrics_directory(config: ServerConfig) -> Path:
    directory = Path(config.data_dir).resolve() / "metrics"
    shutil.rmtree(directory, ignore_errors=True)  # old totals would come back otherwise
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


def gunicorn_options(
    host: str, port: int, workers: int | None = None, threads: int = 2, access_log: bool = False
) -> dict[str, Any]:
    """The gunicorn settings of `decide serve` without its hooks: gthread, preloaded, loopback unless told
    (benchmarks/http/bare_app.py runs its floor under exactly these)."""
    return {
        "bind": f"{'[' + host + ']' if ':' in host else host}:{port}",
        "workers": workers or default_workers(),
        "worker_class": "gthread",
        "threads": threads,
        "preload_app": True,
        "timeout": 30,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "decide-serve",
        "control_socket_disable": True,
    }


def run_gunicorn(app: Any, options: dict[str, Any]) -> None:
    """Run `app` under gunicorn with `options` (None values left at gunicorn's defaults) until it stops."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            for name, value in options.items():
                if value is not None:
                    self.cfg.set(name, value)

        def load(self) -> Any:
            return app

    Server().run()


def run(
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int | None = None,
    threads: int = 2,
    access_log: bool = False,
    ready_message: str | None = None,
) -> None:
    prepare_metrics_directory(config)
    from decision_server import metrics
    from decision_server.app import create_app

    app = create_app(config)
    service = app.extensions["decide"]

    def post_fork(server: Any, worker: Any) -> None:
        service.start()  # the registry, the deployments, the spool and the shipper: this worker's own

    def worker_exit(server: Any, worker: Any) -> None:
        service.stop()  # ship what is spooled, within the graceful timeout

    def child_exit(server: Any, worker: Any) -> None:
        metrics.mark_process_dead(worker.pid)

    def when_ready(server: Any) -> None:
        if ready_message:
            server.log.info(ready_message)

    options = {
        **gunicorn_options(host, port, workers, threads, access_log),
        "post_fork": post_fork,
        "worker_exit": worker_exit,
        "child_exit": child_exit,
        "when_ready": when_ready,
    }
    run_gunicorn(app, options)
