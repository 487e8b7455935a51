"""normalise_entry and plain_text: ids, links, titles, dates, sanitising, thumbnails."""

from __future__ import annotations

import hashlib
import html
import json
import random
import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from aggregator.clean import (
    URL_SCHEMES,
    WEB_SCHEMES,
    _joined_url,
    _parsed_text,
    absolute_url,
    excerpt_text,
    normalise_entry,
    plain_text,
    sanitise_html,
)
from aggregator.errors import ParseError
from aggregator.models import Enclosure, EntryData, FetchLimits, RawEntry
from aggregator.parse import parse_document
from tests.conftest import shared_path
from tests.corpus import corpus_files, corpus_headers

FETCHED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
BASE = "https://site.example/blog/post/"


def raw(**fields: Any) -> RawEntry:
    defaults: dict[str, Any] = {
        "guid": "id-1",
        "title": "A title",
        "link": "https://site.example/blog/post/1",
        "base": BASE,
        "author": None,
        "published": datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
        "updated": None,
        "summary_html": None,
        "content_html": None,
    }
    return RawEntry(**{**defaults, **fields})


def clean(entry: RawEntry, fetched_at: datetime = FETCHED) -> EntryData:
    result = normalise_entry(entry, fetched_at)
    assert result is not None
    return result


def content_of(html: str, **fields: Any) -> str:
    result = clean(raw(content_html=html, **fields)).content
    assert result is not None
    return result


# --------------------------------------------------------------------------- entry id


def test_id_is_the_stripped_guid() -> None:
    assert clean(raw(guid="  urn:x:1 \n")).entry_id == "urn:x:1"


@pytest.mark.parametrize("guid", [None, "", "   "])
def test_id_falls_back_to_the_absolute_link(guid: str | None) -> None:
    assert clean(raw(guid=guid, link="../2")).entry_id == "https://site.example/blog/2"


def test_id_falls_back_to_a_hash_of_title_and_date() -> None:
    entry = raw(guid=None, link=None, title="Hello", published=datetime(2024, 5, 1, tzinfo=UTC))
    expected = hashlib.sha1(b"Hello\x1f2024-05-01T00:00:00+00:00").hexdigest()
    assert clean(entry).entry_id == f"sha1:{expected}"


def test_hash_id_is_stable_across_polls_without_dates() -> None:
    entry = raw(guid=None, link=None, published=None, title="Undated")
    first = clean(entry, FETCHED).entry_id
    assert clean(entry, FETCHED + timedelta(hours=6)).entry_id == first
    assert clean(replace(entry, title="Other"), FETCHED).entry_id != first


def test_hash_id_uses_updated_when_published_is_missing() -> None:
    entry = raw(guid=None, link=None, published=None, updated=datetime(2024, 1, 1, tzinfo=UTC))
    assert clean(entry).entry_id != clean(replace(entry, updated=None)).entry_id


def test_entry_with_nothing_identifying_is_dropped() -> None:
    entry = raw(guid=None, link=None, title=None, summary_html="  ", content_html="<p> </p>")
    assert normalise_entry(entry, FETCHED) is None


# --------------------------------------------------------------------------- link


@pytest.mark.parametrize(
    ("link", "base", "expected"),
    [
        ("/a/b", BASE, "https://site.example/a/b"),
        ("c", BASE, "https://site.example/blog/post/c"),
        ("//cdn.example/x", BASE, "https://cdn.example/x"),
        ("http://other.example/", None, "http://other.example/"),
        ("relative/only", None, None),
        ("javascript:alert(1)", BASE, None),
        ("  JavaScript:alert(1)", BASE, None),
        ("data:text/html,<script>", BASE, None),
        ("ftp://files.example/x", BASE, None),
    ],
)
def test_link_is_absolute_http(link: str, base: str | None, expected: str | None) -> None:
    assert clean(raw(link=link, base=base)).link == expected


# --------------------------------------------------------------------------- title and author


def test_title_is_plain_text() -> None:
    entry = raw(title="  <b>Bold</b> &amp; <i>brave</i>\n\n  news &lt;3 ")
    assert clean(entry).title == "Bold & brave news <3"


def test_title_with_script_keeps_no_script_text() -> None:
    assert clean(raw(title="Hi<script>alert(1)</script>")).title == "Hi"


def test_empty_title_falls_back_to_the_content() -> None:
    words = " ".join(f"word{i}" for i in range(40))
    title = clean(raw(title="  ", content_html=f"<p>{words}</p>")).title
    assert title.startswith("word0 word1")
    assert title.endswith("…")
    assert len(title) <= 80


