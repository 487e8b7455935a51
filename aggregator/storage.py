"""The database: schema, queries and migrations (the only SQLAlchemy importer).

Everything here runs on SQLite and PostgreSQL alike: portable column types,
no dialect-only SQL, datetimes stored as naive UTC and handed out aware.
Writes for one feed happen in one transaction, so a crash leaves either the
whole poll or none of it; polls that store nothing are grouped, many to a
transaction, and a crash loses at most their bookkeeping (those feeds are
simply polled again).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
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
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    sessionmaker,
    undefer,
)

from aggregator.errors import StorageError
from aggregator.models import (
    CacheValidators,
    Enclosure,
    FeedContext,
    FeedHealth,
    FeedIntents,
    FeedSource,
    FeedState,
    PollOutcome,
    PollRecord,
    SourceRef,
    StoredSource,
    StoredStory,
    StoryFields,
    StoryView,
)

#: The newest migration; kept in step with aggregator/migrations/versions.
SCHEMA_REVISION = "0005"
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


class CompressedText(TypeDecorator[str]):
    """Text stored deflated: raw entry HTML is a third of the database and rarely read.

    Level 1 keeps most of the saving at a fraction of the default level's cost.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        return None if value is None else zlib.compress(value.encode("utf-8"), 1)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> str | None:
        return None if value is None else zlib.decompress(value).decode("utf-8")


class Base(DeclarativeBase):
    pass


class FeedRow(Base):
    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    site_link: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    interval_seconds: Mapped[int] = mapped_column(Integer, default=1800)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    body_hash: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="new")
    last_poll: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_check: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    http_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_warning: Mapped[str | None] = mapped_column(Text)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    # A server's Retry-After: not even a manual update polls before it.
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the feed says of its own rhythm (<ttl>, sy:updatePeriod), kept for 304s.
    update_hint_seconds: Mapped[int | None] = mapped_column(Integer)
    # Where permanent redirects led: polled instead of `url` from then on.
    moved_to: Mapped[str | None] = mapped_column(Text)


class FeedCategoryRow(Base):
    __tablename__ = "feed_categories"

    feed_id: Mapped[int] = mapped_column(
        ForeignKey("feeds.id", ondelete="CASCADE"), primary_key=True
    )
    category: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class StoryRow(Base):
    __tablename__ = "stories"
    __table_args__ = (Index("ix_stories_published", "published", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    link_key: Mapped[str | None] = mapped_column(Text, unique=True)
    primary_feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)
    thumbnail: Mapped[str | None] = mapped_column(Text)
    published: Mapped[datetime] = mapped_column(UTCDateTime)
    updated: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    enclosures: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Only post exports read it, so other queries do not carry it around.
    raw_body: Mapped[str | None] = mapped_column(CompressedText, deferred=True)


class SourceRow(Base):
    """One feed's entry; several may point at one story (cross-posts)."""

    __tablename__ = "entry_sources"
    __table_args__ = (
        UniqueConstraint("feed_id", "entry_id"),
        Index("ix_entry_sources_feed_recent", "feed_id", "id", "content_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"), index=True)
    entry_id: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)


