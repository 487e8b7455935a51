"""Feed bytes plus HTTP facts -> `ParsedFeed`. The only module importing feedparser.

RSS and Atom go through feedparser with its sanitiser and relative-URI pass
turned off: `clean` sanitises with nh3 and resolves URLs itself, and both
passes are among feedparser's slowest. Plain RSS 2.0 and Atom 1.0 are first
offered to `fastparse`, which reads them with lxml into the very result
feedparser would give, about ten times faster, and declines everything else;
feedparser stays the reference (`parse_fast` and `parse_with_feedparser` let
tests hold the two side by side). JSON Feed, which feedparser 6.0 cannot
read, goes through a small adapter at the end of this module.

Before feedparser sees the bytes, a few repairs that feedparser gets wrong are
made on them (see "byte repairs"): it raises on references to surrogates, and
it decodes a UTF-8 feed with one bad byte as ISO-8859-2 mojibake. A document
with more entries than the cap is cut down first, because feedparser needs
over a minute for 100,000 of them.

XML is read by feedparser's SAX parser (expat), which never fetches external
entities or DTDs; expat's own amplification limits stop entity-expansion
bombs, and feedparser then falls back to its loose parser, which expands no
entities at all.

Everything else is mapped as the document states it; nothing is sanitised.
Titles, author names, summaries and content are all handed on as HTML, plain
text escaped, so that `clean` treats every one of them the same way.
"""

from __future__ import annotations

import codecs
import collections
import html
import io
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import feedparser

from aggregator import fastparse
from aggregator.clean import TITLE_LIMIT, absolute_web_url, text_field
from aggregator.errors import ParseError
from aggregator.models import Enclosure, ParsedFeed, RawEntry

# Of the response headers, feedparser needs only these (Content-Location is
# built separately); with other headers but no Content-Type it would decode
# an undeclared document as ISO-8859-1, while XML's own default is UTF-8.
PASSED_HEADERS = ("content-type", "content-language")
DEFAULT_CONTENT_TYPE = "application/xml"

JSON_CONTENT_TYPES = frozenset({"application/feed+json", "application/json"})
JSON_FEED_VERSION_PREFIX = "https://jsonfeed.org/version/"

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})

WARNING_LIMIT = 200

_ENTRY_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s/>]")
_ENTRY_END = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?(?:item|entry)\s*>")
_UPDATE_PERIODS = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(weeks=1),
    "monthly": timedelta(days=30),
    "yearly": timedelta(days=365),
}
_UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_BOMS = (b"\xfe\xff", b"\xff\xfe")  # UTF-16, and the start of UTF-32 LE
_BLANK_LINES = re.compile(r"\n\s*\n")
_HTML_PAGE = re.compile(rb"<(?:!doctype\s+html|html)[\s>]", re.IGNORECASE)
_CHARSET_PARAMETER = re.compile(r"charset\s*=\s*[\"']?([^\"';\s]+)", re.IGNORECASE)
_XML_DECLARED_ENCODING = re.compile(
    rb"""^\s*<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']"""
)
_XML_ENCODING_PSEUDO_ATTRIBUTE = re.compile(
    r"""^(\s*<\?xml[^>]*?)\sencoding\s*=\s*["'][^"']*["']"""
)
# XML 1.0 forbids these C0 controls even as references. In an ASCII-compatible
# encoding (UTF-8, GB18030, Big5, Shift_JIS…) a byte below 0x20 is never part
# of a multi-byte character, so they can be dropped from the bytes.
_CONTROL_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])  # for bytes.translate
_REFERENCE_START = re.compile(rb"&#")  # a regex finds it faster than `in` where "&" abounds
_CHARACTER_REFERENCE = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,64})|([0-9]{1,64}));")
_SURROGATE_PAIR_REFERENCES = re.compile(
    rb"&#(?:[xX]0*([dD][89abAB][0-9a-fA-F]{2})|0*(5529[6-9]|55[3-9][0-9]{2}|56[0-2][0-9]{2}"
    rb"|563[01][0-9]));&#(?:[xX]0*([dD][c-fC-F][0-9a-fA-F]{2})|0*(5[67][0-9]{3}))"
    rb";"
)


