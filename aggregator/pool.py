"""Reading and cleaning entries on another core while this process stores.

Cleaning (nh3 sanitising, URL resolution, choosing thumbnails) and reading
documents are most of the CPU a first poll spends on each entry, and nh3
holds the GIL, so threads would not overlap them with storing: a worker
process does. A large batch of entries to clean goes to it, and so does a
whole large document of a feed with nothing stored yet (no entry of it can
be known, so nothing needs the database before cleaning). The worker starts
with the first such job only, so an update that brings a few new entries per
feed never pays for it (nor carries its memory), and it ends with the update.

The worker is `python -m aggregator.pool`, fed pickled batches on stdin and
answering on stdout, rather than a multiprocessing pool: those start their
workers by importing the parent's main script again, which for the
`aggregator` command means the whole program (SQLAlchemy, pydantic, aiohttp)
in a process that needs only the cleaner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from aggregator.errors import ParseError
from aggregator.models import EntryData, FetchLimits, ParsedFeed, RawEntry

#: Smaller batches are cleaned in this process: shipping them costs more than it saves.
MIN_BATCH = 16
#: Smaller documents are read in this process, for the same reason.
MIN_DOCUMENT_BYTES = 32 * 1024

Batch = Sequence[tuple[RawEntry, str]]  # (raw entry, its fingerprint)


class WorkerFailed(Exception):
    """The worker process died or could not start; its batches are cleaned here instead."""


def clean_entries(batch: Batch, fetched_at: datetime, limits: FetchLimits) -> list[EntryData]:
    """The entries of `batch` cleaned, leaving out those with nothing to identify them."""
    from aggregator.clean import normalise_entry  # nh3 is loaded where cleaning happens

    return [
        entry
        for raw, fingerprint in batch
        if (entry := normalise_entry(raw, fetched_at, limits, fingerprint)) is not None
    ]


@dataclass(frozen=True)
class Document:
    """A fetched body and what reading it needs."""

    body: bytes
    headers: Mapping[str, str]
    url: str
    max_entries: int


Prepared = tuple[ParsedFeed, list[EntryData]]  # the feed (its entries left out), cleaned entries


def read_document(document: Document, fetched_at: datetime, limits: FetchLimits) -> Prepared:
    """Parse a document and clean all its entries; raises ParseError for a broken one."""
    from aggregator.clean import cleaning_rules
    from aggregator.identity import entry_fingerprint
    from aggregator.parse import parse_document

    parsed = parse_document(document.body, document.headers, document.url, document.max_entries)
    rules = cleaning_rules(limits)
    batch = [(raw, entry_fingerprint(raw, rules)) for raw in parsed.entries]
    return dataclasses.replace(parsed, entries=()), clean_entries(batch, fetched_at, limits)


def _run(kind: str, args: tuple[Any, ...]) -> Any:
    if kind == "read":
        return read_document(*args)
    return clean_entries(*args)


def default_workers() -> int:
    """One worker per core beyond the one this process stores with (at most two)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(2, (cores or 1) - 1))


class CleaningJob:
    """One feed's document or batch, being read and cleaned here or in a worker."""

    def __init__(
        self,
        future: Future[Any],
        kind: str,
        args: tuple[Any, ...],
        parsed: ParsedFeed | None = None,
    ) -> None:
        self._future = future
        self._kind = kind
        self._args = args
        self._parsed = parsed

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> Prepared:
        """The feed and its cleaned entries; a worker that died is made up for here."""
        try:
            value = self._future.result()
        except WorkerFailed:
            value = _run(self._kind, self._args)
        if self._kind == "read":
            parsed, entries = value
            return parsed, entries
        assert self._parsed is not None
        return self._parsed, value


class _Worker:
    """One `python -m aggregator.pool` process and the batches it has been given."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "aggregator.pool"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.pending: deque[Future[Any]] = deque()
        self._lock = threading.Lock()
        self._stopped = False
        self._reader = threading.Thread(target=self._read_answers, daemon=True)
        self._reader.start()

    def submit(self, kind: str, args: tuple[Any, ...]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._stopped:
                future.set_exception(WorkerFailed("the cleaning worker stopped"))
                return future
            self.pending.append(future)
        try:
            assert self._process.stdin is not None
            pickle.dump((kind, args), self._process.stdin, protocol=5)
            self._process.stdin.flush()
        except OSError:  # the worker is gone; the reader fails what it still owes
            pass
        return future

    def _read_answers(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            while True:
                status, value = pickle.load(stdout)
                with self._lock:
                    future = self.pending.popleft()
                if status == "ok":
                    future.set_result(value)
                elif status == "parse_error":
                    future.set_exception(ParseError(value))
                else:
                    future.set_exception(RuntimeError(value))
        except (EOFError, OSError, pickle.UnpicklingError):
            with self._lock:
                self._stopped = True
                owed, self.pending = list(self.pending), deque()
            for future in owed:
                future.set_exception(WorkerFailed("the cleaning worker stopped"))

    def close(self) -> None:
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):
                self._process.stdin.close()  # end of input: the worker exits
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join()


class CleaningPool:
    """Hands large batches to worker processes, started on the first one."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._started: list[_Worker] = []

    def submit(
        self, parsed: ParsedFeed, batch: Batch, fetched_at: datetime, limits: FetchLimits
    ) -> CleaningJob:
        """Clean the entries of a document read here."""
        args = (list(batch), fetched_at, limits)
        return self._job("clean", args, len(batch) >= MIN_BATCH, parsed)

    def submit_document(
        self, document: Document, fetched_at: datetime, limits: FetchLimits
    ) -> CleaningJob:
        """Read a document and clean every entry of it (for a feed with nothing stored)."""
        args = (document, fetched_at, limits)
        return self._job("read", args, len(document.body) >= MIN_DOCUMENT_BYTES)

    def _job(
        self, kind: str, args: tuple[Any, ...], worth_it: bool, parsed: ParsedFeed | None = None
    ) -> CleaningJob:
        future: Future[Any]
        if self.workers < 1 or not worth_it:
            future = Future()
            try:
                future.set_result(_run(kind, args))
            except Exception as e:  # raised where the result is asked for, like a worker's
                future.set_exception(e)
            return CleaningJob(future, kind, args, parsed)
        if not self._started:
            try:
                self._started = [_Worker() for _ in range(self.workers)]
            except OSError:
                self.workers = 0
                return self._job(kind, args, worth_it, parsed)
        least_busy = min(self._started, key=lambda worker: len(worker.pending))
        return CleaningJob(least_busy.submit(kind, args), kind, args, parsed)

    def close(self) -> None:
        for worker in self._started:
            worker.close()
        self._started = []


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The worker's loop: a job in, its result (or the error) out, until EOF."""
    while True:
        try:
            kind, args = pickle.load(requests)
        except EOFError:
            return
        try:
            answer: tuple[str, object] = ("ok", _run(kind, args))
        except ParseError as e:  # the feed's own problem, recorded as such
            answer = ("parse_error", str(e))
        except Exception as e:  # the parent records it against the feed
            answer = ("error", f"{type(e).__name__}: {e}")
        pickle.dump(answer, answers, protocol=5)
        answers.flush()


if __name__ == "__main__":
    # Answers get a descriptor of their own; anything printed goes to stderr.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, answers)
