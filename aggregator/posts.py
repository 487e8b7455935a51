"""Stories as Markdown posts with front matter, for Hexo, Hugo and Jekyll sites.

The Hexo layout is fixed down to the byte by a post as it is meant to look
(``categories: `` with a trailing space, one-space list indent, the title in
single quotes, an RFC 822 date in GMT), which is why front matter is written
here line by line instead of by a YAML emitter. Every value still goes
through `yaml_scalar`, which quotes whatever a YAML 1.1 or 1.2 parser (Hexo's
js-yaml, Hugo's and Jekyll's) would read as anything but that exact string.

Rendering is pure; `PostFolder` is the only part that touches the disk.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from email.utils import format_datetime
from pathlib import Path

from aggregator.files import write_if_changed
from aggregator.identity import short_key, slug
from aggregator.models import POST_FORMATS, StoryView

EXTENSION = ".md"
SLUG_LENGTH = 60
FALLBACK_SLUG = "post"

# What YAML 1.1 (PyYAML, Psych) counts as printable, less the characters a
# single-quoted scalar would fold or that YAML 1.2 forbids inside a document.
_SINGLE_QUOTABLE = re.compile(
    "[\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]*"
)
_PLAIN_FIRST = re.compile(r"[^\s\-?:,\[\]{}#&*!|>'\"%@`]")
_IMPLICIT_WORDS = frozenset(
    {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "<<", "="}
)
_FLOW_INDICATORS = frozenset(",[]{}")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_PRE_BLOCK = re.compile(r"(<pre\b.*?</pre\s*>)", re.IGNORECASE | re.DOTALL)
_LINE_BREAKS = re.compile(r"[ \t]*\n[ \t\n]*")
#: An <img> start tag, its quoted attribute values read whole (they may hold ">").
_IMG_TAG = re.compile(r"""<img\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_REFERRER_POLICY = re.compile(r"\breferrerpolicy\s*=", re.IGNORECASE)
#: Where a tag's attributes end: before ">", or before "/>" when the slash closes the
#: tag rather than ends an unquoted value (`<img src=a/>` is the URL "a/").
_TAG_END = re.compile(r"""(?:(?<=["'\s])\s*/)?\s*>$""")
_KEY_IN_NAME = re.compile(r"\d{4}-\d{2}-\d{2}-(?:.*-)?([a-z2-7]{10})" + re.escape(EXTENSION))


# --------------------------------------------------------------------------- YAML values


def yaml_scalar(value: str, *, always_quote: bool = False, flow: bool = False) -> str:
    """`value` as a YAML scalar that every common parser reads back as that string.

    Plain when that is unambiguous (``author: 快科技``), single-quoted when it
    is printable on one line (``'It''s'``), double-quoted with escapes
    otherwise (line breaks, control characters).
    """
    if not always_quote and _plain_is_safe(value, flow=flow):
        return value
    if _SINGLE_QUOTABLE.fullmatch(value):
        return "'" + value.replace("'", "''") + "'"
    return '"' + "".join(_escape(char) for char in value) + '"'


def _plain_is_safe(value: str, *, flow: bool) -> bool:
    if not value or value != value.strip() or not _PLAIN_FIRST.match(value):
        return False
    if not _SINGLE_QUOTABLE.fullmatch(value):
        return False
    if ": " in value or " #" in value or value.endswith(":"):
        return False
    if flow and _FLOW_INDICATORS.intersection(value):
        return False
    # Numbers, dates, booleans and nulls of YAML 1.1 and 1.2 all start with a
    # digit, a sign or a dot, or are one of a few words.
    return value.lower() not in _IMPLICIT_WORDS and value[0] not in "0123456789+.<="


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if _SINGLE_QUOTABLE.fullmatch(char):
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _block_list(key: str, items: Sequence[str], indent: str) -> list[str]:
    return [f"{key}:", *(f"{indent}- {yaml_scalar(item)}" for item in items)]


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class PostOptions:
    """How posts are written: front-matter style, body kind, and the zone and category
    order that file names, dates and category hierarchies need."""

    format: str = "hexo"
    raw: bool = False
    zone: tzinfo | None = None
    category_order: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.format not in POST_FORMATS:
            raise ValueError(f"unknown post format {self.format!r}")


def category_paths(story: StoryView, category_order: Sequence[str] = ()) -> list[tuple[str, ...]]:
    """The story's place in a category tree: category, then source, then its channel.

    One path per configured category of each source (primary source first);
    a source without categories gives a path of its name and channel alone.
    """
    rank = {name: index for index, name in enumerate(category_order)}
    paths: list[tuple[str, ...]] = []
    for source in story.sources:
        tail: tuple[str, ...] = (source.name,)
        if source.channel_title and source.channel_title != source.name:
            tail += (source.channel_title,)
        categories = sorted(source.categories, key=lambda name: rank.get(name, len(rank)))
        for path in [(name, *tail) for name in categories] or [tail]:
            if path not in paths:
                paths.append(path)
    return paths


def _flat(paths: Sequence[tuple[str, ...]]) -> list[str]:
    return list(dict.fromkeys(name for path in paths for name in path))


