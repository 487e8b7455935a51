"""`RawEntry` -> `EntryData`: sanitising, absolute URLs, dates, ids, thumbnails.

Pure: no clock, no network, no disk; `fetched_at` comes in as an argument.
The only module importing nh3. Everything a feed says is untrusted: its HTML
is cut down to an allow-list, its URLs must end up absolute http(s), and its
dates may not lie in the future.
"""

from __future__ import annotations

import hashlib
import html
import html.entities
import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache, partial
from urllib.parse import urljoin, urlsplit

import nh3

from aggregator.models import Enclosure, EntryData, FetchLimits, RawEntry

# --------------------------------------------------------------------------- allow-lists

ALLOWED_TAGS = frozenset(
    {
        # text and inline formatting
        "p", "br", "hr", "div", "span", "address", "center",
        "h1", "h2", "h3", "h4", "h5", "h6",
        "b", "i", "u", "s", "em", "strong", "small", "big", "mark", "strike",
        "sub", "sup", "del", "ins", "abbr", "acronym", "cite", "q", "dfn", "time",
        "code", "kbd", "samp", "var", "tt", "pre", "blockquote",
        "ruby", "rb", "rp", "rt", "wbr", "details", "summary",
        # lists and tables
        "ul", "ol", "li", "dl", "dt", "dd",
        "table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td", "col", "colgroup",
        # media and links
        "a", "img", "figure", "figcaption", "picture", "source", "audio", "video",
    }
)  # fmt: skip

# Removed together with everything inside them. The raw-text elements are here
# because the HTML parser would otherwise turn their markup into visible text.
CLEAN_CONTENT_TAGS = frozenset(
    {
        "script", "style", "noscript", "template", "iframe", "frame", "frameset",
        "object", "applet", "noembed", "noframes", "xmp", "plaintext", "textarea",
        "title", "select", "button", "svg", "math", "head",
    }
)  # fmt: skip

# Elements a title's doubly escaped markup is made of (`_escaped_twice`).
_KNOWN_ELEMENTS = (
    ALLOWED_TAGS
    | CLEAN_CONTENT_TAGS
    | {"font", "section", "article", "header", "footer", "nav", "aside", "main"}
)

_ALIGNABLE = ("p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tr", "td", "th", "img")
_SIZED = ("img", "video", "table", "td", "th", "col")

ALLOWED_ATTRIBUTES: dict[str, frozenset[str]] = {
    "*": frozenset({"title", "lang", "dir"}),
    "a": frozenset({"href"}),
    "img": frozenset({"src", "srcset", "sizes", "alt"}),
    "source": frozenset({"src", "srcset", "sizes", "type", "media"}),
    "video": frozenset({"src", "poster"}),
    "audio": frozenset({"src"}),
    "td": frozenset({"colspan", "rowspan"}),
    "th": frozenset({"colspan", "rowspan", "scope"}),
    "col": frozenset({"span"}),
    "colgroup": frozenset({"span"}),
    "ol": frozenset({"start", "reversed", "type"}),
    "li": frozenset({"value"}),
    "blockquote": frozenset({"cite"}),
    "q": frozenset({"cite"}),
    "del": frozenset({"cite", "datetime"}),
    "ins": frozenset({"cite", "datetime"}),
    "time": frozenset({"datetime"}),
}
for _tag in _ALIGNABLE:
    ALLOWED_ATTRIBUTES[_tag] = ALLOWED_ATTRIBUTES.get(_tag, frozenset()) | {"align"}
for _tag in _SIZED:
    ALLOWED_ATTRIBUTES[_tag] = ALLOWED_ATTRIBUTES.get(_tag, frozenset()) | {"width", "height"}

