"""End to end: feeds served on 127.0.0.1 → `aggregator update` → files read back."""

from __future__ import annotations

import html
import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import feedparser
import pytest
from click.testing import Result
from lxml import etree

from aggregator.models import RawEntry
from tests.conftest import ConfigWriter
from tests.feedbuilder import Item, atom, rss
from tests.httpserver import Reply, Request, closed_port_url, delayed, serve
from tests.postgres import PostgresServer

Cli = Callable[..., Result]
RSS = {"Content-Type": "application/rss+xml; charset=utf-8"}
ATOM = {"Content-Type": "application/atom+xml; charset=utf-8"}


def published(config: Path, name: str) -> Path:
    return config.parent / "var" / "public" / name


def parse_output(path: Path) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


def story_count(config: Path) -> int:
    with sqlite3.connect(config.parent / "var" / "aggregator.db") as db:
        return int(db.execute("SELECT count(*) FROM stories").fetchone()[0])


def test_update_publishes_everything_and_second_update_stores_nothing(
    write_config: ConfigWriter, cli: Cli
) -> None:
    items = [
        Item(
            f"Story {i}",
            f"https://site.test/{i}",
            f"g{i}",
            "Mon, 01 Jan 2024 10:00:00 GMT",
            "<p>Body <b>bold</b></p>",
            ["local-tag"],
        )
        for i in range(5)
    ]
    with serve(
        {
            "/rss": Reply(body=rss("RSS feed", items), headers={**RSS, "ETag": '"r1"'}),
            "/atom": Reply(
                body=atom("Atom feed", [Item("Atom story", "https://a.test/1")]), headers=ATOM
            ),
        }
    ) as server:
        config = write_config(
            [
                {"url": server.url("/rss"), "name": "The RSS", "categories": ["tech"]},
                {"url": server.url("/atom"), "categories": ["science"]},
            ]
        )
        first = cli("--config", str(config), "update")
        assert first.exit_code == 0, first.output
        assert story_count(config) == 6
        outputs = sorted(p.name for p in published(config, "feeds").iterdir())
        assert outputs == sorted(
            f"{slug}.{ext}"
            for slug in ("all", "tech", "science")
            for ext in ("atom", "rss", "json")
        )
        mtimes = {p: p.stat().st_mtime_ns for p in published(config, "").rglob("*") if p.is_file()}

        second = cli("--config", str(config), "update")
        assert second.exit_code == 0, second.output
        assert story_count(config) == 6
        assert "0 new and 0 updated" in second.output
        assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing rewritten
        # The second poll of /rss was conditional.
        assert server.requests_to("/rss")[-1].headers.get("if-none-match") == '"r1"'

    all_atom = parse_output(published(config, "feeds/all.atom"))
    assert len(all_atom.entries) == 6
    science = parse_output(published(config, "feeds/science.atom"))
    assert [e.title for e in science.entries] == ["Atom story"]
    tech_rss = parse_output(published(config, "feeds/tech.rss"))
    assert {e.title for e in tech_rss.entries} == {f"Story {i}" for i in range(5)}
    assert all(e.link.startswith("https://site.test/") for e in tech_rss.entries)
    feed_json = json.loads(published(config, "feeds/all.json").read_text("utf-8"))
    assert feed_json["version"] == "https://jsonfeed.org/version/1.1"
    assert len(feed_json["items"]) == 6
    index = published(config, "index.html").read_text("utf-8")
    assert "Story 3" in index and "Atom story" in index


def test_published_xml_is_well_formed_with_required_elements(
    write_config: ConfigWriter, cli: Cli
) -> None:
    items = [
        Item(
            "Tom & Jerry <b>bold</b>",
            "https://site.test/t",
            "t1",
            "Tue, 02 Jan 2024 10:00:00 GMT",
            '<p>Hi<img src="/pic.png"></p>',
            thumbnail="https://site.test/thumb.jpg",
            enclosures=[("https://site.test/ep.mp3", "audio/mpeg", 12345)],
        ),
    ]
    with serve({"/rss": Reply(body=rss("Feed", items), headers=RSS)}) as server:
        config = write_config([{"url": server.url("/rss"), "categories": ["pods"]}])
        assert cli("--config", str(config), "update").exit_code == 0
    atom_ns = "{http://www.w3.org/2005/Atom}"
    tree = etree.parse(str(published(config, "feeds/pods.atom")))
    (entry,) = tree.getroot().findall(f"{atom_ns}entry")
    for required in ("id", "title", "updated"):
        assert entry.find(f"{atom_ns}{required}") is not None
    assert entry.findtext(f"{atom_ns}title") == "Tom & Jerry bold"
    enclosure = entry.find(f"{atom_ns}link[@rel='enclosure']")
    assert enclosure is not None and enclosure.get("type") == "audio/mpeg"
    assert enclosure.get("length") == "12345"
    rss_tree = etree.parse(str(published(config, "feeds/pods.rss")))
    item = rss_tree.getroot().find("channel/item")
    assert item is not None and item.find("enclosure") is not None
    source = item.find("source")
    assert source is not None and source.get("url", "").endswith("/rss")
    parsed = parse_output(published(config, "feeds/pods.rss"))
    assert parsed.entries[0].media_thumbnail[0]["url"] == "https://site.test/thumb.jpg"


