"""How rows get in and out: bulk inserts by the driver, chunked IN lists, shared EXISTS.

Machinery the feed, ingest, publishing and digest modules all use; it holds no
rule of what is stored.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, Dialect, Exists, Table, insert, select

from aggregator.models import Enclosure
from aggregator.storage.schema import _FEED_CATEGORIES, _FEEDS, _SOURCES

_CHUNK = 500


def _enclosures_to_json(enclosures: Iterable[Enclosure]) -> list[dict[str, Any]]:
    return [asdict(e) for e in enclosures]


def _enclosures_from_json(data: list[dict[str, Any]] | None) -> tuple[Enclosure, ...]:
    return tuple(Enclosure(d["url"], d.get("type"), d.get("length")) for d in data or ())


class _RowInsert:
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
        self._plans: weakref.WeakKeyDictionary[
            Dialect, tuple[str, list[tuple[int, Callable[[Any], Any]]], bool]
        ] = weakref.WeakKeyDictionary()

    def run(self, connection: Connection, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        sql, processors, positional = self._plan(connection.dialect)
        params: list[Any] = []
        for row in rows:
            values = list(row)
            for index, process in processors:
                values[index] = process(values[index])
            params.append(
                tuple(values) if positional else dict(zip(self._columns, values, strict=True))
            )
        connection.exec_driver_sql(sql, params)

    def _plan(self, dialect: Dialect) -> tuple[str, list[tuple[int, Callable[[Any], Any]]], bool]:
        plan = self._plans.get(dialect)
        if plan is None:
            compiled = insert(self._table).compile(dialect=dialect, column_keys=list(self._columns))
            binds = (
                list(compiled.positiontup or ()) if compiled.positional else list(compiled.params)
            )
            if binds != list(self._columns):
                raise ValueError(f"{self._table.name}: columns {self._columns} give binds {binds}")
            processors: list[tuple[int, Callable[[Any], Any]]] = []
            for index, name in enumerate(self._columns):
                process = self._table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    processors.append((index, process))
            plan = self._plans[dialect] = (compiled.string, processors, compiled.positional)
        return plan


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _has_active_source(story_id: Any, category: str | None = None, *, below: Any = None) -> Exists:
    """Whether the story has a source among the active feeds (of `category`, when given).

    `below` only counts sources stored before that source id.
    """
    # Core aliases: ORM ones cost more to build than these queries cost to run.
    source, feed = _SOURCES.alias(), _FEEDS.alias()
    query = (
        select(source.c.id)
        .join(feed, feed.c.id == source.c.feed_id)
        .where(source.c.story_id == story_id, feed.c.active)
    )
    if category is not None:
        link = _FEED_CATEGORIES.alias()
        query = query.join(link, link.c.feed_id == source.c.feed_id).where(
            link.c.category == category
        )
    if below is not None:
        query = query.where(source.c.id < below)
    return query.exists()


def _has_categorised_source(story_id: Any) -> Exists:
    """Whether any of the story's active feeds is in a category at all."""
    source, feed, link = _SOURCES.alias(), _FEEDS.alias(), _FEED_CATEGORIES.alias()
    return (
        select(source.c.id)
        .join(feed, feed.c.id == source.c.feed_id)
        .join(link, link.c.feed_id == source.c.feed_id)
        .where(source.c.story_id == story_id, feed.c.active)
        .exists()
    )