def test_empty_title_falls_back_to_the_summary() -> None:
    assert clean(raw(title=None, summary_html="<p>Short note</p>")).title == "Short note"


def test_untitled_when_there_is_no_text_at_all() -> None:
    assert clean(raw(title="<br>")).title == "(untitled)"


def test_title_markup_is_removed_even_when_escaped() -> None:
    # feedparser calls an RSS title with a <script> plain text, so parse escapes it.
    entry = raw(title="xss &quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt; &lt;b&gt;end&lt;/b&gt;")
    assert clean(entry).title == 'xss "> end'


def test_double_escaped_entities_in_title_are_decoded() -> None:
    assert clean(raw(title="It&amp;#8217;s &amp;amp; more")).title == "It’s & more"


def test_plain_angle_brackets_in_title_survive() -> None:
    assert clean(raw(title="1 &lt; 2 &amp;&amp; 3 &gt; 2")).title == "1 < 2 && 3 > 2"


@pytest.mark.parametrize(
    ("escaped", "text"),
    [
        ("Why 1&lt;2 and a&lt;b matter", "Why 1<2 and a<b matter"),
        ("The &lt;dialog&gt; element explained", "The <dialog> element explained"),
        ("Use &lt;b&gt; for bold, not &lt;font&gt;", "Use <b> for bold, not <font>"),
        ("&lt;3 AT&amp;T;", "<3 AT&T;"),
    ],
)
def test_text_that_only_mentions_markup_is_kept_as_written(escaped: str, text: str) -> None:
    # No closing tag and no real entity: the feed meant these characters.
    entry = clean(raw(title=escaped, author=escaped, tags=(escaped,)))
    assert (entry.title, entry.author, entry.tags) == (text, text, (text,))


def test_doubly_escaped_tags_in_title_are_removed() -> None:
    assert clean(raw(title="&lt;em&gt;Hello&lt;/em&gt; &amp;amp; more")).title == "Hello & more"


def test_escaped_tags_with_attributes_in_title_are_removed() -> None:
    # Some readers show RSS titles as HTML, so no tag that could run script stays.
    title = "&lt;img src=x onerror=alert(1)&gt;Photo of the day"
    assert clean(raw(title=title)).title == "Photo of the day"


def test_overlong_title_is_cut() -> None:
    title = clean(raw(title="a" * 10_000)).title
    assert 900 <= len(title) <= 1000


def test_author_is_plain_text_or_none() -> None:
    assert clean(raw(author="<a href='x'>Ann</a> &amp; Bo")).author == "Ann & Bo"
    assert clean(raw(author=" <br> ")).author is None


# --------------------------------------------------------------------------- dates


def test_published_is_kept_in_utc() -> None:
    cet = timezone(timedelta(hours=2))
    entry = clean(raw(published=datetime(2024, 5, 1, 10, 0, tzinfo=cet)))
    assert entry.published == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert entry.published.tzinfo == UTC
    assert entry.published_known


def test_published_falls_back_to_updated() -> None:
    updated = datetime(2024, 4, 1, tzinfo=UTC)
    entry = clean(raw(published=None, updated=updated))
    assert (entry.published, entry.updated, entry.published_known) == (updated, updated, True)


def test_no_dates_means_fetched_at_and_not_known() -> None:
    entry = clean(raw(published=None, updated=None))
    assert (entry.published, entry.updated, entry.published_known) == (FETCHED, None, False)


def test_future_dates_are_clamped_to_fetched_at() -> None:
    future = FETCHED + timedelta(days=3)
    entry = clean(raw(published=future, updated=future))
    assert (entry.published, entry.updated) == (FETCHED, FETCHED)


def test_naive_dates_are_taken_as_utc() -> None:
    assert clean(raw(published=datetime(2024, 5, 1, 8, 0))).published == datetime(
        2024, 5, 1, 8, 0, tzinfo=UTC
    )


def test_placeholder_dates_before_the_epoch_are_unknown() -> None:
    entry = clean(raw(published=datetime(1, 1, 1, tzinfo=UTC)))
    assert (entry.published, entry.published_known) == (FETCHED, False)


# --------------------------------------------------------------------------- sanitising