def parse_document(
    body: bytes, headers: Mapping[str, str], url: str, max_entries: int = 1000
) -> ParsedFeed:
    """Read one fetched document; raise `ParseError` if it is no feed we can read.

    `headers` have lower-case keys; `url` is the final URL fetched and serves
    as the base when the document names none. Of an XML document with more
    than `max_entries` entries only the first are read (feeds list the newest
    first); the caller keeps the newest of what comes back.

    Plain RSS 2.0 and Atom 1.0 are read by `fastparse` (lxml), everything it
    declines by feedparser; both give the same `ParsedFeed`.
    """
    if _looks_like_json(body, headers.get("content-type", "")):
        return parse_json_feed(body, url)
    prepared, passed = _prepare(body, headers, url, max_entries)
    fast = _read_fast(prepared, passed)
    return fast if fast is not None else _read_with_feedparser(body, url, prepared, passed)


def parse_fast(
    body: bytes, headers: Mapping[str, str], url: str, max_entries: int = 1000
) -> ParsedFeed | None:
    """What `parse_document` returns for an XML feed that `fastparse` reads; None if it declines."""
    return _read_fast(*_prepare(body, headers, url, max_entries))


def parse_with_feedparser(
    body: bytes, headers: Mapping[str, str], url: str, max_entries: int = 1000
) -> ParsedFeed:
    """An XML feed read by feedparser alone: the reference that `parse_fast` must equal."""
    return _read_with_feedparser(body, url, *_prepare(body, headers, url, max_entries))


def update_hint(ttl: str | None, period: str | None, frequency: str | None) -> timedelta | None:
    """What a feed says of its own rhythm: RSS <ttl> (minutes) or the syndication module."""
    hints = []
    if ttl and ttl.strip().isdigit():
        hints.append(timedelta(minutes=int(ttl.strip()[:9])))
    if period and period.strip().lower() in _UPDATE_PERIODS:
        times = int(frequency.strip()) if frequency and frequency.strip().isdigit() else 1
        hints.append(_UPDATE_PERIODS[period.strip().lower()] / max(min(times, 10_000), 1))
    return max(hints) if hints else None


def discovered_feeds(body: bytes, base: str) -> list[str]:
    """Feed URLs an HTML page announces with <link rel="alternate" type="…rss/atom/json…">."""
    finder = _FeedLinks()
    try:
        finder.feed(body[:262_144].decode("utf-8", "replace"))
    except Exception:  # a page bad enough to break the tokenizer announces nothing usable
        return []
    found = (absolute_web_url(href, base) for href in finder.hrefs)
    return list(dict.fromkeys(url for url in found if url))


class _FeedLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "link":
            return
        values = {name: (value or "") for name, value in attrs}
        rel = values.get("rel", "").lower().split()
        kind = values.get("type", "").lower()
        if "alternate" in rel and any(k in kind for k in ("rss", "atom", "feed+json")):
            self.hrefs.append(values.get("href", ""))


# --------------------------------------------------------------------------- shared helpers


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _looks_like_json(body: bytes, content_type: str) -> bool:
    """JSON Feed by its media type or by its first byte, unless the body is plainly XML.

    Servers mislabel feeds often enough that an XML body served as JSON should
    still get its chance with feedparser.
    """
    first = body.lstrip(b" \t\r\n").removeprefix(_UTF8_BOM).lstrip(b" \t\r\n")[:1]
    if first == b"{":
        return True
    return _media_type(content_type) in JSON_CONTENT_TYPES and first != b"<"


def text_to_html(text: str) -> str:
    """Escape plain text into <p> paragraphs, keeping its line breaks visible."""
    paragraphs = (p.strip() for p in _BLANK_LINES.split(text.replace("\r\n", "\n")))
    return "".join("<p>" + html.escape(p).replace("\n", "<br>") + "</p>" for p in paragraphs if p)


def _escaped(text: str | None) -> str | None:
    return html.escape(text, quote=False) if text is not None else None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= WARNING_LIMIT else text[: WARNING_LIMIT - 1] + "…"


def _describe(exc: object) -> str:
    if isinstance(exc, BaseException):
        detail = str(exc)
        name = type(exc).__name__
        return _short(f"{name}: {detail}" if detail else name)
    return _short(str(exc))


