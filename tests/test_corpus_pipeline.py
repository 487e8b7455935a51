"""feedparser's whole test corpus through `aggregator update`, served with its headers."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import feedparser
import pytest
from click.testing import Result
from lxml import etree

from tests.conftest import report, run_cli, shared_path, write_config_file
from tests.corpus import SCRIPT_PAYLOAD, corpus_files, corpus_headers
from tests.httpserver import Reply, serve
from tests.postfiles import read_post

Cli = Callable[..., Result]
CATEGORIES = ("wellformed", "illformed", "encoding", "entities", "json")
SAFE_URL = re.compile(r'(?:href|src)="(?!https?://|mailto:|\.\./|#|digest/|index\.html)', re.I)


@dataclass(frozen=True)
class CorpusRun:
    config: Path
    feeds: list[dict[str, Any]]
    result: Result
    seconds: float


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    """Every corpus file served with its `Header:` lines, through one `update`."""
    root = shared_path("corpus", "feedparser")
    routes: dict[str, Reply] = {}
    feeds: list[dict[str, Any]] = []
    for path in corpus_files(root):
        body = path.read_bytes()
        headers = corpus_headers(body)
        name = "/" + str(path.relative_to(root))
        routes[name] = Reply(body=body, headers=headers)
        folder = name.split("/")[1]
        feeds.append({"name": name, "categories": [folder if folder in CATEGORIES else "other"]})

    started = time.monotonic()
    with serve(routes) as server:
        for feed in feeds:
            feed["url"] = server.url(feed["name"])
        config = write_config_file(
            tmp_path_factory.mktemp("corpus"), feeds, max_entries=200, digest_per_category=50
        )
        result = run_cli("--config", str(config), "update")
    return CorpusRun(config, feeds, result, time.monotonic() - started)


def test_every_corpus_feed_is_stored_or_recorded_and_outputs_stay_valid(
    corpus_run: CorpusRun, cli: Cli
) -> None:
    config, feeds, result, elapsed = (
        corpus_run.config, corpus_run.feeds, corpus_run.result, corpus_run.seconds
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.output

    status = json.loads(cli("--config", str(config), "status", "--json").output)
    states = [f["state"] for f in status["feeds"]]
    assert len(states) == len(feeds)
    assert set(states) <= {"ok", "error"}  # every feed was polled and its outcome recorded
    errors = [f for f in status["feeds"] if f["state"] == "error"]
    assert all(f["last_error"] for f in errors)
    report(
        "feedparser corpus",
        f"corpus through update: {len(feeds)} feeds, {states.count('ok')} ok, "
        f"{len(errors)} errors, {status['entries_total']} stories, {elapsed:.1f}s",
    )
    assert states.count("ok") > 0.95 * len(feeds)
    assert status["entries_total"] > 500  # corpus entries share links, so fewer stories

    public = config.parent / "var" / "public"
    outputs = sorted((public / "feeds").iterdir())
    assert len(outputs) == 3 * (1 + len({f["categories"][0] for f in feeds}))
    for output in outputs:
        data = output.read_bytes()
        if output.suffix == ".json":
            document = json.loads(data)
            assert document["version"] == "https://jsonfeed.org/version/1.1"
            assert all(isinstance(item["id"], str) for item in document["items"])
            text = json.dumps(document, ensure_ascii=False)
        else:
            etree.fromstring(data)  # well-formed XML or an exception
            parsed = feedparser.parse(data)
            assert not parsed.bozo, (output.name, parsed.get("bozo_exception"))
            assert all(e.get("id") for e in parsed.entries)
            alternates = [
                link.href
                for e in parsed.entries
                for link in e.get("links", [])
                if link.get("rel") == "alternate"
            ]
            assert all(href.startswith(("http://", "https://")) for href in alternates)
            text = data.decode("utf-8")
            # What a reader renders is the unescaped HTML inside the XML text.
            text = " ".join(str(node) for node in etree.fromstring(data).itertext())
        assert not SCRIPT_PAYLOAD.search(text), output.name
    for page in [public / "index.html", *public.glob("digest/**/*.html")]:
        html = page.read_text("utf-8")
        assert "<script" not in html.lower(), page
        assert not SAFE_URL.search(html), (page, SAFE_URL.search(html))
        assert "Content-Security-Policy" in html


@pytest.mark.parametrize(("post_format", "body"), [("hexo", "--raw"), ("hugo", "--sanitised"),
                                                   ("jekyll", "--raw")])  # fmt: skip
def test_every_corpus_entry_exports_as_a_post_that_parses_and_a_second_export_writes_nothing(
    corpus_run: CorpusRun, cli: Cli, tmp_path: Path, post_format: str, body: str
) -> None:
    config = str(corpus_run.config)
    status = json.loads(cli("--config", config, "status", "--json").output)
    export = ("--config", config, "export-posts", str(tmp_path), "--format", post_format, body)
    first = cli(*export)
    assert first.exit_code == 0, first.output
    posts = sorted(tmp_path.glob("*.md"))
    assert len(posts) == status["entries_total"] > 500
    assert f"{len(posts)} posts written, 0 unchanged" in first.output
    with sqlite3.connect(corpus_run.config.parent / "var" / "aggregator.db") as db:
        stored_titles = sorted(title for (title,) in db.execute("SELECT title FROM stories"))
    feed_names = {feed["name"] for feed in corpus_run.feeds}
    titles: list[str] = []
    for post in posts:
        meta, meta_1_1, _body = read_post(post)
        assert meta["title"] == meta_1_1["title"], post
        titles.append(meta["title"])
        assert meta["author"] == meta_1_1["author"] and meta["author"] in feed_names, post
        assert meta["categories"] == meta_1_1["categories"], post
        assert "date" in meta_1_1, post
    assert sorted(titles) == stored_titles  # every value read back is the stored one
    assert f"0 posts written, {len(posts)} unchanged" in cli(*export).output
