"""Frozen records that the pipeline stages hand to each other.

Every stage takes and returns these, never another stage's internals, so a
stage can be tested with hand-made values and swapped without touching the
others. All datetimes are timezone-aware UTC; the configured zone appears only
when pages are rendered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import NamedTuple

# --------------------------------------------------------------------------- config

#: Front-matter styles of exported posts (`site.posts_format`); the first is the default.
POST_FORMATS = ("hexo", "hugo", "jekyll")


@dataclass(frozen=True)
class FetchLimits:
    """Bounds that keep one hostile server from stalling or bloating a poll."""

    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    deadline: float = 30.0
    max_body_bytes: int = 16 * 1024 * 1024
    max_decoded_bytes: int = 32 * 1024 * 1024
    max_redirects: int = 5
    concurrency: int = 16
    max_entries_per_feed: int = 1000
    max_title_chars: int = 1000
    max_url_chars: int = 4096


@dataclass(frozen=True)
class Category:
    """An output category: its display name and the URL-safe slug of its files."""

    name: str
    slug: str


@dataclass(frozen=True)
class SiteSettings:
    title: str
    base_url: str
    output_dir: Path
    database_url: str
    timezone: str
    digest_time: time
    interval: timedelta
    max_entries: int
    digest_per_category: int = 30
    language: str = "en"
    fetch: FetchLimits = field(default_factory=FetchLimits)
    # A folder of Markdown posts that `update` keeps in sync (None: none), the
    # front-matter style, and whether bodies keep the feed's own HTML.
    posts_dir: Path | None = None
    posts_format: str = "hexo"
    posts_raw: bool = False


@dataclass(frozen=True)
class FeedSource:
    """One entry of the `feeds:` list."""

    url: str
    name: str | None
    categories: tuple[str, ...]
    interval: timedelta


@dataclass(frozen=True)
class Config:
    path: Path
    site: SiteSettings
    feeds: tuple[FeedSource, ...]
    categories: tuple[Category, ...]


# --------------------------------------------------------------------------- fetch


@dataclass(frozen=True)
class CacheValidators:
    """What the last successful response said, replayed as a conditional GET."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    """The outcome of one HTTP poll of one feed, successful or not."""

    url: str
    final_url: str
    fetched_at: datetime
    duration: float
    status: int | None
    headers: Mapping[str, str]
    body: bytes | None
    wire_bytes: int
    error: str | None = None
    # Where a chain of permanent redirects (301/308) from `url` led, if any.
    moved_to: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def not_modified(self) -> bool:
        return self.error is None and self.status == 304

    @property
    def validators(self) -> CacheValidators:
        return CacheValidators(self.headers.get("etag"), self.headers.get("last-modified"))


# --------------------------------------------------------------------------- parse


@dataclass(frozen=True)
class Enclosure:
    url: str
    type: str | None = None
    length: int | None = None


@dataclass(frozen=True)
class RawEntry:
    """An entry as the document states it, before any cleaning.

    HTML is untouched and URLs may be relative; `clean` turns this into an
    `EntryData`. `base` is the base URL in effect for the entry's elements: the
    xml:base the document states for it, else the document's own URL.
    `explicit_base` tells the two apart, because only the feed's own elements
    are relative to the document's URL: without an xml:base, the HTML bodies
    are relative to the entry's page (`clean.body_base`).
    """

    guid: str | None
    title: str | None
    link: str | None
    base: str | None
    author: str | None
    published: datetime | None
    updated: datetime | None
    summary_html: str | None
    content_html: str | None
    tags: tuple[str, ...] = ()
    enclosures: tuple[Enclosure, ...] = ()
    media_thumbnails: tuple[str, ...] = ()
    media_images: tuple[str, ...] = ()
    itunes_image: str | None = None
    explicit_base: bool = False


@dataclass(frozen=True)
class ParsedFeed:
    """A feed document read into plain values."""

    format: str
    title: str | None
    link: str | None
    entries: tuple[RawEntry, ...]
    warning: str | None = None
    # How often the feed says it changes (<ttl>, sy:updatePeriod/Frequency).
    update_hint: timedelta | None = None


@dataclass(frozen=True)
class EntryData:
    """One entry normalised: sanitised HTML, absolute URLs, aware UTC dates.

    `raw_body` is the exception: the body (content, else summary) exactly as
    the document gave it, unsanitised, for exports that promise the feed's own
    HTML. Nothing else may render it.
    """

    entry_id: str
    title: str
    link: str | None
    author: str | None
    published: datetime
    updated: datetime | None
    summary: str | None
    content: str | None
    tags: tuple[str, ...] = ()
    enclosures: tuple[Enclosure, ...] = ()
    thumbnail: str | None = None
    published_known: bool = True
    raw_body: str | None = None
    #: `identity.entry_fingerprint` of the raw entry this came from; what a
    #: source stores to recognise the entry unchanged without cleaning it.
    fingerprint: str | None = None
    #: The digest's text under the title (`clean.excerpt`); made from the bodies when not given.
    excerpt: str | None = None
    #: `identity.canonical_link` of `link`, the key cross-posts are matched by.
    link_key: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        # Derived here, where the entry is made: for a large document that is
        # the reading worker, so the storing process gets them ready-made
        # (unpickling does not run this again).
        from aggregator.identity import canonical_link

        object.__setattr__(self, "link_key", canonical_link(self.link))
        if self.excerpt is None:
            object.__setattr__(self, "excerpt", _excerpt(self.summary, self.content))


# --------------------------------------------------------------------------- store / publish


@dataclass(frozen=True)
class SourceRef:
    """Where a story came from, as shown next to it in outputs.

    `name` is what the config calls the feed (or its own title when unnamed);
    `channel_title` is always the feed's own title, and `categories` are the
    feed's configured categories in config order.
    """

    feed_url: str
    name: str
    site_link: str | None = None
    channel_title: str | None = None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoryView:
    """A deduplicated story as the publishers see it."""

    uid: str
    title: str
    link: str | None
    author: str | None
    published: datetime
    updated: datetime | None
    first_seen: datetime
    summary: str | None
    content: str | None
    thumbnail: str | None
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    enclosures: tuple[Enclosure, ...]
    sources: tuple[SourceRef, ...]
    raw_body: str | None = None


@dataclass(frozen=True)
class FeedHealth:
    """One source's state as the digest and `status` report it."""

    url: str
    name: str
    state: str
    last_poll: datetime | None
    http_status: int | None
    last_error: str | None
    entries: int
    next_check: datetime | None = None
    last_warning: str | None = None
    not_before: datetime | None = None
    moved_to: str | None = None

    @property
    def failing(self) -> bool:
        """Whether pages should warn about this source (never polled is not failing yet)."""
        return self.state not in ("ok", "new")