XSS = [
    '<script>alert("x")</script>',
    '<img src="x.png" onerror="alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JaVaScRiPt:alert(1)">click</a>',
    '<a href="jav&#x09;ascript:alert(1)">click</a>',
    '<a href="vbscript:msgbox(1)">click</a>',
    '<iframe src="https://evil.example/"></iframe>',
    '<p style="width: expression(alert(1))">styled</p>',
    '<div style="background:url(javascript:alert(1))">bg</div>',
    '<svg onload="alert(1)"><circle r="1"/></svg>',
    '<object data="evil.swf"></object><embed src="evil.swf">',
    '<form action="https://evil.example/"><input name="q"><button>go</button></form>',
    '<img src="data:image/svg+xml;base64,PHN2Zz4=">',
    "<style>body{display:none}</style>",
    '<body onload="alert(1)">body</body>',
    '<math><maction actiontype="statusline" xlink:href="javascript:alert(1)">m</maction></math>',
    '<img srcset="javascript:alert(1) 1x">',
    '<noscript><img src=x onerror="alert(1)"></noscript>',
]


@pytest.mark.parametrize("payload", XSS)
def test_script_vectors_are_removed(payload: str) -> None:
    cleaned = clean(raw(content_html=f"<p>safe text</p>{payload}")).content or ""
    assert "safe text" in cleaned
    lowered = cleaned.lower()
    assert "<script" not in lowered
    assert "javascript:" not in lowered
    assert "vbscript:" not in lowered
    assert "alert(" not in lowered
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", lowered)
    assert "style=" not in lowered
    for tag in ("<iframe", "<object", "<embed", "<form", "<input", "<svg", "<math", "<style"):
        assert tag not in lowered


def test_allowed_markup_survives() -> None:
    html = (
        '<h2>Head</h2><p align="center" lang="zh" dir="ltr">Para <strong>b</strong> <em>i</em>'
        "<code>c</code></p><ul><li>one</li></ul><blockquote>q</blockquote><pre>p</pre>"
        '<table><tr><td colspan="2" rowspan="1">cell</td></tr></table>'
        '<figure><picture><source srcset="https://i.example/a.webp" type="image/webp">'
        '<img src="https://i.example/a.jpg" alt="A" title="T" width="10" height="20"></picture>'
        "<figcaption>cap</figcaption></figure>"
    )
    cleaned = content_of(html)
    for kept in (
        "<h2>",
        'align="center"',
        'lang="zh"',
        "<strong>",
        "<code>",
        "<li>",
        "<blockquote>",
        "<pre>",
        'colspan="2"',
        "<figure>",
        "<picture>",
        'srcset="https://i.example/a.webp"',
        'alt="A"',
        'width="10"',
        "<figcaption>",
    ):
        assert kept in cleaned


def test_images_get_no_referrer_and_lazy_loading() -> None:
    cleaned = content_of('<img src="https://i.example/a.png" referrerpolicy="unsafe-url">')
    assert 'referrerpolicy="no-referrer"' in cleaned
    assert 'loading="lazy"' in cleaned
    assert "unsafe-url" not in cleaned


def test_links_get_noopener_noreferrer() -> None:
    cleaned = content_of('<a href="https://x.example/" rel="opener" target="_top">x</a>')
    assert 'rel="noopener noreferrer"' in cleaned
    assert "target" not in cleaned


def test_relative_urls_resolve_against_an_explicit_xml_base() -> None:
    cleaned = content_of(
        '<a href="../other">o</a><img src="img/a.png" srcset="img/a2.png 2x, /b.png 3x">'
        '<video src="v.mp4" poster="p.jpg"></video><a href="mailto:me@x.example">m</a>',
        base="https://blog.example/posts/2024/",
        explicit_base=True,
    )
    assert 'href="https://blog.example/posts/other"' in cleaned
    assert 'src="https://blog.example/posts/2024/img/a.png"' in cleaned
    assert (
        'srcset="https://blog.example/posts/2024/img/a2.png 2x, https://blog.example/b.png 3x"'
        in cleaned
    )
    assert 'poster="https://blog.example/posts/2024/p.jpg"' in cleaned
    assert 'href="mailto:me@x.example"' in cleaned


FEED_URL = "https://host.example/blog/feeds/rss.xml"
ENTRY_PAGE = "https://host.example/blog/2026/12/post.html"
BODY = (
    '<p><img src="images/photo.jpg" srcset="images/big.jpg 2x">'
    ' <a href="../11/older.html">o</a></p>'
)


