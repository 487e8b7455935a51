"""Reading documents, and rendering digest pages, on another core while this process works.

Parsing and cleaning (nh3 sanitising, URL resolution, choosing thumbnails)
are most of the CPU a poll spends on a changed document. lxml and nh3 let go
of the GIL while they work, but the Python around them holds it: read in a
thread beside the storing thread, a first poll took longer than with every
document read on the storing thread itself, so a worker process reads them.
It gets each large document together with the fingerprints of its feed's
newest stored entries, so it cleans only what is new or changed, and hands
back plain records for this process to deduplicate and store. It starts
with the first large document, so an update where every server answers 304
never pays for it (nor carries its memory). A publish of many pages has the
same shape: this process reads the stories from the database and lays out
each page's model, the worker writes the page's HTML (`call`).

The worker is `python -P -m aggregator.pool`, fed pickled jobs on stdin (a
function of this package, named, and its arguments) and answering on
stdout, rather than a multiprocessing pool: those start their workers by
importing the parent's main script again, which for the `aggregator`
command means the whole program (SQLAlchemy, aiohttp) in a process that
needs only the parser, the cleaner and the page writer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import gc
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from aggregator.compact import pack
from aggregator.models import EntryData, FetchLimits, ParsedFeed

#: Smaller documents are read in this process: shipping them costs more than it saves.
#: At 32 KB a poll of 10,000 feeds of five entries (15 KB each) was read on one
#: core alone, in 54 s; at 8 KB the worker takes its share and it took 35 s.
MIN_DOCUMENT_BYTES = 8 * 1024

#: Documents a worker may have waiting before this process reads the next one itself.
WORKER_BACKLOG = 4

#: The feed as read (its entries left out) and its new or changed entries, cleaned.
Prepared = tuple[ParsedFeed, list[EntryData]]
T = TypeVar("T")


@dataclass(frozen=True)
class Document:
    """A fetched body and what reading it needs."""

    body: bytes
    headers: Mapping[str, str]
    url: str
    max_entries: int


class WorkerFailed(Exception):
    """The worker process died or could not start; its jobs are done here instead."""


def read_document(
    document: Document,
    fetched_at: datetime,
    limits: FetchLimits,
    known: frozenset[str] = frozenset(),
) -> Prepared:
    """Parse a document and clean its entries whose fingerprints are not `known`.

    Raises ParseError for a document that cannot be read.
    """
    # Imported here: a run where every server answers 304 never loads them.
    from aggregator.clean import cleaning_rules, normalise_entry
    from aggregator.identity import entry_fingerprint
    from aggregator.parse import parse_document

    parsed = parse_document(document.body, document.headers, document.url, document.max_entries)
    rules = cleaning_rules(limits)
    cleaned = [
        entry
        for raw in parsed.entries
        if (fingerprint := entry_fingerprint(raw, rules)) not in known
        and (entry := normalise_entry(raw, fetched_at, limits, fingerprint)) is not None
    ]
    return dataclasses.replace(parsed, entries=()), cleaned


def read_packed(
    document: Document,
    fetched_at: datetime,
    limits: FetchLimits,
    known: frozenset[str] = frozenset(),
) -> Prepared:
    """`read_document` as a worker does it: the bodies deflated there, so the storing
    process need not."""
    feed, entries = read_document(document, fetched_at, limits, known)
    return feed, [
        dataclasses.replace(
            entry,
            summary=pack(entry.summary) if entry.summary is not None else None,
            content=pack(entry.content) if entry.content is not None else None,
            raw_body=pack(entry.raw_body) if entry.raw_body is not None else None,
        )
        for entry in entries
    ]


def default_workers() -> int:
    """One worker per core beyond the one this process stores with (at most two)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(0, min(2, (cores or 1) - 1))


class Job(Generic[T]):
    """One call, being made here or in a worker."""

    def __init__(self, future: Future[T], here: Callable[[], T]) -> None:
        self._future = future
        self._here = here

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> T:
        """The call's value (or its exception); one a worker died owing, or one let go
        (`forget`), is made here."""
        try:
            return self._future.result()
        except WorkerFailed:
            return self._here()

    def forget(self) -> Job[T]:
        """The same call with its value let go: asked for again, it is made again here."""
        future: Future[T] = Future()
        future.set_exception(WorkerFailed("its value was let go"))
        return Job(future, self._here)


def _worker_environment() -> dict[str, str] | None:
    """The environment for the worker: this one, plus where this package lies if -P hides it.

    The worker runs with -P, so the working directory, where `python -m` looks
    first, cannot lend it another `aggregator` (a checkout, or worse). When
    this process found the package only there (`python -m aggregator` run in
    a checkout), the folder is named in PYTHONPATH so the worker finds it too.
    """
    home = Path(__file__).resolve().parents[1]
    if any(_same_folder(entry, home) for entry in sys.path[1:]):
        return None  # installed: the worker's own path finds it
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(home), path] if path else [str(home)])}


def _same_folder(entry: str, folder: Path) -> bool:
    try:
        return Path(entry or ".").resolve() == folder
    except OSError:
        return False


#: Bytes a pipe to or from a worker holds: a whole document, or a whole answer.
PIPE_BYTES = 1 << 20