def _int_or_none(value: object) -> int | None:
    """A non-negative integer from whatever a feed put in a length field."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = int(value.strip()) if isinstance(value, str) else int(value)
    except (ValueError, OverflowError):
        return None
    return number if number >= 0 else None


def _nonempty(value: object) -> str | None:
    """A string value with content, else None (feeds put odd types in odd places)."""
    if isinstance(value, str) and value.strip():
        return value
    return None


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v))


# --------------------------------------------------------------------------- byte repairs


@dataclass(frozen=True)
class _Prepared:
    body: bytes
    content_type: str
    repairs: tuple[str, ...] = ()


def prepare_body(body: bytes, content_type: str, max_entries: int = 1000) -> _Prepared:
    """Repair what feedparser would choke on or misread, in an ASCII-compatible body.

    UTF-16/32 documents are left alone: their bytes cannot be edited like this
    and feedparser reads them correctly.
    """
    if body.startswith(_WIDE_BOMS) or b"\x00" in body[:4]:
        return _Prepared(body, content_type)
    repairs: list[str] = []
    body, total = cap_entries(body, max_entries)
    if total is not None:
        repairs.append(f"only the first {max_entries:,} of {total:,} entries read")
    stripped = body.lstrip(b" \t\r\n")
    if stripped.startswith(b"<?xml"):
        body = stripped  # a CMS's blank lines before the XML declaration
    without_controls = body.translate(None, _CONTROL_BYTES)
    if len(without_controls) != len(body):
        body = without_controls
        repairs.append("control characters removed")
    if _REFERENCE_START.search(body):
        repaired = _repair_character_references(body)
        if repaired != body:
            body = repaired
            repairs.append("invalid character references removed")
    return _repair_encoding(_Prepared(body, content_type, tuple(repairs)))


def cap_entries(body: bytes, limit: int) -> tuple[bytes, int | None]:
    """The document with only its first `limit` items/entries, and how many it had.

    The head (channel and first entries) is joined to the tail after the last
    entry, so the closing tags survive. None: it had no more than `limit`.
    """
    starts = [m.start() for m in itertools.islice(_ENTRY_START.finditer(body), limit + 1)]
    if len(starts) <= limit:
        return body, None
    last_end = collections.deque(_ENTRY_END.finditer(body, starts[limit]), maxlen=1)
    if not last_end:
        return body, None
    total = limit + sum(1 for _ in _ENTRY_START.finditer(body, starts[limit]))
    return body[: starts[limit]] + body[last_end[0].end() :], total


def _repair_character_references(body: bytes) -> bytes:
    """Join UTF-16 surrogate pairs written as two references; drop references XML forbids.

    feedparser raises UnicodeEncodeError on `&#xD800;`, which would lose the
    whole feed for one bad character.
    """
    body = _SURROGATE_PAIR_REFERENCES.sub(_joined_surrogate_pair, body)
    return _CHARACTER_REFERENCE.sub(_valid_reference, body)


def _joined_surrogate_pair(match: re.Match[bytes]) -> bytes:
    high = int(match[1], 16) if match[1] else int(match[2])
    low = int(match[3], 16) if match[3] else int(match[4])
    if not 0xDC00 <= low <= 0xDFFF:
        return match[0]
    return b"&#x%X;" % (0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def _valid_reference(match: re.Match[bytes]) -> bytes:
    code = int(match[1], 16) if match[1] else int(match[2])
    if _is_xml_char(code):
        return match[0]
    return b""


def _is_xml_char(code: int) -> bool:
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _declared_encodings(body: bytes, content_type: str) -> list[str]:
    """Codec names in the order a careful reader tries them: HTTP, XML, UTF-8."""
    names = []
    if charset := _CHARSET_PARAMETER.search(content_type):
        names.append(charset[1])
    if declared := _XML_DECLARED_ENCODING.match(body.removeprefix(_UTF8_BOM)[:1024]):
        names.append(declared[1].decode("ascii"))
    names.append("utf-8")
    found: list[str] = []
    for name in names:
        try:
            codec = codecs.lookup(name).name
        except LookupError:
            continue
        # GB18030 is a superset of GB2312 and GBK, which servers name instead.
        codec = "gb18030" if codec in ("gb2312", "gbk") else codec
        if codec not in found:
            found.append(codec)
    return found


def _repair_encoding(prepared: _Prepared) -> _Prepared:
    """When no declared encoding fits, decode with the first and replace the bad bytes.

    feedparser would instead fall back to windows-1252 or ISO-8859-2, which
    never fail, and turn a UTF-8 feed with one bad byte into mojibake. The
    result is UTF-8, declared so in the Content-Type and no longer in the
    XML declaration.
    """
    encodings = _declared_encodings(prepared.body, prepared.content_type)
    for encoding in encodings:
        try:
            prepared.body.decode(encoding)
        except UnicodeDecodeError:
            continue
        return prepared
    encoding = encodings[0]
    text = prepared.body.decode(encoding, errors="replace")
    text = _XML_ENCODING_PSEUDO_ATTRIBUTE.sub(r"\1", text, count=1)
    media_type = _media_type(prepared.content_type) or DEFAULT_CONTENT_TYPE
    return _Prepared(
        text.encode("utf-8"),
        f"{media_type}; charset=utf-8",
        (*prepared.repairs, f"bytes invalid in {encoding} replaced"),
    )


# --------------------------------------------------------------------------- RSS / Atom


def _feedparser_headers(headers: Mapping[str, str], content_type: str, url: str) -> dict[str, str]:
    """The headers feedparser should see; Content-Location carries our base URL.

    feedparser takes its base URI from Content-Location (resolved against the
    request URL, which a byte stream does not have), so the final URL goes in
    there, with any Content-Location the server sent resolved against it.
    """
    passed = {key: headers[key] for key in PASSED_HEADERS if headers.get(key)}
    passed["content-type"] = content_type or DEFAULT_CONTENT_TYPE
    location = headers.get("content-location", "").strip()
    try:
        passed["content-location"] = urljoin(url, location) if location else url
    except ValueError:
        passed["content-location"] = url
    return passed


# What fastparse borrows from feedparser, so that both read a document alike.
_REFERENCE = fastparse.Reference(
    parse_date=feedparser.datetimes._parse_date,
    looks_like_html=feedparser.mixin._FeedParserMixin.looks_like_html,
    join_url=feedparser.urls._urljoin,
    cp1252=feedparser.html._cp1252,
    prefixes={
        uri.lower(): prefix for uri, prefix in feedparser.mixin._FeedParserMixin.namespaces.items()
    },
    special_elements=frozenset(
        name.removeprefix("_start_").removeprefix("_end_")
        for name in dir(feedparser.api.StrictFeedParser)
        if name.startswith(("_start_", "_end_"))
    ),
)


def _run_feedparser(body: bytes, headers: Mapping[str, str]) -> Any:
    # A BytesIO, never the bytes themselves: given bytes, feedparser tries
    # open() first, so a body like b"/etc/passwd" would read a local file.
    try:
        return feedparser.parse(
            io.BytesIO(body),
            response_headers=dict(headers),
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as e:  # feedparser's own failures on hostile input
        raise ParseError(f"unreadable feed: {_describe(e)}") from e


def _prepare(
    body: bytes, headers: Mapping[str, str], url: str, max_entries: int
) -> tuple[_Prepared, dict[str, str]]:
    """The repaired bytes and the headers that both XML readers are given."""
    prepared = prepare_body(body, headers.get("content-type", ""), max_entries)
    return prepared, _feedparser_headers(headers, prepared.content_type, url)


def _read_fast(prepared: _Prepared, passed: Mapping[str, str]) -> ParsedFeed | None:
    """The feed as `fastparse` reads it, or None for feedparser to read.

    Repaired bytes go to feedparser, whose warning tells of the repair.
    """
    if prepared.repairs:
        return None
    try:
        result = fastparse.read_feed(prepared.body, passed, _REFERENCE)
        return None if result is None else _parsed_feed(result, passed["content-location"], None)
    except Exception:  # a fault of the fast path must never cost a feed: feedparser reads it
        return None


def _read_with_feedparser(
    body: bytes, url: str, prepared: _Prepared, passed: Mapping[str, str]
) -> ParsedFeed:
    result = _run_feedparser(prepared.body, passed)
    version: str = result.get("version") or ""
    entries = result.get("entries") or []
    bozo_exc = result.get("bozo_exception") if result.get("bozo") else None
    if not version and not entries:
        raise ParseError(_not_a_feed_reason(body, bozo_exc, url))
    notes = (*prepared.repairs, *([_describe(bozo_exc)] if bozo_exc is not None else []))
    try:
        return _parsed_feed(result, passed["content-location"], "; ".join(notes) or None)
    except Exception as e:  # a shape feedparser produced that we did not foresee
        raise ParseError(f"unreadable feed: {_describe(e)}") from e


def _parsed_feed(result: Mapping[str, Any], base: str, warning: str | None) -> ParsedFeed:
    version: str = result.get("version") or ""
    feed = result.get("feed") or {}
    # Atom entries inherit the feed's author; an RSS channel's managingEditor is no author.
    feed_author = _author(feed) if version.startswith("atom") else None
    implicit = _implicit_bases(base)
    return ParsedFeed(
        format=version or "unknown",
        title=_feed_title(feed),
        link=absolute_web_url(_nonempty(feed.get("link")), base),
        entries=tuple(
            _raw_entry(e, base, implicit, feed_author) for e in result.get("entries") or []
        ),
        warning=warning,
        update_hint=update_hint(
            _nonempty(feed.get("ttl")),
            _nonempty(feed.get("sy_updateperiod")),
            _nonempty(feed.get("sy_updatefrequency")),
        ),
    )


def _implicit_bases(location: str) -> frozenset[str]:
    """The bases feedparser reports in a document that states no xml:base.

    It starts from Content-Location and, at every element, joins the base with
    itself, which may rewrite it (a bare "?" or "#" dropped): fastparse declines
    such a URL, but feedparser reads the document with the rewritten base.
    Any other base is an xml:base of the document's. One that names the
    document's own URL cannot be told from none: its entries' bodies resolve
    against their links, as if it were absent.
    """
    bases = {location}
    current = location
    while (joined := _REFERENCE.join_url(current, current)) and joined not in bases:
        bases.add(joined)
        current = joined
    return frozenset(bases)


def _not_a_feed_reason(body: bytes, bozo_exc: object, url: str) -> str:
    if _HTML_PAGE.search(body[:4096]):
        feeds = discovered_feeds(body, url)
        if feeds:
            return f"not a feed: an HTML page that links to the feed {feeds[0]} (use that URL)"
        return "not a feed: an HTML page"
    if not body.strip():
        return "not a feed: empty document"
    if bozo_exc is not None:
        return f"not a feed: {_describe(bozo_exc)}"
    return "not a feed: no RSS, Atom or JSON Feed root element"


def _feed_title(feed: Mapping[str, Any]) -> str | None:
    return text_field(_detail_html(feed, "title"), TITLE_LIMIT) or None


def _detail_html(node: Mapping[str, Any], key: str) -> str | None:
    """`node[key]` as HTML: escaped when the document declared it plain text."""
    value = node.get(key)
    if not isinstance(value, str):
        return None
    detail = node.get(f"{key}_detail") or {}
    if detail.get("type", "text/plain") in HTML_TYPES:
        return value
    return _escaped(value)


def _content_html(entry: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The best content block as HTML (text/html over text/plain), and its xml:base."""
    blocks = [c for c in entry.get("content") or [] if isinstance(c.get("value"), str)]
    if not blocks:
        return None, None
    best = next((c for c in blocks if c.get("type") in HTML_TYPES), blocks[0])
    value: str = best["value"]
    if best.get("type") not in HTML_TYPES:
        value = text_to_html(value)
    return value, _nonempty(best.get("base"))


