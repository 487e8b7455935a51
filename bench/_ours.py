"""Driver for our aggregator, run by bench/compare.py as its own process.

    python bench/_ours.py cli --config CONFIG update
        exactly `python -m aggregator --config CONFIG update` (the same click
        command in a process of its own, imported and ended as that command
        imports and ends itself, as a cron job runs it), with timers
        around Aggregator.update and Aggregator.publish. After the command's
        own output it prints JSON: "seconds" is the in-process time of the
        update itself (fetch, parse, store: the publishing it does at its end
        taken out), "publish_seconds" that of its publishing.
    python bench/_ours.py publish CONFIG URLS_FILE
        a full rebuild of every output (the output folder deleted first), then
        an update of only the feeds listed in URLS_FILE and an incremental
        publish of the stories that update changed; prints JSON with the timings.

Only the calls being measured are inside the timers: not the imports, the
config, opening the database nor closing it (bench/compare.py times the whole
process from outside).
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from aggregator.launch import import_program

import_program()  # the program imported as the `aggregator` command imports it

# Each already imported by the line above.
from aggregator import cli as aggregator_cli  # noqa: E402
from aggregator.core import Aggregator, make_aggregator  # noqa: E402
from aggregator.pool import default_workers  # noqa: E402

#: How a reading worker's command line ends (`python -P -m aggregator.pool`), NUL-separated:
#: the pool module runs itself, so its name is the one the worker is started with.
WORKER_COMMAND = f"\0-m\0{default_workers.__module__}\0".encode()


class ChildPeaks:
    """The peak RSS of each child process (the reading workers), read from /proc while they run.

    `getrusage(RUSAGE_CHILDREN)` will not do: Linux hands a child the parent's
    RSS high-water mark across fork and exec, so a worker started while this
    process held 120 MB would be reported at 120 MB however little it used.
    VmHWM in /proc/<pid>/status belongs to the worker's own address space
    after exec. It is a high-water mark, so sampling every 20 ms misses at
    most what a worker adds in its last 20 ms. A child is read only once its
    command line is the worker's: between fork and exec it still shows this
    process's memory (one such sample once put a worker at 68 MB).
    """

    def __init__(self) -> None:
        self.available = os.path.exists(f"/proc/{os.getpid()}/task")
        self._peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ChildPeaks:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.available:
            self._thread.join()

    def total_mb(self) -> float:
        return sum(self._peaks.values()) / 1024

    def _sample(self) -> None:
        tasks = f"/proc/{os.getpid()}/task"
        while not self._stop.wait(0.02):
            for task in os.listdir(tasks):
                try:
                    with open(f"{tasks}/{task}/children") as children:
                        pids = [int(pid) for pid in children.read().split()]
                except OSError:
                    continue
                for pid in pids:
                    try:
                        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                            if WORKER_COMMAND not in cmdline.read():
                                continue  # not yet exec'd: its memory is still ours
                        with open(f"/proc/{pid}/status") as status:
                            for line in status:
                                if line.startswith("VmHWM:"):
                                    kib = int(line.split()[1])
                                    self._peaks[pid] = max(self._peaks.get(pid, 0), kib)
                    except (OSError, ValueError):
                        pass


def cli(args: list[str]) -> NoReturn:
    spent = {"update": 0.0, "publish": 0.0}

    def timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*positional: Any, **named: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*positional, **named)
            finally:
                spent[name] += time.perf_counter() - started

        return wrapper

    for name in spent:
        setattr(Aggregator, name, timed(name, getattr(Aggregator, name)))
    with ChildPeaks() as children:
        code = aggregator_cli.invoke(args)
    # update() publishes from inside itself: the time it spent publishing is taken out.
    # Reading workers are processes of their own, reaped by the time the
    # command returns: the peak of memory in use is at most ours plus theirs.
    if children.available:
        workers_mb = children.total_mb()
    else:  # an upper bound: each worker counted at the largest child's high-water mark
        workers_mb = (
            default_workers() * resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        )
    timings = {
        "seconds": spent["update"] - spent["publish"],
        "update_seconds": spent["update"],
        "publish_seconds": spent["publish"],
        "self_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers_peak_rss_mb": workers_mb,
    }
    print(json.dumps(timings), flush=True)
    aggregator_cli.exit_now(code)  # as the `aggregator` command ends


def publish(config: Path, urls_file: Path) -> dict[str, Any]:
    aggregator = make_aggregator(config)
    try:
        stories = aggregator.status().entries_total
        shutil.rmtree(aggregator.config.site.output_dir, ignore_errors=True)
        started = time.perf_counter()
        full = aggregator.publish(None)
        full_seconds = time.perf_counter() - started

        wanted = set(urls_file.read_text(encoding="utf-8").split())
        sources = [s for s in aggregator.config.feeds if s.url in wanted]
        started = time.perf_counter()
        report = aggregator.update(sources=sources, publish=False)
        update_seconds = time.perf_counter() - started
        changed = report.changed_story_ids
        started = time.perf_counter()
        incremental = aggregator.publish(changed)
        incremental_seconds = time.perf_counter() - started
        return {
            "stories": stories,
            "full_seconds": full_seconds,
            "full_written": len(full.written),
            "update_feeds": len(report.results),
            "update_failed": len(report.failed),
            "update_seconds": update_seconds,
            "changed": len(changed),
            "categories": sorted(aggregator.storage.categories_of(changed)),
            "incremental_seconds": incremental_seconds,
            "incremental_written": len(incremental.written),
            "incremental_unchanged": len(incremental.unchanged),
        }
    finally:
        aggregator.close()


def main(argv: list[str]) -> int:
    if argv[0] == "cli":
        cli(argv[1:])
    print(json.dumps(publish(Path(argv[1]), Path(argv[2]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
