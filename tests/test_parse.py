"""parse_document: RSS/Atom through feedparser, JSON Feed by the adapter, errors as ParseError."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest

from aggregator.clean import normalise_entry
from aggregator.errors import ParseError
from aggregator.models import Enclosure, ParsedFeed, RawEntry
from aggregator.parse import parse_document, parse_fast, parse_with_feedparser, update_hint
from tests.conftest import shared_path
from tests.corpus import SCRIPT_PAYLOAD, corpus_files, corpus_headers

DATA = Path(__file__).parent / "data"
RSS = {"content-type": "application/rss+xml; charset=utf-8"}
ATOM = {"content-type": "application/atom+xml"}
JSON = {"content-type": "application/feed+json"}


def parse_file(name: str, headers: dict[str, str], url: str) -> ParsedFeed:
    return parse_document((DATA / name).read_bytes(), headers, url)


def rss_document(items: str, declaration: str = '<?xml version="1.0" encoding="utf-8"?>') -> bytes:
    return (
        f'{declaration}\n<rss version="2.0"><channel><title>T</title>'
        f"<link>https://t.example/</link>{items}</channel></rss>"
    ).encode()


# --------------------------------------------------------------------------- RSS 2.0


@pytest.fixture(scope="module")
def rss20() -> ParsedFeed:
    return parse_file("rss20.xml", RSS, "https://news.example.com/feed.xml")


def test_rss20_channel(rss20: ParsedFeed) -> None:
    assert rss20.format == "rss20"
    assert rss20.title == "Example & News"
    assert rss20.link == "https://news.example.com/"
    assert rss20.warning is None
    assert len(rss20.entries) == 3


def test_rss20_entry_fields(rss20: ParsedFeed) -> None:
    first = rss20.entries[0]
    assert first.guid == "story-1"
    assert first.title == "First <b>bold</b> story"  # escaped markup in an RSS title is HTML
    assert first.link == "https://news.example.com/2024/05/first.html"  # resolved against the URL
    assert first.base == "https://news.example.com/feed.xml"
    assert first.author == "Jane Doe"
    assert first.published == datetime(2024, 5, 14, 7, 30, tzinfo=UTC)
    assert first.updated is None  # no fallback to pubDate
    assert first.summary_html == "A short teaser."
    assert first.content_html is not None
    assert '<a href="more.html">' in first.content_html  # left relative for clean
    assert first.tags == ("World", "Politics", "world")
    assert first.enclosures == (
        Enclosure("https://cdn.example.com/audio1.mp3", "audio/mpeg", 12345),
    )
    assert first.media_thumbnails == ("https://cdn.example.com/thumb1.jpg",)


def test_rss20_media_content_images_and_bad_length(rss20: ParsedFeed) -> None:
    second = rss20.entries[1]
    assert second.guid is None
    assert second.content_html is None
    assert second.summary_html == '<p>Only a description, <img src="pics/desc.png"></p>'
    assert second.media_images == ("https://cdn.example.com/photo2.jpg",)  # not the video
    assert second.enclosures == (Enclosure("/files/photo2.png", "image/png", None),)


def test_rss20_itunes_image(rss20: ParsedFeed) -> None:
    assert rss20.entries[2].itunes_image == "https://cdn.example.com/cover3.jpg"
    assert rss20.entries[2].published is None


# --------------------------------------------------------------------------- Atom 1.0


@pytest.fixture(scope="module")
def atom10() -> ParsedFeed:
    return parse_file("atom10.xml", ATOM, "https://blog.example.org/feed.atom")


def test_atom10_feed(atom10: ParsedFeed) -> None:
    assert atom10.format == "atom10"
    assert atom10.title == "Blog & Notes"  # type="html" title made plain
    assert atom10.link == "https://blog.example.org/blog/"


def test_atom10_xml_base_on_entry(atom10: ParsedFeed) -> None:
    entry = atom10.entries[0]
    assert entry.base == "https://blog.example.org/blog/posts/2024/"
    assert entry.link == "https://blog.example.org/blog/posts/2024/hello.html"
    assert entry.enclosures == (
        Enclosure("https://blog.example.org/blog/posts/2024/files/talk.mp3", "audio/mpeg", 2048),
    )
    assert entry.published == datetime(2024, 5, 16, 6, 0, tzinfo=UTC)
    assert entry.updated == datetime(2024, 5, 16, 9, 0, tzinfo=UTC)
    assert entry.author == "Entry Author"
    assert entry.tags == ("python",)


def test_atom10_text_constructs_are_escaped(atom10: ParsedFeed) -> None:
    entry = atom10.entries[0]
    assert entry.title == "Tags like &lt;br&gt; &amp; entities"
    assert entry.summary_html == (
        "<p>Plain summary with &lt;angle&gt; brackets &amp; ampersand.</p>"
    )


def test_atom10_xml_base_on_feed_and_inherited_author(atom10: ParsedFeed) -> None:
    entry = atom10.entries[1]
    assert entry.base == "https://blog.example.org/blog/"
    assert entry.link == "https://blog.example.org/blog/second"
    assert entry.title == "An <em>xhtml</em> title"
    assert entry.author == "Feed Author"
    assert entry.summary_html is None  # feedparser's copy of the content is dropped
    assert entry.content_html == '<p>Inherits <a href="about">the feed base</a>.</p>'


def test_atom_content_urls_resolve_against_xml_base_once_cleaned(atom10: ParsedFeed) -> None:
    fetched_at = datetime(2024, 6, 1, tzinfo=UTC)
    first, second = (normalise_entry(e, fetched_at) for e in atom10.entries)
    assert first is not None and second is not None
    assert first.content is not None and second.content is not None
    assert 'href="https://blog.example.org/blog/posts/other.html"' in first.content
    assert 'src="https://blog.example.org/blog/posts/2024/images/pic.png"' in first.content
    assert 'srcset="https://blog.example.org/blog/posts/2024/images/pic-2x.png 2x"' in first.content
    assert first.thumbnail == "https://blog.example.org/blog/posts/2024/images/pic.png"
    assert 'href="https://blog.example.org/blog/about"' in second.content


def test_atom_text_content_becomes_paragraphs() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>
    <entry><id>x</id><title>t</title><content type="text">a &lt; b

second</content></entry></feed>"""
    entry = parse_document(body, ATOM, "https://a.example/").entries[0]
    assert entry.content_html == "<p>a &lt; b</p><p>second</p>"
    assert entry.summary_html is None  # feedparser's copy of the content is no summary


