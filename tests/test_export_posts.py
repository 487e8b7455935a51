"""End to end: feeds served on 127.0.0.1 → `aggregator update` → Markdown posts on disk."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from tests.conftest import ConfigWriter, shared_path
from tests.feedbuilder import Item, rss
from tests.httpserver import Reply, serve
from tests.postfiles import read_post, split_post

Cli = Callable[..., Result]
RSS = {"Content-Type": "application/rss+xml; charset=utf-8"}
SEED_TITLE = "两大摄影巨头强强联手！松下与徕卡签署全面战略合作协议"
SEED_LINK = "https://news.mydrivers.com/1/832/832176.htm"
HOSTILE_BODY = (
    '<p onclick="steal()">Hi <a href="javascript:alert(1)">x</a></p>'
    "<script>alert(2)</script>\n\n    <p>indented</p>"
)


NO_REFERRER = ' referrerpolicy="no-referrer"'


def posts_in(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.md"))


@pytest.mark.parametrize("policy_in_feed", [False, True], ids=["feed-without", "feed-with"])
def test_seed_post_is_reproduced_from_its_feed(
    write_config: ConfigWriter, cli: Cli, policy_in_feed: bool
) -> None:
    seed = shared_path("seed", "example-post.md").read_text("utf-8")
    seed_body = split_post(seed.lstrip("\n"))[1]
    # The feed's images do not say referrerpolicy: the export adds it, and once only.
    feed_body = seed_body if policy_in_feed else seed_body.replace(NO_REFERRER, "")
    assert policy_in_feed or "referrerpolicy" not in feed_body
    item = Item(SEED_TITLE, SEED_LINK, None, "Wed, 01 Jun 2022 01:14:18 +0800", feed_body)
    feed = rss("最新新闻", [item], link="https://news.mydrivers.com/")
    with serve({"/rss": Reply(body=feed, headers=RSS)}) as server:
        config = write_config(
            [{"url": server.url("/rss"), "name": "快科技（原驱动之家）", "categories": ["新媒体"]}]
        )
        assert cli("--config", str(config), "update").exit_code == 0
    out = config.parent / "posts"

    result = cli("--config", str(config), "export-posts", str(out), "--format", "hexo", "--raw")
    assert result.exit_code == 0, result.output
    assert "1 posts written, 0 unchanged" in result.output
    (post,) = posts_in(out)
    assert post.read_text("utf-8").rstrip() == seed.lstrip("\n").rstrip()
    # The site's zone (Asia/Shanghai) dates the file name; the front matter is GMT.
    assert post.name.startswith("2022-06-01-liang-da-she-ying-ju-tou-")

    again = cli("--config", str(config), "export-posts", str(out), "--format", "hexo", "--raw")
    assert "0 posts written, 1 unchanged" in again.output


def test_default_body_is_sanitised_and_raw_keeps_the_feed_html(
    write_config: ConfigWriter, cli: Cli
) -> None:
    item = Item(
        "Hostile", "https://site.test/h", "h1", "Mon, 01 Jan 2024 10:00:00 GMT", HOSTILE_BODY
    )
    with serve({"/rss": Reply(body=rss("Feed", [item]), headers=RSS)}) as server:
        config = write_config([{"url": server.url("/rss"), "categories": ["tech"]}])
        cli("--config", str(config), "update")
    safe, raw = config.parent / "safe", config.parent / "raw"
    assert cli("--config", str(config), "export-posts", str(safe)).exit_code == 0
    assert cli("--config", str(config), "export-posts", str(raw), "--raw").exit_code == 0

    (safe_post,) = posts_in(safe)
    safe_meta, _, safe_body = read_post(safe_post)
    assert "script" not in safe_body and "javascript:" not in safe_body
    assert "onclick" not in safe_body and "\n\n" not in safe_body
    assert safe_meta["categories"] == ["tech", "Feed"]  # unnamed feed: its own title
    (raw_post,) = posts_in(raw)
    assert read_post(raw_post)[2].rstrip() == HOSTILE_BODY
    assert raw_post.name == safe_post.name


def test_filters_by_category_and_day_and_rejects_an_unknown_category(
    write_config: ConfigWriter, cli: Cli
) -> None:
    old = Item("Old news", "https://a.test/old", "o", "Sun, 31 Dec 2023 15:59:00 GMT", "<p>o</p>")
    new = Item("New news", "https://a.test/new", "n", "Sun, 31 Dec 2023 16:00:00 GMT", "<p>n</p>")
    other = Item("Other", "https://b.test/1", "b", "Mon, 01 Jan 2024 10:00:00 GMT", "<p>b</p>")
    routes = {
        "/a": Reply(body=rss("A", [old, new]), headers=RSS),
        "/b": Reply(body=rss("B", [other]), headers=RSS),
    }
    with serve(routes) as server:
        config = write_config(
            [
                {"url": server.url("/a"), "name": "A", "categories": ["Python News"]},
                {"url": server.url("/b"), "name": "B", "categories": ["science"]},
            ]
        )
        cli("--config", str(config), "update")
    out = config.parent / "posts"
    # 16:00 GMT on 31 December is midnight of 1 January in Asia/Shanghai.
    result = cli(
        "--config", str(config), "export-posts", str(out),
        "--category", "python-news", "--since", "2024-01-01", "--format", "jekyll",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (post,) = posts_in(out)
    meta, meta_1_1, _ = read_post(post)
    assert meta["title"] == "New news" and meta["layout"] == "post"
    assert meta_1_1["categories"] == ["Python News", "A"]

    bad = cli("--config", str(config), "export-posts", str(out), "--category", "nope")
    assert bad.exit_code == 2
    assert "no category 'nope'" in bad.output and "Python News" in bad.output
    assert posts_in(out) == [post]


def test_update_keeps_posts_dir_in_sync(write_config: ConfigWriter, cli: Cli) -> None:
    items = [
        Item(f"Story {i}", f"https://site.test/{i}", f"g{i}", "Mon, 01 Jan 2024 10:00:00 GMT",
             f"<p>body {i}</p>")
        for i in range(3)
    ]  # fmt: skip
    feed = {"body": rss("Feed", items)}
    with serve({"/rss": lambda _request: Reply(body=feed["body"], headers=RSS)}) as server:
        config = write_config(
            [{"url": server.url("/rss"), "name": "Site", "categories": ["tech"]}],
            posts_dir="site/content/posts",
            posts_format="hugo",
        )
        assert cli("--config", str(config), "update").exit_code == 0
        out = config.parent / "site" / "content" / "posts"
        first = posts_in(out)
        assert len(first) == 3
        assert all(read_post(p)[1]["date"].year == 2024 for p in first)  # Hugo front matter
        for path in first:
            os.utime(path, (1, 1))

        edited = Item("Story 0 (corrected)", "https://site.test/0", "g0",
                      "Mon, 01 Jan 2024 10:00:00 GMT", "<p>body 0, corrected</p>")  # fmt: skip
        added = Item("Story 3", "https://site.test/3", "g3", "Tue, 02 Jan 2024 10:00:00 GMT")
        feed["body"] = rss("Feed", [edited, *items[1:], added])
        assert cli("--config", str(config), "update").exit_code == 0

    second = posts_in(out)
    assert len(second) == 4
    touched = {p.name for p in second if p.stat().st_mtime != 1}
    story_0 = next(p for p in first if "-story-0-" in p.name)
    assert touched == {story_0.name, *(p.name for p in second if "-story-3-" in p.name)}
    assert read_post(story_0)[0]["title"] == "Story 0 (corrected)"  # same file, new title
    assert "lastmod" in read_post(story_0)[0]

    # `build` brings deleted posts back (named after their current titles).
    for path in second:
        path.unlink()
    assert cli("--config", str(config), "build").exit_code == 0
    assert {p.name[-13:] for p in posts_in(out)} == {p.name[-13:] for p in second}
    result = cli("--config", str(config), "export-posts", str(out), "--format", "hugo")
    assert "0 posts written, 4 unchanged" in result.output


def test_invalid_posts_settings_name_the_line(write_config: ConfigWriter, cli: Cli) -> None:
    config = write_config([], posts_format="jekyl", posts_raw="yes")
    result = cli("--config", str(config), "export-posts", "out")
    assert result.exit_code == 2
    lines = config.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "posts_format" in text)
    assert (
        f"feeds.yaml:{line}: site.posts_format: unknown post format 'jekyl' "
        "(did you mean 'jekyll'?)" in result.output
    )
    assert f"feeds.yaml:{line + 1}: site.posts_raw: expected true or false" in result.output
