"""Republishes merged stories as Atom, RSS 2.0 and JSON Feed files, plus an OPML list.

The only module that imports feedgen. Nothing here reads the clock: a feed's
date is its newest story's, so the same stories give the same bytes, unchanged
files keep their mtime and feed readers' conditional requests stay cheap.

feedgen 1.0 loses `rel`, `type` and `length` on entry links and writes a bare
`<source>`, so enclosures, sources, thumbnails and RSS authors are written by
a small feedgen extension (`_StoryExtension`) instead of its own setters.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from aggregator import PROJECT_URL, __version__
from aggregator.errors import AggregatorError
from aggregator.files import write_if_changed
from aggregator.models import Category, Enclosure, SiteSettings, SourceRef, StoryView, WriteReport

MEDIA_NS = "http://search.yahoo.com/mrss/"
DC_NS = "http://purl.org/dc/elements/1.1/"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
DEFAULT_MIME_TYPE = "application/octet-stream"
#: Each category is published in these formats, as `feeds/<slug>.<format>`.
FEED_FORMATS = ("atom", "rss", "json")
#: The date of a feed with no stories: fixed, so an empty feed is not rewritten every run.
EMPTY_FEED_DATE = datetime(1970, 1, 1, tzinfo=UTC)
ALL = Category(name="all", slug="all")

#: Characters XML 1.0 forbids outright; lxml refuses them, a feed reader would too.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_UNSAFE_SLUG = re.compile(r"^\.*$|[/\\\x00]")


# --------------------------------------------------------------------------- shared


def _text(value: str) -> str:
    return _XML_FORBIDDEN.sub("", value)


def _opt(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = _text(value).strip()
    return cleaned or None


def _utc(value: datetime) -> datetime:
    """Aware UTC without microseconds: the models promise UTC, this makes sure of it."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def _rfc3339(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def feed_path(slug: str, ext: str) -> str:
    """Where an output feed lives, relative to `output_dir` and `base_url` alike."""
    if _UNSAFE_SLUG.search(slug):
        raise AggregatorError(f"category slug {slug!r} cannot be used as a file name")
    return f"feeds/{slug}.{ext}"


def feed_title(site: SiteSettings, category: Category) -> str:
    return site.title if category.slug == ALL.slug else f"{site.title} — {category.name}"


@dataclass(frozen=True)
class _Term:
    term: str
    scheme: str | None


@dataclass(frozen=True)
class _Item:
    """A story with every string made XML-safe and every choice made, for all three formats."""

    uid: str
    title: str
    link: str | None
    author: str | None
    published: datetime
    updated: datetime
    html: str  # content, else summary, else the escaped title: every format needs a body
    summary: str | None  # set only when it differs from `html`
    terms: tuple[_Term, ...]
    thumbnail: str | None
    enclosures: tuple[Enclosure, ...]
    sources: tuple[SourceRef, ...]


def _terms(story: StoryView, site: SiteSettings, categories: Sequence[Category]) -> list[_Term]:
    """Our categories first (scheme = the site, so readers can tell them apart), then tags."""
    by_key = {key: c for c in categories for key in (c.name, c.slug)}
    terms: list[_Term] = []
    seen: set[str] = set()
    for value, ours in [(c, True) for c in story.categories] + [(t, False) for t in story.tags]:
        known = by_key.get(value) if ours else None
        term = _opt(known.name if known else value)
        if term is None or term.casefold() in seen:
            continue
        seen.add(term.casefold())
        terms.append(_Term(term, site.base_url if known else None))
    return terms


def _item(story: StoryView, site: SiteSettings, categories: Sequence[Category]) -> _Item:
    title = _opt(" ".join(story.title.split())) or _opt(story.link) or "Untitled"
    content, summary = _opt(story.content), _opt(story.summary)
    body = content or summary or html.escape(title)
    published = _utc(story.published)
    return _Item(
        uid=_text(story.uid),
        title=title,
        link=_opt(story.link),
        author=_opt(story.author),
        published=published,
        updated=_utc(story.updated) if story.updated else published,
        html=body,
        summary=summary if summary and summary != body else None,
        terms=tuple(_terms(story, site, categories)),
        thumbnail=_opt(story.thumbnail),
        enclosures=tuple(
            Enclosure(url, _opt(e.type), e.length if e.length and e.length > 0 else None)
            for e in story.enclosures
            if (url := _opt(e.url))
        ),
        sources=tuple(
            SourceRef(url, _opt(s.name) or url, _opt(s.site_link))
            for s in story.sources
            if (url := _opt(s.feed_url))
        ),
    )