def _summary_html(entry: Mapping[str, Any]) -> str | None:
    """The summary as HTML, unless it is only feedparser's copy of the content.

    feedparser copies Atom content into a missing summary (and may lose its
    type on the way), so the raw values are compared, not the HTML.
    """
    value = entry.get("summary")
    if not isinstance(value, str) or any(
        value == block.get("value") for block in entry.get("content") or []
    ):
        return None
    detail = entry.get("summary_detail") or {}
    if detail.get("type", "text/html") in HTML_TYPES:
        return value
    return text_to_html(value)


def _parsed_date(entry: Mapping[str, Any], key: str) -> datetime | None:
    """A feedparser `*_parsed` struct_time (UTC) as an aware datetime; None if invalid."""
    # `key in entry` first: for a missing `updated_parsed`, feedparser's
    # lookup falls back to `published_parsed` (with a warning), and we want to
    # know which of the two the document gave.
    if key not in entry or entry[key] is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in entry[key][:6])
        return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _author(node: Mapping[str, Any]) -> str | None:
    detail = node.get("author_detail") or {}
    return _escaped(_nonempty(detail.get("name")) or _nonempty(node.get("author")))


def _tags(entry: Mapping[str, Any]) -> tuple[str, ...]:
    return _unique(
        _escaped((tag.get("term") or tag.get("label") or "").strip()) or ""
        for tag in entry.get("tags") or []
    )