def test_body_urls_resolve_against_the_entry_link_when_no_xml_base_is_stated() -> None:
    entry = clean(
        raw(
            base=FEED_URL,
            link=ENTRY_PAGE,
            summary_html=BODY,
            content_html=BODY.replace("<p>", "<p>Full: "),
            enclosures=(Enclosure("files/talk.mp3", "audio/mpeg"),),
        )
    )
    for body in (entry.content, entry.summary):
        assert body is not None
        assert 'src="https://host.example/blog/2026/12/images/photo.jpg"' in body
        assert 'srcset="https://host.example/blog/2026/12/images/big.jpg 2x"' in body
        assert 'href="https://host.example/blog/2026/11/older.html"' in body
    assert entry.thumbnail == "https://host.example/blog/2026/12/images/photo.jpg"
    # The feed's own elements stay relative to the document.
    assert entry.enclosures[0].url == "https://host.example/blog/feeds/files/talk.mp3"


def test_a_relative_entry_link_resolves_against_the_document_and_then_bases_the_body() -> None:
    entry = clean(raw(base=FEED_URL, link="../2026/12/post.html", content_html=BODY))
    assert entry.link == ENTRY_PAGE
    assert entry.content is not None
    assert 'src="https://host.example/blog/2026/12/images/photo.jpg"' in entry.content


def test_an_explicit_xml_base_outranks_the_entry_link() -> None:
    base = "https://host.example/blog/assets/"
    entry = clean(
        raw(
            base=base,
            explicit_base=True,
            link=ENTRY_PAGE,
            content_html=BODY,
            media_thumbnails=("thumb.jpg",),
        )
    )
    assert entry.content is not None
    assert 'src="https://host.example/blog/assets/images/photo.jpg"' in entry.content
    assert 'href="https://host.example/blog/11/older.html"' in entry.content
    assert entry.thumbnail == "https://host.example/blog/assets/thumb.jpg"


@pytest.mark.parametrize("link", [None, "", "javascript:alert(1)", "mailto:me@host.example"])
def test_body_urls_fall_back_to_the_document_url_without_a_usable_link(
    link: str | None,
) -> None:
    entry = clean(raw(base=FEED_URL, link=link, content_html=BODY))
    assert entry.content is not None
    assert 'src="https://host.example/blog/feeds/images/photo.jpg"' in entry.content
    assert entry.thumbnail == "https://host.example/blog/feeds/images/photo.jpg"


def test_a_link_too_long_to_keep_is_no_base_either() -> None:
    long_link = ENTRY_PAGE + "?" + "x" * 100
    limits = FetchLimits(max_url_chars=len(long_link) - 1)
    entry = normalise_entry(raw(base=FEED_URL, link=long_link, content_html=BODY), FETCHED, limits)
    assert entry is not None and entry.link is None and entry.content is not None
    assert 'src="https://host.example/blog/feeds/images/photo.jpg"' in entry.content


def test_relative_urls_resolve_against_link_without_base() -> None:
    cleaned = content_of('<img src="pic.png">', base=None, link="https://l.example/a/page")
    assert 'src="https://l.example/a/pic.png"' in cleaned


def test_relative_urls_without_any_base_are_dropped() -> None:
    cleaned = content_of('<p>t</p><img src="pic.png">', base=None, link=None)
    assert "pic.png" not in cleaned


URL_SPELLINGS = [
    "https://news.example/2024/05/story.html",
    "http://news.example",
    "http://news.example/",
    "  https://news.example/a?b=c&d=e#top  ",
    "https://user:pw@news.example:8443/a/../b/./c",
    "https://news.example/a;params",
    "https://news.example/a;params?q",
    "https://news.example/a?",
    "https://news.example/a#",
    "https://news.example/a?#",
    "https://news.example/a??b##c",
    "https://news.example/a?q=[1]&r=]",
    "https://[::1]/ipv6",
    "https://[::1/broken",
    "https://news.example]/",
    "HTTPS://News.Example/Upper",
    "Http://news.example/",
    "https:///no-host",
    "https:/one-slash",
    "https:no-slash",
    "http://?only-query",
    "http://#only-fragment",
    "//news.example/scheme-relative",
    "/rooted",
    "relative/path.png",
    "../up",
    "?query-only",
    "#fragment-only",
    "javascript:alert(1)",
    "data:image/png;base64,AAAA",
    "mailto:me@news.example",
    "ftp://files.example/x",
    "https://news.example/a b",
    "https://news.example/a\tb",
    "https://news.example/a\nb",
    "\x1chttps://news.example/\x1f",
    "\x00https://news.example/",
    "https://news.example/\x7f",
    "https://news.example/\ufffe",
    "https://新闻.example/路径",
    "https://news.example/%E8%B7%AF",
    "https://news.example/back\\slash",
    "https://news.example:notaport/",
    "https://news.example/" + "x" * 5000,
]
BASES = [
    None,
    "",
    "https://blog.example/posts/2024/",
    "http://blog.example/a/b",
    "ftp://f.example/",
]


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("schemes", [WEB_SCHEMES, URL_SCHEMES])
def test_urls_taken_as_they_are_match_what_urljoin_makes_of_them(
    base: str | None, schemes: frozenset[str]
) -> None:
    for url in URL_SPELLINGS:
        taken = url.strip() and len(url) <= 4096
        expected = _joined_url(url, base, schemes, 4096) if taken else None
        assert absolute_url(url, base, schemes) == expected, (url, base)


