from datetime import UTC, datetime

import pytest

from aggregator.clean import CLEANING_REVISION
from aggregator.identity import (
    READING_REVISION,
    body_hash,
    canonical_link,
    content_hash,
    entry_fingerprint,
    story_uid,
)
from aggregator.models import Enclosure, EntryData, RawEntry


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Example.COM/a/b", "https://example.com/a/b"),
        ("http://example.com:80/x", "http://example.com/x"),
        ("https://example.com:443/x", "https://example.com/x"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("https://example.com/x#comments", "https://example.com/x"),
        ("https://example.com", "https://example.com/"),
        (
            "https://example.com/x?utm_source=rss&id=3&utm_medium=feed&fbclid=abc&gclid=z",
            "https://example.com/x?id=3",
        ),
        ("https://example.com/x?UTM_Campaign=a", "https://example.com/x"),
        ("https://example.com/Path/Case?b=2&a=1", "https://example.com/Path/Case?b=2&a=1"),
        ("https://[::1]:8080/p", "https://[::1]:8080/p"),
    ],
)
def test_canonical_link_rules(url: str, expected: str) -> None:
    assert canonical_link(url) == expected


@pytest.mark.parametrize(
    "url", [None, "", "mailto:a@b.c", "javascript:alert(1)", "/relative", "http://"]
)
def test_canonical_link_rejects_what_is_not_a_web_link(url: str | None) -> None:
    assert canonical_link(url) is None


def test_tracking_variants_share_one_canonical_link() -> None:
    variants = [
        "https://news.example.com/story/1?utm_source=a",
        "https://NEWS.example.com:443/story/1?fbclid=xyz#top",
        "https://news.example.com/story/1",
    ]
    assert len({canonical_link(v) for v in variants}) == 1


def _entry(**changes: object) -> EntryData:
    base: dict[str, object] = dict(
        entry_id="id-1",
        title="Title",
        link="https://example.com/1",
        author="A",
        published=datetime(2024, 1, 1, tzinfo=UTC),
        updated=None,
        summary="<p>s</p>",
        content=None,
        tags=("x",),
        enclosures=(Enclosure("https://example.com/a.mp3", "audio/mpeg", 10),),
        thumbnail=None,
    )
    base.update(changes)
    return EntryData(**base)  # type: ignore[arg-type]


def test_content_hash_ignores_dates_but_sees_content() -> None:
    original = content_hash(_entry())
    assert content_hash(_entry(updated=datetime(2025, 1, 1, tzinfo=UTC))) == original
    assert content_hash(_entry(published=datetime(2025, 1, 1, tzinfo=UTC))) == original
    assert content_hash(_entry(summary="<p>edited</p>")) != original
    assert content_hash(_entry(title="Other")) != original
    assert content_hash(_entry(thumbnail="https://example.com/t.png")) != original


def test_story_uid_is_stable_and_distinguishes_feeds_without_links() -> None:
    by_link = story_uid("https://example.com/1", "https://a/feed", "g1")
    assert by_link == story_uid("https://example.com/1", "https://b/feed", "other")
    assert by_link.startswith("urn:uuid:")
    assert story_uid(None, "https://a/feed", "g1") != story_uid(None, "https://b/feed", "g1")
    assert story_uid(None, "https://a/feed", "g1") == story_uid(None, "https://a/feed", "g1")


def _raw(**changes: object) -> RawEntry:
    values: dict[str, object] = dict(
        guid="g1",
        title="Title",
        link="https://x.test/1",
        base="https://x.test/feed",
        author="Ann",
        published=datetime(2024, 1, 1, tzinfo=UTC),
        updated=None,
        summary_html="<p>s</p>",
        content_html="<p>c</p>",
        tags=("a",),
        enclosures=(Enclosure("https://x.test/a.mp3", "audio/mpeg", 5),),
        media_thumbnails=("https://x.test/t.jpg",),
        media_images=(),
        itunes_image=None,
    )
    values.update(changes)
    return RawEntry(**values)  # type: ignore[arg-type]


def test_entry_fingerprint_changes_with_what_cleaning_reads_but_not_with_dates() -> None:
    base = entry_fingerprint(_raw(), "1/1000/4096")
    assert entry_fingerprint(_raw(), "1/1000/4096") == base
    assert (
        entry_fingerprint(_raw(published=datetime(2025, 1, 1, tzinfo=UTC)), "1/1000/4096") == base
    )
    changed = [
        _raw(guid="g2"), _raw(title="Other"), _raw(link=None), _raw(base="https://y.test/"),
        _raw(author=None), _raw(summary_html="<p>t</p>"), _raw(content_html=None),
        _raw(tags=("a", "b")), _raw(enclosures=()), _raw(media_thumbnails=()),
        _raw(media_images=("https://x.test/i.jpg",)), _raw(itunes_image="https://x.test/i.png"),
        _raw(explicit_base=True),
    ]  # fmt: skip
    fingerprints = {entry_fingerprint(raw, "1/1000/4096") for raw in changed}
    assert len(fingerprints) == len(changed) and base not in fingerprints
    assert entry_fingerprint(_raw(), "1/80/4096") != base  # other cleaning rules


def test_documents_are_read_again_when_the_cleaning_rules_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unchanged document is never parsed again, so its entries would not be
    cleaned under new rules unless its hash changes with them."""
    assert READING_REVISION == CLEANING_REVISION
    before = body_hash(b"<rss/>")
    assert body_hash(b"<rss/>") == before
    monkeypatch.setattr("aggregator.identity.READING_REVISION", READING_REVISION + 1)
    assert body_hash(b"<rss/>") != before


def test_entry_fingerprint_keeps_dates_when_they_are_part_of_the_id() -> None:
    anonymous = _raw(guid=None, link=None)
    moved = _raw(guid=None, link=None, published=datetime(2025, 1, 1, tzinfo=UTC))
    assert entry_fingerprint(anonymous, "r") != entry_fingerprint(moved, "r")