def post_body(story: StoryView, raw: bool) -> str:
    """The post's HTML: the feed's own when `raw`, else the sanitised body.

    The raw body is the feed's bytes but for one attribute: images get
    referrerpolicy="no-referrer", as in the sanitised body, since hosts that
    refuse hotlinking (many Chinese news sites) refuse an image whose request
    names the blog as its referrer. The sanitised body loses its blank lines
    and indentation outside <pre> and sits in one <div>, so Markdown
    processors pass it through as one HTML block instead of turning indented
    lines into code. Stories stored before raw HTML was kept fall back to the
    sanitised body.
    """
    if raw and story.raw_body is not None:
        return _IMG_TAG.sub(_without_referrer, story.raw_body)
    html = (story.content or story.summary or "").replace("\r\n", "\n").strip()
    if not html:
        return ""
    parts = _PRE_BLOCK.split(html)
    for index in range(0, len(parts), 2):
        parts[index] = _LINE_BREAKS.sub("\n", parts[index])
    return "<div>\n" + "".join(parts) + "\n</div>"


def _without_referrer(tag: re.Match[str]) -> str:
    """The <img> tag with referrerpolicy="no-referrer" last, unless it names a policy itself."""
    text = tag[0]
    if _REFERRER_POLICY.search(text):
        return text
    end = _TAG_END.search(text)
    assert end is not None  # every match ends with ">"
    return f'{text[: end.start()]} referrerpolicy="no-referrer"{text[end.start() :]}'


def render_post(story: StoryView, options: PostOptions) -> str:
    """The whole file: front matter in the chosen style, a blank line, the body."""
    render = _hexo if options.format == "hexo" else _hugo_or_jekyll
    lines = ["---", *render(story, options), "---", "", post_body(story, options.raw)]
    return "\n".join(lines).rstrip("\n") + "\n"


def _author(story: StoryView) -> str:
    return story.sources[0].name if story.sources else (story.author or "")


def _local_iso(moment: datetime, zone: tzinfo | None) -> str:
    return moment.astimezone(zone).isoformat(timespec="seconds")


def _changed_later(story: StoryView) -> datetime | None:
    return story.updated if story.updated and story.updated != story.published else None


def _hexo(story: StoryView, options: PostOptions) -> list[str]:
    paths = category_paths(story, options.category_order)
    lines = [f"title: {yaml_scalar(story.title, always_quote=True)}", "categories: "]
    if len(paths) == 1:
        lines += [f" - {yaml_scalar(name)}" for name in paths[0]]
    else:  # Hexo's form for a post filed under several hierarchies
        for path in paths:
            lines.append(" - [" + ", ".join(yaml_scalar(n, flow=True) for n in path) + "]")
    if story.tags:
        lines += ["tags: ", *(f" - {yaml_scalar(tag)}" for tag in story.tags)]
    thumbnail = yaml_scalar(story.thumbnail, always_quote=True) if story.thumbnail else None
    if thumbnail:
        lines.append(f"headimg: {thumbnail}")
    lines += [
        f"author: {yaml_scalar(_author(story))}",
        "comments: false",
        f"date: {format_datetime(story.published, usegmt=True)}",
    ]
    if updated := _changed_later(story):
        lines.append(f"updated: {format_datetime(updated, usegmt=True)}")
    if thumbnail:
        lines.append(f"thumbnail: {thumbnail}")
    return lines


def _hugo_or_jekyll(story: StoryView, options: PostOptions) -> list[str]:
    """Hugo's and Jekyll's usual keys, which differ only in a few names."""
    jekyll = options.format == "jekyll"
    lines = ["layout: post"] if jekyll else []
    lines += [
        f"title: {yaml_scalar(story.title, always_quote=True)}",
        f"date: {_local_iso(story.published, options.zone)}",
    ]
    if updated := _changed_later(story):
        key = "last_modified_at" if jekyll else "lastmod"
        lines.append(f"{key}: {_local_iso(updated, options.zone)}")
    lines.append(f"author: {yaml_scalar(_author(story))}")
    lines += _block_list("categories", _flat(category_paths(story, options.category_order)), "  ")
    if story.tags:
        lines += _block_list("tags", story.tags, "  ")
    if story.thumbnail:
        image = yaml_scalar(story.thumbnail, always_quote=True)
        lines += [f"image: {image}"] if jekyll else ["images:", f"  - {image}"]
    lines.append("comments: false")
    return lines


# --------------------------------------------------------------------------- file names


def post_file_name(story: StoryView, zone: tzinfo | None) -> str:
    """``2022-06-01-liang-da-she-ying-…-k3j5…​.md``: local publication date, slug, story key.

    Jekyll requires the date prefix; the key at the end is what finds the
    file again when the title or date of its story later changes.
    """
    day = story.published.astimezone(zone).date().isoformat()
    title_slug = slug(story.title, SLUG_LENGTH) or FALLBACK_SLUG
    return f"{day}-{title_slug}-{short_key(story.uid)}{EXTENSION}"


def key_of_file_name(name: str) -> str | None:
    """The story key of a file this module named; None for any other file."""
    match = _KEY_IN_NAME.fullmatch(name)
    return match[1] if match else None


class PostFolder:
    """A folder of exported posts, one file per story, each written only when it changed.

    A story keeps the file it was first exported to, so a site's permalinks
    survive edits to its title; files this module did not name are never touched.
    """

    def __init__(self, directory: Path, options: PostOptions) -> None:
        self.directory = directory
        self.options = options
        directory.mkdir(parents=True, exist_ok=True)
        self._names: dict[str, str] = {}
        for name in sorted(os.listdir(directory)):
            key = key_of_file_name(name)
            if key is not None:
                self._names.setdefault(key, name)

    def write(self, story: StoryView) -> tuple[Path, bool]:
        """Write one story's post; returns its path and whether its bytes changed."""
        key = short_key(story.uid)
        name = self._names.get(key) or post_file_name(story, self.options.zone)
        path = self.directory / name
        changed = write_if_changed(path, render_post(story, self.options).encode("utf-8"))
        self._names[key] = name
        return path, changed
