"""Cleaning entries on another core while this process parses and stores.

Cleaning (nh3 sanitising, URL resolution, choosing thumbnails) is most of the
CPU a first poll spends on each entry, and nh3 holds the GIL, so threads
would not overlap it with storing: a worker process does. It starts with the
first large batch only, so an update that brings a few new entries per feed
never pays for it (nor carries its memory), and it ends with the update.

The worker is `python -m aggregator.pool`, fed pickled batches on stdin and
answering on stdout, rather than a multiprocessing pool: those start their
workers by importing the parent's main script again, which for the
`aggregator` command means the whole program (SQLAlchemy, pydantic, aiohttp)
in a process that needs only the cleaner.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import IO, Any

from aggregator.models import EntryData, FetchLimits, RawEntry

#: Smaller batches are cleaned in this process: shipping them costs more than it saves.
MIN_BATCH = 16

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


def default_workers() -> int:
    """One worker per core beyond the one this process stores with (at most two)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(2, (cores or 1) - 1))


class CleaningJob:
    """One feed's batch, being cleaned here or in a worker."""

    def __init__(self, future: Future[list[EntryData]], batch: Batch, args: tuple[Any, ...]):
        self._future = future
        self._batch = batch
        self._args = args

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> list[EntryData]:
        """The cleaned entries; a worker that died is made up for by cleaning here."""
        try:
            return self._future.result()
        except WorkerFailed:
            return clean_entries(self._batch, *self._args)


class _Worker:
    """One `python -m aggregator.pool` process and the batches it has been given."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "aggregator.pool"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.pending: deque[Future[list[EntryData]]] = deque()
        self._lock = threading.Lock()
        self._stopped = False
        self._reader = threading.Thread(target=self._read_answers, daemon=True)
        self._reader.start()

    def submit(self, batch: Batch, fetched_at: datetime, limits: FetchLimits) -> Future[Any]:
        future: Future[list[EntryData]] = Future()
        with self._lock:
            if self._stopped:
                future.set_exception(WorkerFailed("the cleaning worker stopped"))
                return future
            self.pending.append(future)
        try:
            assert self._process.stdin is not None
            pickle.dump((list(batch), fetched_at, limits), self._process.stdin, protocol=5)
            self._process.stdin.flush()
        except OSError:  # the worker is gone; the reader fails what it still owes
            pass
        return future

    def _read_answers(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            while True:
                ok, value = pickle.load(stdout)
                with self._lock:
                    future = self.pending.popleft()
                if ok:
                    future.set_result(value)
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

    def submit(self, batch: Batch, fetched_at: datetime, limits: FetchLimits) -> CleaningJob:
        args = (fetched_at, limits)
        future: Future[list[EntryData]]
        if self.workers < 1 or len(batch) < MIN_BATCH:
            future = Future()
            try:
                future.set_result(clean_entries(batch, fetched_at, limits))
            except Exception as e:  # raised where the result is asked for, like a worker's
                future.set_exception(e)
            return CleaningJob(future, batch, args)
        if not self._started:
            try:
                self._started = [_Worker() for _ in range(self.workers)]
            except OSError:
                self.workers = 0
                return self.submit(batch, fetched_at, limits)
        least_busy = min(self._started, key=lambda worker: len(worker.pending))
        return CleaningJob(least_busy.submit(batch, fetched_at, limits), batch, args)

    def close(self) -> None:
        for worker in self._started:
            worker.close()
        self._started = []


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The worker's loop: a batch in, its cleaned entries (or the error) out, until EOF."""
    while True:
        try:
            batch, fetched_at, limits = pickle.load(requests)
        except EOFError:
            return
        try:
            answer: tuple[bool, object] = (True, clean_entries(batch, fetched_at, limits))
        except Exception as e:  # the parent records it against the feed
            answer = (False, f"{type(e).__name__}: {e}")
        pickle.dump(answer, answers, protocol=5)
        answers.flush()


if __name__ == "__main__":
    # Answers get a descriptor of their own; anything printed goes to stderr.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, answers)