def test_atom_text_content_with_script_stays_text() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><id>x</id>
    <content type="text">shown &lt;script&gt;x()&lt;/script&gt; as text</content></entry></feed>"""
    entry = parse_document(body, ATOM, "https://a.example/").entries[0]
    assert entry.content_html == "<p>shown &lt;script&gt;x()&lt;/script&gt; as text</p>"
    assert entry.summary_html is None


# --------------------------------------------------------------------------- RSS 1.0 / 0.91


def test_rss10_rdf() -> None:
    feed = parse_file("rss10.xml", {}, "https://rdf.example.net/rss")
    assert feed.format == "rss10"
    assert feed.title == "RDF Site"
    (entry,) = feed.entries
    assert entry.link == "https://rdf.example.net/a"
    assert entry.author == "Ray Dee"
    assert entry.updated == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert entry.tags == ("semantics",)


def test_rss091() -> None:
    feed = parse_file("rss091.xml", {"content-type": "text/xml"}, "http://old.example.com/rss")
    assert feed.format.startswith("rss091")
    (entry,) = feed.entries
    assert entry.title == "Café opening"
    assert entry.link == "http://old.example.com/cafe"


# --------------------------------------------------------------------------- JSON Feed


def test_json_feed_10() -> None:
    feed = parse_file("jsonfeed10.json", JSON, "https://json.example.com/feed.json")
    assert (feed.format, feed.title, feed.link) == (
        "json10",
        "JSON One",
        "https://json.example.com/",
    )
    first, second = feed.entries
    assert first.guid == "1"  # numeric id taken as text
    assert first.title == "Numbers &amp; &lt;things&gt;"
    assert first.content_html == (
        "<p>First paragraph &amp; more.</p><p>Second &lt;paragraph&gt;<br>with a break.</p>"
    )
    assert first.published == datetime(2024, 5, 10, 6, 0, tzinfo=UTC)
    assert first.author == "Feed Writer"  # the feed's author is the default
    assert first.tags == ("json", "feeds")
    assert second.link == "https://elsewhere.example.com/2"  # external_url as fallback
    assert second.author == "Item Writer"
    assert second.updated == datetime(2024, 5, 11, tzinfo=UTC)
    assert second.summary_html == "A summary"
    assert second.media_images == ("https://json.example.com/img/main2.png",)
    assert second.enclosures == (Enclosure("https://json.example.com/2.mp3", "audio/mpeg", 4096),)
    assert second.base == "https://json.example.com/feed.json"


def test_json_feed_11_detected_by_first_byte() -> None:
    feed = parse_file("jsonfeed11.json", {}, "https://json11.example.com/feed.json")
    assert feed.format == "json11"
    first, second = feed.entries
    assert first.author == "Ada, Grace"
    assert first.media_images == ("https://json11.example.com/banner.png",)
    assert first.tags == ("one", "eleven")
    assert second.author == "Feed Team"
    assert second.published is None  # "not a date"
    assert second.content_html == "<p>Untitled note</p>"


def test_json_feed_with_bom_and_odd_types() -> None:
    body = (
        b'\xef\xbb\xbf {"version": "https://jsonfeed.org/version/1.1", "title": 12345,'
        b' "items": ["a string", null, {"id": 42, "title": 3.5, "tags": "x"},'
        b' {"id": ["list"], "content_text": {"nested": true}}]}'
    )
    feed = parse_document(body, {}, "https://j.example/")
    assert feed.title == "12345"
    assert [(e.guid, e.title, e.tags) for e in feed.entries] == [
        ("42", "3.5", ()),
        (None, None, ()),
    ]


def test_json_feed_with_invalid_utf8_keeps_its_items() -> None:
    body = (
        b'{"version": "https://jsonfeed.org/version/1", "items": [{"id": "a", "title": "x\xff"}]}'
    )
    feed = parse_document(body, JSON, "https://j.example/")
    assert feed.entries[0].title == "x\N{REPLACEMENT CHARACTER}"
    assert feed.warning == "bytes invalid in utf-8 replaced"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "invalid JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"items": []}', "version"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', "items"),
    ],
)
def test_json_feed_errors(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_document(body, JSON, "https://j.example/")


# --------------------------------------------------------------------------- encodings


def test_gb18030_charset_only_in_header() -> None:
    headers = {"content-type": "application/rss+xml; charset=gb18030"}
    feed = parse_file("gb18030.xml", headers, "https://news.example.cn/rss")
    assert feed.title == "快科技最新新闻"
    assert feed.entries[0].title == "两大摄影巨头强强联手！松下与徕卡签署全面战略合作协议"
    assert feed.entries[0].tags == ("摄影",)
    assert feed.warning is None


def test_big5_charset_only_in_header() -> None:
    headers = {"content-type": "application/rss+xml; charset=big5"}
    feed = parse_file("big5.xml", headers, "https://news.example.tw/rss")
    assert feed.title == "繁體中文新聞"
    assert feed.entries[0].title == "颱風來襲，臺北市宣布停班停課"


def test_gb2312_header_is_read_as_gb18030() -> None:
    body = rss_document("<item><title>𠮷野家</title></item>", '<?xml version="1.0"?>')
    feed = parse_document(
        body.decode().encode("gb18030"), {"content-type": "text/xml; charset=GB2312"}, "https://g/"
    )
    assert feed.entries[0].title == "𠮷野家"


def test_invalid_utf8_bytes_are_replaced_not_mojibake() -> None:
    body = rss_document("<item><title>中文标题 \xff here</title></item>")
    body = body.replace("\xff".encode(), b"\xff")
    feed = parse_document(body, RSS, "https://u/")
    assert feed.entries[0].title == "中文标题 \N{REPLACEMENT CHARACTER} here"
    assert feed.warning is not None and "utf-8" in feed.warning


def test_leading_whitespace_before_declaration_is_no_problem() -> None:
    feed = parse_document(
        b"\n\n  " + rss_document("<item><title>x</title></item>"), RSS, "https://w/"
    )
    assert feed.warning is None
    assert feed.entries[0].title == "x"


# --------------------------------------------------------------------------- hostile characters


def test_surrogate_references_do_not_lose_the_feed() -> None:
    body = rss_document("<item><title>a&#xD800;b &#55357;&#56832; &#x1F600;</title></item>")
    feed = parse_document(body, RSS, "https://s/")
    assert feed.entries[0].title == "ab 😀 😀"
    assert feed.warning is not None and "references" in feed.warning


def test_control_characters_are_removed() -> None:
    body = rss_document("<item><title>bell\x07 and &#x1B;escape</title></item>")
    feed = parse_document(body, RSS, "https://c/")
    assert feed.entries[0].title == "bell and escape"


def test_feedparser_exception_becomes_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(feedparser, "parse", explode)
    with pytest.raises(ParseError, match="unreadable feed") as caught:
        # parse_document would read this plain RSS with fastparse, never calling feedparser.
        parse_with_feedparser(rss_document(""), RSS, "https://x/")
    assert isinstance(caught.value.__cause__, UnicodeEncodeError)


def test_a_body_that_looks_like_a_path_is_never_opened() -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_document(b"/etc/hostname", {}, "https://p/")


# --------------------------------------------------------------------------- bozo and not-a-feed


def test_bozo_feed_with_entries_is_a_success_with_warning() -> None:
    feed = parse_file("bozo_entity.xml", RSS, "https://sloppy.example.com/rss")
    assert feed.warning is not None and "undefined entity" in feed.warning
    assert feed.title == "Sloppy\xa0Feed"
    assert feed.entries[0].title == "Café\xa0news"


def test_valid_feed_without_entries_is_empty_not_an_error() -> None:
    feed = parse_document(rss_document(""), RSS, "https://e/")
    assert feed.entries == ()
    assert feed.format == "rss20"
    assert feed.warning is None


def test_bozo_without_entries_or_version_is_an_error() -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_document(b"<?xml version='1.0'?><nothing><unclosed>", {}, "https://b/")


def test_html_page_is_not_a_feed() -> None:
    with pytest.raises(ParseError, match="not a feed: an HTML page"):
        parse_file("html_page.html", {"content-type": "text/html"}, "https://site.example/")


@pytest.mark.parametrize(
    "body", [bytes(range(256)) * 16, b"", b"   \n", b"hello world", b"\x00\x01\x02"]
)
def test_garbage_is_not_a_feed(body: bytes) -> None:
    with pytest.raises(ParseError, match="not a feed"):
        parse_document(body, RSS, "https://g/")


# --------------------------------------------------------------------------- bases of bodies

BLOG_FEED = "https://host.example/blog/feeds/rss.xml"
BLOG_ITEM = (
    "<item><title>P</title><link>{link}</link><description>&lt;p&gt;&lt;img "
    'src="images/photo.jpg"&gt; see &lt;a href="../11/older.html"&gt;older&lt;/a&gt;&lt;/p&gt;'
    "</description></item>"
)


def cleaned_body(entry: RawEntry) -> str:
    result = normalise_entry(entry, datetime(2026, 12, 31, tzinfo=UTC))
    assert result is not None
    body = result.content or result.summary
    assert body is not None
    return body


@pytest.mark.parametrize("declaration", ['<?xml version="1.0"?>', "<!DOCTYPE rss>"])
def test_rss_without_xml_base_resolves_bodies_against_the_item_link(declaration: str) -> None:
    """The same by lxml and by feedparser (a DOCTYPE sends the document to feedparser)."""
    body = rss_document(BLOG_ITEM.format(link="../2026/12/post.html"), declaration)
    readings = [parse_with_feedparser(body, RSS, BLOG_FEED), parse_document(body, RSS, BLOG_FEED)]
    fast = parse_fast(body, RSS, BLOG_FEED)
    assert (fast is None) == declaration.startswith("<!DOCTYPE")
    for feed in [*readings, *filter(None, [fast])]:
        (entry,) = feed.entries
        assert (entry.base, entry.explicit_base) == (BLOG_FEED, False)
        assert entry.link == "https://host.example/blog/2026/12/post.html"
        cleaned = cleaned_body(entry)
        assert 'src="https://host.example/blog/2026/12/images/photo.jpg"' in cleaned
        assert 'href="https://host.example/blog/2026/11/older.html"' in cleaned


def test_a_relative_xml_base_is_resolved_and_outranks_the_item_link() -> None:
    items = '<item xml:base="../assets/">' + BLOG_ITEM.format(link="/blog/p.html")[6:]
    (entry,) = parse_document(rss_document(items), RSS, BLOG_FEED).entries
    assert (entry.base, entry.explicit_base) == ("https://host.example/blog/assets/", True)
    assert entry.link == "https://host.example/blog/p.html"
    cleaned = cleaned_body(entry)
    assert 'src="https://host.example/blog/assets/images/photo.jpg"' in cleaned
    assert 'href="https://host.example/blog/11/older.html"' in cleaned


def test_atom_xml_base_of_the_feed_or_entry_is_explicit(atom10: ParsedFeed) -> None:
    assert [e.explicit_base for e in atom10.entries] == [True, True]


@pytest.mark.parametrize("url", [f"{BLOG_FEED}?", f"{BLOG_FEED}#"])
def test_a_document_url_feedparser_rewrites_is_no_xml_base(url: str) -> None:
    body = rss_document(BLOG_ITEM.format(link="https://host.example/blog/2026/12/post.html"))
    (entry,) = parse_document(body, RSS, url).entries
    assert (entry.base, entry.explicit_base) == (BLOG_FEED, False)  # read by feedparser
    assert 'src="https://host.example/blog/2026/12/images/photo.jpg"' in cleaned_body(entry)


def test_json_feed_bodies_resolve_against_the_item_url() -> None:
    body = (
        b'{"version": "https://jsonfeed.org/version/1.1", "items": ['
        b'{"id": "1", "url": "https://host.example/blog/2026/12/post.html",'
        b' "content_html": "<img src=\\"images/photo.jpg\\">"},'
        b' {"id": "2", "content_html": "<img src=\\"images/photo.jpg\\">"}]}'
    )
    first, second = parse_document(body, JSON, BLOG_FEED).entries
    assert (first.base, first.explicit_base) == (BLOG_FEED, False)
    assert 'src="https://host.example/blog/2026/12/images/photo.jpg"' in cleaned_body(first)
    assert 'src="https://host.example/blog/feeds/images/photo.jpg"' in cleaned_body(second)


# --------------------------------------------------------------------------- smaller rules


def test_content_location_header_is_the_base() -> None:
    body = rss_document("<item><title>x</title><link>item/1</link></item>")
    headers = {**RSS, "content-location": "/feeds/main.xml"}
    entry = parse_document(body, headers, "https://h.example/ignored/rss").entries[0]
    assert entry.base == "https://h.example/feeds/main.xml"
    assert entry.link == "https://h.example/feeds/item/1"


def test_invalid_date_is_none() -> None:
    body = rss_document(
        "<item><title>x</title><pubDate>Sat, 31 Feb 2024 10:00:00 GMT</pubDate></item>"
    )
    assert parse_document(body, RSS, "https://d/").entries[0].published is None


def test_plain_text_title_and_author_are_escaped() -> None:
    body = rss_document(
        "<item><title>AT&amp;T</title><author>tom@example.com (Tom &amp; Jerry)</author></item>"
    )
    entry = parse_document(body, RSS, "https://t/").entries[0]
    assert entry.title == "AT&amp;T"
    assert entry.author == "Tom &amp; Jerry"


# --------------------------------------------------------------------------- corpus


def script_payloads(entries: tuple[RawEntry, ...]) -> int:
    texts = (t for e in entries for t in (e.title, e.summary_html, e.content_html) if t)
    return sum(1 for t in texts if SCRIPT_PAYLOAD.search(t))


def test_feedparser_corpus_parses_or_fails_cleanly_and_never_leaks_scripts() -> None:
    root = shared_path("corpus", "feedparser")
    fetched_at = datetime(2030, 1, 1, tzinfo=UTC)
    parsed = errors = entries = payloads = 0
    leaks: list[str] = []
    for path in corpus_files(root):
        body = path.read_bytes()
        name = str(path.relative_to(root))
        try:
            feed = parse_document(body, corpus_headers(body), f"http://corpus.example/{name}")
        except ParseError:
            errors += 1
            continue
        parsed += 1
        payloads += script_payloads(feed.entries)
        for raw in feed.entries:
            entry = normalise_entry(raw, fetched_at)
            if entry is None:
                continue
            entries += 1
            for field in (entry.title, entry.summary, entry.content):
                if field and SCRIPT_PAYLOAD.search(field):
                    leaks.append(f"{name}: {field[:120]!r}")
            urls = [entry.link, entry.thumbnail, *(e.url for e in entry.enclosures)]
            leaks.extend(f"{name}: {url!r}" for url in urls if url and not url.startswith("http"))
    print(f"feedparser corpus: {parsed} parsed, {errors} ParseError, {entries} entries cleaned")
    assert not leaks, "\n".join(leaks[:20])
    assert parsed > 2000
    assert payloads > 100  # the sanitize cases really reached the cleaner


def test_a_document_over_the_entry_cap_is_cut_to_its_first_entries() -> None:
    items = "".join(f"<item><title>t{i}</title><guid>g{i}</guid></item>" for i in range(50))
    body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>c</title>{items}'
    body += "</channel></rss>"
    parsed = parse_document(body.encode(), {}, "https://site.test/", max_entries=10)
    assert [e.title for e in parsed.entries] == [f"t{i}" for i in range(10)]
    assert parsed.warning == "only the first 10 of 50 entries read"
    whole = parse_document(body.encode(), {}, "https://site.test/", max_entries=50)
    assert len(whole.entries) == 50 and whole.warning is None


def test_an_html_page_error_names_the_feed_it_links_to() -> None:
    page = (
        b'<!DOCTYPE html><html><head><link rel="alternate" type="application/atom+xml" '
        b'href="/feed.atom"><link rel="stylesheet" href="x.css"></head><body>blog</body></html>'
    )
    with pytest.raises(ParseError, match=r"links to the feed https://blog\.test/feed\.atom"):
        parse_document(page, {"content-type": "text/html"}, "https://blog.test/post/1")


def test_a_feed_states_its_own_update_rhythm() -> None:
    assert update_hint("120", None, None) == timedelta(minutes=120)
    assert update_hint(None, "daily", "2") == timedelta(hours=12)
    assert update_hint("30", "weekly", None) == timedelta(weeks=1)
    assert update_hint("soon", "fortnightly", "x") is None