def test_cross_posted_story_appears_once_in_all_and_in_each_category(
    write_config: ConfigWriter, cli: Cli
) -> None:
    story = "https://news.test/2024/story?id=7"
    feed_a = rss("A", [Item("Shared story", story + "&utm_source=a", "a-1", description="A")])
    feed_b = atom(
        "B",
        [
            Item(
                "Shared story (B)",
                "https://NEWS.test:443/2024/story?id=7&fbclid=x#c",
                "urn:b:1",
                description="B",
            )
        ],
    )
    with serve(
        {"/a": Reply(body=feed_a, headers=RSS), "/b": Reply(body=feed_b, headers=ATOM)}
    ) as s:
        config = write_config(
            [
                {"url": s.url("/a"), "name": "Source A", "categories": ["tech"]},
                {"url": s.url("/b"), "name": "Source B", "categories": ["science", "world"]},
            ]
        )
        assert cli("--config", str(config), "update").exit_code == 0
    assert story_count(config) == 1
    ids = set()
    for slug in ("all", "tech", "science", "world"):
        entries = parse_output(published(config, f"feeds/{slug}.atom")).entries
        assert len(entries) == 1, slug
        ids.add(entries[0].id)
    assert len(ids) == 1  # the same stable id everywhere
    item = json.loads(published(config, "feeds/all.json").read_text("utf-8"))["items"][0]
    assert {s["title"] for s in item["_sources"]} == {"Source A", "Source B"}


def test_feed_listed_first_owns_a_cross_post_even_when_its_fetch_finishes_last(
    write_config: ConfigWriter, cli: Cli
) -> None:
    date = "Mon, 01 Jan 2024 10:00:00 GMT"
    feed_a = rss(
        "A", [Item("Title from A", "https://example.org/story-1", "a-1", date, "<p>A says</p>")]
    )
    feed_b = atom(
        "B",
        [
            Item(
                "Title from B",
                "https://example.org/story-1#comments",
                "urn:b:1",
                "2024-01-01T09:00:00Z",
                "<p>B says</p>",
                author="Bea",
            )
        ],
    )
    with serve(
        {
            "/a": delayed(1.5, Reply(body=feed_a, headers=RSS)),
            "/b": Reply(body=feed_b, headers=ATOM),
        }
    ) as server:
        config = write_config(
            [
                {"url": server.url("/a"), "name": "Source A", "categories": ["tech"]},
                {"url": server.url("/b"), "name": "Source B", "categories": ["tech"]},
            ]
        )
        first = cli("--config", str(config), "update")
        assert first.exit_code == 0, first.output
        with sqlite3.connect(config.parent / "var" / "aggregator.db") as db:
            stored_by = db.execute(
                "SELECT f.url FROM entry_sources s JOIN feeds f ON f.id = s.feed_id ORDER BY s.id"
            ).fetchall()
        assert stored_by == [(server.url("/b"),), (server.url("/a"),)]  # B's answer came first
        assert story_count(config) == 1
        mtimes = {p: p.stat().st_mtime_ns for p in published(config, "").rglob("*") if p.is_file()}

        server.routes["/a"] = Reply(body=feed_a, headers=RSS)
        second = cli("--config", str(config), "update")
        assert second.exit_code == 0, second.output
        assert "0 new and 0 updated" in second.output
        assert "0 output files written" in second.output
        assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing rewritten

    (entry,) = parse_output(published(config, "feeds/all.atom")).entries
    assert entry.title == "Title from A"
    assert entry.link == "https://example.org/story-1"
    assert "A says" in entry.summary
    (item,) = json.loads(published(config, "feeds/all.json").read_text("utf-8"))["items"]
    assert [s["title"] for s in item["_sources"]] == ["Source A", "Source B"]
    assert item["date_published"].startswith("2024-01-01T10:00:00")
    assert item["authors"] == [{"name": "Bea"}]  # B fills what A lacks