@dataclass(frozen=True)
class DigestStory:
    """A story as a digest card shows it: no body, only the excerpt made from it."""

    story_id: int
    title: str
    link: str | None
    thumbnail: str | None
    published: datetime
    first_seen: datetime
    excerpt: str
    sources: tuple[SourceRef, ...]


class DigestMember(NamedTuple):
    """One story in one category's list of a digest day.

    A named tuple rather than a dataclass: a day of a busy site streams tens of
    thousands. `category` is None for stories whose feeds are in no category;
    `key` orders a category's list, oldest first (see `storage.DigestReader`);
    `story` is None while the story has no card yet.
    """

    category: str | None
    key: int
    published: datetime
    story_id: int
    story: DigestStory | None


@dataclass(frozen=True)
class DigestSection:
    """One category of one digest day: its newest stories and how many in all."""

    category: Category
    stories: tuple[DigestStory, ...]
    total: int


@dataclass(frozen=True)
class DigestPage:
    """One page of a category's stories of a day, when they are too many for the day page.

    Pages are counted from the oldest story, so a page keeps its stories (and
    its bytes) when newer ones arrive: they fill the newest page, then start
    another. `first` is the position of the page's oldest story among the
    day's, counted from 1 at the oldest; `stories` are newest first. `total`
    (how many the category has that day) is given only for the newest page,
    the one whose bytes change anyway.
    """

    day: str  # YYYY-MM-DD in the configured time zone
    category: Category
    number: int
    first: int
    stories: tuple[DigestStory, ...]
    total: int | None = None

    @property
    def newest(self) -> bool:
        return self.total is not None


@dataclass(frozen=True)
class DigestDay:
    """Everything first seen on one local calendar day, grouped by category."""

    day: str  # YYYY-MM-DD in the configured time zone
    sections: tuple[DigestSection, ...]
    previous_day: str | None
    next_day: str | None
    is_today: bool


@dataclass(frozen=True)
class WriteReport:
    """Which published files changed; unchanged files are not rewritten."""

    written: tuple[Path, ...] = ()
    unchanged: tuple[Path, ...] = ()
    #: Outputs that the config no longer has (the feeds of a category gone from feeds.yaml).
    removed: tuple[Path, ...] = ()

    def __add__(self, other: WriteReport) -> WriteReport:
        return WriteReport(
            self.written + other.written,
            self.unchanged + other.unchanged,
            self.removed + other.removed,
        )


# --------------------------------------------------------------------------- decide / store


