"""feeds.yaml in, a frozen `Config` out, with every mistake located at once.

This is the only module that imports ruamel.yaml and pydantic, so the
rest of the package sees plain dataclasses from `models` and never a parser's
types or errors.

Why it is built this way:

* ruamel's round-trip loader keeps the line of every key and list item, so a
  problem can point at the exact line to fix instead of "somewhere in site".
* pydantic models with ``extra="forbid"`` check shapes and unknown keys; every
  field has our own validator so messages say what to write, not which Python
  type was expected.
* The file is validated piece by piece (top level, site, each feed, each
  category) so that one broken section does not hide mistakes in the others,
  and the cross-field checks (duplicate URLs, slug clashes) still run over the
  parts that are valid. All problems are raised together in one `ConfigError`.
"""

from __future__ import annotations

import difflib
import math
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from aggregator.errors import ConfigError, ConfigProblem
from aggregator.identity import slug as slugify
from aggregator.models import (
    POST_FORMATS,
    Category,
    Config,
    FeedSource,
    FetchLimits,
    SiteSettings,
)

__all__ = ["RESERVED_SLUG", "load_config", "parse_duration", "parse_size"]

RESERVED_SLUG = "all"
"""The slug of the merged output of every category; no category may take it."""

_DEFAULT_TITLE = "Aggregated feeds"
_DEFAULT_OUTPUT_DIR = "var/public"
_DEFAULT_DATABASE = "sqlite:///var/aggregator.db"
_DEFAULT_TIMEZONE = "UTC"
_DEFAULT_DIGEST_TIME = time(7, 0)
_DEFAULT_INTERVAL = timedelta(minutes=30)
_DEFAULT_MAX_ENTRIES = 50
_FETCH_DEFAULTS = FetchLimits()

Loc = tuple[str | int, ...]

# --------------------------------------------------------------------------- pure parsers