def test_gb18030_feed_titles_appear_correctly_in_digest(
    write_config: ConfigWriter, cli: Cli
) -> None:
    title = "两大摄影巨头强强联手！松下与徕卡签署全面战略合作协议"
    body = rss(
        "最新新闻",
        [Item(title, "https://news.mydrivers.test/1.htm", "1", description="松下")],
        encoding="gb18030",
        declare_encoding=False,
    )
    assert title.encode("utf-8") not in body  # really GB18030 bytes on the wire
    headers = {"Content-Type": "application/rss+xml; charset=gb18030"}
    with serve({"/gb": Reply(body=body, headers=headers)}) as server:
        config = write_config([{"url": server.url("/gb"), "categories": ["新媒体"]}])
        assert cli("--config", str(config), "update").exit_code == 0
    assert title in published(config, "index.html").read_text("utf-8")
    assert published(config, "feeds/xin-mei-ti.atom").exists()
    assert parse_output(published(config, "feeds/xin-mei-ti.atom")).entries[0].title == title


def test_changed_entry_is_updated_in_place(write_config: ConfigWriter, cli: Cli) -> None:
    version = {"text": "<p>first</p>"}

    def feed(_: Request) -> Reply:
        item = Item("Story", "https://site.test/1", "g1", description=version["text"])
        return Reply(body=rss("F", [item]), headers=RSS)

    with serve({"/f": feed}) as server:
        config = write_config([{"url": server.url("/f")}])
        assert cli("--config", str(config), "update").exit_code == 0
        version["text"] = "<p>second edition</p>"
        result = cli("--config", str(config), "update")
        assert result.exit_code == 0
        assert "0 new and 1 updated" in result.output
    assert story_count(config) == 1
    (entry,) = parse_output(published(config, "feeds/all.atom")).entries
    assert "second edition" in entry.content[0].value


def test_a_re_poll_cleans_only_the_entries_that_changed(
    write_config: ConfigWriter, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aggregator.clean

    cleaned: list[str] = []
    real = aggregator.clean.normalise_entry

    def counting(raw: RawEntry, *args: Any, **kwargs: Any) -> Any:
        cleaned.append(raw.guid or "")
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(aggregator.clean, "normalise_entry", counting)
    bodies = {f"g{i}": f"<p>body {i}</p>" for i in range(4)}

    def feed(_: Request) -> Reply:
        items = [
            Item(f"S {g}", f"https://site.test/{g}", g, description=b) for g, b in bodies.items()
        ]
        return Reply(body=rss("F", items), headers=RSS)

    with serve({"/f": feed}) as server:
        config = write_config([{"url": server.url("/f")}])
        assert cli("--config", str(config), "update").exit_code == 0
        assert sorted(cleaned) == ["g0", "g1", "g2", "g3"]
        cleaned.clear()
        bodies["g4"] = "<p>new</p>"
        bodies["g1"] = "<p>body 1, edited</p>"
        result = cli("--config", str(config), "update")
        assert result.exit_code == 0, result.output
        assert "1 new and 1 updated" in result.output
    assert sorted(cleaned) == ["g1", "g4"]
    assert story_count(config) == 5
    contents = {
        e.id: e.content[0].value for e in parse_output(published(config, "feeds/all.atom")).entries
    }
    assert any("body 1, edited" in c for c in contents.values())


def test_guids_changing_every_fetch_produce_no_duplicates(
    write_config: ConfigWriter, cli: Cli
) -> None:
    counter = {"n": 0}

    def feed(_: Request) -> Reply:
        counter["n"] += 1
        items = [Item(f"S{i}", f"https://site.test/{i}", f"g{i}-{counter['n']}") for i in range(3)]
        return Reply(body=rss("F", items), headers=RSS)

    with serve({"/f": feed}) as server:
        config = write_config([{"url": server.url("/f")}])
        for _ in range(3):
            assert cli("--config", str(config), "update").exit_code == 0
    assert counter["n"] == 3
    assert story_count(config) == 3


def test_failing_feeds_are_recorded_and_the_rest_published(
    write_config: ConfigWriter, cli: Cli
) -> None:
    good = rss("Good", [Item("Good story", "https://good.test/1")])
    with serve(
        {
            "/good": Reply(body=good, headers=RSS),
            "/missing": Reply(status=404, body=b"nope"),
            "/html": Reply(
                body=b"<html><body>not a feed</body></html>", headers={"Content-Type": "text/html"}
            ),
        }
    ) as server:
        refused = closed_port_url() + "feed.xml"
        config = write_config(
            [
                {"url": server.url("/good"), "name": "Good"},
                {"url": server.url("/missing"), "name": "Missing"},
                {"url": server.url("/html"), "name": "Webpage"},
                {"url": refused, "name": "Refused"},
            ]
        )
        result = cli("--config", str(config), "update")
    assert result.exit_code == 1, result.output
    assert "1 ok, 3 failed" in result.output
    status = json.loads(cli("--config", str(config), "status", "--json").output)
    by_name = {f["name"]: f for f in status["feeds"]}
    assert status["entries_total"] == 1
    assert by_name["Good"]["state"] == "ok" and by_name["Good"]["entries"] == 1
    assert by_name["Missing"]["state"] == "error"
    assert by_name["Missing"]["http_status"] == 404
    assert "404" in by_name["Missing"]["last_error"]
    assert "not a feed" in by_name["Webpage"]["last_error"]
    assert "refused" in by_name["Refused"]["last_error"]
    assert by_name["Refused"]["last_poll"] is not None
    index = published(config, "index.html").read_text("utf-8")
    assert "Good story" in index
    for name in ("Missing", "Webpage", "Refused"):
        assert name in index
    table = cli("--config", str(config), "status").output
    assert "Missing" in table and "error" in table


def test_max_entries_caps_every_output(write_config: ConfigWriter, cli: Cli) -> None:
    items = [
        Item(f"S{i}", f"https://site.test/{i}", date=f"Mon, 01 Jan 2024 10:{i:02d}:00 GMT")
        for i in range(12)
    ]
    with serve({"/f": Reply(body=rss("F", items), headers=RSS)}) as server:
        config = write_config([{"url": server.url("/f"), "categories": ["x"]}], max_entries=5)
        assert cli("--config", str(config), "update").exit_code == 0
    entries = parse_output(published(config, "feeds/x.atom")).entries
    assert [e.title for e in entries] == [f"S{i}" for i in range(11, 6, -1)]


def test_build_republishes_from_database_only(write_config: ConfigWriter, cli: Cli) -> None:
    with serve({"/f": Reply(body=rss("F", [Item("Kept", "https://s.test/1")]), headers=RSS)}) as s:
        config = write_config([{"url": s.url("/f")}])
        assert cli("--config", str(config), "update").exit_code == 0
        polls = len(s.requests)
        index = published(config, "index.html")
        index.unlink()
        result = cli("--config", str(config), "build")
        assert result.exit_code == 0, result.output
        assert len(s.requests) == polls  # build fetched nothing
    assert "Kept" in index.read_text("utf-8")


def test_invalid_config_exits_2_and_runs_nothing(tmp_path: Path, cli: Cli) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "site:\n  base_url: https://x.test/\n  intervall: 5m\nfeeds:\n  - url: ftp://x\n",
        encoding="utf-8",
    )
    result = cli("--config", str(config), "update")
    assert result.exit_code == 2
    assert "feeds.yaml:3" in result.output and "intervall" in result.output
    assert "feeds.yaml:5" in result.output
    assert not (tmp_path / "var").exists()