def test_absolute_urls_are_kept_even_under_a_base_urljoin_rejects() -> None:
    assert absolute_url("https://news.example/a", "http://[broken", WEB_SCHEMES) == (
        "https://news.example/a"
    )
    assert absolute_url("relative", "http://[broken", WEB_SCHEMES) is None


TEXT_SPELLINGS = [
    "Plain title",
    "  padded\r\n title\t with \n\n layout  ",
    "a\rb",
    "Café\xa0au lait",
    "two\xa0\xa0no-break",
    "mixed \xa0 spaces",
    "1 > 0 but not less",
    "\"quoted\" and 'single'",
    "中文标题：测试 ① 🚀",
    "control\x00\x01\x1f\x7f chars",
    "lone \ud800 surrogate",
    "non\ufffecharacter \ufdd0 here",
    "\u2028line\u2029separators\x85",
    "zero\u200bwidth\ufeffmarks",
    "",
    "   ",
]


@pytest.mark.parametrize("text", TEXT_SPELLINGS)
def test_text_without_markup_reads_as_the_html_parser_reads_it(text: str) -> None:
    layout = re.compile(r"\s\s+|[^\S \xa0]")
    assert plain_text(text) == layout.sub(" ", _parsed_text(text)).strip()


def test_deeply_nested_html_is_flattened_quickly() -> None:
    deep = "<div>" * 50_000 + "deep <b>text</b><script>x()</script>" + "</div>" * 50_000
    started = time.perf_counter()
    entry = clean(raw(content_html=deep, title=None))
    assert time.perf_counter() - started < 2
    assert entry.content == "<p>deep text</p>"
    assert entry.title == "deep text"


def test_long_but_shallow_html_is_not_flattened() -> None:
    html = "".join(f"<p>para {i} <b>bold</b></p>" for i in range(3000))
    assert content_of(html).count("<b>") == 3000


def test_blank_html_is_none() -> None:
    entry = clean(raw(content_html="<p>&nbsp;</p><div> </div>", summary_html="<script>x</script>"))
    assert (entry.content, entry.summary) == (None, None)


def test_image_only_content_is_not_blank() -> None:
    assert clean(raw(content_html='<img src="https://i.example/a.png">')).content is not None


def test_summary_identical_to_content_is_dropped() -> None:
    entry = clean(raw(summary_html="<p>Same</p>", content_html="<p>Same</p><script>x</script>"))
    assert (entry.summary, entry.content) == (None, "<p>Same</p>")


def test_control_characters_and_surrogates_are_removed() -> None:
    entry = clean(raw(title="a\x00b\x1b\ud800c", content_html="<p>x\x07y\udfffz</p>"))
    assert (entry.title, entry.content) == ("abc", "<p>xyz</p>")


def test_exported_chinese_post_keeps_images_without_referrer() -> None:
    post = shared_path("seed", "example-post.md").read_text(encoding="utf-8")
    body = post.split("\n---\n", 1)[1]
    entry = clean(raw(content_html=body, link="https://news.mydrivers.com/1/834/834000.htm"))
    cleaned = entry.content or ""
    images = re.findall(r"<img\b[^>]*>", cleaned)
    assert len(images) == 4
    assert all('referrerpolicy="no-referrer"' in img for img in images)
    assert "style=" not in cleaned
    assert "javascript:" not in cleaned
    assert "松下和徕卡的合作已经持续了22年" in cleaned
    assert entry.thumbnail == (
        "https://img1.mydrivers.com/img/20220531/s_9bd0259913d24ff9a8af29d25ab5b96d.png"
    )


# --------------------------------------------------------------------------- tags and enclosures


def test_tags_are_plain_stripped_unique_and_non_empty() -> None:
    tags = (" News ", "news", "", "  ", "<b>Tech</b>", "A &amp; B", "Tech", "科技")
    assert clean(raw(tags=tags)).tags == ("News", "Tech", "A & B", "科技")


