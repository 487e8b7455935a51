"""How entries are recognised: canonical links, story ids, content hashes, slugs.

Every rule that decides "is this the same story?" or "did this entry change?"
lives here, so dedup behaviour can be read and tested in one place. It is also
the only importer of python-slugify, which names categories and post files.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from slugify import slugify

from aggregator.models import EntryData, RawEntry

#: Query parameters that only say where a click came from, never which page it is.
TRACKING_PARAMETERS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "spm_id_from",
    }
)
TRACKING_PREFIXES = ("utm_",)
DEFAULT_PORTS = {"http": 80, "https": 443}

_STORY_NAMESPACE = uuid.UUID("5b7c7d2e-3f0a-4b8e-9d1c-6a2f4e8b1c3d")


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in TRACKING_PARAMETERS or lowered.startswith(TRACKING_PREFIXES)


# Cached: each document's links are canonicalised to load the stories they
# match, then again to decide.
@lru_cache(maxsize=4096)
def canonical_link(url: str | None) -> str | None:
    """The form of a link under which cross-posts of one story compare equal.

    Scheme and host are lower-cased, the default port and the fragment dropped,
    and click-tracking parameters removed; the path and the remaining query are
    kept as they are, because servers may treat their case and order as meaningful.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    query_pairs = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k)
    ]
    query = urlencode(query_pairs, doseq=True) if query_pairs else ""
    return urlunsplit((scheme, host, parts.path or "/", query, ""))


def story_uid(link_key: str | None, feed_url: str, entry_id: str) -> str:
    """A permanent id for a story as published in our own outputs.

    Stories keyed by link get an id derived from the canonical link, so whichever
    source is fetched first the id is the same; others derive it from their
    source feed and entry id.
    """
    name = f"link:{link_key}" if link_key else f"entry:{feed_url}\n{entry_id}"
    return f"urn:uuid:{uuid.uuid5(_STORY_NAMESPACE, name)}"


def content_hash(entry: EntryData) -> str:
    """A fingerprint of what a reader sees of an entry.

    Dates are left out on purpose: some feeds stamp every entry with the fetch
    time, and a changed date alone should not count as an edit. The raw body
    is in, so that raw post exports follow edits the sanitiser hides.
    """
    digest = hashlib.sha1(usedforsecurity=False)
    for value in (
        entry.title,
        entry.link or "",
        entry.author or "",
        entry.summary or "",
        entry.content or "",
        entry.thumbnail or "",
        "\x1e".join(entry.tags),
        "\x1e".join(f"{e.url}\x1d{e.type}\x1d{e.length}" for e in entry.enclosures),
        entry.raw_body or "",
    ):
        digest.update(value.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return digest.hexdigest()


def entry_hash(entry: EntryData) -> str:
    """What a source stores to tell later whether its entry changed.

    The raw entry's fingerprint when the entry came from a document (so the
    next poll can skip cleaning it), else the hash of its cleaned content.
    """
    return entry.fingerprint or content_hash(entry)


def entry_fingerprint(raw: RawEntry, normaliser: str) -> str:
    """What an entry said, before cleaning: equal fingerprints need no cleaning again.

    Cleaning (sanitising, resolving URLs, choosing a thumbnail) costs far more
    than hashing, and most entries of a re-polled feed are the ones seen last
    time. `normaliser` names the cleaning rules (program version, limits), so
    a change to them cleans everything once more. Dates are left out, as in
    `content_hash`, except for an entry with neither guid nor link, whose
    dates are part of its id.
    """
    digest = hashlib.sha1(normaliser.encode("utf-8"), usedforsecurity=False)
    dated = not (raw.guid or raw.link)
    for value in (
        raw.guid,
        raw.title,
        raw.link,
        raw.base,
        "explicit" if raw.explicit_base else None,
        raw.author,
        raw.published.isoformat() if dated and raw.published else None,
        raw.updated.isoformat() if dated and raw.updated else None,
        raw.summary_html,
        raw.content_html,
        "\x1e".join(raw.tags),
        "\x1e".join(f"{e.url}\x1d{e.type}\x1d{e.length}" for e in raw.enclosures),
        "\x1e".join(raw.media_thumbnails),
        "\x1e".join(raw.media_images),
        raw.itunes_image,
    ):
        digest.update(b"\x00" if value is None else value.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return digest.hexdigest()


#: The rules that make entries of a document's bytes, as part of `body_hash`:
#: a document seen before they changed is read once more. Otherwise unchanged
#: bytes are never parsed again, and their entries would keep what the old rules
#: made of them. Always `clean.CLEANING_REVISION` (a test holds them equal;
#: this module does not import `clean`).
READING_REVISION = 3


def body_hash(body: bytes) -> str:
    """Fingerprint of a fetched document, to skip parsing bytes seen last time."""
    digest = hashlib.sha1(b"%d\n" % READING_REVISION, usedforsecurity=False)
    digest.update(body)
    return digest.hexdigest()


def slug(text: str, max_length: int = 0) -> str:
    """Lower-case ASCII letters, digits and hyphens, safe in URLs and on every file system.

    Other scripts are transliterated (两大摄影 → liang-da-she-ying) rather than
    dropped, so CJK titles still give readable names; `max_length` cuts at a
    word boundary.
    """
    return slugify(text, max_length=max_length, word_boundary=True)


def short_key(uid: str, length: int = 10) -> str:
    """A short, stable, case-insensitive token for a story id, for file names.

    Base32 of a SHA-1: ten characters are 50 bits, so a folder needs tens of
    millions of posts before two could share one.
    """
    digest = hashlib.sha1(uid.encode("utf-8"), usedforsecurity=False).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:length]