def test_update_on_postgresql(
    write_config: ConfigWriter, cli: Cli, postgres: PostgresServer
) -> None:
    """The same pipeline with `site.database` pointing at a real PostgreSQL server."""
    shared = "https://news.test/pg-story"
    feed_a = rss("A", [Item("Shared", shared, "a1"), Item("中文标题", "https://a.test/2", "a2")])
    feed_b = atom("B", [Item("Shared (B)", shared + "?utm_medium=feed", "b1")])
    with serve(
        {"/a": Reply(body=feed_a, headers=RSS), "/b": Reply(body=feed_b, headers=ATOM)}
    ) as s:
        config = write_config(
            [
                {"url": s.url("/a"), "categories": ["tech"]},
                {"url": s.url("/b"), "categories": ["science"]},
            ],
            database=postgres.new_database(),
        )
        assert cli("--config", str(config), "update").exit_code == 0
        again = cli("--config", str(config), "update")
        assert again.exit_code == 0 and "0 new and 0 updated" in again.output
    status = json.loads(cli("--config", str(config), "status", "--json").output)
    assert status["entries_total"] == 2
    assert not (config.parent / "var" / "aggregator.db").exists()
    (in_science,) = parse_output(published(config, "feeds/science.atom")).entries
    in_tech = parse_output(published(config, "feeds/tech.atom")).entries
    assert in_science.id in {e.id for e in in_tech}  # one story, in both categories
    assert in_science.title in {"Shared", "Shared (B)"}  # the first-fetched source's title
    assert "中文标题" in published(config, "index.html").read_text("utf-8")


