"""load_config: real YAML files in tmp_path, exact values and exact problem locations."""

from __future__ import annotations

import textwrap
from datetime import time, timedelta
from pathlib import Path

import pytest

from aggregator.config import load_config, parse_duration, parse_size
from aggregator.errors import ConfigError, ConfigProblem
from aggregator.models import Category, FetchLimits

FULL_EXAMPLE = """\
site:
  title: Tech digest
  base_url: https://news.example.org
  output_dir: var/public
  database: sqlite:///var/aggregator.db
  timezone: Asia/Shanghai
  digest_time: "07:00"
  interval: 30m
  max_entries: 40
  digest_per_category: 25
  language: zh-CN
  fetch:
    connect_timeout: 5s
    read_timeout: 20s
    deadline: 1m
    max_body_bytes: 16MB
    max_decoded_bytes: 512KB
    max_redirects: 3
    concurrency: 8
categories:
  新媒体: {slug: kuaikeji}
feeds:
  - url: https://example.com/feed.xml
    name: Example
    categories: [tech, photo]
    interval: 15m
  - url: https://example.org/news
    categories: 新媒体
"""


def write(tmp_path: Path, text: str, name: str = "feeds.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def where(problems: list[ConfigProblem]) -> list[tuple[int | None, str]]:
    return [(p.line, p.key) for p in problems]


# --------------------------------------------------------------------------- valid files


def test_full_example_loads_with_paths_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    path = write(config_dir, FULL_EXAMPLE)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths must not follow the working directory

    config = load_config(path)

    site = config.site
    assert config.path == path.absolute()
    assert site.title == "Tech digest"
    assert site.base_url == "https://news.example.org/"
    assert site.output_dir == config_dir.absolute() / "var" / "public"
    assert site.database_url == f"sqlite:///{config_dir.absolute()}/var/aggregator.db"
    assert site.database_url.startswith("sqlite:////")
    assert site.timezone == "Asia/Shanghai"
    assert site.digest_time == time(7, 0)
    assert site.interval == timedelta(minutes=30)
    assert (site.max_entries, site.digest_per_category, site.language) == (40, 25, "zh-CN")
    assert site.fetch == FetchLimits(
        connect_timeout=5.0,
        read_timeout=20.0,
        deadline=60.0,
        max_body_bytes=16 * 1024 * 1024,
        max_decoded_bytes=512 * 1024,
        max_redirects=3,
        concurrency=8,
    )
    first, second = config.feeds
    assert first.url == "https://example.com/feed.xml"
    assert first.name == "Example"
    assert first.categories == ("tech", "photo")
    assert first.interval == timedelta(minutes=15)
    assert second.name is None
    assert second.categories == ("新媒体",)  # a single string is a one-item list
    assert second.interval == timedelta(minutes=30)  # inherits the site interval
    # `categories:` comes before `feeds:` in the file, so its names appear first.
    assert config.categories == (
        Category("新媒体", "kuaikeji"),
        Category("tech", "tech"),
        Category("photo", "photo"),
    )


def test_only_base_url_gives_all_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "site:\n  base_url: https://news.example.org/\nfeeds: []\n")

    config = load_config(path)

    site = config.site
    assert site.title == "Aggregated feeds"
    assert site.output_dir == tmp_path.absolute() / "var" / "public"
    assert site.database_url == f"sqlite:///{tmp_path.absolute()}/var/aggregator.db"
    assert site.timezone == "UTC"
    assert site.digest_time == time(7, 0)
    assert site.interval == timedelta(minutes=30)
    assert site.max_entries == 50
    assert site.digest_per_category == 30
    assert site.language == "en"
    assert site.fetch == FetchLimits()
    assert config.feeds == ()
    assert config.categories == ()


