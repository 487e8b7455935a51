"""The reading worker: a real `python -m aggregator.pool` process, against reading in-process."""

from __future__ import annotations

import gc
import pickle
import signal
import subprocess
import sys
import weakref
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator.clean import cleaning_rules
from aggregator.compact import Packed
from aggregator.core import make_aggregator
from aggregator.errors import ParseError
from aggregator.identity import entry_fingerprint
from aggregator.models import FetchLimits
from aggregator.parse import parse_document
from aggregator.pool import (
    MIN_DOCUMENT_BYTES,
    WORKER_BACKLOG,
    Document,
    WorkerPool,
    _worker_environment,
    read_document,
)
from tests.conftest import write_config_file
from tests.feedbuilder import Item, rss
from tests.httpserver import Reply, serve

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
LIMITS = FetchLimits()
RSS = {"content-type": "application/rss+xml; charset=utf-8"}


def document(count: int = 40, start: int = 0, padding: int = 50) -> Document:
    items = [
        Item(
            f"Story {i}",
            f"/stories/{i}",
            f"g{i}",
            description=f'<p onclick="x()">Body {i} <img src="/i/{i}.jpg"></p>'
            + "<p>more</p>" * padding
            + "<script>bad()</script>",
        )
        for i in range(start, start + count)
    ]
    return Document(rss("F", items), RSS, "https://site.test/feed.xml", 1000)


def test_the_worker_imports_this_aggregator_never_one_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoy = tmp_path / "aggregator"
    decoy.mkdir()
    marker = tmp_path / "decoy-ran"
    (decoy / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (decoy / "pool.py").write_text("raise SystemExit(3)\n")
    monkeypatch.chdir(tmp_path)
    pool = WorkerPool(workers=1)
    try:
        job = pool.submit(document(), NOW, LIMITS)
        assert job.result() == read_document(document(), NOW, LIMITS)
        assert len(pool._started) == 1  # it did go to a worker
    finally:
        pool.close()
    assert not marker.exists()


def test_a_worker_reads_and_cleans_exactly_as_this_process_does() -> None:
    documents = [document(start=start) for start in (0, 100, 200)]
    assert all(len(d.body) >= MIN_DOCUMENT_BYTES for d in documents)
    pool = WorkerPool(workers=1)
    try:
        jobs = [pool.submit(d, NOW, LIMITS) for d in documents]
        assert [job.result() for job in jobs] == [read_document(d, NOW, LIMITS) for d in documents]
        assert len(pool._started) == 1  # it did go to a worker
    finally:
        pool.close()
    parsed, entries = jobs[0].result()
    assert parsed.title == "F" and parsed.entries == () and len(entries) == 40
    assert entries[0].link == "https://site.test/stories/0"
    assert entries[0].summary is not None and "script" not in entries[0].summary


def test_known_fingerprints_are_not_cleaned_again() -> None:
    doc = document()
    raws = parse_document(doc.body, doc.headers, doc.url).entries
    known = frozenset(entry_fingerprint(raw, cleaning_rules(LIMITS)) for raw in raws[5:])
    pool = WorkerPool(workers=1)
    try:
        _, entries = pool.submit(doc, NOW, LIMITS, known).result()
    finally:
        pool.close()
    assert [e.entry_id for e in entries] == [f"g{i}" for i in range(5)]
    assert all(e.fingerprint not in known for e in entries)


def test_small_documents_never_start_a_worker() -> None:
    pool = WorkerPool(workers=1)
    job = pool.submit(document(count=3, padding=0), NOW, LIMITS)
    assert job.done() and len(job.result()[1]) == 3
    assert pool._started == []
    pool.close()


def test_documents_a_killed_worker_owed_are_read_here() -> None:
    pool = WorkerPool(workers=1)
    try:
        pool.submit(document(), NOW, LIMITS).result()  # started, answering
        (worker,) = pool._started
        worker._process.send_signal(signal.SIGKILL)
        worker._process.wait()
        job = pool.submit(document(start=50), NOW, LIMITS)
        assert job.result() == read_document(document(start=50), NOW, LIMITS)
    finally:
        pool.close()


def test_this_process_reads_when_the_worker_has_a_backlog() -> None:
    documents = [document(start=100 * i) for i in range(WORKER_BACKLOG + 1)]
    pool = WorkerPool(workers=1)
    try:
        pool.submit(document(), NOW, LIMITS).result()  # started, answering
        (worker,) = pool._started
        worker._process.send_signal(signal.SIGSTOP)  # it answers nothing for now
        try:
            jobs = [pool.submit(d, NOW, LIMITS) for d in documents]
            assert len(worker.pending) == WORKER_BACKLOG
            assert [job.done() for job in jobs] == [False] * WORKER_BACKLOG + [True]
        finally:
            worker._process.send_signal(signal.SIGCONT)
        assert [job.result() for job in jobs] == [read_document(d, NOW, LIMITS) for d in documents]
        # The worker's entries come with their bodies deflated; those read here do not.
        assert isinstance(jobs[0].result()[1][0].summary, Packed)
        assert not isinstance(jobs[-1].result()[1][0].summary, Packed)
    finally:
        pool.close()


def test_a_forgotten_job_lets_its_value_go_and_makes_it_again_here() -> None:
    """What a stored feed keeps until its batch commits: the call, not its entries."""
    pool = WorkerPool(workers=1)
    try:
        job = pool.submit(document(), NOW, LIMITS)
        _feed, entries = job.result()
        entry = weakref.ref(entries[0])
        forgotten = job.forget()
        del job, entries, _feed
        pool.submit(document(start=50), NOW, LIMITS).result()  # the thread reading answers moves on
        gc.collect()
        assert entry() is None
        assert forgotten.result() == read_document(document(), NOW, LIMITS)
        assert not isinstance(forgotten.result()[1][0].summary, Packed)  # read here, again
    finally:
        pool.close()


def test_a_broken_document_is_a_parse_error_and_the_worker_goes_on() -> None:
    broken = Document(b"<html><body>not a feed</body></html>" * 2000, {}, "https://x.test/", 1000)
    pool = WorkerPool(workers=1)
    try:
        failing = pool.submit(broken, NOW, LIMITS)
        good = pool.submit(document(), NOW, LIMITS)
        with pytest.raises(ParseError):
            failing.result()
        assert len(good.result()[1]) == 40
    finally:
        pool.close()


def test_an_update_with_a_worker_stores_what_one_without_stores(tmp_path: Path) -> None:
    doc = document()
    stored = {}
    with serve({"/f": Reply(body=doc.body, headers=RSS)}) as server:
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
                    (s.uid, s.title, s.link, s.content, s.summary, s.thumbnail)
                    for s in aggregator.storage.newest_stories(None, 1000)
                ]
            finally:
                aggregator.close()
    assert len(stored[0]) == 40
    assert stored[1] == stored[0]


