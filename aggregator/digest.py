"""Renders the daily digest: one static HTML page per local day, plus index.html for today.

The only module that imports Jinja2. Every choice a page needs (local times,
excerpts, relative links, which stories fit) is made here in plain Python, so
the templates only lay out values. Pages use relative links, so the output
works from any web path and when opened from disk; feed links stay absolute
because they are what people paste into their feed readers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import jinja2

from aggregator.clean import plain_text
from aggregator.errors import AggregatorError
from aggregator.files import write_if_changed
from aggregator.models import (
    Category,
    DigestDay,
    DigestSection,
    FeedHealth,
    SiteSettings,
    StoryView,
    WriteReport,
)

EXCERPT_CHARS = 200
ALL = Category(name="all", slug="all")

# Scripts checked in this order: kana or hangul mark a title as Japanese or
# Korean even when it also holds Han characters.
_SCRIPT_LANGS = (
    ("ja", re.compile("[\u3040-\u30ff\u31f0-\u31ff]")),
    ("ko", re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")),
    ("zh", re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")),
)


# --------------------------------------------------------------------------- view values


@dataclass(frozen=True)
class Link:
    label: str
    href: str | None


@dataclass(frozen=True)
class FeedLink:
    title: str
    href: str
    mime_type: str
    format: str


@dataclass(frozen=True)
class Card:
    """One story as a page shows it."""

    title: str
    href: str | None
    lang: str | None
    sources: tuple[Link, ...]
    time_iso: str
    time_label: str
    excerpt: str
    thumbnail: str | None


@dataclass(frozen=True)
class SectionView:
    name: str
    anchor: str
    cards: tuple[Card, ...]
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
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in ("http", "https") else None


def title_lang(title: str, site_language: str) -> str | None:
    """The language to mark a CJK title with, so browsers pick a matching font.

    None when the title has no CJK characters or is in the site's own language.
    """
    site_primary = site_language.split("-")[0].lower()
    for lang, pattern in _SCRIPT_LANGS:
        if pattern.search(title):
            return None if lang == site_primary else lang
    return None


class _Clock:
    """Shows aware UTC times in the site's zone."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)

    def local(self, value: datetime) -> datetime:
        return value.astimezone(self.zone)

    def label(self, value: datetime, day: str | None = None) -> str:
        """`HH:MM ZONE`, prefixed with the date when it is not the page's day."""
        local = self.local(value)
        clock = local.strftime("%H:%M %Z")
        date = local.strftime("%Y-%m-%d")
        return clock if date == day else f"{date} {clock}"


def _card(story: StoryView, site: SiteSettings, clock: _Clock, day: str) -> Card:
    # A story's own date, unless it claims to be from after we first saw it.
    shown = min(story.published, story.first_seen)
    title = " ".join(story.title.split()) or story.link or "Untitled"
    excerpt = plain_text(story.summary or story.content, EXCERPT_CHARS)
    return Card(
        title=title,
        href=_web_url(story.link),
        lang=title_lang(title, site.language),
        sources=tuple(Link(s.name, _web_url(s.site_link)) for s in story.sources),
        time_iso=clock.local(shown).isoformat(),
        time_label=clock.label(shown, day),
        excerpt="" if excerpt == title else excerpt,
        thumbnail=_web_url(story.thumbnail),
    )


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
    generated: str
    generated_iso: str

    def render(self, template: str, path: Path, root: str, **values: object) -> WriteReport:
        html = (
            _environment(_templates_dir())
            .get_template(template)
            .render(
                site=self.site,
                feeds=self.feeds,
                generated=self.generated,
                generated_iso=self.generated_iso,
                root=root,
                **values,
            )
        )
        if write_if_changed(path, html.encode("utf-8")):
            return WriteReport(written=(path,))
        return WriteReport(unchanged=(path,))


def _day_href(day: str | None, root: str) -> str | None:
    return f"{root}digest/{day}.html" if day else None


def _section(
    section: DigestSection, site: SiteSettings, clock: _Clock, day: str, root: str, limit: int
) -> SectionView:
    shown = section.stories[:limit]
    more = max(section.total, len(section.stories)) - len(shown)
    return SectionView(
        name=section.category.name,
        anchor=f"c-{section.category.slug}",
        cards=tuple(_card(s, site, clock, day) for s in shown),
        total=max(section.total, len(section.stories)),
        more=more,
        more_href=f"{root}digest/{day}/{section.category.slug}.html" if more > 0 else None,
    )


def _render_day(page: _Page, day: DigestDay, clock: _Clock, problems: list[Problem]) -> WriteReport:
    site = page.site
    out = site.output_dir
    limit = max(site.digest_per_category, 1)
    filled = [s for s in day.sections if s.stories]
    targets = [(out / "digest" / f"{day.day}.html", "../")]
    if day.is_today:
        targets.append((out / "index.html", ""))
    report = WriteReport()
    for path, root in targets:
        report += page.render(
            "day.html",
            path,
            root,
            day=day,
            page_title=f"{site.title} — {day.day}",
            heading=day.day,
            home_href=f"{root}index.html",
            permalink=_day_href(day.day, root) if root == "" else None,
            previous_href=_day_href(day.previous_day, root),
            next_href=_day_href(day.next_day, root),
            sections=[_section(s, site, clock, day.day, root, limit) for s in filled],
            problems=problems,
        )
    for section in filled:
        if max(section.total, len(section.stories)) <= limit:
            continue
        root = "../../"
        report += page.render(
            "category_day.html",
            out / "digest" / day.day / f"{section.category.slug}.html",
            root,
            day=day,
            page_title=f"{site.title} — {section.category.name} — {day.day}",
            heading=f"{section.category.name} · {day.day}",
            home_href=f"{root}index.html",
            day_href=_day_href(day.day, root),
            section=_section(section, site, clock, day.day, root, len(section.stories)),
        )
    return report


def render_digest(
    site: SiteSettings,
    categories: Sequence[Category],
    days: Sequence[DigestDay],
    health: Sequence[FeedHealth],
    generated_at: datetime,
) -> WriteReport:
    """Write `digest/<day>.html` for each day (and `index.html` for today).

    A category with more stories than `site.digest_per_category` also gets its
    full list for the day at `digest/<day>/<slug>.html`. Pages depend only on
    the arguments, so an unchanged page keeps its bytes and mtime.
    """
    clock = _Clock(site.timezone)
    page = _Page(
        site=site,
        feeds=tuple(_feed_links(site, categories)),
        generated=clock.label(generated_at),
        generated_iso=clock.local(generated_at).isoformat(),
    )
    problems = _problems(health)
    report = WriteReport()
    for day in days:
        # Feed health is news of the moment: only today's pages carry it, so
        # past days keep their bytes when a source starts or stops failing.
        report += _render_day(page, day, clock, problems if day.is_today else [])
    return report
