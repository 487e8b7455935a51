"""Opening a database: the engine, SQLite's pragmas, and migrating to the newest schema.

Apart from the queries because it runs once per process, and because only here
is Alembic imported (and then only when the schema is behind).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.exc import SQLAlchemyError

from aggregator.errors import StorageError
from aggregator.storage.facade import Storage

#: The newest migration; kept in step with aggregator/migrations/versions.
SCHEMA_REVISION = "0007"
#: The Alembic revisions: `aggregator/migrations`, beside this package.
MIGRATIONS = Path(__file__).parent.parent / "migrations"


#: SQLite's page size for a new database (an existing one keeps its own). A
#: story row, its bodies deflated, is a little over two kilobytes: on the
#: default 4 KB pages that is one row a page, nearly half of it left empty.
PAGE_SIZE = 16384


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # Before WAL, which fixes the page size of a new database: see PAGE_SIZE.
    cursor.execute(f"PRAGMA page_size={PAGE_SIZE}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


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


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _enable_sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    event.listen(engine, "handle_error", _unreachable)
    return engine


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision with Alembic (imported only when needed)."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_storage(url: str) -> Storage:
    """Open (creating and migrating as needed) the database at an SQLAlchemy URL."""
    try:
        engine = _create_engine(url)
        if _current_revision(engine) != SCHEMA_REVISION:
            migrate(engine)
    except (SQLAlchemyError, OSError) as e:  # OSError: an SQLite file's folder cannot be made
        raise StorageError(f"cannot open database {make_url(url)!r}: {e}") from e
    return Storage(engine)