def _worker_process() -> subprocess.Popen[bytes]:
    """A worker started as WorkerPool starts one, its standard error kept."""
    return subprocess.Popen(
        [sys.executable, "-P", "-m", "aggregator.pool"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_worker_environment(),
    )


def test_ctrl_c_in_the_terminal_leaves_the_worker_to_its_caller() -> None:
    """Ctrl-C reaches the whole process group: the caller decides what it means, and
    ends the worker by closing its input, without a traceback from the worker."""
    worker = _worker_process()
    assert worker.stdin is not None and worker.stdout is not None
    for interrupted in (False, True):  # the first answer says it has started
        if interrupted:
            worker.send_signal(signal.SIGINT)
        pickle.dump((read_document, (document(), NOW, LIMITS)), worker.stdin, protocol=5)
        worker.stdin.flush()
        status, value = pickle.load(worker.stdout)  # still answering
        assert status == "ok" and value == read_document(document(), NOW, LIMITS)
    _, errors = worker.communicate(timeout=30)  # its input closed: it ends
    assert worker.returncode == 0 and errors == b"", errors.decode()


def test_a_worker_whose_caller_is_gone_ends_without_a_traceback() -> None:
    worker = _worker_process()
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdout.close()  # as when the caller is killed: nobody reads the answers
    pickle.dump((read_document, (document(), NOW, LIMITS)), worker.stdin, protocol=5)
    worker.stdin.flush()
    _, errors = worker.communicate(timeout=30)
    assert worker.returncode == 0 and errors == b"", errors.decode()
