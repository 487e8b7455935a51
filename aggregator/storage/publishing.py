"""What publishing reads: newest stories, categories, post exports, digest days, counts.

Reads only, made after the polls; the digest's own narrow reads are in `digest`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, func, select

from aggregator.models import SourceRef, StoryView
from aggregator.storage.connections import Connections
from aggregator.storage.digest import DigestReader, digest_feeds
from aggregator.storage.rows import enclosures_from_json, has_active_source, in_chunks
from aggregator.storage.schema import (
    FEED_CATEGORIES_TABLE,
    FEEDS_TABLE,
    SOURCES_TABLE,
    STORIES_TABLE,
)

#: A story's columns but its raw body, which only post exports read.
_STORY_COLUMNS = tuple(c for c in STORIES_TABLE.c if c.name != "raw_body")


class PublishingReads(Connections):
    """The stories outputs are made of, as the outputs show them."""

    def _active_story_ids(self, category: str | None) -> Any:
        query = (
            select(SOURCES_TABLE.c.story_id)
            .join(FEEDS_TABLE, FEEDS_TABLE.c.id == SOURCES_TABLE.c.feed_id)
            .where(FEEDS_TABLE.c.active)
        )
        if category is not None:
            query = query.join(
                FEED_CATEGORIES_TABLE, FEED_CATEGORIES_TABLE.c.feed_id == FEEDS_TABLE.c.id
            ).where(FEED_CATEGORIES_TABLE.c.category == category)
        return query

    def newest_stories(self, category: str | None, limit: int) -> list[StoryView]:
        """The newest stories of a category (None: of every active feed), newest first."""
        # EXISTS rather than IN: walking the (published, id) index from the newest
        # end stops after `limit` matches instead of collecting every story id first.
        in_output = has_active_source(STORIES_TABLE.c.id, category)
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(*_STORY_COLUMNS)
                .where(in_output)
                .order_by(STORIES_TABLE.c.published.desc(), STORIES_TABLE.c.id.desc())
                .limit(limit)
            ).all()
            return self._views(connection, rows)

    def first_seen_times(self, story_ids: Iterable[int]) -> list[datetime]:
        """First-seen times of the given stories, for finding the digest days they are on."""
        with self.engine.connect() as connection:
            result: list[datetime] = []
            for chunk in in_chunks(sorted(story_ids)):
                query = select(STORIES_TABLE.c.first_seen).where(STORIES_TABLE.c.id.in_(chunk))
                result.extend(connection.scalars(query))
            return result

    def earliest_first_seen(self, since: datetime | None = None) -> datetime | None:
        """When the first story (at or after `since`) was first seen: how digest days are found.

        One step along the first_seen index per digest day, never a list of all stories.
        """
        query = select(func.min(STORIES_TABLE.c.first_seen))
        if since is not None:
            query = query.where(STORIES_TABLE.c.first_seen >= since)
        with self.engine.connect() as connection:
            earliest: datetime | None = connection.scalar(query)
            return earliest

    def latest_first_seen(self, before: datetime | None = None) -> datetime | None:
        """When the last story (before `before`) was first seen."""
        query = select(func.max(STORIES_TABLE.c.first_seen))
        if before is not None:
            query = query.where(STORIES_TABLE.c.first_seen < before)
        with self.engine.connect() as connection:
            latest: datetime | None = connection.scalar(query)
            return latest

    @contextmanager
    def digest_reader(self) -> Iterator[DigestReader]:
        """The digest's reads, on one connection that stays open while pages are written."""
        with self.engine.connect() as connection:
            yield DigestReader(connection, digest_feeds(connection), self.engine)

    def categories_of(self, story_ids: Iterable[int]) -> set[str]:
        """The output categories the given stories appear in."""
        with self.engine.connect() as connection:
            found: set[str] = set()
            for chunk in in_chunks(sorted(story_ids)):
                found.update(
                    connection.scalars(
                        select(FEED_CATEGORIES_TABLE.c.category)
                        .join(
                            SOURCES_TABLE,
                            SOURCES_TABLE.c.feed_id == FEED_CATEGORIES_TABLE.c.feed_id,
                        )
                        .where(SOURCES_TABLE.c.story_id.in_(chunk))
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
        query = select(STORIES_TABLE.c.id).where(
            STORIES_TABLE.c.id.in_(self._active_story_ids(category))
        )
        if since is not None:
            query = query.where(STORIES_TABLE.c.published >= since)
        with self.engine.connect() as connection:
            if story_ids is None:
                return list(connection.scalars(query.order_by(STORIES_TABLE.c.id)))
            found: list[int] = []
            for chunk in in_chunks(sorted(set(story_ids))):
                found.extend(connection.scalars(query.where(STORIES_TABLE.c.id.in_(chunk))))
            return sorted(found)

    def stories_with_raw_body(self, story_ids: Sequence[int]) -> list[StoryView]:
        """The given stories with their raw HTML, for post exports (ask in batches)."""
        with self.engine.connect() as connection:
            rows: list[Row[Any]] = []
            for chunk in in_chunks(list(story_ids)):
                query = (
                    select(STORIES_TABLE)
                    .where(STORIES_TABLE.c.id.in_(chunk))
                    .order_by(STORIES_TABLE.c.id)
                )
                rows.extend(connection.execute(query))
            return self._views(connection, rows, raw=True)

    def _feed_categories(
        self, connection: Connection, feed_ids: Iterable[int]
    ) -> dict[int, tuple[str, ...]]:
        """The given feeds' categories, each feed's in config order."""
        found: dict[int, list[str]] = defaultdict(list)
        for chunk in in_chunks(sorted(feed_ids)):
            query = (
                select(FEED_CATEGORIES_TABLE.c.feed_id, FEED_CATEGORIES_TABLE.c.category)
                .where(FEED_CATEGORIES_TABLE.c.feed_id.in_(chunk))
                .order_by(
                    FEED_CATEGORIES_TABLE.c.feed_id,
                    FEED_CATEGORIES_TABLE.c.position,
                    FEED_CATEGORIES_TABLE.c.category,
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
        for chunk in in_chunks([row.id for row in rows]):
            query = (
                select(
                    SOURCES_TABLE.c.story_id,
                    FEEDS_TABLE.c.id,
                    FEEDS_TABLE.c.url,
                    FEEDS_TABLE.c.name,
                    FEEDS_TABLE.c.title,
                    FEEDS_TABLE.c.site_link,
                    FEEDS_TABLE.c.position,
                )
                .join(FEEDS_TABLE, FEEDS_TABLE.c.id == SOURCES_TABLE.c.feed_id)
                .where(SOURCES_TABLE.c.story_id.in_(chunk), FEEDS_TABLE.c.active)
                .order_by(SOURCES_TABLE.c.first_seen, SOURCES_TABLE.c.id)
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
            # The story's owner (primary feed) leads; the others follow in the order they came.
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
                    enclosures=enclosures_from_json(row.enclosures),
                    sources=tuple(refs[feed_id] for feed_id in ids),
                    raw_body=row.raw_body if raw else None,
                )
            )
        return views

    def count_stories(self) -> int:
        with self.engine.connect() as connection:
            return (
                connection.scalar(
                    select(func.count())
                    .select_from(STORIES_TABLE)
                    .where(STORIES_TABLE.c.id.in_(self._active_story_ids(None)))
                )
                or 0
            )
