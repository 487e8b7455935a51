"""Digest pages through the whole pipeline: what an incremental publish rewrites, and that it
always ends where a full rebuild would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import html as lxml_html

from aggregator.core import Aggregator, make_aggregator
from aggregator.digest_days import CENSUS_KEY
from aggregator.models import DigestMember
from tests.conftest import ConfigWriter
from tests.feedbuilder import Item, rss
from tests.httpserver import Reply, Request, serve

RSS = {"Content-Type": "application/rss+xml; charset=utf-8"}
START = datetime(2024, 1, 1, 10, tzinfo=UTC)


class Feeds:
    """Two feeds whose items the tests add to and edit between polls."""

    def __init__(self) -> None:
        self.items: dict[str, list[Item]] = {"/tech": [], "/science": []}

    def add(self, path: str, count: int, *, link_of: str | None = None) -> None:
        items = self.items[path]
        for _ in range(count):
            n = len(items)
            link = link_of or f"https://site.test{path}/{n}"
            date = format_datetime(START + timedelta(minutes=n), usegmt=True)
            items.insert(0, Item(f"{path[1:]} story {n}", link, f"{path}-{n}", date, f"<p>{n}</p>"))

    def edit(self, path: str, n: int, title: str) -> None:
        items = self.items[path]
        index = len(items) - 1 - n
        old = items[index]
        items[index] = Item(title, old.link, old.guid, old.date, old.description)

    def reply(self, request: Request) -> Reply:
        return Reply(body=rss(request.path, self.items[request.path]), headers=RSS)


@pytest.fixture
def feeds() -> Feeds:
    return Feeds()


@pytest.fixture
def aggregator(write_config: ConfigWriter, feeds: Feeds) -> Iterator[Aggregator]:
    with serve({"/tech": feeds.reply, "/science": feeds.reply}) as server:
        config = write_config(
            [
                {"url": server.url("/tech"), "name": "Tech feed", "categories": ["tech"]},
                {"url": server.url("/science"), "name": "Science feed", "categories": ["science"]},
            ],
            digest_per_category=2,
        )
        made = make_aggregator(config)
        made.page_size = 3
        try:
            yield made
        finally:
            made.close()


def public(aggregator: Aggregator) -> Path:
    return aggregator.config.site.output_dir


def day_folder(aggregator: Aggregator) -> Path:
    today = datetime.now(UTC).astimezone(aggregator.zone).date().isoformat()
    return public(aggregator) / "digest" / today


def digest_written(aggregator: Aggregator, feeds: Feeds) -> set[str]:
    """Poll, publish what changed, and return the digest files written (relative to the day)."""
    report = aggregator.update()
    assert not report.failed
    folder = day_folder(aggregator)
    return {
        path.relative_to(folder).as_posix() if path.is_relative_to(folder) else path.name
        for path in report.published.written
        if path.suffix == ".html"
    }


def pages(aggregator: Aggregator, category: str) -> list[list[str]]:
    """The titles on each of the category's pages, newest page first, following "Older" links."""
    path = day_folder(aggregator) / f"{category}.html"
    found = []
    while True:
        doc = lxml_html.fromstring(path.read_bytes())
        found.append([h.text_content() for h in doc.xpath("//article//h3")])
        times = doc.xpath("//article//time/@datetime")
        assert times == sorted(times, reverse=True)  # each page newest first
        older = doc.xpath("//a[@rel='next']/@href")
        if not older:
            return found
        path = (path.parent / older[0]).resolve()


def titles(aggregator: Aggregator, category: str) -> set[str]:
    every = [title for page in pages(aggregator, category) for title in page]
    assert len(every) == len(set(every))
    return set(every)


def stories(path: str, numbers: range) -> set[str]:
    return {f"{path} story {n}" for n in numbers}


def assert_full_rebuild_changes_nothing(aggregator: Aggregator) -> None:
    report = aggregator.publish(None)
    assert report.written == (), report.written


def test_new_stories_rewrite_only_the_newest_pages(aggregator: Aggregator, feeds: Feeds) -> None:
    feeds.add("/tech", 7)
    feeds.add("/science", 2)
    first = digest_written(aggregator, feeds)
    assert first >= {"tech/1.html", "tech/2.html", "tech/3.html", "tech.html"}
    assert not (day_folder(aggregator) / "science.html").exists()  # two stories fit the day page
    # Oldest first: one poll stores a feed's entries oldest first, though the feed
    # lists its newest first, so the first page holds the oldest stories.
    assert pages(aggregator, "tech") == [
        ["tech story 6"],
        ["tech story 5", "tech story 4", "tech story 3"],
        ["tech story 2", "tech story 1", "tech story 0"],
    ]
    folder = day_folder(aggregator)
    mtimes = {p: p.stat().st_mtime_ns for p in folder.rglob("*.html")}

    feeds.add("/tech", 1)  # story 7 joins page 3
    assert digest_written(aggregator, feeds) == {
        "tech/3.html",
        "tech.html",
        f"{folder.name}.html",
        "index.html",
    }
    feeds.add("/tech", 2)  # the feed lists story 9 first; story 8, older, fills page 3
    assert digest_written(aggregator, feeds) == {
        "tech/3.html",
        "tech/4.html",
        "tech.html",
        f"{folder.name}.html",
        "index.html",
    }
    for name in ("tech/1.html", "tech/2.html"):
        assert (folder / name).stat().st_mtime_ns == mtimes[folder / name]
    assert pages(aggregator, "tech")[:2] == [
        ["tech story 9"],
        ["tech story 8", "tech story 7", "tech story 6"],
    ]
    assert titles(aggregator, "tech") == stories("tech", range(10))
    assert_full_rebuild_changes_nothing(aggregator)


