"""Renders the daily digest: one static HTML page per local day, plus index.html for today.

The only module that imports Jinja2. Every choice a page needs (local times,
excerpts, relative links, which stories fit) is made here in plain Python, so
the templates only lay out values. Pages use relative links, so the output
works from any web path and when opened from disk; feed links stay absolute
because they are what people paste into their feed readers.

A category with more stories in a day than a day page shows gets pages of
its own (`DigestPage`): `digest/<day>/<slug>/<n>.html`, counted from the
oldest, and its newest page again at `digest/<day>/<slug>.html`, where the
day page's "more" link leads.

Story cards are the exception to "templates only lay out": a busy day has
tens of thousands of them, and a template spends more on each card (an
include, a dozen escapes) than everything else a card costs. `_Cards` writes
a card's HTML in one pass instead, and the templates place a section's cards
as one piece.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from aggregator.errors import AggregatorError
from aggregator.files import write_if_changed
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

ALL = Category(name="all", slug="all")

_ARABIC_SCRIPT_LANGUAGES = frozenset({"ar", "fa", "ur", "ps", "sd", "ug", "ckb"})
# Scripts checked in this order, each with the site languages that write in it
# (their sites leave such titles unmarked). Kana or hangul mark a title as
# Japanese or Korean even when it also holds Han characters, and a Han-only
# title on a Japanese site is as likely Japanese as Chinese. Arabic letters
# only Urdu or Persian use tell those apart from Arabic.
_SCRIPT_LANGS = (
    ("ja", re.compile("[\u3040-\u30ff\u31f0-\u31ff]"), frozenset({"ja"})),
    ("ko", re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]"), frozenset({"ko"})),
    (
        "zh",
        re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"),
        frozenset({"zh", "ja"}),
    ),
    ("he", re.compile("[\u0590-\u05ff\ufb1d-\ufb4f]"), frozenset({"he", "yi"})),
    ("ur", re.compile("[\u0679\u0688\u0691\u06ba\u06c1\u06d2]"), _ARABIC_SCRIPT_LANGUAGES),
    ("fa", re.compile("[\u067e\u0686\u0698\u06a9\u06af\u06cc]"), _ARABIC_SCRIPT_LANGUAGES),
    (
        "ar",
        re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufefc]"),
        _ARABIC_SCRIPT_LANGUAGES,
    ),
)
_ANY_SCRIPT = re.compile("|".join(pattern.pattern for _, pattern, _ in _SCRIPT_LANGS))
#: Languages written right to left: a site in one lays its pages out that way.
RTL_LANGUAGES = _ARABIC_SCRIPT_LANGUAGES | {"he", "yi", "dv", "syr", "arc"}
# What makes urlsplit do more than read the scheme: brackets (IPv6 hosts, which
# it may reject) and the tabs and newlines it drops.
_URL_SLOW_PATH = re.compile("[][\t\r\n]")
_HTML_SPECIAL = re.compile("[&<>'\"]")


# --------------------------------------------------------------------------- view values


class Link(NamedTuple):
    label: str
    href: str | None


@dataclass(frozen=True)
class FeedLink:
    title: str
    href: str
    mime_type: str
    format: str
    category: str | None = None  # None: every story


@dataclass(frozen=True)
class SectionView:
    name: str
    anchor: str
    cards: Markup  # every card's <li>, in order
    count_label: str
    total: int
    more: int
    more_href: str | None


@dataclass(frozen=True)
class Problem:
    name: str
    url: str
    href: str | None
    state: str
    error: str | None


def _web_url(url: str | None) -> str | None:
    """Only http(s) URLs become links or images: a feed cannot smuggle in other schemes."""
    if not url:
        return None
    stripped = url.strip()
    head = stripped[:8].lower()
    if (head.startswith("http://") or head == "https://") and not _URL_SLOW_PATH.search(stripped):
        return stripped  # what urlsplit would say, without splitting
    try:
        scheme = urlsplit(stripped).scheme.lower()
    except ValueError:
        return None
    return stripped if scheme in ("http", "https") else None


def text_lang(text: str, site_language: str) -> str | None:
    """The language to mark a title or excerpt in another script with, for fonts and
    screen readers.

    None when the text is in the Latin script or in one the site's language
    is written in.
    """
    if not _ANY_SCRIPT.search(text):  # most texts: one pass instead of several
        return None
    site_primary = _primary(site_language)
    for lang, pattern, writers in _SCRIPT_LANGS:
        if pattern.search(text):
            return None if site_primary in writers else lang
    return None


def text_direction(site_language: str) -> str:
    return "rtl" if _primary(site_language) in RTL_LANGUAGES else "ltr"


def _primary(language: str) -> str:
    return language.split("-")[0].lower()


class _Clock:
    """Shows aware UTC times in the site's zone."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)

    def local(self, value: datetime) -> datetime:
        return value.astimezone(self.zone)

    def label(self, value: datetime, day: str | None = None) -> str:
        """`HH:MM ZONE`, prefixed with the date when it is not the page's day."""
        return self.local_label(self.local(value), day)

    @staticmethod
    def local_label(local: datetime, day: str | None) -> str:
        if local.year < 1000:  # strftime's own padding of such years differs by platform
            clock, date = local.strftime("%H:%M %Z"), local.strftime("%Y-%m-%d")
            return clock if date == day else f"{date} {clock}"
        clock = f"{local.hour:02d}:{local.minute:02d} {local.tzname() or ''}"
        if day is not None and local.day == int(day[8:10]) and day == local.date().isoformat():
            return clock
        return f"{local.year}-{local.month:02d}-{local.day:02d} {clock}"


