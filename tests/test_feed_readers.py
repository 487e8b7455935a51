"""Every output feed read by two real feed readers: newsboat and lemon24's `reader`.

One module-scoped run: four source feeds (RSS and Atom, CJK and Latin titles,
ampersands and quotes, relative links, one story cross-posted by two feeds)
are served on 127.0.0.1, `aggregator update` publishes them, and `var/public`
is then served as it would be by any web server. Each Atom and RSS output is
read by newsboat (`-x reload` on a fresh cache, then its SQLite cache is read)
and by `reader`; both must see exactly the stories the aggregator published
and that the sources carried, with titles intact and absolute links. Every
JSON Feed output is validated against the schema of tests/test_publish.py.

newsboat gets one fresh cache per output feed: it identifies items by guid
across all of its feeds, so one cache subscribed to both all.atom and
tech.atom (which carry the same ids) files each shared story under one of
them only (all.atom then shows 4 of its 10 entries).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import jsonschema
import pytest

from tests.conftest import run_cli, write_config_file
from tests.feedbuilder import Item, atom, rss
from tests.httpserver import Reply, serve
from tests.test_publish import JSON_FEED_SCHEMA

RSS_TYPE = {"Content-Type": "application/rss+xml; charset=utf-8"}
ATOM_TYPE = {"Content-Type": "application/atom+xml; charset=utf-8"}

CJK_TITLE = "两大摄影巨头强强联手！松下与徕卡签署全面战略合作协议"
CROSS_LINK = "https://shared.example.net/2024/05/open-database-2-0.html"
CROSS_TITLES = frozenset({"开源数据库发布 2.0 版：“更快”且更省内存", "Open database 2.0 ships"})
AMP_LINK = "https://site.test/search?q=r%26d&lang=en&page=2"

#: Output slugs: the merged feed and every configured category (新媒体 → xin-mei-ti).
SLUGS = ("all", "xin-mei-ti", "tech", "science")
FEED_NAMES = tuple(f"{slug}.{ext}" for slug in SLUGS for ext in ("atom", "rss"))
CLIENTS = ("newsboat", "reader")
NEWSBOAT_TIMEOUT = 60
HREF = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


@dataclass(frozen=True)
class Story:
    """What a subscriber must see for one source story."""

    titles: frozenset[str]  # acceptable titles (two for the cross-posted story)
    link: str
    slugs: frozenset[str]  # output feeds it belongs to, "all" included
    content_urls: tuple[str, ...] = ()  # what relative links in its content must become


@dataclass(frozen=True)
class Seen:
    """One entry as a client stored it."""

    title: str
    link: str
    content: str


@dataclass
class Published:
    public_dir: Path
    public_base: str  # URL of var/public, ending in "/"
    source_base: str  # URL of the source feeds' server
    urls: dict[str, str]  # "tech.atom" -> its URL on the public server
    stories: list[Story]
    seconds: float

    def expected(self, feed_name: str) -> dict[str, Story]:
        slug = feed_name.rsplit(".", 1)[0]
        return {s.link: s for s in self.stories if slug in s.slugs}


# --------------------------------------------------------------------------- the run


def _date(day: int, hour: int) -> tuple[str, str]:
    """The same instant in RFC 822 (RSS) and RFC 3339 (Atom); distinct per story."""
    rfc822 = f"{['Wed', 'Thu', 'Fri', 'Sat'][day - 1]}, {day:02d} May 2024 {hour:02d}:00:00 GMT"
    return rfc822, f"2024-05-{day:02d}T{hour:02d}:00:00Z"


def _sources() -> tuple[dict[str, Reply], list[dict[str, Any]]]:
    """Four source feeds: their routes and their feeds.yaml entries (url filled in later)."""
    kuai = [
        Item(
            CJK_TITLE,
            "https://news.mydrivers.test/1/835/835000.htm",
            "kuai-835000",
            _date(1, 9)[0],
            '<p>松下与徕卡<img src="/img/20220531/s_9bd0259913d2.png"> '
            '<a href="835001.htm">下一篇</a></p>',
        ),
        Item(
            "少数派：「效率工具」推荐 & “引号”测试",
            "https://news.mydrivers.test/1/835/835002.htm",
            "kuai-835002",
            _date(1, 10)[0],
            "<p>效率 &amp; 工具</p>",
        ),
        Item(
            "开源数据库发布 2.0 版：“更快”且更省内存",
            CROSS_LINK,
            "kuai-cross",
            _date(1, 11)[0],
            "<p>跨站同发</p>",
        ),
    ]
    sspai = [
        Item(
            '他说"你好" & 再见：中文标题里的引号',
            "/post/77",  # relative entry link: resolved against the source feed's URL
            "urn:sspai:77",
            _date(2, 8)[1],
            '<p>正文<a href="/post/78">相关阅读</a></p>',
        ),
        Item(
            "新媒体周报 第 12 期",
            "https://sspai.test/post/79",
            "urn:sspai:79",
            _date(2, 9)[1],
            "<p>周报</p>",
        ),
    ]
    hn = [
        Item(
            'Tom & Jerry\'s "quoted" guide to R&D',
            AMP_LINK,
            "hn-1",
            _date(3, 7)[0],
            '<p>See <a href="comments/1">the comments</a> &amp; <img src="../img/logo.png"></p>',
        ),
        Item(
            "Open database 2.0 ships",
            CROSS_LINK,
            "hn-cross",
            _date(3, 8)[0],
            "<p>Cross-posted</p>",
        ),
        Item(
            'It\'s <b>bold</b> & "plain"',
            "https://news.ycombinator.test/item?id=3",
            "hn-3",
            _date(3, 9)[0],
            "<p>Markup in a title is not a title</p>",
        ),
        Item(
            "Why I <3 C++ & 5 < 6 > 4",
            "https://news.ycombinator.test/item?id=4",
            "hn-4",
            _date(3, 10)[0],
            "<p>Angle brackets that are not markup</p>",
        ),
    ]
    planet = [
        Item(
            "Science & nature: 'single' and \"double\" quotes",
            "https://planet.test/2024/05/quotes.html",
            "urn:planet:1",
            _date(4, 6)[1],
            '<p><a href="../docs/intro.html">intro</a></p>',
        ),
        Item(
            "Weekly notes #19",
            "https://planet.test/2024/05/notes-19.html",
            "urn:planet:2",
            _date(4, 7)[1],
            "<p>Notes</p>",
        ),
    ]
    routes = {
        "/kuai/rss.xml": Reply(body=rss("最新新闻", kuai), headers=RSS_TYPE),
        "/sspai/feed.atom": Reply(body=atom("少数派", sspai), headers=ATOM_TYPE),
        "/hn/rss": Reply(body=rss("Hacker News", hn), headers=RSS_TYPE),
        "/planet/atom.xml": Reply(body=atom("Planet", planet), headers=ATOM_TYPE),
    }
    feeds = [
        {"path": "/kuai/rss.xml", "name": "快科技（原驱动之家）", "categories": ["新媒体"]},
        {"path": "/sspai/feed.atom", "name": "少数派", "categories": ["新媒体"]},
        {"path": "/hn/rss", "name": "Hacker News", "categories": ["tech"]},
        {"path": "/planet/atom.xml", "name": "Planet", "categories": ["tech", "science"]},
    ]
    return routes, feeds


def _stories(source: str) -> list[Story]:
    """The source stories as a subscriber of the outputs must see them."""

    def story(title: str, link: str, *slugs: str, urls: tuple[str, ...] = ()) -> Story:
        return Story(frozenset({title}), link, frozenset({"all", *slugs}), urls)

    return [
        story(
            CJK_TITLE,
            "https://news.mydrivers.test/1/835/835000.htm",
            "xin-mei-ti",
            # Resolved against the entry's page, as a browser on it would.
            urls=(
                "https://news.mydrivers.test/img/20220531/s_9bd0259913d2.png",
                "https://news.mydrivers.test/1/835/835001.htm",
            ),
        ),
        story(
            "少数派：「效率工具」推荐 & “引号”测试",
            "https://news.mydrivers.test/1/835/835002.htm",
            "xin-mei-ti",
        ),
        Story(CROSS_TITLES, CROSS_LINK, frozenset({"all", "xin-mei-ti", "tech"})),
        story(
            '他说"你好" & 再见：中文标题里的引号',
            f"{source}/post/77",
            "xin-mei-ti",
            urls=(f"{source}/post/78",),
        ),
        story("新媒体周报 第 12 期", "https://sspai.test/post/79", "xin-mei-ti"),
        story(
            'Tom & Jerry\'s "quoted" guide to R&D',
            AMP_LINK,
            "tech",
            urls=("https://site.test/comments/1", "https://site.test/img/logo.png"),
        ),
        story('It\'s bold & "plain"', "https://news.ycombinator.test/item?id=3", "tech"),
        story("Why I <3 C++ & 5 < 6 > 4", "https://news.ycombinator.test/item?id=4", "tech"),
        story(
            "Science & nature: 'single' and \"double\" quotes",
            "https://planet.test/2024/05/quotes.html",
            "tech",
            "science",
            urls=("https://planet.test/2024/docs/intro.html",),
        ),
        story("Weekly notes #19", "https://planet.test/2024/05/notes-19.html", "tech", "science"),
    ]


class _FeedFiles(SimpleHTTPRequestHandler):
    """A static file server with the media types nginx's mime.types gives feeds."""

    extensions_map = {  # noqa: RUF012 - the stdlib declares it as a class attribute
        **SimpleHTTPRequestHandler.extensions_map,
        ".atom": "application/atom+xml",
        ".rss": "application/rss+xml",
        ".json": "application/feed+json",
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass


@functools.cache
def _reader_module() -> Any:
    """lemon24's reader, importable with the feedparser this project installs.

    reader 3.26 vendors a feedparser that does `import sgmllib`, a module it
    never declares: it came with feedparser's old dependency sgmllib3k, which
    feedparser 6.0.12+ replaced with feedparser-sgmllib (the same module under
    another name, which feedparser itself imports as `sgmllib`). Without
    sgmllib3k installed, reader fails on its first parse; alias the module the
    way feedparser does rather than test nothing. A no-op once sgmllib3k is there.
    """
    if importlib.util.find_spec("sgmllib") is None:
        sys.modules["sgmllib"] = importlib.import_module("feedparser_sgmllib")
    return pytest.importorskip("reader", reason="lemon24's reader is not installed")


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    """One `update` over the four sources; var/public then served on 127.0.0.1."""
    started = time.monotonic()
    routes, feeds = _sources()
    folder = tmp_path_factory.mktemp("readers")
    with serve(routes) as sources:
        for feed in feeds:
            feed["url"] = sources.url(feed.pop("path"))
        config = write_config_file(folder, feeds, max_entries=200, digest_per_category=100)
        result = run_cli("--config", str(config), "update")
    assert result.exit_code == 0, result.output
    public_dir = folder / "var" / "public"
    assert {p.name for p in (public_dir / "feeds").iterdir()} >= set(FEED_NAMES)

    handler = functools.partial(_FeedFiles, directory=str(public_dir))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = httpd.server_address[:2]
        base = f"http://{host!s}:{port}/"
        yield Published(
            public_dir=public_dir,
            public_base=base,
            source_base=sources.base_url,
            urls={name: f"{base}feeds/{name}" for name in FEED_NAMES},
            stories=_stories(sources.base_url),
            seconds=time.monotonic() - started,
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _parse_published(published: Published, feed_name: str) -> feedparser.FeedParserDict:
    parsed = feedparser.parse((published.public_dir / "feeds" / feed_name).read_bytes())
    assert not parsed.bozo, (feed_name, parsed.get("bozo_exception"))
    return parsed


# --------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class Reading:
    """One output feed as one client stored it; `error` when it could not read it."""

    title: str | None
    entries: list[Seen]
    error: str | None = None


def _run_newsboat(published: Published, work: Path) -> dict[str, Reading]:
    """`newsboat -x reload` once per output feed, each on a fresh cache; the caches read."""
    newsboat = shutil.which("newsboat")
    if newsboat is None:
        print("\nnewsboat: skipped, `newsboat` is not on PATH (Debian package newsboat)")
        pytest.skip("newsboat is not on PATH (install the Debian package newsboat)")
    home = work / "home"
    home.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "TERM": "dumb",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    runs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    for name, url in published.urls.items():
        run = work / name
        run.mkdir()
        (run / "urls").write_text(url + "\n", encoding="utf-8")
        (run / "config").write_text(
            f'download-timeout 10\nreload-threads 4\nerror-log "{run / "error.log"}"\n',
            encoding="utf-8",
        )
        command = [newsboat, "-x", "reload", "-u", str(run / "urls")]
        command += ["-c", str(run / "cache.db"), "-C", str(run / "config")]
        runs[name] = (
            subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=run,
            ),
            run,
        )

    readings: dict[str, Reading] = {}
    for name, (process, run) in runs.items():
        try:
            output = process.communicate(timeout=NEWSBOAT_TIMEOUT)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            output = process.communicate()[0] + f"\n(killed after {NEWSBOAT_TIMEOUT}s)".encode()
        log = run / "error.log"
        said = output.decode("utf-8", "replace") + (log.read_text("utf-8") if log.exists() else "")
        url = published.urls[name]
        if process.returncode != 0 or not (run / "cache.db").exists():
            readings[name] = Reading(None, [], f"exit {process.returncode}: {said}")
            continue
        with sqlite3.connect(run / "cache.db") as db:
            feeds = db.execute("SELECT rssurl, title FROM rss_feed").fetchall()
            rows = db.execute(
                "SELECT title, url, content FROM rss_item WHERE feedurl = ? ORDER BY id", (url,)
            ).fetchall()
        title = dict(feeds).get(url)
        error = None if [u for u, _ in feeds] == [url] else f"rss_feed holds {feeds}: {said}"
        entries = [Seen(t or "", link or "", content or "") for t, link, content in rows]
        readings[name] = Reading(title, entries, error)
    return readings


def _run_reader(published: Published, work: Path) -> dict[str, Reading]:
    """lemon24's reader: every output feed added to one fresh database and updated."""
    reader = _reader_module().make_reader(str(work / "reader.sqlite"))
    try:
        for url in published.urls.values():
            reader.add_feed(url)
        errors = {r.url: r.error for r in reader.update_feeds_iter(workers=4) if r.error}
        readings: dict[str, Reading] = {}
        for name, url in published.urls.items():
            feed = reader.get_feed(url)
            error = errors.get(url) or feed.last_exception
            entries = [
                Seen(
                    entry.title or "",
                    entry.link or "",
                    "\n".join([c.value for c in entry.content] + [entry.summary or ""]),
                )
                for entry in reader.get_entries(feed=url)
            ]
            readings[name] = Reading(feed.title, entries, repr(error) if error else None)
        return readings
    finally:
        reader.close()


def _read_with(client: str, published: Published, work: Path) -> dict[str, Reading]:
    started = time.monotonic()
    run = {"newsboat": _run_newsboat, "reader": _run_reader}[client]
    readings = run(published, work)
    width = max(len(url) for url in published.urls.values())
    lines = [f"\n{client}: entries seen per output feed", f"  {'feed':<{width}}  entries"]
    for name, reading in readings.items():
        seen = "error" if reading.error else str(len(reading.entries))
        lines.append(f"  {published.urls[name]:<{width}}  {seen:>7}")
    lines.append(f"  ({time.monotonic() - started:.1f}s)")
    print("\n".join(lines))
    return readings


@pytest.fixture(scope="module")
def newsboat_reading(
    published: Published, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Reading]:
    return _read_with("newsboat", published, tmp_path_factory.mktemp("newsboat"))


@pytest.fixture(scope="module")
def reader_reading(
    published: Published, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Reading]:
    return _read_with("reader", published, tmp_path_factory.mktemp("reader"))


def _reading(request: pytest.FixtureRequest, client: str) -> dict[str, Reading]:
    readings: dict[str, Reading] = request.getfixturevalue(f"{client}_reading")
    return readings


# --------------------------------------------------------------------------- checks


def _is_absolute_web_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def test_published_files_carry_exactly_the_source_stories(published: Published) -> None:
    """The yardstick the clients are held to: the files, read with feedparser."""
    print(f"\nupdate and publish: {published.seconds:.1f}s")
    for name in FEED_NAMES:
        expected = published.expected(name)
        entries = _parse_published(published, name).entries
        links = [e.get("link", "") for e in entries]
        assert sorted(links) == sorted(expected), name
        for entry in entries:
            assert entry.title in expected[entry.link].titles, (name, entry.title)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("feed_name", FEED_NAMES)
def test_client_sees_every_published_entry_intact(
    request: pytest.FixtureRequest, client: str, feed_name: str, published: Published
) -> None:
    reading = _reading(request, client)[feed_name]
    where = f"{client} reading {published.urls[feed_name]}"
    assert reading.error is None, f"{where}: {reading.error}"
    parsed = _parse_published(published, feed_name)
    assert reading.title == parsed.feed.title, where  # "Test digest — 新媒体" and the like
    in_file = {e.link: e.title for e in parsed.entries}
    expected = published.expected(feed_name)
    assert sorted(in_file) == sorted(expected), feed_name

    # Exactly the published entries, each once, every link absolute http(s).
    links = [entry.link for entry in reading.entries]
    assert sorted(links) == sorted(in_file), f"{where}: saw {links}"
    for entry in reading.entries:
        assert _is_absolute_web_url(entry.link), f"{where}: entry link {entry.link!r}"
        story = expected[entry.link]
        # The title the file carries, which is the source's: CJK and punctuation intact.
        assert entry.title == in_file[entry.link], f"{where}: {entry}"
        assert entry.title in story.titles, f"{where}: {entry}"
        # Links inside the content point where the source meant, not into var/public.
        urls = HREF.findall(entry.content)
        for url in urls:
            assert _is_absolute_web_url(url), f"{where}: {entry.link}: content link {url!r}"
            assert not url.startswith(published.public_base), (
                f"{where}: {entry.link}: content link {url!r} points into var/public"
            )
        missing = [url for url in story.content_urls if url not in urls]
        assert not missing, f"{where}: {entry.link}: {missing} not in {entry.content!r}"

    if feed_name.startswith(("all.", "xin-mei-ti.")):
        assert CJK_TITLE in {entry.title for entry in reading.entries}, where


@pytest.mark.parametrize("client", CLIENTS)
def test_cross_posted_story_is_seen_once_in_all_atom(
    request: pytest.FixtureRequest, client: str
) -> None:
    entries = _reading(request, client)["all.atom"].entries
    cross = [entry for entry in entries if entry.link == CROSS_LINK]
    assert len(cross) == 1, (client, cross)
    assert cross[0].title in CROSS_TITLES
    others = [entry for entry in entries if entry.link != CROSS_LINK]
    assert not any(entry.title in CROSS_TITLES for entry in others), (client, entries)


def test_every_json_output_of_the_run_matches_the_json_feed_schema(
    published: Published,
) -> None:
    outputs = sorted((published.public_dir / "feeds").glob("*.json"))
    assert {p.stem for p in outputs} == set(SLUGS)
    for path in outputs:
        raw = path.read_bytes()
        data = json.loads(raw.decode("utf-8"))
        jsonschema.validate(data, JSON_FEED_SCHEMA)
        assert data["feed_url"] == f"https://news.example.org/feeds/{path.name}"
        expected = published.expected(path.stem + ".json")
        links = [item["url"] for item in data["items"]]
        assert sorted(links) == sorted(expected), path.name
        for item in data["items"]:
            assert item["title"] in expected[item["url"]].titles, (path.name, item)
        if path.stem in ("all", "xin-mei-ti"):
            assert CJK_TITLE.encode() in raw, path.name  # UTF-8, not \u-escaped
