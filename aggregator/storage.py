"""The database: schema, queries and migrations (the only SQLAlchemy importer).

Everything here runs on SQLite and PostgreSQL alike: portable column types,
no dialect-only SQL, datetimes stored as naive UTC and handed out aware.
Writes for one feed happen in one transaction, so a crash leaves either the
whole poll or none of it; polls that store nothing are grouped, many to a
transaction, and a crash loses at most their bookkeeping (those feeds are
simply polled again).
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Dialect,
    Engine,
    Exists,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    literal,
    null,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from aggregator.compact import deflate, inflate
from aggregator.errors import StorageError
from aggregator.models import (
    CacheValidators,
    DigestMember,
    DigestStory,
    Enclosure,
    FeedContext,
    FeedHealth,
    FeedIntents,
    FeedSource,
    FeedState,
    NewStory,
    PollOutcome,
    PollRecord,
    SourceRef,
    StoredSource,
    StoredStory,
    StoryFields,
    StoryView,
)

#: The newest migration; kept in step with aggregator/migrations/versions.
SCHEMA_REVISION = "0007"
POLL_HISTORY_DAYS = 30
#: meta key set whenever stories change, cleared once outputs show them.
UNPUBLISHED_KEY = "stories_unpublished"
_CHUNK = 500


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
        def process(value: datetime | None) -> str | None:
            if value is not None and value.tzinfo is UTC:  # most are: "…+00:00" cut off
                return value.isoformat(" ", "microseconds")[:-6]
            naive = self.process_bind_param(value, dialect)
            return None if naive is None else naive.isoformat(" ", "microseconds")

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

_FEEDS = Table(
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

_FEED_CATEGORIES = Table(
    "feed_categories",
    METADATA,
    Column("feed_id", ForeignKey("feeds.id", ondelete="CASCADE"), primary_key=True),
    Column("category", String(200), primary_key=True),
    Column("position", Integer, nullable=False, default=0, server_default="0"),
)

_STORIES = Table(
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
_SOURCES = Table(
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
# the story's sources, comma-separated, its first source's feed first. `apply`
# deletes the card of every story whose fields or sources it changes, and
# the next publish makes it again.
_CARDS = Table(
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

_POLLS = Table(
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
_META = Table(
    "meta",
    METADATA,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

#: A story's columns but its raw body, which only post exports read.
_STORY_COLUMNS = tuple(c for c in _STORIES.c if c.name != "raw_body")

# The reads every stored document makes, built once (building a statement and
# its cache key cost more than running it on a first poll's small lookups) and
# on the tables, not the mapped classes: the ORM's handling of each execution
# was a tenth of a first poll's storing.
_SOURCE_COLUMNS = (
    _SOURCES.c.id,
    _SOURCES.c.feed_id,
    _SOURCES.c.entry_id,
    _SOURCES.c.story_id,
    _SOURCES.c.content_hash,
)  # StoredSource's fields, in order
_SOURCES_BY_ENTRY_ID = select(*_SOURCE_COLUMNS).where(
    _SOURCES.c.feed_id == bindparam("feed_id"),
    _SOURCES.c.entry_id.in_(bindparam("entry_ids", expanding=True)),
)
_SOURCES_BY_STORY_ID = select(*_SOURCE_COLUMNS).where(
    _SOURCES.c.feed_id == bindparam("feed_id"),
    _SOURCES.c.story_id.in_(bindparam("story_ids", expanding=True)),
)
_STORIES_BY_LINK_KEY = select(_STORIES.c.id, _STORIES.c.link_key).where(
    _STORIES.c.link_key.in_(bindparam("link_keys", expanding=True))
)
_RECENT_FINGERPRINTS = (
    select(_SOURCES.c.content_hash)
    .where(_SOURCES.c.feed_id == bindparam("feed_id"))
    .order_by(_SOURCES.c.id.desc())
    .limit(bindparam("limit"))
)
_STORIES_BY_ID = select(_STORIES).where(_STORIES.c.id.in_(bindparam("story_ids", expanding=True)))
_STORY_IDS_BY_UID = select(_STORIES.c.uid, _STORIES.c.id).where(
    _STORIES.c.uid.in_(bindparam("uids", expanding=True))
)
# What a digest card copies of its story as it is (see make_cards).
_CARD_COLUMNS = (
    _STORIES.c.id,
    _STORIES.c.title,
    _STORIES.c.link,
    _STORIES.c.thumbnail,
    _STORIES.c.published,
    _STORIES.c.first_seen,
)
#: Every column of a card, in the table's order: what both ways of making cards write.
_CARD_FIELDS = tuple(column.name for column in _CARDS.c)
# A story's digest card, copied from its row: its own feed as the list (see make_cards).
_CARDS_FROM_STORIES = insert(_CARDS).from_select(
    list(_CARD_FIELDS),
    select(
        *_CARD_COLUMNS,
        _STORIES.c.primary_feed_id.cast(Text),
        func.coalesce(_STORIES.c.excerpt, ""),
    ).where(_STORIES.c.id.in_(bindparam("story_ids", expanding=True))),
)
# What the config says of a feed, set where it changed (see sync_feeds).
_SET_FEED_FROM_CONFIG = (
    update(_FEEDS)
    .where(_FEEDS.c.id == bindparam("id_"))
    .values(
        name=bindparam("name_"),
        active=bindparam("active_"),
        position=bindparam("position_"),
        interval_seconds=bindparam("interval_seconds_"),
    )
)
_SET_CARD_FEEDS_AND_EXCERPT = (
    update(_CARDS)
    .where(_CARDS.c.story_id == bindparam("id_"))
    .values(feeds=bindparam("feeds_"), excerpt=bindparam("excerpt_"))
)


# --------------------------------------------------------------------------- opening


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


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _enable_sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


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
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_storage(url: str) -> Storage:
    """Open (creating and migrating as needed) the database at an SQLAlchemy URL."""
    try:
        engine = _create_engine(url)
        if _current_revision(engine) != SCHEMA_REVISION:
            migrate(engine)
    except SQLAlchemyError as e:
        raise StorageError(f"cannot open database {make_url(url)!r}: {e}") from e
    return Storage(engine)


# --------------------------------------------------------------------------- conversions


def _enclosures_to_json(enclosures: Iterable[Enclosure]) -> list[dict[str, Any]]:
    return [asdict(e) for e in enclosures]


def _enclosures_from_json(data: list[dict[str, Any]] | None) -> tuple[Enclosure, ...]:
    return tuple(Enclosure(d["url"], d.get("type"), d.get("length")) for d in data or ())


def _fields_to_columns(fields: StoryFields) -> dict[str, Any]:
    return {
        "title": fields.title,
        "link": fields.link,
        "author": fields.author,
        "summary": fields.summary,
        "content": fields.content,
        "excerpt": fields.excerpt,
        "thumbnail": fields.thumbnail,
        "published": fields.published,
        "updated": fields.updated,
        "tags": list(fields.tags),
        "enclosures": _enclosures_to_json(fields.enclosures),
        "raw_body": fields.raw_body,
    }


def _fields_of(row: Row[Any]) -> StoryFields:
    return StoryFields(
        title=row.title,
        link=row.link,
        author=row.author,
        summary=row.summary,
        content=row.content,
        thumbnail=row.thumbnail,
        published=row.published,
        updated=row.updated,
        tags=tuple(row.tags or ()),
        enclosures=_enclosures_from_json(row.enclosures),
        raw_body=row.raw_body,
        excerpt=row.excerpt,
    )


def _feed_state(row: Row[Any]) -> FeedState:
    return FeedState(
        feed_id=row.id,
        url=row.url,
        name=row.name,
        title=row.title,
        validators=CacheValidators(row.etag, row.last_modified),
        body_hash=row.body_hash,
        last_poll=row.last_poll,
        next_check=row.next_check,
        state=row.state,
        failures=row.error_count,
        not_before=row.not_before,
        update_hint=(
            timedelta(seconds=row.update_hint_seconds) if row.update_hint_seconds else None
        ),
        moved_to=row.moved_to,
    )


def _failing_changed(previous: tuple[str, str | None], outcome: PollOutcome) -> bool:
    """Whether the list of failing sources the pages show changes with this poll."""
    failing = {previous[0], outcome.state} - {"ok", "new"}
    return bool(failing) and previous != (outcome.state, outcome.error)


def _story_row(story: NewStory, feed_id: int, now: datetime) -> tuple[Any, ...]:
    """A row of the stories table, in `_INSERT_STORY`'s order."""
    f = story.fields
    return (
        *(story.uid, story.link_key, feed_id, f.title, f.link, f.author, f.summary, f.content),
        *(f.excerpt, f.thumbnail, f.published, f.updated, now, list(f.tags)),
        *(_enclosures_to_json(f.enclosures), f.raw_body),
    )