_NUMBER = r"\d+(?:\.\d+)?"
_DURATION_RE = re.compile(
    rf"(?:(?P<d>{_NUMBER})d)?(?:(?P<h>{_NUMBER})h)?(?:(?P<m>{_NUMBER})m(?!s))?"
    rf"(?:(?P<s>{_NUMBER})s)?(?:(?P<ms>{_NUMBER})ms)?",
    re.IGNORECASE,
)
_DURATION_HINT = "use e.g. 90s, 15m, 1h30m, 2d"
_SIZE_RE = re.compile(rf"(?P<n>{_NUMBER})(?P<unit>[kmg](?:i?b)?|b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_SIZE_HINT = "use a number of bytes or e.g. 512KB, 16MB, 1GB"


def parse_duration(text: str | int | float) -> timedelta:
    """Read a positive duration such as ``"90s"``, ``"15m"``, ``"1h30m"`` or ``"2d"``.

    A bare number (or numeric string) is seconds. Components may be decimals
    and separated by spaces; ``ms`` is accepted for short timeouts. Zero and
    negative durations are rejected because nothing here can use them.

    Raises ValueError with a message meant for the user.
    """
    return _bounded_duration(text, None)


def _bounded_duration(text: str | int | float, most: str | None) -> timedelta:
    """`parse_duration`, also refusing durations longer than `most` (say ``"365d"``).

    One function for both, so that a duration too long for a `timedelta`
    and one merely longer than the setting allows get the same message,
    naming the ceiling when there is one.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration; {_DURATION_HINT}")
    if isinstance(text, int | float):
        try:
            seconds = float(text)
        except OverflowError:  # an int with hundreds of digits
            seconds = math.inf
    else:
        compact = "".join(text.split())
        match = _DURATION_RE.fullmatch(compact)
        if re.fullmatch(_NUMBER, compact):
            seconds = float(compact)
        elif compact and match:  # the pattern also matches "", every part being optional
            parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
            seconds = (
                parts.get("d", 0) * 86400
                + parts.get("h", 0) * 3600
                + parts.get("m", 0) * 60
                + parts.get("s", 0)
                + parts.get("ms", 0) / 1000
            )
        else:
            raise ValueError(f"{text!r} is not a duration; {_DURATION_HINT}")
    # Only a number YAML read as a float (1e400, .inf, .nan) is infinite as
    # written; digits too many for a float are a duration too long to keep.
    if isinstance(text, float) and not math.isfinite(seconds):
        raise ValueError(f"{text!r} is not a finite duration; {_DURATION_HINT}")
    if seconds <= 0:
        raise ValueError(f"the duration must be more than zero, got {text!r}")
    too_long = f"the duration {text!r} is too long" + (f"; at most {most}" if most else "")
    if most is not None and seconds > parse_duration(most).total_seconds():
        raise ValueError(too_long)
    try:
        return timedelta(seconds=seconds)
    except OverflowError:  # also for infinity
        raise ValueError(too_long) from None


def parse_size(text: str | int) -> int:
    """Read a positive byte count: an int, or ``"512KB"``, ``"16MB"``, ``"1GB"`` (1024-based).

    Raises ValueError with a message meant for the user.
    """
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a size; {_SIZE_HINT}")
    if isinstance(text, int):
        size = text
    else:
        match = _SIZE_RE.fullmatch("".join(text.split()))
        if not match:
            raise ValueError(f"{text!r} is not a size; {_SIZE_HINT}")
        scaled = float(match["n"]) * _SIZE_UNITS[(match["unit"] or "")[:1].lower()]
        if not math.isfinite(scaled):  # more digits than a float holds
            raise ValueError(f"the size {text!r} is too large")
        size = int(scaled)
    if size <= 0:
        raise ValueError(f"the size must be more than zero, got {text!r}")
    return size


# --------------------------------------------------------------------------- field validators
# Each takes whatever YAML produced and either returns the clean value or
# raises ValueError with a message that tells the user what to write.


def _describe(value: Any) -> str:
    """Name a YAML value the way a user would recognise it in their file."""
    if value is None:
        return "nothing (the value is empty)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return repr(str(value))
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _text(value: Any) -> str:
    """Non-empty text; numbers count too, since YAML turns ``2024`` into an int."""
    if value is None or isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected text, got {_describe(value)}")
    text = str(value).strip()
    if not text:
        raise ValueError("is empty; remove the key to use the default, or give it a value")
    return text


def _optional_text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, str) and not value.strip()) else _text(value)


# Every number has a ceiling: a value the program cannot hold (a date past
# the year 9999, an integer wider than SQLite's) must be refused here, with
# its line, and not fail each poll or publish later. Each ceiling is far
# above any sensible use of its setting, so it only ever stops a typo.


def _whole_number(least: int, most: int) -> Callable[[Any], int]:
    """A validator for an int from `least` to `most` (a count, a limit)."""

    def validate(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a whole number, got {_describe(value)}")
        if value < least:
            raise ValueError(
                f"must be 0 or more, got {value}"
                if least == 0
                else f"must be at least {least}, got {value}"
            )
        if value > most:
            raise ValueError(f"must be at most {most}, got {value}")
        return int(value)

    return validate


def _duration_up_to(most: str) -> Callable[[Any], timedelta]:
    """A validator for a duration no longer than `most` (written as the user would)."""
    parse_duration(most)  # a ceiling that is not a duration fails on import, not on use

    def validate(value: Any) -> timedelta:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"expected a duration, got {_describe(value)}; {_DURATION_HINT}")
        return _bounded_duration(value, most)

    return validate


def _seconds_up_to(most: str) -> Callable[[Any], float]:
    """Like `_duration_up_to`, in seconds, as the fetch limits take them."""
    duration = _duration_up_to(most)
    return lambda value: duration(value).total_seconds()


def _size_up_to(most: str) -> Callable[[Any], int]:
    """A validator for a byte count no larger than `most` (written as the user would)."""
    limit = parse_size(most)

    def validate(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError(f"expected a size, got {_describe(value)}; {_SIZE_HINT}")
        size = parse_size(value)
        if size > limit:
            written = value if isinstance(value, int) else str(value)
            raise ValueError(f"the size {written!r} is too large; at most {most}")
        return size

    return validate


#: Polls further apart than a year are a feed forgotten, not a schedule; far
#: below what overflows a date (about 8,000 years from now).
_interval = _duration_up_to("365d")
#: One exchange with one server; `run` waits for the slowest of a poll.
_timeout = _seconds_up_to("1h")
#: Bodies are held in memory whole.
_body_size = _size_up_to("1GB")
#: Stories on a page or in an output feed, entries read from a document,
#: characters of a title or a URL: all rendered or stored whole.
_count = _whole_number(1, 1_000_000)


def _http_url(value: Any) -> str:
    """An absolute http(s) URL with a host; returned stripped but otherwise as written."""
    if not isinstance(value, str):
        raise ValueError(f"expected an http(s) URL, got {_describe(value)}")
    url = str(value).strip()
    if not url:
        raise ValueError("is empty; expected an http(s) URL")
    if any(ch.isspace() for ch in url):
        raise ValueError(f"{url!r} contains spaces; percent-encode them as %20")
    parts = urlsplit(url)
    if not parts.scheme:
        raise ValueError(f"{url!r} has no scheme; write e.g. 'https://{url.lstrip('/')}'")
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http or https URL")
    try:
        host, _port = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    if not host:
        raise ValueError(f"{url!r} has no host name")
    return url


def _base_url(value: Any) -> str:
    """The public address of output_dir; always ends with "/" so joins stay inside it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(
            "is empty; set it to the public URL where output_dir is served, "
            "e.g. https://news.example.org/"
        )
    url = _http_url(value)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r} must not have a query (?...) or fragment (#...)")
    return url if url.endswith("/") else url + "/"


def _database(value: Any) -> str:
    url = _text(value)
    if not re.match(r"[A-Za-z][A-Za-z0-9+.\-]*://", url):
        raise ValueError(
            f"{url!r} is not a database URL; use e.g. sqlite:///var/aggregator.db "
            "or postgresql://user@host/dbname"
        )
    return url


def _timezone(value: Any) -> str:
    name = _text(value)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        close = difflib.get_close_matches(name, sorted(available_timezones()), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else "; use e.g. UTC or Europe/Berlin"
        raise ValueError(f"unknown time zone {name!r}{hint}") from None
    return name


def _time_of_day(value: Any) -> time:
    """``"HH:MM"``; also the int YAML 1.1 makes of an unquoted ``7:00`` (7*60+0 = 420)."""
    hint = 'use HH:MM on a 24-hour clock, in quotes, e.g. "07:00"'
    if isinstance(value, int) and not isinstance(value, bool):
        # A sexagesimal int always has an hour digit 1-9, so it is >= 60; a
        # smaller number is a bare hour or minute we cannot read reliably.
        if 60 <= value < 24 * 60:
            return time(value // 60, value % 60)
        raise ValueError(f"{value} is not a time of day; {hint}")
    if isinstance(value, str):
        match = re.fullmatch(r"(\d{1,2}):(\d{2})", value.strip())
        if match and int(match[1]) < 24 and int(match[2]) < 60:
            return time(int(match[1]), int(match[2]))
        raise ValueError(f"{str(value)!r} is not a time of day; {hint}")
    raise ValueError(f"expected a time of day, got {_describe(value)}; {hint}")


def _language(value: Any) -> str:
    tag = _text(value)
    if not re.fullmatch(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*", tag):
        raise ValueError(f"{tag!r} is not a language tag; use e.g. en, de, zh-CN")
    return tag


def _slug(value: Any) -> str:
    slug = _text(value)
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", slug):
        suggestion = slugify(slug)
        hint = f" (e.g. {suggestion!r})" if suggestion and suggestion != RESERVED_SLUG else ""
        raise ValueError(
            f"{slug!r} is not a valid slug; use lower-case letters, digits and hyphens, "
            f"starting with a letter or digit{hint}"
        )
    return slug


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_describe(value)}")
    return value


def _posts_format(value: Any) -> str:
    name = _text(value).lower()
    if name not in POST_FORMATS:
        close = difflib.get_close_matches(name, POST_FORMATS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(
            f"unknown post format {name!r}{hint}; use one of {', '.join(POST_FORMATS)}"
        )
    return name


def _one_or_many(value: Any) -> Any:
    """Let ``categories: tech`` stand for ``categories: [tech]``; empty means none."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


def _none_is_empty(value: Any) -> Any:
    """An optional section whose keys are all commented out reads as defaults."""
    return {} if value is None else value


# --------------------------------------------------------------------------- schema


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _File(_Model):
    site: Any
    feeds: Any
    categories: Any = None


class _Fetch(_Model):
    connect_timeout: Annotated[float, PlainValidator(_timeout)] = _FETCH_DEFAULTS.connect_timeout
    read_timeout: Annotated[float, PlainValidator(_timeout)] = _FETCH_DEFAULTS.read_timeout
    deadline: Annotated[float, PlainValidator(_timeout)] = _FETCH_DEFAULTS.deadline
    max_body_bytes: Annotated[int, PlainValidator(_body_size)] = _FETCH_DEFAULTS.max_body_bytes
    max_decoded_bytes: Annotated[int, PlainValidator(_body_size)] = (
        _FETCH_DEFAULTS.max_decoded_bytes
    )
    # Browsers give up after 20; a feed behind more is not coming back.
    max_redirects: Annotated[int, PlainValidator(_whole_number(0, 100))] = (
        _FETCH_DEFAULTS.max_redirects
    )
    # Each is a connection held open: past a thousand, the process runs out
    # of file descriptors (1024 by default) before the servers answer.
    concurrency: Annotated[int, PlainValidator(_whole_number(1, 1000))] = (
        _FETCH_DEFAULTS.concurrency
    )
    max_entries_per_feed: Annotated[int, PlainValidator(_count)] = (
        _FETCH_DEFAULTS.max_entries_per_feed
    )
    max_title_chars: Annotated[int, PlainValidator(_count)] = _FETCH_DEFAULTS.max_title_chars
    max_url_chars: Annotated[int, PlainValidator(_count)] = _FETCH_DEFAULTS.max_url_chars


class _Site(_Model):
    title: Annotated[str, PlainValidator(_text)] = _DEFAULT_TITLE
    base_url: Annotated[str, PlainValidator(_base_url)]
    output_dir: Annotated[str, PlainValidator(_text)] = _DEFAULT_OUTPUT_DIR
    database: Annotated[str, PlainValidator(_database)] = _DEFAULT_DATABASE
    timezone: Annotated[str, PlainValidator(_timezone)] = _DEFAULT_TIMEZONE
    digest_time: Annotated[time, PlainValidator(_time_of_day)] = _DEFAULT_DIGEST_TIME
    interval: Annotated[timedelta, PlainValidator(_interval)] = _DEFAULT_INTERVAL
    max_entries: Annotated[int, PlainValidator(_count)] = _DEFAULT_MAX_ENTRIES
    digest_per_category: Annotated[int, PlainValidator(_count)] = 30
    language: Annotated[str, PlainValidator(_language)] = "en"
    fetch: Annotated[_Fetch, BeforeValidator(_none_is_empty)] = Field(default_factory=_Fetch)
    posts_dir: Annotated[str | None, PlainValidator(_optional_text)] = None
    posts_format: Annotated[str, PlainValidator(_posts_format)] = POST_FORMATS[0]
    posts_raw: Annotated[bool, PlainValidator(_flag)] = False


class _Feed(_Model):
    url: Annotated[str, PlainValidator(_http_url)]
    name: Annotated[str | None, PlainValidator(_optional_text)] = None
    categories: Annotated[
        list[Annotated[str, PlainValidator(_text)]], BeforeValidator(_one_or_many)
    ] = Field(default_factory=list)
    interval: Annotated[timedelta | None, PlainValidator(_interval)] = None


class _CategoryOptions(_Model):
    slug: Annotated[str | None, PlainValidator(_slug)] = None


_MISSING_HINTS = {
    "site": "required: a mapping with at least base_url",
    "feeds": "required: a list of feeds, each starting with '- url:' (may be empty: feeds: [])",
    "base_url": "required: the public URL where output_dir is served, "
    "e.g. https://news.example.org/",
    "url": "required: the feed's http(s) URL",
}

# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class _Issue:
    """A problem located by its path in the document; lines are looked up at the end."""

    loc: Loc
    message: str


_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], data: Any, prefix: Loc, issues: list[_Issue]) -> _M | None:
    """Validate one section, recording each pydantic error as an `_Issue`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            issues.append(_Issue(prefix + tuple(err["loc"]), _explain(err, model)))
        return None


def _explain(err: ErrorDetails, model: type[BaseModel]) -> str:
    """Turn one pydantic error into a sentence for the user."""
    kind, loc = err["type"], err["loc"]
    if kind == "value_error" and "error" in err.get("ctx", {}):
        return str(err["ctx"]["error"])
    if kind in ("extra_forbidden", "invalid_key") and loc:
        owner = _model_at(model, loc[:-1])
        allowed = list(owner.model_fields) if owner else []
        return _unknown_key(loc[-1], allowed)
    if kind == "missing" and loc:
        return _MISSING_HINTS.get(str(loc[-1]), "required key is missing")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of keys, got {_describe(err['input'])}"
    if kind == "list_type":
        return f"expected a list, got {_describe(err['input'])}"
    return err["msg"]


def _unknown_key(key: object, allowed: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(key), allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {str(key)!r}{hint}; allowed keys here: {', '.join(allowed)}"


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The nested model that a path inside `model` lands on, for listing its keys."""
    current: Any = model
    for part in loc:
        current = _as_model(current)
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return None
        current = current.model_fields[part].annotation
    return _as_model(current)


def _as_model(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    if get_origin(tp) in (Union, types.UnionType, Annotated):
        for arg in get_args(tp):
            found = _as_model(arg)
            if found:
                return found
    return None


def _line_of(node: Any, part: str | int) -> int | None:
    """1-based line of a mapping key or list item, if ruamel recorded one."""
    lc: Any = getattr(node, "lc", None)
    try:
        position = lc.key(part) if isinstance(node, Mapping) else lc.item(part)
        return int(position[0]) + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return None  # e.g. keys brought in by a YAML merge (<<:) have no position


def _locate(doc: Any, loc: Loc) -> tuple[int | None, str]:
    """Follow `loc` through the document: the deepest known line and a dotted key.

    A key that is missing is still named, at the line of the mapping that
    should hold it; path parts pydantic adds for its own bookkeeping are skipped.
    """
    node, line, key = doc, None, ""
    for part in loc:
        if isinstance(node, Mapping) and part in node:
            line = _line_of(node, part) or line
            key = f"{key}.{part}" if key else str(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            line = _line_of(node, part) or line
            key = f"{key}[{part}]"
            node = node[part]
        else:
            if isinstance(node, Mapping) and isinstance(part, str) and "[" not in part:
                key = f"{key}.{part}" if key else part
            break
    return line, key


# --------------------------------------------------------------------------- reading


def _read_bytes(path: Path) -> bytes:
    """The bytes of feeds.yaml at `path`; ConfigError when it cannot be read."""
    name = str(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        where = "" if path.is_absolute() else f" (looked for {path.absolute()})"
        raise ConfigError([ConfigProblem(name, None, "(file)", f"file not found{where}")]) from None
    except IsADirectoryError:
        problem = ConfigProblem(name, None, "(file)", "is a directory, not a YAML file")
        raise ConfigError([problem]) from None
    except OSError as exc:
        problem = ConfigProblem(name, None, "(file)", f"cannot read it: {exc.strerror or exc}")
        raise ConfigError([problem]) from None


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        message = f"is not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        raise ConfigError([ConfigProblem(str(path), line, "(file)", message)]) from None


def _parse(text: str, path: Path) -> Any:
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        # A mark at the end of the stream sits past the last line; point at that line.
        last_line = max(1, len(text.splitlines()))
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and exc.context_mark is not None:
            context_line = min(exc.context_mark.line + 1, last_line)
            message += f" ({exc.context} starting on line {context_line})"
        if "\\t" in message:
            message += "; indent with spaces, not tabs"
        line = min(mark.line + 1, last_line) if mark is not None else None
        raise ConfigError([ConfigProblem(str(path), line, "(yaml)", message)]) from None
    except YAMLError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "(yaml)", str(exc))]) from None


# --------------------------------------------------------------------------- building


def load_config(path: Path) -> Config:
    """Read and validate feeds.yaml at `path`.

    Relative ``output_dir``, ``posts_dir`` and sqlite paths are resolved against the file's
    own directory, so the result does not depend on the working directory.

    Raises ConfigError listing every problem found, each with file, line and key.
    """
    return config_from_bytes(_read_bytes(path), path)


def config_from_bytes(data: bytes, path: Path) -> Config:
    """Validate `data`, the contents of feeds.yaml at `path` (see `load_config`)."""
    text = _decode(data, path)
    # libyaml reads a thousand feeds in a tenth of the time the round-trip
    # parser takes, which was most of a quiet `update`; only that parser
    # knows lines, so it reads any file the quick pass finds a problem in.
    plain = _parse_plain(text)
    if plain is not None:
        config = build_config(plain, path, locate=False)
        if config is not None:
            return config
    config = build_config(_parse(text, path), path, locate=True)
    assert config is not None  # with locate=True, problems raise
    return config


def _parse_plain(text: str) -> Any:
    """The file as plain values, or None when the quick parser has any objection."""
    try:
        return YAML(typ="safe", pure=False).load(text)
    except Exception:  # whatever it is, the round-trip parser reports it with its line
        return None


def build_config(doc: Any, path: Path, *, locate: bool) -> Config | None:
    """A `Config` from a parsed file; with problems, None, or with `locate` ConfigError.

    Locating problems needs `doc` from the round-trip parser, which keeps lines.
    """
    if not isinstance(doc, Mapping):
        message = (
            "the file is empty; it needs at least 'site: {base_url: ...}' and 'feeds: []'"
            if doc is None
            else f"the top level must be a mapping with site: and feeds:, got {_describe(doc)}"
        )
        if not locate:
            return None
        raise ConfigError([ConfigProblem(str(path), 1, "(document)", message)])

    issues: list[_Issue] = []
    _validate(_File, doc, (), issues)
    site = _validate(_Site, doc["site"], ("site",), issues) if "site" in doc else None
    feeds = _check_feeds(doc, issues)
    options = _check_category_options(doc, issues)
    categories = _assemble_categories(doc, feeds, options, issues)
    _check_duplicate_urls(doc, feeds, issues)

    if issues or site is None:
        if not locate:
            return None
        located = [(_locate(doc, issue.loc), issue.message) for issue in issues]
        located.sort(key=lambda item: item[0][0] or 0)
        problems = [ConfigProblem(str(path), line, key, msg) for (line, key), msg in located]
        raise ConfigError(problems)

    # A category under `categories:` that no feed names any more has nothing to
    # publish: its feeds leave the outputs (and the digest's links, the OPML)
    # as when its last source is removed, instead of being written empty.
    named = {name for _index, feed in feeds for name in feed.categories}
    base_dir = path.absolute().parent
    return Config(
        path=path.absolute(),
        site=_site_settings(site, base_dir),
        feeds=tuple(
            FeedSource(
                url=feed.url,
                name=feed.name,
                categories=tuple(dict.fromkeys(feed.categories)),
                interval=feed.interval or site.interval,
            )
            for _index, feed in feeds
        ),
        categories=tuple(c for c in categories if c.name in named),
    )


def _check_feeds(doc: Mapping[Any, Any], issues: list[_Issue]) -> list[tuple[int, _Feed]]:
    """Validate each feed on its own, so one bad entry does not hide the others."""
    if "feeds" not in doc:
        return []
    raw = doc["feeds"]
    if not isinstance(raw, list):
        issues.append(
            _Issue(
                ("feeds",),
                f"expected a list of feeds, each starting with '- url:', got {_describe(raw)}"
                + (" (write 'feeds: []' for none)" if raw is None else ""),
            )
        )
        return []
    valid = []
    for index, item in enumerate(raw):
        if isinstance(item, str):
            message = f"expected a mapping with url:, got {str(item)!r}; write '- url: {item}'"
            issues.append(_Issue(("feeds", index), message))
            continue
        feed = _validate(_Feed, item, ("feeds", index), issues) or _salvage_feed(item)
        if feed is not None:
            valid.append((index, feed))
    return valid


def _salvage_feed(item: Any) -> _Feed | None:
    """The url and categories of a feed that failed elsewhere, for the cross-checks.

    Its own problems are already recorded; this only lets duplicate URLs and
    slug clashes involving it be reported in the same run.
    """
    if not isinstance(item, Mapping):
        return None
    for keys in (("url", "categories"), ("url",)):
        try:
            return _Feed.model_validate({k: item[k] for k in keys if k in item})
        except ValidationError:
            continue
    return None


def _check_category_options(
    doc: Mapping[Any, Any], issues: list[_Issue]
) -> dict[str, tuple[Any, _CategoryOptions]]:
    """The optional top-level `categories:` mapping: name -> (key as written, options)."""
    raw = doc.get("categories")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        message = f"expected a mapping of category names to options, got {_describe(raw)}"
        issues.append(_Issue(("categories",), message))
        return {}
    options: dict[str, tuple[Any, _CategoryOptions]] = {}
    for key, value in raw.items():
        loc: Loc = ("categories", key)
        try:
            name = _text(key)
        except ValueError as exc:
            issues.append(_Issue(loc, f"category name {exc}"))
            continue
        if isinstance(value, str):
            message = f"expected options such as {{slug: {value}}}, got {str(value)!r}"
            issues.append(_Issue(loc, message))
            continue
        parsed = _validate(_CategoryOptions, _none_is_empty(value), loc, issues)
        if parsed is not None:
            options[name] = (key, parsed)
    return options


def _assemble_categories(
    doc: Mapping[Any, Any],
    feeds: list[tuple[int, _Feed]],
    options: dict[str, tuple[Any, _CategoryOptions]],
    issues: list[_Issue],
) -> tuple[Category, ...]:
    """Every category named anywhere, in order of first appearance, with a unique slug."""
    from_feeds: list[tuple[str, Loc]] = []
    for index, feed in feeds:
        field: Loc = ("feeds", index, "categories")
        listed = isinstance(doc["feeds"][index].get("categories"), list)
        for position, name in enumerate(feed.categories):
            from_feeds.append((name, (*field, position) if listed else field))
    from_section: list[tuple[str, Loc]] = [
        (name, ("categories", key)) for name, (key, _opts) in options.items()
    ]
    keys = list(doc)
    section_first = "categories" in doc and "feeds" in doc
    section_first = section_first and keys.index("categories") < keys.index("feeds")
    mentions = from_section + from_feeds if section_first else from_feeds + from_section

    result: list[Category] = []
    seen_names: set[str] = set()
    by_slug: dict[str, tuple[str, Loc]] = {}
    for name, mention_loc in mentions:
        if name in seen_names:
            continue
        seen_names.add(name)
        explicit = options[name][1].slug if name in options else None
        loc: Loc
        if explicit is not None:
            slug, loc = explicit, ("categories", options[name][0], "slug")
        else:
            slug, loc = slugify(name), mention_loc
        if not slug:
            issues.append(
                _Issue(
                    loc,
                    f"category {name!r} has no letters or digits to make a file name from; "
                    f"give it a slug under categories:, e.g. {name!r}: {{slug: my-category}}",
                )
            )
        elif slug == RESERVED_SLUG:
            issues.append(
                _Issue(
                    loc,
                    f"category {name!r} would get the slug 'all', which is reserved for the "
                    "merged output of every category; give it another slug under categories:",
                )
            )
        elif slug in by_slug:
            first_name, first_loc = by_slug[slug]
            first_line, _key = _locate(doc, first_loc)
            where = f" (line {first_line})" if first_line else ""
            issues.append(
                _Issue(
                    loc,
                    f"categories {first_name!r}{where} and {name!r} both get the slug "
                    f"{slug!r}; give one of them an explicit slug under categories:",
                )
            )
        else:
            by_slug[slug] = (name, loc)
            result.append(Category(name=name, slug=slug))
    return tuple(result)


def _url_key(url: str) -> str:
    """Compare URLs as written, except that scheme and host are case-insensitive."""
    parts = urlsplit(url)
    return parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()).geturl()


def _check_duplicate_urls(
    doc: Mapping[Any, Any], feeds: list[tuple[int, _Feed]], issues: list[_Issue]
) -> None:
    first_seen: dict[str, int] = {}
    for index, feed in feeds:
        key = _url_key(feed.url)
        if key not in first_seen:
            first_seen[key] = index
            continue
        first = first_seen[key]
        line, _key = _locate(doc, ("feeds", first, "url"))
        where = f"line {line}, feeds[{first}]" if line else f"feeds[{first}]"
        issues.append(
            _Issue(
                ("feeds", index, "url"),
                f"{feed.url!r} is already listed ({where}); list each feed once "
                "and give it all its categories",
            )
        )


def _site_settings(site: _Site, base_dir: Path) -> SiteSettings:
    fetch = site.fetch
    return SiteSettings(
        title=site.title,
        base_url=site.base_url,
        output_dir=_resolve_path(site.output_dir, base_dir),
        database_url=_resolve_database(site.database, base_dir),
        timezone=site.timezone,
        digest_time=site.digest_time,
        interval=site.interval,
        max_entries=site.max_entries,
        digest_per_category=site.digest_per_category,
        language=site.language,
        fetch=FetchLimits(
            connect_timeout=fetch.connect_timeout,
            read_timeout=fetch.read_timeout,
            deadline=fetch.deadline,
            max_body_bytes=fetch.max_body_bytes,
            max_decoded_bytes=fetch.max_decoded_bytes,
            max_redirects=fetch.max_redirects,
            concurrency=fetch.concurrency,
            max_entries_per_feed=fetch.max_entries_per_feed,
            max_title_chars=fetch.max_title_chars,
            max_url_chars=fetch.max_url_chars,
        ),
        posts_dir=_resolve_path(site.posts_dir, base_dir) if site.posts_dir else None,
        posts_format=site.posts_format,
        posts_raw=site.posts_raw,
    )


def _resolve_path(text: str, base_dir: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base_dir / path


def _resolve_database(url: str, base_dir: Path) -> str:
    """Anchor a relative sqlite file path at the config file's directory.

    ``sqlite:///rel.db`` becomes ``sqlite:////<base_dir>/rel.db``; absolute
    paths (``sqlite:////abs``), in-memory databases and other engines are
    returned untouched.
    """
    scheme, _sep, rest = url.partition("://")
    if scheme.split("+", 1)[0].lower() != "sqlite" or not rest.startswith("/"):
        return url
    file_part, question, query = rest[1:].partition("?")
    if file_part in ("", ":memory:") or file_part.startswith(("/", "file:")):
        return url
    return f"{scheme}:///{base_dir / file_part}{question}{query}"