def _widen(descriptor: int) -> None:
    """Let the pipe hold a document or an answer whole (Linux; elsewhere it stays as it is).

    An answer is some 350 KB (each body as text and deflated) and a pipe holds
    64 KB: the worker stalled in mid-write until this process's reading thread
    next got the interpreter, which a busy storing thread holds for up to the
    5 ms switch interval at a time, several times per answer.
    """
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):  # over the system's limit: the default stays
            fcntl.fcntl(descriptor, set_size, PIPE_BYTES)


class _Worker:
    """One `python -m aggregator.pool` process and the jobs it has been given.

    Jobs reach it through a thread of their own: a document is larger than a
    pipe holds, and writing it from the caller's thread would stall that
    thread until the worker had finished the job before.
    """

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-P", "-m", "aggregator.pool"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_worker_environment(),
        )
        for pipe in (self._process.stdin, self._process.stdout):
            assert pipe is not None
            _widen(pipe.fileno())
        self.pending: deque[Future[Any]] = deque()
        self._lock = threading.Lock()
        self._stopped = False
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._read_answers, daemon=True)
        self._writer = threading.Thread(target=self._write_jobs, daemon=True)
        self._reader.start()
        self._writer.start()

    def submit(self, function: Callable[..., T], args: tuple[Any, ...]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._stopped:
                future.set_exception(WorkerFailed("the worker stopped"))
                return future
            self.pending.append(future)
        self._outbox.put(pickle.dumps((function, args), protocol=5))
        return future

    def _write_jobs(self) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            while (job := self._outbox.get()) is not None:
                stdin.write(job)
                stdin.flush()
        except OSError:  # the worker is gone; the reader fails what it still owes
            pass
        finally:
            with contextlib.suppress(OSError):
                stdin.close()  # end of input: the worker exits

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
                else:
                    future.set_exception(value)
        except Exception:  # EOF, a broken pipe, an answer that cannot be unpickled
            with self._lock:
                self._stopped = True
                owed, self.pending = list(self.pending), deque()
            for future in owed:
                future.set_exception(WorkerFailed("the worker stopped"))

    def close(self) -> None:
        self._outbox.put(None)
        self._writer.join()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join()


class WorkerPool:
    """Hands large documents and large pages to worker processes, started with the first."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._started: list[_Worker] = []

    def submit(
        self,
        document: Document,
        fetched_at: datetime,
        limits: FetchLimits,
        known: frozenset[str] = frozenset(),
    ) -> Job[Prepared]:
        """Read `document` and clean its entries whose fingerprints are not `known`."""
        args = (document, fetched_at, limits, known)
        worker = self._available() if len(document.body) >= MIN_DOCUMENT_BYTES else None
        if worker is not None:
            return Job(worker.submit(read_packed, args), lambda: read_document(*args))
        return _here(read_document, args)

    def call(self, function: Callable[..., T], *args: Any) -> Job[T]:
        """`function(*args)` in a worker, or here when none can take it now.

        `function` must be a module-level function of this package (the worker
        imports it by name) and its arguments and value picklable.
        """
        worker = self._available()
        if worker is not None:
            return Job(worker.submit(function, args), lambda: function(*args))
        return _here(function, args)

    def _available(self) -> _Worker | None:
        """The least busy worker, started on first use, unless every one has a backlog.

        A worker with a backlog is the slower side: the caller does the next
        job itself instead of waiting for it, so both cores stay busy whichever
        side the work makes the heavier.
        """
        if self.workers < 1:
            return None
        if not self._started:
            try:
                self._started = [_Worker() for _ in range(self.workers)]
            except OSError:
                self.workers = 0
                return None
        least_busy = min(self._started, key=lambda worker: len(worker.pending))
        return least_busy if len(least_busy.pending) < WORKER_BACKLOG else None

    def close(self) -> None:
        for worker in self._started:
            worker.close()
        self._started = []


def _here(function: Callable[..., T], args: tuple[Any, ...]) -> Job[T]:
    """A job done at once in this process; its exception is raised where its result is asked."""
    future: Future[T] = Future()
    try:
        future.set_result(function(*args))
    except Exception as e:
        future.set_exception(e)
    return Job(future, lambda: function(*args))


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The worker's loop: a call in, its value (or its exception) out, until EOF."""
    settled = False
    while True:
        try:
            function, args = pickle.load(requests)
        except EOFError:
            return
        try:
            answer: tuple[str, object] = ("ok", function(*args))
        except Exception as e:  # raised in the caller, where its result is asked for
            answer = ("error", _portable(e))
        pickle.dump(answer, answers, protocol=5)
        answers.flush()
        if not settled:
            # What the first job imported and cached stays for good: the cycle
            # collector need not walk it again at every full collection.
            gc.freeze()
            settled = True


def _portable(error: Exception) -> Exception:
    """`error` if it survives pickling, else a RuntimeError that says what it was."""
    try:
        pickle.loads(pickle.dumps(error, protocol=5))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def main() -> None:
    """The worker process: serve until this process's caller closes the pipe or goes.

    Ctrl-C in a terminal reaches the whole process group, the worker too: the
    caller decides what it means (stop, keeping what was stored) and ends the
    worker by closing its input, so the worker ignores it. A caller killed
    outright leaves a broken pipe, which ends the worker just as quietly:
    either way a traceback from here would only bury the caller's own words.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Answers get a descriptor of their own; anything printed goes to stderr.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        serve(sys.stdin.buffer, answers)
    except BrokenPipeError:
        os._exit(0)  # nobody to answer; not even a flush at exit may be tried


if __name__ == "__main__":
    main()
