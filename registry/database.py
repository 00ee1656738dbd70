"""Opening the registry database: engines, pragmas, one managed session per operation, and the schema check.

Input: a database URL (`--db`, else `DECIDE_DATABASE_URL`, else `sqlite:///decide.db` in the current directory).
Output: a `Registry` handle whose `read()` and `write()` context managers give a SQLModel session that commits
on success, rolls back on any error, and turns database failures into `RegistryError`s that name no SQL.

Writes are serialised: every write transaction holds the one registry lock for its whole length (SQLite:
`BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock). Registry writes are rare and small, and
serialising them is what keeps version numbers gap-free, the audit chain a single line, and "approved" and
"champion" answered from a state no other writer is changing underneath.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, IntegrityError, OperationalError
from sqlmodel import Session, create_engine

from registry import audit
from registry.errors import RegistryError

DEFAULT_URL = "sqlite:///decide.db"
URL_VARIABLE = "DECIDE_DATABASE_URL"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any constant works; it only has to be the same in every process that writes the registry.
POSTGRESQL_WRITE_LOCK = 0x0DEC1DE
# Words of a database's own constraint messages (SQLite, PostgreSQL), which are not shown to people.
SQL_WORDS = ("constraint", "duplicate key", "violates", "foreign key", "not null")


def resolve_url(explicit: str | None = None) -> str:
    """The database URL: the one given, else $DECIDE_DATABASE_URL, else the embedded default (decide.db here)."""
    url = explicit or os.environ.get(URL_VARIABLE) or DEFAULT_URL
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        # psycopg 3 is the driver we ship; SQLAlchemy's bare postgresql:// means psycopg2.
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def shown_url(url: str) -> str:
    """The URL as it may be printed: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<an invalid database URL>"


def _sqlite_engine(url: str, begin: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's `begin` event, not the driver, start transactions, so they can be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


def database_message(exc: DBAPIError) -> str:
    """The message a trigger or constraint raised, without the SQL statement SQLAlchemy appends."""
    original = exc.orig
    diag = getattr(original, "diag", None)
    if diag is not None and getattr(diag, "message_primary", None):
        return diag.message_primary
    return str(original).splitlines()[0] if original is not None else type(exc).__name__


class Registry:
    """A handle on one registry database. Create one per process (after a fork, not before)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = resolve_url(url)
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise RegistryError("invalid", f"{self.url!r} is not a database URL") from None
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:":
                directory = Path(database).resolve().parent
                if not directory.is_dir():
                    raise RegistryError(
                        "unavailable", f"the directory of the SQLite database {database} does not exist"
                    )
            self.read_engine = _sqlite_engine(self.url, "BEGIN")
            self.write_engine = _sqlite_engine(self.url, "BEGIN IMMEDIATE")
        elif self.dialect == "postgresql":
            try:
                self.read_engine = self.write_engine = create_engine(self.url, pool_pre_ping=True)
            except (ArgumentError, ModuleNotFoundError) as exc:
                raise RegistryError("invalid", f"cannot use the database URL {shown_url(self.url)}: {exc}") from None
        else:
            raise RegistryError(
                "invalid", f"unsupported database {self.dialect!r}: use sqlite:///FILE or postgresql://…"
            )

    @property
    def shown_url(self) -> str:
        return shown_url(self.url)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; rolled back at the end (reads never write)."""
        with self._translated_errors(), Session(self.read_engine) as session:
            try:
                yield session
            finally:
                session.rollback()

    @contextmanager
    def append(self) -> Iterator[Connection]:
        """A bare connection in a transaction, committed if the block succeeds, for bulk appends that touch
        neither the audit chain nor a governed record (the decision log): like `write(exclusive=False)`, without
        an ORM session's cost, since the decision server's shipper opens one several times a second in every
        worker. SQLite: `BEGIN IMMEDIATE` as for every write."""
        with self._translated_errors(), self.write_engine.begin() as connection:
            yield connection

    def latest_audit_seq(self) -> int:
        """`audit.latest_seq` on a bare connection (about 60 against 240 µs on SQLite through a session): the
        number the decision server's workers poll several times a second each to learn of changes."""
        with self._translated_errors(), self.read_engine.connect() as connection:
            return int(connection.execute(audit.LATEST_SEQ).scalar() or 0)

    @contextmanager
    def write(self, exclusive: bool = True) -> Iterator[Session]:
        """A session holding the registry's write lock; committed if the block succeeds, else rolled back.

        `exclusive=False` skips the PostgreSQL advisory lock, for writes that touch neither the audit chain nor
        a governed record (the decision log); on SQLite every write transaction is exclusive anyway.
        A refusal that carries an audit event (a missing role, a failed sign-in) is appended to the audit trail
        in a transaction of its own once the refused one is rolled back, then raised again."""
        try:
            with self._translated_errors(), Session(self.write_engine) as session:
                if self.dialect == "postgresql" and exclusive:
                    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRESQL_WRITE_LOCK})
                elif self.dialect == "sqlite":
                    session.connection()  # BEGIN IMMEDIATE now, before anything is read
                try:
                    yield session
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
        except RegistryError as exc:
            if exc.audit_event is not None:
                event, exc.audit_event = exc.audit_event, None
                with self.write() as session:
                    audit.append(session, *event)
            raise

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        try:
            yield
        except IntegrityError as exc:
            # A trigger or constraint refused what the Python checks let through (or a concurrent writer won).
            # The guards' own messages are sentences for people; a constraint's text names SQL objects.
            message = database_message(exc)
            if any(word in message.lower() for word in SQL_WORDS):
                message = "it clashes with a record already stored, or breaks a rule of the schema"
            raise RegistryError("conflict", f"the database refused the change: {message}") from None
        except DataError:
            raise RegistryError("invalid", "a value is longer or larger than the registry can store") from None
        except OperationalError as exc:
            raise RegistryError(
                "unavailable", f"the registry database {self.shown_url} is unavailable: {database_message(exc)}"
            ) from None
        except DBAPIError as exc:
            raise RegistryError(
                "unavailable", f"the registry database {self.shown_url} failed: {database_message(exc)}"
            ) from None

    def dispose(self) -> None:
        """Close every pooled connection (call after fork, and when done)."""
        self.read_engine.dispose()
        if self.write_engine is not self.read_engine:
            self.write_engine.dispose()