# Images load without telling the source who is reading (many hosts, Chinese
# news sites especially, refuse hot-linked images that send a Referer) and only
# when scrolled to. Players get controls (nothing autoplays) and fetch nothing
# until asked.
SET_ATTRIBUTES = {
    "img": {"referrerpolicy": "no-referrer", "loading": "lazy"},
    "video": {"controls": "controls", "preload": "none"},
    "audio": {"controls": "controls", "preload": "none"},
}
LINK_REL = "noopener noreferrer"

URL_SCHEMES = frozenset({"http", "https", "mailto"})
WEB_SCHEMES = frozenset({"http", "https"})
URL_ATTRIBUTES = frozenset({"href", "src", "poster", "cite"})

UNTITLED = "(untitled)"
TITLE_FALLBACK_LENGTH = 80
# A title or author name longer than this is a broken or hostile feed, not prose.
_DEFAULT_LIMITS = FetchLimits()
#: Defaults of `site.fetch.max_title_chars` and `max_url_chars`.
TITLE_LIMIT = _DEFAULT_LIMITS.max_title_chars
URL_LIMIT = _DEFAULT_LIMITS.max_url_chars
AUTHOR_LIMIT = 200
TAG_LIMIT = 100
ELLIPSIS = "…"
# Dates at or before the Unix epoch are placeholders ("0", "0001-01-01"), not dates.
EARLIEST_DATE = datetime(1970, 1, 1, tzinfo=UTC)

_BLOCK_TAG = re.compile(
    r"<(?=/?(?:p|br|hr|div|li|dt|dd|tr|td|th|h[1-6]|blockquote|pre|table|ul|ol|dl|"
    r"figure|figcaption|section|article|header|footer|caption)[\s/>])",
    re.IGNORECASE,
)
_WHITESPACE = re.compile(r"\s+")
# Layout whitespace: any run of two or more, or one that is neither a space nor a
# no-break space. A lone no-break space is meant ("Café\xa0au lait"); matching
# only what changes keeps every word's space out of the substitution.
_LAYOUT_SPACE = re.compile(r"\s\s+|[^\S \xa0]")
# Characters XML 1.0 forbids (and lone surrogates, which JSON escapes can make):
# they would break every feed we publish and cannot be encoded for nh3.
_INVALID_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_TAG = re.compile(r"<[^>]*>")
_SET_TAG = re.compile(r'<(img|video|audio)\b((?:[^>"]|"[^"]*")*)>')
_SET_ATTRIBUTE = re.compile(r'\s([a-z-]+)="[^"]*"')
_MEDIA_TAG = re.compile(r"<(?:img|video|audio|source)\b")
_IMG_TAG = re.compile(r"<img\b[^>]*>")
_IMG_ATTRIBUTE = re.compile(r'\s(src|width|height)="([^"]*)"')
_TRACKING_PIXEL_SIZES = frozenset({"0", "1", "0px", "1px"})
# Most URLs in feeds are already absolute http(s), spelled so that urljoin would
# return them as they are: lower-case scheme, a host, printable ASCII, no path
# parameters (;) or brackets, and no empty query or fragment. Those skip urljoin,
# a fifth of the time cleaning an entry took; tests/test_clean.py checks both
# ways agree.
_PLAIN_WEB_URL = re.compile(
    r"https?://[!\"$-.0-:<->@-Z\\^-~][!\"$-:<->@-Z\\^-~]*"
    r"(?:\?[!\"$-~]+)?(?:#[!-~]+)?\Z"
)
# Text that still holds a closing tag or an entity after one pass may have been
# escaped twice; what it holds decides (`_escaped_twice`).
_MARKUP_LIKE = re.compile(r"</[a-zA-Z]|&#?\w+;")
# A tag with attributes is markup, never a title naming an element: removed,
# since some readers show RSS titles as HTML.
_TAG_WITH_ATTRIBUTES = re.compile(r"<[a-zA-Z][a-zA-Z0-9]*\s[^<>]*=[^<>]*>")
_TAG_NAME = re.compile(r"</?([a-zA-Z][a-zA-Z0-9]*)")
_ENTITY = re.compile(r"&(#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);")