def test_slugs_transliterate_unless_given_and_follow_first_appearance(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        site: {base_url: "https://news.example.org/"}
        feeds:
          - url: https://a.example/feed
            categories: [新媒体, Tech News, 新媒体]
          - url: https://b.example/feed
            categories: [摄影, Tech News]
        categories:
          摄影: {slug: photos}
          Declared only:
        """,
    )

    config = load_config(path)

    # A category no feed names has nothing to publish: only its options are read.
    assert config.categories == (
        Category("新媒体", "xin-mei-ti"),
        Category("Tech News", "tech-news"),
        Category("摄影", "photos"),
    )
    assert config.feeds[0].categories == ("新媒体", "Tech News")  # repeats dropped


def test_absolute_and_memory_databases_and_absolute_output_dir_stay_as_written(
    tmp_path: Path,
) -> None:
    out = tmp_path / "public"
    for database in (
        "sqlite:////srv/agg.db",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql://u@db/agg",
    ):
        path = write(
            tmp_path,
            f"site:\n  base_url: https://x.example/\n  database: '{database}'\n"
            f"  output_dir: {out}\nfeeds: []\n",
        )
        site = load_config(path).site
        assert site.database_url == database
        assert site.output_dir == out


def test_unquoted_scalars_that_yaml_retypes_are_read_sensibly(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        %YAML 1.1
        ---
        site:
          base_url: https://x.example/
          digest_time: 7:30
          interval: 90
        feeds:
          - url: https://a.example/feed
            categories: [2024, photo]
        """,
    )

    config = load_config(path)

    assert config.site.digest_time == time(7, 30)  # YAML 1.1 read 7:30 as the int 450
    assert config.site.interval == timedelta(seconds=90)  # a plain int is seconds
    assert config.feeds[0].categories == ("2024", "photo")


# --------------------------------------------------------------------------- whole-file problems


