"""The cleaning worker: a real `python -m aggregator.pool` process, against cleaning in-process."""

from __future__ import annotations

import dataclasses
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.clean import cleaning_rules
from aggregator.core import make_aggregator
from aggregator.errors import ParseError
from aggregator.identity import entry_fingerprint
from aggregator.models import FetchLimits, ParsedFeed, RawEntry
from aggregator.pool import (
    MIN_BATCH,
    MIN_DOCUMENT_BYTES,
    CleaningPool,
    Document,
    clean_entries,
    read_document,
)
from tests.conftest import write_config_file
from tests.feedbuilder import Item, rss
from tests.httpserver import Reply, serve

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
LIMITS = FetchLimits()
PARSED = ParsedFeed(format="rss20", title="F", link=None, entries=())


def batch(count: int, start: int = 0) -> list[tuple[RawEntry, str]]:
    raws = [
        RawEntry(
            guid=f"g{i}",
            title=f"Story {i} <b>bold</b>",
            link=f"/stories/{i}",
            base="https://site.test/feed.xml",
            author="Ann",
            published=datetime(2024, 4, 1, tzinfo=UTC),
            updated=None,
            summary_html=None,
            content_html=f'<p onclick="x()">Body {i} <img src="/i/{i}.jpg"><script>bad()</script>',
            tags=("a",),
        )
        for i in range(start, start + count)
    ]
    return [(raw, entry_fingerprint(raw, cleaning_rules(LIMITS))) for raw in raws]


def test_a_worker_cleans_exactly_as_this_process_does() -> None:
    pool = CleaningPool(workers=1)
    try:
        jobs = [
            pool.submit(PARSED, batch(MIN_BATCH, start), NOW, LIMITS) for start in (0, 100, 200)
        ]
        assert [job.result()[1] for job in jobs] == [
            clean_entries(batch(MIN_BATCH, start), NOW, LIMITS) for start in (0, 100, 200)
        ]
        assert len(pool._started) == 1  # it did go to a worker
    finally:
        pool.close()
    first = jobs[0].result()[1][0]
    assert first.link == "https://site.test/stories/0"
    assert first.content is not None and "script" not in first.content
    assert first.fingerprint == batch(1)[0][1]


def test_small_batches_never_start_a_worker() -> None:
    pool = CleaningPool(workers=1)
    job = pool.submit(PARSED, batch(MIN_BATCH - 1), NOW, LIMITS)
    assert job.done() and len(job.result()[1]) == MIN_BATCH - 1
    assert pool._started == []
    pool.close()


def test_batches_a_killed_worker_owed_are_cleaned_here() -> None:
    pool = CleaningPool(workers=1)
    try:
        pool.submit(PARSED, batch(MIN_BATCH), NOW, LIMITS).result()  # started, answering
        (worker,) = pool._started
        worker._process.send_signal(signal.SIGKILL)
        worker._process.wait()
        job = pool.submit(PARSED, batch(MIN_BATCH, 50), NOW, LIMITS)
        assert job.result() == (PARSED, clean_entries(batch(MIN_BATCH, 50), NOW, LIMITS))
    finally:
        pool.close()


def test_an_error_while_cleaning_reaches_the_caller() -> None:
    pool = CleaningPool(workers=1)
    try:
        broken = [(dataclasses.replace(raw, title=42), f) for raw, f in batch(MIN_BATCH)]  # type: ignore[arg-type]
        good = pool.submit(PARSED, batch(MIN_BATCH), NOW, LIMITS)
        job = pool.submit(PARSED, broken, NOW, LIMITS)
        assert len(good.result()[1]) == MIN_BATCH
        with pytest.raises(RuntimeError):
            job.result()
    finally:
        pool.close()


def test_an_update_with_a_worker_stores_what_one_without_stores(tmp_path: Path) -> None:
    items = [
        Item(f"Story {i}", f"https://site.test/{i}", f"g{i}", description=f"<p>Body {i}</p>")
        for i in range(3 * MIN_BATCH)
    ]
    headers = {"Content-Type": "application/rss+xml; charset=utf-8"}
    stored = {}
    with serve({"/f": Reply(body=rss("F", items), headers=headers)}) as server:
        for workers in (0, 1):
            folder = tmp_path / f"workers-{workers}"
            folder.mkdir()
            config = write_config_file(folder, [{"url": server.url("/f")}])
            aggregator = make_aggregator(config, clock=lambda: NOW)
            aggregator.workers = workers
            try:
                report = aggregator.update(publish=False)
                assert not report.failed
                stored[workers] = [
                    (s.uid, s.title, s.link, s.content, s.summary)
                    for s in aggregator.storage.newest_stories(None, 1000)
                ]
            finally:
                aggregator.close()
    assert len(stored[0]) == 3 * MIN_BATCH
    assert stored[1] == stored[0]


def test_a_worker_reads_a_whole_document_as_this_process_does() -> None:
    items = [
        Item(f"Story {i}", f"https://site.test/{i}", f"g{i}", description="<p>x</p>" * 50)
        for i in range(40)
    ]
    body = rss("F", items)
    assert len(body) >= MIN_DOCUMENT_BYTES
    headers = {"content-type": "application/rss+xml; charset=utf-8"}
    document = Document(body, headers, "https://site.test/feed.xml", 1000)
    broken = Document(b"<html><body>not a feed</body></html>" * 2000, {}, "https://x.test/", 1000)
    pool = CleaningPool(workers=1)
    try:
        job = pool.submit_document(document, NOW, LIMITS)
        failing = pool.submit_document(broken, NOW, LIMITS)
        assert job.result() == read_document(document, NOW, LIMITS)
        assert len(pool._started) == 1
        with pytest.raises(ParseError):
            failing.result()
    finally:
        pool.close()
    parsed, entries = job.result()
    assert parsed.title == "F" and parsed.entries == () and len(entries) == 40
