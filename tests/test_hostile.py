"""Every endpoint of ../shared/tools/hostile_server.py through `aggregator update`.

One configuration holds a feed for every endpoint of the server's catalogue
plus two healthy feeds of our own; `update` runs as a real process, twice.
Each endpoint is then checked against what its catalogue entry says, and the
results are printed as a table.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from lxml import etree

from tests.conftest import report, shared_path, write_config_file
from tests.feedbuilder import Item, rss
from tests.httpserver import Reply, serve

HEALTHY_TITLES = ("健康的订阅源：第一条", "Healthy feed: second item")
DEADLINE = 30  # site.fetch.deadline, the default
RUN_LIMIT = 60  # seconds the whole update may take
RSS_LIMIT_MB = 300


@dataclass(frozen=True)
class Run:
    seconds: float
    exit_code: int
    output: str
    peak_rss_mb: float


@dataclass(frozen=True)
class HostileRun:
    root: str  # http://127.0.0.1:PORT
    config: Path
    catalogue: dict[str, dict[str, Any]]  # example path -> endpoint entry
    first: Run
    second: Run
    hits_after_first: dict[str, Any]
    hits_after_second: dict[str, Any]
    feeds_mtimes: dict[str, int]
    status: dict[str, dict[str, Any]]  # feed URL -> status --json row (after the first run)


#: Runs a command and writes the peak RSS (KiB) of it alone to argv[1]. The
#: measurement needs a small parent: a child spawned straight from pytest
#: inherits pytest's own high-water mark across exec.
MEASURE = (
    "import resource, subprocess, sys;"
    "code = subprocess.call(sys.argv[2:]);"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss));"
    "sys.exit(code)"
)


def aggregator(config: Path, *args: str) -> Run:
    """Run `aggregator` as its own process and measure its own peak RSS."""
    peak_file = config.parent / f"peak-{time.monotonic_ns()}"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(peak_file), sys.executable, "-m", "aggregator",
         "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )  # fmt: skip
    peak_mb = int(peak_file.read_text()) / 1024
    output = done.stdout.decode("utf-8", "replace")
    return Run(time.monotonic() - started, done.returncode, output, peak_mb)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[str]:
    script = shared_path("tools", "hostile_server.py")
    process = subprocess.Popen(
        [sys.executable, str(script), "serve", "--port", "0", "--exit-with-parent"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    assert match, f"hostile server did not start: {line!r}"
    try:
        yield match[0]
    finally:
        process.kill()
        process.wait()


def status_rows(config: Path) -> dict[str, dict[str, Any]]:
    run = subprocess.run(
        [sys.executable, "-m", "aggregator", "--config", str(config), "status", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return {row["url"]: row for row in json.loads(run.stdout)["feeds"]}


@pytest.fixture(scope="module")
def hostile_run(
    hostile_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostileRun]:
    root = hostile_server
    catalogue = {
        path: endpoint
        for endpoint in get_json(f"{root}/_index.json")["endpoints"]
        for path, outcome in endpoint["examples"].items()
        if outcome != "none"
    }
    healthy = [
        Item(HEALTHY_TITLES[0], "https://healthy.test/1", "h1", "Mon, 01 Jan 2024 10:00:00 GMT"),
        Item(HEALTHY_TITLES[1], "https://healthy.test/2", "h2", "Mon, 01 Jan 2024 11:00:00 GMT"),
    ]
    routes = {"/a": Reply(body=rss("健康", healthy)), "/b": Reply(body=rss("B", healthy[1:]))}
    with serve(routes) as own:
        feeds = [
            {"url": f"{root}{path}", "name": path, "categories": ["hostile"]} for path in catalogue
        ]
        feeds += [
            {"url": own.url("/a"), "name": "healthy A", "categories": ["健康"]},
            {"url": own.url("/b"), "name": "healthy B", "categories": ["健康"]},
        ]
        config = write_config_file(tmp_path_factory.mktemp("hostile"), feeds)
        get_json(f"{root}/_reset")
        first = aggregator(config, "update")
        status = status_rows(config)
        hits_after_first = get_json(f"{root}/_hits")
        public = config.parent / "var" / "public"
        feeds_mtimes = {p.name: p.stat().st_mtime_ns for p in (public / "feeds").iterdir()}
        second = aggregator(config, "update")
        hits_after_second = get_json(f"{root}/_hits")
        yield HostileRun(
            root,
            config,
            catalogue,
            first,
            second,
            hits_after_first,
            hits_after_second,
            feeds_mtimes,
            status,
        )


def stored_stories(config: Path, url: str) -> list[tuple[str, bool]]:
    """(title, whether this feed owns the story) of each story the feed carries."""
    with sqlite3.connect(config.parent / "var" / "aggregator.db") as db:
        rows = db.execute(
            "SELECT s.title, s.primary_feed_id = f.id FROM stories s "
            "JOIN entry_sources e ON e.story_id = s.id "
            "JOIN feeds f ON f.id = e.feed_id WHERE f.url = ? ORDER BY s.title",
            (url,),
        )
        return [(title, bool(owned)) for title, owned in rows]


def stored_titles(config: Path, url: str) -> list[str]:
    return [title for title, _owned in stored_stories(config, url)]


def titles_match(listed: list[str], stories: list[tuple[str, bool]]) -> bool:
    """Every listed title is stored, except where another feed brought the same story first.

    A cross-posted story keeps the title of the feed that brought it first (the
    dedup rules), so its title says nothing of how this feed was read.
    """
    owned = {title for title, owned in stories if owned}
    shared = sum(1 for _title, owned in stories if not owned)
    return len(set(listed) - owned) <= shared and len(stories) >= len(listed)


def hits(snapshot: dict[str, Any], path: str) -> int:
    return int(snapshot["counts"].get(path, 0))


def test_update_finishes_in_bounded_time_and_memory(hostile_run: HostileRun) -> None:
    first = hostile_run.first
    print(
        f"\nhostile update: exit {first.exit_code}, {first.seconds:.1f}s, "
        f"peak RSS {first.peak_rss_mb:.0f} MB"
    )
    assert first.exit_code == 1, first.output[-3000:]  # some feeds failed, the rest went on
    assert first.seconds < RUN_LIMIT
    assert first.peak_rss_mb < RSS_LIMIT_MB


def test_every_endpoint_ends_as_its_catalogue_says(hostile_run: HostileRun) -> None:
    rows = []
    wrong = []
    for path, endpoint in sorted(hostile_run.catalogue.items()):
        url = hostile_run.root + path
        row = hostile_run.status[url]
        expected = endpoint["examples"][path]
        error = row["last_error"]
        stories = stored_stories(hostile_run.config, url)
        titles = [title for title, _owned in stories]
        if expected == "error":
            ok = row["state"] in ("error", "gone") and bool(error) and not titles
        elif expected == "entries":
            ok = row["state"] == "ok" and bool(titles)
            if endpoint.get("titles"):
                ok = ok and titles_match(endpoint["titles"], stories)
        else:  # either: an error with a message, or entries; never a crash
            ok = (row["state"] == "error" and bool(error)) or (
                row["state"] == "ok" and bool(titles)
            )
        ok = ok and "internal error" not in (error or "")
        rows.append((path, expected, row["state"], len(titles), error or row["last_warning"] or ""))
        if not ok:
            wrong.append((path, expected, row, titles[:5]))
    width = max(len(path) for path, *_ in rows)
    lines = [f"{'endpoint':<{width}}  expected  state  stored  error / warning"]
    for path, expected, state, count, message in rows:
        lines.append(f"{path:<{width}}  {expected:<8}  {state:<5}  {count:>6}  {message[:90]}")
    first = hostile_run.first
    lines.append(
        f"update: exit {first.exit_code}, {first.seconds:.1f} s, "
        f"peak RSS {first.peak_rss_mb:.0f} MB; {len(rows) - len(wrong)}/{len(rows)} as expected"
    )
    report("hostile endpoints", "\n".join(lines))
    assert not wrong, wrong
    html_page = hostile_run.status[f"{hostile_run.root}/html-page"]["last_error"]
    assert f"links to the feed {hostile_run.root}/ok" in html_page


def test_healthy_feeds_are_stored_and_published(hostile_run: HostileRun) -> None:
    public = hostile_run.config.parent / "var" / "public"
    category = feedparser.parse((public / "feeds" / "jian-kang.atom").read_bytes())
    titles = {entry.title for entry in category.entries}
    assert set(HEALTHY_TITLES) <= titles
    assert "健康的订阅源：第一条" in (public / "index.html").read_text("utf-8")


def test_every_output_is_valid_and_carries_nothing_it_must_not(hostile_run: HostileRun) -> None:
    config, root = hostile_run.config, hostile_run.root
    public = config.parent / "var" / "public"
    database = (config.parent / "var" / "aggregator.db").read_bytes()
    forbidden = [b"root:", b"XXE-CALLBACK-FETCHED", b"lollol", b"a" * 1001]
    for needle in forbidden[:3]:
        assert needle not in database, needle
    for bomb in ("/quadratic-blowup", "/billion-laughs"):
        assert all(len(title) < 1000 for title in stored_titles(config, root + bomb))
    for path in sorted(p for p in public.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for needle in forbidden:
            assert needle not in data, (path, needle)
        if path.suffix in (".atom", ".rss", ".opml"):
            etree.fromstring(data)
            if path.suffix != ".opml":
                parsed = feedparser.parse(data)
                assert not parsed.bozo, (path, parsed.get("bozo_exception"))
        elif path.suffix == ".json":
            document = json.loads(data)
            assert document["version"] == "https://jsonfeed.org/version/1.1"
        elif path.suffix == ".html":
            text = data.decode("utf-8")
            assert "Content-Security-Policy" in text and "<script" not in text.lower()
    assert hits(hostile_run.hits_after_second, "/xxe-callback") == 0


def test_limits_on_size_and_count_of_entries(hostile_run: HostileRun) -> None:
    config, root = hostile_run.config, hostile_run.root
    with sqlite3.connect(config.parent / "var" / "aggregator.db") as db:
        ids = [
            entry_id
            for (entry_id,) in db.execute(
                "SELECT e.entry_id FROM entry_sources e JOIN feeds f ON f.id = e.feed_id "
                "WHERE f.url = ?",
                (f"{root}/many-entries",),
            )
        ]
        longest_title = db.execute("SELECT max(length(title)) FROM stories").fetchone()[0]
        longest_link = db.execute("SELECT max(length(link)) FROM stories").fetchone()[0]
    assert len(ids) == 1000  # fetch.max_entries_per_feed, the newest ones
    assert any(i.endswith("m099999") for i in ids) and any(i.endswith("m099000") for i in ids)
    assert not any(i.endswith("m098999") for i in ids)
    assert longest_title <= 1000 and longest_link <= 4096
    long_fields = stored_titles(config, f"{root}/long-fields")
    assert any(t.startswith("long-title:") for t in long_fields)
    assert "dup-guid version A" in stored_titles(config, f"{root}/dup-guids")  # the first kept
    assert len(stored_titles(config, f"{root}/dup-guids")) == 2


def test_next_check_follows_what_each_server_said(hostile_run: HostileRun) -> None:
    rows = {url.removeprefix(hostile_run.root): row for url, row in hostile_run.status.items()}

    def after(path: str, key: str = "next_check") -> timedelta:
        row = rows[path]
        return datetime.fromisoformat(row[key]) - datetime.fromisoformat(row["last_poll"])

    interval = timedelta(minutes=30)  # site.interval, the default
    assert after("/cache-control") >= timedelta(seconds=3600)
    assert after("/expires") >= timedelta(seconds=3590)  # HTTP dates have whole seconds
    assert after("/ttl") >= timedelta(minutes=120)
    assert after("/sy-update") >= timedelta(hours=24)
    assert after("/ok") == interval
    assert after("/rate-limited", "retry_after") >= timedelta(seconds=119)
    assert after("/unavailable", "retry_after") >= timedelta(seconds=55)
    assert rows["/retry-after-garbage"]["retry_after"] is None
    assert after("/retry-after-garbage") == interval  # the first failure waits one interval
    assert rows["/gone"]["state"] == "gone" and rows["/gone"]["next_check"] is None
    for moved in ("/moved-permanently", "/permanent-redirect-308", "/moved-permanently-relative"):
        assert rows[moved]["moved_to"] == f"{hostile_run.root}/ok", moved


def test_second_update_honours_servers_and_caches(hostile_run: HostileRun) -> None:
    before, after = hostile_run.hits_after_first, hostile_run.hits_after_second
    output = hostile_run.second.output
    for path in ("/rate-limited", "/unavailable", "/gone"):
        assert hits(after, path) == hits(before, path) == 1, path
        assert f"Skipped {path}:" in output
    for moved in ("/moved-permanently", "/permanent-redirect-308", "/moved-permanently-relative"):
        assert hits(after, moved) == hits(before, moved) == 1  # polled at /ok from now on
    for path in ("/conditional", "/conditional-last-modified-only"):
        assert after["status"][path] == {"200": 1, "304": 1}, path
    assert hits(after, "/redirect-loop") == 2 * 6  # 5 redirects allowed: six requests a poll
    for path in ("/unstable-guids", "/no-ids", "/etag-flap"):
        assert len(stored_titles(hostile_run.config, hostile_run.root + path)) == 3, path
    assert hostile_run.second.exit_code == 1
    public = hostile_run.config.parent / "var" / "public" / "feeds"
    mtimes = {p.name: p.stat().st_mtime_ns for p in public.iterdir()}
    assert mtimes == hostile_run.feeds_mtimes  # nothing new: no output feed was rewritten


def test_force_polls_a_gone_feed_again(hostile_server: str, tmp_path: Path) -> None:
    config = write_config_file(tmp_path, [{"url": f"{hostile_server}/gone", "name": "gone"}])

    def path_hits() -> int:
        return hits(get_json(f"{hostile_server}/_hits"), "/gone")

    start = path_hits()
    assert aggregator(config, "update").exit_code == 1
    skipped = aggregator(config, "update")
    assert skipped.exit_code == 0 and "Skipped gone: gone (HTTP 410)" in skipped.output
    assert path_hits() == start + 1
    assert aggregator(config, "update", "--force").exit_code == 1
    assert path_hits() == start + 2
