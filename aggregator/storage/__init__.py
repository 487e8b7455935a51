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
tests import from here. Names shared between the package's modules carry no
leading underscore; each module keeps its underscore names to itself.
"""

from __future__ import annotations

from aggregator.storage.digest import DigestReader
from aggregator.storage.facade import Storage
from aggregator.storage.feeds import POLL_HISTORY_DAYS
from aggregator.storage.ingest import INSERT_STORY, story_row
from aggregator.storage.opening import MIGRATIONS, PAGE_SIZE, SCHEMA_REVISION, migrate, open_storage
from aggregator.storage.rows import RowInsert
from aggregator.storage.schema import (
    METADATA,
    POLLS_TABLE,
    STORIES_TABLE,
    UNPUBLISHED_KEY,
    CompressedText,
    UTCDateTime,
)

__all__ = [
    "INSERT_STORY",
    "METADATA",
    "MIGRATIONS",
    "PAGE_SIZE",
    "POLLS_TABLE",
    "POLL_HISTORY_DAYS",
    "SCHEMA_REVISION",
    "STORIES_TABLE",
    "UNPUBLISHED_KEY",
    "CompressedText",
    "DigestReader",
    "RowInsert",
    "Storage",
    "UTCDateTime",
    "migrate",
    "open_storage",
    "story_row",
]