# The HTML parser under nh3 takes time quadratic in nesting depth (8 s for
# 50,000 nested <div>s), so deeper HTML is flattened to its text first. Only
# fragments with this many tags can be that deep, so only they are measured.
MAX_DEPTH = 512
DEPTH_CHECK_TAGS = 2000
# Elements that do not nest: void ones, and ones the parser closes implicitly.
_NON_NESTING = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option",
        "optgroup", "thead", "tbody", "tfoot", "colgroup", "rb", "rt", "rp",
    }
)  # fmt: skip
_ANY_TAG = re.compile(r"<(/?)([a-zA-Z][^\s/>]*)[^>]*?(/?)>")
_SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
# Strips every tag for plain_text; built once, as building costs more than cleaning a title.
_TEXT_CLEANER = nh3.Cleaner(
    tags=set(), clean_content_tags=CLEAN_CONTENT_TAGS, attributes={}, link_rel=None
)


# --------------------------------------------------------------------------- entry

#: See `cleaning_rules`. 2: bodies without an xml:base resolve against the entry's link.
#: 3: titles, authors and tags that name an element ("the <dialog> element") keep it.
CLEANING_REVISION = 3


def normalise_entry(
    raw: RawEntry,
    fetched_at: datetime,
    limits: FetchLimits = _DEFAULT_LIMITS,
    fingerprint: str | None = None,
) -> EntryData | None:
    """Clean one entry; None when nothing at all identifies it.

    `limits` gives the longest title and URL kept (`site.fetch`);
    `fingerprint`, the raw entry's, is carried along for storage.
    """
    fetched_at = as_utc(fetched_at)
    max_url = limits.max_url_chars
    link = absolute_web_url(raw.link, raw.base, max_url)
    base = raw.base or link
    html_base = body_base(raw, link)
    content = sanitise_html(raw.content_html, html_base, max_url)
    summary = sanitise_html(raw.summary_html, html_base, max_url)
    if summary == content:
        summary = None
    guid = xml_text(raw.guid or "").strip()
    stated_title = text_field(raw.title, limits.max_title_chars)
    if not (guid or link or stated_title or content or summary):
        return None
    title = stated_title or plain_text(content or summary, TITLE_FALLBACK_LENGTH) or UNTITLED
    published, published_known = published_date(raw, fetched_at)
    enclosures = clean_enclosures(raw.enclosures, base, max_url)
    return EntryData(
        entry_id=entry_id(guid, link, title, raw),
        title=title,
        link=link,
        author=text_field(raw.author, AUTHOR_LIMIT) or None,
        published=published,
        updated=clamp(plausible(raw.updated), fetched_at),
        summary=summary,
        content=content,
        tags=clean_tags(raw.tags),
        enclosures=enclosures,
        thumbnail=choose_thumbnail(raw, enclosures, content, summary, base, max_url),
        published_known=published_known,
        raw_body=raw_body(raw, content, summary),
        fingerprint=fingerprint,
    )


def body_base(raw: RawEntry, link: str | None) -> str | None:
    """What relative URLs in the entry's HTML resolve against, `link` being its absolute link.

    An xml:base the document states wins, as XML Base says. Without one, the
    entry's page: the body was written for it, and a browser showing it there
    (and Miniflux, and most readers) resolves `images/a.jpg` against the page,
    not against the feed's URL, which is the base only of the feed's own
    elements (the link itself, enclosures, media URLs). The document's URL is
    left for an entry without a usable link.
    """
    if raw.explicit_base:
        return raw.base
    return link or raw.base


def cleaning_rules(limits: FetchLimits) -> str:
    """Names the rules `normalise_entry` applies, for `identity.entry_fingerprint`.

    Bump CLEANING_REVISION when a change to this module should clean stored
    entries again on their next poll, and `identity.READING_REVISION` with it,
    or only the entries of documents that change are cleaned again.
    """
    return f"{CLEANING_REVISION}/{limits.max_title_chars}/{limits.max_url_chars}"


