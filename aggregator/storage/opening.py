"""Opening a database: the engine, SQLite's pragmas, and migrating to the newest schema.

Apart from the queries because it runs once per process, and because only here
is Alembic imported (and then only when the schema is behind).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.util import asbool

from aggregator.errors import StorageError
from aggregator.storage.connections import exclusive_transaction
from aggregator.storage.facade import Storage

#: The newest migration; kept in step with aggregator/migrations/versions.
SCHEMA_REVISION = "0007"
#: The Alembic revisions: `aggregator/migrations`, beside this package.
MIGRATIONS = Path(__file__).parent.parent / "migrations"


#: SQLite's page size for a new database (an existing one keeps its own). A
#: story row, its bodies deflated, is a little over two kilobytes: on the
#: default 4 KB pages that is one row a page, nearly half of it left empty.
PAGE_SIZE = 16384
#: How long an SQLite command waits for another's write to end before giving up.
BUSY_TIMEOUT_SECONDS = 30


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Before WAL, which fixes the page size of a new database: see PAGE_SIZE.
    cursor.execute(f"PRAGMA page_size={PAGE_SIZE}")
    _use_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL, unless it is already (the mode is kept in the file).

    Switching needs the file to itself, and SQLite answers "database is
    locked" at once while another connection is switching it, without the
    busy timeout: two commands started together on a new database made
    one fail. So a busy file is asked again, for as long as the busy timeout.
    """
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _unreachable(context: ExceptionContext) -> None:
    """A database that cannot be reached fails a command, or a poll of `run`, with its reason.

    A server that is down or restarting is a fact of the machine, not a bug:
    one line saying so (StorageError), not SQLAlchemy's traceback. `run`
    says it once and carries on, and the pool reconnects once the server is
    back. A lost connection found by the pool's own ping before use is
    left to the pool, which replaces it without a word.
    """
    if context.is_pre_ping or not (context.connection is None or context.is_disconnect):
        return
    reason = str(context.original_exception).strip().splitlines()[0]
    url = "" if context.engine is None else f" {context.engine.url!r}"
    raise StorageError(f"cannot reach database{url}: {reason}")


#: What works, as README's PostgreSQL section says: said whenever a URL asks for anything else.
_SUPPORTED = "only SQLite (sqlite:///PATH) and PostgreSQL through psycopg (postgresql+psycopg://…)"

#: The arguments of Python's sqlite3 that SQLAlchemy takes from an SQLite
#: URL's query (its pysqlite dialect), each with how to read it and what it
#: must be. SQLAlchemy drops any other silently (with only a warning) unless
#: ``uri=true`` hands them to SQLite as URI parameters.
_SQLITE_ARGUMENTS: dict[str, tuple[Callable[[str], object], str]] = {
    "uri": (asbool, "true or false"),
    "timeout": (float, "a number of seconds"),
    "isolation_level": (str, "text"),
    "detect_types": (int, "a whole number"),
    "check_same_thread": (asbool, "true or false"),
    "cached_statements": (int, "a whole number"),
}


def _masked(url: str) -> str:
    """`url` with its password hidden, as SQLAlchemy's URL shows it, even if it does not parse."""
    try:
        return repr(make_url(url))
    except (ArgumentError, ValueError):
        return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url, count=1)


def _parse(url: str) -> URL:
    """The URL as SQLAlchemy reads it; StorageError, saying why, if it cannot."""
    try:
        parsed = make_url(url)
    except ValueError:  # int() of the port, the only number a URL holds
        raise StorageError(
            f"cannot open database {_masked(url)}: the port is not a number"
        ) from None
    except ArgumentError:
        raise StorageError(f"cannot open database {_masked(url)}: not a database URL") from None
    # SQLAlchemy names a dialect and at most one driver, "postgresql+psycopg";
    # more pluses fail deep inside it.
    if not re.fullmatch(r"\w+(\+\w+)?", parsed.drivername):
        raise StorageError(
            f"cannot open database {parsed!r}: unknown database type "
            f"{parsed.drivername!r}; {_SUPPORTED} are supported"
        )
    if parsed.get_backend_name() == "sqlite":
        _check_sqlite_query(parsed)
    return parsed