def _html_time(local: datetime) -> str:
    """A `datetime` attribute HTML accepts: at most three digits of a second's fraction."""
    return local.isoformat(timespec="milliseconds" if local.microsecond else "seconds")


def _escape(text: str) -> str:
    """What Jinja's autoescape writes for `text` (markupsafe's escapes), without a Markup."""
    if not _HTML_SPECIAL.search(text):
        return text
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("'", "&#39;")
        .replace('"', "&#34;")
    )


class _Cards:
    """Writes story cards for one render, remembering what every card of a source shares.

    A card is laid out as follows (the tests read it back; CSS classes are base.html's):

        <li><article class="story" lang="(only for a title in a script the site does not write)">
        <img class="thumb" src="(thumbnail)" alt="" loading="lazy" referrerpolicy="no-referrer">
        <h3 dir="auto"><a href="(link)">(title)</a></h3>
        <p class="meta">(source links, each a <bdi>, comma-separated)<span class="sep">·</span>
        <time datetime="(local ISO time)" dir="ltr">(HH:MM ZONE; the date if not the page's)</time>
        </p>
        <p class="excerpt" dir="auto" lang="(only when not the title's)">(excerpt, unless it
        repeats the title)</p>
        </article>
        </li>

    `dir="auto"` lays a title or excerpt in Arabic or Hebrew out right to left
    whatever the page's own direction, and `<bdi>` keeps a source's name from
    reordering the names and the time around it; the time reads left to right
    on a right-to-left page too ("12:04 CST", not "CST 12:04").
    """

    def __init__(self, site: SiteSettings, clock: _Clock) -> None:
        self.language = site.language
        self.clock = clock
        self._meta: dict[tuple[SourceRef, ...], str] = {}

    def html(self, stories: Sequence[DigestStory], day: str) -> Markup:
        return Markup("".join([self.card(story, day) for story in stories]))

    def card(self, story: DigestStory, day: str) -> str:
        # A story's own date, unless it claims to be from after we first saw it.
        local = self.clock.local(min(story.published, story.first_seen))
        title = " ".join(story.title.split()) or story.link or "Untitled"
        lang = text_lang(title, self.language)
        thumbnail = _web_url(story.thumbnail)
        href = _web_url(story.link)
        meta = self._meta.get(story.sources)
        if meta is None:
            meta = self._meta[story.sources] = self._sources(story.sources)
        # Times, language codes and ids need no escaping; what a feed wrote does.
        return "".join(
            (
                f'<li><article class="story" lang="{lang}">\n'
                if lang
                else '<li><article class="story">\n',
                f'<img class="thumb" src="{_escape(thumbnail)}" alt="" loading="lazy"'
                ' referrerpolicy="no-referrer">\n'
                if thumbnail
                else "",
                f'<h3 dir="auto"><a href="{_escape(href)}">{_escape(title)}</a></h3>\n'
                if href
                else f'<h3 dir="auto">{_escape(title)}</h3>\n',
                meta,
                f'<time datetime="{_html_time(local)}" dir="ltr">'
                f"{_Clock.local_label(local, day)}</time>\n"
                "</p>\n",
                self._excerpt(story.excerpt, lang) if story.excerpt != title else "",
                "</article>\n</li>\n",
            )
        )

    def _excerpt(self, excerpt: str | None, card_lang: str | None) -> str:
        """The excerpt, marked with its own language where it is not the title's."""
        if not excerpt:
            return ""
        lang = text_lang(excerpt, self.language)
        marked = "" if lang == card_lang else f' lang="{_escape(lang or self.language)}"'
        return f'<p class="excerpt" dir="auto"{marked}>{_escape(excerpt)}</p>\n'

    @staticmethod
    def _sources(sources: Sequence[SourceRef]) -> str:
        links = []
        for source in sources:
            href = _web_url(source.site_link)
            label = f"<bdi>{_escape(source.name)}</bdi>"
            links.append(f'<a href="{_escape(href)}">{label}</a>' if href else label)
        # A line breaks after the dot, never before it.
        separator = '<span class="sep">·</span> ' if sources else ""
        return '<p class="meta">' + ", ".join(links) + separator