def _unique_enclosures(
    items: Iterable[Any], url_key: str, type_key: str, length_key: str
) -> tuple[Enclosure, ...]:
    """Enclosures from a list of mappings, first of each URL kept, odd items skipped."""
    found: dict[str, Enclosure] = {}
    for item in items:
        if not isinstance(item, Mapping):
            continue
        href = (_nonempty(item.get(url_key)) or "").strip()
        if href and href not in found:
            found[href] = Enclosure(
                url=href,
                type=_nonempty(item.get(type_key)),
                length=_int_or_none(item.get(length_key)),
            )
    return tuple(found.values())


def _enclosures(entry: Mapping[str, Any]) -> tuple[Enclosure, ...]:
    # feedparser lists <enclosure> and <link rel="enclosure"> both in `enclosures`.
    return _unique_enclosures(entry.get("enclosures") or [], "href", "type", "length")


def _media_thumbnails(entry: Mapping[str, Any]) -> tuple[str, ...]:
    return _unique(
        (_nonempty(t.get("url")) or "").strip() for t in entry.get("media_thumbnail") or []
    )


def _is_image_media(media: Mapping[str, Any]) -> bool:
    return media.get("medium") == "image" or str(media.get("type") or "").startswith("image/")


def _media_images(entry: Mapping[str, Any]) -> tuple[str, ...]:
    return _unique(
        (_nonempty(m.get("url")) or "").strip()
        for m in entry.get("media_content") or []
        if _is_image_media(m)
    )


