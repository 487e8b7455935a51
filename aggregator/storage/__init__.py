"""The database: schema, queries and migrations (the only SQLAlchemy importer).

Everything here runs on SQLite and PostgreSQL alike: portable column types,
no dialect-only SQL, datetimes stored as naive UTC and handed out aware.

A package split by domain, each module importing only `schema` and `rows`
and the parts it builds on, never this one:

- `schema`: column types, the tables, the meta key of unpublished changes;
- `rows`: bulk inserts by the driver, chunked IN lists, shared EXISTS clauses;
- `opening`: the engine, SQLite's pragmas, migrations, `open_storage`;
- `connections`, `feeds`, `ingest`, `publishing`: the parts of the `Storage`
  facade (`facade`): connections and meta, feeds and polls, storing documents,
  what publishing reads;
- `digest`: `DigestReader`, the digest's narrow reads.

This module is the package's public face: the rest of the program and the
tests import from here.
"""

from __future__ import annotations

from aggregator.storage.digest import DigestReader
from aggregator.storage.facade import Storage
from aggregator.storage.feeds import POLL_HISTORY_DAYS
from aggregator.storage.ingest import _INSERT_STORY, _story_row
from aggregator.storage.opening import MIGRATIONS, PAGE_SIZE, SCHEMA_REVISION, migrate, open_storage
from aggregator.storage.rows import _RowInsert
from aggregator.storage.schema import (
    _POLLS,
    _STORIES,
    METADATA,
    UNPUBLISHED_KEY,
    CompressedText,
    UTCDateTime,
)

__all__ = [
    "METADATA",
    "MIGRATIONS",
    "PAGE_SIZE",
    "POLL_HISTORY_DAYS",
    "SCHEMA_REVISION",
    "UNPUBLISHED_KEY",
    "_INSERT_STORY",
    "_POLLS",
    "_STORIES",
    "CompressedText",
    "DigestReader",
    "Storage",
    "UTCDateTime",
    "_RowInsert",
    "_story_row",
    "migrate",
    "open_storage",
]