def test_missing_file_has_no_line(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"

    (problem,) = problems_of(path)

    assert problem == ConfigProblem(str(path), None, "(file)", "file not found")


def test_yaml_syntax_error_points_at_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        site:
          base_url: https://x.example/
          title: a: b
        feeds: []
        """,
    )

    (problem,) = problems_of(path)

    assert (problem.file, problem.line, problem.key) == (str(path), 3, "(yaml)")
    assert "mapping values are not allowed" in problem.message


def test_tab_indentation_is_explained(tmp_path: Path) -> None:
    path = write(tmp_path, "site:\n  base_url: https://x.example/\n\tinterval: 5m\nfeeds: []\n")

    (problem,) = problems_of(path)

    assert problem.line == 3
    assert "not tabs" in problem.message


def test_duplicate_yaml_key_is_a_syntax_problem_on_the_second_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "site:\n  base_url: https://x.example/\n  interval: 1h\n  interval: 2h\nfeeds: []\n",
    )

    (problem,) = problems_of(path)

    assert (problem.line, problem.key) == (4, "(yaml)")
    assert 'duplicate key "interval"' in problem.message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("", "the file is empty"), ("- a\n- b\n", "must be a mapping"), ("just text\n", "mapping")],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)

    (problem,) = problems_of(path)

    assert (problem.line, problem.key) == (1, "(document)")
    assert fragment in problem.message


# --------------------------------------------------------------------------- located problems

SINGLE_MISTAKES = [
    pytest.param(
        "site:\n  base_url: https://x.example/\n  intervall: 5m\nfeeds: []\n",
        3,
        "site.intervall",
        "unknown key 'intervall' (did you mean 'interval'?)",
        id="unknown-key-suggestion",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\nfeeds: []\nzebra: 1\n",
        4,
        "zebra",
        "allowed keys here: site, feeds, categories",
        id="unknown-top-level-key-lists-allowed",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  fetch:\n    dedline: 5s\nfeeds: []\n",
        4,
        "site.fetch.dedline",
        "did you mean 'deadline'?",
        id="unknown-nested-key",
    ),
    pytest.param(
        "site:\n  title: T\nfeeds: []\n",
        1,
        "site.base_url",
        "required",
        id="missing-base-url-at-site-line",
    ),
    pytest.param(
        "feeds: []\n",
        None,
        "site",
        "required",
        id="missing-site",
    ),
    pytest.param(
        "site:\n  title: T\n  base_url:\nfeeds: []\n",
        3,
        "site.base_url",
        "is empty; set it to the public URL",
        id="empty-base-url",
    ),
    pytest.param(
        "site:\n  base_url: ftp://x.example/\nfeeds: []\n",
        2,
        "site.base_url",
        "is not an http or https URL",
        id="base-url-scheme",
    ),
    pytest.param(
        "site: {base_url: 'https://x.example/'}\nfeeds:\n  - url: https:///feed\n",
        3,
        "feeds[0].url",
        "has no host name",
        id="url-without-host",
    ),
    pytest.param(
        "site: {base_url: 'https://x.example/'}\nfeeds:\n  - url: https://x.example/my feed\n",
        3,
        "feeds[0].url",
        "contains spaces",
        id="url-with-space",
    ),
    pytest.param(
        "site: {base_url: 'https://x.example/'}\nfeeds:\n  - name: No URL\n",
        3,
        "feeds[0].url",
        "required",
        id="feed-without-url",
    ),
    pytest.param(
        "site: {base_url: 'https://x.example/'}\nfeeds:\n  - url: https://a.example/\n"
        "    interval: 15 minutes\n",
        4,
        "feeds[0].interval",
        "'15 minutes' is not a duration; use e.g. 90s, 15m, 1h30m, 2d",
        id="bad-duration",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  interval: 0s\nfeeds: []\n",
        3,
        "site.interval",
        "more than zero",
        id="zero-duration",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  fetch:\n    max_body_bytes: 16 megs\nfeeds: []\n",
        4,
        "site.fetch.max_body_bytes",
        "'16 megs' is not a size",
        id="bad-size",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  timezone: Asia/Shangai\nfeeds: []\n",
        3,
        "site.timezone",
        "unknown time zone 'Asia/Shangai' (did you mean 'Asia/Shanghai'?)",
        id="bad-timezone",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  digest_time: '25:00'\nfeeds: []\n",
        3,
        "site.digest_time",
        "'25:00' is not a time of day",
        id="bad-digest-time",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  digest_time: 7\nfeeds: []\n",
        3,
        "site.digest_time",
        "7 is not a time of day",
        id="ambiguous-bare-hour",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  max_entries: 0\nfeeds: []\n",
        3,
        "site.max_entries",
        "must be at least 1, got 0",
        id="non-positive-int",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  max_entries: 9999999999999999999\nfeeds: []\n",
        3,
        "site.max_entries",
        "must be at most 1000000, got 9999999999999999999",
        id="int-too-large-for-sqlite",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  fetch:\n    concurrency: 5000\nfeeds: []\n",
        4,
        "site.fetch.concurrency",
        "must be at most 1000, got 5000",
        id="too-many-connections",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  fetch:\n    max_redirects: 1000\nfeeds: []\n",
        4,
        "site.fetch.max_redirects",
        "must be at most 100, got 1000",
        id="too-many-redirects",
    ),
    pytest.param(
        "site: {base_url: 'https://x.example/'}\nfeeds:\n  - url: https://a.example/\n"
        "    interval: 3000000d\n",
        4,
        "feeds[0].interval",
        "the duration '3000000d' is too long; at most 365d",
        id="interval-past-the-year-9999",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  interval: 999999999999d\nfeeds: []\n",
        3,
        "site.interval",
        "the duration '999999999999d' is too long; at most 365d",
        id="interval-too-long-for-timedelta",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  interval: 1" + "0" * 400 + "\nfeeds: []\n",
        3,
        "site.interval",
        "is too long; at most 365d",
        id="interval-too-long-for-float",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  fetch:\n    deadline: 2h\nfeeds: []\n",
        4,
        "site.fetch.deadline",
        "the duration '2h' is too long; at most 1h",
        id="timeout-too-long",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  fetch:\n    deadline: 1e400\nfeeds: []\n",
        4,
        "site.fetch.deadline",
        "inf is not a finite duration",
        id="infinite-duration",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  fetch:\n    read_timeout: .nan\nfeeds: []\n",
        4,
        "site.fetch.read_timeout",
        "nan is not a finite duration",
        id="nan-duration",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  fetch:\n    max_decoded_bytes: 2GB\nfeeds: []\n",
        4,
        "site.fetch.max_decoded_bytes",
        "the size '2GB' is too large; at most 1GB",
        id="size-too-large",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  fetch:\n    max_body_bytes: "
        + "9" * 400
        + "GB\nfeeds: []\n",
        4,
        "site.fetch.max_body_bytes",
        "is too large",
        id="size-too-large-for-float",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\n  fetch:\n    concurrency: lots\nfeeds: []\n",
        4,
        "site.fetch.concurrency",
        "expected a whole number, got 'lots'",
        id="int-wrong-type",
    ),
    pytest.param(
        "site:\n  base_url: https://x.example/\nfeeds: []\ncategories: 5\n",
        4,
        "categories",
        "expected a mapping of category names to options, got the number 5",
        id="categories-wrong-type",
    ),
    pytest.param(
        "site: {base_url: 'https://x.example/'}\nfeeds:\n  - url: https://a.example/\n"
        "    categories: 5\n",
        4,
        "feeds[0].categories",
        "expected a list, got the number 5",
        id="feed-categories-wrong-type",
    ),
    pytest.param(
        "site: {base_url: 'https://x.example/'}\nfeeds:\n  - url: https://a.example/\n"
        "    categories:\n      - tech\n      - {x: 1}\n",
        6,
        "feeds[0].categories[1]",
        "expected text, got a mapping",
        id="category-item-wrong-type",
    ),
    pytest.param(
        "site: {base_url: 'https://x.example/'}\nfeeds: https://a.example/feed\n",
        2,
        "feeds",
        "expected a list of feeds",
        id="feeds-not-a-list",
    ),
    pytest.param(
        "site: {base_url: 'https://x.example/'}\nfeeds:\n",
        2,
        "feeds",
        "write 'feeds: []' for none",
        id="feeds-empty-value",
    ),
    pytest.param(
        "site: {base_url: 'https://x.example/'}\n",
        None,
        "feeds",
        "required",
        id="feeds-missing",
    ),
    pytest.param(
        "site: {base_url: 'https://x.example/'}\nfeeds:\n  - https://a.example/feed\n",
        3,
        "feeds[0]",
        "write '- url: https://a.example/feed'",
        id="feed-is-a-bare-url",
    ),
    pytest.param(
        "site: {base_url: 'https://x.example/'}\nfeeds: []\ncategories:\n"
        "  新媒体: {slug: Kuai Keji}\n",
        4,
        "categories.新媒体.slug",
        "'Kuai Keji' is not a valid slug",
        id="bad-explicit-slug",
    ),
    pytest.param(
        "site: {base_url: 'https://x.example/'}\nfeeds:\n  - url: https://a.example/\n"
        "    categories: [news, All]\n",
        4,
        "feeds[0].categories[1]",
        "reserved",
        id="reserved-slug-all",
    ),
    pytest.param(
        "site: {base_url: 'https://x.example/'}\nfeeds:\n  - url: https://a.example/\n"
        "    categories: ['!!!']\n",
        4,
        "feeds[0].categories[0]",
        "give it a slug under categories:",
        id="empty-slug",
    ),
]


@pytest.mark.parametrize(("text", "line", "key", "fragment"), SINGLE_MISTAKES)
def test_each_mistake_is_located(
    tmp_path: Path, text: str, line: int | None, key: str, fragment: str
) -> None:
    path = write(tmp_path, text)

    (problem,) = problems_of(path)

    assert (problem.file, problem.line, problem.key) == (str(path), line, key)
    assert fragment in problem.message


def test_duplicate_url_reports_the_second_and_names_the_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        site: {base_url: "https://x.example/"}
        feeds:
          - url: https://Example.COM/feed
          - url: https://other.example/feed
          - url: " https://example.com/feed "
        """,
    )

    (problem,) = problems_of(path)

    assert (problem.line, problem.key) == (5, "feeds[2].url")
    assert "already listed (line 3, feeds[0])" in problem.message


