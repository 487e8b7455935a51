"""Stories as Markdown posts: front matter that parses back, stable names, atomic files."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.models import POST_FORMATS, SourceRef, StoryView
from aggregator.posts import (
    PostFolder,
    PostOptions,
    category_paths,
    key_of_file_name,
    post_body,
    post_file_name,
    render_post,
    yaml_scalar,
)
from tests.postfiles import load_yaml_1_1, load_yaml_1_2, split_post

SHANGHAI = ZoneInfo("Asia/Shanghai")
PUBLISHED = datetime(2022, 5, 31, 17, 14, 18, tzinfo=UTC)

HOSTILE_VALUES = [
    "It's a 'quoted' title",
    'He said "hi"',
    "Python: the good parts",
    "ends with a colon:",
    "C# vs F# #tags",
    "line one\nline two",
    "before\n---\nafter",
    "---",
    "*bold start",
    "&anchor start",
    "!tag start",
    "- looks like a list",
    "? looks like a key",
    "% directive",
    "@handle",
    "`code`",
    "| literal",
    "> folded",
    "[flow, list]",
    "{flow: map}",
    "a, b, c",
    "yes",
    "No",
    "off",
    "null",
    "~",
    "true",
    "1.5",
    "2022-06-01",
    "0x1F",
    "1_000",
    "12:30:00",
    ".inf",
    "<<",
    "=",
    "+1",
    "",
    " leading and trailing ",
    "tab\there",
    "back\\slash",
    "control \x01 and \x7f and \x85 next line",
    "separators \u2028 and \u2029",
    "bom \ufeff inside",
    "emoji 😀 and 两大摄影巨头",
    "快科技（原驱动之家）",
]


def source(name: str, channel: str | None = None, *categories: str) -> SourceRef:
    return SourceRef(f"https://feeds.test/{len(name)}", name, None, channel, categories)


def story(**changes: object) -> StoryView:
    values: dict[str, object] = dict(
        uid="urn:uuid:5d1c4d36-3b6a-5c2e-9f1e-0c2d6a1b7e11",
        title="两大摄影巨头强强联手！松下与徕卡签署全面战略合作协议",
        link="https://news.example.cn/1.htm",
        author="乃河",
        published=PUBLISHED,
        updated=None,
        first_seen=PUBLISHED,
        summary=None,
        content='<p>今天 <img src="https://img.example.cn/a.png"></p>',
        thumbnail="https://img.example.cn/a.png",
        tags=(),
        categories=("新媒体",),
        enclosures=(),
        sources=(source("快科技（原驱动之家）", "最新新闻", "新媒体"),),
        raw_body='<p>今天 <img src="a.png" w="588"></p>',
    )
    values.update(changes)
    return StoryView(**values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- YAML values


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_every_value_reads_back_as_itself_in_yaml_1_1_and_1_2(value: str) -> None:
    documents = [
        f"key: {yaml_scalar(value)}\n",
        f"key: {yaml_scalar(value, always_quote=True)}\n",
        f"key: \n - {yaml_scalar(value)}\n",
        f"key: \n - [{yaml_scalar(value, flow=True)}, {yaml_scalar(value, flow=True)}]\n",
    ]
    for document in documents:
        for load in (load_yaml_1_1, load_yaml_1_2):
            data = load(document)["key"]
            while isinstance(data, list):
                data = data[0]
            assert data == value, (document, load.__name__)


def test_values_stay_plain_only_where_no_parser_could_misread_them() -> None:
    assert yaml_scalar("快科技（原驱动之家）") == "快科技（原驱动之家）"
    assert yaml_scalar("Python Weekly") == "Python Weekly"
    assert yaml_scalar("It's") == "It's"
    assert yaml_scalar("It's", always_quote=True) == "'It''s'"
    assert yaml_scalar("yes") == "'yes'"
    assert yaml_scalar("2022") == "'2022'"
    assert yaml_scalar("a: b") == "'a: b'"
    assert yaml_scalar("a, b") == "a, b" and yaml_scalar("a, b", flow=True) == "'a, b'"
    assert yaml_scalar("one\ntwo") == '"one\\ntwo"'


# --------------------------------------------------------------------------- front matter


def test_hexo_front_matter_has_the_seed_layout() -> None:
    text = render_post(story(), PostOptions("hexo", raw=True))
    assert text == (
        "---\n"
        "title: '两大摄影巨头强强联手！松下与徕卡签署全面战略合作协议'\n"
        "categories: \n"
        " - 新媒体\n"
        " - 快科技（原驱动之家）\n"
        " - 最新新闻\n"
        "headimg: 'https://img.example.cn/a.png'\n"
        "author: 快科技（原驱动之家）\n"
        "comments: false\n"
        "date: Tue, 31 May 2022 17:14:18 GMT\n"
        "thumbnail: 'https://img.example.cn/a.png'\n"
        "---\n"
        "\n"
        '<p>今天 <img src="a.png" w="588" referrerpolicy="no-referrer"></p>\n'
    )


@pytest.mark.parametrize("post_format", POST_FORMATS)
def test_hostile_values_survive_every_format(post_format: str) -> None:
    odd = story(
        title="Don't: panic\n---\n*really* & !truly #1",
        tags=("&a", "b, c", "yes", "1.0"),
        thumbnail="https://img.test/it's.png?a=1&b=2#x",
        updated=datetime(2022, 6, 2, tzinfo=UTC),
        sources=(
            source("- Dash: \"quoted\" 'name'", "yes", "tech", "1.0"),
            source("[Second]", None),
        ),
    )
    front, body = split_post(render_post(odd, PostOptions(post_format, zone=SHANGHAI)))
    assert "\n---" not in front
    for data in (load_yaml_1_2(front), load_yaml_1_1(front)):
        assert data["title"] == odd.title
        assert data["author"] == "- Dash: \"quoted\" 'name'"
        assert data["comments"] is False
        assert data["tags"] == list(odd.tags)
        paths = [
            ["tech", "- Dash: \"quoted\" 'name'", "yes"],
            ["1.0", "- Dash: \"quoted\" 'name'", "yes"],
            ["[Second]"],
        ]
        if post_format == "hexo":
            assert data["categories"] == paths
            assert data["headimg"] == data["thumbnail"] == odd.thumbnail
        else:
            assert data["categories"] == [
                "tech",
                "- Dash: \"quoted\" 'name'",
                "yes",
                "1.0",
                "[Second]",
            ]
            image = data["images"][0] if post_format == "hugo" else data["image"]
            assert image == odd.thumbnail
    assert body.startswith("<div>\n<p>")


@pytest.mark.parametrize("post_format", ["hugo", "jekyll"])
def test_hugo_and_jekyll_dates_are_iso_8601_in_the_site_time_zone(post_format: str) -> None:
    text = render_post(
        story(updated=datetime(2022, 6, 2, 3, tzinfo=UTC)), PostOptions(post_format, zone=SHANGHAI)
    )
    front, _body = split_post(text)
    assert "\ndate: 2022-06-01T01:14:18+08:00\n" in front
    changed = "lastmod" if post_format == "hugo" else "last_modified_at"
    assert f"\n{changed}: 2022-06-02T11:00:00+08:00\n" in front
    assert load_yaml_1_1(front)["date"] == PUBLISHED  # a real timestamp, not a string
    assert text.startswith("---\nlayout: post\n") is (post_format == "jekyll")


def test_category_paths_follow_sources_and_config_order() -> None:
    cross_posted = story(
        sources=(
            source("Planet", "Planet Python", "python", "tech"),
            source("Same Name", "Same Name"),
            source("Planet", "Planet Python", "python"),
        )
    )
    assert category_paths(cross_posted, ("tech", "python")) == [
        ("tech", "Planet", "Planet Python"),
        ("python", "Planet", "Planet Python"),
        ("Same Name",),  # uncategorised, and a channel title equal to the name is not repeated
    ]


def test_sanitised_body_is_a_single_html_block_for_markdown() -> None:
    html = "<p>one</p>\n\n    <p>indented *not code*</p>\n<pre>keep\n\n    this</pre>\n\n<p>end</p>"
    body = post_body(story(content=html), raw=False)
    assert body == (
        "<div>\n<p>one</p>\n<p>indented *not code*</p>\n"
        "<pre>keep\n\n    this</pre>\n<p>end</p>\n</div>"
    )
    assert post_body(story(content=html), raw=True) == (
        '<p>今天 <img src="a.png" w="588" referrerpolicy="no-referrer"></p>'
    )
    assert post_body(story(content=html, raw_body=None), raw=True) == body  # stored before raw
    assert post_body(story(content=None, summary=None), raw=False) == ""


def test_raw_body_is_the_feeds_but_for_images_told_to_send_no_referrer() -> None:
    raw = (
        '<p>a > b</p>\n  <img alt="x > y" src=a.png>'
        '<IMG SRC="b.png" />'
        "<img src='c.png' referrerPolicy=origin>"
        "<img\nsrc=d.png/>"
        "<imgur>e</imgur>"
    )
    assert post_body(story(raw_body=raw), raw=True) == (
        '<p>a > b</p>\n  <img alt="x > y" src=a.png referrerpolicy="no-referrer">'
        '<IMG SRC="b.png" referrerpolicy="no-referrer" />'
        "<img src='c.png' referrerPolicy=origin>"  # a policy of its own is kept
        '<img\nsrc=d.png/ referrerpolicy="no-referrer">'  # the URL is "d.png/"
        "<imgur>e</imgur>"
    )


# --------------------------------------------------------------------------- file names


def test_file_name_is_local_day_transliterated_slug_and_story_key() -> None:
    name = post_file_name(story(), SHANGHAI)
    assert re.fullmatch(r"2022-06-01-liang-da-she-ying-[a-z0-9-]+-[a-z2-7]{10}\.md", name), name
    assert len(name) <= 10 + 1 + 60 + 1 + 10 + 3
    assert post_file_name(story(), UTC).startswith("2022-05-31-")
    assert post_file_name(story(title="😀🎉"), UTC).startswith("2022-05-31-post-")
    assert post_file_name(story(title='CON: <a/b\\c>?*|"'), UTC).startswith("2022-05-31-con-a-b-c-")
    other = story(uid="urn:uuid:00000000-0000-5000-8000-000000000001")
    assert post_file_name(other, UTC) != post_file_name(story(), UTC)  # same title, same day
    assert key_of_file_name(name) == name[-13:-3]
    assert key_of_file_name("2022-06-01-my-own-post.md") is None
    assert key_of_file_name("about.md") is None


def test_folder_keeps_each_story_in_its_first_file_and_leaves_other_files_alone(
    tmp_path: Path,
) -> None:
    own = tmp_path / "2020-01-01-hello-world.md"
    own.write_text("my own post")
    folder = PostFolder(tmp_path, PostOptions("hexo", zone=UTC))
    path, changed = folder.write(story())
    assert changed and path.parent == tmp_path
    os.utime(path, (1, 1))
    assert folder.write(story()) == (path, False)
    assert path.stat().st_mtime == 1  # unchanged bytes are not rewritten

    renamed = story(title="A new title", published=datetime(2023, 1, 1, tzinfo=UTC))
    again = PostFolder(tmp_path, PostOptions("hexo", zone=UTC))  # a later run finds it by key
    assert again.write(renamed) == (path, True)
    assert "title: 'A new title'" in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([own.name, path.name])
    assert own.read_text() == "my own post"
    assert not list(tmp_path.glob(".*.tmp"))


def test_every_format_writes_a_parseable_post_for_a_story_without_body_or_image() -> None:
    bare = story(content=None, thumbnail=None, raw_body=None, sources=())
    for post_format in POST_FORMATS:
        front, body = split_post(render_post(bare, PostOptions(post_format, zone=UTC)))
        data = load_yaml_1_1(front)
        assert body == "" and data["author"] == "乃河"  # no source left: the entry's author
        assert "headimg" not in data and "image" not in data and "images" not in data