def test_feed_with_warning_is_stored_and_warning_shown(
    write_config: ConfigWriter, cli: Cli
) -> None:
    """An undefined entity makes feedparser flag the document; its entries still count."""
    body = rss("Bozo", [Item("Caf&eacute; story", "https://b.test/1")]).replace(
        b"Caf&amp;eacute;", b"Caf&eacute;"
    )
    with serve({"/bozo": Reply(body=body, headers=RSS)}) as server:
        config = write_config([{"url": server.url("/bozo"), "name": "Bozo"}])
        first = cli("--config", str(config), "update")
        assert first.exit_code == 0, first.output
        assert cli("--config", str(config), "update").exit_code == 0
    (feed,) = json.loads(cli("--config", str(config), "status", "--json").output)["feeds"]
    assert feed["state"] == "ok" and feed["entries"] == 1
    assert feed["last_warning"]  # kept across the unchanged second poll


def test_digest_follows_a_source_failing_and_recovering(
    write_config: ConfigWriter, cli: Cli
) -> None:
    """Even a poll that stores nothing republishes when a source's health changes."""
    healthy = {"yes": True}

    def flaky(_: Request) -> Reply:
        if healthy["yes"]:
            return Reply(body=rss("F", [Item("Steady story", "https://f.test/1")]), headers=RSS)
        return Reply(status=503, body=b"down")

    with serve({"/f": flaky}) as server:
        config = write_config([{"url": server.url("/f"), "name": "Flaky source"}])
        index = published(config, "index.html")
        assert cli("--config", str(config), "update").exit_code == 0
        assert "Sources with problems" not in index.read_text("utf-8")
        healthy["yes"] = False
        assert cli("--config", str(config), "update").exit_code == 1
        assert "Sources with problems" in index.read_text("utf-8")
        healthy["yes"] = True
        assert cli("--config", str(config), "update").exit_code == 0
        assert "Sources with problems" not in index.read_text("utf-8")


def test_config_change_is_published_by_the_next_update(
    write_config: ConfigWriter, cli: Cli
) -> None:
    """A category added in feeds.yaml appears even though no feed changed."""
    body = rss("F", [Item("Story", "https://s.test/1")])
    with serve({"/f": Reply(body=body, headers={**RSS, "ETag": '"same"'})}) as server:
        config = write_config([{"url": server.url("/f"), "categories": ["tech"]}])
        assert cli("--config", str(config), "update").exit_code == 0
        config = write_config([{"url": server.url("/f"), "categories": ["tech", "extra"]}])
        result = cli("--config", str(config), "update")
        assert result.exit_code == 0 and "0 new and 0 updated" in result.output
    assert [e.title for e in parse_output(published(config, "feeds/extra.atom")).entries] == [
        "Story"
    ]
    assert "extra" in published(config, "index.html").read_text("utf-8")


def test_a_category_gone_from_feeds_yaml_takes_its_output_feeds_with_it(
    write_config: ConfigWriter, cli: Cli
) -> None:
    """Its subscribers would otherwise read, forever, a feed frozen the day it went,
    still carrying the stories of the source that was removed."""
    routes = {
        "/a": Reply(body=rss("A", [Item("Tech story", "https://a.test/1")]), headers=RSS),
        "/b": Reply(body=rss("B", [Item("Photo story", "https://b.test/1")]), headers=RSS),
    }
    with serve(routes) as server:
        a = {"url": server.url("/a"), "categories": ["tech"]}
        config = write_config([a, {"url": server.url("/b"), "categories": ["photo"]}])
        assert cli("--config", str(config), "update").exit_code == 0
        feeds = published(config, "feeds")
        assert "Photo story" in (feeds / "photo.atom").read_text("utf-8")
        (feeds / "mine.json").write_text("{}")  # not written by the aggregator: left alone

        # The photo source removed (its category still declared, for its slug:
        # with no source it has nothing to publish), and the tech category
        # given a slug of its own.
        document = json.loads(config.read_text("utf-8"))
        document["feeds"] = [a]
        document["categories"] = {"tech": {"slug": "technology"}, "photo": {"slug": "photo"}}
        config.write_text(json.dumps(document), encoding="utf-8")
        result = cli("--config", str(config), "update")

    assert result.exit_code == 0, result.output
    assert "6 removed" in result.output

    def files(*slugs: str) -> list[str]:
        return [f"{slug}.{ext}" for slug in slugs for ext in ("atom", "rss", "json")]

    for name in files("photo", "tech"):
        assert f"Removed {feeds / name}: its category is no longer in the config." in result.output
    assert sorted(p.name for p in feeds.iterdir()) == sorted(
        ["mine.json", *files("all", "technology")]
    )
    assert [e.title for e in parse_output(feeds / "technology.atom").entries] == ["Tech story"]
    assert "photo" not in published(config, "feeds.opml").read_text("utf-8")
    assert "feeds/photo." not in published(config, "index.html").read_text("utf-8")

    # Nothing more to remove: a build says so, and leaves the user's file.
    result = cli("--config", str(config), "build")
    assert result.exit_code == 0 and "removed" not in result.output.lower(), result.output
    assert (feeds / "mine.json").read_text() == "{}"


