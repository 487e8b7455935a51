"""What to do with a freshly parsed feed, given what is already stored, and when to poll again.

Pure: gets the stored slice (`FeedContext`), the entries and `now`, and returns
intents that storage writes as they are. The dedup rules:

1. Within a feed an entry is known by its id (the same id in two feeds is two
   entries, which may still be one story by rule 2).
2. Across feeds the same canonical link is the same story: a second source is
   attached to it, never a second copy.
3. A feed that changes an entry's id but keeps its link re-keys the stored
   entry instead of adding one.
4. A link that appears on several entries of one document (a feed linking
   every item to its home page) identifies none of them.
5. Of a story's sources, the one listed first in feeds.yaml owns its title,
   link, text and dates; the others only fill fields it lacks. A source that
   joins a story and is listed before its owner takes it over, so what is
   published does not depend on which fetch finished first. A feed no longer
   listed ranks after every listed one. Ownership moves only when a source
   joins: reordering feeds.yaml leaves stored stories as they are.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from aggregator.identity import entry_hash, story_uid
from aggregator.models import (
    AddSource,
    EntryData,
    FeedContext,
    FeedIntents,
    NewStory,
    NextPoll,
    StoredStory,
    StoryFields,
    UpdateSource,
)


def unique_entries(entries: Sequence[EntryData]) -> list[EntryData]:
    """First occurrence of each entry id; feeds do repeat items."""
    seen: set[str] = set()
    result = []
    for entry in entries:
        if entry.entry_id not in seen:
            seen.add(entry.entry_id)
            result.append(entry)
    return result


def newest_entries(entries: Sequence[EntryData], limit: int) -> list[EntryData]:
    """At most `limit` entries, the newest by publication date, in document order."""
    if len(entries) <= limit:
        return list(entries)
    ranked = sorted(range(len(entries)), key=lambda i: entries[i].published, reverse=True)
    return [entries[i] for i in sorted(ranked[:limit])]


def arrival_order(entries: Sequence[EntryData]) -> dict[str, int]:
    """entry id → its place among `entries` from the oldest, for storing them in that order.

    Digest pages count a category's stories in the order they were stored
    (`paging`), so that older pages keep their stories when new ones come.
    Feeds list their newest first: stored in document order, the first poll
    of a busy feed would put its newest stories on the oldest page. Entries
    with the same date (or none) keep the feed's order, read backwards.
    """
    ranked = sorted(range(len(entries)), key=lambda i: (entries[i].published, -i))
    return {entries[i].entry_id: place for place, i in enumerate(ranked)}


def identifying_links(entries: Sequence[EntryData]) -> dict[str, str]:
    """entry id → canonical link, for links that name exactly one entry of the document."""
    keys = {e.entry_id: e.link_key for e in entries}
    counts = Counter(k for k in keys.values() if k)
    return {entry_id: key for entry_id, key in keys.items() if key and counts[key] == 1}


def fields_from_entry(entry: EntryData) -> StoryFields:
    return StoryFields(
        title=entry.title,
        link=entry.link,
        author=entry.author,
        summary=entry.summary,
        content=entry.content,
        thumbnail=entry.thumbnail,
        published=entry.published,
        updated=entry.updated,
        tags=entry.tags,
        enclosures=entry.enclosures,
        raw_body=entry.raw_body,
        excerpt=entry.excerpt,
    )


def _union(first: tuple[object, ...], second: tuple[object, ...]) -> tuple[object, ...]:
    return first + tuple(item for item in second if item not in first)


def merge_fields(
    current: StoryFields, entry: EntryData, *, owner: bool, changed: bool, now: datetime
) -> StoryFields:
    """The story's fields after `entry` (from one of its sources) is taken into account.

    The owner's non-empty values win; any source fills what is still empty.
    Tags and enclosures are the union of all sources'. `updated` moves only
    when something a reader sees changed, not for an edit to the raw HTML
    alone (such as a tracking script the sanitiser drops anyway).
    """
    incoming = fields_from_entry(entry)
    preferred, fallback = (incoming, current) if owner else (current, incoming)
    merged = StoryFields(
        title=preferred.title or fallback.title,
        link=preferred.link or fallback.link,
        author=preferred.author or fallback.author,
        summary=preferred.summary or fallback.summary,
        content=preferred.content or fallback.content,
        thumbnail=preferred.thumbnail or fallback.thumbnail,
        published=current.published if not (owner and entry.published_known) else entry.published,
        updated=current.updated,
        tags=_union(preferred.tags, fallback.tags),  # type: ignore[arg-type]
        enclosures=_union(preferred.enclosures, fallback.enclosures),  # type: ignore[arg-type]
        raw_body=_raw_body(preferred, fallback),
        excerpt=_excerpt(preferred, fallback),
    )
    if owner and changed and _visible(merged) != _visible(current):
        merged = dataclasses.replace(merged, updated=entry.updated or now)
    return merged


def ranks_before(ranks: Mapping[int, int], feed_id: int, owner_id: int) -> bool:
    """Whether `feed_id` is listed before `owner_id` in feeds.yaml, and so owns what they share.

    A feed without a rank (no longer listed) comes after every listed one, so
    a removed feed's stories go to the first listed feed that carries them;
    two unlisted feeds never displace each other.
    """
    rank = ranks.get(feed_id)
    if rank is None:
        return False
    owner_rank = ranks.get(owner_id)
    return owner_rank is None or rank < owner_rank


def take_over(current: StoryFields, entry: EntryData, now: datetime) -> StoryFields:
    """The story's fields once `entry`'s feed, listed before the story's owner, owns it.

    The same as if that feed's fetch had finished first and the others had then
    filled in: its values win, the previous owner's fill what it lacks, and
    `updated` is its own (the previous owner's said when its version changed).
    Its publication date replaces the stored one only when the entry gives one.
    """
    merged = merge_fields(current, entry, owner=True, changed=False, now=now)
    return dataclasses.replace(merged, updated=entry.updated)


def _raw_body(preferred: StoryFields, fallback: StoryFields) -> str | None:
    """The raw HTML of whichever source the merged body (content, else summary) came from."""
    for fields in (preferred, fallback):
        if fields.content:
            return fields.raw_body
    for fields in (preferred, fallback):
        if fields.summary:
            return fields.raw_body
    return preferred.raw_body or fallback.raw_body


def _excerpt(preferred: StoryFields, fallback: StoryFields) -> str | None:
    """The excerpt of whichever source the merged summary (else content) came from.

    The same as making it from the merged bodies, without doing so.
    """
    for fields in (preferred, fallback):
        if fields.summary:
            return fields.excerpt
    for fields in (preferred, fallback):
        if fields.content:
            return fields.excerpt
    return preferred.excerpt


def _visible(fields: StoryFields) -> StoryFields:
    return dataclasses.replace(fields, raw_body=None, updated=None)


def _changed_fields(story: StoredStory, merged: StoryFields) -> StoryFields | None:
    return None if merged == story.fields else merged


def decide_feed(context: FeedContext, entries: Sequence[EntryData], now: datetime) -> FeedIntents:
    """Sort a document's entries into new stories, new sources, updates and unchanged."""
    entries = unique_entries(entries)
    link_keys = identifying_links(entries)
    arrival = arrival_order(entries)
    new: list[NewStory] = []
    added: list[AddSource] = []
    updated: list[UpdateSource] = []
    unchanged = 0
    claimed_stories: set[int] = set()

    for entry in entries:
        fingerprint = entry_hash(entry)
        link_key = link_keys.get(entry.entry_id)
        source = context.sources_by_entry_id.get(entry.entry_id)
        story_id = context.story_by_link.get(link_key) if link_key else None

        if source is None and story_id is not None:
            source = context.own_source_by_story.get(story_id)
            if source is not None and source.story_id in claimed_stories:
                source = None  # that stored entry is already matched by its own id

        if source is not None:
            claimed_stories.add(source.story_id)
            rekeyed = source.entry_id != entry.entry_id
            changed = source.content_hash != fingerprint
            if not (rekeyed or changed):
                unchanged += 1
                continue
            fields = None
            if changed:
                story = context.stories[source.story_id]
                owner = story.primary_feed_id == context.feed_id
                merged = merge_fields(story.fields, entry, owner=owner, changed=True, now=now)
                fields = _changed_fields(story, merged)
            updated.append(
                UpdateSource(source.source_id, source.story_id, entry.entry_id, fingerprint, fields)
            )
        elif story_id is not None:
            claimed_stories.add(story_id)
            story = context.stories[story_id]
            takes_over = ranks_before(context.ranks, context.feed_id, story.primary_feed_id)
            if takes_over:
                merged = take_over(story.fields, entry, now)
            else:
                merged = merge_fields(story.fields, entry, owner=False, changed=False, now=now)
            fields = _changed_fields(story, merged)
            added.append(
                AddSource(
                    story_id,
                    entry.entry_id,
                    fingerprint,
                    fields,
                    takes_over,
                    arrival=arrival[entry.entry_id],
                )
            )
        else:
            new.append(
                NewStory(
                    entry_id=entry.entry_id,
                    entry_hash=fingerprint,
                    link_key=link_key,
                    uid=story_uid(link_key, context.feed_url, entry.entry_id),
                    fields=fields_from_entry(entry),
                    arrival=arrival[entry.entry_id],
                )
            )
    new.sort(key=lambda story: story.arrival)
    added.sort(key=lambda source: source.arrival)
    return FeedIntents(tuple(new), tuple(added), tuple(updated), unchanged)


# --------------------------------------------------------------------------- when to poll again
#
# Hard requests from a server (410 Gone; Retry-After on 429 and 503) bind even
# a manual `update`. Soft hints (Cache-Control, Expires, <ttl>,
# sy:updatePeriod) only push back the next check that `run` keeps, never
# below the configured interval. Failures back off exponentially.

#: No hint or Retry-After keeps a feed quiet for longer than this.
MAX_HINT = timedelta(days=7)
#: Consecutive failures double the wait, up to this.
MAX_BACKOFF = timedelta(days=1)
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d{1,10})", re.IGNORECASE)