def raw_body(raw: RawEntry, content: str | None, summary: str | None) -> str | None:
    """The document's own HTML of the block the sanitised body came from.

    Only what no database or file can hold (NUL, lone surrogates) is dropped.
    """
    if content is not None:
        chosen = raw.content_html
    elif summary is not None:
        chosen = raw.summary_html
    else:
        chosen = raw.content_html or raw.summary_html
    return storable_text(chosen) if chosen is not None else None


def storable_text(text: str) -> str:
    """`text` without NUL and lone surrogates, which no database or file can hold."""
    return encodable(text).replace("\x00", "")


def entry_id(guid: str, link: str | None, title: str, raw: RawEntry) -> str:
    """The guid, else the link, else a hash of what stays put between polls.

    The hash takes the stated date, never the fetch time, so an entry without
    guid or link keeps its id from one poll to the next.
    """
    if guid:
        return guid
    if link:
        return link
    stated = plausible(raw.published) or plausible(raw.updated)
    key = title + "\x1f" + (as_utc(stated).isoformat() if stated else "")
    return "sha1:" + hashlib.sha1(key.encode("utf-8")).hexdigest()


def xml_text(text: str) -> str:
    """`text` without the characters no XML document (nor nh3) accepts."""
    return _INVALID_CHARACTERS.sub("", text)


def encodable(text: str) -> str:
    """`text` without lone surrogates (JSON escapes can make them): nh3 cannot be given them."""
    try:
        text.encode("utf-8")  # the quick test: only a lone surrogate fails it
    except UnicodeEncodeError:
        return _SURROGATES.sub("", text)
    return text


# --------------------------------------------------------------------------- dates


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def plausible(moment: datetime | None) -> datetime | None:
    """`moment` in UTC, unless it is a placeholder from before the epoch."""
    if moment is None:
        return None
    try:
        moment = as_utc(moment)
    except OverflowError:  # year 1 or 9999 with an offset
        return None
    return moment if moment > EARLIEST_DATE else None


def clamp(moment: datetime | None, fetched_at: datetime) -> datetime | None:
    """No entry was written after we fetched it: future dates become the fetch time."""
    if moment is None:
        return None
    return min(as_utc(moment), fetched_at)


def published_date(raw: RawEntry, fetched_at: datetime) -> tuple[datetime, bool]:
    """Published, else updated, else the fetch time (flagged as not known)."""
    stated = clamp(plausible(raw.published) or plausible(raw.updated), fetched_at)
    if stated is None:
        return fetched_at, False
    return stated, True


# --------------------------------------------------------------------------- URLs


def absolute_url(
    url: str | None, base: str | None, schemes: frozenset[str], max_url: int = URL_LIMIT
) -> str | None:
    """`url` resolved against `base`, if the result has one of `schemes`.

    A URL longer than `max_url` is dropped whole: cut short it would be
    another address.
    """
    if url is None or not url.strip() or len(url) > max_url:
        return None
    stated = url.strip()
    if _PLAIN_WEB_URL.match(stated):  # what urljoin would hand back unchanged
        return stated if stated[: stated.index(":")] in schemes else None
    return _joined_url(url, base, schemes, max_url)


def _joined_url(url: str, base: str | None, schemes: frozenset[str], max_url: int) -> str | None:
    """`absolute_url` the long way, through urljoin: relative URLs and odd spellings."""
    try:
        resolved = urljoin(xml_text(base or ""), xml_text(url).strip())
        scheme = urlsplit(resolved).scheme.lower()
    except ValueError:
        return None
    return resolved if scheme in schemes and len(resolved) <= max_url else None


def absolute_web_url(url: str | None, base: str | None, max_url: int = URL_LIMIT) -> str | None:
    """Absolute http(s) only: javascript:, data: and relative leftovers are dropped."""
    return absolute_url(url, base, WEB_SCHEMES, max_url)