def _card_row(story_id: int, f: StoryFields, feed_id: int, now: datetime) -> tuple[Any, ...]:
    """A new story's digest card, in `_INSERT_CARD`'s order: its only feed is its first."""
    return (story_id, f.title, f.link, f.thumbnail, f.published, now, str(feed_id), f.excerpt or "")


def _poll_row(feed_id: int, outcome: PollOutcome) -> tuple[Any, ...]:
    """A row of the polls table, in `_INSERT_POLL`'s order."""
    return (
        *(feed_id, outcome.started_at, outcome.duration, outcome.http_status),
        *(outcome.wire_bytes, outcome.error, outcome.warning, outcome.new, outcome.updated),
    )


def _feed_values(poll: PollRecord) -> dict[str, Any]:
    """The feeds-row columns one poll sets."""
    outcome = poll.outcome
    values: dict[str, Any] = {
        "last_poll": outcome.started_at,
        "http_status": outcome.http_status,
        "last_error": outcome.error,
        "state": outcome.state,
        "next_check": poll.next_poll.at,
        "not_before": poll.next_poll.not_before,
    }
    if outcome.error:
        values["error_count"] = poll.failures_before + 1
        return values
    values["error_count"] = 0
    values["last_success"] = outcome.started_at
    validators = poll.validators
    if validators is not None:
        if validators.etag is not None or not outcome.not_modified:
            values["etag"] = validators.etag
        if validators.last_modified is not None or not outcome.not_modified:
            values["last_modified"] = validators.last_modified
    if poll.body_hash is not None:  # the document was parsed: its warning is current
        values["body_hash"] = poll.body_hash
        values["last_warning"] = outcome.warning
        hint = poll.update_hint
        values["update_hint_seconds"] = int(hint.total_seconds()) if hint else None
    if poll.title:
        values["title"] = poll.title
    if poll.site_link:
        values["site_link"] = poll.site_link
    if poll.moved_to:
        values["moved_to"] = poll.moved_to
    return values


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


_INSERT_STORY = _RowInsert(
    _STORIES,
    *("uid", "link_key", "primary_feed_id", "title", "link", "author", "summary", "content"),
    *("excerpt", "thumbnail", "published", "updated", "first_seen", "tags", "enclosures"),
    "raw_body",
)
_INSERT_SOURCE = _RowInsert(
    _SOURCES, "feed_id", "story_id", "entry_id", "content_hash", "first_seen"
)
_INSERT_CARD = _RowInsert(_CARDS, *_CARD_FIELDS)
_INSERT_POLL = _RowInsert(
    _POLLS,
    *("feed_id", "started_at", "duration", "http_status", "wire_bytes", "error", "warning"),
    *("new_entries", "updated_entries"),
)


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


# --------------------------------------------------------------------------- the facade