def test_enclosures_are_absolute_http_and_unique() -> None:
    enclosures = (
        Enclosure("/audio/1.mp3", "Audio/MPEG", 100),
        Enclosure("https://site.example/audio/1.mp3", "audio/mpeg", 100),
        Enclosure("javascript:alert(1)", "audio/mpeg"),
        Enclosure("ftp://files.example/x.mp3"),
        Enclosure("https://cdn.example/v.mp4", None, -5),
    )
    assert clean(raw(enclosures=enclosures)).enclosures == (
        Enclosure("https://site.example/audio/1.mp3", "audio/mpeg", 100),
        Enclosure("https://cdn.example/v.mp4", None, None),
    )


# --------------------------------------------------------------------------- thumbnail

ALL_IMAGE_SOURCES: dict[str, Any] = {
    "media_thumbnails": ("thumb.jpg",),
    "media_images": ("https://i.example/media.jpg",),
    "enclosures": (
        Enclosure("https://i.example/audio.mp3", "audio/mpeg"),
        Enclosure("https://i.example/enclosure.png", "image/png"),
    ),
    "itunes_image": "https://i.example/itunes.jpg",
    "content_html": '<p>c</p><img src="content.jpg">',
    "summary_html": '<p>s</p><img src="https://i.example/summary.jpg">',
}


@pytest.mark.parametrize(
    ("removed", "expected"),
    [
        ((), f"{BASE}thumb.jpg"),
        (("media_thumbnails",), "https://i.example/media.jpg"),
        (("media_thumbnails", "media_images"), "https://i.example/enclosure.png"),
        (("media_thumbnails", "media_images", "enclosures"), "https://i.example/itunes.jpg"),
        (
            ("media_thumbnails", "media_images", "enclosures", "itunes_image"),
            f"{BASE}content.jpg",
        ),
        (
            ("media_thumbnails", "media_images", "enclosures", "itunes_image", "content_html"),
            "https://i.example/summary.jpg",
        ),
        (tuple(ALL_IMAGE_SOURCES), None),
    ],
)
def test_thumbnail_priority(removed: tuple[str, ...], expected: str | None) -> None:
    fields = {k: v for k, v in ALL_IMAGE_SOURCES.items() if k not in removed}
    assert clean(raw(**fields)).thumbnail == expected


def test_thumbnail_skips_unusable_candidates() -> None:
    entry = raw(
        media_thumbnails=("javascript:alert(1)", "data:image/png;base64,AA"),
        media_images=("relative.png",),
        base=None,
        link=None,
        content_html=(
            '<img src="https://t.example/pixel.gif" width="1" height="1">'
            '<img src="https://i.example/real.jpg?a=1&amp;b=2">'
        ),
    )
    assert clean(entry).thumbnail == "https://i.example/real.jpg?a=1&b=2"


# --------------------------------------------------------------------------- plain_text


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        (None, ""),
        ("", ""),
        ("<p>One</p><p>Two</p>", "One Two"),
        ("line<br>break<br/>again", "line break again"),
        ("<ul><li>a</li><li>b</li></ul><h1>c</h1><div>d</div>", "a b c d"),
        ("Fish &amp; chips &lt;3 &eacute; &#x4E2D;", "Fish & chips <3 é 中"),
        ("  lots \n\t of   space  ", "lots of space"),
        ("<script>var x = 1;</script>visible<style>p{}</style>", "visible"),
        ("Caf&eacute;&nbsp;au lait", "Café\xa0au lait"),
        ("in<b>line</b> tags", "inline tags"),
    ],
)
def test_plain_text(html: str | None, expected: str) -> None:
    assert plain_text(html) == expected


def test_plain_text_cuts_on_a_word_boundary() -> None:
    text = plain_text("<p>The quick brown fox jumps over the lazy dog</p>", 20)
    assert text == "The quick brown fox…"
    assert len(text) <= 20


def test_plain_text_cuts_text_without_spaces_hard() -> None:
    text = plain_text("中" * 100, 10)
    assert text == "中" * 9 + "…"


def test_plain_text_under_the_limit_is_untouched() -> None:
    assert plain_text("short", 80) == "short"


def test_plain_text_keeps_lone_no_break_spaces_and_collapses_every_other_run() -> None:
    rng = random.Random(2)
    pieces = [" ", "\xa0", "\t", "\n", "\u3000", "\u2009", "a", "b", "中"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 20)))
        runs = re.sub(r"\s+", lambda m: m[0] if m[0] == "\xa0" else " ", text).strip()
        assert plain_text(html.escape(text)) == runs, repr(text)