def resolve_srcset(srcset: str, base: str | None, max_url: int = URL_LIMIT) -> str | None:
    """Each candidate's URL made absolute http(s); candidates that fail are dropped."""
    candidates = []
    for candidate in srcset.split(","):
        url, _, descriptor = candidate.strip().partition(" ")
        resolved = absolute_web_url(url, base, max_url)
        if resolved is not None:
            candidates.append(f"{resolved} {descriptor.strip()}".strip())
    return ", ".join(candidates) or None


def resolve_attribute(
    base: str | None, max_url: int, tag: str, attribute: str, value: str
) -> str | None:
    """nh3 attribute filter: URLs in attributes become absolute, or go."""
    if attribute == "srcset":
        return resolve_srcset(value, base, max_url)
    if attribute in URL_ATTRIBUTES:
        schemes = URL_SCHEMES if attribute == "href" else WEB_SCHEMES
        return absolute_url(value, base, schemes, max_url)
    return value


# --------------------------------------------------------------------------- HTML


# The base URL of the HTML being sanitised, for the attribute filter: passed
# so rather than bound into each cleaner, one cleaner serves every base, and
# bodies mostly resolve against their own entry's link, a base per entry.
_HTML_BASE: ContextVar[str | None] = ContextVar("html_base", default=None)


def sanitise_html(fragment: str | None, base: str | None, max_url: int = URL_LIMIT) -> str | None:
    """Allow-listed HTML with absolute URLs; None when nothing visible is left."""
    if fragment is None or not fragment.strip():
        return None
    token = _HTML_BASE.set(base)
    try:
        cleaned = html_cleaner(max_url).clean(shallow(encodable(fragment))).strip()
    finally:
        _HTML_BASE.reset(token)
    # After the parser: it turns references such as &#1; into the characters.
    cleaned = xml_text(_SET_TAG.sub(_ordered_set_attributes, cleaned))
    return None if is_blank(cleaned) else cleaned


def _ordered_set_attributes(tag: re.Match[str]) -> str:
    """The attributes nh3 adds, always in one order.

    nh3 keeps them in a hash map, so each cleaner writes them in its own
    order; the same entry would then hash differently from one poll to the
    next and count as edited.
    """
    name, attributes = tag[1], tag[2]
    added = SET_ATTRIBUTES[name.lower()]
    kept = _SET_ATTRIBUTE.sub(lambda a: "" if a[1] in added else a[0], attributes)
    return f"<{name}{kept}" + "".join(f' {k}="{v}"' for k, v in added.items()) + ">"


def _resolve_attribute_here(max_url: int, tag: str, attribute: str, value: str) -> str | None:
    """`resolve_attribute` against the base of the running `sanitise_html`."""
    return resolve_attribute(_HTML_BASE.get(), max_url, tag, attribute, value)


@lru_cache(maxsize=8)
def html_cleaner(max_url: int = URL_LIMIT) -> nh3.Cleaner:
    """One sanitiser per URL limit: building one costs more than most entries' cleaning.

    The base URL is not bound in (`_HTML_BASE`): a cleaner per base was built
    for nearly every entry once bodies resolved against their own links
    (40 µs, half again the cleaning), and each holds some 26 KB of nh3's memory.
    """
    return nh3.Cleaner(
        tags=ALLOWED_TAGS,
        clean_content_tags=CLEAN_CONTENT_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=partial(_resolve_attribute_here, max_url),
        link_rel=LINK_REL,
        set_tag_attribute_values=SET_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
    )


def is_blank(cleaned: str) -> bool:
    """No text and no media: `<p> </p>` shows nothing, so it is no content.

    Only for sanitised HTML, where `>` inside attribute values is escaped and a
    regex is enough to drop the tags.
    """
    if _MEDIA_TAG.search(cleaned):
        return False
    return not html.unescape(_TAG.sub("", cleaned)).strip()


