"""Plain RSS 2.0 and Atom 1.0 read with lxml exactly as feedparser reads them. lxml's only importer.

feedparser takes most of the ingest time (about 1,500 entries/s on the
benchmark corpus, where libxml2 reads the same bytes at over 60,000). This
reader answers for the documents it can read *exactly* as feedparser does and
declines (None) everything else, which `parse` then hands to feedparser as
before; feedparser stays the reference, and tests/test_fastparse.py holds the
two to equality over feedparser's own test corpus.

How it stays exact: it replays feedparser's element handlers (its mixin's
`_start_*`/`_end_*` methods and `pop`), in document order, for the elements in
`_HANDLERS`, and returns feedparser's result shape restricted to the keys that
`parse` reads, so that one mapping (`parse._parsed_feed`) serves both paths.
What it borrows from feedparser to decide alike (the date parser, the HTML
sniffer, URL joining, the namespace table) comes in through `Reference`, since
only `parse` imports feedparser.

It declines, rather than reproduce:
- anything but an `<rss version="2.0">` or Atom 1.0 root; RSS 1.0/0.90 namespaces;
- media types feedparser flags as not XML; an HTTP charset that names another
  encoding than the XML declaration; UTF-16/32 and other BOMs; bytes the
  chosen encoding cannot decode (feedparser would guess and warn);
- XML 1.1; a DOCTYPE (feedparser rewrites entity declarations); any libxml2
  error or warning; non-ASCII element or attribute names (expat and libxml2
  follow different editions of the XML name rules);
- a namespace prefix bound to two namespaces, or a namespace under two
  prefixes (feedparser's naming would then depend on the order of things),
  and prefixed attributes other than `xml:lang` (feedparser files them under
  two names);
- `xml:base` or a `base` attribute, and a base URL feedparser would rewrite;
- markup inside text elements (feedparser re-serialises it), content types
  other than text and HTML, `src`/`mode` on content, base64;
- elements feedparser handles in ways not replayed here (`source`,
  `textInput`, GeoRSS, …), and plain elements whose name would clobber one of
  feedparser's own keys.
The byte repairs of `parse.prepare_body` happen before this reader is asked:
`parse` only asks when there were none, so both paths see the same bytes.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

#: feedparser's result shape: {"version", "feed", "entries"}, holding only what `parse` reads.
FeedResult = dict[str, Any]


@dataclass(frozen=True)
class Reference:
    """What this reader borrows from feedparser so that both paths decide alike.

    `parse`, the only module importing feedparser, fills it in.
    """

    parse_date: Callable[[str], Any]  # a date as written → UTC 9-tuple, or None
    looks_like_html: Callable[[str], bool]  # whether "plain" RSS text is HTML after all
    join_url: Callable[[str, str], str]  # (base, reference) → absolute URL
    cp1252: Mapping[int, str]  # C1 controls → the characters windows-1252 meant
    prefixes: Mapping[str, str]  # namespace URI, lower case → feedparser's prefix
    special_elements: frozenset[str]  # element keys feedparser has its own handlers for


class _Decline(Exception):
    """The document holds something whose feedparser treatment is not replayed here."""


# --------------------------------------------------------------------------- bytes → XML

_UTF8_BOM = codecs.BOM_UTF8
_OTHER_MARKS = (b"\xfe\xff", b"\xff\xfe", b"\x4c\x6f\xa7\x94")  # UTF-16/32 BOMs, EBCDIC '<?xm'
# feedparser.encodings: the XML declaration's encoding as it reads it (first line only).
_XML_PI_ENCODING = re.compile(rb"^<\?.*encoding=['\"](.*?)['\"].*\?>")
_XML_DECLARATION = re.compile(rb"^<\?xml[^>]*?>")
_XML_VERSION_1_0 = re.compile(rb"^<\?xml\s+version\s*=\s*(['\"])1\.0\1")
_APPLICATION_XML = (
    "application/xml",
    "application/xml-dtd",
    "application/xml-external-parsed-entity",
)
_TEXT_XML = ("text/xml", "text/xml-external-parsed-entity")


def _codec(name: str) -> str | None:
    """The codec feedparser decodes with for an encoding name (GB2312 as its superset)."""
    try:
        return codecs.lookup("gb18030" if name.lower() == "gb2312" else name).name
    except LookupError:
        return None


def _content_type(value: str) -> tuple[str, str]:
    """feedparser's reading of a Content-Type: media type (case kept) and charset."""
    chunks = value.split(";")
    charset = ""
    for chunk in chunks[1:]:
        key, _, parameter = chunk.partition("=")
        if key.strip().lower() == "charset":
            charset = parameter.strip().strip("\"'")
    return chunks[0].strip(), charset