def _itunes_image(entry: Mapping[str, Any]) -> str | None:
    image = entry.get("image")
    if not isinstance(image, Mapping):
        return None
    return _nonempty(image.get("href"))


def _raw_entry(
    entry: Mapping[str, Any],
    document_base: str,
    implicit_bases: frozenset[str],
    feed_author: str | None,
) -> RawEntry:
    """One entry; its base is its body's (feedparser gives each block the base in effect).

    `implicit_bases` are the bases feedparser gives where no xml:base is
    stated (`_implicit_bases`), so that any other is known to be explicit.
    """
    content, content_base = _content_html(entry)
    summary = _summary_html(entry)
    summary_base = _nonempty((entry.get("summary_detail") or {}).get("base"))
    base = content_base or summary_base or document_base or None
    return RawEntry(
        guid=_nonempty(entry.get("id")),
        title=_detail_html(entry, "title"),
        link=_nonempty(entry.get("link")),
        base=base,
        explicit_base=base is not None and base not in implicit_bases,
        author=_author(entry) or feed_author,
        published=_parsed_date(entry, "published_parsed"),
        updated=_parsed_date(entry, "updated_parsed"),
        summary_html=summary if summary != content else None,
        content_html=content,
        tags=_tags(entry),
        enclosures=_enclosures(entry),
        media_thumbnails=_media_thumbnails(entry),
        media_images=_media_images(entry),
        itunes_image=_itunes_image(entry),
    )


# --------------------------------------------------------------------------- JSON Feed


