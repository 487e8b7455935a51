"""feedparser's whole test corpus through `aggregator update`, served with its headers."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import feedparser
from click.testing import Result
from lxml import etree

from tests.conftest import ConfigWriter, shared_path
from tests.corpus import SCRIPT_PAYLOAD, corpus_files, corpus_headers
from tests.httpserver import Reply, serve

Cli = Callable[..., Result]
CATEGORIES = ("wellformed", "illformed", "encoding", "entities", "json")
SAFE_URL = re.compile(r'(?:href|src)="(?!https?://|mailto:|\.\./|#|digest/|index\.html)', re.I)


def test_every_corpus_feed_is_stored_or_recorded_and_outputs_stay_valid(
    write_config: ConfigWriter, cli: Cli
) -> None:
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
        config = write_config(feeds, max_entries=200, digest_per_category=50)
        result = cli("--config", str(config), "update")
    elapsed = time.monotonic() - started
    assert result.exit_code in (0, 1), result.output

    status = json.loads(cli("--config", str(config), "status", "--json").output)
    states = [f["state"] for f in status["feeds"]]
    assert len(states) == len(feeds)
    assert set(states) <= {"ok", "error"}  # every feed was polled and its outcome recorded
    errors = [f for f in status["feeds"] if f["state"] == "error"]
    assert all(f["last_error"] for f in errors)
    print(
        f"\ncorpus through update: {len(feeds)} feeds, {states.count('ok')} ok, "
        f"{len(errors)} errors, {status['entries_total']} stories, {elapsed:.1f}s"
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