def _feed_links(site: SiteSettings, categories: Sequence[Category]) -> list[FeedLink]:
    links = [
        FeedLink(site.title, f"{site.base_url}feeds/all.{ext}", mime, label)
        for ext, mime, label in (
            ("atom", "application/atom+xml", "Atom"),
            ("rss", "application/rss+xml", "RSS"),
            ("json", "application/feed+json", "JSON Feed"),
        )
    ]
    links += [
        FeedLink(
            f"{site.title} — {c.name}",
            f"{site.base_url}feeds/{c.slug}.atom",
            "application/atom+xml",
            "Atom",
            c.name,
        )
        for c in categories
        if c.slug != ALL.slug
    ]
    return links


def _problems(health: Sequence[FeedHealth]) -> list[Problem]:
    return [
        Problem(h.name or h.url, h.url, _web_url(h.url), h.state, h.last_error)
        for h in health
        if h.failing
    ]


# --------------------------------------------------------------------------- rendering


def _templates_dir() -> Path:
    """Beside the module in an installed wheel; at the repository root in a checkout."""
    here = Path(__file__)
    for candidate in (here.parent / "templates", here.resolve().parent.parent / "templates"):
        if (candidate / "base.html").is_file():
            return candidate
    raise AggregatorError(f"digest templates not found next to {here}")