def test_an_edited_story_rewrites_its_own_page(aggregator: Aggregator, feeds: Feeds) -> None:
    feeds.add("/tech", 7)
    digest_written(aggregator, feeds)
    feeds.edit("/tech", 1, "An edited title")
    assert digest_written(aggregator, feeds) == {"tech/1.html"}  # stories 2, 1, 0
    assert "An edited title" in titles(aggregator, "tech")
    assert_full_rebuild_changes_nothing(aggregator)


def test_a_story_cross_posted_later_joins_the_end_of_the_other_category(
    aggregator: Aggregator, feeds: Feeds
) -> None:
    feeds.add("/tech", 4)
    feeds.add("/science", 4)  # pages of three and one
    digest_written(aggregator, feeds)
    # Science now carries tech story 0: it is new to science, so it goes on science's newest page.
    feeds.add("/science", 1, link_of="https://site.test/tech/0")
    written = digest_written(aggregator, feeds)
    # Tech story 0 stays on tech's oldest page, which now names both sources.
    assert {"science/2.html", "science.html", "tech/1.html"} <= written
    assert not written & {"science/1.html", "tech/2.html", "tech.html"}
    assert "tech story 0" in pages(aggregator, "science")[0]
    assert_full_rebuild_changes_nothing(aggregator)