def parse_json_feed(body: bytes, url: str) -> ParsedFeed:
    """Read a JSON Feed 1.0 or 1.1 document (https://www.jsonfeed.org/version/1.1/).

    Fields of the wrong type are ignored (numbers taken as text), items that
    are not objects skipped; only a missing `version` or `items` fails the feed.
    As with XML, bytes that are not UTF-8 are replaced rather than losing the feed.
    """
    text = body.strip().removeprefix(_UTF8_BOM)
    try:
        decoded, warning = text.decode("utf-8"), None
    except UnicodeDecodeError:
        decoded, warning = text.decode("utf-8", errors="replace"), "bytes invalid in utf-8 replaced"
    try:
        document = json.loads(decoded)
    except (ValueError, RecursionError) as e:
        raise ParseError(f"not a feed: invalid JSON ({_describe(e)})") from e
    if not isinstance(document, dict):
        raise ParseError("not a feed: JSON that is not an object")
    version = document.get("version")
    items = document.get("items")
    if not isinstance(version, str) or not version.startswith(JSON_FEED_VERSION_PREFIX):
        raise ParseError("not a feed: JSON without a JSON Feed `version`")
    if not isinstance(items, list):
        raise ParseError("not a feed: JSON Feed without an `items` list")
    feed_author = _json_author(document)
    return ParsedFeed(
        format="json11" if version.rstrip("/").endswith("1.1") else "json10",
        title=text_field(_escaped(_json_text(document.get("title"))), TITLE_LIMIT) or None,
        link=absolute_web_url(_nonempty(document.get("home_page_url")), url),
        entries=tuple(
            _json_entry(item, url, feed_author) for item in items if isinstance(item, dict)
        ),
        warning=warning,
    )


def _json_text(value: object) -> str | None:
    """A string, or a number as text (1.0 allowed numeric ids; feeds do worse)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    return _nonempty(value)


def _json_date(value: object) -> datetime | None:
    """An RFC 3339 date as aware UTC; a date without offset is taken as UTC."""
    text = _nonempty(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.strip().upper())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _json_author_names(node: Mapping[str, Any]) -> Iterator[str]:
    authors = node.get("authors")  # 1.1
    if not isinstance(authors, list):
        authors = [node.get("author")]  # 1.0
    for author in authors:
        if isinstance(author, dict) and (name := _json_text(author.get("name"))):
            yield name.strip()


def _json_author(node: Mapping[str, Any]) -> str | None:
    """Every author's name, joined; item authors default to the feed's (both versions)."""
    return _escaped(", ".join(_unique(_json_author_names(node))) or None)


def _json_content(item: Mapping[str, Any]) -> str | None:
    if content := _json_text(item.get("content_html")):
        return content
    if text := _json_text(item.get("content_text")):
        return text_to_html(text)
    return None


def _json_tags(item: Mapping[str, Any]) -> tuple[str, ...]:
    tags = item.get("tags")
    if not isinstance(tags, list):
        return ()
    return _unique(_escaped(text.strip()) or "" for t in tags if (text := _json_text(t)))


def _json_enclosures(item: Mapping[str, Any]) -> tuple[Enclosure, ...]:
    attachments = item.get("attachments")
    if not isinstance(attachments, list):
        return ()
    return _unique_enclosures(attachments, "url", "mime_type", "size_in_bytes")


def _json_entry(item: Mapping[str, Any], url: str, feed_author: str | None) -> RawEntry:
    """One item. JSON Feed has no xml:base, so its HTML resolves as that of an RSS
    item without one: against the item's page, else the document's URL."""
    content = _json_content(item)
    summary = _escaped(_json_text(item.get("summary")))
    images = (_nonempty(item.get("image")), _nonempty(item.get("banner_image")))
    return RawEntry(
        guid=_json_text(item.get("id")),
        title=_escaped(_json_text(item.get("title"))),
        link=_nonempty(item.get("url")) or _nonempty(item.get("external_url")),
        base=url,
        author=_json_author(item) or feed_author,
        published=_json_date(item.get("date_published")),
        updated=_json_date(item.get("date_modified")),
        summary_html=summary if summary != content else None,
        content_html=content,
        tags=_json_tags(item),
        enclosures=_json_enclosures(item),
        media_images=_unique(i.strip() for i in images if i),
    )