@functools.cache
def _environment(folder: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


@dataclass(frozen=True)
class _Page:
    """Values every page shares; `root` leads from the page back to `output_dir`."""

    site: SiteSettings
    feeds: tuple[FeedLink, ...]
    clock: _Clock

    def render(
        self, template: str, path: Path, root: str, generated: datetime, **values: object
    ) -> WriteReport:
        html = (
            _environment(_templates_dir())
            .get_template(template)
            .render(
                site=self.site,
                direction=text_direction(self.site.language),
                feeds=self.feeds,
                generated=self.clock.label(generated),
                generated_iso=_html_time(self.clock.local(generated)),
                root=root,
                **values,
            )
        )
        if write_if_changed(path, html.encode("utf-8")):
            return WriteReport(written=(path,))
        return WriteReport(unchanged=(path,))


def _page(site: SiteSettings, categories: Sequence[Category]) -> _Page:
    return _Page(site, tuple(_feed_links(site, categories)), _Clock(site.timezone))


def _day_href(day: str | None, root: str) -> str | None:
    return f"{root}digest/{day}.html" if day else None


def _stories_label(count: int) -> str:
    return f"{count} {'story' if count == 1 else 'stories'}"


def _section(section: DigestSection, cards: _Cards, day: str, root: str, limit: int) -> SectionView:
    shown = section.stories[:limit]
    total = max(section.total, len(section.stories))
    more = total - len(shown)
    return SectionView(
        name=section.category.name,
        anchor=f"c-{section.category.slug}",
        cards=cards.html(shown, day),
        count_label=_stories_label(total),
        total=total,
        more=more,
        more_href=f"{root}digest/{day}/{section.category.slug}.html" if more > 0 else None,
    )


def render_day(
    site: SiteSettings,
    categories: Sequence[Category],
    day: DigestDay,
    health: Sequence[FeedHealth],
    generated_at: datetime,
) -> WriteReport:
    """Write `digest/<day>.html` (and `index.html` when the day is today).

    Each section shows its category's `site.digest_per_category` newest
    stories and says how many there are; a category with more links to its
    pages (`render_category_page`). Feed health is news of the moment: only
    today's pages list failing sources, so past days keep their bytes when a
    source starts or stops failing.
    """
    page = _page(site, categories)
    cards = _Cards(site, page.clock)
    out = site.output_dir
    limit = max(site.digest_per_category, 1)
    filled = [s for s in day.sections if s.stories]
    problems = _problems(health) if day.is_today else []
    targets = [(out / "digest" / f"{day.day}.html", "../")]
    if day.is_today:
        targets.append((out / "index.html", ""))
    report = WriteReport()
    for path, root in targets:
        report += page.render(
            "day.html",
            path,
            root,
            generated_at,
            day=day,
            page_title=f"{site.title} — {day.day}",
            heading=day.day,
            home_href=f"{root}index.html",
            permalink=_day_href(day.day, root) if root == "" else None,
            previous_href=_day_href(day.previous_day, root),
            next_href=_day_href(day.next_day, root),
            sections=[_section(s, cards, day.day, root, limit) for s in filled],
            problems=problems,
        )
    return report


def render_digest(
    site: SiteSettings,
    categories: Sequence[Category],
    days: Sequence[DigestDay],
    health: Sequence[FeedHealth],
    generated_at: datetime,
) -> WriteReport:
    """`render_day` for each day. Pages depend only on the arguments, so an
    unchanged page keeps its bytes and mtime."""
    report = WriteReport()
    for day in days:
        report += render_day(site, categories, day, health, generated_at)
    return report


def category_page_path(site: SiteSettings, day: str, slug: str, number: int | None) -> Path:
    """Where a category's page of a day is written; None: its newest page's stable name."""
    folder = site.output_dir / "digest" / day
    return folder / f"{slug}.html" if number is None else folder / slug / f"{number}.html"


def retire_category_pages(site: SiteSettings, day: str, kept: Mapping[str, int]) -> WriteReport:
    """Delete the day's category pages beyond `kept` (slug: pages the category now fills).

    A feed removed from feeds.yaml takes its stories off the day, a renamed
    category moves them: left in place, the old pages would stay on the web
    with stories no page links to any more. Only names this module writes
    (`category_page_path`) are deleted.
    """
    folder = site.output_dir / "digest" / day
    if not folder.is_dir():
        return WriteReport()
    removed: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            pages = kept.get(path.name, 0)
            for page in sorted(path.glob("*.html")):
                if page.stem.isdigit() and not 1 <= int(page.stem) <= pages:
                    page.unlink(missing_ok=True)
                    removed.append(page)
            if not pages and not any(path.iterdir()):
                path.rmdir()
        elif path.suffix == ".html" and not kept.get(path.stem):
            path.unlink(missing_ok=True)
            removed.append(path)
    return WriteReport(removed=tuple(removed))


def render_category_page(
    site: SiteSettings, categories: Sequence[Category], page: DigestPage, page_size: int
) -> WriteReport:
    """Write one page of a category's stories of a day; the newest one twice.

    A page holds stories `first` to `first + page_size - 1` of the day, counted
    from the oldest, newest first, and links to the pages before and after
    it; only the newest page, whose bytes change with every new story anyway,
    shows the day's total and links to every page. So an older page changes
    only when one of its own stories does, and keeps its mtime otherwise. Its
    "Updated" time is when its newest story was first seen.
    """
    shared = _page(site, categories)
    cards = _Cards(site, shared.clock)
    day, slug, number = page.day, page.category.slug, page.number
    last = page.first + len(page.stories) - 1
    span = f"{page.first}–{last}"
    count_label = f"stories {span}" if page.total is None else f"stories {span} of {page.total}"
    generated = max(s.first_seen for s in page.stories)
    report = WriteReport()
    targets: list[tuple[int | None, str]] = [(number, "../../../")]
    if page.newest:
        targets.append((None, "../../"))
    shown = cards.html(page.stories, day)
    for name, root in targets:

        def href(n: int | None, root: str = root) -> str:
            target = f"{slug}.html" if n is None else f"{slug}/{n}.html"
            return f"{root}digest/{day}/{target}"

        page_links = []
        if page.newest and number > 1:
            page_links = [
                Link(f"{(n - 1) * page_size + 1}–{min(n * page_size, last)}", href(n))
                for n in range(number, 0, -1)
            ]
        report += shared.render(
            "category_day.html",
            category_page_path(site, day, slug, name),
            root,
            generated,
            day=day,
            page_title=f"{site.title} — {page.category.name} — {day} — {span}",
            home_href=f"{root}index.html",
            day_href=_day_href(day, root),
            newest_href=None if page.newest else href(None),
            newer_href=None if page.newest else href(number + 1),
            older_href=href(number - 1) if number > 1 else None,
            page_links=page_links,
            current_href=href(number),
            section=SectionView(
                name=page.category.name,
                anchor=f"c-{slug}",
                cards=shown,
                count_label=count_label,
                total=last,
                more=0,
                more_href=None,
            ),
        )
    return report
