"""Digest pages read back as HTML: structure, links that resolve, times in the site's zone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from lxml import html as lxml_html

from aggregator.clean import excerpt
from aggregator.digest import render_category_page, render_digest, text_lang
from aggregator.models import (
    Category,
    DigestDay,
    DigestPage,
    DigestSection,
    DigestStory,
    FeedHealth,
    SiteSettings,
    SourceRef,
    WriteReport,
)
from tests import factories
from tests.factories import BASE

TECH = Category("Tech", "tech")
CHINA = Category("中国", "china")
SCIENCE = Category("Science", "science")
CATEGORIES = (TECH, CHINA, SCIENCE)
TODAY, YESTERDAY = "2024-03-01", "2024-02-29"
GENERATED = datetime(2024, 3, 1, 4, 7, tzinfo=UTC)  # 12:07 in Shanghai
CSP = (
    "default-src 'none'; img-src http: https: data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)


def make_site(tmp_path: Path, **overrides: Any) -> SiteSettings:
    return factories.make_site(tmp_path, **{"digest_per_category": 3, **overrides})


def story(n: int, **overrides: Any) -> DigestStory:
    seen = datetime(2024, 3, 1, 1, 30, tzinfo=UTC) - timedelta(minutes=10 * n)
    values: dict[str, Any] = {
        "story_id": n,
        "title": f"Story number {n}",
        "link": f"https://site.example.com/{n}",
        "thumbnail": None,
        "published": seen - timedelta(minutes=1),
        "first_seen": seen,
        "excerpt": excerpt(f"<p>Summary of <b>story {n}</b> &amp; more.</p>", None),
        "sources": (
            SourceRef("https://site.example.com/feed", "Site", "https://site.example.com/"),
        ),
    }
    values.update(overrides)
    return DigestStory(**values)


TECH_STORIES = (
    story(
        0,
        title="Launch day",
        thumbnail="https://cdn.example.com/launch.jpg",
        sources=(
            SourceRef("https://a.example/feed", "Alpha News", "https://a.example/"),
            SourceRef("https://b.example/rss", "Beta Wire"),
        ),
    ),
    story(1, title="No link here", link=None),
    story(2, title="<script>alert(1)</script> escaped", link="javascript:alert(1)"),
    story(3),
    story(4),
)
CHINA_STORIES = (
    story(5, title="北京发布人工智能新规", excerpt=excerpt("<p>中文摘要。</p>", None)),
    story(6, title="東京で桜が開花しました", thumbnail="https://c.example/s.png"),
)
#: Two stories a page: TECH's five make three pages, counted from the oldest (story 4).
PAGE_SIZE = 2


def tech_pages(stories: tuple[DigestStory, ...] = TECH_STORIES) -> list[DigestPage]:
    """The category pages of TECH_STORIES (newest first) as core would cut them."""
    oldest_first = stories[::-1]
    chunks = [oldest_first[i : i + PAGE_SIZE] for i in range(0, len(stories), PAGE_SIZE)]
    return [
        DigestPage(
            TODAY,
            TECH,
            number,
            (number - 1) * PAGE_SIZE + 1,
            chunk[::-1],
            len(stories) if number == len(chunks) else None,
        )
        for number, chunk in enumerate(chunks, start=1)
    ]


HEALTH = (
    FeedHealth("https://ok.example/feed", "Fine Feed", "ok", GENERATED, 200, None, 10),
    FeedHealth(
        "https://broken.example/feed", "Broken Feed", "error", GENERATED, 500, "HTTP 500 <oops>", 0
    ),
)


def today(**overrides: Any) -> DigestDay:
    values: dict[str, Any] = {
        "day": TODAY,
        "sections": (
            DigestSection(TECH, TECH_STORIES, len(TECH_STORIES)),
            DigestSection(CHINA, CHINA_STORIES, len(CHINA_STORIES)),
            DigestSection(SCIENCE, (), 0),
        ),
        "previous_day": YESTERDAY,
        "next_day": None,
        "is_today": True,
    }
    values.update(overrides)
    return DigestDay(**values)


def yesterday() -> DigestDay:
    old = story(9, title="Yesterday's story", first_seen=datetime(2024, 2, 29, 3, tzinfo=UTC))
    return DigestDay(YESTERDAY, (DigestSection(TECH, (old,), 1),), None, TODAY, is_today=False)


@pytest.fixture
def site(tmp_path: Path) -> SiteSettings:
    return make_site(tmp_path)


def render_pages(site: SiteSettings, pages: list[DigestPage]) -> WriteReport:
    report = WriteReport()
    for page in pages:
        report += render_category_page(site, CATEGORIES, page, PAGE_SIZE)
    return report


@pytest.fixture
def rendered(site: SiteSettings) -> WriteReport:
    report = render_digest(site, CATEGORIES, [yesterday(), today()], HEALTH, GENERATED)
    return report + render_pages(site, tech_pages())


def page(path: Path) -> Any:
    return lxml_html.fromstring(path.read_bytes())


def out(site: SiteSettings, relative: str) -> Path:
    return site.output_dir / relative


# --------------------------------------------------------------------------- files


def test_writes_day_pages_index_and_category_pages(
    site: SiteSettings, rendered: WriteReport
) -> None:
    assert set(rendered.written) == {
        out(site, f"digest/{YESTERDAY}.html"),
        out(site, f"digest/{TODAY}.html"),
        out(site, "index.html"),
        out(site, f"digest/{TODAY}/tech/1.html"),  # stories 1-2, counted from the oldest
        out(site, f"digest/{TODAY}/tech/2.html"),
        out(site, f"digest/{TODAY}/tech/3.html"),
        out(site, f"digest/{TODAY}/tech.html"),  # the newest page again, where "more" leads
    }


def test_same_inputs_rewrite_nothing(site: SiteSettings, rendered: WriteReport) -> None:
    before = {path: path.stat().st_mtime_ns for path in rendered.written}
    again = render_digest(site, CATEGORIES, [yesterday(), today()], HEALTH, GENERATED)
    again += render_pages(site, tech_pages())
    assert again.written == ()
    assert set(again.unchanged) == set(before)
    assert {path: path.stat().st_mtime_ns for path in before} == before


def test_every_page_is_script_free_and_locked_down(
    site: SiteSettings, rendered: WriteReport
) -> None:
    for path in rendered.written:
        raw = path.read_text("utf-8")
        assert raw.startswith("<!doctype html>\n")
        assert "<script" not in raw.lower()
        doc = page(path)
        assert doc.get("lang") == "en"
        assert doc.xpath("//meta[@charset='utf-8']")
        assert doc.xpath("//meta[@name='viewport']")
        (csp,) = doc.xpath("//meta[@http-equiv='Content-Security-Policy']/@content")
        assert csp == CSP
        assert doc.xpath("//meta[@name='referrer']/@content") == ["no-referrer"]
        assert not doc.xpath("//link[@rel='stylesheet'] | //script | //iframe")
        assert "prefers-color-scheme: dark" in raw
        assert '"PingFang SC"' in raw


def test_internal_links_resolve_from_each_page(site: SiteSettings, rendered: WriteReport) -> None:
    for path in rendered.written:
        for href in page(path).xpath("//a/@href"):
            if urlsplit(href).scheme or href.startswith("#"):
                continue
            target = (path.parent / urlsplit(href).path).resolve()
            assert target.is_file(), f"{path.relative_to(site.output_dir)} -> {href}"


def test_autodiscovery_and_footer_feed_links(site: SiteSettings, rendered: WriteReport) -> None:
    doc = page(out(site, "index.html"))
    alternates = {
        (link.get("type"), link.get("href")) for link in doc.xpath("//head/link[@rel='alternate']")
    }
    assert alternates == {
        ("application/atom+xml", f"{BASE}feeds/all.atom"),
        ("application/rss+xml", f"{BASE}feeds/all.rss"),
        ("application/feed+json", f"{BASE}feeds/all.json"),
        ("application/atom+xml", f"{BASE}feeds/tech.atom"),
        ("application/atom+xml", f"{BASE}feeds/china.atom"),
        ("application/atom+xml", f"{BASE}feeds/science.atom"),
    }
    assert all(link.get("title") for link in doc.xpath("//head/link[@rel='alternate']"))
    footer_links = set(doc.xpath("//footer//a/@href"))
    assert {href for _, href in alternates} <= footer_links
    assert f"{BASE}feeds.opml" in footer_links


# --------------------------------------------------------------------------- day page


def test_sections_in_order_capped_with_more_link(site: SiteSettings, rendered: WriteReport) -> None:
    doc = page(out(site, f"digest/{TODAY}.html"))
    sections = doc.xpath("//section")
    assert [s.xpath("string(h2/bdi)") for s in sections] == ["Tech", "中国"]
    tech, china = sections
    assert len(tech.xpath(".//article")) == 3
    assert len(china.xpath(".//article")) == 2
    (more,) = tech.xpath(".//a[contains(., 'more')]")
    assert more.text_content().startswith("2 more")
    assert more.get("href") == f"../digest/{TODAY}/tech.html"
    assert not china.xpath(".//a[contains(., 'more')]")
    titles = [a.text_content() for a in tech.xpath(".//article//h3")]
    assert titles == ["Launch day", "No link here", "<script>alert(1)</script> escaped"]


def test_every_story_of_a_category_is_reachable_page_by_page(
    site: SiteSettings, rendered: WriteReport
) -> None:
    path = out(site, f"digest/{TODAY}/tech.html")
    doc = page(path)
    assert doc.xpath(f"//a[@href='../../digest/{TODAY}.html']")  # back to the day
    assert doc.xpath("//head/link[@href='" + BASE + "feeds/all.atom']")
    titles = []
    while True:
        titles += [a.text_content() for a in doc.xpath("//article//h3")]
        older = doc.xpath("//a[@rel='next']/@href")
        if not older:
            break
        path = (path.parent / older[0]).resolve()
        doc = page(path)
    assert titles == [s.title for s in TECH_STORIES]
    assert path == out(site, f"digest/{TODAY}/tech/1.html").resolve()


def test_newest_page_counts_the_day_and_lists_every_page(
    site: SiteSettings, rendered: WriteReport
) -> None:
    newest = page(out(site, f"digest/{TODAY}/tech.html"))
    assert newest.xpath("string(//h2/span)") == "stories 5–5 of 5"
    assert newest.xpath("//ul[@class='toc']//a/text()") == ["5–5", "3–4", "1–2"]
    assert newest.xpath("//a[@aria-current='page']/@href") == [f"../../digest/{TODAY}/tech/3.html"]
    assert not newest.xpath("//a[@rel='prev']")  # nothing newer
    assert page(out(site, f"digest/{TODAY}/tech/3.html")).xpath("string(//main)") == (
        newest.xpath("string(//main)")
    )
    middle = page(out(site, f"digest/{TODAY}/tech/2.html"))
    assert middle.xpath("string(//h2/span)") == "stories 3–4"
    assert middle.xpath("//a[@rel='prev']/@href") == [f"../../../digest/{TODAY}/tech/3.html"]
    assert middle.xpath("//a[@rel='next']/@href") == [f"../../../digest/{TODAY}/tech/1.html"]
    assert middle.xpath("//a[contains(., 'Newest')]/@href") == [
        f"../../../digest/{TODAY}/tech.html"
    ]
    assert not middle.xpath("//ul[@class='toc']")
    # "Updated" on a page is when its newest story was first seen: story 1, at 01:20Z.
    assert middle.xpath("//footer//time/@datetime") == ["2024-03-01T09:20:00+08:00"]


def test_older_pages_keep_their_bytes_when_new_stories_arrive(
    site: SiteSettings, rendered: WriteReport
) -> None:
    mtimes = {n: out(site, f"digest/{TODAY}/tech/{n}.html").stat().st_mtime_ns for n in (1, 2)}
    newer = (story(10, first_seen=datetime(2024, 3, 1, 2, 0, tzinfo=UTC)), *TECH_STORIES)
    pages = tech_pages(newer)  # six stories: story 10 fills page 3
    report = render_pages(site, pages)
    assert set(report.written) == {
        out(site, f"digest/{TODAY}/tech/3.html"),
        out(site, f"digest/{TODAY}/tech.html"),
    }
    assert {
        n: out(site, f"digest/{TODAY}/tech/{n}.html").stat().st_mtime_ns for n in (1, 2)
    } == mtimes


def test_excerpt_is_plain_text_cut_at_a_word() -> None:
    body = "<p>" + "Word &amp; <b>bold</b> " * 40 + "</p>"
    made = excerpt(None, body)
    assert made.startswith("Word & bold Word & bold")
    assert len(made) <= 200 and made.endswith("…")
    assert excerpt("<p>Short <i>summary</i></p>", body) == "Short summary"
    assert excerpt(None, None) == ""


def test_story_card(site: SiteSettings, rendered: WriteReport) -> None:
    doc = page(out(site, f"digest/{TODAY}.html"))
    launch, no_link, hostile = doc.xpath("//section[1]//article")
    assert launch.xpath(".//h3/a/@href") == ["https://site.example.com/0"]
    (img,) = launch.xpath(".//img")
    assert img.get("src") == "https://cdn.example.com/launch.jpg"
    assert img.get("alt") == ""
    assert img.get("loading") == "lazy"
    assert img.get("referrerpolicy") == "no-referrer"
    meta = launch.xpath(".//*[@class='meta']")[0].text_content()
    assert "Alpha News" in meta
    assert "Beta Wire" in meta
    assert launch.xpath(".//a[@href='https://a.example/']/bdi/text()") == ["Alpha News"]
    # A title or excerpt in Arabic or Hebrew runs right to left on any page.
    assert launch.xpath(".//h3/@dir") == ["auto"]
    assert launch.xpath(".//*[@class='excerpt']/@dir") == ["auto"]
    # first_seen 01:30Z, published a minute earlier: 09:29 in Shanghai.
    (clock,) = launch.xpath(".//time")
    assert clock.text == "09:29 CST"
    assert clock.get("datetime") == "2024-03-01T09:29:00+08:00"
    excerpt = launch.xpath(".//*[@class='excerpt']")[0].text_content()
    assert "Summary of story 0 & more." in excerpt
    assert "<b>" not in excerpt

    assert not no_link.xpath(".//h3/a")
    assert no_link.xpath("string(.//h3)") == "No link here"
    assert not hostile.xpath(".//a[starts-with(@href, 'javascript')]")


def test_time_from_another_day_shows_its_date(site: SiteSettings) -> None:
    early = story(0, published=datetime(2024, 2, 27, 22, 0, tzinfo=UTC))
    day = today(sections=(DigestSection(TECH, (early,), 1),))
    render_digest(site, CATEGORIES, [day], (), GENERATED)
    doc = page(out(site, "index.html"))
    assert doc.xpath("//article//time/text()") == ["2024-02-28 06:00 CST"]


def test_other_zone(tmp_path: Path) -> None:
    site = make_site(tmp_path, timezone="America/New_York")
    render_digest(site, CATEGORIES, [today()], (), GENERATED)
    doc = page(out(site, "index.html"))
    assert doc.xpath("(//section[1]//article)[1]//time/text()") == ["2024-02-29 20:29 EST"]
    assert "2024-02-29 23:07 EST" in doc.xpath("string(//footer)")


def test_cjk_titles_are_marked(site: SiteSettings, rendered: WriteReport) -> None:
    doc = page(out(site, f"digest/{TODAY}.html"))
    langs = [a.get("lang") for a in doc.xpath("//article")]
    assert langs[:3] == [None, None, None]
    assert langs[3:] == ["zh", "ja"]


def test_an_excerpt_in_another_script_than_its_title_has_its_own_lang(tmp_path: Path) -> None:
    site = make_site(tmp_path, digest_per_category=4)
    stories = (
        story(0, title="Apple event", excerpt="苹果发布会今日举行。"),
        story(1, title="苹果发布会", excerpt="Apple held its event today."),
        story(2, title="苹果发布会", excerpt="苹果今日举行发布会。"),
        story(3, title="Apple event", excerpt="Apple held its event today."),
    )
    day = today(sections=(DigestSection(TECH, stories, 4),))
    render_digest(site, CATEGORIES, [day], (), GENERATED)
    doc = page(out(site, "index.html"))
    marks = [
        (a.get("lang"), a.xpath("string(.//p[@class='excerpt']/@lang)") or None)
        for a in doc.xpath("//article")
    ]
    assert marks == [(None, "zh"), ("zh", "en"), ("zh", None), (None, None)]


def test_cjk_titles_unmarked_on_a_chinese_site(tmp_path: Path) -> None:
    site = make_site(tmp_path, language="zh-CN")
    render_digest(site, CATEGORIES, [today()], (), GENERATED)
    doc = page(out(site, "index.html"))
    assert doc.get("lang") == "zh-CN"
    assert [a.get("lang") for a in doc.xpath("//article")][3:] == [None, "ja"]


def test_title_lang() -> None:
    assert text_lang("Plain English", "en") is None
    assert text_lang("苹果发布会", "en") == "zh"
    assert text_lang("苹果发布会", "zh-TW") is None
    assert text_lang("ひらがな and 漢字", "en") == "ja"
    assert text_lang("한국어 뉴스", "en") == "ko"
    # A Han-only title on a Japanese site may well be Japanese: left to the page's lang.
    assert text_lang("東京都知事選", "ja") is None
    assert text_lang("東京都知事選", "ko") == "zh"
    assert text_lang("שלום עולם", "en") == "he"
    assert text_lang("مرحبا بالعالم", "en") == "ar"
    assert text_lang("سلام، دنیا چگونه است", "en") == "fa"
    assert text_lang("پاکستان میں بارش", "en") == "ur"
    assert text_lang("مرحبا بالعالم", "fa-IR") is None
    assert text_lang("שלום עולם", "he-IL") is None


@pytest.mark.parametrize(
    ("language", "direction"), [("en", "ltr"), ("ar", "rtl"), ("he-IL", "rtl")]
)
def test_a_site_in_a_right_to_left_language_is_laid_out_right_to_left(
    tmp_path: Path, language: str, direction: str
) -> None:
    site = make_site(tmp_path, language=language)
    render_digest(site, CATEGORIES, [today()], (), GENERATED)
    render_pages(site, tech_pages())
    for path in (out(site, "index.html"), out(site, f"digest/{TODAY}/tech.html")):
        assert (page(path).get("lang"), page(path).get("dir")) == (language, direction)


def test_category_names_are_isolated_from_the_text_around_them(tmp_path: Path) -> None:
    """An Arabic name beside a date or a count would reorder them ("2024-03-01 · أخبار")."""
    news = Category("أخبار", "news")
    site = make_site(tmp_path)
    day = today(
        sections=(DigestSection(news, TECH_STORIES, 9), DigestSection(TECH, (story(7),), 1))
    )
    render_digest(site, (news, TECH), [day], HEALTH, GENERATED)
    pages = tech_pages()
    render_category_page(site, (news, TECH), replace(pages[-1], category=news), PAGE_SIZE)
    doc = page(out(site, "index.html"))
    assert doc.xpath("//ul[@class='toc']//a/bdi/text()") == ["أخبار", "Tech"]
    assert doc.xpath("//section/h2/bdi/text()") == ["أخبار", "Tech"]
    assert doc.xpath("//p[@class='more']/a/span[@dir='ltr']/bdi/text()") == ["أخبار"]
    # English words and numbers read left to right on a right-to-left page too.
    assert doc.xpath("//section/h2/span[@class='count']/@dir") == ["ltr", "ltr"]
    assert set(doc.xpath("//article//time/@dir")) == {"ltr"}
    assert set(doc.xpath("//footer//a/@dir")) == {"ltr"}
    assert doc.xpath("//aside[@class='problems']//strong/bdi/text()") == ["Broken Feed"]
    footer = [" ".join(a.text_content().split()) for a in doc.xpath("//footer//a")]
    assert footer[3:5] == ["أخبار (Atom)", "Tech (Atom)"]
    assert footer[:3] == ["All stories (Atom)", "All stories (RSS)", "All stories (JSON Feed)"]
    category_page = page(out(site, f"digest/{TODAY}/news.html"))
    (heading,) = category_page.xpath("//h1")
    assert heading.xpath("bdi/text()") == ["أخبار"] and heading.text_content() == f"أخبار · {TODAY}"


def test_a_cards_meta_line_breaks_after_the_dot_not_before_it(
    site: SiteSettings, rendered: WriteReport
) -> None:
    doc = page(out(site, f"digest/{TODAY}.html"))
    (sep,) = doc.xpath("(//article)[1]//span[@class='sep']")
    assert sep.tail == " "  # a break opportunity after the dot, none between name and dot
    assert sep.getprevious().tag in ("a", "bdi") and not sep.getprevious().tail


def test_problem_box_lists_only_failing_sources(site: SiteSettings, rendered: WriteReport) -> None:
    doc = page(out(site, "index.html"))
    (box,) = doc.xpath("//*[@class='problems']")
    text = box.text_content()
    assert "Sources with problems" in text
    assert "Broken Feed" in text
    assert "https://broken.example/feed" in text
    assert "HTTP 500 <oops>" in text
    assert "Fine Feed" not in text


def test_no_problem_box_when_all_is_well(site: SiteSettings) -> None:
    render_digest(site, CATEGORIES, [today()], HEALTH[:1], GENERATED)
    assert not page(out(site, "index.html")).xpath("//*[@class='problems']")


def test_empty_day_says_so_and_still_lists_failures(site: SiteSettings) -> None:
    empty = today(sections=(DigestSection(TECH, (), 0),), previous_day=None)
    render_digest(site, CATEGORIES, [empty], HEALTH, GENERATED)
    doc = page(out(site, "index.html"))
    assert "Nothing new yet today" in doc.text_content()
    assert not doc.xpath("//section")
    assert "Broken Feed" in doc.xpath("string(//*[@class='problems'])")
    assert not doc.xpath("//a[contains(., 'Previous day')]")


# --------------------------------------------------------------------------- navigation


def test_index_links_work_from_the_root(site: SiteSettings, rendered: WriteReport) -> None:
    doc = page(out(site, "index.html"))
    (previous,) = doc.xpath("//a[@rel='prev']/@href")
    assert previous == f"digest/{YESTERDAY}.html"
    assert not doc.xpath("//a[@rel='next']")
    assert doc.xpath(f"//a[@href='digest/{TODAY}/tech.html']")
    assert doc.xpath(f"//a[@href='digest/{TODAY}.html']")  # permalink


def test_previous_and_next_between_day_pages(site: SiteSettings, rendered: WriteReport) -> None:
    old = page(out(site, f"digest/{YESTERDAY}.html"))
    assert old.xpath("//a[@rel='next']/@href") == [f"../digest/{TODAY}.html"]
    assert not old.xpath("//a[@rel='prev']")
    assert "Nothing new" not in old.text_content()
    new = page(out(site, f"digest/{TODAY}.html"))
    assert new.xpath("//a[@rel='prev']/@href") == [f"../digest/{YESTERDAY}.html"]


def test_generated_time_in_local_zone(site: SiteSettings, rendered: WriteReport) -> None:
    doc = page(out(site, "index.html"))
    (stamp,) = doc.xpath("//footer//time")
    assert stamp.text == "2024-03-01 12:07 CST"
    assert stamp.get("datetime") == "2024-03-01T12:07:00+08:00"


def test_new_generated_time_rewrites_only_what_was_asked(
    site: SiteSettings, rendered: WriteReport
) -> None:
    later = GENERATED + timedelta(minutes=30)
    report = render_digest(site, CATEGORIES, [today()], HEALTH, later)
    assert out(site, "index.html") in report.written
    assert out(site, f"digest/{YESTERDAY}.html") not in report.written + report.unchanged


def test_datetime_attributes_have_at_most_milliseconds(site: SiteSettings) -> None:
    """HTML allows one to three digits of a second's fraction; first-seen times have six."""
    seen = datetime(2024, 3, 1, 1, 30, 5, 123456, tzinfo=UTC)
    late = story(0, first_seen=seen, published=seen + timedelta(hours=1))  # shown: first seen
    render_digest(site, CATEGORIES, [today(sections=(DigestSection(TECH, (late,), 1),))], (), seen)
    doc = page(out(site, "index.html"))
    assert doc.xpath("//article//time/@datetime") == ["2024-03-01T09:30:05.123+08:00"]
    assert doc.xpath("//footer//time/@datetime") == ["2024-03-01T09:30:05.123+08:00"]