@dataclass(frozen=True)
class StoryFields:
    """What a story shows, merged from all of its sources."""

    title: str
    link: str | None
    author: str | None
    summary: str | None
    content: str | None
    thumbnail: str | None
    published: datetime
    updated: datetime | None
    tags: tuple[str, ...] = ()
    enclosures: tuple[Enclosure, ...] = ()
    raw_body: str | None = None
    #: The digest's text under the title (`clean.excerpt`); made from the bodies when not given.
    excerpt: str | None = None

    def __post_init__(self) -> None:
        if self.excerpt is None:
            object.__setattr__(self, "excerpt", _excerpt(self.summary, self.content))


def _excerpt(summary: str | None, content: str | None) -> str:
    from aggregator.clean import excerpt  # the cleaner is loaded only when bodies are

    return excerpt(summary, content)


@dataclass(frozen=True)
class StoredSource:
    """One feed's claim on a story, as the database holds it."""

    source_id: int
    feed_id: int
    entry_id: str
    story_id: int
    content_hash: str


@dataclass(frozen=True)
class StoredStory:
    story_id: int
    primary_feed_id: int
    fields: StoryFields


@dataclass(frozen=True)
class FeedContext:
    """The slice of the database that deciding one parsed feed needs."""

    feed_id: int
    feed_url: str
    sources_by_entry_id: Mapping[str, StoredSource]
    story_by_link: Mapping[str, int]
    own_source_by_story: Mapping[int, StoredSource]
    stories: Mapping[int, StoredStory]
    #: Feed id → place in feeds.yaml (0 first), for this feed and the owners of the
    #: stories it may join: who owns a cross-post. A feed without one (no longer
    #: listed, or not read) ranks after every listed feed.
    ranks: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class NewStory:
    """Store a story never seen before, with this feed as its first source.

    `arrival`: the entry's place in the document, oldest first (see
    `decide.arrival_order`); sources are stored in that order.
    """

    entry_id: str
    entry_hash: str
    link_key: str | None
    uid: str
    fields: StoryFields
    arrival: int = 0


@dataclass(frozen=True)
class AddSource:
    """Another feed carries a known story: remember it; `fields` fills gaps (None: no change).

    `takes_over`: this feed is listed before the story's owner and becomes its
    owner (`fields` then prefer its values). `arrival`: as for `NewStory`.
    """

    story_id: int
    entry_id: str
    entry_hash: str
    fields: StoryFields | None
    takes_over: bool = False
    arrival: int = 0


@dataclass(frozen=True)
class UpdateSource:
    """A known entry of this feed changed (content, or only its id); update in place."""

    source_id: int
    story_id: int
    entry_id: str
    entry_hash: str
    fields: StoryFields | None


@dataclass(frozen=True)
class FeedIntents:
    new: tuple[NewStory, ...] = ()
    added: tuple[AddSource, ...] = ()
    updated: tuple[UpdateSource, ...] = ()
    unchanged: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.new or self.added or self.updated)


@dataclass(frozen=True)
class FeedState:
    """What the database remembers about a source between polls."""

    feed_id: int
    url: str
    name: str | None
    title: str | None
    validators: CacheValidators
    body_hash: str | None
    last_poll: datetime | None
    next_check: datetime | None
    state: str
    failures: int = 0
    not_before: datetime | None = None
    update_hint: timedelta | None = None
    moved_to: str | None = None

    @property
    def fetch_url(self) -> str:
        """Where to poll: the config's URL, unless it has moved permanently."""
        return self.moved_to or self.url


@dataclass(frozen=True)
class PollOutcome:
    """One poll of one feed as recorded in its history and shown by `status`."""

    started_at: datetime
    duration: float
    http_status: int | None
    wire_bytes: int
    error: str | None = None
    warning: str | None = None
    new: int = 0
    updated: int = 0
    not_modified: bool = False
    gone: bool = False

    @property
    def state(self) -> str:
        if self.gone:
            return "gone"
        return "error" if self.error else "ok"


@dataclass(frozen=True)
class PollRecord:
    """Everything one poll leaves on its feed's row, besides the stories it stored.

    `failures_before` is the feed's count of consecutive failures going in,
    from the state the poll started from.
    """

    feed_id: int
    outcome: PollOutcome
    next_poll: NextPoll
    failures_before: int = 0
    validators: CacheValidators | None = None
    body_hash: str | None = None
    title: str | None = None
    site_link: str | None = None
    update_hint: timedelta | None = None
    moved_to: str | None = None


@dataclass(frozen=True)
class NextPoll:
    """When a feed is polled again, as decided from one poll's response.

    `at` is when `run` polls next (None: never, the feed is gone);
    `not_before` is a server's explicit request (Retry-After) that even a
    manual `update` honours.
    """

    at: datetime | None
    not_before: datetime | None = None