def plain_text(fragment: str | None, limit: int | None = None) -> str:
    """HTML as one line of readable text, cut to `limit` characters with "…"."""
    if not fragment:
        return ""
    # Without a tag or a reference the parser would hand the text back as it is.
    marked = "<" in fragment or "&" in fragment
    unmarked = _parsed_text(fragment) if marked else xml_text(fragment)
    text = _LAYOUT_SPACE.sub(" ", unmarked).strip()
    return shorten(text, limit) if limit is not None else text


def _parsed_text(fragment: str) -> str:
    """The text of an HTML fragment, tags and references read by the HTML parser."""
    spaced = _BLOCK_TAG.sub(" <", shallow(encodable(fragment)))
    return xml_text(html.unescape(_TEXT_CLEANER.clean(spaced)))


#: Characters of text a digest card shows under a title.
EXCERPT_CHARS = 200


def excerpt(summary: str | None, content: str | None) -> str:
    """The plain text a digest card shows under a title: the summary's, else the content's."""
    return excerpt_text(summary or content, EXCERPT_CHARS)


def excerpt_text(fragment: str | None, limit: int) -> str:
    """`plain_text(fragment, limit)` of a sanitised fragment, reading only what it needs.

    Sanitised HTML is simple enough to read without the HTML parser: a `<`
    only ever opens a tag and a `>` only ever ends one (text and attribute
    values have them escaped), and no comment, script or style is left. So
    its tags are dropped by a regex, and a long body is read only as far as
    the excerpt needs: the text of a leading part, cut just after a `>`, is
    the start of the whole text, and once it is longer than `limit` the cut
    ends where the whole text's would.
    """
    if not fragment:
        return ""
    window = limit * 3
    while len(fragment) > window:
        cut = fragment.rfind(">", 0, window) + 1
        if cut:
            text = sanitised_text(fragment[:cut])
            if len(text) > limit + 1:
                return shorten(text, limit)
        window *= 4
    return shorten(sanitised_text(fragment), limit)


def sanitised_text(fragment: str) -> str:
    """`plain_text` of HTML that `sanitise_html` wrote, at a fraction of the cost.

    Bodies stored before characters XML forbids were removed after parsing
    may still hold some: they are removed here too.
    """
    spaced = _BLOCK_TAG.sub(" <", fragment)
    return _LAYOUT_SPACE.sub(" ", xml_text(html.unescape(_TAG.sub("", spaced)))).strip()


def text_field(fragment: str | None, limit: int) -> str:
    """Plain text for a title, author or tag: markup removed even where it was escaped.

    Feeds escape twice often enough ("&amp;#8217;", "&lt;b&gt;") that text
    which still holds markup after one pass is read as HTML once more; but
    "1 < 2", "a<b" and "the <dialog> element" are what titles about code
    mean to say, so only `_escaped_twice` text is.
    """
    text = plain_text(fragment)
    if (_MARKUP_LIKE.search(text) and _escaped_twice(text)) or _TAG_WITH_ATTRIBUTES.search(text):
        text = plain_text(text)
    return shorten(text, limit)


def _escaped_twice(text: str) -> bool:
    """Whether once-unescaped `text` reads as HTML: feedparser's test for RSS text.

    It needs a closing tag or an entity, every tag an HTML element we know and
    every entity a real one, so a title that names an element keeps it.
    """
    if any(n.lower() not in _KNOWN_ELEMENTS for n in _TAG_NAME.findall(text)):
        return False
    return all(
        name.startswith("#") or f"{name};" in html.entities.html5 for name in _ENTITY.findall(text)
    )