def _check_sqlite_query(url: URL) -> None:
    """Refuse a query SQLAlchemy would misread or drop, before it does.

    A bad value (``timeout=abc``) would fail inside SQLAlchemy with a bare
    ValueError, and a name it does not know (``mode=ro``) would be dropped
    with a library warning while the database opened anyway, writable.
    SQLite's own URI parameters work as SQLAlchemy documents: with
    ``uri=true`` and a ``file:`` path; without the ``file:``, SQLite would
    take the query as part of the file's name.
    """
    where = f"cannot open database {url!r}"
    for name, value in url.query.items():
        if name not in _SQLITE_ARGUMENTS:
            continue
        convert, expected = _SQLITE_ARGUMENTS[name]
        if not isinstance(value, str):
            raise StorageError(f"{where}: the query parameter {name!r} is given more than once")
        try:
            convert(value)
        except ValueError:
            raise StorageError(
                f"{where}: the query parameter {name}={value!r} must be {expected}"
            ) from None
    others = sorted(set(url.query) - set(_SQLITE_ARGUMENTS))
    if not others:
        return
    named = ", ".join(repr(name) for name in others)
    uri = asbool(url.query.get("uri", "false"))
    if uri and (url.database or "").startswith("file:"):
        return
    fate = "become part of the file's name" if uri else "be ignored"
    raise StorageError(
        f"{where}: the query parameter(s) {named} would {fate}: SQLite reads its URI "
        "parameters only with uri=true and a file: path, as in "
        "sqlite:///file:PATH?mode=rw&uri=true"
    )


def _create_engine(url: str) -> Engine:
    """The engine for `url`; StorageError, saying why, for a URL that cannot give one.

    Checked here, before SQLAlchemy, and translated after it: a URL is
    written by hand in feeds.yaml, and each way of getting it wrong would
    otherwise end the command in a traceback.
    """
    parsed = _parse(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})
            event.listen(engine, "connect", _enable_sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except NoSuchModuleError:
        raise StorageError(
            f"cannot open database {parsed!r}: unknown database type "
            f"{parsed.drivername!r}; {_SUPPORTED} are supported"
        ) from None
    except ImportError as e:  # the dialect is known, its driver is not installed
        module = e.name or str(e)
        if module == "psycopg":
            reason = (
                "the PostgreSQL driver psycopg is not installed; "
                "install it with .venv/bin/pip install -e '.[postgres]'"
            )
        else:
            reason = f"its driver {module!r} is not installed; {_SUPPORTED} are supported"
        raise StorageError(f"cannot open database {parsed!r}: {reason}") from None
    except (ValueError, TypeError) as e:  # any other value SQLAlchemy cannot read
        raise StorageError(f"cannot open database {parsed!r}: {e}") from None
    event.listen(engine, "handle_error", _unreachable)
    return engine


def _current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision with Alembic (imported only when needed).

    Holding the write lock: two commands started together on a new database
    both found it empty, and the second failed on "table feeds already exists".
    The second now waits, and finds the schema made.
    """
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with exclusive_transaction(engine) as connection:
        if _current_revision(connection) == SCHEMA_REVISION:
            return
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_storage(url: str) -> Storage:
    """Open (creating and migrating as needed) the database at an SQLAlchemy URL."""
    try:
        engine = _create_engine(url)
        with engine.connect() as connection:
            current = _current_revision(connection)
        if current != SCHEMA_REVISION:
            migrate(engine)
    except (SQLAlchemyError, OSError) as e:  # OSError: an SQLite file's folder cannot be made
        raise StorageError(f"cannot open database {make_url(url)!r}: {e}") from e
    return Storage(engine)