def test_stories_stored_by_a_run_killed_before_publishing_are_published_next_time(
    write_config: ConfigWriter, cli: Cli
) -> None:
    from aggregator.core import make_aggregator

    item = Item(
        "Stored, never published", "https://site.test/k", "k1", "Mon, 01 Jan 2024 10:00:00 GMT"
    )
    with serve({"/rss": Reply(body=rss("Feed", [item]), headers=RSS)}) as server:
        config = write_config([{"url": server.url("/rss"), "categories": ["tech"]}])
        assert cli("--config", str(config), "build").exit_code == 0
        interrupted = make_aggregator(config)
        assert interrupted.update(publish=False).changed_story_ids  # as if killed right here
        interrupted.close()
        atom = published(config, "feeds/tech.atom")
        assert "Stored, never published" not in atom.read_text()

        result = cli("--config", str(config), "update")  # nothing new, but outputs are behind
    assert result.exit_code == 0
    assert "0 new" in result.output
    assert "Stored, never published" in atom.read_text()


def _five_feeds() -> tuple[list[str], dict[str, Reply]]:
    """/f0 to /f4, each a feed of one story titled "S/fN"."""
    paths = [f"/f{i}" for i in range(5)]
    routes = {
        path: Reply(body=rss(path, [Item(f"S{path}", f"https://s.test{path}", path)]), headers=RSS)
        for path in paths
    }
    return paths, routes


