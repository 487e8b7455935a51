"""The schema: column types, the Core tables, and the key of the meta table everyone sets.

Apart from the queries so that every other storage module, and the migrations'
comparison with the models, start from one description of the tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from aggregator.compact import deflate, inflate

#: meta key set whenever stories change, cleared once outputs show them.
UNPUBLISHED_KEY = "stories_unpublished"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in Python, naive UTC in the database, identical on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # The text SQLAlchemy's SQLite DATETIME writes ("2024-05-01 08:00:00.000000"),
        # made by one C call: an ingest binds a few hundred thousand of these.
        # Each column gets its own processor, which remembers its last value: a
        # document's entries share their first-seen time, and a first poll of
        # 1,000 feeds bound the value of the row before in 172,000 of 305,000.
        last: list[tuple[datetime | None, str | None]] = [(None, None)]

        def process(value: datetime | None) -> str | None:
            remembered = last[0]  # one tuple, so another thread never sees half of it
            if value is remembered[0]:
                return remembered[1]
            if value is not None and value.tzinfo is UTC:  # most are: "…+00:00" cut off
                text: str | None = value.isoformat(" ", "microseconds")[:-6]
            else:
                naive = self.process_bind_param(value, dialect)
                text = None if naive is None else naive.isoformat(" ", "microseconds")
            last[0] = (value, text)
            return text

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        # SQLite hands back the ISO text SQLAlchemy stored: one C call makes it aware
        # UTC, a fraction of parse-then-replace (the digest reads 100,000 of these).
        def process(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value + "+00:00")

        return process


class CompressedText(TypeDecorator[str]):
    """Text stored deflated (see `compact`): bodies are most of the database's bytes."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        return None if value is None else deflate(value)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> str | None:
        return None if value is None else inflate(value)


# The schema, as SQLAlchemy Core tables: the ORM took a tenth of a second to
# import, a tenth of a poll where every server answers 304, and every query
# here reads or writes plain rows anyway. The migrations build the same
# schema (a test compares the two).
METADATA = MetaData()

FEEDS_TABLE = Table(
    "feeds",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("url", Text, nullable=False, unique=True),
    Column("name", Text),
    Column("title", Text),
    Column("site_link", Text),
    Column("active", Boolean, nullable=False, default=True),
    Column("position", Integer, nullable=False, default=0),
    Column("interval_seconds", Integer, nullable=False, default=1800),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("body_hash", String(64)),
    Column("state", String(16), nullable=False, default="new"),
    Column("last_poll", UTCDateTime),
    Column("last_success", UTCDateTime),
    Column("next_check", UTCDateTime, index=True),
    Column("http_status", Integer),
    Column("last_error", Text),
    Column("last_warning", Text),
    Column("error_count", Integer, nullable=False, default=0),
    # A server's Retry-After: not even a manual update polls before it.
    Column("not_before", UTCDateTime),
    # What the feed says of its own rhythm (<ttl>, sy:updatePeriod), kept for 304s.
    Column("update_hint_seconds", Integer),
    # Where permanent redirects led: polled instead of `url` from then on.
    Column("moved_to", Text),
)

FEED_CATEGORIES_TABLE = Table(
    "feed_categories",
    METADATA,
    Column("feed_id", ForeignKey("feeds.id", ondelete="CASCADE"), primary_key=True),
    Column("category", String(200), primary_key=True),
    Column("position", Integer, nullable=False, default=0, server_default="0"),
)

STORIES_TABLE = Table(
    "stories",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("uid", String(64), nullable=False, unique=True),
    Column("link_key", Text, unique=True),
    Column("primary_feed_id", ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
    Column("title", Text, nullable=False),
    Column("link", Text),
    Column("author", Text),
    Column("summary", CompressedText),
    Column("content", CompressedText),
    # The digest's text under a title, made with the entry (see `clean.excerpt`):
    # cards are then made without reading the bodies. NULL in stories stored
    # before it was kept; a card made for one of those reads them once.
    Column("excerpt", Text),
    Column("thumbnail", Text),
    Column("published", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("tags", JSON, nullable=False, default=list),
    Column("enclosures", JSON, nullable=False, default=list),
    # Only post exports read it: other queries leave it out (_STORY_COLUMNS).
    Column("raw_body", CompressedText),
    Index("ix_stories_published", "published", "id"),
    # Digest days are found and read along this one, never touching the rows,
    # whose `published` comes after the bodies.
    Index("ix_stories_first_seen_published", "first_seen", "published"),
)

# One feed's entry; several may point at one story (cross-posts).
SOURCES_TABLE = Table(
    "entry_sources",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("feed_id", ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
    Column("story_id", ForeignKey("stories.id", ondelete="CASCADE"), nullable=False),
    Column("entry_id", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    UniqueConstraint("feed_id", "entry_id"),
    # A story's feeds without reading its source rows (digest cards and categories).
    Index("ix_entry_sources_story_feed", "story_id", "feed_id"),
    # A digest page's stories: the sources of its category's feeds in a range of ids.
    Index("ix_entry_sources_feed_source", "feed_id", "id"),
)

# What a digest card shows of a story: written with a new story, made again by
# the next publish after its fields or sources change, and kept between publishes.
#
# A narrow copy: the rows of `stories` carry whole bodies (and `published`
# after them), so reading 50,000 cards from there means reading every body.
# The excerpt is made from the body once; `feeds` are the ids of the feeds of
# the story's sources, comma-separated, its owner's (primary) feed first. `apply`
# deletes the card of every story whose fields or sources it changes, and
# the next publish makes it again.
CARDS_TABLE = Table(
    "digest_cards",
    METADATA,
    Column("story_id", ForeignKey("stories.id", ondelete="CASCADE"), primary_key=True),
    Column("title", Text, nullable=False),
    Column("link", Text),
    Column("thumbnail", Text),
    Column("published", UTCDateTime, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("feeds", Text, nullable=False),
    Column("excerpt", Text, nullable=False),
)

POLLS_TABLE = Table(
    "polls",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("feed_id", ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("duration", Float, nullable=False),
    Column("http_status", Integer),
    Column("wire_bytes", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("warning", Text),
    Column("new_entries", Integer, nullable=False, default=0),
    Column("updated_entries", Integer, nullable=False, default=0),
    Index("ix_polls_feed_started", "feed_id", "started_at"),
)

# Small facts remembered between runs, such as what the outputs were built from.
META_TABLE = Table(
    "meta",
    METADATA,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)


#: Every column of a card, in the table's order: what both ways of making cards write.
CARD_FIELDS = tuple(column.name for column in CARDS_TABLE.c)