def random_body(rng: random.Random) -> str:
    """HTML of every shape the excerpt shortcut has to get right, before sanitising."""
    pieces = [
        "word",
        "中文摘要",
        "&amp;",
        "&nbsp;",
        "&lt;b&gt;",
        " ",
        "  \n\t ",
        "\xa0",
        "x" * 90,
        "<b>bold</b>",
        '<a href="/x?a=1&amp;b=2" title="a>b">link</a>',
        '<img src="/i.png" alt="<tag>">',
        "<br>",
        "<p>",
        "</p>",
        "<ul><li>a</li><li>b</li></ul>",
        "<pre>  pre  text </pre>",
        "<table><tr><td>cell</td></tr></table>",
        "<script>hidden()</script>",
        "<!-- note -->",
        "<h2>Head</h2>",
    ]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 400)))


def test_excerpt_of_a_sanitised_body_is_its_plain_text_cut() -> None:
    rng = random.Random(1)
    for _ in range(300):
        body = sanitise_html(random_body(rng), BASE)
        for limit in (1, 7, 60, 200):
            assert excerpt_text(body, limit) == plain_text(body, limit), (body, limit)


def test_shortcuts_agree_with_the_long_way_over_the_feedparser_corpus() -> None:
    """URLs taken as they are, markup-free text and excerpts of sanitised bodies, as
    urljoin and the HTML parser would have made them, on every entry of the corpus."""
    root = shared_path("corpus", "feedparser")
    layout = re.compile(r"\s\s+|[^\S \xa0]")
    compared = 0
    for path in corpus_files(root):
        body = path.read_bytes()
        name = str(path.relative_to(root))
        try:
            feed = parse_document(body, corpus_headers(body), f"http://corpus.example/{name}")
        except ParseError:
            continue
        for entry in feed.entries:
            base = entry.base or "http://corpus.example/"
            urls = [entry.link, *entry.media_thumbnails, *(e.url for e in entry.enclosures)]
            for url in filter(None, urls):
                taken = url.strip() and len(url) <= 4096
                expected = _joined_url(url, base, WEB_SCHEMES, 4096) if taken else None
                assert absolute_url(url, base, WEB_SCHEMES) == expected, (name, url)
            for text in filter(None, (entry.title, entry.author, *entry.tags)):
                assert plain_text(text) == layout.sub(" ", _parsed_text(text)).strip(), name
            for html_in in filter(None, (entry.summary_html, entry.content_html)):
                cleaned = sanitise_html(html_in, base)
                for limit in (20, 200):
                    assert excerpt_text(cleaned, limit) == plain_text(cleaned, limit), name
            compared += 1
    assert compared > 1000


RAW_HTML = (
    '<DIV class=x id="a"   data-z=\'1\'>  <img   src="rel/a.png" alt=x /> &nbsp; &amp; &#169;'
    " <!-- c --> <script>var a = 1 < 2 && b;</script>\n"
    '<a href="/up" onclick="x()">L</a><br/><p style="color:red">t</P></DIV>'
)
RAW_DOCUMENTS = {
    "rss cdata": "<rss version='2.0'><channel><title>t</title><item><title>x</title>"
    "<description><![CDATA[{cdata}]]></description></item></channel></rss>",
    "rss escaped": "<rss version='2.0'><channel><title>t</title><item><title>x</title>"
    "<description>{escaped}</description></item></channel></rss>",
    "rss content:encoded": "<rss version='2.0' xmlns:content='http://purl.org/rss/1.0/modules/"
    "content/'><channel><title>t</title><item><title>x</title><description>short</description>"
    "<content:encoded><![CDATA[{cdata}]]></content:encoded></item></channel></rss>",
    "atom html": "<feed xmlns='http://www.w3.org/2005/Atom'><title>t</title><entry><title>x"
    "</title><id>i</id><content type='html'>{escaped}</content></entry></feed>",
    "json feed": '{{"version": "https://jsonfeed.org/version/1.1", "title": "t",'
    ' "items": [{{"id": "1", "content_html": {json}}}]}}',
}