def _xml_bytes(body: bytes, content_type: str) -> bytes | None:
    """The document as UTF-8 with the characters feedparser decodes; None if in any doubt.

    feedparser picks the encoding by RFC 3023 (HTTP charset first for
    application/*, only the charset for text/*), decodes with Python's codec
    and hands expat UTF-8; libxml2 then gets those very characters.
    """
    data = body.removeprefix(_UTF8_BOM)
    if b"\x00" in data[:4] or data.startswith(_OTHER_MARKS):
        return None
    declared = ""
    if match := _XML_PI_ENCODING.match(data):
        try:
            declared = match[1].decode("utf-8").lower()
        except UnicodeDecodeError:  # feedparser itself raises on this
            return None
    if data.startswith(b"<?xml") and not _XML_VERSION_1_0.match(data):
        return None  # feedparser hands expat "1.0" whatever the document said
    media_type, charset = _content_type(content_type)
    if media_type in _APPLICATION_XML or (
        media_type.startswith("application/") and media_type.endswith("+xml")
    ):
        encoding = charset or declared or "utf-8"
    elif media_type in _TEXT_XML or (
        media_type.startswith("text/") and media_type.endswith("+xml")
    ):
        encoding = charset or "us-ascii"
    else:
        return None  # feedparser warns that this is no XML media type
    codec = _codec(encoding)
    if codec is None or (body.startswith(_UTF8_BOM) and codec != "utf-8"):
        return None
    if declared and _codec(declared) != codec and not (data.isascii() and codec == "ascii"):
        return None  # HTTP and the document disagree
    if codec == "utf-8":
        return data  # libxml2 rejects every byte sequence Python's codec rejects
    if codec == "ascii":
        return data if data.isascii() else None
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return None  # feedparser would guess another encoding and warn
    return _XML_DECLARATION.sub(b"", text.encode("utf-8"), count=1)