class PollRow(Base):
    __tablename__ = "polls"
    __table_args__ = (Index("ix_polls_feed_started", "feed_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration: Mapped[float] = mapped_column(Float)
    http_status: Mapped[int | None] = mapped_column(Integer)
    wire_bytes: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    warning: Mapped[str | None] = mapped_column(Text)
    new_entries: Mapped[int] = mapped_column(Integer, default=0)
    updated_entries: Mapped[int] = mapped_column(Integer, default=0)


class MetaRow(Base):
    """Small facts remembered between runs, such as what the outputs were built from."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# The tables themselves, for bulk statements that bypass the ORM's per-row work.
_STORIES = cast(Table, StoryRow.__table__)
_SOURCES = cast(Table, SourceRow.__table__)
_FEEDS = cast(Table, FeedRow.__table__)
_POLLS = cast(Table, PollRow.__table__)


# --------------------------------------------------------------------------- opening


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
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
        "thumbnail": fields.thumbnail,
        "published": fields.published,
        "updated": fields.updated,
        "tags": list(fields.tags),
        "enclosures": _enclosures_to_json(fields.enclosures),
        "raw_body": fields.raw_body,
    }


def _fields_of(row: StoryRow) -> StoryFields:
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
    )


def _feed_state(row: FeedRow) -> FeedState:
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


def _poll_row(feed_id: int, outcome: PollOutcome) -> dict[str, Any]:
    return {
        "feed_id": feed_id,
        "started_at": outcome.started_at,
        "duration": outcome.duration,
        "http_status": outcome.http_status,
        "wire_bytes": outcome.wire_bytes,
        "error": outcome.error,
        "warning": outcome.warning,
        "new_entries": outcome.new,
        "updated_entries": outcome.updated,
    }


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


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------- the facade


class Storage:
    """All reads and writes the rest of the program makes, as plain records."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    # ---- feeds ------------------------------------------------------------

    def sync_feeds(self, sources: Sequence[FeedSource], now: datetime) -> dict[str, FeedState]:
        """Make the feeds table match the config; feeds no longer listed become inactive."""
        with self._sessions.begin() as session:
            rows = {row.url: row for row in session.scalars(select(FeedRow))}
            wanted = {source.url for source in sources}
            for row in rows.values():
                if row.url not in wanted:
                    row.active = False
            for position, source in enumerate(sources):
                feed = rows.get(source.url)
                if feed is None:
                    feed = FeedRow(url=source.url, state="new", next_check=now)
                    session.add(feed)
                    rows[source.url] = feed
                feed.name = source.name
                feed.active = True
                feed.position = position
                feed.interval_seconds = int(source.interval.total_seconds())
            session.flush()
            links = [
                {"feed_id": rows[s.url].id, "category": c, "position": position}
                for s in sources
                for position, c in enumerate(dict.fromkeys(s.categories))
            ]
            stored = session.execute(
                select(FeedCategoryRow.feed_id, FeedCategoryRow.category, FeedCategoryRow.position)
            )
            # Every run starts here: an unchanged config writes nothing.
            if {tuple(link.values()) for link in links} != set(map(tuple, stored)):
                session.execute(delete(FeedCategoryRow))
                if links:
                    session.execute(insert(FeedCategoryRow), links)
            return {s.url: _feed_state(rows[s.url]) for s in sources}

    def feed_states(self) -> dict[str, FeedState]:
        with self._sessions() as session:
            rows = session.scalars(select(FeedRow).where(FeedRow.active))
            return {row.url: _feed_state(row) for row in rows}

    def due_feeds(self, now: datetime) -> list[str]:
        """URLs of active feeds whose next check has come (the database says what is due)."""
        with self._sessions() as session:
            query = (
                select(FeedRow.url)
                .where(FeedRow.active, FeedRow.state != "gone")
                .where((FeedRow.next_check.is_(None)) | (FeedRow.next_check <= now))
                .order_by(FeedRow.next_check, FeedRow.position)
            )
            return list(session.scalars(query))

    def get_meta(self, key: str) -> str | None:
        with self._sessions() as session:
            row = session.get(MetaRow, key)
            return row.value if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._sessions.begin() as session:
            self._set_meta(session, key, value)

    def _set_meta(self, session: Session, key: str, value: str) -> None:
        row = session.get(MetaRow, key)
        if row is None:
            session.add(MetaRow(key=key, value=value))
        else:
            row.value = value

    # ---- ingest -------------------------------------------------------------

    def recent_fingerprints(self, feed_id: int, limit: int) -> frozenset[str]:
        """The raw-entry fingerprints of this feed's newest `limit` stored entries.

        Enough to recognise what a document repeats from the last polls
        without the database at hand: an older entry it brings back is
        cleaned again and then found unchanged by its stored fingerprint.
        """
        with self._sessions() as session:
            query = (
                select(SourceRow.content_hash)
                .where(SourceRow.feed_id == feed_id)
                .order_by(SourceRow.id.desc())
                .limit(limit)
            )
            return frozenset(session.scalars(query))

    def load_context(
        self, feed_id: int, feed_url: str, hashes: Mapping[str, str], link_keys: Sequence[str]
    ) -> FeedContext:
        """Read what deciding a document needs: its known entries and stories sharing links.

        `hashes` maps each entry id of the document to its content hash; stories
        are read in full only where an entry changed or a link matched, because
        an unchanged entry needs nothing but its stored hash.
        """
        with self._sessions() as session:
            sources: dict[str, StoredSource] = {}
            for chunk in _chunks(list(hashes)):
                for row in session.scalars(
                    select(SourceRow).where(
                        SourceRow.feed_id == feed_id, SourceRow.entry_id.in_(chunk)
                    )
                ):
                    sources[row.entry_id] = _stored_source(row)
            story_by_link: dict[str, int] = {}
            for chunk in _chunks(list(link_keys)):
                for story_id, key in session.execute(
                    select(StoryRow.id, StoryRow.link_key).where(StoryRow.link_key.in_(chunk))
                ):
                    if key is not None:
                        story_by_link[key] = story_id
            own: dict[int, StoredSource] = {}
            for chunk in _chunks(list(story_by_link.values())):
                for row in session.scalars(
                    select(SourceRow).where(
                        SourceRow.feed_id == feed_id, SourceRow.story_id.in_(chunk)
                    )
                ):
                    own.setdefault(row.story_id, _stored_source(row))
            changed = {s.story_id for s in sources.values() if s.content_hash != hashes[s.entry_id]}
            known = {s.story_id for s in sources.values()}
            story_ids = changed | (set(story_by_link.values()) - known)
            stories: dict[int, StoredStory] = {}
            for chunk in _chunks(sorted(story_ids)):
                for story in session.scalars(
                    select(StoryRow)
                    .where(StoryRow.id.in_(chunk))
                    .options(undefer(StoryRow.raw_body))
                ):
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
        with self._sessions.begin() as session:
            if intents.new:
                rows = [
                    {
                        "uid": s.uid,
                        "link_key": s.link_key,
                        "primary_feed_id": feed_id,
                        "first_seen": now,
                        **_fields_to_columns(s.fields),
                    }
                    for s in intents.new
                ]
                # Plain executemany on the tables, then the ids by uid: the ORM's
                # INSERT … RETURNING in parameter order went one row at a time.
                session.execute(insert(_STORIES), rows)
                id_of: dict[str, int] = {}
                for chunk in _chunks([s.uid for s in intents.new]):
                    query = select(StoryRow.uid, StoryRow.id).where(StoryRow.uid.in_(chunk))
                    id_of.update((uid, id_) for uid, id_ in session.execute(query))
                ids = [id_of[s.uid] for s in intents.new]
                session.execute(
                    insert(_SOURCES),
                    [
                        {
                            "feed_id": feed_id,
                            "story_id": story_id,
                            "entry_id": s.entry_id,
                            "content_hash": s.entry_hash,
                            "first_seen": now,
                        }
                        for story_id, s in zip(ids, intents.new, strict=True)
                    ],
                )
                touched.update(ids)
            if intents.added:
                session.execute(
                    insert(_SOURCES),
                    [
                        {
                            "feed_id": feed_id,
                            "story_id": a.story_id,
                            "entry_id": a.entry_id,
                            "content_hash": a.entry_hash,
                            "first_seen": now,
                        }
                        for a in intents.added
                    ],
                )
                touched.update(a.story_id for a in intents.added)
            # Core executemany, one statement each: per-row ORM updates cost
            # a couple of milliseconds apiece, most of a re-poll's time.
            connection = session.connection()
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
            self._record_poll(session, poll)
            if touched:
                # In the same transaction as the stories: a kill before the
                # outputs are rebuilt leaves this behind for the next run.
                self._set_meta(session, UNPUBLISHED_KEY, "1")
        return touched

    def record_polls(self, polls: Sequence[PollRecord]) -> None:
        """Record polls that stored nothing (errors, 304s, unchanged bodies) together.

        One transaction for many feeds: on a re-poll where every server says
        304, per-feed transactions were most of the time spent.
        """
        if not polls:
            return
        with self._sessions.begin() as session:
            previous: dict[int, tuple[str, str | None]] = {}
            for chunk in _chunks(sorted({p.feed_id for p in polls})):
                query = select(FeedRow.id, FeedRow.state, FeedRow.last_error).where(
                    FeedRow.id.in_(chunk)
                )
                for feed_id, state, error in session.execute(query):
                    previous[feed_id] = (state, error)
            if any(_failing_changed(previous[p.feed_id], p.outcome) for p in polls):
                # Pages list failing sources: a kill before they are rebuilt must
                # not hide this change from the next run.
                self._set_meta(session, UNPUBLISHED_KEY, "1")
            session.execute(insert(_POLLS), [_poll_row(p.feed_id, p.outcome) for p in polls])
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
                session.connection().execute(statement, rows)

    def record_poll(self, poll: PollRecord) -> None:
        """Record one poll that stored nothing."""
        self.record_polls([poll])

    def _record_poll(self, session: Session, poll: PollRecord) -> None:
        connection = session.connection()  # Core: once per stored poll, it adds up
        state, error = connection.execute(
            select(_FEEDS.c.state, _FEEDS.c.last_error).where(_FEEDS.c.id == poll.feed_id)
        ).one()
        if _failing_changed((state, error), poll.outcome):
            self._set_meta(session, UNPUBLISHED_KEY, "1")
        connection.execute(insert(_POLLS).values(**_poll_row(poll.feed_id, poll.outcome)))
        connection.execute(
            update(_FEEDS).where(_FEEDS.c.id == poll.feed_id).values(**_feed_values(poll))
        )

    def prune_polls(self, now: datetime) -> None:
        """Poll history is for diagnosis; a month of it is plenty."""
        cutoff = now - timedelta(days=POLL_HISTORY_DAYS)
        with self._sessions.begin() as session:
            session.execute(delete(PollRow).where(PollRow.started_at < cutoff))

    # ---- reading for publishing ---------------------------------------------

    def _active_story_ids(self, category: str | None) -> Any:
        query = (
            select(SourceRow.story_id)
            .join(FeedRow, FeedRow.id == SourceRow.feed_id)
            .where(FeedRow.active)
        )
        if category is not None:
            query = query.join(FeedCategoryRow, FeedCategoryRow.feed_id == FeedRow.id).where(
                FeedCategoryRow.category == category
            )
        return query

    def newest_stories(self, category: str | None, limit: int) -> list[StoryView]:
        """The newest stories of a category (None: of every active feed), newest first."""
        with self._sessions() as session:
            rows = session.scalars(
                select(StoryRow)
                .where(StoryRow.id.in_(self._active_story_ids(category)))
                .order_by(StoryRow.published.desc(), StoryRow.id.desc())
                .limit(limit)
            ).all()
            return self._views(session, rows)

    def stories_first_seen(self, start: datetime, end: datetime) -> list[StoryView]:
        """Stories of active feeds first seen in [start, end), newest first."""
        with self._sessions() as session:
            rows = session.scalars(
                select(StoryRow)
                .where(StoryRow.first_seen >= start, StoryRow.first_seen < end)
                .where(StoryRow.id.in_(self._active_story_ids(None)))
                .order_by(StoryRow.published.desc(), StoryRow.id.desc())
            ).all()
            return self._views(session, rows)

    def first_seen_times(self, story_ids: Iterable[int] | None = None) -> list[datetime]:
        """First-seen times of stories (all, or the given ones), for finding digest days."""
        with self._sessions() as session:
            if story_ids is None:
                return list(session.scalars(select(StoryRow.first_seen)))
            result: list[datetime] = []
            for chunk in _chunks(sorted(story_ids)):
                result.extend(
                    session.scalars(select(StoryRow.first_seen).where(StoryRow.id.in_(chunk)))
                )
            return result

    def categories_of(self, story_ids: Iterable[int]) -> set[str]:
        """The output categories the given stories appear in."""
        with self._sessions() as session:
            found: set[str] = set()
            for chunk in _chunks(sorted(story_ids)):
                found.update(
                    session.scalars(
                        select(FeedCategoryRow.category)
                        .join(SourceRow, SourceRow.feed_id == FeedCategoryRow.feed_id)
                        .where(SourceRow.story_id.in_(chunk))
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
        query = select(StoryRow.id).where(StoryRow.id.in_(self._active_story_ids(category)))
        if since is not None:
            query = query.where(StoryRow.published >= since)
        with self._sessions() as session:
            if story_ids is None:
                return list(session.scalars(query.order_by(StoryRow.id)))
            found: list[int] = []
            for chunk in _chunks(sorted(set(story_ids))):
                found.extend(session.scalars(query.where(StoryRow.id.in_(chunk))))
            return sorted(found)

    def stories_with_raw_body(self, story_ids: Sequence[int]) -> list[StoryView]:
        """The given stories with their raw HTML, for post exports (ask in batches)."""
        with self._sessions() as session:
            rows: list[StoryRow] = []
            for chunk in _chunks(list(story_ids)):
                rows.extend(
                    session.scalars(
                        select(StoryRow)
                        .where(StoryRow.id.in_(chunk))
                        .options(undefer(StoryRow.raw_body))
                        .order_by(StoryRow.id)
                    )
                )
            return self._views(session, rows, raw=True)

    def _feed_categories(self, session: Session) -> dict[int, tuple[str, ...]]:
        """Each feed's categories in config order (the table is feeds × categories small)."""
        found: dict[int, list[str]] = defaultdict(list)
        query = select(FeedCategoryRow.feed_id, FeedCategoryRow.category).order_by(
            FeedCategoryRow.feed_id, FeedCategoryRow.position, FeedCategoryRow.category
        )
        for feed_id, category in session.execute(query):
            found[feed_id].append(category)
        return {feed_id: tuple(names) for feed_id, names in found.items()}

    def _views(
        self, session: Session, rows: Sequence[StoryRow], *, raw: bool = False
    ) -> list[StoryView]:
        feed_categories = self._feed_categories(session)
        feeds_of: dict[int, dict[int, FeedRow]] = defaultdict(dict)
        for chunk in _chunks([row.id for row in rows]):
            query = (
                select(SourceRow.story_id, FeedRow)
                .join(FeedRow, FeedRow.id == SourceRow.feed_id)
                .where(SourceRow.story_id.in_(chunk), FeedRow.active)
                .order_by(SourceRow.first_seen, SourceRow.id)
            )
            for story_id, feed in session.execute(query):
                feeds_of[story_id].setdefault(feed.id, feed)
        views = []
        for row in rows:
            # The story's first source leads; the others follow in the order they came.
            feeds = sorted(feeds_of[row.id].values(), key=lambda f: f.id != row.primary_feed_id)
            categories = dict.fromkeys(
                name
                for feed in sorted(feeds, key=lambda f: f.position)
                for name in feed_categories.get(feed.id, ())
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
                    sources=tuple(
                        SourceRef(
                            feed_url=feed.url,
                            name=feed.name or feed.title or feed.url,
                            site_link=feed.site_link,
                            channel_title=feed.title,
                            categories=feed_categories.get(feed.id, ()),
                        )
                        for feed in feeds
                    ),
                    raw_body=row.raw_body if raw else None,
                )
            )
        return views

    # ---- status -------------------------------------------------------------

    def health(self) -> list[FeedHealth]:
        """Every active feed's last poll and entry count, in config order."""
        with self._sessions() as session:
            counts: dict[int, int] = {
                feed_id: count
                for feed_id, count in session.execute(
                    select(SourceRow.feed_id, func.count()).group_by(SourceRow.feed_id)
                )
            }
            rows = session.scalars(
                select(FeedRow).where(FeedRow.active).order_by(FeedRow.position)
            ).all()
            return [
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

    def count_stories(self) -> int:
        with self._sessions() as session:
            return (
                session.scalar(
                    select(func.count())
                    .select_from(StoryRow)
                    .where(StoryRow.id.in_(self._active_story_ids(None)))
                )
                or 0
            )


def _stored_source(row: SourceRow) -> StoredSource:
    return StoredSource(row.id, row.feed_id, row.entry_id, row.story_id, row.content_hash)
