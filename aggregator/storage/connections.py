"""The engine, the connection each method reads or writes on, and the meta table.

The base every part of `Storage` shares: the ingest methods read and write on the
open batch when there is one, and several parts mark outputs stale in `meta`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, insert, select, text, update

from aggregator.models import PollRecord
from aggregator.storage.schema import META_TABLE

#: The PostgreSQL advisory lock `exclusive_transaction` takes (any number no other
#: program on the database uses; these are the bytes of "aggr").
_EXCLUSIVE_LOCK = 0x61676772


@contextmanager
def exclusive_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the database's write lock from its first statement.

    For reads that decide writes which another process may be making at the
    same moment: two commands started together on a new database, or on an
    edited feeds.yaml. Begun as usual, SQLite refused the second writer at
    once ("database is locked": a WAL reader cannot become a writer once
    another has written, whatever the busy timeout), and on PostgreSQL both
    inserted the same rows. Here the second waits for the first to commit,
    then reads what it wrote.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            one_writer_at_a_time(connection)
        try:
            yield connection
        except BaseException:
            connection.rollback()
            raise
        connection.commit()


def one_writer_at_a_time(connection: Connection) -> None:
    """On PostgreSQL, wait until no other transaction of ours writes, and hold that until
    this one ends; elsewhere, nothing.

    SQLite lets one transaction write at a time anyway. PostgreSQL lets
    many, and two updates at once (a cron job and `run`, say) stored the
    same cross-posted stories side by side: one of them failed a healthy
    feed with a deadlock or a duplicate key. Taken first, the lock makes
    each transaction read what the last one stored, as on SQLite.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _EXCLUSIVE_LOCK})


class Connections:
    """The engine and the open batch, if any: what every part of `Storage` works on."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._batch: Connection | None = None
        # Written when the batch commits: per-feed statements for these were a
        # tenth of a first poll's storing, and the batch commits them atomically
        # with the stories all the same.
        self._batch_polls: list[PollRecord] = []
        self._batch_unpublished = False

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection to read on: the open batch's, which sees its writes."""
        if self._batch is not None:
            yield self._batch
        else:
            with self.engine.connect() as connection:
                yield connection

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction to write in: the open batch, or one of its own."""
        if self._batch is not None:
            yield self._batch
        else:
            with self.engine.begin() as connection:
                one_writer_at_a_time(connection)
                yield connection

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as connection:
            value: str | None = connection.scalar(
                select(META_TABLE.c.value).where(META_TABLE.c.key == key)
            )
            return value

    def set_meta(self, key: str, value: str) -> None:
        with exclusive_transaction(self.engine) as connection:  # the row may be new
            self._set_meta(connection, key, value)

    def _set_meta(self, connection: Connection, key: str, value: str) -> None:
        found = connection.execute(
            update(META_TABLE).where(META_TABLE.c.key == key).values(value=value)
        )
        if found.rowcount == 0:
            connection.execute(insert(META_TABLE).values(key=key, value=value))
