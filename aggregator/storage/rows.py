"""How rows get in and out: bulk inserts and updates by the driver, chunked IN lists, shared EXISTS.

Machinery the feed, ingest, publishing and digest modules all use; it holds no
rule of what is stored.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, Dialect, Exists, Table, bindparam, insert, select, update
from sqlalchemy.sql.dml import UpdateBase

from aggregator.models import Enclosure
from aggregator.storage.schema import FEED_CATEGORIES_TABLE, FEEDS_TABLE, SOURCES_TABLE

_CHUNK = 500


def enclosures_to_json(enclosures: Iterable[Enclosure]) -> list[dict[str, Any]]:
    return [asdict(e) for e in enclosures]


def enclosures_from_json(data: list[dict[str, Any]] | None) -> tuple[Enclosure, ...]:
    return tuple(Enclosure(d["url"], d.get("type"), d.get("length")) for d in data or ())


#: A statement as the driver runs it: its SQL, the processor of each value that
#: has one (by position in the caller's rows), and whether it binds by position.
_Plan = tuple[str, list[tuple[int, Callable[[Any], Any]]], bool]


def _driver_plan(
    statement: UpdateBase, names: Sequence[str], table: Table, dialect: Dialect
) -> _Plan:
    """Compile `statement`, whose bind parameters are exactly `names`, for the driver.

    A name binds the table's column of that name, less any trailing "_" (the
    WHERE of an UPDATE cannot bind a column's own name: SET takes it).
    """
    compiled = statement.compile(dialect=dialect, column_keys=list(names))
    binds = list(compiled.positiontup or ()) if compiled.positional else list(compiled.params)
    if binds != list(names):
        raise ValueError(f"{table.name}: columns {tuple(names)} give binds {binds}")
    processors: list[tuple[int, Callable[[Any], Any]]] = []
    for index, name in enumerate(names):
        column = table.c[name.removesuffix("_")]
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors.append((index, process))
    return compiled.string, processors, compiled.positional


def _run_plan(
    connection: Connection, plan: _Plan, names: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """The rows through the driver's own executemany, each value processed as SQLAlchemy would."""
    sql, processors, positional = plan
    params: list[Any] = []
    for row in rows:
        values = list(row)
        for index, process in processors:
            values[index] = process(values[index])
        params.append(tuple(values) if positional else dict(zip(names, values, strict=True)))
    if params:
        connection.exec_driver_sql(sql, params)


class RowInsert:
    """An INSERT of many rows, each a tuple of `columns` in the table's order, run by the
    driver's own executemany.

    SQLAlchemy's executemany makes each row's parameters in Python, a lookup
    and a type-processor call per value through several layers, which was a
    quarter of what storing a first poll cost. Here the statement is compiled
    and each column's processor looked up once per dialect, the processors are
    applied in one loop, and the rows go to the driver as they are (as dicts
    for a driver that names its parameters). Every column with a default must
    be listed: the statement carries exactly these.
    """

    def __init__(self, table: Table, *columns: str) -> None:
        self._table = table
        self._columns = columns
        self._plans: weakref.WeakKeyDictionary[Dialect, _Plan] = weakref.WeakKeyDictionary()

    def run(self, connection: Connection, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        dialect = connection.dialect
        plan = self._plans.get(dialect)
        if plan is None:
            statement = insert(self._table)
            plan = self._plans[dialect] = _driver_plan(
                statement, self._columns, self._table, dialect
            )
        _run_plan(connection, plan, self._columns, rows)


class RowUpdate:
    """UPDATEs of rows by id, as `RowInsert` does INSERTs: through the driver.

    Rows that set the same columns go in one executemany; each set of columns
    is compiled once per dialect. A poll of every feed updates every feed's
    row: SQLAlchemy making each row's parameters took a fifth of the time
    recording a thousand 304s took, and a third while downloads share the
    interpreter.
    """

    def __init__(self, table: Table) -> None:
        self._table = table
        # SET lists columns in the table's order, and the binds must follow it.
        self._order = {column.name: index for index, column in enumerate(table.c)}
        self._plans: weakref.WeakKeyDictionary[Dialect, dict[tuple[str, ...], _Plan]] = (
            weakref.WeakKeyDictionary()
        )

    def run(self, connection: Connection, changes: Iterable[tuple[Any, Mapping[str, Any]]]) -> None:
        """For each (id, values) pair, set the row's columns named in values."""
        by_columns: dict[tuple[str, ...], list[list[Any]]] = {}
        for key, values in changes:
            columns = tuple(sorted(values, key=self._order.__getitem__))
            by_columns.setdefault(columns, []).append([*map(values.__getitem__, columns), key])
        plans = self._plans.setdefault(connection.dialect, {})
        for columns, rows in by_columns.items():
            names = (*columns, "id_")
            plan = plans.get(columns)
            if plan is None:
                statement = (
                    update(self._table)
                    .where(self._table.c.id == bindparam("id_"))
                    .values({column: bindparam(column) for column in columns})
                )
                plan = plans[columns] = _driver_plan(
                    statement, names, self._table, connection.dialect
                )
            _run_plan(connection, plan, names, rows)


def in_chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def has_active_source(story_id: Any, category: str | None = None, *, below: Any = None) -> Exists:
    """Whether the story has a source among the active feeds (of `category`, when given).

    `below` only counts sources stored before that source id.
    """
    # Core aliases: ORM ones cost more to build than these queries cost to run.
    source, feed = SOURCES_TABLE.alias(), FEEDS_TABLE.alias()
    query = (
        select(source.c.id)
        .join(feed, feed.c.id == source.c.feed_id)
        .where(source.c.story_id == story_id, feed.c.active)
    )
    if category is not None:
        link = FEED_CATEGORIES_TABLE.alias()
        query = query.join(link, link.c.feed_id == source.c.feed_id).where(
            link.c.category == category
        )
    if below is not None:
        query = query.where(source.c.id < below)
    return query.exists()


def has_categorised_source(story_id: Any) -> Exists:
    """Whether any of the story's active feeds is in a category at all."""
    source, feed, link = SOURCES_TABLE.alias(), FEEDS_TABLE.alias(), FEED_CATEGORIES_TABLE.alias()
    return (
        select(source.c.id)
        .join(feed, feed.c.id == source.c.feed_id)
        .join(link, link.c.feed_id == source.c.feed_id)
        .where(source.c.story_id == story_id, feed.c.active)
        .exists()
    )