def test_references_to_characters_xml_forbids_are_dropped_once_parsed() -> None:
    # The HTML parser turns &#1; into U+0001, which would make every feed we
    # publish with it invalid XML: removed after parsing, not only before.
    entry = clean(
        raw(title="T&amp;#1;itle&#x1F;", summary_html="<p>a&#1;b&#xFFFE;c&#x1F;d&amp;#1;</p>")
    )
    assert entry.title == "Title"
    assert entry.summary == "<p>abcd&amp;#1;</p>"  # the text "&#1;", as the feed wrote it
    assert entry.excerpt == "abcd&#1;"
    assert plain_text("a&#1;b<b>&#xFFFF;c</b>") == "abc"
    # A body stored before this was fixed still gives a clean excerpt.
    assert excerpt_text("<p>a\x01b \ufffe</p>", 200) == "ab"


@pytest.mark.parametrize("kind", RAW_DOCUMENTS)
def test_raw_body_is_the_document_html_byte_for_byte(kind: str) -> None:
    document = RAW_DOCUMENTS[kind].format(
        cdata=RAW_HTML, escaped=html.escape(RAW_HTML, quote=False), json=json.dumps(RAW_HTML)
    )
    parsed = parse_document(document.encode(), {"content-type": "application/xml"}, BASE)
    entry = normalise_entry(parsed.entries[0], FETCHED)
    assert entry is not None and entry.raw_body == RAW_HTML
    shown = entry.content or entry.summary
    assert shown is not None and "script" not in shown  # what outputs show is clean


@pytest.mark.parametrize(
    ("html_in", "stored"),
    [
        ("<p>a\x00b\ud800c\x7f</p>", "<p>abc\x7f</p>"),
        ("<p>a\x00b</p>", "<p>ab</p>"),
        ("<p>a\udfffb 中文</p>", "<p>ab 中文</p>"),
        ("<p>中文 \x7f\ufffe 🚀</p>", "<p>中文 \x7f\ufffe 🚀</p>"),
    ],
)
def test_raw_body_drops_only_what_no_database_can_store(html_in: str, stored: str) -> None:
    entry = normalise_entry(raw(content_html=html_in), FETCHED)
    assert entry is not None and entry.raw_body == stored


def test_title_and_url_limits_come_from_the_settings() -> None:
    limits = FetchLimits(max_title_chars=12, max_url_chars=40)
    long_link = "https://site.example/" + "p" * 30
    entry = normalise_entry(
        raw(
            title="A rather long title indeed",
            link=long_link,
            content_html=f'<a href="{long_link}">x</a>',
        ),
        FETCHED,
        limits,
    )
    assert entry is not None
    assert len(entry.title) <= 12 and entry.title.endswith("…")
    assert entry.link is None  # too long: dropped whole, never cut
    assert entry.content is not None and long_link not in entry.content
    default = normalise_entry(raw(link=long_link), FETCHED)
    assert default is not None and default.link == long_link


def test_added_image_attributes_come_in_one_order_whatever_the_cleaner() -> None:
    from aggregator.clean import html_cleaner, sanitise_html

    results = set()
    for _ in range(40):
        html_cleaner.cache_clear()  # nh3 orders them by a per-cleaner hash
        results.add(sanitise_html('<img src="a.png" alt="1 > 0"><audio src="a.mp3">', BASE))
    assert results == {
        f'<img src="{BASE}a.png" alt="1 &gt; 0" referrerpolicy="no-referrer" loading="lazy">'
        f'<audio src="{BASE}a.mp3" controls="controls" preload="none"></audio>'
    }


@pytest.mark.parametrize(
    "document",
    [
        '<feed xmlns="http://www.w3.org/2005/Atom"><title type="text">Code &amp; more</title>'
        '<entry><id>urn:1</id><title type="text">The &lt;dialog&gt; element, and why 1&lt;2 and'
        ' a&lt;b matter</title><category term="&lt;template&gt; tips"/></entry></feed>',
        '<rss version="2.0"><channel><title>Code &amp; more</title><item><guid>urn:1</guid>'
        "<title>The &lt;dialog&gt; element, and why 1&lt;2 and a&lt;b matter</title>"
        "<category>&lt;template&gt; tips</category></item></channel></rss>",
        '{"version": "https://jsonfeed.org/version/1.1", "title": "Code & more", "items": [{'
        '"id": "urn:1", "title": "The <dialog> element, and why 1<2 and a<b matter",'
        ' "tags": ["<template> tips"]}]}',
    ],
    ids=["atom", "rss", "json"],
)
def test_titles_about_markup_read_as_the_feed_wrote_them(document: str) -> None:
    parsed = parse_document(document.encode(), {"content-type": "application/xml"}, BASE)
    entry = normalise_entry(parsed.entries[0], FETCHED)
    assert entry is not None
    assert entry.title == "The <dialog> element, and why 1<2 and a<b matter"
    assert entry.tags == ("<template> tips",)