def next_poll(
    *,
    now: datetime,
    interval: timedelta,
    status: int | None,
    failed: bool,
    headers: Mapping[str, str],
    update_hint: timedelta | None,
    failures: int,
) -> NextPoll:
    """When to poll a feed again after a poll that got `status` (and failed or not).

    `failures` counts consecutive failed polls including this one; headers
    have lower-case names; `update_hint` is what the feed itself says.
    """
    if status == 410:
        return NextPoll(at=None)
    if failed:
        wait = min(interval * 2 ** min(max(failures - 1, 0), 16), max(MAX_BACKOFF, interval))
        not_before = retry_after(headers.get("retry-after"), now) if status in (429, 503) else None
        at = now + wait
        return NextPoll(at=max(at, not_before) if not_before else at, not_before=not_before)
    hints = [interval, cache_lifetime(headers, now), update_hint]
    return NextPoll(at=now + min(max(h for h in hints if h is not None), max(MAX_HINT, interval)))


def _http_date(value: str) -> datetime | None:
    if not value:  # most responses carry no Expires: no exception to raise and catch
        return None
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def retry_after(value: str | None, now: datetime) -> datetime | None:
    """A Retry-After header (seconds or an HTTP date) as a moment; None if unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return now + min(timedelta(seconds=int(text[:10])), MAX_HINT)
    moment = _http_date(text)
    if moment is None or moment <= now:
        return None
    return min(moment, now + MAX_HINT)


def cache_lifetime(headers: Mapping[str, str], now: datetime) -> timedelta | None:
    """How long the response says it stays fresh: Cache-Control max-age, else Expires."""
    match = _MAX_AGE.search(headers.get("cache-control", ""))
    if match:
        return timedelta(seconds=int(match[1]))
    expires = _http_date(headers.get("expires", ""))
    if expires is None:
        return None
    sent = _http_date(headers.get("date", "")) or now
    return max(expires - sent, timedelta(0))