def _parse_xml(data: bytes) -> Any:
    """The root element, or None where libxml2 and expat might not read alike."""
    parser = etree.XMLParser(
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        collect_ids=False,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None
    if len(parser.error_log) or root is None:
        return None
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:
        return None  # feedparser rewrites the DOCTYPE and its entities
    return root


def _declarations(root: Any) -> list[tuple[str, str]]:
    """Every namespace declaration, (prefix or "", URI), in document order."""
    return [declared for _, declared in etree.iterwalk(root, events=("start-ns",))]


# --------------------------------------------------------------------------- the replay

_ATOM_NS = "http://www.w3.org/2005/Atom"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_RSS_1_NAMESPACES = ("http://purl.org/rss/1.0/", "http://my.netscape.com/rdf/simple/0.9/")
# feedparser's mixin: values of these elements are resolved against the base URL.
_CAN_BE_RELATIVE = frozenset(
    {
        "comments",
        "docs",
        "href",
        "icon",
        "id",
        "link",
        "logo",
        "url",
        "wfw_comment",
        "wfw_commentrss",
    }
)
_HTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})
# Children that keep feedparser inside an RSS <image> (others end it early).
_IMAGE_CHILDREN = frozenset({"title", "link", "description", "url", "width", "height"})
_TEXT_TYPES = frozenset({"text/plain", "text/html"})
_LINK_REFERENCE = re.compile("&([A-Za-z0-9_]+);")
_C1_CONTROL = re.compile("[\x80-\x9f]")  # str.translate is slow on long text: look first
_C1_UTF8 = re.compile(rb"\xc2[\x80-\x9f]")
_REFERENCE_START = re.compile(rb"&#")  # faster than `in` where "&" abounds
# An absolute URL that feedparser's join (urllib's urljoin) returns as it is, whatever the
# base: a lower-case http(s) scheme, a plain host, a path from "/", no ";params", and a
# query or fragment only when not empty.
_PLAIN_URL = re.compile(
    r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?"
    r"(?:/[A-Za-z0-9\-._~!$&'()*+,=:@%/]*)?"
    r"(?:\?[A-Za-z0-9\-._~!$&'()*+,=:@%/?]+)?"
    r"(?:#[A-Za-z0-9\-._~!$&'()*+,=:@%/?#]+)?\Z"
)
# A reference in a scheme of its own ("urn:", "tag:", "mailto:"): urljoin returns it as it
# is unless the scheme is the base's. Tabs and line breaks would be removed before that test.
_SCHEMED = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(?!//)[^\t\r\n]*\Z")
# feedparser's mixin, _sync_author_detail.
_EMAIL = re.compile(
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|(([a-zA-Z0-9\-]+\.)+))"""
    r"""([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)
# Plain elements (no feedparser handler) whose text `parse` reads: a feed's rhythm.
_RHYTHM = frozenset({"ttl", "sy_updateperiod", "sy_updatefrequency"})
# What pop() stores: the keys `parse` reads that text is stored under; nothing else is kept.
_KEPT = frozenset({"id", "title", "link", "summary", "author", "content"}) | _RHYTHM
# Keys of feedparser's own structures: a plain element of that name would clobber them.
_CLOBBERING = frozenset(
    {"links", "authors", "contributors", "enclosures", "tags", "image", "guidislink"}
) | (_KEPT - _RHYTHM)


_CONTENT_TYPES = {
    "text": "text/plain",
    "plain": "text/plain",
    "html": "text/html",
    "xhtml": "application/xhtml+xml",
}


def _map_content_type(value: str) -> str:
    value = value.lower()
    return _CONTENT_TYPES.get(value, value)


def _enforce_href(attrs: dict[str, str]) -> dict[str, str]:
    href = attrs.get("url", attrs.get("uri", attrs.get("href")))
    if href:
        attrs.pop("url", None)
        attrs.pop("uri", None)
        attrs["href"] = href
    return attrs


def _text(el: Any) -> str:
    """The text of an element that holds only text; markup or comments inside: decline."""
    if len(el):
        raise _Decline("markup inside a text element")
    return el.text or ""


class _Replay:
    """feedparser's state machine for one document, on lxml's tree instead of SAX events."""

    def __init__(
        self,
        reference: Reference,
        base: str,
        atom: bool,
        declarations: list[tuple[str, str]],
        c1: bool,
    ):
        self.ref = reference
        self.base = base
        self.atom = atom
        self.scheme = base.split(":", 1)[0]
        self.c1 = c1  # whether any text can hold a C1 control
        self.feed: dict[str, Any] = {}
        self.entries: list[dict[str, Any]] = []
        self.depth = 0
        self.title_depth = -1
        self.has_content = False
        self.guidislink = False
        self.inentry = False
        self.inimage = False
        self.current = self.feed  # the image, entry or feed being read
        self.depths: dict[str, int] = {}  # property_depth_map of the current entry
        self.keys: dict[str, str] = {}
        # feedparser's namespacemap (declared prefix → its prefix) and, for
        # namespaces it does not know, the prefix the document declared.
        self.namespacemap: dict[str, str] = {}
        self.unknown: dict[str, str] = {}
        self.track_namespaces(declarations)

    def track_namespaces(self, declarations: list[tuple[str, str]]) -> None:
        """feedparser's track_namespace for every declaration, wherever it stands.

        feedparser keeps each declaration from where it is met to the end of
        the document, so what an element is called could depend on what came
        before it. It cannot here: each prefix but the default is bound to one
        namespace, each namespace feedparser does not know to one prefix, and
        no prefix of feedparser's own is given to another namespace.
        """
        bound: dict[str, str] = {}
        for prefix, uri in declarations:
            if not uri:
                continue  # xmlns="": feedparser ignores it
            lower = uri.lower()
            if "backend.userland.com/rss" in lower:
                lower = "http://backend.userland.com/rss"
            if lower in _RSS_1_NAMESPACES:
                raise _Decline("an RSS 1.0/0.90 namespace")
            if prefix and bound.setdefault(prefix, uri) != uri:
                raise _Decline("a prefix bound to two namespaces")
            if lower in self.ref.prefixes:
                known = self.ref.prefixes[lower]
                if prefix and prefix != known and prefix.lower() in self.ref.prefixes.values():
                    raise _Decline("a prefix of feedparser's own given to another namespace")
                self.namespacemap[prefix] = known
            elif self.unknown.setdefault(uri, prefix) != prefix:
                raise _Decline("one namespace under two prefixes")

    # ----------------------------------------------------------------- element plumbing

    def key(self, tag: str) -> str:
        """feedparser's name for an element: what its `_start_<key>` handler is called."""
        if (key := self.keys.get(tag)) is not None:
            return key
        if not tag.isascii():
            raise _Decline("a non-ASCII element name")
        if tag[0] == "{":
            uri, local = tag[1:].split("}", 1)
            lower = uri.lower()
            if "backend.userland.com/rss" in lower:
                lower = "http://backend.userland.com/rss"
            prefix = self.ref.prefixes.get(lower)
            if prefix is None:
                prefix = self.unknown.get(uri)
                if prefix is None:
                    raise _Decline("a namespace not seen declared")
        else:
            prefix, local = "", tag
        name = f"{prefix}:{local}".lower() if prefix else local.lower()
        if ":" in name:
            given, suffix = name.split(":", 1)
            mapped = self.namespacemap.get(given, given)
            key = f"{mapped}_{suffix}" if mapped else suffix
        else:
            key = name
        self.keys[tag] = key
        return key

    @staticmethod
    def attributes(items: list[tuple[str, str]]) -> dict[str, str]:
        """An element's attributes as feedparser keys them: lower-case, rel and type too."""
        attrs: dict[str, str] = {}
        for name, value in items:
            if name == _XML_LANG:
                attrs["xml:lang"] = value
                continue
            if name[0] == "{" or not name.isascii():
                raise _Decline("a prefixed or non-ASCII attribute")
            key = name.lower()
            if key in attrs or key == "base":
                raise _Decline("a base attribute or one named twice")
            attrs[key] = value.lower() if key in ("rel", "type") else value
        return attrs

    def children(self, el: Any) -> None:
        """Each child element in document order, to its handler (the replay's hot loop)."""
        keys, special = self.keys, self.ref.special_elements
        for child in el:
            tag = child.tag
            if not isinstance(tag, str):  # comments and PIs: feedparser ignores them
                continue
            key = keys.get(tag) or self.key(tag)
            items = child.items()
            attrs = self.attributes(items) if items else {}
            self.depth += 1
            handler = _HANDLERS.get(key)
            if handler is not None:
                handler(self, child, key, attrs)
            elif key in special:
                raise _Decline(f"<{key}>")
            else:
                self.plain(child, key, attrs)
            self.depth -= 1

    def context(self) -> dict[str, Any]:
        """feedparser's _get_context: where an element's values go."""
        return self.current

    # ----------------------------------------------------------------- feedparser's pop

    def content_params(self, attrs: Mapping[str, str], default: str) -> dict[str, str]:
        """push_content's contentparams, for the content types replayed here."""
        kind = _map_content_type(attrs.get("type", default))
        if kind not in _TEXT_TYPES or "mode" in attrs:
            raise _Decline(f"content of type {kind}")
        return {"type": kind, "base": self.base}

    def pop(self, element: str, text: str, params: dict[str, str] | None = None) -> str:
        """feedparser's pop() of an element that expects text; stores what `parse` reads."""
        output = text.strip()
        if output and element in _CAN_BE_RELATIVE and (element != "id" or self.guidislink):
            output = self.join(output)
        if (
            params is not None
            and not self.atom
            and params["type"] == "text/plain"
            and self.ref.looks_like_html(output)
        ):
            params["type"] = "text/html"
        if not output.isascii():
            # feedparser undoes UTF-8 read as ISO-8859-1, then maps C1 controls.
            with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
                output = output.encode("iso-8859-1").decode("utf-8")
            if self.c1 and _C1_CONTROL.search(output):
                output = output.translate(self.ref.cp1252)
        if element == "title" and -1 < self.title_depth <= self.depth:
            return output
        if element in _KEPT or element == "description":
            self.store(element, output, params)
        return output

    def store(self, element: str, output: str, params: dict[str, str] | None) -> None:
        if self.inentry:
            entry = self.entries[-1]
            if element == "content":
                entry.setdefault("content", []).append({**(params or {}), "value": output})
            elif element == "link":
                if not self.inimage:
                    output = _LINK_REFERENCE.sub(r"&\g<1>", output.replace("&amp;", "&"))
                    entry["link"] = output
                    if output:
                        entry["links"][-1]["href"] = output
            else:
                element = "summary" if element == "description" else element
                old = self.depths.get(element)
                if old is None or self.depth <= old:
                    self.depths[element] = self.depth
                    entry[element] = output
                if params is not None:
                    entry[f"{element}_detail"] = {**params, "value": output}
            return
        context = self.context()
        element = "subtitle" if element == "description" else element
        context[element] = output
        if element == "link":
            output = _LINK_REFERENCE.sub(r"&\g<1>", output)
            context["link"] = output
            context["links"][-1]["href"] = output
        elif params is not None:
            context[f"{element}_detail"] = {**params, "value": output}

    def join(self, url: str) -> str:
        """feedparser's resolve_uri, without its cost for URLs it leaves as they are."""
        if _PLAIN_URL.match(url):
            return url
        if (schemed := _SCHEMED.match(url)) and schemed[1].lower() != self.scheme:
            return url
        return self.ref.join_url(self.base, url)

    def parse_date(self, value: str) -> Any:
        try:
            return self.ref.parse_date(value)
        except Exception as e:  # whatever breaks feedparser's parser must go to feedparser
            raise _Decline("a date feedparser's parser raises on") from e

    # ----------------------------------------------------------------- handlers

    def plain(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        """An element feedparser has no handler for: kept under its own name."""
        if key in _CLOBBERING or key.endswith(("_detail", "_parsed")):
            raise _Decline(f"a plain <{key}>")
        if key in _RHYTHM:  # read by `parse`, as text or (then useless) as attributes
            text = _text(el)
            if not attrs:
                self.pop(key, text)
            elif not self.inentry:
                self.context()[key] = attrs
            return
        self.children(el)

    def harmless(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        """Handled by feedparser, but into nothing `parse` reads."""
        _text(el)

    def entry(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        if self.inentry or self.inimage or "lastmod" in attrs or "href" in attrs:
            raise _Decline("a nested entry, or CDF attributes")
        self.current = {}
        self.entries.append(self.current)
        self.inentry = True
        self.guidislink = False
        self.title_depth = -1
        self.depths = {}
        self.children(el)
        self.inentry = False
        self.current = self.feed
        self.has_content = False

    def image(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        if self.inentry or self.inimage:
            raise _Decline("an <image> in an entry")
        if any(isinstance(c.tag, str) and self.key(c.tag) not in _IMAGE_CHILDREN for c in el):
            raise _Decline("an unusual <image>")
        self.current = self.feed.setdefault("image", {})
        self.inimage = True
        self.title_depth = -1
        self.children(el)
        self.inimage = False
        self.current = self.feed

    def title(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        kept = self.title_depth
        value = self.pop("title", _text(el), self.content_params(attrs, "text/plain"))
        if value:
            self.title_depth = self.depth
        if key == "media_title":
            self.title_depth = kept

    def link(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        attrs.setdefault("rel", "alternate")
        attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
        context = self.context()
        attrs = _enforce_href(attrs)
        if "href" in attrs:
            attrs["href"] = self.join(attrs["href"])
        links = context.setdefault("links", [])
        if not (self.inentry and self.inimage):
            links.append(attrs)
        if "href" not in attrs:
            self.pop("link", _text(el))
            return
        if len(el):
            raise _Decline("markup inside a <link>")
        if attrs.get("rel") == "alternate" and _map_content_type(attrs["type"]) in _HTML_TYPES:
            context["link"] = attrs["href"]

    def guid(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        self.guidislink = attrs.get("ispermalink", "true") == "true"
        value = self.pop("id", _text(el))
        if self.guidislink:
            self.context().setdefault("link", value)

    def description(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        if "summary" in self.context() and not self.has_content:
            self.content(el, "content", attrs)  # a second summary becomes content
        else:
            self.pop("description", _text(el), self.content_params(attrs, "text/html"))

    def summary(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        if "summary" in self.context() and not self.has_content:
            self.content(el, "content", attrs)
        else:
            self.pop("summary", _text(el), self.content_params(attrs, "text/plain"))

    def content(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        self.has_content = True
        if key == "content_encoded":
            params = self.content_params(attrs, "text/html")
        elif "src" in attrs:
            raise _Decline("content by reference")
        else:
            params = self.content_params(attrs, "text/plain")
        value = self.pop("content", _text(el), params)
        self.context().setdefault("summary", value)  # both text types are copied to summary

    def date(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        field = _DATE_FIELDS[key]
        value = self.pop(field, _text(el))
        self.context()[f"{field}_parsed"] = self.parse_date(value)

    def add_tag(self, term: str | None, scheme: str | None, label: str | None) -> None:
        tags: list[dict[str, str | None]] = self.context().setdefault("tags", [])
        if not term and not scheme and not label:
            return
        value = {"term": term, "scheme": scheme, "label": label}
        if value not in tags:
            tags.append(value)

    def category(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        if key == "itunes_category":  # podcasts nest subcategories: each adds its tag
            self.add_tag(attrs.get("text"), "http://www.itunes.com/", None)
            if any(isinstance(c.tag, str) and self.key(c.tag) != key for c in el):
                raise _Decline("markup inside an <itunes:category>")
            text = (el.text or "") + "".join(child.tail or "" for child in el)
            self.children(el)
        else:
            if key == "media_category":
                attrs.setdefault("scheme", "http://search.yahoo.com/mrss/category_schema")
            scheme = attrs.get("scheme", attrs.get("domain"))
            self.add_tag(attrs.get("term"), scheme, attrs.get("label"))
            text = _text(el)
        value = self.pop("category", text)
        if not value:
            return
        tags = self.context()["tags"]
        if tags and not tags[-1]["term"]:
            tags[-1]["term"] = value
        else:
            self.add_tag(value, None, None)

    def keywords(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        if attrs:  # feedparser then pops nothing and fails on None.split
            raise _Decline(f"attributes on <{key}>")
        scheme = "http://www.itunes.com/" if key == "itunes_keywords" else None
        for term in self.pop(key, _text(el)).split(","):
            if key == "tags" or term.strip():
                self.add_tag(term.strip(), scheme, None)

    def save_author(self, key: str, value: str, prefix: str = "author") -> None:
        context = self.context()
        context.setdefault(f"{prefix}_detail", {})[key] = value
        self.sync_author_detail(context)
        context.setdefault("authors", [{}])[-1][key] = value

    @staticmethod
    def sync_author_detail(context: dict[str, Any], key: str = "author") -> None:
        detail = context.get(f"{key}s", [{}])[-1]
        if detail:
            name, email = detail.get("name"), detail.get("email")
            if name and email:
                context[key] = f"{name} ({email})"
            elif name:
                context[key] = name
            elif email:
                context[key] = email
            return
        author, email = context.get(key), None
        if not author:
            return
        if match := _EMAIL.search(author):
            email = match.group(0)
            author = author.replace(email, "").replace("()", "").replace("<>", "")
            author = author.replace("&lt;&gt;", "").strip()
            if author and author[0] == "(":
                author = author[1:]
            if author and author[-1] == ")":
                author = author[:-1]
            author = author.strip()
        if author or email:
            context.setdefault(f"{key}_detail", detail)
        if author:
            detail["name"] = author
        if email:
            detail["email"] = email

    def person(self, el: Any, prefix: str) -> str:
        """The name/email/uri children of an author, contributor or owner; its own text."""
        pieces = [el.text or ""]
        for child in el:
            pieces.append(child.tail or "")
            if not isinstance(child.tag, str):
                continue
            key = self.key(child.tag)
            self.attributes(child.items())
            self.depth += 1
            if key in ("name", "itunes_name", "email", "itunes_email"):
                value = _text(child).strip()
                if prefix != "contributor":
                    self.save_author(key.removeprefix("itunes_"), value, prefix)
            elif key in ("uri", "url", "homepage") and prefix != "publisher":
                value = self.pop("href", _text(child))
                if prefix == "author":
                    self.save_author("href", value)
            else:
                raise _Decline(f"<{key}> in a person")
            self.depth -= 1
        return "".join(pieces)

    def author(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        context = self.context()
        context.setdefault("authors", []).append({})
        text = self.person(el, "author")
        self.pop("author", text)
        self.sync_author_detail(self.context())

    def contributor(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        self.person(el, "contributor")

    def itunes_owner(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        self.person(el, "publisher")
        self.sync_author_detail(self.context(), "publisher")

    def enclosure(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        if len(el):
            raise _Decline("markup inside an <enclosure>")
        attrs = _enforce_href(attrs)
        attrs["rel"] = "enclosure"
        self.context().setdefault("links", []).append(attrs)

    def media_thumbnail(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        thumbnails = self.context().setdefault("media_thumbnail", [])
        thumbnails.append(attrs)
        url = self.pop("url", _text(el))
        if url.strip() and "url" not in thumbnails[-1]:
            thumbnails[-1]["url"] = url

    def media_content(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        self.context().setdefault("media_content", []).append(attrs)
        self.children(el)

    def media_group(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        self.children(el)

    def itunes_image(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        if len(el):
            raise _Decline(f"markup inside <{key}>")
        if href := attrs.get("href") or attrs.get("url"):
            self.context()["image"] = {"href": href}

    def cloud(self, el: Any, key: str, attrs: dict[str, str]) -> None:
        if len(el):
            raise _Decline("markup inside <cloud>")


_DATE_FIELDS = {
    **dict.fromkeys(("published", "pubdate", "issued", "dcterms_issued"), "published"),
    **dict.fromkeys(
        ("updated", "modified", "lastbuilddate", "dc_date", "dcterms_modified"), "updated"
    ),
    **dict.fromkeys(("created", "dcterms_created"), "created"),
    "expirationdate": "expired",
}

_Handler = Callable[[_Replay, Any, str, dict[str, str]], None]
#: Element keys (see `_Replay.key`) whose feedparser handlers are replayed.
_HANDLERS: dict[str, _Handler] = {
    "item": _Replay.entry,
    "entry": _Replay.entry,
    "image": _Replay.image,
    "title": _Replay.title,
    "dc_title": _Replay.title,
    "media_title": _Replay.title,
    "link": _Replay.link,
    "guid": _Replay.guid,
    "id": _Replay.guid,
    "description": _Replay.description,
    "dc_description": _Replay.description,
    "media_description": _Replay.description,
    "summary": _Replay.summary,
    "itunes_summary": _Replay.summary,
    "content": _Replay.content,
    "content_encoded": _Replay.content,
    **dict.fromkeys(_DATE_FIELDS, _Replay.date),
    **dict.fromkeys(
        ("category", "dc_subject", "keywords", "media_category", "itunes_category"),
        _Replay.category,
    ),
    **dict.fromkeys(("tags", "itunes_keywords", "media_keywords"), _Replay.keywords),
    **dict.fromkeys(
        ("author", "dc_author", "dc_creator", "itunes_author", "managingeditor"), _Replay.author
    ),
    "contributor": _Replay.contributor,
    "itunes_owner": _Replay.itunes_owner,
    "enclosure": _Replay.enclosure,
    "media_thumbnail": _Replay.media_thumbnail,
    "media_content": _Replay.media_content,
    "media_group": _Replay.media_group,
    "itunes_image": _Replay.itunes_image,
    "itunes_link": _Replay.itunes_image,
    "cloud": _Replay.cloud,
    **dict.fromkeys(
        (
            "language", "dc_language", "generator", "webmaster", "dc_publisher", "rights",
            "copyright", "dc_rights", "subtitle", "tagline", "itunes_subtitle", "itunes_block",
            "itunes_explicit", "width", "height", "name", "email", "url", "uri", "homepage",
            "itunes_name", "itunes_email", "dc_contributor", "media_credit", "media_rating",
            "media_restriction", "media_license", "media_player",
        ),
        _Replay.harmless,
    ),
}  # fmt: skip


# --------------------------------------------------------------------------- entry point


def read_feed(body: bytes, headers: Mapping[str, str], reference: Reference) -> FeedResult | None:
    """feedparser's result for a plain RSS 2.0 or Atom 1.0 document, or None to decline.

    `body` and `headers` are what feedparser would be given: Content-Type and
    Content-Location (the base URL) as `parse` prepares them.
    """
    try:
        return _read(body, headers, reference)
    except _Decline:
        return None


def decline_reason(body: bytes, headers: Mapping[str, str], reference: Reference) -> str | None:
    """Why `read_feed` declines this document (None: it does not); for tests and reports."""
    try:
        _read(body, headers, reference)
    except _Decline as e:
        return str(e)
    return None


def _read(body: bytes, headers: Mapping[str, str], reference: Reference) -> FeedResult:
    base = headers.get("content-location", "")
    if not base.startswith(("http://", "https://")) or reference.join_url(base, base) != base:
        raise _Decline("a base URL feedparser would rewrite")
    data = _xml_bytes(body, headers.get("content-type", ""))
    if data is None:
        raise _Decline("an encoding or media type in doubt")
    root = _parse_xml(data)
    if root is None:
        raise _Decline("XML libxml2 and expat might not read alike")
    c1 = _REFERENCE_START.search(data) is not None or _C1_UTF8.search(data) is not None
    if root.tag == f"{{{_ATOM_NS}}}feed":
        replay = _Replay(reference, base, True, _declarations(root), c1)
        version, channel = "atom10", root
    elif root.tag == "rss" and root.get("version") == "2.0":
        replay = _Replay(reference, base, False, _declarations(root), c1)
        version = "rss20"
        replay.attributes(root.items())
        replay.depth = 1
        channels = [child for child in root if isinstance(child.tag, str)]
        if not channels:
            return {"version": version, "feed": {}, "entries": []}
        if len(channels) > 1 or replay.key(channels[0].tag) != "channel":
            raise _Decline("an <rss> with more than one <channel>")
        channel = channels[0]
    else:
        raise _Decline("neither RSS 2.0 nor Atom 1.0")
    attrs = replay.attributes(channel.items())
    if "lastmod" in attrs or "href" in attrs:
        raise _Decline("CDF attributes")
    replay.depth += 1
    replay.children(channel)
    for entry in replay.entries:
        entry["enclosures"] = [
            {k: v for k, v in link.items() if k != "rel"}
            for link in entry.get("links", ())
            if link["rel"] == "enclosure"
        ]
    return {"version": version, "feed": replay.feed, "entries": replay.entries}