# --------------------------------------------------------------------------- Atom and RSS


class _FeedExtension:
    """Declares the namespaces `_StoryExtension` writes into, on the feed's root element."""

    def extend_ns(self) -> dict[str, str]:
        return {"media": MEDIA_NS, "dc": DC_NS}

    def extend_atom(self, feed: Any) -> Any:
        return feed

    def extend_rss(self, feed: Any) -> Any:
        return feed


class _StoryExtension:
    """Adds to one entry what feedgen 1.0 writes wrongly or not at all."""

    def __init__(self) -> None:
        self.item: _Item | None = None

    def extend_ns(self) -> dict[str, str]:
        return {}

    def extend_atom(self, entry: Any) -> Any:
        item = self.item
        if item is None:
            return entry
        for enclosure in item.enclosures:
            # Without a type feed readers guess text/html, which no enclosure is.
            attrs = {
                "rel": "enclosure",
                "href": enclosure.url,
                "type": enclosure.type or DEFAULT_MIME_TYPE,
            }
            if enclosure.length is not None:
                attrs["length"] = str(enclosure.length)
            xml_elem("link", entry, **attrs)
        if item.sources:
            primary = item.sources[0]
            source = xml_elem("source", entry)
            xml_elem("id", source).text = primary.feed_url
            xml_elem("title", source).text = primary.name
            xml_elem("link", source, rel="self", href=primary.feed_url)
            if primary.site_link:
                xml_elem("link", source, rel="alternate", href=primary.site_link)
        if item.thumbnail:
            xml_elem(f"{{{MEDIA_NS}}}thumbnail", entry, url=item.thumbnail)
        return entry

    def extend_rss(self, entry: Any) -> Any:
        item = self.item
        if item is None:
            return entry
        if item.author:
            xml_elem(f"{{{DC_NS}}}creator", entry).text = item.author
        if item.enclosures:  # RSS 2.0 allows one, and requires all three attributes
            first = item.enclosures[0]
            xml_elem(
                "enclosure",
                entry,
                url=first.url,
                length=str(first.length or 0),
                type=first.type or DEFAULT_MIME_TYPE,
            )
        if item.sources:
            primary = item.sources[0]
            xml_elem("source", entry, url=primary.feed_url).text = primary.name
        if item.thumbnail:
            xml_elem(f"{{{MEDIA_NS}}}thumbnail", entry, url=item.thumbnail)
        return entry


def _generator(
    site: SiteSettings, category: Category, items: Sequence[_Item], updated: datetime
) -> Any:
    fg = FeedGenerator()
    fg.register_extension("aggregator", _FeedExtension, _StoryExtension)
    # RFC 4287 wants one id per feed: the site for `all`, a category's own Atom URL otherwise.
    is_all = category.slug == ALL.slug
    fg.id(site.base_url if is_all else site.base_url + feed_path(category.slug, "atom"))
    fg.title(_text(feed_title(site, category)))
    fg.description(_text(f"Stories gathered by {site.title}"))
    fg.author(name=_text(site.title))
    fg.language(site.language)
    fg.generator("aggregator", version=__version__, uri=PROJECT_URL)
    fg.updated(updated)
    for item in items:
        entry = fg.add_entry(order="append")
        entry.id(item.uid)
        entry.title(item.title)
        entry.updated(item.updated)
        entry.published(item.published)
        if item.link:
            entry.link(href=item.link, rel="alternate")
        if item.author:
            entry.author(name=item.author)
        # Summary before content: feedgen then writes RSS description + content:encoded.
        if item.summary:
            entry.summary(item.summary, type="html")
        entry.content(item.html, type="html")
        if item.terms:
            entry.category([_category(t) for t in item.terms])
        entry.aggregator.item = item
    return fg


def _category(term: _Term) -> dict[str, str]:
    return (
        {"term": term.term} if term.scheme is None else {"term": term.term, "scheme": term.scheme}
    )


def _links(fg: Any, site: SiteSettings, self_url: str, mime_type: str) -> None:
    # feedgen takes the RSS <link> from the last link given: keep the alternate last.
    fg.link(
        [
            {"href": self_url, "rel": "self", "type": mime_type},
            {"href": site.base_url, "rel": "alternate", "type": "text/html"},
        ],
        replace=True,
    )


# --------------------------------------------------------------------------- JSON Feed