class Storage:
    """All reads and writes the rest of the program makes, as plain records."""

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

    # ---- batches --------------------------------------------------------------
    #
    # A first poll of a thousand feeds committed a thousand times; in a batch,
    # the ingest methods (recent_fingerprints, load_context, apply,
    # record_polls) share one transaction, and reads see the batch's own
    # writes, so a cross-post stored by one feed is found by the next.

    @property
    def batch_open(self) -> bool:
        return self._batch is not None

    def begin_batch(self) -> None:
        """Group the ingest writes that follow into one transaction, until commit or rollback."""
        assert self._batch is None, "batches do not nest"
        self._batch = self.engine.connect()
        self._batch.begin()

    def commit_batch(self) -> None:
        self._end_batch(commit=True)

    def rollback_batch(self) -> None:
        """Forget everything written since the batch began."""
        self._end_batch(commit=False)

    def _end_batch(self, *, commit: bool) -> None:
        connection, self._batch = self._batch, None
        polls, self._batch_polls = self._batch_polls, []
        unpublished, self._batch_unpublished = self._batch_unpublished, False
        if connection is not None:
            try:
                if commit:
                    if polls:
                        self._write_polls(connection, polls)
                    if unpublished:
                        self._set_meta(connection, UNPUBLISHED_KEY, "1")
                    connection.commit()
                else:
                    connection.rollback()
            finally:
                connection.close()

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
                yield connection

    # ---- feeds ------------------------------------------------------------

    def sync_feeds(self, sources: Sequence[FeedSource], now: datetime) -> dict[str, FeedState]:
        """Make the feeds table match the config; feeds no longer listed become inactive.

        Every run starts here: an unchanged config writes nothing.
        """
        with self.engine.begin() as connection:
            rows = {row.url: row for row in connection.execute(select(_FEEDS))}
            wanted = {source.url for source in sources}
            retired = [row.id for row in rows.values() if row.active and row.url not in wanted]
            new: list[dict[str, Any]] = []
            changed: list[dict[str, Any]] = []
            for position, source in enumerate(sources):
                values = {
                    "name": source.name,
                    "active": True,
                    "position": position,
                    "interval_seconds": int(source.interval.total_seconds()),
                }
                row = rows.get(source.url)
                if row is None:
                    new.append({"url": source.url, "state": "new", "next_check": now, **values})
                elif any(getattr(row, name) != value for name, value in values.items()):
                    changed.append({"id_": row.id} | {f"{k}_": v for k, v in values.items()})
            for chunk in _chunks(retired):
                connection.execute(
                    update(_FEEDS).where(_FEEDS.c.id.in_(chunk)).values(active=False)
                )
            if changed:
                connection.execute(_SET_FEED_FROM_CONFIG, changed)
            if new:
                connection.execute(insert(_FEEDS), new)
            if retired or changed or new:
                rows = {row.url: row for row in connection.execute(select(_FEEDS))}
            links = [
                {"feed_id": rows[s.url].id, "category": c, "position": position}
                for s in sources
                for position, c in enumerate(dict.fromkeys(s.categories))
            ]
            stored = connection.execute(
                select(
                    _FEED_CATEGORIES.c.feed_id,
                    _FEED_CATEGORIES.c.category,
                    _FEED_CATEGORIES.c.position,
                )
            )
            if {tuple(link.values()) for link in links} != set(map(tuple, stored)):
                connection.execute(delete(_FEED_CATEGORIES))
                if links:
                    connection.execute(insert(_FEED_CATEGORIES), links)
            return {s.url: _feed_state(rows[s.url]) for s in sources}

    def feed_states(self) -> dict[str, FeedState]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(_FEEDS).where(_FEEDS.c.active))
            return {row.url: _feed_state(row) for row in rows}

    def due_feeds(self, now: datetime) -> list[str]:
        """URLs of active feeds whose next check has come (the database says what is due)."""
        with self.engine.connect() as connection:
            query = (
                select(_FEEDS.c.url)
                .where(_FEEDS.c.active, _FEEDS.c.state != "gone")
                .where((_FEEDS.c.next_check.is_(None)) | (_FEEDS.c.next_check <= now))
                .order_by(_FEEDS.c.next_check, _FEEDS.c.position)
            )
            return list(connection.scalars(query))

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as connection:
            value: str | None = connection.scalar(select(_META.c.value).where(_META.c.key == key))
            return value

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as connection:
            self._set_meta(connection, key, value)

    def _set_meta(self, connection: Connection, key: str, value: str) -> None:
        found = connection.execute(update(_META).where(_META.c.key == key).values(value=value))
        if found.rowcount == 0:
            connection.execute(insert(_META).values(key=key, value=value))

    # ---- ingest -------------------------------------------------------------

    def recent_fingerprints(self, feed_id: int, limit: int) -> frozenset[str]:
        """The raw-entry fingerprints of this feed's newest `limit` stored entries.

        Enough to recognise what a document repeats from the last polls
        without the database at hand: an older entry it brings back is
        cleaned again and then found unchanged by its stored fingerprint.
        """
        with self._reading() as connection:
            found = {"feed_id": feed_id, "limit": limit}
            return frozenset(connection.scalars(_RECENT_FINGERPRINTS, found))

    def load_context(
        self, feed_id: int, feed_url: str, hashes: Mapping[str, str], link_keys: Sequence[str]
    ) -> FeedContext:
        """Read what deciding a document needs: its known entries and stories sharing links.

        `hashes` maps each entry id of the document to its content hash; stories
        are read in full only where an entry changed or a link matched, because
        an unchanged entry needs nothing but its stored hash.
        """
        with self._reading() as connection:
            sources: dict[str, StoredSource] = {}
            for chunk in _chunks(list(hashes)):
                found = {"feed_id": feed_id, "entry_ids": chunk}
                for row in connection.execute(_SOURCES_BY_ENTRY_ID, found):
                    sources[row.entry_id] = StoredSource(*row)
            story_by_link: dict[str, int] = {}
            for chunk in _chunks(list(link_keys)):
                for story_id, key in connection.execute(_STORIES_BY_LINK_KEY, {"link_keys": chunk}):
                    if key is not None:
                        story_by_link[key] = story_id
            own: dict[int, StoredSource] = {}
            for chunk in _chunks(list(story_by_link.values())):
                found = {"feed_id": feed_id, "story_ids": chunk}
                for row in connection.execute(_SOURCES_BY_STORY_ID, found):
                    own.setdefault(row.story_id, StoredSource(*row))
            changed = {s.story_id for s in sources.values() if s.content_hash != hashes[s.entry_id]}
            known = {s.story_id for s in sources.values()}
            story_ids = changed | (set(story_by_link.values()) - known)
            stories: dict[int, StoredStory] = {}
            for chunk in _chunks(sorted(story_ids)):
                for story in connection.execute(_STORIES_BY_ID, {"story_ids": chunk}):
                    stories[story.id] = StoredStory(
                        story.id, story.primary_feed_id, _fields_of(story)
                    )
            return FeedContext(feed_id, feed_url, sources, story_by_link, own, stories)

    def apply(self, intents: FeedIntents, poll: PollRecord) -> set[int]:
        """Write one poll's intents and outcome in a single transaction.

        Returns the ids of stories whose published form changed.
        """
        feed_id = poll.feed_id
        now = poll.outcome.started_at
        touched: set[int] = set()
        with self._writing() as connection:
            if intents.new:
                _INSERT_STORY.run(connection, [_story_row(s, feed_id, now) for s in intents.new])
                # Then the ids by uid: INSERT … RETURNING in parameter order went
                # one row at a time.
                id_of: dict[str, int] = {}
                for chunk in _chunks([s.uid for s in intents.new]):
                    found = connection.execute(_STORY_IDS_BY_UID, {"uids": chunk})
                    id_of.update((uid, id_) for uid, id_ in found)
                ids = [id_of[s.uid] for s in intents.new]
                _INSERT_SOURCE.run(
                    connection,
                    [
                        (feed_id, story_id, s.entry_id, s.entry_hash, now)
                        for story_id, s in zip(ids, intents.new, strict=True)
                    ],
                )
                # Their digest cards, which publishing would otherwise make from the
                # rows just written, alone on one core after the poll: a new story's
                # only feed is this one, and its excerpt was made with its entry.
                _INSERT_CARD.run(
                    connection,
                    [
                        _card_row(story_id, s.fields, feed_id, now)
                        for story_id, s in zip(ids, intents.new, strict=True)
                    ],
                )
                touched.update(ids)
            if intents.added:
                _INSERT_SOURCE.run(
                    connection,
                    [(feed_id, a.story_id, a.entry_id, a.entry_hash, now) for a in intents.added],
                )
                touched.update(a.story_id for a in intents.added)
            # Core executemany, one statement each: per-row ORM updates cost
            # a couple of milliseconds apiece, most of a re-poll's time.
            if intents.updated:
                connection.execute(
                    update(_SOURCES)
                    .where(_SOURCES.c.id == bindparam("id_"))
                    .values(entry_id=bindparam("entry_id_"), content_hash=bindparam("hash_")),
                    [
                        {"id_": u.source_id, "entry_id_": u.entry_id, "hash_": u.entry_hash}
                        for u in intents.updated
                    ],
                )
            changed_fields = [(a.story_id, a.fields) for a in intents.added if a.fields] + [
                (u.story_id, u.fields) for u in intents.updated if u.fields
            ]
            if changed_fields:
                columns = _fields_to_columns(changed_fields[0][1])
                connection.execute(
                    update(_STORIES)
                    .where(_STORIES.c.id == bindparam("id_"))
                    .values({name: bindparam(f"{name}_") for name in columns}),
                    [
                        {"id_": story_id}
                        | {f"{k}_": v for k, v in _fields_to_columns(fields).items()}
                        for story_id, fields in changed_fields
                    ],
                )
                touched.update(story_id for story_id, _ in changed_fields)
            # Digest cards show a story's fields and sources: the next publish remakes them.
            stale = [a.story_id for a in intents.added] + [i for i, _ in changed_fields]
            for chunk in _chunks(stale):
                connection.execute(delete(_CARDS).where(_CARDS.c.story_id.in_(chunk)))
            # In the same transaction as the stories: a kill before the
            # outputs are rebuilt leaves the mark behind for the next run.
            if self._batch is None:
                self._write_polls(connection, [poll])
                if touched:
                    self._set_meta(connection, UNPUBLISHED_KEY, "1")
            else:
                self._batch_polls.append(poll)
                self._batch_unpublished |= bool(touched)
        return touched

    def record_polls(self, polls: Sequence[PollRecord]) -> None:
        """Record polls that stored nothing (errors, 304s, unchanged bodies) together.

        One transaction for many feeds: on a re-poll where every server says
        304, per-feed transactions were most of the time spent.
        """
        if polls:
            with self._writing() as connection:
                self._write_polls(connection, polls)

    def _write_polls(self, connection: Connection, polls: Sequence[PollRecord]) -> None:
        """The poll rows and what each poll leaves on its feed's row."""
        previous: dict[int, tuple[str, str | None]] = {}
        for chunk in _chunks(sorted({p.feed_id for p in polls})):
            query = select(_FEEDS.c.id, _FEEDS.c.state, _FEEDS.c.last_error).where(
                _FEEDS.c.id.in_(chunk)
            )
            for feed_id, state, error in connection.execute(query):
                previous[feed_id] = (state, error)
        if any(_failing_changed(previous[p.feed_id], p.outcome) for p in polls):
            # Pages list failing sources: a kill before they are rebuilt must
            # not hide this change from the next run.
            self._set_meta(connection, UNPUBLISHED_KEY, "1")
        _INSERT_POLL.run(connection, [_poll_row(p.feed_id, p.outcome) for p in polls])
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for poll in polls:
            values = _feed_values(poll)
            values["id_"] = poll.feed_id
            by_columns[tuple(sorted(values))].append(values)
        for columns, rows in by_columns.items():
            statement = (
                update(_FEEDS)
                .where(_FEEDS.c.id == bindparam("id_"))
                .values({c: bindparam(c) for c in columns if c != "id_"})
            )
            connection.execute(statement, rows)

    def prune_polls(self, now: datetime) -> None:
        """Poll history is for diagnosis; a month of it is plenty."""
        cutoff = now - timedelta(days=POLL_HISTORY_DAYS)
        with self.engine.begin() as connection:
            connection.execute(delete(_POLLS).where(_POLLS.c.started_at < cutoff))

    # ---- reading for publishing ---------------------------------------------

    def _active_story_ids(self, category: str | None) -> Any:
        query = (
            select(_SOURCES.c.story_id)
            .join(_FEEDS, _FEEDS.c.id == _SOURCES.c.feed_id)
            .where(_FEEDS.c.active)
        )
        if category is not None:
            query = query.join(_FEED_CATEGORIES, _FEED_CATEGORIES.c.feed_id == _FEEDS.c.id).where(
                _FEED_CATEGORIES.c.category == category
            )
        return query

    def newest_stories(self, category: str | None, limit: int) -> list[StoryView]:
        """The newest stories of a category (None: of every active feed), newest first."""
        # EXISTS rather than IN: walking the (published, id) index from the newest
        # end stops after `limit` matches instead of collecting every story id first.
        in_output = _has_active_source(_STORIES.c.id, category)
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(*_STORY_COLUMNS)
                .where(in_output)
                .order_by(_STORIES.c.published.desc(), _STORIES.c.id.desc())
                .limit(limit)
            ).all()
            return self._views(connection, rows)

    def first_seen_times(self, story_ids: Iterable[int]) -> list[datetime]:
        """First-seen times of the given stories, for finding the digest days they are on."""
        with self.engine.connect() as connection:
            result: list[datetime] = []
            for chunk in _chunks(sorted(story_ids)):
                query = select(_STORIES.c.first_seen).where(_STORIES.c.id.in_(chunk))
                result.extend(connection.scalars(query))
            return result

    def earliest_first_seen(self, since: datetime | None = None) -> datetime | None:
        """When the first story (at or after `since`) was first seen: how digest days are found.

        One step along the first_seen index per digest day, never a list of all stories.
        """
        query = select(func.min(_STORIES.c.first_seen))
        if since is not None:
            query = query.where(_STORIES.c.first_seen >= since)
        with self.engine.connect() as connection:
            earliest: datetime | None = connection.scalar(query)
            return earliest

    def latest_first_seen(self, before: datetime | None = None) -> datetime | None:
        """When the last story (before `before`) was first seen."""
        query = select(func.max(_STORIES.c.first_seen))
        if before is not None:
            query = query.where(_STORIES.c.first_seen < before)
        with self.engine.connect() as connection:
            latest: datetime | None = connection.scalar(query)
            return latest

    @contextmanager
    def digest_reader(self) -> Iterator[DigestReader]:
        """The digest's reads, on one connection that stays open while pages are written."""
        with self.engine.connect() as connection:
            yield DigestReader(connection, _digest_feeds(connection), self.engine)

    def categories_of(self, story_ids: Iterable[int]) -> set[str]:
        """The output categories the given stories appear in."""
        with self.engine.connect() as connection:
            found: set[str] = set()
            for chunk in _chunks(sorted(story_ids)):
                found.update(
                    connection.scalars(
                        select(_FEED_CATEGORIES.c.category)
                        .join(_SOURCES, _SOURCES.c.feed_id == _FEED_CATEGORIES.c.feed_id)
                        .where(_SOURCES.c.story_id.in_(chunk))
                        .distinct()
                    )
                )
            return found

    def story_ids_for_export(
        self,
        category: str | None = None,
        since: datetime | None = None,
        story_ids: Iterable[int] | None = None,
    ) -> list[int]:
        """Ids of the active feeds' stories, oldest first, optionally narrowed down.

        `category` keeps one category's stories, `since` those published at or
        after it, and `story_ids` only those among the given ones.
        """
        query = select(_STORIES.c.id).where(_STORIES.c.id.in_(self._active_story_ids(category)))
        if since is not None:
            query = query.where(_STORIES.c.published >= since)
        with self.engine.connect() as connection:
            if story_ids is None:
                return list(connection.scalars(query.order_by(_STORIES.c.id)))
            found: list[int] = []
            for chunk in _chunks(sorted(set(story_ids))):
                found.extend(connection.scalars(query.where(_STORIES.c.id.in_(chunk))))
            return sorted(found)

    def stories_with_raw_body(self, story_ids: Sequence[int]) -> list[StoryView]:
        """The given stories with their raw HTML, for post exports (ask in batches)."""
        with self.engine.connect() as connection:
            rows: list[Row[Any]] = []
            for chunk in _chunks(list(story_ids)):
                query = select(_STORIES).where(_STORIES.c.id.in_(chunk)).order_by(_STORIES.c.id)
                rows.extend(connection.execute(query))
            return self._views(connection, rows, raw=True)

    def _feed_categories(
        self, connection: Connection, feed_ids: Iterable[int]
    ) -> dict[int, tuple[str, ...]]:
        """The given feeds' categories, each feed's in config order."""
        found: dict[int, list[str]] = defaultdict(list)
        for chunk in _chunks(sorted(feed_ids)):
            query = (
                select(_FEED_CATEGORIES.c.feed_id, _FEED_CATEGORIES.c.category)
                .where(_FEED_CATEGORIES.c.feed_id.in_(chunk))
                .order_by(
                    _FEED_CATEGORIES.c.feed_id,
                    _FEED_CATEGORIES.c.position,
                    _FEED_CATEGORIES.c.category,
                )
            )
            for feed_id, category in connection.execute(query):
                found[feed_id].append(category)
        return {feed_id: tuple(names) for feed_id, names in found.items()}

    def _views(
        self, connection: Connection, rows: Sequence[Row[Any]], *, raw: bool = False
    ) -> list[StoryView]:
        # Feeds as plain columns, once each: they repeat from story to story.
        feeds: dict[int, tuple[str, str | None, str | None, str | None, int]] = {}
        feeds_of: dict[int, dict[int, None]] = defaultdict(dict)
        for chunk in _chunks([row.id for row in rows]):
            query = (
                select(
                    _SOURCES.c.story_id,
                    _FEEDS.c.id,
                    _FEEDS.c.url,
                    _FEEDS.c.name,
                    _FEEDS.c.title,
                    _FEEDS.c.site_link,
                    _FEEDS.c.position,
                )
                .join(_FEEDS, _FEEDS.c.id == _SOURCES.c.feed_id)
                .where(_SOURCES.c.story_id.in_(chunk), _FEEDS.c.active)
                .order_by(_SOURCES.c.first_seen, _SOURCES.c.id)
            )
            for story_id, feed_id, url, name, title, site_link, position in connection.execute(
                query
            ):
                feeds_of[story_id].setdefault(feed_id, None)
                feeds[feed_id] = (url, name, title, site_link, position)
        feed_categories = self._feed_categories(connection, feeds)
        refs = {
            feed_id: SourceRef(
                feed_url=url,
                name=name or title or url,
                site_link=site_link,
                channel_title=title,
                categories=feed_categories.get(feed_id, ()),
            )
            for feed_id, (url, name, title, site_link, _) in feeds.items()
        }
        views = []
        for row in rows:
            # The story's first source leads; the others follow in the order they came.
            ids = sorted(feeds_of[row.id], key=lambda f: f != row.primary_feed_id)
            categories = dict.fromkeys(
                name
                for feed_id in sorted(ids, key=lambda f: feeds[f][4])
                for name in feed_categories.get(feed_id, ())
            )
            views.append(
                StoryView(
                    uid=row.uid,
                    title=row.title,
                    link=row.link,
                    author=row.author,
                    published=row.published,
                    updated=row.updated,
                    first_seen=row.first_seen,
                    summary=row.summary,
                    content=row.content,
                    thumbnail=row.thumbnail,
                    tags=tuple(row.tags or ()),
                    categories=tuple(categories),
                    enclosures=_enclosures_from_json(row.enclosures),
                    sources=tuple(refs[feed_id] for feed_id in ids),
                    raw_body=row.raw_body if raw else None,
                )
            )
        return views

    # ---- status -------------------------------------------------------------

    def health(self, *, failing_only: bool = False) -> list[FeedHealth]:
        """Every active feed's last poll and entry count, in config order.

        `failing_only`: only the feeds pages warn about (`FeedHealth.failing`),
        without counting every entry (their counts are 0).
        """
        with self.engine.connect() as connection:
            counts: dict[int, int] = {}
            query = select(_FEEDS).where(_FEEDS.c.active).order_by(_FEEDS.c.position)
            if failing_only:
                query = query.where(_FEEDS.c.state.not_in(("ok", "new")))
            else:
                by_feed = select(_SOURCES.c.feed_id, func.count()).group_by(_SOURCES.c.feed_id)
                counts.update((feed_id, n) for feed_id, n in connection.execute(by_feed))
            rows = connection.execute(query).all()
            found = [
                FeedHealth(
                    url=row.url,
                    name=row.name or row.title or row.url,
                    state=row.state,
                    last_poll=row.last_poll,
                    http_status=row.http_status,
                    last_error=row.last_error,
                    entries=counts.get(row.id, 0),
                    next_check=row.next_check,
                    last_warning=row.last_warning,
                    not_before=row.not_before,
                    moved_to=row.moved_to,
                )
                for row in rows
            ]
            return [h for h in found if h.failing] if failing_only else found

    def count_stories(self) -> int:
        with self.engine.connect() as connection:
            return (
                connection.scalar(
                    select(func.count())
                    .select_from(_STORIES)
                    .where(_STORIES.c.id.in_(self._active_story_ids(None)))
                )
                or 0
            )