def test_categories_with_the_same_slug_are_named_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        site: {base_url: "https://x.example/"}
        feeds:
          - url: https://a.example/feed
            categories: [Tech]
          - url: https://b.example/feed
            categories: [tech]
        """,
    )

    (problem,) = problems_of(path)

    assert (problem.line, problem.key) == (6, "feeds[1].categories[0]")
    assert "'Tech' (line 4) and 'tech' both get the slug 'tech'" in problem.message


def test_every_mistake_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        site:
          base_url:
          intervall: 5m
          timezone: Mars/Olympus
          fetch:
            deadline: soon
        categories:
          Tech: {slug: all}
        feeds:
          - url: ftp://a.example/feed
          - url: https://b.example/feed
            interval: 15 minutes
          - url: https://b.example/feed
            colour: red
        """,
    )

    problems = problems_of(path)

    assert where(problems) == [
        (2, "site.base_url"),
        (3, "site.intervall"),
        (4, "site.timezone"),
        (6, "site.fetch.deadline"),
        (8, "categories.Tech.slug"),
        (10, "feeds[0].url"),
        (12, "feeds[1].interval"),
        (13, "feeds[2].url"),  # duplicate, found even though feeds[1] itself is invalid
        (14, "feeds[2].colour"),
    ]
    assert all(p.file == str(path) for p in problems)
    assert "line 11" in problems[7].message
    assert str(ConfigError(problems)).count("\n") == len(problems) - 1


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(minutes=90)),
        ("1h 30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("500ms", timedelta(milliseconds=500)),
        ("1.5h", timedelta(minutes=90)),
        (45, timedelta(seconds=45)),
        (2.5, timedelta(seconds=2.5)),
        ("30", timedelta(seconds=30)),
    ],
)
def test_parse_duration_accepts(text: str | float, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "15 minutes",
        "",
        "m",
        "1m30h",
        "0s",
        0,
        -5,
        "-5m",
        True,
        float("inf"),
        float("-inf"),
        float("nan"),
        pytest.param(10**400, id="int-of-401-digits"),
        pytest.param("9" * 400 + "d", id="days-of-400-digits"),
    ],
)
def test_parse_duration_rejects(text: str | float) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param(float("inf"), "inf is not a finite duration", id="inf"),
        pytest.param(float("nan"), "nan is not a finite duration", id="nan"),
        pytest.param("9" * 400 + "d", "is too long", id="days-of-400-digits"),
        pytest.param(10**400, "is too long", id="int-of-401-digits"),
    ],
)
def test_parse_duration_says_why_a_huge_number_is_refused(text: str | float, fragment: str) -> None:
    with pytest.raises(ValueError, match="duration") as info:
        parse_duration(text)
    assert fragment in str(info.value)
    assert "more than zero" not in str(info.value)