def _json_item(item: _Item) -> dict[str, Any]:
    out: dict[str, Any] = {"id": item.uid}
    if item.link:
        out["url"] = item.link
    out["title"] = item.title
    out["content_html"] = item.html
    if item.thumbnail:
        out["image"] = item.thumbnail
    out["date_published"] = _rfc3339(item.published)
    out["date_modified"] = _rfc3339(item.updated)
    if item.author:
        out["authors"] = [{"name": item.author}]
    if item.terms:
        out["tags"] = [t.term for t in item.terms]
    if item.enclosures:
        out["attachments"] = [_attachment(e) for e in item.enclosures]
    if item.sources:
        out["_source"] = _json_source(item.sources[0])
        out["_sources"] = [_json_source(s) for s in item.sources]
    return out


def _attachment(enclosure: Enclosure) -> dict[str, Any]:
    out: dict[str, Any] = {"url": enclosure.url, "mime_type": enclosure.type or DEFAULT_MIME_TYPE}
    if enclosure.length is not None:
        out["size_in_bytes"] = enclosure.length
    return out


def _json_source(source: SourceRef) -> dict[str, str]:
    out = {"title": source.name}
    if source.site_link:
        out["url"] = source.site_link
    out["feed_url"] = source.feed_url
    return out


def _json_feed(site: SiteSettings, category: Category, items: Sequence[_Item]) -> bytes:
    document = {
        "version": JSON_FEED_VERSION,
        "title": _text(feed_title(site, category)),
        "home_page_url": site.base_url,
        "feed_url": site.base_url + feed_path(category.slug, "json"),
        "description": _text(f"Stories gathered by {site.title}"),
        "language": site.language,
        "authors": [{"name": _text(site.title)}],
        "items": [_json_item(item) for item in items],
    }
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


# --------------------------------------------------------------------------- public API


def _write(path: Path, data: bytes) -> WriteReport:
    if write_if_changed(path, data):
        return WriteReport(written=(path,))
    return WriteReport(unchanged=(path,))


def publish_feeds(
    site: SiteSettings,
    outputs: Sequence[tuple[Category, Sequence[StoryView]]],
    categories: Sequence[Category],
) -> WriteReport:
    """Write `feeds/<slug>.atom`, `.rss` and `.json` for every output, skipping unchanged ones.

    `outputs` come already sorted newest first and cut to `site.max_entries`;
    `categories` turn the category names a story carries into labelled terms.
    """
    report = WriteReport()
    for category, stories in outputs:
        items = [_item(story, site, categories) for story in stories]
        updated = max((item.updated for item in items), default=EMPTY_FEED_DATE)
        fg = _generator(site, category, items, updated)
        base = site.output_dir
        atom, rss, jsonf = (feed_path(category.slug, ext) for ext in FEED_FORMATS)
        _links(fg, site, site.base_url + atom, "application/atom+xml")
        report += _write(base / atom, fg.atom_str(pretty=True))
        _links(fg, site, site.base_url + rss, "application/rss+xml")
        report += _write(base / rss, fg.rss_str(pretty=True))
        report += _write(base / jsonf, _json_feed(site, category, items))
    return report


def retire_feeds(site: SiteSettings, slugs: Iterable[str]) -> WriteReport:
    """Delete the output feeds of categories that feeds.yaml no longer has.

    Left in place, such a feed would stay frozen as it was when its category
    went away, still carrying the stories of sources that were removed, and
    its subscribers would never learn that it ended: a missing feed is an
    error their readers show them.
    """
    removed: list[Path] = []
    for slug in slugs:
        for ext in FEED_FORMATS:
            path = site.output_dir / feed_path(slug, ext)
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(path)
    return WriteReport(removed=tuple(removed))


def publish_opml(site: SiteSettings, categories: Sequence[Category]) -> WriteReport:
    """Write `feeds.opml`, so a reader can subscribe to every output in one import."""
    opml = ET.Element("opml", version="2.0")
    head = ET.SubElement(opml, "head")
    ET.SubElement(head, "title").text = _text(site.title)
    ET.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = ET.SubElement(opml, "body")
    for category in [ALL, *(c for c in categories if c.slug != ALL.slug)]:
        title = _text(feed_title(site, category))
        ET.SubElement(
            body,
            "outline",
            type="rss",
            text=title,
            title=title,
            xmlUrl=site.base_url + feed_path(category.slug, "atom"),
            htmlUrl=site.base_url,
        )
    ET.indent(opml)
    data = ET.tostring(opml, encoding="UTF-8", xml_declaration=True) + b"\n"
    return _write(site.output_dir / "feeds.opml", data)
