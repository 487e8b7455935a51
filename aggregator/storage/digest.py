"""The digest's reads: day lists and pages by sort key, and the cards they show.

Apart from the other reads because they never touch a body: cards are copied
from stories once and read from `digest_cards` from then on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Text,
    bindparam,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    update,
)

from aggregator.models import DigestMember, DigestStory, SourceRef
from aggregator.storage.rows import has_active_source, has_categorised_source, in_chunks
from aggregator.storage.schema import (
    CARD_FIELDS,
    CARDS_TABLE,
    FEED_CATEGORIES_TABLE,
    FEEDS_TABLE,
    SOURCES_TABLE,
    STORIES_TABLE,
)

# What a digest card copies of its story as it is (see make_cards).
_CARD_COLUMNS = (
    STORIES_TABLE.c.id,
    STORIES_TABLE.c.title,
    STORIES_TABLE.c.link,
    STORIES_TABLE.c.thumbnail,
    STORIES_TABLE.c.published,
    STORIES_TABLE.c.first_seen,
)
# A story's digest card, copied from its row: its own feed as the list (see make_cards).
_CARDS_FROM_STORIES = insert(CARDS_TABLE).from_select(
    list(CARD_FIELDS),
    select(
        *_CARD_COLUMNS,
        STORIES_TABLE.c.primary_feed_id.cast(Text),
        func.coalesce(STORIES_TABLE.c.excerpt, ""),
    ).where(STORIES_TABLE.c.id.in_(bindparam("story_ids", expanding=True))),
)
_SET_CARD_FEEDS_AND_EXCERPT = (
    update(CARDS_TABLE)
    .where(CARDS_TABLE.c.story_id == bindparam("id_"))
    .values(feeds=bindparam("feeds_"), excerpt=bindparam("excerpt_"))
)

_SORT_KEY = "sort_key"
_MEMBER = "m"


def digest_feeds(connection: Connection) -> dict[int, SourceRef]:
    """Every active feed as digest cards name it, with its categories in config order."""
    categories: dict[int, list[str]] = defaultdict(list)
    query = select(FEED_CATEGORIES_TABLE.c.feed_id, FEED_CATEGORIES_TABLE.c.category).order_by(
        FEED_CATEGORIES_TABLE.c.feed_id,
        FEED_CATEGORIES_TABLE.c.position,
        FEED_CATEGORIES_TABLE.c.category,
    )
    for feed_id, category in connection.execute(query):
        categories[feed_id].append(category)
    feeds = select(
        FEEDS_TABLE.c.id,
        FEEDS_TABLE.c.url,
        FEEDS_TABLE.c.name,
        FEEDS_TABLE.c.title,
        FEEDS_TABLE.c.site_link,
    )
    return {
        feed_id: SourceRef(
            feed_url=url,
            name=name or title or url,
            site_link=site_link,
            channel_title=title,
            categories=tuple(categories.get(feed_id, ())),
        )
        for feed_id, url, name, title, site_link in connection.execute(
            feeds.where(FEEDS_TABLE.c.active)
        )
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
        key = func.min(SOURCES_TABLE.c.id).label(_SORT_KEY)
        query = (
            select(
                (FEED_CATEGORIES_TABLE.c.category if categorised else null()).label("category"),
                STORIES_TABLE.c.id.label("story_id"),
                key,
                STORIES_TABLE.c.published.label("published"),
            )
            .select_from(SOURCES_TABLE)
            .join(FEEDS_TABLE, FEEDS_TABLE.c.id == SOURCES_TABLE.c.feed_id)
            .join(STORIES_TABLE, STORIES_TABLE.c.id == SOURCES_TABLE.c.story_id)
            .where(
                FEEDS_TABLE.c.active,
                STORIES_TABLE.c.first_seen >= start,
                STORIES_TABLE.c.first_seen < end,
            )
        )
        if not categorised:
            return query.where(~has_categorised_source(STORIES_TABLE.c.id)).group_by(
                STORIES_TABLE.c.id
            )
        query = query.join(
            FEED_CATEGORIES_TABLE, FEED_CATEGORIES_TABLE.c.feed_id == SOURCES_TABLE.c.feed_id
        )
        if category is not None:
            query = query.where(FEED_CATEGORIES_TABLE.c.category == category)
        # Grouped by the story's primary key, so PostgreSQL takes `published` too.
        return query.group_by(FEED_CATEGORIES_TABLE.c.category, STORIES_TABLE.c.id)

    def _with_cards(self, grouped: Any) -> tuple[Any, Any]:
        """The grouped rows with their stories' cards, when made (outer join), and the
        subquery of the grouped rows, to order by."""
        member = grouped.subquery(_MEMBER)
        return select(
            member.c.category,
            member.c.sort_key,
            member.c.published,
            member.c.story_id,
            CARDS_TABLE.c.title,
            CARDS_TABLE.c.link,
            CARDS_TABLE.c.thumbnail,
            CARDS_TABLE.c.first_seen,
            CARDS_TABLE.c.feeds,
            CARDS_TABLE.c.excerpt,
        ).outerjoin(CARDS_TABLE, CARDS_TABLE.c.story_id == member.c.story_id), member

    def _members(
        self, query: Any, params: Mapping[str, Any] | None = None, *, stream: bool = False
    ) -> Iterator[DigestMember]:
        if stream:
            # 500 rows with their cards' excerpts are about 1 MB; 2,000 raised a full
            # build's peak by 2 to 3.5 MB and were no faster.
            options = {"yield_per": 500}
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
        for chunk in in_chunks(sorted(set(story_ids))):
            for all_ in (True, False) if self._uncategorised else (True,):
                grouped = self._grouped(start, end, None, all_=all_)
                query, _ = self._with_cards(grouped.where(STORIES_TABLE.c.id.in_(chunk)))
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
                STORIES_TABLE.c.id.label("story_id"),
                func.min(SOURCES_TABLE.c.id).label(_SORT_KEY),
                STORIES_TABLE.c.published.label("published"),
            )
            .select_from(SOURCES_TABLE)
            .join(STORIES_TABLE, STORIES_TABLE.c.id == SOURCES_TABLE.c.story_id)
            .where(
                SOURCES_TABLE.c.feed_id.in_(self._feeds_of.get(category, [])),
                SOURCES_TABLE.c.id >= key_from,
                SOURCES_TABLE.c.id < key_to,
                STORIES_TABLE.c.first_seen >= bindparam("start"),
                STORIES_TABLE.c.first_seen < bindparam("end"),
                ~has_active_source(SOURCES_TABLE.c.story_id, category, below=key_from),
            )
            .group_by(STORIES_TABLE.c.id)
        )
        if category is None:
            grouped = grouped.where(~has_categorised_source(STORIES_TABLE.c.id))
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
        for chunk in in_chunks(sorted(set(story_ids))):
            query = select(
                CARDS_TABLE.c.story_id,
                CARDS_TABLE.c.title,
                CARDS_TABLE.c.published,
                CARDS_TABLE.c.link,
                CARDS_TABLE.c.thumbnail,
                CARDS_TABLE.c.first_seen,
                CARDS_TABLE.c.feeds,
                CARDS_TABLE.c.excerpt,
            ).where(CARDS_TABLE.c.story_id.in_(chunk))
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
            for chunk in in_chunks(sorted(set(story_ids))):
                feeds: dict[int, dict[int, None]] = defaultdict(dict)
                of_stories = (
                    select(SOURCES_TABLE.c.story_id, SOURCES_TABLE.c.feed_id)
                    .where(SOURCES_TABLE.c.story_id.in_(chunk))
                    .order_by(
                        SOURCES_TABLE.c.story_id, SOURCES_TABLE.c.first_seen, SOURCES_TABLE.c.id
                    )
                )
                for story_id, feed_id in connection.execute(of_stories):
                    feeds[story_id][feed_id] = None
                query = select(
                    *_CARD_COLUMNS, STORIES_TABLE.c.primary_feed_id, STORIES_TABLE.c.excerpt
                ).where(STORIES_TABLE.c.id.in_(chunk))
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
                    # The story's owner (its primary feed) leads; the others follow as they came.
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
                    bodies = select(
                        STORIES_TABLE.c.id, STORIES_TABLE.c.summary, STORIES_TABLE.c.content
                    ).where(STORIES_TABLE.c.id.in_(sorted(unmade)))
                    for story_id, summary, content in connection.execute(bodies):
                        unmade[story_id]["excerpt"] = excerpt(summary, content)
                connection.execute(delete(CARDS_TABLE).where(CARDS_TABLE.c.story_id.in_(chunk)))
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
