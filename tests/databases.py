"""Throwaway databases for tests: one PostgreSQL cluster per session, a fresh empty database per test.

A pytest plugin (tests/conftest.py lists it in `pytest_plugins`). Input: PostgreSQL's server binaries, found in
`$DECIDE_POSTGRESQL_BINDIR` when set (and only there), else beside `pg_ctl` on PATH, in `pg_config --bindir`, or
the newest `/usr/lib/postgresql/*/bin` (Debian's layout); pytest-postgresql and psycopg. Output, the fixtures:

- `postgresql_server` (session): a `PostgresServer`, a cluster of its own in a temporary directory listening on a
  free loopback port, started on first use and stopped and deleted at the end of the session;
- `postgresql_url`: the SQLAlchemy URL (`postgresql+psycopg://postgres@127.0.0.1:<port>/<name>`) of a new, empty
  database on that server, dropped after the test;
- `database_url`, parametrised `sqlite` / `postgresql`: per test, the URL of a new, empty database on each backend
  (`sqlite:///<tmp_path>/decide.db`, a file not yet created, or `postgresql_url`).

The databases are empty: tests create their own schema (with Alembic). Any number of connections, from any
number of processes, may open a URL while its test runs. Without the binaries the PostgreSQL tests are skipped, or
fail under `DECIDE_REQUIRE_COMPONENTS=1` (tests/components.py).

Run as root (containers, CI), `initdb` and `postgres` refuse to start, so `pg_ctl` runs through a small wrapper
script, `runuser -u postgres -- <bindir>/pg_ctl "$@"`, on a cluster directory owned by `postgres`; run as any
other user, `pg_ctl` runs directly. Either way the cluster trusts local connections and its superuser is
`postgres`. It runs with `fsync=off`: nothing in it outlives the session, and a watchdog process stops and deletes
it should the session die before its own teardown (killed by a timeout, say).
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.components import require_component, require_module

if TYPE_CHECKING:
    from pytest_postgresql.executors import PostgreSQLExecutor
    from pytest_postgresql.janitor import DatabaseJanitor

BINDIR_VARIABLE = "DECIDE_POSTGRESQL_BINDIR"
SUPERUSER = "postgres"
HOST = "127.0.0.1"
TEMPLATE = "decide_empty_template"
SERVER_OPTIONS = f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c listen_addresses={HOST}"
_SERVER_BINARIES = ("pg_ctl", "initdb", "postgres")


def _has_server_binaries(directory: Path) -> bool:
    return all((directory / name).is_file() for name in _SERVER_BINARIES)


def _version_key(directory: Path) -> tuple[int, ...]:
    """`/usr/lib/postgresql/15/bin` → (15,), for choosing the newest installed version."""
    return tuple(int(part) for part in re.findall(r"\d+", directory.parent.name)) or (0,)


def find_postgresql_bindir() -> Path | None:
    """The directory holding `pg_ctl`, `initdb` and `postgres`, or None when PostgreSQL's server is not installed."""
    override = os.environ.get(BINDIR_VARIABLE)
    if override:
        return Path(override) if _has_server_binaries(Path(override)) else None
    candidates: list[Path] = []
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        candidates.append(Path(pg_ctl).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        # libpq-dev's pg_config names the bindir even when the server package is absent: checked below.
        completed = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if completed.returncode == 0 and completed.stdout.strip():
            candidates.append(Path(completed.stdout.strip()))
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True))
    return next((candidate for candidate in candidates if _has_server_binaries(candidate)), None)


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _pg_ctl_command(bindir: Path, workdir: Path, cluster: Path) -> str:
    """What the executor runs as `pg_ctl`: the binary itself, or (as root) a wrapper running it as `postgres`.

    As root, `cluster` is handed to the `postgres` user and `workdir` made traversable (0711) so that user can
    reach it; the wrapper stays in `workdir`, owned by root, out of that user's reach.
    """
    pg_ctl = bindir / "pg_ctl"
    if os.geteuid() != 0:
        return str(pg_ctl)
    try:
        account = pwd.getpwnam(SUPERUSER)
    except KeyError:
        require_component("PostgreSQL", f"running as root needs the `{SUPERUSER}` system user (initdb refuses root)")
    runuser = shutil.which("runuser")
    if runuser is None:
        require_component("PostgreSQL", "running as root needs `runuser` (util-linux) to run pg_ctl as postgres")
    wrapper = workdir / "pg_ctl"
    wrapper.write_text(
        "#!/bin/sh\n"
        "# pg_ctl as the postgres user: initdb and postgres refuse to run as root. From /, which that user can read.\n"
        "cd / || exit 1\n"
        f'exec {shlex.quote(runuser)} -u {SUPERUSER} -- {shlex.quote(str(pg_ctl))} "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o700)
    workdir.chmod(0o711)
    os.chown(cluster, account.pw_uid, account.pw_gid)
    return str(wrapper)


# Stops the cluster and deletes its directory when the test session ends without doing it (killed, SIGTERM, a
# crash): it waits for the end of its stdin, whose other end only the session holds, so the operating system closes
# it however the session ends. In a session of its own, so a signal to the session's process group spares it.
_WATCHDOG = """
import os, shutil, subprocess, sys
pg_ctl, datadir, workdir = sys.argv[1:4]
sys.stdin.buffer.read()
try:
    if os.path.isdir(datadir):
        subprocess.run([pg_ctl, "stop", "-D", datadir, "-m", "immediate"], capture_output=True, timeout=60)
finally:
    shutil.rmtree(workdir, ignore_errors=True)
"""


def _start_watchdog(pg_ctl: str, datadir: Path, workdir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, pg_ctl, str(datadir), str(workdir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        start_new_session=True,
    )


@dataclass
class PostgresServer:
    """A running throwaway cluster: where it listens, who connects, and the empty template new databases copy."""

    host: str
    port: int
    user: str
    workdir: Path
    executor: PostgreSQLExecutor
    template: str = TEMPLATE
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL of database `dbname` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def janitor(self, dbname: str, **options: object) -> DatabaseJanitor:
        """pytest-postgresql's janitor of database `dbname` here: `init()` creates it, `drop()` drops it.

        `options` go to `DatabaseJanitor` (`template_dbname=` to clone one, `as_template=True` to make one).
        """
        from pytest_postgresql.janitor import DatabaseJanitor

        return DatabaseJanitor(
            user=self.user,
            host=self.host,
            port=self.port,
            dbname=dbname,
            **options,
        )

    _janitor = janitor  # the name tests/registry/conftest.py first used

    @contextmanager
    def database(self, template: str | None = None) -> Iterator[str]:
        """A new database as a URL, dropped on exit (its connections cut): a copy of `template`, by default the
        empty one; a test's own template (say, a migrated schema) must have no open connections while copied."""
        name = f"decide_test_{next(self._numbers)}"
        janitor = self.janitor(name, template_dbname=template or self.template)
        janitor.init()
        try:
            yield self.url(name)
        finally:
            janitor.drop()

    def database_names(self) -> list[str]:
        """The names of the databases on the server, templates included."""
        janitor = self.janitor("postgres")
        with janitor.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database ORDER BY datname")
            return [row[0] for row in cursor.fetchall()]


@contextmanager
def running_postgresql() -> Iterator[PostgresServer]:
    """Start a throwaway cluster (`require_component` when PostgreSQL is missing); stop and delete it on exit."""
    bindir = find_postgresql_bindir()
    if bindir is None:
        where = (
            f"${BINDIR_VARIABLE}={os.environ[BINDIR_VARIABLE]}"
            if os.environ.get(BINDIR_VARIABLE)
            else "PATH, `pg_config --bindir` or /usr/lib/postgresql/*/bin"
        )
        require_component("PostgreSQL", f"no pg_ctl, initdb and postgres in {where} (Debian: apt install postgresql)")
    require_module("PostgreSQL", "psycopg")
    executors = require_module("PostgreSQL", "pytest_postgresql.executors")
    workdir = Path(tempfile.mkdtemp(prefix="decide-postgresql-"))
    executor: PostgreSQLExecutor | None = None
    watchdog: subprocess.Popen | None = None
    try:
        cluster = workdir / "cluster"
        cluster.mkdir()
        port = _free_loopback_port()
        pg_ctl = _pg_ctl_command(bindir, workdir, cluster)
        watchdog = _start_watchdog(pg_ctl, cluster / "data", workdir)
        executor = executors.PostgreSQLExecutor(
            executable=pg_ctl,
            host=HOST,
            port=port,
            datadir=str(cluster / "data"),
            unixsocketdir=str(cluster),
            logfile=str(cluster / "postgresql.log"),
            startparams="-w",
            dbname=TEMPLATE,
            user=SUPERUSER,
            postgres_options=SERVER_OPTIONS,
        )
        try:
            executor.start()
        except Exception as exc:
            log = cluster / "postgresql.log"
            detail = log.read_text(encoding="utf-8", errors="replace")[-2000:] if log.exists() else "(no log)"
            raise RuntimeError(f"the throwaway PostgreSQL in {cluster} did not start: {exc}\n{detail}") from exc
        server = PostgresServer(host=HOST, port=port, user=SUPERUSER, workdir=workdir, executor=executor)
        template = server.janitor(TEMPLATE, as_template=True)
        template.init()
        yield server
        template.drop()
    finally:
        try:
            if executor is not None and executor.running():
                executor.stop()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            if watchdog is not None:
                # Everything is gone already: the watchdog wakes up, finds nothing, and exits.
                watchdog.communicate(timeout=60)


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[PostgresServer]:
    """Yields the session's `PostgresServer`: a throwaway cluster on a free loopback port, with an empty template.

    Skipped (or failed under `DECIDE_REQUIRE_COMPONENTS=1`) when PostgreSQL is not installed. Nothing of it is
    left after the session: the server is stopped and its directory deleted.
    """
    with running_postgresql() as server:
        yield server


@pytest.fixture
def postgresql_url(postgresql_server: PostgresServer) -> Iterator[str]:
    """Yields the SQLAlchemy URL of a new, empty PostgreSQL database of this test's own; dropped afterwards."""
    with postgresql_server.database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Yields the SQLAlchemy URL of a new, empty database, once per backend (test ids `[sqlite]`, `[postgresql]`).

    SQLite: `sqlite:///<tmp_path>/decide.db`, a file not created yet. PostgreSQL: `postgresql_url`, requested only
    by this parameter, so the SQLite half runs (and PostgreSQL is not started) when PostgreSQL is missing.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'decide.db'}"
    else:
        yield request.getfixturevalue("postgresql_url")