def test_many_changed_pages_are_read_a_card_batch_at_a_time(
    aggregator: Aggregator, feeds: Feeds, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edits on every page of a category: its pages are read a few at a time, never whole."""
    from aggregator import digest_days
    from aggregator.storage import DigestReader

    monkeypatch.setattr(digest_days, "CARD_BATCH", 2 * aggregator.page_size)
    feeds.add("/tech", 16)  # six pages
    digest_written(aggregator, feeds)
    for n in range(16):
        feeds.edit("/tech", n, f"Edited story {n}")
    read: list[int] = []
    page_members = DigestReader.page_members

    def counted(reader: DigestReader, *args: Any) -> list[DigestMember]:
        found = page_members(reader, *args)
        read.append(len(found))
        return found

    monkeypatch.setattr(DigestReader, "page_members", counted)
    written = digest_written(aggregator, feeds)
    assert {f"tech/{n}.html" for n in range(1, 7)} <= written
    assert sum(read) == 16 and max(read) <= 2 * aggregator.page_size, read
    assert titles(aggregator, "tech") == {f"Edited story {n}" for n in range(16)}
    assert_full_rebuild_changes_nothing(aggregator)


def test_without_a_census_the_changed_category_is_read_again(
    aggregator: Aggregator, feeds: Feeds
) -> None:
    feeds.add("/tech", 7)
    digest_written(aggregator, feeds)
    key = CENSUS_KEY + day_folder(aggregator).name
    assert aggregator.storage.get_meta(key)
    aggregator.storage.set_meta(key, "")  # as a run of an older version would leave it
    feeds.add("/tech", 1)
    assert {"tech/3.html", "tech.html"} <= digest_written(aggregator, feeds)
    assert aggregator.storage.get_meta(key)
    assert titles(aggregator, "tech") == stories("tech", range(8))
    assert_full_rebuild_changes_nothing(aggregator)


def test_a_census_that_no_longer_matches_is_not_trusted(
    aggregator: Aggregator, feeds: Feeds
) -> None:
    feeds.add("/tech", 7)
    digest_written(aggregator, feeds)
    key = CENSUS_KEY + day_folder(aggregator).name
    stale = aggregator.storage.get_meta(key) or ""
    feeds.add("/tech", 3)
    digest_written(aggregator, feeds)
    aggregator.storage.set_meta(key, stale)  # three stories behind
    feeds.add("/tech", 1)
    digest_written(aggregator, feeds)
    assert titles(aggregator, "tech") == stories("tech", range(11))
    assert_full_rebuild_changes_nothing(aggregator)


def test_the_day_rolls_over_without_touching_the_old_days_category_pages(
    aggregator: Aggregator, feeds: Feeds
) -> None:
    feeds.add("/tech", 7)
    digest_written(aggregator, feeds)
    old_day = day_folder(aggregator)
    pages = {p: p.stat().st_mtime_ns for p in old_day.rglob("*.html")}
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    aggregator.clock = lambda: tomorrow  # what `run` does at midnight: publish(set())
    report = aggregator.publish(set())
    new_day = tomorrow.astimezone(aggregator.zone).date().isoformat()
    written = {p.relative_to(public(aggregator)).as_posix() for p in report.written}
    assert written == {f"digest/{old_day.name}.html", f"digest/{new_day}.html", "index.html"}
    assert {p: p.stat().st_mtime_ns for p in old_day.rglob("*.html")} == pages
    index = lxml_html.fromstring((public(aggregator) / "index.html").read_bytes())
    assert "Nothing new yet today" in index.text_content()
    assert index.xpath("//a[@rel='prev']/@href") == [f"digest/{old_day.name}.html"]
    old_page = lxml_html.fromstring((old_day.parent / f"{old_day.name}.html").read_bytes())
    assert old_page.xpath("//a[@rel='next']/@href") == [f"../digest/{new_day}.html"]


def test_pages_written_by_the_worker_are_those_written_here(
    aggregator: Aggregator, feeds: Feeds
) -> None:
    """A publish of many pages hands them to a worker process: the bytes must not tell."""
    from aggregator.digest_days import PAGES_BEFORE_WORKER
    from aggregator.pool import WorkerPool

    feeds.add("/tech", 90)
    feeds.add("/science", 45)
    assert 135 // aggregator.page_size > PAGES_BEFORE_WORKER + 10
    aggregator.update(publish=False)

    def rebuilt(workers: int) -> dict[str, bytes]:
        folder = public(aggregator)
        for path in sorted(folder.rglob("*"), reverse=True) if folder.exists() else ():
            path.unlink() if path.is_file() else path.rmdir()
        pool = WorkerPool(workers)
        try:
            report = aggregator.publish(None, pool=pool)
            assert bool(pool._started) == bool(workers)  # the worker did take pages
        finally:
            pool.close()
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.html")}
        # Every page is counted, those the worker wrote too.
        written = {p.relative_to(folder).as_posix() for p in report.written if p.suffix == ".html"}
        assert written == set(files)
        return files

    here, there = rebuilt(0), rebuilt(1)
    assert len(here) > PAGES_BEFORE_WORKER + 10
    assert there == here
    assert titles(aggregator, "tech") == stories("tech", range(90))


def test_pages_a_changed_config_no_longer_has_are_removed(
    write_config: ConfigWriter, feeds: Feeds
) -> None:
    feeds.add("/tech", 7)
    feeds.add("/science", 5)
    with serve({"/tech": feeds.reply, "/science": feeds.reply}) as server:
        tech = {"url": server.url("/tech"), "name": "Tech feed", "categories": ["big"]}
        science = {"url": server.url("/science"), "name": "Science", "categories": ["big", "sci"]}

        def run(*listed: dict[str, Any]) -> Aggregator:
            made = make_aggregator(write_config(list(listed), digest_per_category=2))
            made.page_size = 3
            try:
                assert not made.update().failed
            finally:
                made.close()
            return made

        made = run(tech, science)
        folder = day_folder(made)
        written = {p.relative_to(folder).as_posix() for p in folder.rglob("*.html")}
        assert {"big/4.html", "sci.html", "sci/2.html"} <= written
        made = run(tech, {**science, "categories": ["research"]})  # "sci" renamed
        assert not (folder / "sci.html").exists() and not (folder / "sci").exists()
        assert (folder / "research/2.html").exists()
        made = run(tech)  # science removed: "big" has 7 stories, 3 pages, and no "research"
        now = {p.relative_to(folder).as_posix() for p in folder.rglob("*.html")}
        assert now == {"big.html", "big/1.html", "big/2.html", "big/3.html"}
        assert titles(made, "big") == stories("tech", range(7))
        assert "Science" not in (folder.parent / f"{folder.name}.html").read_text()


def test_a_past_days_page_says_when_its_own_stories_last_arrived(
    aggregator: Aggregator, feeds: Feeds, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not when a later day's did: each new story of today would rewrite yesterday's page."""
    feeds.add("/tech", 2)
    digest_written(aggregator, feeds)
    old_day = day_folder(aggregator)
    old_page = old_day.parent / f"{old_day.name}.html"
    updated = lxml_html.fromstring(old_page.read_bytes()).xpath("//footer//time/@datetime")
    tomorrow = datetime.now(UTC) + timedelta(days=1)

    class Tomorrow(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return tomorrow

    aggregator.clock = Tomorrow.now
    monkeypatch.setattr("aggregator.fetch.datetime", Tomorrow)  # what polls call "fetched at"
    feeds.add("/tech", 1)
    assert f"{old_day.name}.html" in digest_written(aggregator, feeds)  # its "Next day" link
    assert lxml_html.fromstring(old_page.read_bytes()).xpath("//footer//time/@datetime") == updated
    feeds.add("/tech", 1)
    assert f"{old_day.name}.html" not in digest_written(aggregator, feeds)
    index = lxml_html.fromstring((public(aggregator) / "index.html").read_bytes())
    assert index.xpath("//footer//time/@datetime") != updated
