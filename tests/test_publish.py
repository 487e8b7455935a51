"""Output feeds read back the way subscribers' software reads them: feedparser, lxml, a schema."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import jsonschema
import pytest
from lxml import etree

from aggregator.models import (
    Category,
    Enclosure,
    SiteSettings,
    SourceRef,
    StoryView,
    WriteReport,
)
from aggregator.publish import publish_feeds, publish_opml
from tests.factories import BASE, make_site

ATOM = "http://www.w3.org/2005/Atom"
MEDIA = "http://search.yahoo.com/mrss/"
NS = {"a": ATOM, "media": MEDIA, "content": "http://purl.org/rss/1.0/modules/content/"}

ALL = Category(name="all", slug="all")
TECH = Category(name="Tech", slug="tech")
CHINA = Category(name="中国", slug="china")
CATEGORIES = (TECH, CHINA)

#: The parts of JSON Feed 1.1 a reader relies on: required members and their types.
JSON_FEED_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["version", "title", "items"],
    "properties": {
        "version": {"const": "https://jsonfeed.org/version/1.1"},
        "title": {"type": "string"},
        "home_page_url": {"type": "string"},
        "feed_url": {"type": "string"},
        "description": {"type": "string"},
        "language": {"type": "string"},
        "authors": {"type": "array", "items": {"$ref": "#/$defs/author"}},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
    },
    "$defs": {
        "author": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "url": {"type": "string"},
                "avatar": {"type": "string"},
            },
            "anyOf": [{"required": ["name"]}, {"required": ["url"]}, {"required": ["avatar"]}],
        },
        "date": {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$",
        },
        "item": {
            "type": "object",
            "required": ["id"],
            "anyOf": [{"required": ["content_html"]}, {"required": ["content_text"]}],
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "url": {"type": "string"},
                "external_url": {"type": "string"},
                "title": {"type": "string"},
                "content_html": {"type": "string"},
                "content_text": {"type": "string"},
                "summary": {"type": "string"},
                "image": {"type": "string"},
                "banner_image": {"type": "string"},
                "date_published": {"$ref": "#/$defs/date"},
                "date_modified": {"$ref": "#/$defs/date"},
                "authors": {"type": "array", "items": {"$ref": "#/$defs/author"}},
                "tags": {"type": "array", "items": {"type": "string"}},
                "language": {"type": "string"},
                "attachments": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["url", "mime_type"],
                        "properties": {
                            "url": {"type": "string"},
                            "mime_type": {"type": "string"},
                            "title": {"type": "string"},
                            "size_in_bytes": {"type": "integer", "minimum": 0},
                            "duration_in_seconds": {"type": "number"},
                        },
                    },
                },
            },
            "patternProperties": {"^_[a-zA-Z]": {}},
            "additionalProperties": False,
        },
    },
}


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2024, 3, day, hour, minute, tzinfo=UTC)


BLOG = SourceRef("https://blog.example.com/feed.xml", "Example Blog", "https://blog.example.com/")
WIRE = SourceRef("https://wire.example.net/rss", "Wire Service")

PODCAST = StoryView(
    uid="urn:uuid:00000000-0000-5000-8000-000000000001",
    title="Episode 12 & the <future>",
    link="https://blog.example.com/ep12",
    author="Ann Author",
    published=at(9),
    updated=at(10, 30),
    first_seen=at(9, 5),
    summary="<p>Short <b>summary</b></p>",
    content='<p>The long content, with <a href="https://x.example/">a link</a>.</p>',
    thumbnail="https://cdn.example.com/ep12.jpg",
    tags=("podcast", "Tech"),
    categories=("Tech",),
    enclosures=(
        Enclosure("https://cdn.example.com/ep12.mp3", "audio/mpeg", 12345678),
        Enclosure("https://cdn.example.com/ep12.ogg", None, None),
    ),
    sources=(BLOG, WIRE),
)
CJK = StoryView(
    uid="urn:uuid:00000000-0000-5000-8000-000000000002",
    title="北京发布新规 \x0b人工智能",
    link="https://news.example.cn/a/1?x=1&y=2",
    author=None,
    published=at(8, 15),
    updated=None,
    first_seen=at(8, 20),
    summary="<p>中文摘要</p>",
    content=None,
    thumbnail=None,
    tags=(),
    categories=("china",),
    enclosures=(),
    sources=(SourceRef("https://news.example.cn/rss", "新闻网", "https://news.example.cn/"),),
)
NO_LINK = StoryView(
    uid="urn:uuid:00000000-0000-5000-8000-000000000003",
    title="A note without a link",
    link=None,
    author=None,
    published=at(7),
    updated=None,
    first_seen=at(7, 1),
    summary=None,
    content=None,
    thumbnail=None,
    tags=(),
    categories=(),
    enclosures=(),
    sources=(),
)
STORIES = (PODCAST, CJK, NO_LINK)


def outputs() -> list[tuple[Category, tuple[StoryView, ...]]]:
    return [(ALL, STORIES), (TECH, (PODCAST,)), (CHINA, (CJK,))]


@pytest.fixture
def site(tmp_path: Path) -> SiteSettings:
    return make_site(tmp_path)


@pytest.fixture
def published(site: SiteSettings) -> WriteReport:
    return publish_feeds(site, outputs(), CATEGORIES)


def feed_file(site: SiteSettings, name: str) -> Path:
    return site.output_dir / "feeds" / name


# --------------------------------------------------------------------------- files


def test_writes_three_formats_per_output(site: SiteSettings, published: WriteReport) -> None:
    expected = {
        feed_file(site, f"{slug}.{ext}")
        for slug in ("all", "tech", "china")
        for ext in ("atom", "rss", "json")
    }
    assert set(published.written) == expected
    assert published.unchanged == ()
    assert all(path.is_file() for path in expected)


def test_second_publish_with_same_input_rewrites_nothing(
    site: SiteSettings, published: WriteReport
) -> None:
    before = {path: path.stat().st_mtime_ns for path in published.written}
    again = publish_feeds(site, outputs(), CATEGORIES)
    assert again.written == ()
    assert set(again.unchanged) == set(before)
    assert {path: path.stat().st_mtime_ns for path in before} == before


def test_a_changed_story_rewrites_only_the_feeds_it_is_in(
    site: SiteSettings, published: WriteReport
) -> None:
    changed = replace(CJK, title="北京发布新规（更新）")
    report = publish_feeds(
        site,
        [(ALL, (PODCAST, changed, NO_LINK)), (TECH, (PODCAST,)), (CHINA, (changed,))],
        CATEGORIES,
    )
    assert {p.name for p in report.written} == {
        "all.atom", "all.rss", "all.json", "china.atom", "china.rss", "china.json",
    }  # fmt: skip


def test_feed_date_is_newest_story_not_now(site: SiteSettings, published: WriteReport) -> None:
    atom = etree.parse(str(feed_file(site, "all.atom")))
    assert atom.findtext("a:updated", namespaces=NS) == "2024-03-01T10:30:00+00:00"
    rss = etree.parse(str(feed_file(site, "china.rss")))
    assert rss.findtext("channel/lastBuildDate") == "Fri, 01 Mar 2024 08:15:00 +0000"


def test_empty_output_has_a_fixed_date_and_is_valid(site: SiteSettings) -> None:
    empty = Category("Empty", "empty")
    publish_feeds(site, [(empty, ())], [empty])
    atom = etree.parse(str(feed_file(site, "empty.atom")))
    assert atom.findtext("a:updated", namespaces=NS) == "1970-01-01T00:00:00+00:00"
    assert atom.findall("a:entry", namespaces=NS) == []
    data = json.loads(feed_file(site, "empty.json").read_text("utf-8"))
    jsonschema.validate(data, JSON_FEED_SCHEMA)
    assert data["items"] == []
    assert publish_feeds(site, [(empty, ())], [empty]).written == ()


# --------------------------------------------------------------------------- Atom


def test_atom_reads_back_with_feedparser(site: SiteSettings, published: WriteReport) -> None:
    parsed = feedparser.parse(feed_file(site, "all.atom").read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Morning Paper"
    assert parsed.feed.id == BASE
    assert parsed.feed.link == BASE
    assert parsed.feed.language == "en"
    assert [e.id for e in parsed.entries] == [s.uid for s in STORIES]
    assert [e.title for e in parsed.entries] == [
        "Episode 12 & the <future>",
        "北京发布新规 人工智能",
        "A note without a link",
    ]

    podcast, cjk, no_link = parsed.entries
    assert podcast.link == PODCAST.link
    assert cjk.link == CJK.link
    assert podcast.author == "Ann Author"
    assert podcast.published == "2024-03-01T09:00:00+00:00"
    assert podcast.updated == "2024-03-01T10:30:00+00:00"
    assert cjk.updated == "2024-03-01T08:15:00+00:00"  # no updated: falls back to published
    assert podcast.content[0].value == PODCAST.content
    assert podcast.content[0].type == "text/html"
    assert podcast.summary == PODCAST.summary
    assert [t.term for t in podcast.tags] == ["Tech", "podcast"]
    assert podcast.tags[0].scheme == BASE
    assert [t.term for t in cjk.tags] == ["中国"]  # category slug shown by its name

    assert [(e.href, e.get("type"), e.get("length")) for e in podcast.enclosures] == [
        ("https://cdn.example.com/ep12.mp3", "audio/mpeg", "12345678"),
        ("https://cdn.example.com/ep12.ogg", "application/octet-stream", None),
    ]
    assert podcast.media_thumbnail == [{"url": "https://cdn.example.com/ep12.jpg"}]
    assert podcast.source.title == "Example Blog"
    assert podcast.source.id == BLOG.feed_url
    assert {(link.rel, link.href) for link in podcast.source.links} == {
        ("self", BLOG.feed_url),
        ("alternate", BLOG.site_link),
    }

    assert not any(link.rel == "alternate" for link in no_link.get("links", []))
    assert no_link.content[0].value == "A note without a link"


def test_atom_is_well_formed_rfc4287(site: SiteSettings, published: WriteReport) -> None:
    for slug in ("all", "tech", "china"):
        root = etree.parse(str(feed_file(site, f"{slug}.atom"))).getroot()
        assert root.tag == f"{{{ATOM}}}feed"
        for required in ("id", "title", "updated"):
            assert root.findtext(f"a:{required}", namespaces=NS)
        assert root.findtext("a:author/a:name", namespaces=NS) == "Morning Paper"
        self_link = root.find("a:link[@rel='self']", namespaces=NS)
        assert self_link.get("href") == f"{BASE}feeds/{slug}.atom"
        assert self_link.get("type") == "application/atom+xml"
        assert root.find("a:link[@rel='alternate']", namespaces=NS).get("href") == BASE
        for entry in root.findall("a:entry", namespaces=NS):
            for required in ("id", "title", "updated"):
                assert entry.findtext(f"a:{required}", namespaces=NS), required
            has_alternate = any(
                link.get("rel", "alternate") == "alternate"
                for link in entry.findall("a:link", namespaces=NS)
            )
            assert has_alternate or entry.find("a:content", namespaces=NS) is not None
            for enclosure in entry.findall("a:link[@rel='enclosure']", namespaces=NS):
                assert enclosure.get("href", "").startswith("https://")


def test_atom_enclosures_sources_and_thumbnails_are_namespaced(
    site: SiteSettings, published: WriteReport
) -> None:
    root = etree.parse(str(feed_file(site, "tech.atom"))).getroot()
    (entry,) = root.findall("a:entry", namespaces=NS)
    enclosure = entry.find("a:link[@rel='enclosure']", namespaces=NS)
    assert enclosure.attrib == {
        "rel": "enclosure",
        "href": "https://cdn.example.com/ep12.mp3",
        "type": "audio/mpeg",
        "length": "12345678",
    }
    thumbnail = entry.find("media:thumbnail", namespaces=NS)
    assert thumbnail.get("url") == PODCAST.thumbnail
    (source,) = entry.findall("a:source", namespaces=NS)
    assert source.findtext("a:id", namespaces=NS) == BLOG.feed_url
    assert source.findtext("a:title", namespaces=NS) == BLOG.name


def test_forbidden_control_characters_never_reach_xml(site: SiteSettings) -> None:
    dirty = replace(
        PODCAST,
        title="bell\x07 form\x0cfeed\x00",
        author="A\x1bnn",
        summary="<p>x\x01y</p>",
        content="<p>\ufffebad\ud800</p>",
        tags=("t\x02ag",),
    )
    publish_feeds(site, [(ALL, (dirty,))], CATEGORIES)
    for ext in ("atom", "rss"):
        raw = feed_file(site, f"all.{ext}").read_bytes()
        etree.fromstring(raw)  # raises when not well-formed
        assert not re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]", raw)
    parsed = feedparser.parse(feed_file(site, "all.atom").read_bytes())
    assert parsed.entries[0].title == "bell form feed"
    data = json.loads(feed_file(site, "all.json").read_bytes().decode("utf-8"))
    assert data["items"][0]["content_html"] == "<p>bad</p>"


# --------------------------------------------------------------------------- RSS


def test_rss_reads_back_with_feedparser(site: SiteSettings, published: WriteReport) -> None:
    raw = feed_file(site, "all.rss").read_bytes()
    parsed = feedparser.parse(raw)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    assert parsed.feed.title == "Morning Paper"
    assert parsed.feed.link == BASE
    assert parsed.feed.description
    assert [e.id for e in parsed.entries] == [s.uid for s in STORIES]
    assert all(e.guidislink is False for e in parsed.entries)

    podcast, cjk, no_link = parsed.entries
    assert podcast.title == "Episode 12 & the <future>"
    assert podcast.link == PODCAST.link
    assert podcast.summary == PODCAST.summary
    assert podcast.content[0].value == PODCAST.content
    assert podcast.author == "Ann Author"
    assert podcast.media_thumbnail == [{"url": "https://cdn.example.com/ep12.jpg"}]
    assert podcast.source == {"href": BLOG.feed_url, "title": BLOG.name}
    assert [t.term for t in podcast.tags] == ["Tech", "podcast"]
    assert cjk.summary == CJK.summary
    assert "link" not in no_link


def test_rss_has_one_complete_enclosure_and_a_self_link(
    site: SiteSettings, published: WriteReport
) -> None:
    channel = etree.parse(str(feed_file(site, "tech.rss"))).getroot().find("channel")
    self_link = channel.find("a:link[@rel='self']", namespaces=NS)
    assert self_link.get("href") == f"{BASE}feeds/tech.rss"
    assert self_link.get("type") == "application/rss+xml"
    (item,) = channel.findall("item")
    assert item.find("guid").get("isPermaLink") == "false"
    (enclosure,) = item.findall("enclosure")
    assert enclosure.attrib == {
        "url": "https://cdn.example.com/ep12.mp3",
        "length": "12345678",
        "type": "audio/mpeg",
    }
    assert item.findtext("content:encoded", namespaces=NS) == PODCAST.content


def test_rss_enclosure_of_unknown_size_and_type_stays_valid(site: SiteSettings) -> None:
    story = replace(PODCAST, enclosures=(Enclosure("https://cdn.example.com/x.bin"),))
    publish_feeds(site, [(ALL, (story,))], CATEGORIES)
    item = etree.parse(str(feed_file(site, "all.rss"))).getroot().find("channel/item")
    assert item.find("enclosure").attrib == {
        "url": "https://cdn.example.com/x.bin",
        "length": "0",
        "type": "application/octet-stream",
    }


# --------------------------------------------------------------------------- JSON Feed


def test_json_feed_matches_schema(site: SiteSettings, published: WriteReport) -> None:
    for slug in ("all", "tech", "china"):
        raw = feed_file(site, f"{slug}.json").read_bytes()
        data = json.loads(raw.decode("utf-8"))
        jsonschema.validate(data, JSON_FEED_SCHEMA)
        assert data["feed_url"] == f"{BASE}feeds/{slug}.json"
        assert data["home_page_url"] == BASE
    assert "北京".encode() in feed_file(site, "china.json").read_bytes()  # not \u-escaped


def test_json_feed_items(site: SiteSettings, published: WriteReport) -> None:
    data = json.loads(feed_file(site, "all.json").read_text("utf-8"))
    assert data["title"] == "Morning Paper"
    podcast, cjk, no_link = data["items"]
    assert podcast["id"] == PODCAST.uid
    assert podcast["url"] == PODCAST.link
    assert podcast["content_html"] == PODCAST.content
    assert podcast["image"] == PODCAST.thumbnail
    assert podcast["date_published"] == "2024-03-01T09:00:00Z"
    assert podcast["date_modified"] == "2024-03-01T10:30:00Z"
    assert podcast["authors"] == [{"name": "Ann Author"}]
    assert podcast["tags"] == ["Tech", "podcast"]
    assert podcast["attachments"] == [
        {
            "url": "https://cdn.example.com/ep12.mp3",
            "mime_type": "audio/mpeg",
            "size_in_bytes": 12345678,
        },
        {"url": "https://cdn.example.com/ep12.ogg", "mime_type": "application/octet-stream"},
    ]
    assert podcast["_source"] == {
        "title": "Example Blog",
        "url": "https://blog.example.com/",
        "feed_url": BLOG.feed_url,
    }
    assert podcast["_sources"] == [
        podcast["_source"],
        {"title": "Wire Service", "feed_url": WIRE.feed_url},
    ]
    assert cjk["content_html"] == CJK.summary
    assert "url" not in no_link
    assert no_link["content_html"]


def test_category_titles_name_the_category(site: SiteSettings, published: WriteReport) -> None:
    assert json.loads(feed_file(site, "china.json").read_text("utf-8"))["title"] == (
        "Morning Paper — 中国"
    )
    parsed = feedparser.parse(feed_file(site, "tech.atom").read_bytes())
    assert parsed.feed.title == "Morning Paper — Tech"
    assert parsed.feed.id == f"{BASE}feeds/tech.atom"  # unique per feed, as RFC 4287 asks


# --------------------------------------------------------------------------- OPML


def test_opml_lists_every_atom_output(site: SiteSettings) -> None:
    report = publish_opml(site, CATEGORIES)
    path = site.output_dir / "feeds.opml"
    assert report.written == (path,)
    root = etree.parse(str(path)).getroot()
    assert root.tag == "opml"
    assert root.get("version") == "2.0"
    assert root.findtext("head/title") == "Morning Paper"
    outlines = root.findall("body/outline")
    assert [(o.get("text"), o.get("xmlUrl")) for o in outlines] == [
        ("Morning Paper", f"{BASE}feeds/all.atom"),
        ("Morning Paper — Tech", f"{BASE}feeds/tech.atom"),
        ("Morning Paper — 中国", f"{BASE}feeds/china.atom"),
    ]
    assert all(o.get("type") == "rss" and o.get("htmlUrl") == BASE for o in outlines)
    assert publish_opml(site, CATEGORIES) == WriteReport(unchanged=(path,))