def test_every_setting_takes_its_ceiling(tmp_path: Path) -> None:
    """The ceilings are inclusive: each can be written as the message gives it."""
    path = write(
        tmp_path,
        """\
        site:
          base_url: https://x.example/
          interval: 365d
          max_entries: 1000000
          digest_per_category: 1000000
          fetch:
            connect_timeout: 1h
            read_timeout: 3600
            deadline: 60m
            max_body_bytes: 1GB
            max_decoded_bytes: 1073741824
            max_redirects: 100
            concurrency: 1000
            max_entries_per_feed: 1000000
            max_title_chars: 1000000
            max_url_chars: 1000000
        feeds:
          - url: https://a.example/
            interval: 365d
        """,
    )

    site = load_config(path).site

    assert site.interval == timedelta(days=365) == load_config(path).feeds[0].interval
    assert (site.max_entries, site.digest_per_category) == (1_000_000, 1_000_000)
    assert site.fetch == FetchLimits(
        connect_timeout=3600,
        read_timeout=3600,
        deadline=3600,
        max_body_bytes=1024**3,
        max_decoded_bytes=1024**3,
        max_redirects=100,
        concurrency=1000,
        max_entries_per_feed=1_000_000,
        max_title_chars=1_000_000,
        max_url_chars=1_000_000,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (4096, 4096),
        ("512KB", 512 * 1024),
        ("16MB", 16 * 1024**2),
        ("1GB", 1024**3),
        ("2MiB", 2 * 1024**2),
    ],
)
def test_parse_size_accepts(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text", ["16 megs", "0", 0, "-1", "KB", pytest.param("9" * 400 + "GB", id="400-digits-GB")]
)
def test_parse_size_rejects(text: str | int) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


@pytest.mark.parametrize(
    "text",
    [
        FULL_EXAMPLE,
        "%YAML 1.1\n---\nsite: {base_url: 'https://x.example/', digest_time: 7:30, interval: 90}\n"
        "feeds:\n  - {url: 'https://a.example/feed', categories: [2024, photo, 1.5]}\n",
        '{"site": {"base_url": "https://x.example/"}, "feeds": [{"url": "https://a.example/f"}]}',
        (Path(__file__).parents[1] / "feeds.yaml").read_text(encoding="utf-8"),
    ],
    ids=["full", "yaml-1.1", "json", "example-feeds.yaml"],
)
def test_quick_parse_gives_what_the_round_trip_parser_gives(tmp_path: Path, text: str) -> None:
    from aggregator.config import _parse, build_config

    path = tmp_path / "feeds.yaml"
    path.write_text(text, encoding="utf-8")
    careful = build_config(_parse(text, path), path, locate=True)
    assert careful is not None
    assert load_config(path) == careful