def test_a_feed_that_fails_to_store_costs_no_other_feed_of_its_transaction(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import Connection

    from aggregator.core import make_aggregator
    from aggregator.models import PollRecord
    from aggregator.storage import Storage

    paths, routes = _five_feeds()
    with serve(routes) as server:
        config = write_config([{"url": server.url(path)} for path in paths])
        aggregator = make_aggregator(config)
        bad_feed = aggregator.storage.feed_states()[server.url("/f2")].feed_id
        real_write = Storage._write_polls

        def write(self: Storage, connection: Connection, polls: Sequence[PollRecord]) -> None:
            # Storing /f2's poll fails, its stories written by then; recording the error works.
            if any(p.feed_id == bad_feed and p.outcome.error is None for p in polls):
                raise RuntimeError("disk on fire")
            real_write(self, connection, polls)

        monkeypatch.setattr(Storage, "_write_polls", write)
        try:
            report = aggregator.update(publish=False)
        finally:
            aggregator.close()
    (failed,) = report.failed
    assert failed.url == server.url("/f2")
    assert failed.outcome.error == "internal error: RuntimeError: disk on fire"
    assert len(report.results) == 5 and len(report.changed_story_ids) == 4
    with sqlite3.connect(config.parent / "var" / "aggregator.db") as db:
        titles = sorted(t for (t,) in db.execute("SELECT title FROM stories"))
        errors = dict(db.execute("SELECT url, last_error FROM feeds"))
    assert titles == ["S/f0", "S/f1", "S/f3", "S/f4"]  # /f2's writes were rolled back
    assert errors[server.url("/f2")] == "internal error: RuntimeError: disk on fire"
    assert [errors[server.url(p)] for p in paths if p != "/f2"] == [None] * 4


def test_a_feed_stored_again_on_its_own_reads_and_writes_in_one_transaction(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After its batch rolls back, each feed is stored again alone: what it reads to
    deduplicate must be read under the lock its writes take (one transaction), or
    another process on PostgreSQL could store the same story in between."""
    from sqlalchemy import Connection

    from aggregator.core import make_aggregator
    from aggregator.models import PollRecord
    from aggregator.storage import Storage

    paths, routes = _five_feeds()
    real_write, real_load = Storage._write_polls, Storage.load_context
    read_in_a_batch: list[bool] = []
    failed_once: list[bool] = []

    def write(self: Storage, connection: Connection, polls: Sequence[PollRecord]) -> None:
        if len(polls) > 1 and not failed_once:  # the first batch's commit fails once
            failed_once.append(True)
            raise RuntimeError("connection lost")
        real_write(self, connection, polls)

    def load(self: Storage, *args: Any, **kwargs: Any) -> Any:
        read_in_a_batch.append(self.batch_open)
        return real_load(self, *args, **kwargs)

    monkeypatch.setattr(Storage, "_write_polls", write)
    monkeypatch.setattr(Storage, "load_context", load)
    with serve(routes) as server:
        config = write_config([{"url": server.url(path)} for path in paths])
        aggregator = make_aggregator(config)
        try:
            report = aggregator.update(publish=False)
        finally:
            aggregator.close()
    assert failed_once and not report.failed
    assert len(read_in_a_batch) == 10 and all(read_in_a_batch)  # five in the batch, five alone
    with sqlite3.connect(config.parent / "var" / "aggregator.db") as db:
        titles = sorted(t for (t,) in db.execute("SELECT title FROM stories"))
    assert titles == [f"S{p}" for p in paths]


def _interrupt_storing(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch, interrupt: BaseException
) -> Path:
    """Five feeds updated while storing one of them raises `interrupt` halfway, its
    stories written and their sources not; returns the config once update has raised it."""
    from aggregator.core import make_aggregator
    from aggregator.storage import ingest

    paths, routes = _five_feeds()
    with serve(routes) as server:
        config = write_config([{"url": server.url(path)} for path in paths])
        aggregator = make_aggregator(config)
        real_card_row = ingest._card_row

        def card_row(story_id: int, fields: Any, feed_id: int, now: Any) -> Any:
            if fields.title == "S/f2":
                raise interrupt
            return real_card_row(story_id, fields, feed_id, now)

        monkeypatch.setattr(ingest, "_card_row", card_row)
        try:
            with pytest.raises(KeyboardInterrupt):
                aggregator.update(publish=False)
        finally:
            aggregator.close()
    return config


def _consistent(config: Path) -> dict[str, str | None]:
    """Every stored story has its source, and every feed that has one its poll;
    returns each feed's last error."""
    with sqlite3.connect(config.parent / "var" / "aggregator.db") as db:
        orphans = db.execute(
            "SELECT count(*) FROM stories s"
            " WHERE NOT EXISTS (SELECT 1 FROM entry_sources e WHERE e.story_id = s.id)"
        ).fetchone()
        unpolled = db.execute(
            "SELECT count(*) FROM feeds f WHERE f.last_poll IS NULL"
            " AND EXISTS (SELECT 1 FROM entry_sources e WHERE e.feed_id = f.id)"
        ).fetchone()
        errors = dict(db.execute("SELECT url, last_error FROM feeds"))
    assert (orphans, unpolled) == ((0,), (0,))
    return errors


def test_ctrl_c_halfway_through_storing_a_feed_keeps_no_part_of_it(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _interrupt_storing(write_config, monkeypatch, KeyboardInterrupt())
    _consistent(config)
    with sqlite3.connect(config.parent / "var" / "aggregator.db") as db:
        assert ("S/f2",) not in db.execute("SELECT title FROM stories").fetchall()


def test_ctrl_c_wrapped_by_the_database_layer_is_no_feed_error(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLAlchemy raises an error of its own from a KeyboardInterrupt in the driver."""
    wrapped = RuntimeError("statement broken off")
    wrapped.__cause__ = KeyboardInterrupt()
    config = _interrupt_storing(write_config, monkeypatch, wrapped)
    errors = _consistent(config)
    assert all(error is None for error in errors.values()), errors


def test_an_update_long_after_opening_reads_feed_states_anew(
    write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aggregator.core as core

    feed = rss("F", [Item("Story", "https://f.test/1", "f1")])
    with serve({"/f": Reply(body=feed, headers={**RSS, "ETag": '"e1"'})}) as server:
        config = write_config([{"url": server.url("/f")}])
        waiting = core.make_aggregator(config)  # opened, as a scheduler is, before the poll
        other = core.make_aggregator(config)  # meanwhile another process polls the feed
        other.update(publish=False)
        other.close()
        monkeypatch.setattr(core, "STATES_FRESH_SECONDS", 0.0)
        try:
            waiting.update(publish=False)
        finally:
            waiting.close()
    # The ETag the other process stored was read and sent: a conditional poll.
    assert server.requests_to("/f")[-1].headers.get("if-none-match") == '"e1"'


RELATIVE_BODY = '<p><img src="images/photo.jpg"> see <a href="../11/older.html">older</a></p>'


def blog_feeds(server_url: Callable[[str], str]) -> dict[str, Reply]:
    """An RSS feed without xml:base (an item with a link, one without) and an Atom feed
    whose xml:base points elsewhere than its entry's link."""
    items = [
        Item("Linked", server_url("/blog/2026/12/post.html"), "r1", description=RELATIVE_BODY),
        Item("Unlinked", None, "r2", description=RELATIVE_BODY),
    ]
    based = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:base="/blog/static/">'
        "<title>Atom</title><id>urn:a</id><updated>2024-01-01T00:00:00Z</updated>"
        '<entry><title>Based</title><id>urn:a:1</id><link href="../2026/12/based.html"/>'
        "<updated>2024-01-01T00:00:00Z</updated>"
        f'<content type="html">{html.escape(RELATIVE_BODY)}</content></entry></feed>'
    )
    return {
        "/blog/feeds/rss.xml": Reply(body=rss("RSS", items), headers=RSS),
        "/blog/feeds/atom.xml": Reply(body=based.encode(), headers=ATOM),
    }


def _old_base_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules before bodies resolved against their entry's link, until `undo`."""
    import aggregator.clean
    import aggregator.identity

    monkeypatch.setattr(aggregator.clean, "CLEANING_REVISION", 1)
    monkeypatch.setattr(aggregator.identity, "READING_REVISION", 1)
    monkeypatch.setattr(aggregator.clean, "body_base", lambda raw, link: raw.base or link)


def test_a_feed_answering_304_is_read_again_once_after_the_rules_change(
    write_config: ConfigWriter, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its server would otherwise never send the document again to be read the new way."""
    _old_base_rules(monkeypatch)
    with serve() as server:
        document = blog_feeds(server.url)["/blog/feeds/rss.xml"]

        def conditional(request: Request) -> Reply:
            if request.headers.get("if-none-match") == '"b1"':
                return Reply(status=304)
            return Reply(body=document.body, headers={**document.headers, "ETag": '"b1"'})

        server.routes["/blog/feeds/rss.xml"] = conditional
        config = write_config([{"url": server.url("/blog/feeds/rss.xml")}])
        assert cli("--config", str(config), "update").exit_code == 0
        monkeypatch.undo()
        upgraded = cli("--config", str(config), "update")
        again = cli("--config", str(config), "update")
        asked = [r.headers.get("if-none-match") for r in server.requests_to("/blog/feeds/rss.xml")]
    assert asked == [None, None, '"b1"']  # once unconditional, then conditional again
    assert "0 new and 1 updated" in upgraded.output, upgraded.output
    assert "0 new and 0 updated" in again.output and "1 ok" in again.output
    assert published_items(config)["Linked"]["image"] == server.url(
        "/blog/2026/12/images/photo.jpg"
    )


def published_items(config: Path) -> dict[str, dict[str, Any]]:
    document = json.loads(published(config, "feeds/all.json").read_text("utf-8"))
    return {item["title"]: item for item in document["items"]}


def test_relative_urls_in_bodies_resolve_against_the_entry_page_unless_xml_base_is_stated(
    write_config: ConfigWriter, cli: Cli
) -> None:
    with serve() as server:
        server.routes.update(blog_feeds(server.url))
        config = write_config(
            [{"url": server.url(f"/blog/feeds/{n}")} for n in ("rss.xml", "atom.xml")]
        )
        result = cli("--config", str(config), "update")
        assert result.exit_code == 0, result.output
    items = published_items(config)
    blog = server.url("/blog")
    expected = {  # title: (image and thumbnail, link in the body)
        "Linked": (f"{blog}/2026/12/images/photo.jpg", f"{blog}/2026/11/older.html"),
        "Unlinked": (f"{blog}/feeds/images/photo.jpg", f"{blog}/11/older.html"),  # the document's
        "Based": (f"{blog}/static/images/photo.jpg", f"{blog}/11/older.html"),  # the xml:base's
    }
    for title, (image, older) in expected.items():
        assert f'src="{image}"' in items[title]["content_html"], title
        assert f'href="{older}"' in items[title]["content_html"], title
        assert items[title]["image"] == image, title
    assert items["Based"]["url"] == f"{blog}/2026/12/based.html"  # the link itself: xml:base


def test_entries_cleaned_under_the_old_base_rule_are_cleaned_again_once(
    write_config: ConfigWriter, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _old_base_rules(monkeypatch)
    with serve() as server:
        server.routes.update(blog_feeds(server.url))
        config = write_config([{"url": server.url("/blog/feeds/rss.xml")}])
        assert cli("--config", str(config), "update").exit_code == 0
        old = published_items(config)["Linked"]["image"]
        assert old == server.url("/blog/feeds/images/photo.jpg")
        monkeypatch.undo()
        result = cli("--config", str(config), "update")
        assert result.exit_code == 0, result.output
        assert "0 new and 1 updated" in result.output  # the unlinked entry reads the same
        assert published_items(config)["Linked"]["image"] == server.url(
            "/blog/2026/12/images/photo.jpg"
        )
        again = cli("--config", str(config), "update")
        assert "0 new and 0 updated" in again.output