def shallow(fragment: str) -> str:
    """`fragment`, or its text in one escaped paragraph when nested too deep to parse."""
    if fragment.count("<") < DEPTH_CHECK_TAGS or not too_deep(fragment):
        return fragment
    text = html.unescape(_ANY_TAG.sub(" ", _SCRIPT_OR_STYLE.sub(" ", fragment)))
    return "<p>" + html.escape(_WHITESPACE.sub(" ", text).strip()) + "</p>"


def too_deep(fragment: str) -> bool:
    depth = 0
    for tag in _ANY_TAG.finditer(fragment):
        closing, name, self_closing = tag.groups()
        if closing:
            depth = max(depth - 1, 0)
        elif not self_closing and name.lower() not in _NON_NESTING:
            depth += 1
            if depth > MAX_DEPTH:
                return True
    return False


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary when one is near."""
    if len(text) <= limit:
        return text
    keep = max(limit - len(ELLIPSIS), 0)
    cut = text[:keep]
    space = cut.rfind(" ")
    if not text[keep].isspace() and space > keep // 2:
        cut = cut[:space]  # back to the end of the last whole word
    return cut.rstrip(" ,;:.-–—") + ELLIPSIS


# --------------------------------------------------------------------------- tags, enclosures


def clean_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Plain text, in order, each once (case-insensitively), none empty."""
    seen: dict[str, str] = {}
    for tag in tags:
        text = text_field(tag, TAG_LIMIT)
        if text and text.casefold() not in seen:
            seen[text.casefold()] = text
    return tuple(seen.values())


def clean_enclosures(
    enclosures: Iterable[Enclosure], base: str | None, max_url: int = URL_LIMIT
) -> tuple[Enclosure, ...]:
    """Absolute http(s) URLs, each once."""
    found: dict[str, Enclosure] = {}
    for enclosure in enclosures:
        url = absolute_web_url(enclosure.url, base, max_url)
        if url is None or url in found:
            continue
        media_type = (enclosure.type or "").strip().lower() or None
        length = enclosure.length if (enclosure.length or 0) >= 0 else None
        found[url] = Enclosure(url=url, type=media_type, length=length)
    return tuple(found.values())


# --------------------------------------------------------------------------- thumbnail


def choose_thumbnail(
    raw: RawEntry,
    enclosures: tuple[Enclosure, ...],
    content: str | None,
    summary: str | None,
    base: str | None,
    max_url: int = URL_LIMIT,
) -> str | None:
    """The first usable image of, in order: media:thumbnail, media:content images,
    image enclosures, itunes:image, the content's first <img>, the summary's."""
    candidates = thumbnail_candidates(raw, enclosures, content, summary, base, max_url)
    return next((url for url in candidates if url), None)


def thumbnail_candidates(
    raw: RawEntry,
    enclosures: tuple[Enclosure, ...],
    content: str | None,
    summary: str | None,
    base: str | None,
    max_url: int = URL_LIMIT,
) -> Iterator[str | None]:
    """Candidates lazily, so the HTML is only searched when the feed names no image."""
    for url in raw.media_thumbnails:
        yield absolute_web_url(url, base, max_url)
    for url in raw.media_images:
        yield absolute_web_url(url, base, max_url)
    for enclosure in enclosures:
        if (enclosure.type or "").startswith("image/"):
            yield enclosure.url
    yield absolute_web_url(raw.itunes_image, base, max_url)
    yield first_image(content)
    yield first_image(summary)


def first_image(cleaned: str | None) -> str | None:
    """The src of the first real <img> of sanitised HTML (tracking pixels skipped).

    Sanitised HTML has double-quoted attributes and absolute http(s) src
    values, so a regex reads it reliably.
    """
    if not cleaned:
        return None
    for tag in _IMG_TAG.finditer(cleaned):
        attributes = dict(_IMG_ATTRIBUTE.findall(tag.group()))
        sizes = {attributes.get("width", ""), attributes.get("height", "")}
        if "src" in attributes and not sizes & _TRACKING_PIXEL_SIZES:
            return html.unescape(attributes["src"])
    return None
