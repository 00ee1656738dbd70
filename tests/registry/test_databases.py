"""The throwaway databases of tests/databases.py, and the DECIDE_REQUIRE_COMPONENTS switch of tests/components.py.

Each backend gives every test an empty, writable database of its own that another process can open; the session's
PostgreSQL leaves nothing behind; a missing component is a skip, or a failure under the switch.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import REPO
from tests.databases import PostgresServer

# The URLs the tests of this module were given, in order: a later test's database must be none of them.
_URLS_SEEN: list[str] = []


def _table_names(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        return sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _postgresql_name(url: str) -> str:
    return sa.make_url(url).database or ""


def test_a_fresh_database_is_empty_and_writable(database_url: str) -> None:
    _URLS_SEEN.append(database_url)
    assert _table_names(database_url) == []
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE marker (id INTEGER PRIMARY KEY, note TEXT NOT NULL)"))
            connection.execute(sa.text("INSERT INTO marker (id, note) VALUES (1, 'written')"))
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT note FROM marker")).scalar_one() == "written"
    finally:
        engine.dispose()
    assert _table_names(database_url) == ["marker"]


def test_each_test_gets_a_database_of_its_own(database_url: str, request: pytest.FixtureRequest) -> None:
    """Run after the test above (file order): its databases were other ones, and the PostgreSQL one is dropped."""
    assert database_url not in _URLS_SEEN
    assert _table_names(database_url) == []
    if database_url.startswith("postgresql"):
        server: PostgresServer = request.getfixturevalue("postgresql_server")
        names = server.database_names()
        assert _postgresql_name(database_url) in names
        earlier = [_postgresql_name(url) for url in _URLS_SEEN if url.startswith("postgresql")]
        assert earlier, "run the whole module: the first test records its database"
        assert not set(earlier) & set(names), "an earlier test's database was not dropped"
    _URLS_SEEN.append(database_url)


_CHILD = """
import sys
import sqlalchemy as sa

engine = sa.create_engine(sys.argv[1])
with engine.begin() as connection:
    connection.execute(sa.text("INSERT INTO shared (id, writer) VALUES (2, 'child')"))
with engine.connect() as connection:
    print(connection.execute(sa.text("SELECT count(*) FROM shared")).scalar_one())
