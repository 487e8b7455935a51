"""Driver for our aggregator, run by bench/compare.py as its own process.

    python bench/_ours.py cli --config CONFIG update
        exactly `python -m aggregator --config CONFIG update` (the same click
        command in a process of its own, as a cron job runs it), with timers
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
import resource
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aggregator import cli as aggregator_cli
from aggregator.core import Aggregator, make_aggregator
from aggregator.pool import default_workers


def cli(args: list[str]) -> int:
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
    try:
        aggregator_cli.main(args=args, prog_name="aggregator")
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    # update() publishes from inside itself: the time it spent publishing is taken out.
    # Reading workers are processes of their own, reaped by the time the
    # command returns: the peak of memory in use is at most ours plus theirs.
    workers = default_workers()
    timings = {
        "seconds": spent["update"] - spent["publish"],
        "update_seconds": spent["update"],
        "publish_seconds": spent["publish"],
        "self_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers_peak_rss_mb": workers
        * resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        / 1024,
    }
    print(json.dumps(timings), flush=True)
    return code


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
        return cli(argv[1:])
    print(json.dumps(publish(Path(argv[1]), Path(argv[2]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
