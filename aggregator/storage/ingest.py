"""Storing documents: what deciding one needs, and its intents written, in batches.

The hot path of a poll, apart from what publishing reads: its statements are built
once, and its inserts go through the driver (see `rows.RowInsert`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, select, update

from aggregator.models import (
    FeedContext,
    FeedIntents,
    NewStory,
    PollRecord,
    StoredSource,
    StoredStory,
    StoryFields,
)
from aggregator.storage.connections import one_writer_at_a_time
from aggregator.storage.feeds import Feeds
from aggregator.storage.rows import RowInsert, enclosures_from_json, enclosures_to_json, in_chunks
from aggregator.storage.schema import (
    CARD_FIELDS,
    CARDS_TABLE,
    FEEDS_TABLE,
    SOURCES_TABLE,
    STORIES_TABLE,
    UNPUBLISHED_KEY,
)

# The reads every stored document makes, built once (building a statement and
# its cache key cost more than running it on a first poll's small lookups) and
# on the tables, not the mapped classes: the ORM's handling of each execution
# was a tenth of a first poll's storing.
_SOURCE_COLUMNS = (
    SOURCES_TABLE.c.id,
    SOURCES_TABLE.c.feed_id,
    SOURCES_TABLE.c.entry_id,
    SOURCES_TABLE.c.story_id,
    SOURCES_TABLE.c.content_hash,
)  # StoredSource's fields, in order
_SOURCES_BY_ENTRY_ID = select(*_SOURCE_COLUMNS).where(
    SOURCES_TABLE.c.feed_id == bindparam("feed_id"),
    SOURCES_TABLE.c.entry_id.in_(bindparam("entry_ids", expanding=True)),
)
_SOURCES_BY_STORY_ID = select(*_SOURCE_COLUMNS).where(
    SOURCES_TABLE.c.feed_id == bindparam("feed_id"),
    SOURCES_TABLE.c.story_id.in_(bindparam("story_ids", expanding=True)),
)
_STORIES_BY_LINK_KEY = select(STORIES_TABLE.c.id, STORIES_TABLE.c.link_key).where(
    STORIES_TABLE.c.link_key.in_(bindparam("link_keys", expanding=True))
)
_RECENT_FINGERPRINTS = (
    select(SOURCES_TABLE.c.content_hash)
    .where(SOURCES_TABLE.c.feed_id == bindparam("feed_id"))
    .order_by(SOURCES_TABLE.c.id.desc())
    .limit(bindparam("limit"))
)
_STORIES_BY_ID = select(STORIES_TABLE).where(
    STORIES_TABLE.c.id.in_(bindparam("story_ids", expanding=True))
)
# Where feeds stand in feeds.yaml, for who owns a cross-post (see `decide.ranks_before`):
# a feed no longer listed has no place.
_FEED_RANKS = select(FEEDS_TABLE.c.id, FEEDS_TABLE.c.position).where(
    FEEDS_TABLE.c.active, FEEDS_TABLE.c.id.in_(bindparam("feed_ids", expanding=True))
)
_SET_OWNER = (
    update(STORIES_TABLE)
    .where(STORIES_TABLE.c.id == bindparam("id_"))
    .values(primary_feed_id=bindparam("feed_id_"))
)
_STORY_IDS_BY_UID = select(STORIES_TABLE.c.uid, STORIES_TABLE.c.id).where(
    STORIES_TABLE.c.uid.in_(bindparam("uids", expanding=True))
)


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
        "enclosures": enclosures_to_json(fields.enclosures),
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
        enclosures=enclosures_from_json(row.enclosures),
        raw_body=row.raw_body,
        excerpt=row.excerpt,
    )


def story_row(story: NewStory, feed_id: int, now: datetime) -> tuple[Any, ...]:
    """A row of the stories table, in `INSERT_STORY`'s order."""
    f = story.fields
    return (
        *(story.uid, story.link_key, feed_id, f.title, f.link, f.author, f.summary, f.content),
        *(f.excerpt, f.thumbnail, f.published, f.updated, now, list(f.tags)),
        *(enclosures_to_json(f.enclosures), f.raw_body),
    )


def _card_row(story_id: int, f: StoryFields, feed_id: int, now: datetime) -> tuple[Any, ...]:
    """A new story's digest card, in `_INSERT_CARD`'s order: its only feed is its first."""
    return (story_id, f.title, f.link, f.thumbnail, f.published, now, str(feed_id), f.excerpt or "")


INSERT_STORY = RowInsert(
    STORIES_TABLE,
    *("uid", "link_key", "primary_feed_id", "title", "link", "author", "summary", "content"),
    *("excerpt", "thumbnail", "published", "updated", "first_seen", "tags", "enclosures"),
    "raw_body",
)
_INSERT_SOURCE = RowInsert(
    SOURCES_TABLE, "feed_id", "story_id", "entry_id", "content_hash", "first_seen"
)
_INSERT_CARD = RowInsert(CARDS_TABLE, *CARD_FIELDS)