# --------------------------------------------------------------------------- digest reads

_SORT_KEY = "sort_key"
_MEMBER = "m"


def _digest_feeds(connection: Connection) -> dict[int, SourceRef]:
    """Every active feed as digest cards name it, with its categories in config order."""
    categories: dict[int, list[str]] = defaultdict(list)
    query = select(_FEED_CATEGORIES.c.feed_id, _FEED_CATEGORIES.c.category).order_by(
        _FEED_CATEGORIES.c.feed_id, _FEED_CATEGORIES.c.position, _FEED_CATEGORIES.c.category
    )
    for feed_id, category in connection.execute(query):
        categories[feed_id].append(category)
    feeds = select(_FEEDS.c.id, _FEEDS.c.url, _FEEDS.c.name, _FEEDS.c.title, _FEEDS.c.site_link)
    return {
        feed_id: SourceRef(
            feed_url=url,
            name=name or title or url,
            site_link=site_link,
            channel_title=title,
            categories=tuple(categories.get(feed_id, ())),
        )
        for feed_id, url, name, title, site_link in connection.execute(feeds.where(_FEEDS.c.active))
    }


class DigestReader:
    """The digest's reads over one connection: narrow columns and cards, never a body.

    A category's stories of a day are ordered by a *key*: the id of the first
    of their sources stored among that category's active feeds. Source ids only
    grow, so a story that reaches a category later (new, or cross-posted there
    from a feed of another category) sorts after every story already in it,
    and pages counted from the oldest keep their stories when new ones come.
    Stories whose active feeds are in no category form the category None.
    """

    def __init__(
        self,
        connection: Connection,
        feeds: Mapping[int, SourceRef],
        engine: Engine,
    ) -> None:
        self._connection = connection
        self._feeds = feeds
        self._engine = engine
        # The active feeds of each category (None: of none), for queries that look at
        # sources alone rather than joining feeds and their categories row by row.
        self._feeds_of: dict[str | None, list[int]] = defaultdict(list)
        for feed_id, ref in feeds.items():
            for category in ref.categories or (None,):
                self._feeds_of[category].append(feed_id)
        # Only a config with a feed in no category has an "other sources" list to read.
        self._uncategorised = bool(self._feeds_of.get(None))
        self._sources: dict[str, tuple[SourceRef, ...]] = {}
        self._page_queries: dict[str | None, Any] = {}

    # ---- queries

    def _grouped(self, start: datetime, end: datetime, category: str | None, all_: bool) -> Any:
        """(category, story id, key, published) of a day's stories: of one category, of
        every category (`all_`), or of none (`category` None)."""
        categorised = all_ or category is not None
        key = func.min(_SOURCES.c.id).label(_SORT_KEY)
        query = (
            select(
                (_FEED_CATEGORIES.c.category if categorised else null()).label("category"),
                _STORIES.c.id.label("story_id"),
                key,
                _STORIES.c.published.label("published"),
            )
            .select_from(_SOURCES)
            .join(_FEEDS, _FEEDS.c.id == _SOURCES.c.feed_id)
            .join(_STORIES, _STORIES.c.id == _SOURCES.c.story_id)
            .where(_FEEDS.c.active, _STORIES.c.first_seen >= start, _STORIES.c.first_seen < end)
        )
        if not categorised:
            return query.where(~_has_categorised_source(_STORIES.c.id)).group_by(_STORIES.c.id)
        query = query.join(_FEED_CATEGORIES, _FEED_CATEGORIES.c.feed_id == _SOURCES.c.feed_id)
        if category is not None:
            query = query.where(_FEED_CATEGORIES.c.category == category)
        # Grouped by the story's primary key, so PostgreSQL takes `published` too.
        return query.group_by(_FEED_CATEGORIES.c.category, _STORIES.c.id)

    def _with_cards(self, grouped: Any) -> tuple[Any, Any]:
        """The grouped rows with their stories' cards, when made (outer join), and the
        subquery of the grouped rows, to order by."""
        member = grouped.subquery(_MEMBER)
        return select(
            member.c.category,
            member.c.sort_key,
            member.c.published,
            member.c.story_id,
            _CARDS.c.title,
            _CARDS.c.link,
            _CARDS.c.thumbnail,
            _CARDS.c.first_seen,
            _CARDS.c.feeds,
            _CARDS.c.excerpt,
        ).outerjoin(_CARDS, _CARDS.c.story_id == member.c.story_id), member

    def _members(
        self, query: Any, params: Mapping[str, Any] | None = None, *, stream: bool = False
    ) -> Iterator[DigestMember]:
        if stream:
            options = {"yield_per": 2000}
            result = self._connection.execute(query, params, execution_options=options)
            rows: Iterable[Any] = (row for batch in result.partitions() for row in batch)
        else:
            rows = self._connection.execute(query, params).all()
        story = self._story
        for category, key, published, story_id, title, link, thumbnail, seen, feeds, words in rows:
            yield DigestMember(
                category,
                key,
                published,
                story_id,
                None
                if title is None
                else story(story_id, title, published, link, thumbnail, seen, feeds, words),
            )

    def _story(
        self,
        story_id: int,
        title: str,
        published: datetime,
        link: str | None,
        thumbnail: str | None,
        first_seen: datetime,
        feeds: str,
        excerpt: str,
    ) -> DigestStory:
        sources = self._sources.get(feeds)
        if sources is None:  # a few hundred distinct lists at most: feeds and their cross-posts
            sources = tuple(
                ref for f in feeds.split(",") if f and (ref := self._feeds.get(int(f))) is not None
            )
            self._sources[feeds] = sources
        return DigestStory(
            story_id, title, link, thumbnail, published, first_seen, excerpt, sources
        )

    # ---- what the digest asks

    def day_members(self, start: datetime, end: datetime) -> Iterator[DigestMember]:
        """Every category's stories first seen in [start, end), streamed.

        Category by category (None last), each in key order: oldest first.
        """
        query, member = self._with_cards(self._grouped(start, end, None, all_=True))
        yield from self._members(query.order_by(member.c.category, member.c.sort_key), stream=True)
        if self._uncategorised:
            query, member = self._with_cards(self._grouped(start, end, None, all_=False))
            yield from self._members(query.order_by(member.c.sort_key), stream=True)

    def members_of(
        self, story_ids: Iterable[int], start: datetime, end: datetime
    ) -> list[DigestMember]:
        """Where the given stories stand, for those first seen in [start, end)."""
        found: list[DigestMember] = []
        for chunk in _chunks(sorted(set(story_ids))):
            for all_ in (True, False) if self._uncategorised else (True,):
                grouped = self._grouped(start, end, None, all_=all_)
                query, _ = self._with_cards(grouped.where(_STORIES.c.id.in_(chunk)))
                found.extend(self._members(query))
        return found

    def page_members(
        self, start: datetime, end: datetime, category: str | None, key_from: int, key_to: int
    ) -> list[DigestMember]:
        """A category's stories of the day with keys in [key_from, key_to), in key order.

        Only that category's sources in that id range are read, so a page costs
        the same however long the day's list is; a story with an earlier source
        in the category has an earlier key and belongs to an earlier page.
        """
        query = self._page_queries.get(category)
        if query is None:  # built once per category: building costs more than running
            query = self._page_queries[category] = self._page_query(category)
        params = {"start": start, "end": end, "key_from": key_from, "key_to": key_to}
        return list(self._members(query, params))

    def _page_query(self, category: str | None) -> Any:
        key_from, key_to = bindparam("key_from", type_=Integer), bindparam("key_to", type_=Integer)
        grouped = (
            select(
                (null() if category is None else literal(category)).label("category"),
                _STORIES.c.id.label("story_id"),
                func.min(_SOURCES.c.id).label(_SORT_KEY),
                _STORIES.c.published.label("published"),
            )
            .select_from(_SOURCES)
            .join(_STORIES, _STORIES.c.id == _SOURCES.c.story_id)
            .where(
                _SOURCES.c.feed_id.in_(self._feeds_of.get(category, [])),
                _SOURCES.c.id >= key_from,
                _SOURCES.c.id < key_to,
                _STORIES.c.first_seen >= bindparam("start"),
                _STORIES.c.first_seen < bindparam("end"),
                ~_has_active_source(_SOURCES.c.story_id, category, below=key_from),
            )
            .group_by(_STORIES.c.id)
        )
        if category is None:
            grouped = grouped.where(~_has_categorised_source(_STORIES.c.id))
        query, member = self._with_cards(grouped)
        return query.order_by(member.c.sort_key)

    def newest(
        self, start: datetime, end: datetime, category: str | None, limit: int
    ) -> list[DigestMember]:
        """A category's `limit` newest stories of the day, newest first."""
        query, member = self._with_cards(self._grouped(start, end, category, all_=False))
        order = (member.c.published.desc(), member.c.story_id.desc())
        return list(self._members(query.order_by(*order).limit(limit)))

    def stories(self, story_ids: Iterable[int]) -> dict[int, DigestStory]:
        """The cards of the given stories, by id; stories without one are left out."""
        found: dict[int, DigestStory] = {}
        for chunk in _chunks(sorted(set(story_ids))):
            query = select(
                _CARDS.c.story_id,
                _CARDS.c.title,
                _CARDS.c.published,
                _CARDS.c.link,
                _CARDS.c.thumbnail,
                _CARDS.c.first_seen,
                _CARDS.c.feeds,
                _CARDS.c.excerpt,
            ).where(_CARDS.c.story_id.in_(chunk))
            for row in self._connection.execute(query):
                found[row[0]] = self._story(*row)
        return found

    def make_cards(
        self,
        story_ids: Iterable[int],
        excerpt: Callable[[str | None, str | None], str],
    ) -> dict[int, DigestStory]:
        """Make and keep the cards of the given stories.

        Excerpts are the stories' own, made when they were stored;
        `excerpt(summary, content)`, the digest's rule, makes those of stories
        stored before they were kept, the one case where a card reads a body.
        Written in a transaction of its own while this reader's queries may
        still be open; another publisher making the same cards meanwhile only
        replaces them with the same values.
        """
        made: list[dict[str, Any]] = []
        with self._engine.begin() as connection:
            for chunk in _chunks(sorted(set(story_ids))):
                feeds: dict[int, dict[int, None]] = defaultdict(dict)
                of_stories = (
                    select(_SOURCES.c.story_id, _SOURCES.c.feed_id)
                    .where(_SOURCES.c.story_id.in_(chunk))
                    .order_by(_SOURCES.c.story_id, _SOURCES.c.first_seen, _SOURCES.c.id)
                )
                for story_id, feed_id in connection.execute(of_stories):
                    feeds[story_id][feed_id] = None
                query = select(
                    *_CARD_COLUMNS, _STORIES.c.primary_feed_id, _STORIES.c.excerpt
                ).where(_STORIES.c.id.in_(chunk))
                cards = []
                copied_right: set[int] = set()  # cards the database copies as they should be
                for (
                    story_id,
                    title,
                    link,
                    thumbnail,
                    published,
                    first_seen,
                    primary,
                    text,
                ) in connection.execute(query):
                    # The story's first source leads; the others follow in the order they came.
                    order = sorted(feeds[story_id], key=lambda f: f != primary)
                    if order == [primary] and text is not None:
                        copied_right.add(story_id)
                    cards.append(
                        {
                            "story_id": story_id,
                            "title": title,
                            "link": link,
                            "thumbnail": thumbnail,
                            "published": published,
                            "first_seen": first_seen,
                            "feeds": ",".join(map(str, order)),
                            "excerpt": text,
                        }
                    )
                unmade = {card["story_id"]: card for card in cards if card["excerpt"] is None}
                if unmade:
                    bodies = select(_STORIES.c.id, _STORIES.c.summary, _STORIES.c.content).where(
                        _STORIES.c.id.in_(sorted(unmade))
                    )
                    for story_id, summary, content in connection.execute(bodies):
                        unmade[story_id]["excerpt"] = excerpt(summary, content)
                connection.execute(delete(_CARDS).where(_CARDS.c.story_id.in_(chunk)))
                if cards:
                    # Copied within the database, each with its story's own feed as
                    # its list; the few cross-posts and cards without an excerpt
                    # yet are then set right (binding 50,000 rows was most of this).
                    connection.execute(_CARDS_FROM_STORIES, {"story_ids": chunk})
                    fixes = [
                        {"id_": c["story_id"], "feeds_": c["feeds"], "excerpt_": c["excerpt"]}
                        for c in cards
                        if c["story_id"] not in copied_right
                    ]
                    if fixes:
                        connection.execute(_SET_CARD_FEEDS_AND_EXCERPT, fixes)
                made += cards
        return {card["story_id"]: self._story(**card) for card in made}