engine.dispose()
"""


def test_another_process_opens_the_same_database_while_this_one_holds_a_connection(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("CREATE TABLE shared (id INTEGER PRIMARY KEY, writer TEXT NOT NULL)"))
            connection.execute(sa.text("INSERT INTO shared (id, writer) VALUES (1, 'parent')"))
        with engine.connect() as held:
            held.execute(sa.text("SELECT 1")).scalar_one()
            child = subprocess.run(
                [sys.executable, "-c", _CHILD, database_url],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                cwd=REPO,
            )
            assert child.returncode == 0, child.stderr
            assert child.stdout.strip() == "2"
            rows = held.execute(sa.text("SELECT id, writer FROM shared ORDER BY id")).all()
        assert [tuple(row) for row in rows] == [(1, "parent"), (2, "child")]
    finally:
        engine.dispose()


def test_postgresql_url_is_an_empty_postgresql_database(postgresql_url: str) -> None:
    assert postgresql_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    engine = sa.create_engine(postgresql_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT current_database()")).scalar_one() == _postgresql_name(
                postgresql_url
            )
            assert connection.dialect.server_version_info >= (14,)
            user_tables = connection.execute(
                sa.text("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
            ).scalar_one()
        assert user_tables == 0
    finally:
        engine.dispose()


def _inner_pytest(directory: Path, **environment: str) -> subprocess.CompletedProcess:
    """Run pytest on `directory` in a child process, the project importable and the switch only as given."""
    hidden = ("DECIDE_REQUIRE_COMPONENTS", "PYTEST_ADDOPTS")
    env = {key: value for key, value in os.environ.items() if key not in hidden}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", str(directory)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=directory,
        env=env,
    )


def _outcomes(completed: subprocess.CompletedProcess) -> dict[str, int]:
    """{"passed": 1, "skipped": 2, ...} from the last line of a pytest run."""
    summary = completed.stdout.strip().splitlines()[-1]
    return {word: int(count) for count, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", summary)}


def _write_missing_components(directory: Path) -> None:
    (directory / "conftest.py").write_text('pytest_plugins = ["tests.databases"]\n', encoding="utf-8")
    (directory / "test_missing.py").write_text(
        textwrap.dedent(
            """
            from tests.components import require_component

            def test_needs_a_flux_capacitor():
                require_component("the flux capacitor", "not installed here")

            def test_needs_postgresql(postgresql_url):
                assert postgresql_url

            def test_on_both_backends(database_url):
                assert database_url.startswith("sqlite:///")
            """
        ),
        encoding="utf-8",
    )


def test_a_missing_component_is_a_skip_without_the_switch(tmp_path: Path) -> None:
    _write_missing_components(tmp_path)
    empty = tmp_path / "no-postgresql"
    empty.mkdir()
    completed = _inner_pytest(tmp_path, DECIDE_POSTGRESQL_BINDIR=str(empty))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert _outcomes(completed) == {"passed": 1, "skipped": 3}
    assert "the flux capacitor is missing: not installed here" in completed.stdout
    assert "PostgreSQL is missing: no pg_ctl, initdb and postgres in $DECIDE_POSTGRESQL_BINDIR" in completed.stdout


def test_the_switch_turns_a_missing_component_into_a_failure(tmp_path: Path) -> None:
    _write_missing_components(tmp_path)
    empty = tmp_path / "no-postgresql"
    empty.mkdir()
    completed = _inner_pytest(tmp_path, DECIDE_POSTGRESQL_BINDIR=str(empty), DECIDE_REQUIRE_COMPONENTS="1")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    # The flux capacitor fails in its test; PostgreSQL in the fixtures' setup (pytest counts those as errors);
    # the SQLite half of database_url still passes.
    assert _outcomes(completed) == {"passed": 1, "failed": 1, "errors": 2}
    assert "skipped" not in completed.stdout.splitlines()[-1]
    assert "DECIDE_REQUIRE_COMPONENTS=1 makes a missing component a failure" in completed.stdout


def _processes_on(workdir: str) -> list[str]:
    """The ids of the processes whose command line names `workdir` (Linux; elsewhere none are found)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if workdir in cmdline.read_bytes().decode(errors="replace"):
                found.append(cmdline.parent.name)
        except OSError:
            continue
    return found


def _nothing_left(workdir: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            refused = True
        else:
            refused = False
    return refused and not Path(workdir).exists() and not _processes_on(workdir)


@pytest.mark.parametrize("ending", ["teardown", "killed"])
def test_the_session_server_leaves_nothing_behind(
    tmp_path: Path, postgresql_server: PostgresServer, ending: str
) -> None:
    """A whole child session (needs PostgreSQL, hence the fixture), ending normally or killed in the middle of a
    test: afterwards its server and directory are gone (at once, or within seconds, stopped by the watchdog)."""
    record = tmp_path / "server.txt"
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.databases"]\n', encoding="utf-8")
    (tmp_path / "test_server.py").write_text(
        textwrap.dedent(
            f"""
            import os
            import signal
            from pathlib import Path

            import psycopg

            def test_uses_the_server(postgresql_server, postgresql_url):
                Path({str(record)!r}).write_text(f"{{postgresql_server.workdir}}\\n{{postgresql_server.port}}\\n")
                with psycopg.connect(postgresql_url.replace("postgresql+psycopg", "postgresql")) as connection:
                    assert connection.execute("SELECT 1").fetchone() == (1,)
                    if {ending == "killed"!r}:
                        os.kill(os.getpid(), signal.SIGKILL)
            """
        ),
        encoding="utf-8",
    )
    completed = _inner_pytest(tmp_path, DECIDE_REQUIRE_COMPONENTS="1")
    assert completed.returncode == (-signal.SIGKILL if ending == "killed" else 0), completed.stdout + completed.stderr
    workdir, port = record.read_text(encoding="utf-8").split()
    if ending == "teardown":
        assert _nothing_left(workdir, int(port)), f"left behind: {workdir}, {_processes_on(workdir)}"
        return
    deadline = time.monotonic() + 60
    while not _nothing_left(workdir, int(port)):
        assert time.monotonic() < deadline, f"left behind: {workdir}, {_processes_on(workdir)}"
        time.sleep(0.2)