class Ingest(Feeds):
    """Batches, and what deciding and storing a document read and write."""

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
        one_writer_at_a_time(self._batch)

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
        an unchanged entry needs nothing but its stored hash. Feeds' ranks are
        read only where this feed may join another feed's story.
        """
        with self._reading() as connection:
            sources: dict[str, StoredSource] = {}
            for chunk in in_chunks(list(hashes)):
                found = {"feed_id": feed_id, "entry_ids": chunk}
                for row in connection.execute(_SOURCES_BY_ENTRY_ID, found):
                    sources[row.entry_id] = StoredSource(*row)
            story_by_link: dict[str, int] = {}
            for chunk in in_chunks(list(link_keys)):
                for story_id, key in connection.execute(_STORIES_BY_LINK_KEY, {"link_keys": chunk}):
                    if key is not None:
                        story_by_link[key] = story_id
            own: dict[int, StoredSource] = {}
            for chunk in in_chunks(list(story_by_link.values())):
                found = {"feed_id": feed_id, "story_ids": chunk}
                for row in connection.execute(_SOURCES_BY_STORY_ID, found):
                    own.setdefault(row.story_id, StoredSource(*row))
            changed = {s.story_id for s in sources.values() if s.content_hash != hashes[s.entry_id]}
            known = {s.story_id for s in sources.values()}
            joinable = set(story_by_link.values()) - known  # stories this feed may join
            story_ids = changed | joinable
            stories: dict[int, StoredStory] = {}
            for chunk in in_chunks(sorted(story_ids)):
                for story in connection.execute(_STORIES_BY_ID, {"story_ids": chunk}):
                    stories[story.id] = StoredStory(
                        story.id, story.primary_feed_id, _fields_of(story)
                    )
            owners = {stories[i].primary_feed_id for i in joinable} - {feed_id}
            ranks: dict[int, int] = {}
            for chunk in in_chunks(sorted(owners | {feed_id}) if owners else []):
                for owner_id, position in connection.execute(_FEED_RANKS, {"feed_ids": chunk}):
                    ranks[owner_id] = position
            return FeedContext(feed_id, feed_url, sources, story_by_link, own, stories, ranks)

    def apply(self, intents: FeedIntents, poll: PollRecord) -> set[int]:
        """Write one poll's intents and outcome in a single transaction.

        A feed that takes a story over (`AddSource.takes_over`) becomes its
        primary feed, which outputs list first. Returns the ids of stories
        whose published form changed.
        """
        feed_id = poll.feed_id
        now = poll.outcome.started_at
        touched: set[int] = set()
        ids: list[int] = []
        with self._writing() as connection:
            if intents.new:
                INSERT_STORY.run(connection, [story_row(s, feed_id, now) for s in intents.new])
                # Then the ids by uid: INSERT … RETURNING in parameter order went
                # one row at a time.
                id_of: dict[str, int] = {}
                for chunk in in_chunks([s.uid for s in intents.new]):
                    found = connection.execute(_STORY_IDS_BY_UID, {"uids": chunk})
                    id_of.update((uid, id_) for uid, id_ in found)
                ids = [id_of[s.uid] for s in intents.new]
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
            if intents.new or intents.added:
                # One insert, oldest entry first: a story's digest page follows
                # the id of its first source (`DigestReader`).
                sources = [
                    (s.arrival, (feed_id, story_id, s.entry_id, s.entry_hash, now))
                    for story_id, s in zip(ids, intents.new, strict=True)
                ] + [
                    (a.arrival, (feed_id, a.story_id, a.entry_id, a.entry_hash, now))
                    for a in intents.added
                ]
                sources.sort(key=lambda source: source[0])
                _INSERT_SOURCE.run(connection, [row for _, row in sources])
            if intents.added:
                touched.update(a.story_id for a in intents.added)
                owned = [
                    {"id_": a.story_id, "feed_id_": feed_id} for a in intents.added if a.takes_over
                ]
                if owned:
                    connection.execute(_SET_OWNER, owned)
            # Core executemany, one statement each: per-row ORM updates cost
            # a couple of milliseconds apiece, most of a re-poll's time.
            if intents.updated:
                connection.execute(
                    update(SOURCES_TABLE)
                    .where(SOURCES_TABLE.c.id == bindparam("id_"))
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
                    update(STORIES_TABLE)
                    .where(STORIES_TABLE.c.id == bindparam("id_"))
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
            for chunk in in_chunks(stale):
                connection.execute(delete(CARDS_TABLE).where(CARDS_TABLE.c.story_id.in_(chunk)))
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
