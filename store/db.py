"""The database connection: engine set-up for SQLite and PostgreSQL, sessions, migrations."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from custody.errors import InstanceError

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATIONS = Path(__file__).with_name("migrations")
#: SQLite writes the WAL back into the database file (a checkpoint, with an fsync) once it holds this many
#: pages (the default is 1,000, 4 MB: about every second batch of the log's appends). A page that
#: several batches change between checkpoints (an index page, a tree node) is copied back once, not once
#: per batch. ``bench/sqlite_settings.py`` (the log's leaf table and its indexes, 300,000 leaves in batches
#: of 1,000) measured 62 -> 43 µs a leaf, and 40 µs with the writer's cache below (CPU: 45 -> 31 µs).
WAL_CHECKPOINT_PAGES = 10_000
#: Page cache of a connection that writes (KiB, as SQLite's negative cache_size): the log's indexes and
#: tree nodes take random pages, which the default 2 MB let go between batches (the same bench: 45 -> 39 µs
#: of CPU a leaf, alone). Connections that only read keep SQLite's default.
WRITER_CACHE_KIB = 64 * 1024


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and select psycopg 3 for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Connection settings for SQLite, applied to every new connection."""
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer; synchronous=FULL: a committed scan survives power loss.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    cursor.close()


def make_engine(url: str, *, immediate: bool = False, pre_ping: bool = True) -> Engine:
    """An engine; for SQLite, ``immediate`` makes every transaction ``BEGIN IMMEDIATE``. Without
    ``pre_ping`` (PostgreSQL) a pooled connection is not tested with a round trip before each use: for
    callers that run their reads again on a dropped connection (:meth:`Database.immutable_read`)."""
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=pre_ping, pool_size=10, max_overflow=20)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        _sqlite_pragmas(dbapi_connection, record)
        if immediate:
            dbapi_connection.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        # Take transaction control from pysqlite so that we choose the BEGIN.
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


def placeholder(connection: Any) -> str:
    """The driver's positional parameter mark, for SQL handed to it as it is (``exec_driver_sql``)."""
    return "?" if connection.dialect.paramstyle == "qmark" else "%s"


def bulk_insert(connection: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Insert ``rows`` (values in ``columns`` order, as the driver takes them) into ``table``.

    PostgreSQL: one ``COPY ... FROM STDIN`` (psycopg's executemany sends a statement per row,
    ~20 µs each: most of a batch's database time). SQLite: the driver's executemany.
    ``table`` and ``columns`` are our own names, never input.
    """
    names = ", ".join(columns)
    if connection.dialect.name == "postgresql":
        with connection.connection.dbapi_connection.cursor() as cursor, \
                cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join([placeholder(connection)] * len(columns))
    connection.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(rows))


def select_where_in(connection: Any, table: str, columns: str, key: str, values: Sequence[Any]) -> list[Any]:
    """``SELECT columns FROM table WHERE key IN values`` in the driver's own SQL (SQLAlchemy compiling
    an expanding IN for every batch was most of a lookup's cost). PostgreSQL: one query, the values
    as one array (``= ANY``); SQLite: 500 values a query. Names are our own, never input."""
    if not values:
        return []
    if connection.dialect.name == "postgresql":
        return list(connection.exec_driver_sql(f"SELECT {columns} FROM {table} WHERE {key} = ANY(%s)",
                                               (list(values),)))
    rows: list[Any] = []
    for start in range(0, len(values), 500):
        chunk = tuple(values[start:start + 500])
        rows.extend(connection.exec_driver_sql(
            f"SELECT {columns} FROM {table} WHERE {key} IN ({', '.join(['?'] * len(chunk))})", chunk))
    return rows


def bulk_update(connection: Any, table: str, key: tuple[str, str], columns: Sequence[tuple[str, str]],
                rows: Sequence[Sequence[Any]]) -> None:
    """``UPDATE table SET columns WHERE key`` for each row (the key's value first, then the columns').

    Names come with their PostgreSQL types (``("idx", "bigint")``): there, one statement joins the
    rows as arrays (``unnest``); SQLite takes the driver's executemany. Names are our own, never input.
    """
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        names = [key[0]] + [name for name, _ in columns]
        arrays = ", ".join(f"%s::{kind}[]" for kind in [key[1]] + [kind for _, kind in columns])
        sets = ", ".join(f"{name} = v.{name}" for name, _ in columns)
        connection.exec_driver_sql(
            f"UPDATE {table} AS t SET {sets} FROM unnest({arrays}) AS v({', '.join(names)}) "
            f"WHERE t.{key[0]} = v.{key[0]}", tuple(list(column) for column in zip(*rows, strict=True)))
        return
    sets = ", ".join(f"{name} = ?" for name, _ in columns)
    connection.exec_driver_sql(f"UPDATE {table} SET {sets} WHERE {key[0]} = ?",
                               [(*row[1:], row[0]) for row in rows])


#: The PostgreSQL advisory lock that serialises writers (an arbitrary constant: "cust").
WRITER_LOCK = 0x63757374


class Database:
    """One database: an engine for reading, one for writing, a session factory, migrations."""

    def __init__(self, url: str):
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.writer = make_engine(self.url, immediate=True) if self.is_sqlite else self.engine
        #: PostgreSQL: connections for immutable_read, not pinged before each use
        self.reader = self.engine if self.is_sqlite else make_engine(self.url, pre_ping=False)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.write_sessions = sessionmaker(self.writer, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read (or casual write) unit of work: committed on success, rolled back on error."""
        with self.sessions() as session, session.begin():
            yield session

    def immutable_read(self, read: Callable[[Session], T]) -> T:
        """``read(session)`` for the log's immutable rows only (a signed checkpoint and the nodes under
        it, committed with it and never changed), so each statement may see a later commit than the last.

        PostgreSQL: no BEGIN and COMMIT go to the server and the pooled connection is not pinged first
        (three round trips fewer than a session: most of an inclusion proof's time); a connection found
        dropped is replaced and ``read`` runs once more, which for such reads gives the same answer.
        SQLite (where neither costs a round trip): a plain read session.
        """
        if self.is_sqlite:
            with self.session() as session:
                return read(session)
        for attempt in (1, 2):
            try:
                with self.reader.connect() as connection, Session(
                        bind=connection.execution_options(isolation_level="AUTOCOMMIT"),
                        expire_on_commit=False) as session:
                    return read(session)
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
                log.info("a pooled database connection was dropped (%s); reading again on a new one",
                         type(exc.orig).__name__)
        raise AssertionError("unreachable")

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A unit of work holding the database's single write lock from its start.

        SQLite: ``BEGIN IMMEDIATE``. PostgreSQL: a transaction-scoped advisory
        lock. Every append to the log goes through here, so the log never forks.
        Committed on success, rolled back entirely on any exception.
        """
        with self.write_sessions() as session, session.begin():
            if not self.is_sqlite:
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITER_LOCK})
            yield session

    def alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        config.attributes["engine"] = self.engine
        return config

    def migrate(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        command.upgrade(self.alembic_config(), "head")

    def check_schema(self) -> None:
        if "alembic_version" not in inspect(self.engine).get_table_names():
            raise InstanceError(f"the database at {self.safe_url} has no custody schema; run `custody init`")

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()
        self.writer.dispose()
        self.reader.dispose()


def database_url(home: Path, env: Mapping[str, str] | None = None) -> str:
    variables: Mapping[str, str] = os.environ if env is None else env
    return variables.get("CUSTODY_DATABASE_URL") or sqlite_url(home / "custody.db")
