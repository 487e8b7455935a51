"""The dedup rules of decide.py, on hand-made stored state."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from aggregator.decide import (
    MAX_BACKOFF,
    MAX_HINT,
    cache_lifetime,
    decide_feed,
    fields_from_entry,
    merge_fields,
    newest_entries,
    next_poll,
    ranks_before,
    retry_after,
)
from aggregator.identity import canonical_link, content_hash
from aggregator.models import EntryData, FeedContext, NextPoll, StoredSource, StoredStory

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
FEED_A, FEED_B = 1, 2


def entry(entry_id: str, link: str | None = None, **changes: object) -> EntryData:
    values: dict[str, object] = dict(
        entry_id=entry_id,
        title=f"Title {entry_id}",
        link=link,
        author=None,
        published=NOW - timedelta(hours=1),
        updated=None,
        summary=f"<p>{entry_id}</p>",
        content=None,
    )
    values.update(changes)
    return EntryData(**values)  # type: ignore[arg-type]


def empty_context(feed_id: int = FEED_A) -> FeedContext:
    return FeedContext(feed_id, f"https://feed{feed_id}.test/rss", {}, {}, {}, {})


def stored(feed_id: int, e: EntryData, story_id: int, source_id: int, owner: int) -> FeedContext:
    """A context in which `e` is already stored as story `story_id`."""
    source = StoredSource(source_id, feed_id, e.entry_id, story_id, content_hash(e))
    story = StoredStory(story_id, owner, fields_from_entry(e))
    key = canonical_link(e.link)
    return FeedContext(
        feed_id,
        f"https://feed{feed_id}.test/rss",
        {e.entry_id: source},
        {key: story_id} if key else {},
        {story_id: source},
        {story_id: story},
    )


def test_new_entries_become_new_stories() -> None:
    intents = decide_feed(empty_context(), [entry("a", "https://x.test/a"), entry("b")], NOW)
    link_keys = {n.entry_id: n.link_key for n in intents.new}
    assert link_keys == {"a": "https://x.test/a", "b": None}
    assert not intents.added and not intents.updated


def test_new_stories_and_sources_come_oldest_first() -> None:
    """Stored in this order, a busy feed's first poll puts its oldest stories on the
    first digest page and its newest on the last, as later polls do."""
    hour = timedelta(hours=1)
    known = entry("k", "https://x.test/k", published=NOW - 3 * hour)
    in_b = stored(FEED_B, known, story_id=7, source_id=70, owner=FEED_B)
    context = replace(in_b, feed_id=FEED_A, sources_by_entry_id={}, own_source_by_story={})
    document = [  # newest first, as feeds list them
        entry("n1", published=NOW - hour),
        entry("n2", published=NOW - 2 * hour),
        entry("cross", "https://x.test/k", published=NOW - 3 * hour),
        entry("n4", published=NOW - 4 * hour),
    ]
    intents = decide_feed(context, document, NOW)
    assert [n.entry_id for n in intents.new] == ["n4", "n2", "n1"]
    assert [a.entry_id for a in intents.added] == ["cross"]
    # Between the two kinds, the places say where the cross-post goes.
    places = {n.entry_id: n.arrival for n in intents.new} | {"cross": intents.added[0].arrival}
    assert sorted(places, key=places.__getitem__) == ["n4", "cross", "n2", "n1"]


def test_entries_of_one_date_arrive_in_the_feeds_order_read_backwards() -> None:
    """Undated entries (all given the fetch time) and entries of one date: the feed's
    first is taken as its newest."""
    document = [entry("first"), entry("second"), entry("third")]
    intents = decide_feed(empty_context(), document, NOW)
    assert [n.entry_id for n in intents.new] == ["third", "second", "first"]


def test_repeated_entry_ids_in_one_document_count_once() -> None:
    intents = decide_feed(empty_context(), [entry("a"), entry("a", title="dup")], NOW)
    assert len(intents.new) == 1


def test_unchanged_entry_stores_nothing() -> None:
    e = entry("a", "https://x.test/a")
    intents = decide_feed(stored(FEED_A, e, 10, 100, FEED_A), [e], NOW)
    assert not intents.changed
    assert intents.unchanged == 1


def test_changed_content_updates_in_place_and_sets_updated() -> None:
    e = entry("a", "https://x.test/a")
    edited = replace(e, summary="<p>edited</p>")
    intents = decide_feed(stored(FEED_A, e, 10, 100, FEED_A), [edited], NOW)
    assert not intents.new
    (update,) = intents.updated
    assert update.source_id == 100 and update.story_id == 10
    assert update.fields is not None and update.fields.summary == "<p>edited</p>"
    assert update.fields.updated == NOW


def test_edit_to_the_raw_html_alone_is_stored_without_marking_the_story_updated() -> None:
    e = entry("a", "https://x.test/a", raw_body="<p>a</p><script>track(1)</script>")
    edited = replace(e, raw_body="<p>a</p><script>track(2)</script>")
    intents = decide_feed(stored(FEED_A, e, 10, 100, FEED_A), [edited], NOW)
    (update,) = intents.updated
    assert update.fields is not None
    assert update.fields.raw_body == edited.raw_body
    assert update.fields.updated is None  # readers of our outputs saw no change


def test_raw_html_follows_the_source_whose_body_is_shown() -> None:
    owner = entry("a", "https://x.test/a", summary="<p>short</p>", raw_body="<p>short</p>")
    other = entry(
        "b", "https://x.test/a", summary=None, content="<p>long</p>", raw_body="<p> long </p>"
    )
    merged = merge_fields(fields_from_entry(owner), other, owner=False, changed=False, now=NOW)
    assert merged.content == "<p>long</p>"  # the other source filled the missing content
    assert merged.raw_body == "<p> long </p>"


def test_same_guid_in_another_feed_is_another_entry() -> None:
    e = entry("shared-guid")  # no link: nothing says it is the same story
    context = stored(FEED_A, e, 10, 100, FEED_A)
    other_feed = replace(context, feed_id=FEED_B, sources_by_entry_id={}, own_source_by_story={})
    intents = decide_feed(other_feed, [e], NOW)
    assert len(intents.new) == 1


def test_cross_post_with_tracking_variant_attaches_a_source() -> None:
    original = entry("a", "https://news.test/story?id=1")
    context = stored(FEED_A, original, 10, 100, FEED_A)
    in_b = replace(context, feed_id=FEED_B, sources_by_entry_id={}, own_source_by_story={})
    cross = entry("b-77", "https://NEWS.test:443/story?id=1&utm_source=rss#x")
    intents = decide_feed(in_b, [cross], NOW)
    assert not intents.new
    (added,) = intents.added
    assert added.story_id == 10 and added.entry_id == "b-77"


def test_guid_changing_on_every_fetch_but_same_link_rekeys() -> None:
    first = entry("guid-1", "https://x.test/a")
    again = replace(first, entry_id="guid-2")
    intents = decide_feed(stored(FEED_A, first, 10, 100, FEED_A), [again], NOW)
    assert not intents.new and not intents.added
    (update,) = intents.updated
    assert update.entry_id == "guid-2" and update.source_id == 100
    assert update.fields is None  # content identical: only the id moved


def test_link_shared_by_several_entries_of_a_document_identifies_none() -> None:
    home = "https://blog.test/"
    intents = decide_feed(empty_context(), [entry("1", home), entry("2", home)], NOW)
    assert len(intents.new) == 2
    assert all(n.link_key is None for n in intents.new)
    assert len({n.uid for n in intents.new}) == 2


def test_gap_filling_does_not_depend_on_order() -> None:
    with_thumb = entry("a", "https://x.test/s", thumbnail="https://img.test/t.png", author=None)
    with_author = entry("b", "https://x.test/s", thumbnail=None, author="Ann", summary=None)

    def merged(first: EntryData, second: EntryData) -> tuple[object, ...]:
        fields = merge_fields(fields_from_entry(first), second, owner=False, changed=False, now=NOW)
        return (fields.thumbnail, fields.author, fields.summary)

    assert merged(with_thumb, with_author) == ("https://img.test/t.png", "Ann", "<p>a</p>")
    assert merged(with_author, with_thumb) == ("https://img.test/t.png", "Ann", "<p>a</p>")


def test_owner_values_win_over_secondary_sources() -> None:
    current = fields_from_entry(entry("a", "https://x.test/s", title="Owner title"))
    secondary = entry("b", "https://x.test/s", title="Other title")
    assert merge_fields(current, secondary, owner=False, changed=False, now=NOW).title == (
        "Owner title"
    )
    owner_edit = entry("a", "https://x.test/s", title="Edited")
    assert merge_fields(current, owner_edit, owner=True, changed=True, now=NOW).title == "Edited"


def test_source_listed_before_the_owner_takes_over_a_story_it_joins() -> None:
    from_b = entry(
        "urn:b:1",
        "https://example.org/story-1#comments",
        title="Title from B",
        thumbnail="https://img.test/b.png",
        updated=NOW - timedelta(minutes=30),
    )
    from_a = entry("a-1", "https://example.org/story-1", title="Title from A", author="Ann")
    ranks = {FEED_A: 0, FEED_B: 1}  # A is listed first in feeds.yaml
    b_owns = stored(FEED_B, from_b, 10, 100, FEED_B)
    in_a = replace(
        b_owns, feed_id=FEED_A, sources_by_entry_id={}, own_source_by_story={}, ranks=ranks
    )

    (added,) = decide_feed(in_a, [from_a], NOW).added
    assert added.takes_over and added.story_id == 10
    assert added.fields is not None
    assert (added.fields.title, added.fields.link, added.fields.summary) == (
        "Title from A",
        "https://example.org/story-1",
        "<p>a-1</p>",
    )
    assert added.fields.thumbnail == "https://img.test/b.png"  # B still fills what A lacks
    # Exactly what A's fetch finishing first, then B's, would have stored.
    a_first = merge_fields(fields_from_entry(from_a), from_b, owner=False, changed=False, now=NOW)
    assert added.fields == a_first

    # Listed after the owner: B joining A's story only fills, as before.
    a_owns = stored(FEED_A, from_a, 10, 100, FEED_A)
    in_b = replace(
        a_owns, feed_id=FEED_B, sources_by_entry_id={}, own_source_by_story={}, ranks=ranks
    )
    (joined,) = decide_feed(in_b, [from_b], NOW).added
    assert not joined.takes_over
    assert joined.fields == a_first


def test_a_feed_no_longer_listed_ranks_after_every_listed_feed() -> None:
    listed_only_a = {FEED_A: 0}
    assert ranks_before(listed_only_a, FEED_A, FEED_B)
    assert not ranks_before(listed_only_a, FEED_B, FEED_A)
    assert not ranks_before({}, FEED_B, FEED_A)  # two unlisted feeds never displace each other
    assert not ranks_before({FEED_A: 0, FEED_B: 1}, FEED_A, FEED_A)


def test_unknown_publication_date_keeps_the_stored_one() -> None:
    e = entry("a", "https://x.test/a")
    later = replace(e, published=NOW, published_known=False, summary="<p>new</p>")
    intents = decide_feed(stored(FEED_A, e, 10, 100, FEED_A), [later], NOW)
    (update,) = intents.updated
    assert update.fields is not None and update.fields.published == e.published


def test_unchanged_and_rekeyed_entries_need_no_stored_story_fields() -> None:
    """Storage reads full stories only for changed entries; decide must not ask for more."""
    first = entry("guid-1", "https://x.test/a")
    context = replace(stored(FEED_A, first, 10, 100, FEED_A), stories={})
    assert decide_feed(context, [first], NOW).unchanged == 1
    (update,) = decide_feed(context, [replace(first, entry_id="guid-2")], NOW).updated
    assert update.entry_id == "guid-2" and update.fields is None


# --------------------------------------------------------------------------- when to poll again

INTERVAL = timedelta(minutes=30)


def poll(status: int | None, failed: bool = False, failures: int = 0, **extra: object):
    values: dict[str, object] = dict(
        now=NOW, interval=INTERVAL, status=status, failed=failed, headers={},
        update_hint=None, failures=failures,
    )  # fmt: skip
    values.update(extra)
    return next_poll(**values)  # type: ignore[arg-type]


def test_success_waits_for_the_longest_soft_hint_but_never_less_than_the_interval() -> None:
    assert poll(200).at == NOW + INTERVAL
    assert poll(200, headers={"cache-control": "public, max-age=3600"}).at == NOW + timedelta(
        hours=1
    )
    assert poll(304, headers={"cache-control": "max-age=60"}).at == NOW + INTERVAL
    expires = {"expires": "Wed, 01 May 2024 14:00:00 GMT", "date": "Wed, 01 May 2024 12:00:00 GMT"}
    assert poll(200, headers=expires).at == NOW + timedelta(hours=2)
    assert poll(200, update_hint=timedelta(days=1)).at == NOW + timedelta(days=1)
    assert poll(200, update_hint=timedelta(days=365)).at == NOW + MAX_HINT
    assert poll(200).not_before is None


def test_failures_back_off_and_retry_after_binds() -> None:
    assert [poll(500, True, n).at - NOW for n in (1, 2, 3)] == [
        INTERVAL,
        2 * INTERVAL,
        4 * INTERVAL,
    ]
    assert poll(500, True, 40).at == NOW + MAX_BACKOFF
    limited = poll(429, True, 1, headers={"retry-after": "7200"})
    assert limited.not_before == NOW + timedelta(hours=2) == limited.at
    dated = poll(503, True, 1, headers={"retry-after": "Wed, 01 May 2024 12:01:00 GMT"})
    assert dated.not_before == NOW + timedelta(minutes=1) and dated.at == NOW + INTERVAL
    assert poll(503, True, 1, headers={"retry-after": "soon, maybe"}).not_before is None
    assert poll(500, True, 1, headers={"retry-after": "60"}).not_before is None  # only 429/503
    assert poll(410, True, 1) == NextPoll(at=None)


def test_retry_after_and_cache_lifetime_readers() -> None:
    assert retry_after("120", NOW) == NOW + timedelta(seconds=120)
    assert retry_after("99999999999", NOW) == NOW + MAX_HINT
    assert retry_after("Tue, 30 Apr 2024 12:00:00 GMT", NOW) is None  # already past
    assert retry_after(None, NOW) is None
    assert cache_lifetime({"cache-control": 'max-age="90"'}, NOW) == timedelta(seconds=90)
    assert cache_lifetime({"cache-control": "no-cache"}, NOW) is None
    assert cache_lifetime({"expires": "0"}, NOW) is None


def test_newest_entries_keeps_the_newest_in_document_order() -> None:
    entries = [
        entry(str(i), published=NOW - timedelta(hours=h)) for i, h in enumerate([5, 1, 9, 2])
    ]
    assert [e.entry_id for e in newest_entries(entries, 2)] == ["1", "3"]
    assert newest_entries(entries, 10) == entries
