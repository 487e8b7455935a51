"""Small RSS 2.0 and Atom 1.0 documents for tests. Contains no business logic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Item:
    title: str
    link: str | None = None
    guid: str | None = None
    date: str | None = None  # RFC 822 for RSS, RFC 3339 for Atom
    description: str = ""
    categories: Sequence[str] = ()
    thumbnail: str | None = None
    author: str | None = None
    extra: str = ""
    enclosures: Sequence[tuple[str, str, int]] = field(default_factory=tuple)


def rss(
    title: str,
    items: Sequence[Item],
    *,
    link: str = "https://site.test/",
    encoding: str = "utf-8",
    declare_encoding: bool = True,
) -> bytes:
    parts = []
    for item in items:
        parts.append("<item>")
        parts.append(f"<title>{escape(item.title)}</title>")
        if item.link:
            parts.append(f"<link>{escape(item.link)}</link>")
        if item.guid:
            parts.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        if item.date:
            parts.append(f"<pubDate>{item.date}</pubDate>")
        if item.author:
            parts.append(f"<dc:creator>{escape(item.author)}</dc:creator>")
        parts.extend(f"<category>{escape(c)}</category>" for c in item.categories)
        if item.thumbnail:
            parts.append(f'<media:thumbnail url="{escape(item.thumbnail)}"/>')
        for url, mime, length in item.enclosures:
            parts.append(f'<enclosure url="{escape(url)}" type="{mime}" length="{length}"/>')
        parts.append(f"<description>{escape(item.description)}</description>")
        parts.append(item.extra)
        parts.append("</item>")
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>' if declare_encoding else ""
    text = (
        f'{declaration}<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/" '
        f'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>{escape(title)}</title>'
        f"<link>{escape(link)}</link><description>test feed</description>{''.join(parts)}"
        "</channel></rss>"
    )
    return text.encode(encoding)


def atom(title: str, items: Sequence[Item], *, link: str = "https://site.test/") -> bytes:
    parts = []
    for item in items:
        parts.append("<entry>")
        parts.append(f"<title>{escape(item.title)}</title>")
        parts.append(f"<id>{escape(item.guid or item.link or item.title)}</id>")
        if item.link:
            parts.append(f'<link rel="alternate" href="{escape(item.link)}"/>')
        date = item.date or "2024-01-01T00:00:00Z"
        parts.append(f"<updated>{date}</updated><published>{date}</published>")
        if item.author:
            parts.append(f"<author><name>{escape(item.author)}</name></author>")
        parts.extend(f'<category term="{escape(c)}"/>' for c in item.categories)
        parts.append(f'<content type="html">{escape(item.description)}</content>')
        parts.append(item.extra)
        parts.append("</entry>")
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(title)}</title><id>{escape(link)}</id>"
        f'<link rel="alternate" href="{escape(link)}"/><updated>2024-01-01T00:00:00Z</updated>'
        f"{''.join(parts)}</feed>"
    ).encode()
